"""d-pixel observation series: per-pixel S2 and S1 sequences with day of year and validity (TESSERA inputs).

The **series form** is an ``xr.Dataset`` with one time axis per modality (S2 and S1 are observed on different days):

- ``s2`` float32 (pixel, s2_obs, s2_band): S2 L2A reflectance x 1e4 (digital numbers, no offset), NaN where invalid;
  bands in TESSERA order B04, B02, B03, B08, B8A, B05, B06, B07, B11, B12 (those a source lacks are absent and
  listed in ``attrs["missing_bands"]``, never invented);
- ``s2_doy`` int16 (pixel, s2_obs): day of year 1..366 of each observation; ``s2_valid`` bool (pixel, s2_obs):
  True = a clear observation. Cloud-masked / nodata steps are ``valid=False``: every consumer (views, buckets)
  DROPS them, none zero-fills them;
- ``s1`` float32 (pixel, s1_obs, s1_band) backscatter in dB (VV, VH); ``s1_doy``, ``s1_valid`` as for S2;
  ``s1_orbit`` int8 (pixel, s1_obs): 1 ascending, 2 descending, 0 unknown (monthly composites);
- coords ``id`` (pixel, unique str), ``lat`` / ``lon`` (pixel); for pixels of a grid also ``row`` / ``col``
  (pixel) and attrs ``grid_y`` / ``grid_x`` (pixel-centre coordinates) and ``crs``; labels as extra (pixel,)
  variables; ``attrs["source"]`` names the file.

Within a pixel the valid observations of each modality are in non-decreasing day-of-year order (a series that
crosses a year boundary, e.g. WorldCereal's Dec..Nov, is ordered by day of year: TESSERA's d-pixels are one
calendar year and the encoder sees days of year, not positions). :func:`validate_series` checks the form and
names the pixel / modality / band / file of any problem.

Sources: :func:`sample_series` (dense generated time series, 5-day S2 revisit with clouds, 6-day S1 asc/desc),
:func:`from_dpixels` (the ``eoembed.data`` d-pixel form: the 4-season generated sample via ``cube_to_pixels``,
the labelled WorldCereal pixels via ``worldcereal_pixels``), :func:`worldcereal_cube_series` (every pixel of the
WorldCereal monthly cube). :func:`save_series` / :func:`open_series` store the form as chunked Zarr and reopen it
lazily (dask); :func:`iter_chunks` reads one pixel chunk at a time, so a series store need not fit in memory.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from eoembed.data.pixels import attach_labels
from eoembed.errors import DataError, DataFileNotFound

#: S2 band order of TESSERA (not wavelength order).
S2_BANDS: tuple[str, ...] = ("B04", "B02", "B03", "B08", "B8A", "B05", "B06", "B07", "B11", "B12")
S1_BANDS: tuple[str, ...] = ("VV", "VH")
MODALITIES: tuple[str, ...] = ("s2", "s1")
ORBITS = {"unknown": 0, "ascending": 1, "descending": 2}


def _src(ds: xr.Dataset | dict) -> str:
    s = (ds.attrs if hasattr(ds, "attrs") else ds).get("source", "")
    return f" (file {s!r})" if s else ""


def make_series(ids: Sequence[Any], s2: np.ndarray | None = None, s2_doy: np.ndarray | None = None,
                s1: np.ndarray | None = None, s1_doy: np.ndarray | None = None, *,
                s2_valid: np.ndarray | None = None, s1_valid: np.ndarray | None = None,
                s1_orbit: np.ndarray | None = None, s2_bands: Sequence[str] = S2_BANDS,
                s1_bands: Sequence[str] = S1_BANDS, lat: np.ndarray | None = None, lon: np.ndarray | None = None,
                labels: pd.DataFrame | dict | None = None, attrs: dict | None = None,
                empty: str = "error") -> xr.Dataset:
    """Build (and validate) the series form from arrays.

    s2 (pixel, obs, bands) reflectance x 1e4; s1 (pixel, obs, 2) dB; doys (pixel, obs) or (obs,) 1..366; a
    modality may be None (absent). ``*_valid`` default: all bands finite. An observation with some bands missing
    is invalid as a whole (counted in ``attrs["n_partial_obs"]``). ``empty``: "error" (a pixel without any valid
    observation is a DataError naming it) or "keep" (allowed; :func:`eoembed.pixel.encode` flags it).
    """
    ids = [str(i) for i in ids]
    n = len(ids)
    data: dict[str, Any] = {}
    partial = {}
    bands_of = {"s2": [str(b) for b in s2_bands], "s1": [str(b) for b in s1_bands]}
    for mod, arr, doy, valid in (("s2", s2, s2_doy, s2_valid), ("s1", s1, s1_doy, s1_valid)):
        if arr is None:
            continue
        arr = np.asarray(arr, np.float32)
        bands = bands_of[mod]
        if arr.ndim != 3 or arr.shape[0] != n:
            raise DataError(f"{mod} values must be (pixel={n}, obs, band); got shape {arr.shape}{_src(attrs or {})}.")
        if arr.shape[2] != len(bands):
            raise DataError(f"{mod} values have {arr.shape[2]} bands but {len(bands)} band names were given "
                            f"({bands}){_src(attrs or {})}; pass {mod}_bands= naming each band in order.")
        allowed = S2_BANDS if mod == "s2" else S1_BANDS
        unknown = [b for b in bands if b not in allowed]
        if unknown or len(set(bands)) != len(bands):
            raise DataError(f"{mod} band names {bands} are not unique names from {allowed} (bad: {unknown}).")
        if doy is None:
            raise DataError(f"{mod} values given without {mod}_doy (day of year of each observation).")
        doy = np.asarray(doy)
        if doy.ndim == 1:
            doy = np.broadcast_to(doy[None], arr.shape[:2])
        if doy.shape != arr.shape[:2]:
            raise DataError(f"{mod}_doy has shape {doy.shape}; expected (pixel, obs) = {arr.shape[:2]}.")
        finite = np.isfinite(arr)
        v = finite.all(-1) if valid is None else np.asarray(valid, bool)
        if v.shape != arr.shape[:2]:
            raise DataError(f"{mod}_valid has shape {v.shape}; expected (pixel, obs) = {arr.shape[:2]}.")
        partial[mod] = int((v & ~finite.all(-1) & finite.any(-1)).sum())
        v = v & finite.all(-1)
        arr = np.where(v[..., None], arr, np.nan).astype(np.float32)
        data[mod] = ((("pixel", f"{mod}_obs", f"{mod}_band")), arr)
        data[f"{mod}_doy"] = (("pixel", f"{mod}_obs"), np.where(v, doy, 0).astype(np.int16))
        data[f"{mod}_valid"] = (("pixel", f"{mod}_obs"), v)
        if mod == "s1":
            orb = np.zeros(arr.shape[:2], np.int8) if s1_orbit is None else np.broadcast_to(
                np.asarray(s1_orbit, np.int8), arr.shape[:2])
            data["s1_orbit"] = (("pixel", "s1_obs"), np.asarray(orb, np.int8))
    if not any(m in data for m in MODALITIES):
        raise DataError("make_series needs s2 and/or s1 values.")
    coords = {"id": ("pixel", np.asarray(ids, dtype=object)),
              "lat": ("pixel", np.full(n, np.nan) if lat is None else np.asarray(lat, np.float64)),
              "lon": ("pixel", np.full(n, np.nan) if lon is None else np.asarray(lon, np.float64))}
    for mod in MODALITIES:
        if mod in data:
            coords[f"{mod}_band"] = (f"{mod}_band", np.asarray(bands_of[mod], dtype=object))
    a = dict(attrs or {})
    a["n_partial_obs"] = int(sum(partial.values()))
    a.setdefault("missing_bands", [b for b in S2_BANDS if "s2" in data and b not in bands_of["s2"]])
    ds = xr.Dataset(data, coords=coords, attrs=a)
    attach_labels(ds, labels)
    validate_series(ds, empty=empty)
    return ds


def validate_series(ds: xr.Dataset, empty: str = "error", max_report: int = 5) -> None:
    """Check the series form; DataError naming the pixel / modality / band / file and the fix.

    Checks: variables and dims, band names and counts, unique ids, valid steps finite, valid days of year in
    1..366 and non-decreasing within each pixel, and (``empty="error"``) that every pixel has a valid observation.
    Loads the arrays chunk by chunk for a lazy (dask) dataset.
    """
    if empty not in ("error", "keep"):
        raise DataError(f"empty={empty!r}; use 'error' or 'keep'.")
    where = _src(ds)
    mods = [m for m in MODALITIES if m in ds]
    if not mods:
        raise DataError(f"series dataset has neither 's2' nor 's1' values{where}; build it with "
                        "eoembed.pixel.make_series(...).")
    for m in mods:
        for v, dims in ((m, ("pixel", f"{m}_obs", f"{m}_band")), (f"{m}_doy", ("pixel", f"{m}_obs")),
                        (f"{m}_valid", ("pixel", f"{m}_obs"))):
            if v not in ds:
                raise DataError(f"series dataset lacks {v!r}{where}; build it with eoembed.pixel.make_series(...).")
            if tuple(ds[v].dims) != dims:
                raise DataError(f"series {v!r} has dims {tuple(ds[v].dims)}; expected {dims}{where}.")
        bands = [str(b) for b in ds[f"{m}_band"].values]
        allowed = S2_BANDS if m == "s2" else S1_BANDS
        if any(b not in allowed for b in bands) or len(set(bands)) != len(bands):
            raise DataError(f"{m} bands {bands} must be unique names from {allowed}{where}.")
    ids = pd.Index([str(i) for i in ds["id"].values])
    if ids.duplicated().any():
        raise DataError(f"duplicate pixel id(s) {ids[ids.duplicated()].tolist()[:max_report]}{where}; ids must be "
                        "unique.")
    n = ds.sizes["pixel"]
    has_obs = np.zeros(n, bool)
    step = 65536
    for a in range(0, n, step):
        sub = ds.isel(pixel=slice(a, a + step))
        for m in mods:
            vals = np.asarray(sub[m].values)
            valid = np.asarray(sub[f"{m}_valid"].values).astype(bool)
            doy = np.asarray(sub[f"{m}_doy"].values).astype(np.int32)
            bands = [str(b) for b in ds[f"{m}_band"].values]
            bad = valid[..., None] & ~np.isfinite(vals)
            if bad.any():
                p, t, b = np.argwhere(bad)[0]
                raise DataError(f"pixel {ids[a + p]!r}: {m} observation {t}, band {bands[b]!r} is marked valid but "
                                f"is NaN/inf{where}; set {m}_valid=False there.")
            out = valid & ((doy < 1) | (doy > 366))
            if out.any():
                p, t = np.argwhere(out)[0]
                raise DataError(f"pixel {ids[a + p]!r}: {m} observation {t} has day of year {doy[p, t]}, outside "
                                f"1..366{where}; give the day of year of each observation (1 = 1 January).")
            # non-decreasing over valid steps: compare each valid doy with the running max of the previous ones
            prev = np.maximum.accumulate(np.where(valid, doy, 0), axis=1)
            prev = np.concatenate([np.zeros((doy.shape[0], 1), np.int32), prev[:, :-1]], axis=1)
            uns = valid & (doy < prev)
            if uns.any():
                p, t = np.argwhere(uns)[0]
                raise DataError(f"pixel {ids[a + p]!r}: {m} days of year are not sorted (observation {t} has day "
                                f"{doy[p, t]} after day {prev[p, t]}){where}; order each pixel's observations by day "
                                "of year (np.argsort(doy, kind='stable') along the observation axis).")
            has_obs[a:a + len(sub["pixel"])] |= valid.any(1)
    if empty == "error" and not has_obs.all():
        bad = ids[~has_obs].tolist()
        raise DataError(f"{len(bad)} pixel(s) have no valid S2 or S1 observation (all masked), e.g. "
                        f"{bad[:max_report]}{where}; drop them (ds.isel(pixel=eoembed.pixel.has_observations(ds))) "
                        "or pass empty='keep' (encode() gives them NaN embeddings and a flag).")


def has_observations(ds: xr.Dataset) -> np.ndarray:
    """(pixel,) bool: True where the pixel has at least one valid observation in any modality."""
    out = np.zeros(ds.sizes["pixel"], bool)
    for m in MODALITIES:
        if m in ds:
            out |= np.asarray(ds[f"{m}_valid"].values).any(1)
    return out


def _sort_by_doy(vals: np.ndarray, valid: np.ndarray, doy: np.ndarray, *extra: np.ndarray):
    """Order each pixel's steps by day of year (invalid steps last, stable)."""
    key = np.where(valid, doy.astype(np.int32), 10_000)
    order = np.argsort(key, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order if a.ndim == 2 else order[..., None], axis=1)  # noqa: E731
    return (take(vals), take(valid), take(doy)) + tuple(take(e) for e in extra)


def from_dpixels(px: xr.Dataset, empty: str = "error", label_columns: Sequence[str] | None = None) -> xr.Dataset:
    """The ``eoembed.data`` d-pixel form (shared time axis, ``make_pixels`` / ``cube_to_pixels`` /
    ``worldcereal_pixels``) -> the series form.

    S2 from ``s2l2a`` bands (else ``s2l1c``) in TESSERA order, S1 from ``s1/VV``, ``s1/VH`` (orbit unknown). A time
    step is a valid observation of a modality when all its bands are valid there (partially valid steps are
    invalid, counted in ``attrs["n_partial_obs"]``). Steps are ordered by day of year. Pixel variables (labels)
    are kept (``label_columns`` selects them; default all).
    """
    from eoembed.data.pixels import validate_pixels

    validate_pixels(px)
    keys = [str(k) for k in px["band"].values]
    vals = np.asarray(px["values"].values, np.float32)
    valid = np.asarray(px["valid"].values, bool)
    if valid.ndim == 2:
        valid = np.broadcast_to(valid[..., None], vals.shape)
    doy = np.asarray(px["doy"].values)
    kw: dict[str, Any] = {}
    partial = 0
    s2mod = "s2l2a" if any(k.startswith("s2l2a/") for k in keys) else "s2l1c"
    for mod, prefix, order in (("s2", s2mod, S2_BANDS), ("s1", "s1", S1_BANDS)):
        idx = [keys.index(f"{prefix}/{b}") for b in order if f"{prefix}/{b}" in keys]
        if not idx:
            continue
        v = vals[:, :, idx]
        ok = valid[:, :, idx]
        step_ok = ok.all(-1)
        partial += int((ok.any(-1) & ~step_ok).sum())
        v = np.where(step_ok[..., None], v, np.nan)
        v, step_ok, d = _sort_by_doy(v, step_ok, doy)
        kw[mod], kw[f"{mod}_valid"], kw[f"{mod}_doy"] = v, step_ok, np.where(step_ok, d, 0)
        kw[f"{mod}_bands"] = [b for b in order if f"{prefix}/{b}" in keys]
    if "s2" not in kw and "s1" not in kw:
        raise DataError(f"the d-pixel dataset has no S2 or S1 bands (bands {keys}){_src(px)}.")
    cols = [str(v) for v in px.data_vars if v not in ("values", "valid") and px[v].dims == ("pixel",)]
    if label_columns is not None:
        miss = [c for c in label_columns if c not in cols]
        if miss:
            raise DataError(f"label column(s) {miss} are not pixel variables of the d-pixel dataset (it has {cols}).")
        cols = list(label_columns)
    labels = pd.DataFrame({c: px[c].values for c in cols}) if cols else None
    attrs = {"source": px.attrs.get("source", ""), "from": "d-pixel form",
             "missing_bands": [b for b in S2_BANDS if "s2" in kw and b not in kw["s2_bands"]]}
    ds = make_series(px["id"].values, lat=px["lat"].values, lon=px["lon"].values, labels=labels, attrs=attrs,
                     empty=empty, **kw)
    ds.attrs["n_partial_obs"] = int(ds.attrs["n_partial_obs"] + partial)
    return ds


def worldcereal_pixel_series(path: str | Path, empty: str = "error") -> xr.Dataset:
    """The labelled WorldCereal pixel extractions (.parquet) as series (12 monthly observations per modality,
    day of year = the 15th; B8A absent; labels such as ``sampling_label`` / ``ewoc_code`` kept)."""
    from eoembed.data.worldcereal import worldcereal_pixels

    px = worldcereal_pixels(path)
    keep = [v for v in px.data_vars if px[v].dims == ("pixel",)]
    return from_dpixels(px[["values", "valid", *keep]], empty=empty)


def worldcereal_cube_series(path: str | Path, window: Sequence[int] | None = None,
                            empty: str = "keep") -> xr.Dataset:
    """Every pixel of a WorldCereal monthly cube (.nc) as series: 12 monthly observations (day of year = the
    15th), S2 L2A bands present (B8A absent) and S1 VV/VH in dB; nodata (65535) months are invalid (dropped).
    Grid pixels carry ``row`` / ``col`` and attrs ``grid_y`` / ``grid_x`` / ``crs`` so :func:`encode` can write the
    gridded product. Pixels without any valid observation are kept (``empty="keep"``) and flagged by encode."""
    from eoembed.product.worldcereal import worldcereal_series
    from eoembed.data.worldcereal import _open_nc

    s = worldcereal_series(path, window)
    ds0 = _open_nc(Path(path))
    try:
        t = pd.DatetimeIndex(ds0["t"].values)
    finally:
        ds0.close()
    mid = t.to_period("M").to_timestamp() + pd.Timedelta(days=14)
    doy = np.asarray(mid.dayofyear, np.int16)
    h, w = s["lat"].shape
    n = h * w
    kw: dict[str, Any] = {}
    for mod, order in (("s2", S2_BANDS), ("s1", S1_BANDS)):
        have = [b for b in order if b in s["bands"]]
        if not have:
            continue
        v = s["values"][:, :, [s["bands"].index(b) for b in have]]
        ok = np.isfinite(v).all(-1)
        v, ok, d = _sort_by_doy(np.where(ok[..., None], v, np.nan), ok, np.broadcast_to(doy[None], (n, len(doy))))
        kw[mod], kw[f"{mod}_valid"], kw[f"{mod}_doy"], kw[f"{mod}_bands"] = v, ok, d, have
    rows, cols = np.divmod(np.arange(n), w)
    y0, _, x0, _ = s["window"]
    ids = [f"r{y0 + r:04d}_c{x0 + c:04d}" for r, c in zip(rows, cols)]
    ds = make_series(ids, lat=s["lat"].ravel(), lon=s["lon"].ravel(), empty=empty,
                     attrs={"source": str(path), "crs": s["crs"], "grid_y": [float(v) for v in s["y"]],
                            "grid_x": [float(v) for v in s["x"]], "window": list(s["window"])}, **kw)
    return ds.assign_coords(row=("pixel", rows.astype(np.int32)), col=("pixel", cols.astype(np.int32)))


# ---------------------------------------------------------------------------------------------------------------
# dense generated series
_CLASSES = ("forest", "soy", "corn", "wheat", "grassland", "urban", "bare", "water")


def _phen(table: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Periodic linear interpolation of per-season values (MAM, JJA, SON, DJF mid-days) at ``doy``.

    table (..., 4), doy broadcastable to (..., T) -> (..., T)."""
    from eoembed.data.synthetic import _DOY_MID
    mids = np.asarray(_DOY_MID, np.float64)
    order = np.argsort(mids)
    xm = np.concatenate([mids[order][-1:] - 365, mids[order], mids[order][:1] + 365])
    ym = np.asarray(table, np.float64)[..., order]
    ym = np.concatenate([ym[..., -1:], ym, ym[..., :1]], axis=-1)  # (..., 6)
    d = np.asarray(doy, np.float64)
    j = np.clip(np.searchsorted(xm, d, side="right") - 1, 0, len(xm) - 2)
    w = (d - xm[j]) / (xm[j + 1] - xm[j])
    shape = np.broadcast_shapes(ym.shape[:-1] + (1,), d.shape)
    ymb = np.broadcast_to(ym, shape[:-1] + (ym.shape[-1],))
    jb = np.broadcast_to(j, shape)
    lo = np.take_along_axis(ymb, jb, axis=-1)
    hi = np.take_along_axis(ymb, jb + 1, axis=-1)
    return lo + np.broadcast_to(w, shape) * (hi - lo)


def sample_series(n: int = 2000, seed: int = 0, s2_revisit: int = 5, s1_revisit: int = 6,
                  cloud: float = 0.45, year_days: int = 365) -> xr.Dataset:
    """A generated dense d-pixel dataset (the 4-season sample is too short for L ~ U{8..16} views).

    Each pixel draws a class of the generated sample (forest, soy, corn, wheat, grassland, urban, bare, water;
    the same spectra and phenology tables, interpolated over the year) and is observed by S2 every
    ``s2_revisit`` days (random phase; each observation cloudy with probability ``cloud`` x a seasonal factor ->
    ``valid=False``, values NaN: dropped, never zero-filled) and by S1 every ``s1_revisit`` days alternating
    ascending / descending (descending 0.5 dB darker), with 4.4-look speckle. Labels: ``landcover`` (class index,
    classification) and ``biomass`` (Mg/ha, regression). Deterministic given ``seed``.
    """
    from eoembed.data import synthetic as syn

    for name, v, lo in (("n", n, 1), ("s2_revisit", s2_revisit, 1), ("s1_revisit", s1_revisit, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise DataError(f"{name}={v!r}; use an integer >= {lo}.")
    if not 0 <= cloud < 1:
        raise DataError(f"cloud={cloud!r}; use a probability in [0, 1).")
    rng = np.random.default_rng([seed, 12])
    cls = rng.choice(len(_CLASSES), n, p=[.2, .15, .15, .15, .15, .07, .05, .08])
    l2a_idx = [list(syn.S2L1C_BANDS).index(b) for b in S2_BANDS]
    t2 = np.arange(1, year_days + 1, s2_revisit)
    t1 = np.arange(1, year_days + 1, s1_revisit)
    ph2 = rng.integers(0, s2_revisit, n)
    ph1 = rng.integers(0, s1_revisit, n)
    doy2 = np.minimum(t2[None] + ph2[:, None], year_days)
    doy1 = np.minimum(t1[None] + ph1[:, None], year_days)
    shift = rng.normal(0, 12, n)  # per-pixel phenology shift (days)
    decid = rng.uniform(0, 1, n)
    biomass = np.where(cls == 0, rng.uniform(40, 320, n), np.where(cls == 5, rng.uniform(5, 25, n), 0.0))
    g = _phen(syn._PHEN_GREEN[cls], (doy2 - shift[:, None]) % 365)  # (n, T2)
    gd = _phen(syn._PHEN_DECID[None], (doy2 - shift[:, None]) % 365)[0]
    g = np.where(cls[:, None] == 0, (1 - decid[:, None]) * .85 + decid[:, None] * gd, g)
    g = np.clip(g + rng.normal(0, .04, g.shape) * (g > .02), 0, .98)
    dry = np.minimum(_phen(syn._PHEN_DRY[cls], (doy2 - shift[:, None]) % 365), 1 - g)
    sm = np.clip(_phen(syn._SOIL_MOIST_SEASON[None], doy2 % 365)[0] * rng.uniform(.6, 1.4, (n, 1)), .03, .5)
    bg = (1 - g - dry) * np.where(np.isin(cls, (5, 7))[:, None], 1.0, 1 - .8 * sm)
    refl = (g[..., None] * syn._GREEN[cls][:, None, l2a_idx] + dry[..., None] * syn._DRY[None, None, l2a_idx]
            + bg[..., None] * syn._BACKGROUND[cls][:, None, l2a_idx])
    refl *= 1 + rng.normal(0, .015, refl.shape)
    s2 = np.clip(np.rint(refl * 1e4), 1, 25000).astype(np.float32)
    season = np.asarray([3, 3, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3])  # month -> MAM/JJA/SON/DJF index
    month = np.clip(((doy2 - 1) / 30.5).astype(int), 0, 11)
    pcloud = np.clip(cloud * syn._CLOUD_SEASON[season[month]] / syn._CLOUD_SEASON.mean(), 0, .95)
    ok2 = rng.random(doy2.shape) >= pcloud
    s2[~ok2] = np.nan
    # S1: volume (biomass / canopy) and soil moisture, as the generated sample; asc / desc alternate
    sm1 = np.clip(_phen(syn._SOIL_MOIST_SEASON[None], doy1 % 365)[0] * rng.uniform(.6, 1.4, (n, 1)), .03, .5)
    volc = _phen(syn._SAR_VOLUME[cls], (doy1 - shift[:, None]) % 365)
    vol = np.where(cls[:, None] == 0, biomass[:, None] * (.85 + .15 * _phen(syn._PHEN_DECID[None], doy1 % 365)[0]),
                   volc)
    sat = 1 - np.exp(-vol / 90)
    vv = -14 + 12 * sm1 + 5 * sat
    vh = -27 + 13 * sat + 4 * sm1
    vv = np.where(cls[:, None] == 5, -3.5, vv)
    vh = np.where(cls[:, None] == 5, -11.5, vh)
    vv = np.where(cls[:, None] == 7, -22 + 5 * rng.uniform(0, 1, vv.shape), vv)
    vh = np.where(cls[:, None] == 7, -29 + 3 * rng.uniform(0, 1, vh.shape), vh)
    orbit = np.where((np.arange(len(t1))[None] + ph1[:, None]) % 2 == 0, 1, 2).astype(np.int8)
    s1 = np.stack([vv, vh], -1) - 0.5 * (orbit == 2)[..., None]
    s1 = (s1 + 10 * np.log10(np.maximum(rng.gamma(4.4, 1 / 4.4, s1.shape), 1e-3))).astype(np.float32)
    ids = [f"px{seed}_{i:06d}" for i in range(n)]
    lat, lon = rng.uniform(38, 58, n), rng.uniform(-8, 24, n)
    labels = pd.DataFrame({"landcover": cls.astype(np.int64), "biomass": biomass.astype(np.float64)})
    return make_series(ids, s2, doy2, s1, doy1, s2_valid=ok2, s1_orbit=orbit, lat=lat, lon=lon, labels=labels,
                       attrs={"source": f"eoembed.pixel.sample_series(n={n}, seed={seed})", "classes": list(_CLASSES),
                              "task_types": {"landcover": "classification", "biomass": "regression"}},
                       empty="keep")


# ---------------------------------------------------------------------------------------------------------------
# storage and lazy chunked reading
def save_series(ds: xr.Dataset, path: str | Path, chunk: int = 4096, overwrite: bool = False) -> Path:
    """Write the series form as a Zarr store chunked along ``pixel`` (``chunk`` pixels per chunk)."""
    from eoembed.checks import check_out_path

    p = check_out_path(path, option="path", exist_ok=overwrite)
    validate_series(ds, empty="keep")
    out = ds.copy()
    for v in list(out.variables):
        if out[v].dtype == object:
            out[v] = out[v].astype(str).astype(object)
    out.attrs = {k: (v if not isinstance(v, np.ndarray) else v.tolist()) for k, v in out.attrs.items()}
    out.attrs["eoembed_series"] = 1
    enc = {v: {"chunks": (chunk,) + tuple(out[v].shape[1:])} for v in out.data_vars if out[v].dims[:1] == ("pixel",)}
    out.to_zarr(str(p), mode="w", consolidated=False, encoding=enc)
    return p


def open_series(path: str | Path) -> xr.Dataset:
    """Open a series store lazily (dask arrays, one chunk per stored pixel chunk)."""
    p = Path(path)
    if not p.exists():
        raise DataFileNotFound(f"series store {str(p)!r} does not exist; write one with eoembed.pixel.save_series.")
    ds = xr.open_zarr(str(p), consolidated=False)
    if "eoembed_series" not in ds.attrs:
        raise DataError(f"{str(p)!r} is not an eoembed series store (no 'eoembed_series' attribute).")
    ds = ds.assign_coords(id=("pixel", np.asarray([str(i) for i in ds["id"].values], dtype=object)))
    for m in MODALITIES:
        if f"{m}_band" in ds.coords:
            ds = ds.assign_coords({f"{m}_band": [str(b) for b in ds[f"{m}_band"].values]})
    ds.attrs.setdefault("source", str(p))
    return ds


def as_series(data: Any, empty: str = "keep") -> xr.Dataset:
    """Series form from a series Dataset, a series store path, a d-pixel Dataset, a WorldCereal .parquet / .nc,
    or the string "sample" / "sample:N" (generated dense series)."""
    if isinstance(data, xr.Dataset):
        if "values" in data and "band" in data.dims:
            return from_dpixels(data, empty=empty)
        validate_series(data, empty=empty)
        return data
    if isinstance(data, str) and data.startswith("sample"):
        n = int(data.partition(":")[2] or 2000)
        return sample_series(n)
    p = Path(data)
    if p.suffix == ".parquet":
        return worldcereal_pixel_series(p, empty=empty)
    if p.suffix == ".nc":
        return worldcereal_cube_series(p, empty=empty)
    if p.is_dir():
        ds = open_series(p)
        validate_series(ds, empty=empty)
        return ds
    raise DataFileNotFound(f"cannot read pixels from {str(data)!r}: give a series store (.zarr folder), a WorldCereal "
                           ".parquet / .nc, 'sample[:N]' or an xarray Dataset.")


def iter_chunks(ds: xr.Dataset, size: int) -> Iterator[tuple[int, xr.Dataset]]:
    """``(start, loaded chunk)`` over the pixels, ``size`` at a time (a lazy dataset is read chunk by chunk)."""
    n = ds.sizes["pixel"]
    for a in range(0, n, size):
        yield a, ds.isel(pixel=slice(a, min(a + size, n))).load()


def modality_arrays(ds: xr.Dataset, mod: str) -> dict[str, np.ndarray]:
    """{values (P, T, B) float32, doy (P, T) int, valid (P, T) bool, orbit (P, T) int} of a loaded dataset."""
    out = {"values": np.asarray(ds[mod].values, np.float32), "doy": np.asarray(ds[f"{mod}_doy"].values, np.int64),
           "valid": np.asarray(ds[f"{mod}_valid"].values, bool)}
    out["orbit"] = (np.asarray(ds["s1_orbit"].values, np.int64) if mod == "s1" and "s1_orbit" in ds
                    else np.zeros(out["doy"].shape, np.int64))
    return out
