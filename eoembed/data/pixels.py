"""The d-pixel form: time series of single pixels (TESSERA / Presto style inputs).

An ``xr.Dataset`` with dims ``("pixel", "time", "band")``:

- ``values`` float32 (pixel, time, band): cube units (S2 digital numbers without offset, S1 dB);
- ``valid`` bool (pixel, time, band): False where the value is missing (nodata, cloud-free flag not available);
- coords ``band`` (band keys), ``modality`` / ``band_name`` (band), ``doy`` (pixel, time; day of year 1..366 of the
  observation or of the mid-point of the season / month), ``id`` (pixel; str, unique), ``lat`` / ``lon`` (pixel),
  optional ``sample`` / ``y`` / ``x`` (pixel) for pixels drawn from a cube;
- labels as extra data variables with dim ``pixel``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from eoembed.data.bands import BANDS, SEASONS
from eoembed.data.cube import validate_cube
from eoembed.errors import DataError

#: Day of year of each season's mid-point (15 Apr, 15 Jul, 15 Oct, 15 Jan).
SEASON_DOY: dict[str, int] = {"MAM": 105, "JJA": 196, "SON": 288, "DJF": 15}



def attach_labels(ds: xr.Dataset, labels: Any) -> None:
    """Add one ``pixel`` variable per column of ``labels`` (a table with one row per pixel) to ``ds``, in place."""
    if labels is None:
        return
    lab = pd.DataFrame(labels)
    n = ds.sizes["pixel"]
    if len(lab) != n:
        raise DataError(f"labels have {len(lab)} rows but there are {n} pixels; give one row per pixel.")
    for c in lab.columns:
        ds[str(c)] = ("pixel", lab[c].to_numpy())

def make_pixels(values: np.ndarray, valid: np.ndarray | None, band_keys: Sequence[str], doy: np.ndarray,
                ids: Sequence[str], lat: np.ndarray | None = None, lon: np.ndarray | None = None,
                labels: pd.DataFrame | dict | None = None, attrs: dict | None = None) -> xr.Dataset:
    """Build (and validate) a d-pixel dataset. ``valid`` defaults to ``isfinite(values)``; ``doy`` is
    (pixel, time) or (time,) (then shared by all pixels); ``labels`` columns become pixel variables."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 3:
        raise DataError(f"d-pixel values must be (pixel, time, band); got shape {values.shape}.")
    n, t, _ = values.shape
    valid = np.isfinite(values) if valid is None else np.asarray(valid, dtype=bool)
    if valid.ndim == 2:
        valid = np.broadcast_to(valid[:, :, None], values.shape).copy()
    doy = np.asarray(doy)
    if doy.ndim == 1:
        doy = np.broadcast_to(doy[None], (n, t)).copy()
    keys = [str(k) for k in band_keys]
    nan = np.full(n, np.nan)
    ds = xr.Dataset(
        {"values": (("pixel", "time", "band"), values), "valid": (("pixel", "time", "band"), valid)},
        coords={"band": ("band", np.asarray(keys, dtype=object)),
                "modality": ("band", np.asarray([k.partition("/")[0] for k in keys], dtype=object)),
                "band_name": ("band", np.asarray([k.partition("/")[2] for k in keys], dtype=object)),
                "doy": (("pixel", "time"), doy.astype(np.int16)),
                "id": ("pixel", np.asarray([str(i) for i in ids], dtype=object)),
                "lat": ("pixel", nan if lat is None else np.asarray(lat, np.float64)),
                "lon": ("pixel", nan if lon is None else np.asarray(lon, np.float64))},
        attrs=dict(attrs or {}),
    )
    attach_labels(ds, labels)
    validate_pixels(ds)
    return ds


def validate_pixels(ds: xr.Dataset) -> None:
    """Check the d-pixel form; DataError naming the pixel / band and the fix."""
    for v, dims in (("values", ("pixel", "time", "band")), ("valid", None)):
        if v not in ds:
            raise DataError(f"d-pixel dataset lacks variable {v!r}; build it with eoembed.data.make_pixels(...).")
        if dims and tuple(ds[v].dims) != dims:
            raise DataError(f"d-pixel {v!r} has dims {tuple(ds[v].dims)}; expected {dims} "
                            f"(fix: ds[{v!r}] = ds[{v!r}].transpose{dims}).")
    if ds["valid"].dtype != bool or ds["valid"].dims[:2] != ("pixel", "time"):
        raise DataError("d-pixel 'valid' must be bool with dims (pixel, time[, band]).")
    if ds["values"].dtype != np.float32:
        raise DataError(f"d-pixel 'values' has dtype {ds['values'].dtype}; expected float32 (astype('float32')).")
    keys = [str(b) for b in ds["band"].values]
    bad = [k for k in keys if k.partition("/")[0] not in BANDS or k.partition("/")[2] not in BANDS[k.partition("/")[0]]]
    if bad or len(set(keys)) != len(keys):
        raise DataError(f"d-pixel band keys must be known and unique '<modality>/<band>' keys; bad: {bad or keys}.")
    ids = pd.Index([str(i) for i in ds["id"].values])
    if ids.duplicated().any():
        raise DataError(f"duplicate pixel id(s) {ids[ids.duplicated()].tolist()[:5]}; pixel ids must be unique.")
    doy = np.asarray(ds["doy"].values)
    if doy.size and (doy.min() < 1 or doy.max() > 366):
        raise DataError(f"d-pixel 'doy' outside 1..366 (min {doy.min()}, max {doy.max()}); give the day of year.")
    vals = np.asarray(ds["values"].values)
    valid = np.asarray(ds["valid"].values)
    if valid.ndim == 2:
        valid = np.broadcast_to(valid[:, :, None], vals.shape)
    bad_valid = valid & ~np.isfinite(vals)
    if bad_valid.any():
        p, t, b = np.argwhere(bad_valid)[0]
        raise DataError(f"pixel {ids[p]!r}, time {t}, band {keys[b]!r} is marked valid but is NaN/inf; set "
                        "valid=False there.")


def cube_to_pixels(cube: xr.Dataset, n_per_sample: int = 16, seed: int = 0, labels: pd.DataFrame | None = None,
                   bands: Sequence[str] | None = None) -> xr.Dataset:
    """Draw ``n_per_sample`` random pixels from each sample of a cube into the d-pixel form (time = 4 seasons,
    ``doy`` = season mid-points). ``valid`` is False for NaN and for S2 zeros (nodata). Sample-level ``labels``
    (DataFrame indexed by id) are copied to each pixel drawn from that sample."""
    validate_cube(cube, nodata="mask", missing_seasons="allow", check_values=False)
    if n_per_sample < 1:
        raise DataError(f"n_per_sample={n_per_sample}; draw at least one pixel per sample.")
    da = cube["bands"] if bands is None else cube["bands"].sel(band=list(bands))
    keys = [str(b) for b in da["band"].values]
    ns, ny, nx = cube.sizes["sample"], cube.sizes["y"], cube.sizes["x"]
    if n_per_sample > ny * nx:
        raise DataError(f"n_per_sample={n_per_sample} exceeds the {ny * nx} pixels of each sample.")
    rng = np.random.default_rng(seed)
    flat = np.stack([rng.choice(ny * nx, n_per_sample, replace=False) for _ in range(ns)])
    yy, xx = flat // nx, flat % nx
    sidx = np.repeat(np.arange(ns), n_per_sample)
    yv, xv = yy.ravel(), xx.ravel()
    vals = da.isel(sample=xr.DataArray(sidx, dims="pixel"), y=xr.DataArray(yv, dims="pixel"),
                   x=xr.DataArray(xv, dims="pixel")).transpose("pixel", "season", "band").values.astype(np.float32)
    s2 = np.asarray([k.partition("/")[0] in ("s2l1c", "s2l2a") for k in keys])
    valid = np.isfinite(vals) & ~((vals == 0) & s2[None, None, :])
    sids = np.asarray([str(s) for s in cube["sample"].values])
    ids = [f"{sids[s]}:{y}:{x}" for s, y, x in zip(sidx, yv, xv)]
    doy = np.asarray([SEASON_DOY[s] for s in SEASONS])
    lab = None
    if labels is not None:
        missing = [s for s in sids if s not in labels.index]
        if missing:
            raise DataError(f"labels lack sample id(s) {missing[:5]} ({len(missing)} in all); pass labels for every "
                            "cube sample or select those samples first.")
        lab = labels.loc[sids[sidx]].reset_index(drop=True)
    ds = make_pixels(vals, valid, keys, doy, ids, lat=cube["lat"].values[sidx], lon=cube["lon"].values[sidx],
                     labels=lab, attrs={"source": cube.attrs.get("source", ""), "time": "season"})
    ds = ds.assign_coords(sample=("pixel", sids[sidx].astype(object)), y=("pixel", yv), x=("pixel", xv),
                          time=("time", list(SEASONS)))
    return ds
