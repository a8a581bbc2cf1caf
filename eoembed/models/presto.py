"""Presto (Tseng et al. 2023): a lightweight pixel-time-series encoder, 128-d output, MIT-licensed weights.

Inputs and units (``presto_inputs`` / ``presto_normalise``)
    17 channels ``PRESTO_BANDS``: S1 VV, VH (dB); S2 B2..B12 incl. B8A (reflectance x 1e4, i.e. the cube's
    digital numbers without the +1000 offset); ERA5 temperature_2m (K), total_precipitation (m); SRTM
    elevation (m), slope (degrees); NDVI. Normalised as ``(x + add) / div`` (see ``presto_nn.PRESTO_ADD/DIV``);
    NDVI is always recomputed from raw B8 and B4 (``(B8-B4)/(B8+B4)``, 0 where the sum is not positive).
    Months are indices 0..11 with 0 = January (Presto's convention). Dynamic World is unknown here, so it is
    given as 9 (= missing, masked) unless passed. Lat/lon in degrees.

Missing bands are masked, never invented
    A band that is absent (not in the cube, e.g. B8A in the WorldCereal data, ERA5 and SRTM always for cubes),
    NaN, equal to ``nodata``, or flagged in ``mask`` masks its whole band-group token (e.g. a missing B2 masks
    the S2_RGB token); NDVI is masked where B8 or B4 is. Masked tokens take no part in attention nor in the
    mean. An unknown location (NaN lat/lon) drops the lat/lon token (an eoembed extension: the original model
    always had one). A series with no unmasked token at all embeds to NaN.

Cubes (``PrestoEmbedder.prepare`` / ``forward``, temporal mode "pixel_series")
    The 4 seasonal composites (MAM, JJA, SON, DJF) are fed per pixel as 4 time steps with their mid-season
    months April, July, October, January = month indices ``SEASON_MONTHS = (3, 6, 9, 0)``, in that (chronological)
    order at positions 0..3. S2 bands come from L1C by default (Presto was pretrained on top-of-atmosphere
    Earth Engine ``COPERNICUS/S2``, 2020-21, no +1000 offset) or from L2A with preset ``"l2a"``; cube S2 value 0
    is nodata and masked. Pixels:
    ``pixels="grid:16"`` (default) embeds a deterministic regular 16 x 16 grid of pixels (cell centres; every
    row/column when the image is smaller), ``"all"`` every pixel. The sample's embedding is the mean of its
    pixels' embeddings (pixels that embed to NaN are left out), shape (B, 128), stored as (sample, feature).
    Preset ``"all-pixels"`` uses every pixel.

Registry: ``load_model("presto", weights="auto"|path|None, size="full"|"tiny", preset=None|"l2a"|"all-pixels")``;
without the registry: ``build_presto(weights, size, preset)``. Tiny = same code at width 32, depth 1, 4 heads.

Pixels (``presto_embed_pixels``, also ``from eoembed.models import presto_embed_pixels``)
    Embeds per-pixel time series (N, T <= 24, C) directly, in batches, returning (N, 128). ``months``: an int
    or an (N,) array is the START month of each pixel's series (as the original Presto; step t has month
    (start + t) % 12); (T,) gives the month of each step for all pixels, (N, T) every step's month. A 1-D
    array with N == T is ambiguous and raises ``DataError``. Inputs that look like the wrong units raise a
    ``UserWarning`` (``check_presto_units``): S2 reflectance in 0..1 instead of digital numbers (x 1e4), S1
    in linear power instead of dB, temperature in Celsius instead of Kelvin.

Weights: ``default_model.pt`` from nasaharvest/presto holds encoder and decoder; ``load_presto_weights`` loads
every ``encoder.*`` tensor strictly and ignores the ``decoder.*`` ones explicitly by prefix; anything else, any
missing or mis-shaped tensor raises ``WeightsMismatchError`` listing them.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eoembed import runtime
from eoembed.errors import DataError, WeightsNotFound
from eoembed.models.base import Embedder, ModelSpec, Normalisation, WeightSource
from eoembed.models.registry import register
from eoembed.models.weights import LoadRules, Resolved, read_checkpoint, strict_load, verify_file
from eoembed.models.presto_nn import (
    DW_MISSING, MAX_SEQ_LEN, NUM_DW_CLASSES, PRESTO_ADD, PRESTO_BANDS, PRESTO_DIV, PrestoEncoder,
)

__all__ = [
    "PRESTO_BANDS", "PRESTO_RAW_BANDS", "SEASON_MONTHS", "PRESTO_SIZES", "PRESTO_WEIGHTS_FILE", "PRESTO_SPEC",
    "PRESTO_LOAD_RULES", "PrestoEmbedder", "PrestoBackbone", "build_presto", "load_presto_weights",
    "presto_normalise", "presto_inputs", "presto_embed_pixels", "pixel_grid", "check_presto_units",
]

#: The 16 measured channels (NDVI, the 17th, is derived).
PRESTO_RAW_BANDS: tuple[str, ...] = PRESTO_BANDS[:-1]
#: Mid-season month indices (0 = January) of the cube seasons MAM, JJA, SON, DJF.
SEASON_MONTHS: tuple[int, ...] = (3, 6, 9, 0)
PRESTO_WEIGHTS_FILE = "default_model.pt"
#: github.com/nasaharvest/presto commit the download is pinned to (main on 2025-05-18; data/default_model.pt last
#: changed in 5afde40850d73bfaed26078fc3bda621a55c311d, "Update model weights", 2023-09-21).
PRESTO_REVISION = "13173d028f035abcbcc3b13829314323a5c15d02"
PRESTO_URL = f"https://github.com/nasaharvest/presto/raw/{PRESTO_REVISION}/data/default_model.pt"
#: SHA-256 of data/default_model.pt at that commit (3,321,716 bytes, git blob
#: 1c0ab2199246ca250c1dbb3de27e8c3da43d9b8a), computed from a snapshot of the upstream repository; equal to
#: ../shared/weights/presto/default_model.pt.
PRESTO_SHA256 = "559c9d76f525bdf2dd3774da8b1e7f1510769b73baacac12e9e4d8d5c67fbe65"
PRESTO_EMBED_DIM = 128
#: Architecture sizes. "full" is the checkpoint's; "tiny" runs the same code at toy size (tests, demos).
PRESTO_SIZES: dict[str, dict] = {
    "full": dict(embed_dim=128, depth=2, num_heads=8, mlp_ratio=4.0),
    "tiny": dict(embed_dim=32, depth=1, num_heads=4, mlp_ratio=2.0),
}
ENCODER_PREFIX = "encoder."
#: Checkpoint tensors that belong to the pretraining decoder: expected in default_model.pt, not used.
IGNORED_PREFIXES: tuple[str, ...] = ("decoder.",)

_S1_CUBE = {"VV": "s1/VV", "VH": "s1/VH"}
_S2_CUBE_NAME = {"B2": "B02", "B3": "B03", "B4": "B04", "B5": "B05", "B6": "B06", "B7": "B07", "B8": "B08",
                 "B8A": "B8A", "B11": "B11", "B12": "B12"}
_ALIASES: dict[str, str] = {b.lower(): b for b in PRESTO_RAW_BANDS}
_ALIASES.update({v.lower(): k for k, v in _S2_CUBE_NAME.items()})
_ALIASES.update({"temperature": "temperature_2m", "precipitation": "total_precipitation", "dem": "elevation"})


# ----------------------------------------------------------------------------------------------- weights
#: Checkpoint rules: file keys are used verbatim (``encoder.*``); the pretraining decoder is dropped by prefix.
PRESTO_LOAD_RULES = LoadRules(dropped_prefixes=IGNORED_PREFIXES)


class PrestoBackbone(nn.Module):
    """Holds the encoder under the name ``encoder`` so that state_dict keys equal the checkpoint's."""

    def __init__(self, **sizes):
        super().__init__()
        self.encoder = PrestoEncoder(**sizes)


def _check_presto_file(weights: str | os.PathLike) -> Resolved:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsNotFound(f"Presto checkpoint {str(path)!r} not found; pass the path of {PRESTO_WEIGHTS_FILE} "
                              f"({PRESTO_URL}) or weights=None for random")
    return verify_file(path, PRESTO_SPEC.weight_sources, "presto", "explicit")


def load_presto_weights(backbone: PrestoBackbone, weights: str | os.PathLike | Mapping[str, torch.Tensor]) -> str:
    """Load a Presto checkpoint (path or state dict) into ``backbone`` strictly; return a weights id.

    A file named ``default_model.pt`` must have the published SHA-256 (``PRESTO_SHA256``), checked before it is
    read; a file with another name is taken as the user's own checkpoint (see :mod:`eoembed.models.weights`).
    Every ``encoder.*`` tensor of the model must be in the file with the right shape, the file may hold nothing
    else but ``decoder.*`` tensors (dropped on purpose). Raises ``WeightsMismatchError`` listing the missing,
    unexpected and mis-shaped tensors (or naming both hashes), ``WeightsNotFound`` for a missing file. The id is
    ``"<file name>@sha256:<12 hex>"`` (``"state_dict"`` for an in-memory dict).
    """
    if isinstance(weights, Mapping):
        strict_load(backbone, dict(weights), PRESTO_LOAD_RULES, model="presto")
        return "state_dict"
    return _load_file(backbone, _check_presto_file(weights))


def _load_file(backbone: PrestoBackbone, found: Resolved) -> str:
    strict_load(backbone, read_checkpoint(found.path), PRESTO_LOAD_RULES, path=str(found.path),
                sha256=found.sha256, model="presto")
    return f"{found.path.name}@sha256:{found.sha256[:12]}"


# ------------------------------------------------------------------------------------------------ inputs
def presto_normalise(raw: np.ndarray) -> np.ndarray:
    """(..., 16) raw channels in ``PRESTO_RAW_BANDS`` order -> (..., 17) normalised channels incl. NDVI.

    ``(x + add) / div`` per channel; NDVI = (B8 - B4) / (B8 + B4) from the raw values, 0 where B8 + B4 <= 0.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape[-1] != len(PRESTO_RAW_BANDS):
        raise DataError(f"presto_normalise expects the last axis to hold the {len(PRESTO_RAW_BANDS)} raw channels "
                        f"{PRESTO_RAW_BANDS} (NDVI is derived), got {raw.shape[-1]}; reorder/complete your bands "
                        "or use presto_inputs with band names")
    b8, b4 = raw[..., PRESTO_BANDS.index("B8")], raw[..., PRESTO_BANDS.index("B4")]
    total = b8 + b4
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = np.where(total > 0, (b8 - b4) / np.where(total > 0, total, 1.0), 0.0)
    full = np.concatenate([raw, ndvi[..., None]], -1)
    return ((full + np.asarray(PRESTO_ADD)) / np.asarray(PRESTO_DIV)).astype(np.float32)


def _canonical_band(name: str) -> str:
    base = str(name).split("/")[-1]
    canon = _ALIASES.get(base.lower())
    if canon is None:
        hint = " (NDVI is derived from B8 and B4; do not pass it)" if base.lower() == "ndvi" else ""
        raise DataError(f"band {name!r} is not a Presto input{hint}; Presto uses {PRESTO_RAW_BANDS} "
                        "(also as 'B02'-style or 's2l2a/B04'-style names); drop the other bands")
    return canon


def _months(months, n: int, t: int) -> np.ndarray:
    """Month index (0 = January) of every step, (n, t), from an int or (n,) start month or (t,) / (n, t) months.

    A 1-D array is a start month per pixel when its length is n (as the original Presto), the months of the t
    steps shared by all pixels when its length is t; n == t != 1 is ambiguous and raises.
    """
    arr = np.asarray(months)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataError(f"months must be whole month indices 0..11 (0 = January), got dtype {arr.dtype}")
    if arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise DataError("months must be whole month indices 0..11 (0 = January), got non-integer or NaN values")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > 11):
        raise DataError(f"month indices must lie in 0..11 (0 = January), got {arr.min()}..{arr.max()}")
    steps = np.arange(t)
    if arr.ndim == 0:  # one start month for every pixel
        out = np.broadcast_to((int(arr) + steps) % 12, (n, t))
    elif arr.ndim == 1 and n == t and n > 1 and arr.shape == (n,):
        raise DataError(
            f"months of shape ({n},) is ambiguous: there are {n} pixels and {t} time steps. Pass one start month "
            f"per pixel as a ({n}, {t}) array of every step's month, e.g. (start[:, None] + np.arange({t})) % 12, "
            f"or the months of the steps shared by all pixels as np.broadcast_to(months, ({n}, {t}))")
    elif arr.ndim == 1 and arr.shape == (n,):  # a start month per pixel (the original Presto's convention)
        out = (arr[:, None] + steps[None, :]) % 12
    elif arr.ndim == 1 and arr.shape == (t,):  # the months of the t steps, the same for every pixel
        out = np.broadcast_to(arr, (n, t))
    elif arr.shape == (n, t):
        out = arr
    else:
        raise DataError(f"months must be an int (start month), shape ({n},) (start month per pixel), ({t},) "
                        f"(month of each step) or ({n}, {t}); got shape {arr.shape}")
    return np.ascontiguousarray(out, dtype=np.int64)


_S2_PRESTO = tuple(_S2_CUBE_NAME)


def check_presto_units(values: np.ndarray, bands: Sequence[str], missing: np.ndarray | None = None,
                       *, labels: Sequence[str] | None = None, stacklevel: int = 1) -> list[str]:
    """Warn (``UserWarning``) when raw Presto inputs look like the wrong units; returns the messages.

    ``values`` (..., C) raw values of the Presto ``bands`` (canonical names), ``missing`` (..., C) True where a
    value is not used; ``labels``: the caller's names of the bands (for the messages). Checks: S2 reflectance in
    0..1 instead of digital numbers (x 1e4); S1 in linear power instead of dB; temperature_2m in degrees Celsius
    instead of Kelvin. ``stacklevel`` 1 points the warning at the caller.
    """
    vals = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(vals) if missing is None else (~np.asarray(missing, dtype=bool) & np.isfinite(vals))
    msgs = []

    def valid(names):
        cols = [j for j, b in enumerate(bands) if b in names]
        if not cols:
            return [], np.empty(0)
        v = vals[..., cols][ok[..., cols]]
        return [(labels or bands)[j] for j in cols], v

    names, v = valid(_S2_PRESTO)
    if v.size and v.max() <= 2.0 and v.max() > 0:
        msgs.append(f"presto: S2 bands {names} look like reflectance in 0..1 (largest valid value {v.max():.3g}); "
                    "Presto expects digital numbers, reflectance x 10000 (e.g. 1234 for 0.1234): multiply them by "
                    "10000")
    names, v = valid(("VV", "VH"))
    if v.size and v.min() >= 0 and np.median(v) < 1.0:
        msgs.append(f"presto: S1 bands {names} look like linear power (all >= 0, median {np.median(v):.3g}); "
                    "Presto expects backscatter in dB (mostly -30..+5): convert with 10 * log10(x)")
    elif v.size and np.median(v) > 40:
        msgs.append(f"presto: S1 bands {names} do not look like dB (median {np.median(v):.3g}; dB backscatter is "
                    "mostly -30..+5); convert them to dB first")
    names, v = valid(("temperature_2m",))
    if v.size and v.max() < 150:
        msgs.append(f"presto: temperature_2m looks like degrees Celsius (largest valid value {v.max():.3g}); Presto "
                    "expects Kelvin: add 273.15")
    for m in msgs:
        warnings.warn(m, UserWarning, stacklevel=stacklevel + 1)
    return msgs


def presto_inputs(values: np.ndarray, band_names: Sequence[str], months, latlon: np.ndarray,
                  mask: np.ndarray | None = None, dynamic_world: np.ndarray | None = None,
                  nodata: float | None = None, *, warn_stacklevel: int = 2) -> dict[str, np.ndarray]:
    """Build Presto's model inputs from raw per-pixel series.

    values (N, T, C) raw units (module docstring) for ``band_names`` (Presto names such as "VV", "B2"/"B02",
    "temperature_2m"; a "<modality>/" prefix is ignored); months in 0..11 (0 = January): an int (start month of
    every pixel), (N,) (start month per pixel, as the original Presto), (T,) (month of each step, all pixels) or
    (N, T) (month of every step; a 1-D array with N == T is ambiguous and raises);
    latlon (N, 2) or (2,) degrees (lat, lon), NaN = unknown; mask (N, T, C) True = missing; dynamic_world
    (N, T) classes 0..8, 9 = missing (default: all missing); values equal to ``nodata`` or NaN are missing.
    Warns (``check_presto_units``) when values look like the wrong units (S2 0..1, S1 linear, Celsius).
    Returns numpy arrays: x (N, T, 17) float32, mask (N, T, 17) bool, dynamic_world (N, T) int64,
    month (N, T) int64, latlons (N, 2) float32, latlon_valid (N,) bool.
    """
    values = np.asarray(values)
    if values.ndim != 3:
        raise DataError(f"values must be (pixels, time steps, bands), got shape {values.shape}")
    n, t, c = values.shape
    names = list(band_names)
    if len(names) != c:
        raise DataError(f"values have {c} bands but {len(names)} band names were given ({names}); "
                        "pass one name per band of the last axis")
    if not 1 <= t <= MAX_SEQ_LEN:
        raise DataError(f"Presto takes 1..{MAX_SEQ_LEN} time steps, got {t}; subsample or split the series")
    canon = [_canonical_band(b) for b in names]
    dup = sorted({b for b in canon if canon.count(b) > 1})
    if dup:
        raise DataError(f"bands {dup} are given more than once in {names}; pass each band once")
    vals = values.astype(np.float64)
    missing_in = ~np.isfinite(vals)
    if nodata is not None:
        missing_in |= vals == nodata
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != values.shape:
            raise DataError(f"mask shape {mask.shape} differs from values shape {values.shape}")
        missing_in |= mask
    raw = np.zeros((n, t, len(PRESTO_RAW_BANDS)))
    miss = np.ones((n, t, len(PRESTO_BANDS)), dtype=bool)
    for j, b in enumerate(canon):
        k = PRESTO_BANDS.index(b)
        raw[:, :, k] = np.where(missing_in[:, :, j], 0.0, vals[:, :, j])
        miss[:, :, k] = missing_in[:, :, j]
    miss[:, :, -1] = miss[:, :, PRESTO_BANDS.index("B8")] | miss[:, :, PRESTO_BANDS.index("B4")]
    check_presto_units(vals, canon, missing_in, labels=names, stacklevel=warn_stacklevel)
    x = presto_normalise(raw)
    x[miss] = 0.0  # masked values never reach an unmasked token; zero them for tidiness
    ll = np.asarray(latlon, dtype=np.float64)
    if ll.shape == (2,):
        ll = np.broadcast_to(ll, (n, 2))
    if ll.shape != (n, 2):
        raise DataError(f"latlon must have shape ({n}, 2) (lat, lon in degrees) or (2,), got {ll.shape}")
    ll_valid = np.isfinite(ll).all(1)
    bad = ll_valid & ((np.abs(ll[:, 0]) > 90) | (np.abs(ll[:, 1]) > 360))
    if bad.any():
        raise DataError(f"latlon rows {np.flatnonzero(bad)[:5].tolist()} are out of range; expect (lat, lon) "
                        "in degrees, lat in [-90, 90]")
    if dynamic_world is None:
        dw = np.full((n, t), DW_MISSING, dtype=np.int64)
    else:
        dw = np.asarray(dynamic_world)
        if dw.shape != (n, t) or dw.min() < 0 or dw.max() > NUM_DW_CLASSES:
            raise DataError(f"dynamic_world must be ({n}, {t}) ints in 0..{NUM_DW_CLASSES} "
                            f"({DW_MISSING} = missing), got shape {dw.shape}")
        dw = dw.astype(np.int64)
    return {"x": x, "mask": miss, "dynamic_world": dw, "month": _months(months, n, t),
            "latlons": np.where(ll_valid[:, None], ll, 0.0).astype(np.float32), "latlon_valid": ll_valid}


def pixel_grid(height: int, width: int, pixels: str = "grid:16") -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the pixels to embed: ``"grid:N"`` = N x N cell centres, ``"all"`` = every pixel."""
    if pixels == "all":
        return np.arange(height), np.arange(width)
    kind, _, num = str(pixels).partition(":")
    if kind != "grid" or not num.isdigit() or int(num) < 1:
        raise ValueError(f"pixels={pixels!r} not understood; use 'grid:N' (e.g. 'grid:16') or 'all'")
    k = int(num)

    def axis(size: int) -> np.ndarray:
        if k >= size:
            return np.arange(size)
        return np.floor((np.arange(k) + 0.5) * size / k).astype(np.int64)

    return axis(height), axis(width)


# ------------------------------------------------------------------------------------------------ module
def _s2_keys(s2: str) -> tuple[str, ...]:
    return tuple(f"{s2}/{_S2_CUBE_NAME[b]}" for b in PRESTO_RAW_BANDS if b in _S2_CUBE_NAME)


def _presto_normalisation(s2: str) -> Normalisation:
    """Presto's ``(x + add) / div`` as a z-score (mean = -add, std = div) over the cube bands it reads."""
    keys = ("s1/VV", "s1/VH") + _s2_keys(s2)
    idx = [PRESTO_BANDS.index(b) for b in ("VV", "VH")] + [PRESTO_BANDS.index(b) for b in _S2_CUBE_NAME]
    return Normalisation(mean={k: -PRESTO_ADD[i] for k, i in zip(keys, idx)},
                         std={k: PRESTO_DIV[i] for k, i in zip(keys, idx)}, kind="zscore",
                         source="Presto (x + add) / div (nasaharvest/presto); NDVI recomputed from B8/B4; "
                                "ERA5, SRTM, Dynamic World masked")


def _pooling(pixels: str) -> str:
    return f"mean over pixels ({pixels}) of LayerNorm(mean of unmasked tokens)"


class PrestoEmbedder(Embedder):
    """Embedder for Presto: cube batches -> (B, embed_dim) "pixel_series" summaries (see the module docstring).

    ``spec.options``: ``s2`` ("s2l1c" | "s2l2a"), ``pixels`` ("grid:N" | "all"), ``chunk`` (series per encoder
    call), ``depth``, ``num_heads``, ``mlp_ratio``. Runs at ``precision`` (float32 by default; see eoembed.runtime).
    """

    def __init__(self, spec: ModelSpec, *, size: str = "full", preset: str | None = None,
                 missing_bands: str = "error") -> None:
        opts = dict(spec.options)
        s2, pixels = opts.get("s2", "s2l1c"), opts.get("pixels", "grid:16")
        if s2 not in ("s2l1c", "s2l2a"):
            raise ValueError(f"s2={s2!r}: use 's2l1c' (Presto's pretraining data) or 's2l2a'")
        pixel_grid(1, 1, pixels)  # validates
        backbone = PrestoBackbone(embed_dim=spec.width, depth=int(opts.get("depth", 2)),
                                  num_heads=int(opts.get("num_heads", 8)), mlp_ratio=float(opts.get("mlp_ratio", 4.0)))
        super().__init__(spec, backbone, size=size, preset=preset, missing_bands=missing_bands)
        self.s2, self.pixels, self.chunk = s2, pixels, int(opts.get("chunk", 8192))
        self._masked: set[str] = set()
        self.band_mapping = {b: (_S1_CUBE.get(b) or (f"{s2}/{_S2_CUBE_NAME[b]}" if b in _S2_CUBE_NAME else None))
                             for b in PRESTO_RAW_BANDS}

    @property
    def encoder(self) -> PrestoEncoder:
        return self.backbone.encoder

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    @property
    def metadata(self) -> dict:
        meta = super().metadata
        meta.update({"presto_band_mapping": dict(self.band_mapping), "s2": self.s2, "pixels": self.pixels,
                     "season_months": list(SEASON_MONTHS), "masked_bands": sorted(self._masked),
                     "missing_bands_policy": "mask (Presto masks absent bands natively)"})
        return meta

    def load_rules(self) -> LoadRules:
        """Checkpoint rules used by ``load_model``: file keys verbatim, ``decoder.*`` dropped by prefix."""
        return PRESTO_LOAD_RULES

    def load_weights(self, weights: str | os.PathLike | Mapping[str, torch.Tensor]) -> str:
        """Strictly load a checkpoint (see ``load_presto_weights``); sets and returns ``weights_id``."""
        found = None if isinstance(weights, Mapping) else _check_presto_file(weights)
        self.weights_id = (load_presto_weights(self.backbone, weights) if found is None else
                           _load_file(self.backbone, found))
        self.weights_info = {"id": self.weights_id, "dropped_prefixes": list(IGNORED_PREFIXES),
                             **(found.info() if found is not None else
                                {"verified": False, "verification": "in-memory state dict (no file to hash)"})}
        return self.weights_id

    def prepare(self, x: np.ndarray, band_keys: Sequence[str], lat: np.ndarray | None = None,
                lon: np.ndarray | None = None, missing_bands: str | None = None) -> dict[str, torch.Tensor]:
        """Cube batch (B, 4 seasons, C, H, W) in cube units -> CPU tensors of shape (B, P pixels, 4, ...).

        Presto bands absent from ``band_keys`` are masked (recorded in ``metadata["masked_bands"]``); at least one
        S2 band of the chosen ``s2`` modality must be present unless ``missing_bands="fill-mean"`` (then all S2
        bands are masked, as S2 nodata is).
        """
        x = np.asarray(x)
        keys = [str(k) for k in band_keys]
        if x.ndim != 5:
            raise DataError(f"presto: prepare expects x of shape (batch, season, band, y, x), got {x.shape}")
        b, s, c, h, w = x.shape
        if c != len(keys):
            raise DataError(f"presto: x has {c} bands but {len(keys)} band keys were given; pass the cube's "
                            "'band' coordinate in the order of x's band axis")
        if s != len(SEASON_MONTHS):
            raise DataError(f"presto: x has {s} seasons; the cube path needs the 4 seasons MAM, JJA, SON, DJF")
        if len(set(keys)) != len(keys):
            raise DataError(f"presto: duplicate band keys in {keys}")
        use = [(pb, keys.index(ck)) for pb, ck in self.band_mapping.items() if ck is not None and ck in keys]
        fill = (missing_bands or self.missing_bands) == "fill-mean"
        if not use or not (fill or any(pb in _S2_CUBE_NAME for pb, _ in use)):
            other = "s2l2a" if self.s2 == "s2l1c" else "s2l1c"
            raise DataError(f"presto: the input has no {self.s2} band Presto uses (bands: {keys}); use the "
                            f"preset for {other} (load_model('presto', preset='{other[2:]}')), add {self.s2} "
                            "bands or pass missing_bands='fill-mean' to mask them all (needs S1 bands)")
        with self._lock:
            self._masked.update(pb for pb, ck in self.band_mapping.items() if ck is not None and ck not in keys)
        rows, cols = pixel_grid(h, w, self.pixels)
        sub = x[:, :, [j for _, j in use]][..., rows, :][..., cols]  # (B, S, c, gh, gw)
        p = len(rows) * len(cols)
        series = sub.reshape(b, s, len(use), p).transpose(0, 3, 1, 2).reshape(b * p, s, len(use)).astype(np.float64)
        is_s2 = np.array([pb in _S2_CUBE_NAME for pb, _ in use])
        nodata = np.zeros(series.shape, dtype=bool)
        nodata[..., is_s2] = series[..., is_s2] == 0  # cube S2 nodata = 0
        lat = np.full(b, np.nan) if lat is None else np.asarray(lat, dtype=np.float64).reshape(-1)
        lon = np.full(b, np.nan) if lon is None else np.asarray(lon, dtype=np.float64).reshape(-1)
        if lat.shape != (b,) or lon.shape != (b,):
            raise DataError(f"presto: lat/lon need one value per sample ({b}), got {lat.shape} and {lon.shape}")
        ll = np.repeat(np.stack([lat, lon], 1), p, axis=0)
        months = np.broadcast_to(np.asarray(SEASON_MONTHS), (b * p, s))
        inp = presto_inputs(series, [pb for pb, _ in use], months, ll, mask=nodata, warn_stacklevel=3)
        return {k: torch.from_numpy(np.ascontiguousarray(v.reshape((b, p) + v.shape[1:]))) for k, v in inp.items()}

    def embed_series(self, x: torch.Tensor, mask: torch.Tensor, dynamic_world: torch.Tensor, month: torch.Tensor,
                     latlons: torch.Tensor, latlon_valid: torch.Tensor) -> torch.Tensor:
        """(N, T, 17) prepared series (on the model's device) -> (N, embed_dim), ``self.chunk`` series at a time."""
        outs = []
        with torch.no_grad(), runtime.compute(self.precision, x.device):
            for i in range(0, x.shape[0], self.chunk):
                sl = slice(i, i + self.chunk)
                outs.append(self.encoder(x[sl].float(), dynamic_world[sl], latlons[sl], month[sl], mask=mask[sl],
                                         latlon_valid=latlon_valid[sl]))
        return torch.cat(outs, 0) if outs else x.new_zeros((0, self.embed_dim))

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Prepared cube inputs (B, P, ...) -> (B, embed_dim): mean of the P pixel embeddings (NaN ones left out)."""
        b, p = inputs["x"].shape[:2]
        emb = self.embed_series(**{k: v.flatten(0, 1) for k, v in inputs.items()}).float().view(b, p, -1)
        ok = ~torch.isnan(emb).any(-1, keepdim=True)
        return torch.where(ok, emb, 0.0).sum(1) / ok.sum(1)  # 0/0 -> NaN for a sample without any valid pixel

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        missing = [k for k in PRESTO_INPUT_NAMES if k not in inputs]
        if missing:
            raise DataError(f"presto: forward() is missing inputs {missing}; pass the dict from prepare()")
        dev = self.device
        moved = {k: inputs[k].to(dev, non_blocking=True) for k in PRESTO_INPUT_NAMES}
        with torch.no_grad():
            return self.encode(moved).float()


PRESTO_INPUT_NAMES: tuple[str, ...] = ("x", "mask", "dynamic_world", "month", "latlons", "latlon_valid")

#: Registry entry. Presets: "l2a" reads S2 from the L2A bands; "all-pixels" embeds every pixel.
PRESTO_SPEC = ModelSpec(
    name="presto", family="presto",
    groups=(("s1", ("s1/VV", "s1/VH")), ("s2", _s2_keys("s2l1c"))),
    input_size=1, resize="native", normalisation=_presto_normalisation("s2l1c"),
    temporal="pixel_series", pooling=_pooling("grid:16"), width=PRESTO_EMBED_DIM, out_multiplier=1, licence="MIT",
    weight_sources=(WeightSource(filename=PRESTO_WEIGHTS_FILE, url=PRESTO_URL, revision=PRESTO_REVISION,
                                 sha256=PRESTO_SHA256, licence="MIT",
                                 note="Presto encoder+decoder (nasaharvest/presto data/default_model.pt); "
                                      "decoder.* dropped on load"),),
    embedder=PrestoEmbedder,
    options={"s2": "s2l1c", "pixels": "grid:16", "chunk": 8192, "depth": 2, "num_heads": 8, "mlp_ratio": 4.0},
    presets={
        "l2a": {"groups": (("s1", ("s1/VV", "s1/VH")), ("s2", _s2_keys("s2l2a"))),
                "normalisation": _presto_normalisation("s2l2a"), "options": {"s2": "s2l2a"}},
        "all-pixels": {"pooling": _pooling("all"), "options": {"pixels": "all"}},
    },
    tiny={"width": PRESTO_SIZES["tiny"]["embed_dim"],
          "options": {k: v for k, v in PRESTO_SIZES["tiny"].items() if k != "embed_dim"}},
    description="Presto (Tseng et al. 2023): pixel time-series transformer; cube seasons as 4 monthly steps "
                "(months 3, 6, 9, 0), per-pixel embeddings averaged over a 16x16 pixel grid.",
)

register(PRESTO_SPEC)


def build_presto(weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None, size: str = "full",
                 preset: str | None = None, device: str | torch.device = "cpu", *, s2: str | None = None,
                 pixels: str | None = None) -> PrestoEmbedder:
    """Presto embedder without the registry: ``weights`` = path / state dict (strict) or None (random).

    ``preset`` in {None, "l2a", "all-pixels"}; ``s2`` / ``pixels`` override the preset's options.
    """
    if size not in PRESTO_SIZES:
        raise ValueError(f"size={size!r}: use one of {list(PRESTO_SIZES)}")
    spec = PRESTO_SPEC.resolved(preset, size)
    if s2 is not None and s2 != spec.options["s2"]:
        if s2 not in ("s2l1c", "s2l2a"):
            raise ValueError(f"s2={s2!r}: use 's2l1c' (Presto's pretraining data) or 's2l2a'")
        spec = spec.replace(groups=(("s1", ("s1/VV", "s1/VH")), ("s2", _s2_keys(s2))),
                            normalisation=_presto_normalisation(s2), options={"s2": s2})
    if pixels is not None:
        spec = spec.replace(pooling=_pooling(pixels), options={"pixels": pixels})
    model = PrestoEmbedder(spec, size=size, preset=preset)
    if weights is not None:
        model.load_weights(weights)
    return model.to(device).eval()


def _default_model(weights, device) -> PrestoEmbedder:
    if weights is None or str(weights) != "auto":
        return build_presto(weights=weights, device=device)
    try:
        from eoembed.models import load_model
    except ImportError as err:
        raise WeightsNotFound(f"weights='auto' needs the model registry (eoembed.models.load_model): {err}; "
                              f"pass weights=<path to {PRESTO_WEIGHTS_FILE}> instead") from err
    return load_model("presto", weights="auto", device=device)


def presto_embed_pixels(values: np.ndarray, band_names: Sequence[str], months, latlon: np.ndarray,
                        mask: np.ndarray | None = None, batch_size: int = 4096, *, model: PrestoEmbedder | None = None,
                        weights: str | os.PathLike | None = "auto", dynamic_world: np.ndarray | None = None,
                        nodata: float | None = None, device: str | torch.device = "cpu",
                        progress: bool = True) -> np.ndarray:
    """Embed per-pixel time series (N, T, C) -> float32 (N, embed_dim); see ``presto_inputs`` for the inputs.

    values: raw units (S1 dB, S2 reflectance x 1e4, temperature K, ...; a warning names a likely unit mistake).
    months: int or (N,) start month per pixel (0 = January; step t is (start + t) % 12), (T,) month per step,
    or (N, T); a 1-D array with N == T raises (ambiguous). ``model``: a built Presto embedder (else one is
    built from ``weights``: a path, "auto" via the registry, or None for random weights). Pixels with no valid
    token (all masked and no location) give NaN rows.

    >>> emb = presto_embed_pixels(values, ["B02", "B03", "B04", "B08", "VV", "VH"], months=start, latlon=ll)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from tqdm.auto import tqdm

    inp = presto_inputs(values, band_names, months, latlon, mask=mask, dynamic_world=dynamic_world, nodata=nodata,
                        warn_stacklevel=3)
    model = model if model is not None else _default_model(weights, device)
    dev = model.device
    n = inp["x"].shape[0]
    out = np.empty((n, model.embed_dim), dtype=np.float32)
    with torch.inference_mode():
        for i in tqdm(range(0, n, batch_size), desc="presto pixels", disable=not progress):
            batch = {k: torch.from_numpy(np.ascontiguousarray(v[i:i + batch_size])).to(dev, non_blocking=True)
                     for k, v in inp.items()}
            out[i:i + batch_size] = model.embed_series(**batch).float().cpu().numpy()
    return out

