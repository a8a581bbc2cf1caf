"""The cube form: construction, validation and band selection of multi-season image cubes.

A cube is an ``xr.Dataset`` with data variable ``"bands"`` (float32, dims ``sample, season, band, y, x``),
coordinates ``sample`` (unique str ids), ``season`` (``MAM, JJA, SON, DJF``), ``band`` (band keys such as
``"s2l2a/B04"``), ``modality`` / ``band_name`` (dim ``band``), ``lat`` / ``lon`` (dim ``sample``, degrees,
NaN where unknown) and attrs ``source`` and ``missing_bands``. S2 values are raw digital numbers without the
+1000 offset (0 = nodata); S1 values are in dB.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from eoembed.data.bands import BANDS, SEASONS, all_band_keys
from eoembed.errors import DataError

DIMS: tuple[str, ...] = ("sample", "season", "band", "y", "x")

#: Plausible value ranges per modality (inclusive). S2: digital numbers without offset (0 = nodata;
#: bright clouds and snow reach ~20000, 65535 is an unconverted nodata marker). S1: backscatter in dB.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "s1": (-60.0, 30.0), "s2l1c": (0.0, 25000.0), "s2l2a": (0.0, 25000.0),
}

_MAX_LISTED = 5


def _names(items: Sequence[Any], n: int = _MAX_LISTED) -> str:
    items = list(items)
    shown = ", ".join(repr(str(i)) for i in items[:n])
    return shown + (f" ... ({len(items)} in all)" if len(items) > n else "")


def make_cube(values: Any, ids: Sequence[str], band_keys: Sequence[str], *, lat: Any = None, lon: Any = None,
              source: str = "", missing_bands: Sequence[str] | None = None, validate: bool = True,
              nodata: str = "error") -> xr.Dataset:
    """Build a cube from a (sample, 4 seasons, band, y, x) array (numpy or dask) and its ids / band keys.

    ``missing_bands`` defaults to the bands of each present modality that are not in ``band_keys``.
    The cube is validated (``validate_cube``) unless ``validate=False``.
    """
    if values.ndim != 5:
        raise DataError(f"cube values must be 5-D (sample, season, band, y, x); got shape {tuple(values.shape)}. "
                        "Add missing axes, e.g. values[:, None] for a single season.")
    if values.dtype != np.float32:
        check_dtype(values.dtype, band_keys)
        values = values.astype(np.float32)
    n = values.shape[0]
    keys = [str(k) for k in band_keys]
    lat = np.full(n, np.nan) if lat is None else np.asarray(lat, dtype=np.float64)
    lon = np.full(n, np.nan) if lon is None else np.asarray(lon, dtype=np.float64)
    mods = [k.partition("/")[0] for k in keys]
    if missing_bands is None:
        present = {m for m in mods if m in BANDS}
        missing_bands = [k for k in all_band_keys(tuple(m for m in BANDS if m in present)) if k not in keys]
    cube = xr.Dataset(
        {"bands": (DIMS, values)},
        coords={
            "sample": ("sample", np.asarray([str(i) for i in ids], dtype=object)),
            "season": ("season", list(SEASONS)[: values.shape[1]] if values.shape[1] <= 4 else
                       [f"t{i}" for i in range(values.shape[1])]),
            "band": ("band", np.asarray(keys, dtype=object)),
            "modality": ("band", np.asarray(mods, dtype=object)),
            "band_name": ("band", np.asarray([k.partition("/")[2] for k in keys], dtype=object)),
            "lat": ("sample", lat), "lon": ("sample", lon),
        },
        attrs={"source": str(source), "missing_bands": list(missing_bands)},
    )
    if validate:
        validate_cube(cube, nodata=nodata)
    return cube


def select_bands(cube: xr.Dataset, keys: Sequence[str]) -> xr.DataArray:
    """The cube's ``bands`` restricted to ``keys`` in the given order, dims (sample, season, band, y, x).

    Raises DataError listing every requested key the cube lacks (and whether the source lacks it).
    """
    if isinstance(keys, str):
        keys = [keys]
    keys = [str(k) for k in keys]
    have = [str(b) for b in cube["band"].values]
    missing = [k for k in keys if k not in have]
    if missing:
        src_missing = set(cube.attrs.get("missing_bands", []))
        absent_in_source = [k for k in missing if k in src_missing]
        extra = (f" The source ({cube.attrs.get('source', '?')!r}) does not have {_names(absent_in_source)}."
                 if absent_in_source else "")
        raise DataError(f"cube lacks band(s) {missing}; it has {have}.{extra} Choose bands the cube has, or open "
                        "the cube with the modalities that contain them (open_cube(..., modalities=...)).")
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise DataError(f"band(s) {dup} requested more than once; pass each band key once.")
    return cube["bands"].sel(band=keys)


def _check_structure(cube: xr.Dataset) -> None:
    if not isinstance(cube, xr.Dataset):
        raise DataError(f"expected an xr.Dataset cube, got {type(cube).__name__}; build one with "
                        "eoembed.data.make_cube(values, ids, band_keys) or open one with eoembed.data.open_cube(root).")
    if "bands" not in cube.data_vars:
        raise DataError(f"cube has no data variable 'bands' (variables: {list(cube.data_vars)}); "
                        "rename the image variable to 'bands'.")
    da = cube["bands"]
    if tuple(da.dims) != DIMS:
        raise DataError(f"cube['bands'] has dims {tuple(da.dims)}; expected {DIMS}. "
                        f"Fix with cube['bands'] = cube['bands'].transpose{DIMS}.")
    if not np.issubdtype(da.dtype, np.floating):
        keys = [str(b) for b in cube["band"].values] if "band" in cube.coords else []
        check_dtype(da.dtype, keys)
        raise DataError(f"cube['bands'] has dtype {da.dtype}; expected float32 (S2 digital numbers / S1 dB as floats). "
                        "Fix with cube['bands'] = cube['bands'].astype('float32').")
    for c in ("sample", "season", "band", "modality", "band_name", "lat", "lon"):
        if c not in cube.coords:
            raise DataError(f"cube lacks coordinate {c!r}; build cubes with eoembed.data.make_cube(...) "
                            "which sets sample/season/band/modality/band_name/lat/lon.")
    seasons = [str(s) for s in cube["season"].values]
    if seasons != list(SEASONS):
        raise DataError(f"cube season coordinate is {seasons}; expected exactly {list(SEASONS)} in this order "
                        "(file time index 0..3). Missing seasons must be present as NaN with nodata='mask', "
                        "not left out; reorder with cube.sel(season=list(SEASONS)).")
    ids = [str(s) for s in cube["sample"].values]
    if any(not s for s in ids):
        raise DataError("cube has empty sample id(s); give every sample a non-empty str id.")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = sorted({s for s in ids if s in seen or seen.add(s)})
        raise DataError(f"duplicate sample id(s) {_names(dup)} in the cube; ids must be unique. "
                        "Drop repeated samples (cube.drop_duplicates('sample')) or rename them.")


def _check_bands(cube: xr.Dataset) -> None:
    keys = [str(b) for b in cube["band"].values]
    bad = [k for k in keys if k.partition("/")[0] not in BANDS or k.partition("/")[2] not in BANDS[k.partition("/")[0]]]
    if bad:
        raise DataError(f"unknown band key(s) {bad}; band keys are '<modality>/<band>' with modality in "
                        f"{list(BANDS)} (e.g. 's2l2a/B04', 's1/VV'). Rename the band coordinate.")
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise DataError(f"band key(s) {dup} appear more than once in the cube; keep one copy of each band.")
    mods = [str(m) for m in cube["modality"].values]
    names = [str(m) for m in cube["band_name"].values]
    for k, m, b in zip(keys, mods, names):
        if k != f"{m}/{b}":
            raise DataError(f"band {k!r} has modality {m!r} and band_name {b!r} coordinates that disagree with its key; "
                            "rebuild the cube with eoembed.data.make_cube so the coordinates are derived from the keys.")
    missing = cube.attrs.get("missing_bands", [])
    if isinstance(missing, str):
        missing = [missing]
    missing = [str(m) for m in missing]
    both = [k for k in keys if k in missing]
    if both:
        raise DataError(f"band(s) {both} are in the cube AND listed in attrs['missing_bands']; remove them from "
                        "attrs['missing_bands'].")
    for m in dict.fromkeys(mods):
        absent = [f"{m}/{b}" for b in BANDS[m] if f"{m}/{b}" not in keys and f"{m}/{b}" not in missing]
        if absent:
            raise DataError(f"modality {m!r} is incomplete: band(s) {absent} are neither in the cube nor listed in "
                            "attrs['missing_bands']. Add the bands, or list them in cube.attrs['missing_bands'] "
                            "if the source does not have them (never invent them).")


def _check_latlon(cube: xr.Dataset) -> None:
    ids = np.asarray([str(s) for s in cube["sample"].values])
    for name, lim in (("lat", 90.0), ("lon", 180.0)):
        c = cube[name]
        if tuple(c.dims) != ("sample",):
            raise DataError(f"coordinate {name!r} has dims {tuple(c.dims)}; expected ('sample',).")
        v = np.asarray(c.values, dtype=np.float64)
        bad = np.isfinite(v) & (np.abs(v) > lim) | np.isinf(v)
        if bad.any():
            raise DataError(f"{name} out of range [-{lim:g}, {lim:g}] for sample(s) {_names(ids[bad])} "
                            f"(values {v[bad][:3].tolist()}); give {name} in WGS84 degrees (reproject from "
                            "projected metres, or swap lat/lon), or NaN where unknown.")


def _stats(da: xr.DataArray) -> dict[str, np.ndarray]:
    """Per (sample, season, band) min, max, count of NaN, of +-inf and of non-NaN values, in one pass."""
    data = da.data
    if hasattr(data, "dask"):
        import dask
        import dask.array as dsa
        finite = dsa.isfinite(data)
        nan = dsa.isnan(data)
        masked = dsa.where(finite, data, np.nan)
        out = dask.compute(dsa.nanmin(masked, axis=(3, 4)), dsa.nanmax(masked, axis=(3, 4)),
                           nan.sum(axis=(3, 4)), (~finite & ~nan).sum(axis=(3, 4)), finite.sum(axis=(3, 4)))
    else:
        data = np.asarray(data)
        finite = np.isfinite(data)
        nan = np.isnan(data)
        masked = np.where(finite, data, np.nan)
        with np.errstate(all="ignore"):
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out = (np.nanmin(masked, axis=(3, 4)), np.nanmax(masked, axis=(3, 4)),
                       nan.sum(axis=(3, 4)), (~finite & ~nan).sum(axis=(3, 4)), finite.sum(axis=(3, 4)))
    return dict(zip(("min", "max", "nan", "inf", "n"), (np.asarray(o) for o in out)))


#: S2 reflectance scaled 0..1 instead of digital numbers: a sample whose S2 maximum is at most this is rejected
#: (digital numbers of a whole sample never stay this dark; 0 = nodata does not count).
S2_REFLECTANCE_MAX = 2.0
S2_MODALITIES = ("s2l1c", "s2l2a")


def check_dtype(dtype: Any, band_keys: Sequence[str], where: str = "") -> None:
    """DataError when a cube's dtype cannot hold its sensors' units: 8-bit or boolean values, or integer S1
    (S1 is float dB, negative for most pixels). uint16 / int16 / int32 S2 digital numbers are fine."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return
    mods = {str(k).partition("/")[0] for k in band_keys}
    if dt.kind == "b" or (dt.kind in "iu" and dt.itemsize == 1):
        raise DataError(f"cube values are {dt} (8-bit){where}: this cannot hold S2 digital numbers (0..~20000) or "
                        "S1 dB; it looks like a quantised picture. Use the original values: S2 as digital numbers "
                        "(uint16 or float32), S1 as float32 dB.")
    if dt.kind == "c":
        raise DataError(f"cube values are complex ({dt}){where}; S1 must be backscatter intensity in dB: convert "
                        "with 10*log10(abs(v)**2), S2 must be digital numbers.")
    if dt.kind in "iu" and "s1" in mods:
        raise DataError(f"cube values are integers ({dt}){where} but S1 must be float dB (mostly negative): "
                        "integer S1 is stored scaled or linear; convert it (WorldCereal: dB = 20*log10(v) - 83; "
                        "linear power: 10*log10(v)) and store float32.")
    if dt.kind not in "iu":
        raise DataError(f"cube values have dtype {dt}{where}; use float32 (S2 digital numbers, S1 dB).")


def unit_problems(mins: np.ndarray, maxs: np.ndarray, band_keys: Sequence[str]) -> dict[int, str]:
    """Samples whose values are in the wrong units: ``{sample index: message with the conversion to apply}``.

    mins / maxs: (sample, band) min / max of the finite values (NaN where a band has none). S2 whose sample
    maximum is in (0, 2] is 0..1 reflectance (multiply by 10000); S1 whose values are all >= 0 is linear power or
    amplitude, not dB (10*log10(v), amplitude 20*log10(v)).
    """
    keys = [str(k) for k in band_keys]
    mods = np.asarray([k.partition("/")[0] for k in keys], dtype=object)
    out: dict[int, str] = {}
    with np.errstate(all="ignore"):
        s2 = np.isin(mods, S2_MODALITIES)
        if s2.any():
            mx = np.nanmax(np.where(np.isnan(maxs[:, s2]), -np.inf, maxs[:, s2]), axis=1)
            for i in np.flatnonzero((mx > 0) & (mx <= S2_REFLECTANCE_MAX)):
                out[int(i)] = (f"S2 values are at most {float(mx[i]):.3g}: they look like 0..1 reflectance, but S2 "
                               "must be digital numbers (reflectance x 10000, 0 = nodata); multiply by 10000")
        s1 = mods == "s1"
        if s1.any():
            mn = np.nanmin(np.where(np.isnan(mins[:, s1]), np.inf, mins[:, s1]), axis=1)
            mx1 = np.nanmax(np.where(np.isnan(maxs[:, s1]), -np.inf, maxs[:, s1]), axis=1)
            for i in np.flatnonzero(np.isfinite(mn) & (mn >= 0)):
                msg = (f"S1 values are all >= 0 ({float(mn[i]):.3g}..{float(mx1[i]):.3g}): they look like linear power "
                       "or amplitude, but S1 must be backscatter in dB (mostly negative); convert with 10*log10(v) "
                       "(amplitude: 20*log10(v)), NaN where v <= 0")
                out[int(i)] = f"{out[int(i)]}; {msg}" if int(i) in out else msg
    return out


def _check_values(st: dict[str, np.ndarray], ids: np.ndarray, keys: list[str], nodata: str, missing_seasons: str,
                  where: str) -> None:
    """NaN / inf and whole-season gaps, from the per (sample, season, band) statistics ``st``."""
    if st["inf"].any():
        s, t, b = np.argwhere(st["inf"] > 0)[0]
        raise DataError(f"infinite values in sample {str(ids[s])!r}, season {SEASONS[t]}, band {keys[b]!r}{where} "
                        f"({int(st['inf'].sum())} values in all); inf usually comes from log10(0) when converting S1 "
                        "to dB: set those pixels to NaN and validate with nodata='mask'.")
    if nodata == "error" and st["nan"].any():
        s, t, b = np.argwhere(st["nan"] > 0)[0]
        raise DataError(f"NaN values in sample {str(ids[s])!r}, season {SEASONS[t]}, band {keys[b]!r}{where} "
                        f"({int(st['nan'].sum())} values in all); pass nodata='mask' to accept NaN as missing values, "
                        "or fill them explicitly.")
    mods = np.asarray([k.partition("/")[0] for k in keys], dtype=object)
    if missing_seasons == "error":
        empty = st["n"] == 0  # (sample, season, band)
        s2 = np.isin(mods, S2_MODALITIES)
        if s2.any():
            zero = (st["max"] == 0) & (st["min"] == 0)
            empty = empty | (zero & s2[None, None, :])
        full = empty.all(axis=2)
        if full.any():
            s, t = np.argwhere(full)[0]
            raise DataError(f"season {SEASONS[t]} of sample {str(ids[s])!r}{where} has no data in any band (all NaN / "
                            f"S2 all zero; {int(full.sum())} sample-seasons in all); drop the sample, or pass "
                            "missing_seasons='allow' (with nodata='mask') if models should see the gap.")


def _check_units(st: dict[str, np.ndarray], ids: np.ndarray, keys: list[str], where: str) -> None:
    """DataError naming the samples whose values are in the wrong units (see :func:`unit_problems`)."""
    import warnings
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        units = unit_problems(np.nanmin(st["min"], axis=1), np.nanmax(st["max"], axis=1), keys)
    if units:
        i = min(units)
        raise DataError(f"sample {str(ids[i])!r}{where}: {units[i]} ({len(units)} sample(s) in all, e.g. "
                        f"{_names(ids[sorted(units)])}).")


def _value_ranges(st: dict[str, np.ndarray], ids: np.ndarray, keys: list[str],
                  ranges: dict[str, tuple[float, float]], where: str) -> dict[str, tuple[float, float]]:
    """Per-modality (min, max); DataError naming the sample / season / band outside the plausible range."""
    mods = np.asarray([k.partition("/")[0] for k in keys], dtype=object)
    out = {}
    for m in dict.fromkeys(str(x) for x in mods):
        sel = mods == m
        lo, hi = ranges[m]
        with np.errstate(all="ignore"):
            mn, mx = st["min"][:, :, sel], st["max"][:, :, sel]
        bad = (mn < lo) | (mx > hi)
        if bad.any():
            s, t, b = np.argwhere(bad)[0]
            bk = np.asarray(keys)[sel][b]
            v = mn[s, t, b] if mn[s, t, b] < lo else mx[s, t, b]
            hint = ("S1 must be in dB: convert linear power with 10*log10(v) (amplitude: 20*log10(v); WorldCereal's "
                    "scaled integers: 20*log10(v) - 83); missing values must be NaN, not a fill value." if m == "s1"
                    else "S2 must be raw digital numbers without the +1000 offset, 0 = nodata: "
                    "convert 65535 / fill values to 0, multiply 0..1 reflectance by 10000, subtract a +1000 offset.")
            raise DataError(f"value {float(v):g} outside the plausible range [{lo:g}, {hi:g}] for {m} in sample "
                            f"{str(ids[s])!r}, season {SEASONS[t]}, band {str(bk)!r}{where}. {hint}")
        if (~np.isfinite(mn)).all():
            out[m] = (float("nan"), float("nan"))
        else:
            out[m] = (float(np.nanmin(mn)), float(np.nanmax(mx)))
    return out


def validate_cube(cube: xr.Dataset, nodata: Literal["error", "allow", "mask"] = "error", *,
                  missing_seasons: Literal["error", "allow"] = "error", check_values: bool = True,
                  value_ranges: dict[str, tuple[float, float]] | None = None, name: str | None = None) -> dict:
    """Check a cube against the cube contract; raise DataError naming the sample / band / file and the fix.

    Checks dims order, float dtype, coordinates, band keys (known, unique, each modality complete or listed in
    ``attrs['missing_bands']``), the season coordinate, unique ids, lat/lon ranges and, with ``check_values``
    (reads all values once; lazy cubes are streamed), NaN/inf, whole-season gaps, units (S2 digital numbers, not
    0..1 reflectance; S1 dB, not linear power) and value ranges.

    nodata: ``"error"`` (default) raises on any NaN; ``"mask"`` / ``"allow"`` accepts NaN as missing values
    (inf always raises). S2 zeros are the sensor's nodata and are always accepted.
    missing_seasons: ``"error"`` raises when a sample has a season that is entirely NaN (or S2 all zero).
    Returns a small report dict (n_samples, bands, shape, missing_bands, value_range per modality, nan_fraction).
    """
    if nodata not in ("error", "allow", "mask"):
        raise DataError(f"nodata={nodata!r}; use 'error' (NaN raises) or 'mask' / 'allow' (NaN marks missing values).")
    if missing_seasons not in ("error", "allow"):
        raise DataError(f"missing_seasons={missing_seasons!r}; use 'error' or 'allow'.")
    where = f" (in {name})" if name else (f" (in {cube.attrs['source']})" if isinstance(cube, xr.Dataset)
                                          and cube.attrs.get("source") else "")
    try:
        _check_structure(cube)
        _check_bands(cube)
        _check_latlon(cube)
    except DataError as e:
        raise DataError(f"{e}{where}") from None
    keys = [str(b) for b in cube["band"].values]
    ids = np.asarray([str(s) for s in cube["sample"].values])
    report: dict[str, Any] = {"n_samples": len(ids), "bands": keys, "shape": tuple(int(s) for s in cube["bands"].shape),
                              "missing_bands": list(cube.attrs.get("missing_bands", [])), "source": cube.attrs.get("source", "")}
    if not check_values or cube["bands"].size == 0:
        return report
    st = _stats(cube["bands"])
    _check_values(st, ids, keys, nodata, missing_seasons, where)
    report["value_range"] = _value_ranges(st, ids, keys, {**VALUE_RANGES, **(value_ranges or {})}, where)
    _check_units(st, ids, keys, where)
    report["nan_fraction"] = float(st["nan"].sum() / max(cube["bands"].size, 1))
    return report
