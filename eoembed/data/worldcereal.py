"""Adapters for real WorldCereal data: a monthly openEO image cube (.nc) and labelled pixel extractions (.parquet).

``worldcereal_cube`` turns the monthly cube into the cube form:

- seasons: months are grouped into MAM (3-5), JJA (6-8), SON (9-11), DJF (12-2), whatever their year (the test
  file covers 2020-11..2021-10, so each calendar month appears once). Each season is the mean of its *valid*
  months per pixel and band; 65535 marks nodata and is excluded. S2 pixels without any valid month in a season
  become 0 (the S2 nodata value of the cube form); S1 pixels without valid month become NaN.
- S2 L2A bands B02..B08, B11, B12 are reflectance x 1e4 = digital numbers without offset (kept as is).
- S1 is stored scaled: dB = 20 * log10(v) - 83. Months are averaged in linear power, then converted back to dB.
- Tiling: the 100 x 100 grid is cut into non-overlapping ``tile`` x ``tile`` samples (default 50 -> 4 samples;
  ``tile=None`` or 100 -> one sample); a size that does not divide the grid raises DataError (nothing is dropped).
- lat / lon: tile centres reprojected from the file's UTM CRS (EPSG:32631 for the test file) with pyproj when
  installed, else with the Snyder (USGS PP 1395) inverse transverse Mercator series (error < 1 m in the zone).
- attrs["missing_bands"]: every S2 L1C band and s2l2a B01, B8A, B09 (absent from the file).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from eoembed.data.bands import BANDS, SEASONS, all_band_keys
from eoembed.data.cube import make_cube
from eoembed.data.pixels import make_pixels
from eoembed.errors import DataError, DataFileNotFound

NODATA = 65535
_MONTH_SEASON = {3: 0, 4: 0, 5: 0, 6: 1, 7: 1, 8: 1, 9: 2, 10: 2, 11: 2, 12: 3, 1: 3, 2: 3}


def s1_to_db(v: np.ndarray) -> np.ndarray:
    """WorldCereal scaled S1 backscatter -> dB: 20 * log10(v) - 83; 65535 and 0 -> NaN."""
    v = np.asarray(v, dtype=np.float64)
    bad = (v == NODATA) | (v <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 20 * np.log10(np.where(bad, 1.0, v)) - 83
    return np.where(bad, np.nan, db).astype(np.float32)


def utm_to_latlon(easting, northing, zone: int, north: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Inverse transverse Mercator on WGS84 (Snyder 1987, eqs. 8-12..8-25); degrees. Accurate to < 1 m in the zone."""
    a, f, k0 = 6378137.0, 1 / 298.257223563, 0.9996
    e2 = f * (2 - f)
    ep2 = e2 / (1 - e2)
    x = np.asarray(easting, np.float64) - 500000.0
    y = np.asarray(northing, np.float64) - (0.0 if north else 10000000.0)
    m = y / k0
    mu = m / (a * (1 - e2 / 4 - 3 * e2 ** 2 / 64 - 5 * e2 ** 3 / 256))
    e1 = (1 - math.sqrt(1 - e2)) / (1 + math.sqrt(1 - e2))
    phi1 = (mu + (3 * e1 / 2 - 27 * e1 ** 3 / 32) * np.sin(2 * mu) + (21 * e1 ** 2 / 16 - 55 * e1 ** 4 / 32)
            * np.sin(4 * mu) + (151 * e1 ** 3 / 96) * np.sin(6 * mu) + (1097 * e1 ** 4 / 512) * np.sin(8 * mu))
    c1 = ep2 * np.cos(phi1) ** 2
    t1 = np.tan(phi1) ** 2
    n1 = a / np.sqrt(1 - e2 * np.sin(phi1) ** 2)
    r1 = a * (1 - e2) / (1 - e2 * np.sin(phi1) ** 2) ** 1.5
    d = x / (n1 * k0)
    lat = phi1 - (n1 * np.tan(phi1) / r1) * (d ** 2 / 2 - (5 + 3 * t1 + 10 * c1 - 4 * c1 ** 2 - 9 * ep2) * d ** 4 / 24
                                              + (61 + 90 * t1 + 298 * c1 + 45 * t1 ** 2 - 252 * ep2 - 3 * c1 ** 2)
                                              * d ** 6 / 720)
    lon = (d - (1 + 2 * t1 + c1) * d ** 3 / 6 + (5 - 2 * c1 + 28 * t1 - 3 * c1 ** 2 + 8 * ep2 + 24 * t1 ** 2)
           * d ** 5 / 120) / np.cos(phi1)
    return np.degrees(lat), (zone - 1) * 6 - 180 + 3 + np.degrees(lon)


def _epsg(ds: xr.Dataset, path: Path) -> int:
    for v in list(ds.variables.values()):
        wkt = v.attrs.get("crs_wkt") or v.attrs.get("spatial_ref")
        if wkt:
            codes = re.findall(r'AUTHORITY\["EPSG","(\d+)"\]', wkt)
            if codes:
                return int(codes[-1])
    raise DataError(f"{str(path)!r} has no CRS (no crs_wkt attribute with an EPSG code); lat/lon cannot be computed.")


def _to_latlon(x: np.ndarray, y: np.ndarray, epsg: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        from pyproj import Transformer
    except ImportError:
        if not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
            raise DataError(f"EPSG:{epsg} is not a WGS84 UTM zone and pyproj is not installed; "
                            "`pip install pyproj` to reproject it.") from None
        return utm_to_latlon(x, y, epsg % 100, north=epsg < 32700)
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(x, y)
    return np.asarray(lat), np.asarray(lon)


def _open_nc(path: Path) -> xr.Dataset:
    if not path.exists():
        raise DataFileNotFound(f"{str(path)!r} does not exist; pass the WorldCereal .nc cube path "
                               "(tests use ../shared/data/worldcereal/worldcereal_preprocessed_inputs.nc).")
    errors = []
    for engine in ("h5netcdf", "scipy", "netcdf4"):
        try:
            return xr.open_dataset(path, engine=engine)
        except Exception as e:  # try the next engine
            errors.append(f"{engine}: {type(e).__name__}: {e}")
    raise DataError(f"cannot read {str(path)!r} with xarray ({'; '.join(errors)}); install h5netcdf.")


def _raw(ds: xr.Dataset, var: str) -> np.ndarray:
    """Stored values as float64 with nodata as NaN (65535, or a decoded _FillValue; int16 + _Unsigned re-viewed)."""
    v = ds[var].values
    if v.dtype == np.int16 and str(ds[var].attrs.get("_Unsigned", ds[var].encoding.get("_Unsigned", ""))).lower() == "true":
        v = v.view(np.uint16)
    v = v.astype(np.float64)
    v[v == NODATA] = np.nan
    return v


def _check_units(path: Path, var: str, v: np.ndarray) -> None:
    """DataError when a variable is not in WorldCereal's stored units (S2 reflectance x 1e4, S1 scaled integers)."""
    finite = v[np.isfinite(v)]
    if not finite.size:
        return
    lo, hi = float(finite.min()), float(finite.max())
    if var.startswith("S2-") and 0 < hi <= 2.0:
        raise DataError(f"{str(path)!r}: {var} holds values {lo:.3g}..{hi:.3g}, i.e. 0..1 reflectance, but WorldCereal "
                        "cubes store reflectance x 10000 (rounding 0..1 to integers would destroy it); multiply the "
                        f"variable by 10000 (ds[{var!r}] * 10000) and save the file again.")
    if var.startswith("S1-") and lo < 0:
        raise DataError(f"{str(path)!r}: {var} holds negative values ({lo:.3g}..{hi:.3g}): it looks like dB already, but "
                        "WorldCereal stores S1 as scaled integers (dB = 20*log10(v) - 83); store v = 10**((dB + 83) / 20).")
    if var.startswith("S1-") and hi <= 10:
        raise DataError(f"{str(path)!r}: {var} holds values {lo:.3g}..{hi:.3g}: it looks like linear power, but "
                        "WorldCereal stores S1 as scaled integers (dB = 20*log10(v) - 83); store "
                        "v = 10**((10*log10(power) + 83) / 20).")


def worldcereal_cube(path: str | Path, tile: int | None = 50) -> xr.Dataset:
    """The WorldCereal monthly .nc cube as a 4-season cube form, tiled into ``tile`` x ``tile`` px samples."""
    path = Path(path)
    ds = _open_nc(path)
    try:
        if "t" not in ds.dims:
            raise DataError(f"{str(path)!r} has no monthly time dimension 't' (dims {dict(ds.sizes)}).")
        months = pd.DatetimeIndex(ds["t"].values).month
        s2 = [(b, f"S2-L2A-{b}") for b in BANDS["s2l2a"] if f"S2-L2A-{b}" in ds]
        s1 = [(b, f"S1-SIGMA0-{b}") for b in BANDS["s1"] if f"S1-SIGMA0-{b}" in ds]
        if not s2 and not s1:
            raise DataError(f"{str(path)!r} has no 'S2-L2A-Bxx' or 'S1-SIGMA0-VV/VH' variables; is it a WorldCereal "
                            "preprocessed-inputs cube?")
        ny, nx = ds.sizes["y"], ds.sizes["x"]
        season_of = np.array([_MONTH_SEASON[int(m)] for m in months])
        absent = [SEASONS[k] for k in range(4) if not (season_of == k).any()]
        if absent:
            raise DataError(f"{str(path)!r} has no month in season(s) {absent}; a cube needs all four seasons.")
        layers, keys = [], []
        for b, var in s1:
            raw = _raw(ds, var)
            _check_units(path, var, raw)
            db = s1_to_db(np.nan_to_num(raw, nan=NODATA))  # (t, y, x)
            power = np.power(10.0, db.astype(np.float64) / 10)
            out = np.empty((4, ny, nx), np.float32)
            for k in range(4):
                sel = power[season_of == k]
                n = np.isfinite(sel).sum(axis=0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[k] = np.where(n > 0, 10 * np.log10(np.nansum(sel, axis=0) / np.maximum(n, 1)), np.nan)
            layers.append(out)
            keys.append(f"s1/{b}")
        valid_frac = {}
        for b, var in s2:
            v = _raw(ds, var)
            _check_units(path, var, v)
            ok = np.isfinite(v)
            out = np.empty((4, ny, nx), np.float32)
            for k in range(4):
                n = ok[season_of == k].sum(axis=0)
                tot = np.where(ok[season_of == k], v[season_of == k], 0).sum(axis=0)
                out[k] = np.where(n > 0, np.rint(tot / np.maximum(n, 1)), 0)
            valid_frac[b] = float(ok.mean())
            layers.append(out)
            keys.append(f"s2l2a/{b}")
        arr = np.stack(layers, axis=1)  # (season, band, y, x)
        tile = tile or max(ny, nx)
        if ny % tile or nx % tile:
            raise DataError(f"tile={tile} does not divide the {ny}x{nx} grid of {str(path)!r}; choose a divisor "
                            f"(e.g. {[d for d in range(10, min(ny, nx) + 1) if ny % d == 0 and nx % d == 0]}).")
        xs, ys = ds["x"].values.astype(np.float64), ds["y"].values.astype(np.float64)
        epsg = _epsg(ds, path)
    finally:
        ds.close()
    tiles, ids, cx, cy = [], [], [], []
    for iy in range(ny // tile):
        for ix in range(nx // tile):
            tiles.append(arr[:, :, iy * tile:(iy + 1) * tile, ix * tile:(ix + 1) * tile])
            ids.append(f"{path.stem}_y{iy * tile:04d}_x{ix * tile:04d}")
            cx.append(xs[ix * tile:(ix + 1) * tile].mean())
            cy.append(ys[iy * tile:(iy + 1) * tile].mean())
    lat, lon = _to_latlon(np.asarray(cx), np.asarray(cy), epsg)
    have = set(keys)
    missing = [k for k in all_band_keys() if k not in have and not k.startswith("s1/")]
    missing += [k for k in all_band_keys(("s1",)) if k not in have]
    cube = make_cube(np.stack(tiles), ids, keys, lat=lat, lon=lon, source=str(path), missing_bands=missing,
                     validate=False)
    cube.attrs.update({"crs": f"EPSG:{epsg}", "tile": int(tile), "months": [int(m) for m in months], "season_rule": "mean of valid months (65535 excluded); "
                       "S2 no valid month -> 0, S1 -> NaN; S1 averaged in linear power"})
    return cube


_COL = re.compile(r"^(OPTICAL|SAR|METEO)-([A-Za-z0-9_]+)-ts(\d+)-(\d+)m$")


def worldcereal_pixels(path: str | Path) -> xr.Dataset:
    """WorldCereal labelled pixel extractions (.parquet) -> the d-pixel form.

    time = the monthly steps ts0..ts11 from ``start_date``; ``doy`` = the 15th of each month; bands = S1 VV/VH (dB,
    from 20 * log10(v) - 83) and the S2 L2A bands present (digital numbers); 65535 -> NaN and valid=False.
    Meteo series (raw stored values, NaN where 65535) become (pixel, time) variables ``meteo_<name>``;
    the remaining columns (ewoc_code, sampling_label, elevation ``DEM-alt-20m``...) become pixel variables.
    """
    path = Path(path)
    if not path.exists():
        raise DataFileNotFound(f"{str(path)!r} does not exist; pass the WorldCereal extractions .parquet path.")
    df = pd.read_parquet(path)
    series: dict[tuple[str, str], dict[int, str]] = {}
    for c in df.columns:
        m = _COL.match(c)
        if m:
            series.setdefault((m.group(1), m.group(2)), {})[int(m.group(3))] = c
    if not series:
        raise DataError(f"{str(path)!r} has no 'OPTICAL-Bxx-tsN-..m' / 'SAR-VV-tsN-..m' columns; is it a WorldCereal "
                        "extraction table?")
    nt = 1 + max(max(v) for v in series.values())
    for (kind, name), steps in series.items():
        if sorted(steps) != list(range(nt)):
            raise DataError(f"{str(path)!r}: {kind}-{name} has time steps {sorted(steps)}; expected 0..{nt - 1}.")
    if "sample_id" not in df or df["sample_id"].duplicated().any():
        raise DataError(f"{str(path)!r} needs a unique 'sample_id' column for pixel ids.")
    keys, cols, is_s1 = [], [], []
    for b in BANDS["s1"]:
        if ("SAR", b) in series:
            keys.append(f"s1/{b}")
            cols.append([series[("SAR", b)][t] for t in range(nt)])
            is_s1.append(True)
    for b in BANDS["s2l2a"]:
        if ("OPTICAL", b) in series:
            keys.append(f"s2l2a/{b}")
            cols.append([series[("OPTICAL", b)][t] for t in range(nt)])
            is_s1.append(False)
    raw = np.stack([df[c].to_numpy(np.float64) for c in cols], axis=-1)  # (pixel, time, band)
    vals = np.where(raw == NODATA, np.nan, raw)
    s1i = np.asarray(is_s1)
    vals[..., s1i] = s1_to_db(raw[..., s1i])
    vals = vals.astype(np.float32)
    valid = np.isfinite(vals)
    start = pd.to_datetime(df["start_date"]) if "start_date" in df else pd.Series(pd.Timestamp("2000-01-01"),
                                                                                    index=df.index)
    doy = np.empty((len(df), nt), np.int16)
    month = np.empty((len(df), nt), np.int8)
    for t in range(nt):
        d = (start + pd.DateOffset(months=t)).dt.to_period("M").dt.to_timestamp() + pd.Timedelta(days=14)
        doy[:, t] = d.dt.dayofyear.to_numpy()
        month[:, t] = d.dt.month.to_numpy()
    used = {c for v in series.values() for c in v.values()} | {"sample_id", "lat", "lon"}
    extra = pd.DataFrame({c: df[c].to_numpy() for c in df.columns if c not in used})
    ds = make_pixels(vals, valid, keys, doy, df["sample_id"].astype(str).tolist(),
                     lat=df["lat"].to_numpy() if "lat" in df else None, lon=df["lon"].to_numpy() if "lon" in df else None,
                     labels=extra, attrs={"source": str(path), "time": "month",
                                          "missing_bands": [k for k in all_band_keys(("s1", "s2l2a")) if k not in keys]})
    for (kind, name), steps in series.items():
        if kind == "METEO":
            v = np.stack([df[steps[t]].to_numpy(np.float64) for t in range(nt)], axis=1)
            ds[f"meteo_{name}"] = (("pixel", "time"), np.where(v == NODATA, np.nan, v).astype(np.float32))
    return ds.assign_coords(month=(("pixel", "time"), month), time=("time", np.arange(nt)))
