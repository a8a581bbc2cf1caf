"""The Zarr embedding product: int8 codes + one float32 scale per vector, read lazily through xarray.

Layout of ``product.zarr/`` (Zarr v3, xarray conventions, default zstd compression)::

    codes    int8    (sample, feature) or (y, x, feature)   chunks (sample_chunk, feature_chunk) / (s, s, feature_chunk)
    scales   float32 (sample,)          or (y, x)           chunks (sample_chunk,) / (s, s); NaN = no-data vector
    sample   str ids (samples)          | y, x float64 centre coordinates (grid)
    lat, lon float64 (sample,) or (y, x) when known; feature int32 0..D-1
    feature_offset, feature_scale  float32 (feature,)  only in standardised products (``standardize=True``)
    attrs    eoembed_product (format version), kind ("samples" | "grid"), model, source, precision ("int8"),
             quantisation (the formula), dim, crs (grid: any pyproj string, when known), nodata

Features are chunked separately (default 32), so a prefix ``k`` reads only the first ``ceil(k / feature_chunk)``
feature chunks; spatial chunks (default 32 x 32) make a region read touch only the chunks it overlaps. Nothing is
loaded until asked for: :func:`open_product` returns a :class:`Product` over dask arrays, and every helper
(:meth:`Product.sel`, :meth:`Product.nearest`, :meth:`Product.read_region`, :meth:`Product.prefix`) returns
another lazy :class:`Product`; :attr:`Product.embeddings` is the float32 view ``codes * scales`` computed on the
fly (NaN for no-data vectors). A standardised product (``write_product(..., standardize=True)``) quantises
``(e - feature_offset) / feature_scale`` instead (per-feature mean and standard deviation over all vectors), so
every feature keeps the same relative precision; it reads back as ``codes * scales * feature_scale +
feature_offset``. Only the 1-D index coordinates (ids, y, x) are read on open; ``nearest`` and
lat/lon regions also read the lat/lon coordinates.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from eoembed.errors import DataError, DataFileNotFound, OutputError, StoreError
from eoembed.product.int8 import QMAX, _quantize, bad_vectors

__all__ = ["Product", "write_product", "open_product", "FORMAT_VERSION", "QUANTISATION"]

#: Version of the product layout (root attribute ``eoembed_product``).
FORMAT_VERSION = 1
#: The quantisation written into every product's attrs.
QUANTISATION = (f"symmetric int8, one float32 scale per vector: scale = max|e|/{QMAX}, "
                f"code = clip(rint(e/scale), -{QMAX}, {QMAX}); e ~= code * scale; scale NaN = no-data vector")
_EARTH_RADIUS_M = 6_371_008.8


# --------------------------------------------------------------------------------------------- helpers
def _is_product_dir(path: Path) -> bool:
    import zarr
    if not (path / "zarr.json").is_file():
        return False
    try:
        return "eoembed_product" in zarr.open_group(str(path), mode="r").attrs
    except Exception:  # noqa: BLE001 - unreadable metadata = not a product
        return False


def _haversine_m(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _bbox(bbox: Any) -> tuple[float, float, float, float]:
    try:
        vals = [float(v) for v in bbox]
    except (TypeError, ValueError):
        raise DataError(f"bbox={bbox!r} is not four numbers; give (minx, miny, maxx, maxy).") from None
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise DataError(f"bbox={bbox!r} must be four finite numbers (minx, miny, maxx, maxy).")
    minx, miny, maxx, maxy = vals
    if minx > maxx or miny > maxy:
        raise DataError(f"bbox={bbox!r} has min > max; give (minx, miny, maxx, maxy) with minx <= maxx and "
                        "miny <= maxy.")
    return minx, miny, maxx, maxy


def _check_crs(crs: Any) -> str | None:
    if crs is None:
        return None
    from pyproj import CRS
    from pyproj.exceptions import CRSError
    try:
        return CRS.from_user_input(crs).to_string()
    except CRSError as e:
        raise DataError(f"crs={crs!r} is not a coordinate reference system pyproj knows ({e}); give e.g. "
                        "'EPSG:32631' or a WKT string.") from None


def _window(mask: np.ndarray, what: str) -> slice:
    idx = np.flatnonzero(mask)
    return slice(int(idx[0]), int(idx[-1]) + 1)


# ------------------------------------------------------------------------------------------------ Product
@dataclass(frozen=True)
class Product:
    """A lazy embedding product: ``ds`` holds ``codes`` (int8) and ``scales`` (float32) as dask arrays.

    kind "samples" (sample, feature) or "grid" (y, x, feature); helpers return new lazy Products
    (kind "points" after ``nearest`` on a grid: (point, feature)).
    """

    ds: xr.Dataset

    # ------------------------------------------------------------------ views
    @property
    def kind(self) -> str:
        return "grid" if "y" in self.ds["codes"].dims else "points" if "point" in self.ds["codes"].dims else "samples"

    @property
    def codes(self) -> xr.DataArray:
        return self.ds["codes"]

    @property
    def scales(self) -> xr.DataArray:
        return self.ds["scales"]

    @property
    def dim(self) -> int:
        """Number of features (after :meth:`prefix`)."""
        return int(self.ds.sizes["feature"])

    @property
    def crs(self) -> str | None:
        return self.ds.attrs.get("crs")

    @property
    def standardized(self) -> bool:
        """Whether the codes hold per-feature standardised vectors (see :func:`write_product`)."""
        return "feature_offset" in self.ds

    @property
    def embeddings(self) -> xr.DataArray:
        """The float32 embeddings ``codes * scales`` (standardised products: ``* feature_scale +
        feature_offset``), lazy (computed chunk by chunk when read)."""
        out = self.codes.astype(np.float32) * self.scales.astype(np.float32)
        if self.standardized:
            out = out * self.ds["feature_scale"].astype(np.float32) + self.ds["feature_offset"].astype(np.float32)
        out = out.transpose(*self.codes.dims)
        out.name = "embedding"
        out.attrs = {k: v for k, v in self.ds.attrs.items() if k in ("model", "source", "crs")}
        return out

    def load(self) -> "Product":
        """The same product with codes and scales read into memory."""
        return Product(self.ds.load())

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}: {v}" for k, v in self.codes.sizes.items())
        return (f"Product(kind={self.kind!r}, {sizes}, model={self.ds.attrs.get('model')!r}, "
                f"crs={self.crs!r})")

    # ------------------------------------------------------------------ selections
    def prefix(self, k: int) -> "Product":
        """The first ``k`` features, with the full vectors' scales (a valid lower-precision k-d embedding:
        each element within scale/2 of the float32 value). Reads only the first feature chunks."""
        from eoembed.checks import check_int
        check_int("k", k, 1)
        if k > self.dim:
            raise DataError(f"prefix k={k} is larger than the product's dimension {self.dim}; use k <= {self.dim}.")
        ds = self.ds.isel(feature=slice(0, int(k)))
        ds.attrs = {**self.ds.attrs, "prefix": int(k)}
        return Product(ds)

    def sel(self, ids: Any) -> "Product":
        """The samples with these ids, in the order given (a single id gives a 1-sample product)."""
        if self.kind != "samples":
            raise DataError(f"sel(ids) needs a samples product; this one is {self.kind!r} (use read_region or "
                            "nearest).")
        want = [str(ids)] if isinstance(ids, (str, bytes)) or np.ndim(ids) == 0 else [str(i) for i in ids]
        if not want:
            raise DataError("sel(ids=[]): give at least one sample id.")
        index = self.ds.indexes["sample"]
        pos = index.get_indexer(want)
        missing = [w for w, p in zip(want, pos) if p < 0]
        if missing:
            from eoembed.checks import _few
            raise DataError(f"{len(missing)} id(s) are not in the product: {_few(missing)}; it holds "
                            f"{index.size} samples (e.g. {_few(index[:3])}).")
        return Product(self.ds.isel(sample=pos))

    def nearest(self, lat: Any, lon: Any) -> "Product":
        """The vector nearest to each (lat, lon) (degrees, WGS84), with a ``distance_m`` coordinate.

        samples: the nearest sample by great-circle distance (needs lat/lon coordinates). grid: the nearest pixel
        (dims (point, feature)); with lat/lon coordinates by great-circle distance, otherwise by projecting the
        point into the grid's CRS. DataError when the point lies outside the grid.
        """
        qlat, qlon = np.atleast_1d(np.asarray(lat, dtype=np.float64)), np.atleast_1d(np.asarray(lon, dtype=np.float64))
        if qlat.shape != qlon.shape or qlat.ndim != 1:
            raise DataError(f"lat and lon must be two numbers or two 1-D sequences of the same length; got shapes "
                            f"{np.shape(lat)} and {np.shape(lon)}.")
        bad = ~np.isfinite(qlat) | ~np.isfinite(qlon) | (np.abs(qlat) > 90) | (np.abs(qlon) > 360)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"point {i} (lat={qlat[i]}, lon={qlon[i]}) is not a valid WGS84 position; give "
                            "degrees with |lat| <= 90.")
        if self.kind == "samples":
            return self._nearest_sample(qlat, qlon)
        if self.kind != "grid":
            raise DataError(f"nearest needs a samples or grid product; this one is {self.kind!r}.")
        if "lat" in self.ds.coords and "lon" in self.ds.coords:
            iy, ix, dist = self._nearest_pixel_latlon(qlat, qlon)
        elif self.crs is not None:
            iy, ix, dist = self._nearest_pixel_crs(qlat, qlon)
        else:
            raise DataError("this grid product has neither lat/lon coordinates nor a CRS, so lat/lon cannot be "
                            "placed on it; use read_region with the product's own x/y coordinates, or write the "
                            "product with lat=/lon= or crs=.")
        pts = self.ds.isel(y=xr.DataArray(iy, dims="point"), x=xr.DataArray(ix, dims="point"))
        return Product(pts.assign_coords(distance_m=("point", dist)))

    def _latlon(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(self.ds["lat"].values, dtype=np.float64),
                np.asarray(self.ds["lon"].values, dtype=np.float64))

    def _nearest_sample(self, qlat: np.ndarray, qlon: np.ndarray) -> "Product":
        if "lat" not in self.ds.coords or "lon" not in self.ds.coords:
            raise DataError("this samples product has no lat/lon coordinates; write it with lat=/lon= (or from "
                            "an embedding store, which has them) to use nearest, or select by id with sel.")
        lat, lon = self._latlon()
        ok = np.isfinite(lat) & np.isfinite(lon)
        if not ok.any():
            raise DataError("every sample of this product has NaN lat/lon; nearest cannot place them.")
        d = _haversine_m(qlat[:, None], qlon[:, None], lat[None, ok], lon[None, ok])
        pos = np.flatnonzero(ok)[d.argmin(axis=1)]
        out = self.ds.isel(sample=pos)
        return Product(out.assign_coords(distance_m=("sample", d.min(axis=1))))

    def _nearest_pixel_latlon(self, qlat: np.ndarray, qlon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lat, lon = self._latlon()
        if lat.ndim == 1:  # lat (y), lon (x) on a regular lat/lon grid
            lat, lon = np.meshgrid(lat, lon, indexing="ij")
        h, w = lat.shape
        iy, ix, dist = [], [], []
        for a, b in zip(qlat, qlon):
            d = _haversine_m(a, b, lat, lon)
            j = int(np.nanargmin(d))
            y, x = divmod(j, w)
            # outside the grid when farther than the largest distance to a neighbouring pixel centre
            nbrs = [(y + dy, x + dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))
                    if 0 <= y + dy < h and 0 <= x + dx < w]
            step = max((float(_haversine_m(lat[y, x], lon[y, x], lat[v], lon[v])) for v in nbrs), default=0.0)
            if d[y, x] > max(step, 1e-6):
                raise DataError(f"point (lat={a}, lon={b}) is outside the grid (the nearest pixel centre is "
                                f"{d[y, x]:.0f} m away, more than one pixel); the grid spans lat "
                                f"{np.nanmin(lat):.5f}..{np.nanmax(lat):.5f}, lon {np.nanmin(lon):.5f}.."
                                f"{np.nanmax(lon):.5f}.")
            iy.append(y), ix.append(x), dist.append(float(d[y, x]))
        return np.asarray(iy), np.asarray(ix), np.asarray(dist)

    def _nearest_pixel_crs(self, qlat: np.ndarray, qlon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from pyproj import Transformer
        tr = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        qx, qy = tr.transform(qlon, qlat)
        xs, ys = np.asarray(self.ds["x"].values, float), np.asarray(self.ds["y"].values, float)
        ix, iy = np.abs(xs[None, :] - np.asarray(qx)[:, None]).argmin(1), np.abs(ys[None, :] - np.asarray(qy)[:, None]).argmin(1)
        half_x = abs(float(np.diff(xs).mean())) / 2 if xs.size > 1 else 0.5
        half_y = abs(float(np.diff(ys).mean())) / 2 if ys.size > 1 else 0.5
        for k in range(qlat.size):
            if abs(xs[ix[k]] - qx[k]) > half_x or abs(ys[iy[k]] - qy[k]) > half_y:
                raise DataError(f"point (lat={qlat[k]}, lon={qlon[k]}) is outside the grid: it falls at x={qx[k]:.1f}, "
                                f"y={qy[k]:.1f} in {self.crs}, the grid spans x {xs.min() - half_x:.1f}.."
                                f"{xs.max() + half_x:.1f}, y {ys.min() - half_y:.1f}..{ys.max() + half_y:.1f}.")
        dist = np.hypot(xs[ix] - qx, ys[iy] - qy)  # in the CRS's units (metres for projected CRSs)
        return iy, ix, dist

    def read_region(self, bbox: Any, coords: str | None = None) -> "Product":
        """The vectors inside ``bbox = (minx, miny, maxx, maxy)`` (inclusive), read lazily.

        grid, ``coords="xy"`` (default): bbox in the product's x/y coordinates; returns the window of pixels whose
        centres lie inside. grid, ``coords="latlon"``: bbox in degrees (lon_min, lat_min, lon_max, lat_max);
        the smallest pixel window holding every pixel centre inside it (from the lat/lon coordinates, or from
        the bbox projected into the grid's CRS). samples (``coords`` "latlon"): the samples inside the bbox.
        DataError when nothing lies inside (the message gives the product's extent).
        """
        from eoembed.checks import check_choice
        minx, miny, maxx, maxy = _bbox(bbox)
        default = "xy" if self.kind == "grid" else "latlon"
        coords = default if coords is None else coords
        check_choice("coords", coords, ("xy", "latlon"))
        if self.kind == "samples":
            if coords != "latlon":
                raise DataError("a samples product has no x/y grid; read_region takes a lat/lon bbox "
                                "(coords='latlon').")
            if "lat" not in self.ds.coords:
                raise DataError("this samples product has no lat/lon coordinates; select samples with sel(ids).")
            lat, lon = self._latlon()
            inside = (lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)
            if not inside.any():
                raise DataError(f"no sample lies inside bbox {(minx, miny, maxx, maxy)} (lon, lat); the samples span "
                                f"lon {np.nanmin(lon):.5f}..{np.nanmax(lon):.5f}, lat {np.nanmin(lat):.5f}.."
                                f"{np.nanmax(lat):.5f}.")
            return Product(self.ds.isel(sample=np.flatnonzero(inside)))
        if self.kind != "grid":
            raise DataError(f"read_region needs a grid or samples product; this one is {self.kind!r}.")
        if coords == "latlon" and "lat" in self.ds.coords and "lon" in self.ds.coords:
            lat, lon = self._latlon()
            if lat.ndim == 1:
                lat, lon = np.meshgrid(lat, lon, indexing="ij")
            inside = (lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)
            if not inside.any():
                raise DataError(f"bbox {(minx, miny, maxx, maxy)} (lon, lat) holds no pixel of the grid; the grid "
                                f"spans lon {np.nanmin(lon):.5f}..{np.nanmax(lon):.5f}, lat {np.nanmin(lat):.5f}.."
                                f"{np.nanmax(lat):.5f}.")
            return Product(self.ds.isel(y=_window(inside.any(axis=1), "y"), x=_window(inside.any(axis=0), "x")))
        if coords == "latlon":
            if self.crs is None:
                raise DataError("this grid product has neither lat/lon coordinates nor a CRS; give the bbox in its "
                                "x/y coordinates (coords='xy').")
            from pyproj import Transformer
            tr = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
            minx, miny, maxx, maxy = tr.transform_bounds(minx, miny, maxx, maxy, densify_pts=21)
        xs, ys = np.asarray(self.ds["x"].values, float), np.asarray(self.ds["y"].values, float)
        inx, iny = (xs >= minx) & (xs <= maxx), (ys >= miny) & (ys <= maxy)
        if not inx.any() or not iny.any():
            raise DataError(f"bbox {(minx, miny, maxx, maxy)} (x/y{', ' + self.crs if self.crs else ''}) holds no "
                            f"pixel centre of the grid; the grid's centres span x {xs.min():g}..{xs.max():g}, "
                            f"y {ys.min():g}..{ys.max():g}.")
        return Product(self.ds.isel(y=_window(iny, "y"), x=_window(inx, "x")))


# ------------------------------------------------------------------------------------------------- write
def _as_dataarray(embeddings: Any, ids: Any, lat: Any, lon: Any) -> xr.DataArray:
    """A (sample, feature) or (y, x, feature) DataArray with coordinates from ``embeddings`` or the arguments."""
    if isinstance(embeddings, xr.DataArray):
        da = embeddings
        if ids is not None:
            raise DataError("ids= is only for NumPy embeddings; a DataArray carries its ids in its 'sample' "
                            "coordinate.")
    else:
        try:
            arr = np.asarray(embeddings) if not hasattr(embeddings, "dask") else embeddings
        except (TypeError, ValueError):
            raise DataError(f"cannot read embeddings of type {type(embeddings).__name__}; pass an xarray "
                            "DataArray, a NumPy or dask array.") from None
        if arr.ndim == 2:
            if ids is None:
                raise DataError("NumPy (sample, feature) embeddings need ids= (one sample id per row).")
            ids = np.asarray([str(i) for i in ids], dtype=object)
            if ids.size != arr.shape[0]:
                raise DataError(f"{ids.size} ids for {arr.shape[0]} embedding rows; pass one id per row.")
            da = xr.DataArray(arr, dims=("sample", "feature"), coords={"sample": ids})
        elif arr.ndim == 3:
            da = xr.DataArray(arr, dims=("y", "x", "feature"),
                              coords={"y": np.arange(arr.shape[0], dtype=np.float64),
                                      "x": np.arange(arr.shape[1], dtype=np.float64)})
        else:
            raise DataError(f"embeddings of shape {arr.shape}: give (sample, feature) or (y, x, feature).")
    dims = tuple(da.dims)
    if dims not in (("sample", "feature"), ("y", "x", "feature")):
        hint = (" Flatten seasons into features first (e.g. da.stack(f=('season', 'feature')))." if "season" in dims
                else "")
        raise DataError(f"embeddings have dims {dims}; a product holds ('sample', 'feature') or ('y', 'x', "
                        f"'feature').{hint}")
    if not np.issubdtype(da.dtype, np.number):
        raise DataError(f"embeddings have dtype {da.dtype}; pass numbers.")
    if da.sizes["feature"] == 0 or any(da.sizes[d] == 0 for d in dims):
        raise DataError(f"embeddings have an empty dimension ({dict(da.sizes)}); nothing to write.")
    spatial = dims[:-1]
    coords: dict[str, Any] = {d: da[d].values if d in da.coords else np.arange(da.sizes[d]) for d in spatial}
    if "sample" in coords:
        coords["sample"] = np.asarray([str(i) for i in coords["sample"]], dtype=object)
        uniq, counts = np.unique(coords["sample"].astype(str), return_counts=True)
        if (counts > 1).any():
            from eoembed.checks import _few
            raise DataError(f"duplicate sample ids {_few(uniq[counts > 1])}; keep one row per sample.")
    else:
        for d in spatial:
            c = np.asarray(coords[d], dtype=np.float64)
            if c.size > 1 and not (np.all(np.diff(c) > 0) or np.all(np.diff(c) < 0)):
                raise DataError(f"grid coordinate {d!r} is not strictly monotonic; give regular pixel-centre "
                                "coordinates.")
            coords[d] = c
    for name, given in (("lat", lat), ("lon", lon)):
        if given is not None and name in da.coords:
            raise DataError(f"{name}= given and the DataArray already has a {name!r} coordinate; give one of them.")
        val = given if given is not None else (da[name].values if name in da.coords else None)
        if val is None:
            continue
        val = np.asarray(val, dtype=np.float64)
        want = tuple(da.sizes[d] for d in spatial)
        cdims = spatial
        if val.shape != want:
            if spatial == ("y", "x") and val.ndim == 1 and val.size == da.sizes["y" if name == "lat" else "x"]:
                cdims = ("y",) if name == "lat" else ("x",)
            else:
                raise DataError(f"{name} has shape {val.shape}; expected {want} (one value per "
                                f"{'sample' if spatial == ('sample',) else 'pixel'}).")
        coords[name] = (cdims, val)
    if ("lat" in coords) != ("lon" in coords):
        raise DataError("give both lat and lon (or neither).")
    out = xr.DataArray(da.data, dims=dims, coords=coords, attrs=dict(da.attrs))
    return out


def _check_write_args(path: Any, overwrite: bool, nodata: str, feature_chunk: Any, spatial_chunk: Any,
                      sample_chunk: Any) -> Path:
    from eoembed.checks import check_choice, check_int, check_out_path
    check_choice("nodata", nodata, ("error", "mask"))
    check_int("feature_chunk", feature_chunk, 1)
    check_int("spatial_chunk", spatial_chunk, 1)
    check_int("sample_chunk", sample_chunk, 1)
    p = check_out_path(path, option="path", exist_ok=overwrite)
    if p.exists() and not _is_product_dir(p):
        raise OutputError(f"path {str(p)!r} exists and is not an eoembed product; overwrite=True only replaces a "
                          "product. Choose a new path or remove it first.")
    return p


def write_product(embeddings: Any, path: Any, *, ids: Sequence[Any] | None = None, lat: Any = None,
                  lon: Any = None, crs: Any = None, model: str | None = None, source: str | None = None,
                  nodata: str = "error", feature_chunk: int = 32, spatial_chunk: int = 32, sample_chunk: int = 4096,
                  standardize: bool = False, overwrite: bool = False) -> Product:
    """Quantise ``embeddings`` to int8 + per-vector scales and write a Zarr product at ``path``; return it opened.

    embeddings: xarray DataArray (sample, feature) with a ``sample`` id coordinate (lat/lon coordinates are
    kept), or (y, x, feature) with y/x pixel-centre coordinates (lat/lon 2-D coordinates kept); or a NumPy /
    dask array of the same shape (``ids=`` for samples). Dask input is quantised chunk by chunk and never
    loaded whole. lat/lon: per-sample (n,) or per-pixel (y, x) degrees (or lat (y,) / lon (x,) for a regular
    lat/lon grid). crs: the grid's CRS (any pyproj string, e.g. "EPSG:32631"; also read from ``attrs["crs"]``).
    model, source: stored in attrs. nodata: see :func:`quantize_int8`. standardize: quantise per-feature
    standardised vectors ``(e - mean) / std`` (mean and std per feature over all vectors, no-data vectors left
    out; stored as ``feature_offset`` / ``feature_scale``, a constant feature gets scale 1). Plain products give
    each vector one error size, set by its largest component, so low-variance features lose relative precision
    (Presto: two offset dimensions set the scale and the quietest feature keeps ~16 distinct codes, error up to 11%
    of its standard deviation; standardised: 0.6%); standardised ones keep it. Paired probe measurements
    (benchmarks/bench_int8_paired.py): mean score changes within 0.5% either way, standardised products change
    fewer predictions. Chunks: ``feature_chunk`` features,
    ``spatial_chunk`` x ``spatial_chunk`` pixels or ``sample_chunk`` samples. ``overwrite=True`` replaces an
    existing product (never another folder). Written beside ``path`` and renamed when complete.
    """
    import dask.array as dsa

    p = _check_write_args(path, overwrite, nodata, feature_chunk, spatial_chunk, sample_chunk)
    da = _as_dataarray(embeddings, ids, lat, lon)
    if crs is None:
        crs = da.attrs.get("crs")
    crs = _check_crs(crs)
    if crs is not None and da.dims[0] == "sample":
        raise DataError("crs= is for grid products; sample positions are lat/lon (lat=, lon=).")
    spatial = da.dims[:-1]
    labels = da["sample"].values if spatial == ("sample",) else None  # grid: (row, column) positions
    schunk = (sample_chunk,) if spatial == ("sample",) else (spatial_chunk, spatial_chunk)
    data = da.data if hasattr(da.data, "dask") else dsa.from_array(np.asarray(da.data), chunks=schunk + (-1,))
    data = data.rechunk(schunk + (-1,))  # one block holds whole vectors
    bad_vectors(data, nodata, labels=labels, where=f"embeddings for {str(p)!r}")
    offset = fscale = None
    if standardize:
        flat = data.reshape(-1, data.shape[-1]).astype(np.float64)
        offset, sd = dsa.compute(dsa.nanmean(flat, axis=0), dsa.nanstd(flat, axis=0))
        if not np.isfinite(offset).all():
            raise DataError(f"standardize=True needs at least one valid vector; every vector for {str(p)!r} is "
                            "no-data.")
        offset, fscale = offset.astype(np.float32), np.where(sd > 0, sd, 1.0).astype(np.float32)
        data = ((data - offset) / fscale).astype(np.float32)
    codes = data.map_blocks(lambda b: _quantize(b)[0], dtype=np.int8).rechunk(schunk + (feature_chunk,))
    scales = data.map_blocks(lambda b: _quantize(b)[1], dtype=np.float32, drop_axis=data.ndim - 1)
    ds = xr.Dataset({"codes": (da.dims, codes), "scales": (spatial, scales)},
                    coords={**{k: v for k, v in da.coords.items()},
                            "feature": np.arange(da.sizes["feature"], dtype=np.int32)})
    if standardize:
        ds["feature_offset"] = ("feature", offset)
        ds["feature_scale"] = ("feature", fscale)
    ds.attrs = {k: v for k, v in da.attrs.items() if isinstance(v, (str, int, float)) and k != "crs"}
    quant = QUANTISATION + ("; codes hold (e - feature_offset) / feature_scale, so e ~= code * scale * "
                            "feature_scale + feature_offset" if standardize else "")
    ds.attrs |= {"eoembed_product": FORMAT_VERSION, "kind": "samples" if spatial == ("sample",) else "grid",
                "model": "" if model is None else str(model), "source": "" if source is None else str(source),
                "precision": "int8", "quantisation": quant, "dim": int(da.sizes["feature"]),
                "nodata": nodata, "feature_chunk": int(feature_chunk), "standardized": int(bool(standardize))}
    if crs is not None:
        ds.attrs["crs"] = crs
    enc = {"codes": {"chunks": schunk + (feature_chunk,)}, "scales": {"chunks": schunk}}
    for c in ("lat", "lon"):
        if c in ds.coords and ds[c].dims == spatial:
            enc[c] = {"chunks": schunk}
    tmp = p.with_name(p.name + ".eoembed-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    ds.to_zarr(tmp, mode="w", consolidated=False, encoding=enc)
    if p.exists():
        shutil.rmtree(p)
    tmp.rename(p)
    return open_product(p)


# -------------------------------------------------------------------------------------------------- open
def open_product(path: Any) -> Product:
    """Open a product lazily (dask arrays in the stored chunks); ``path`` is a folder or a Zarr store object."""
    import zarr
    if isinstance(path, (str, Path)):
        p = Path(path)
        if not p.exists():
            raise DataFileNotFound(f"product {str(p)!r} does not exist; write one with write_product or "
                                   "`eoembed quantize`.")
        if not _is_product_dir(p):
            raise StoreError(f"{str(p)!r} is not an eoembed embedding product (no 'eoembed_product' attribute); "
                             "write one with write_product or `eoembed quantize`.")
        where = str(p)
    else:
        where = repr(path)
        if "eoembed_product" not in zarr.open_group(path, mode="r").attrs:
            raise StoreError(f"{where} is not an eoembed embedding product (no 'eoembed_product' attribute).")
    ds = xr.open_zarr(path, consolidated=False)
    version = ds.attrs.get("eoembed_product")
    if version != FORMAT_VERSION or "codes" not in ds or "scales" not in ds:
        raise StoreError(f"product {where} has format version {version!r} (this eoembed reads {FORMAT_VERSION}) "
                         "or lacks codes/scales; rewrite it with this version's write_product.")
    if "sample" in ds.coords:  # Zarr v3 returns numpy StringDType; give plain str ids
        ds = ds.assign_coords(sample=np.asarray([str(i) for i in ds["sample"].values], dtype=object))
    return Product(ds)
