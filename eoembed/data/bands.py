"""Band, modality and season tables shared by every part of eoembed.

Band keys are ``"<modality>/<band>"`` (``"s1/VV"``, ``"s2l1c/B01"``, ``"s2l2a/B8A"``) so that L1C and L2A
bands with the same name stay distinct inside one cube.
"""
from __future__ import annotations

MODALITIES: tuple[str, ...] = ("s1", "s2l1c", "s2l2a")

S1_BANDS: tuple[str, ...] = ("VV", "VH")
S2L1C_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)
S2L2A_BANDS: tuple[str, ...] = tuple(b for b in S2L1C_BANDS if b != "B10")
BANDS: dict[str, tuple[str, ...]] = {"s1": S1_BANDS, "s2l1c": S2L1C_BANDS, "s2l2a": S2L2A_BANDS}

#: Folder names accepted for each modality when reading (older copies call S1 ``s1grd``).
MODALITY_FOLDERS: dict[str, tuple[str, ...]] = {"s1": ("s1", "s1grd"), "s2l1c": ("s2l1c",), "s2l2a": ("s2l2a",)}

#: Seasons in file order (time index 0..3 of the SSL4EO-S12-downstream files).
SEASONS: tuple[str, ...] = ("MAM", "JJA", "SON", "DJF")

#: Sentinel-2 central wavelengths and bandwidths in nanometres (ESA S2 MSI spectral response, S2A).
S2_WAVELENGTH_NM: dict[str, float] = {
    "B01": 442.7, "B02": 492.4, "B03": 559.8, "B04": 664.6, "B05": 704.1, "B06": 740.5, "B07": 782.8,
    "B08": 832.8, "B8A": 864.7, "B09": 945.1, "B10": 1373.5, "B11": 1613.7, "B12": 2202.4,
}
S2_BANDWIDTH_NM: dict[str, float] = {
    "B01": 21, "B02": 66, "B03": 36, "B04": 31, "B05": 15, "B06": 15, "B07": 20,
    "B08": 106, "B8A": 21, "B09": 20, "B10": 31, "B11": 91, "B12": 175,
}


def band_key(modality: str, band: str) -> str:
    """``band_key("s2l2a", "B04") -> "s2l2a/B04"``."""
    if modality not in BANDS:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    if band not in BANDS[modality]:
        raise ValueError(f"unknown band {band!r} for modality {modality!r}; expected one of {BANDS[modality]}")
    return f"{modality}/{band}"


def all_band_keys(modalities: tuple[str, ...] = MODALITIES) -> list[str]:
    """All band keys of the given modalities, in canonical order (27 for all three)."""
    return [f"{m}/{b}" for m in modalities for b in BANDS[m]]


def split_key(key: str) -> tuple[str, str]:
    """``"s2l2a/B04" -> ("s2l2a", "B04")`` with a clear error for malformed keys."""
    mod, sep, band = key.partition("/")
    if not sep or mod not in BANDS or band not in BANDS[mod]:
        raise ValueError(f"malformed band key {key!r}: expected '<modality>/<band>', e.g. 's2l2a/B04'")
    return mod, band
