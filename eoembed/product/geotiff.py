"""A region of a gridded product as a Cloud-Optimized GeoTIFF (rioxarray / GDAL's COG driver).

Two files, both COGs with the same grid, CRS and transform (when the product has a CRS):

- ``out``: int8, one band per embedding dimension (band i = feature i-1, described "emb_000", ...), the codes;
- ``<stem>.scales.tif`` beside it (:func:`scales_path`): float32, one band, the per-pixel scale (NaN = no data).

The float embedding of a pixel is ``codes * scale`` - in QGIS: raster calculator ``"x@5" * "x.scales@1"``. The
codes alone are already proportional to the embedding within each pixel (GeoTessera's int8 layout), so they
can be viewed directly. Standardised products (``standardize=True``) also carry, as metadata of ``out``,
``feature_offset`` and ``feature_scale`` (comma-separated, one per band): band b's float value is
``codes * scale * feature_scale[b] + feature_offset[b]``. A sidecar keeps the codes int8 (a GeoTIFF's bands share one data type).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eoembed.errors import DataError, OutputError

__all__ = ["export_geotiff", "scales_path"]


def scales_path(path: Any) -> Path:
    """The sidecar file of the per-pixel scales of a GeoTIFF written by :func:`export_geotiff`."""
    p = Path(path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(f"{stem}.scales{p.suffix or '.tif'}")


def _check_regular(coord: np.ndarray, name: str) -> None:
    if coord.size > 1:
        d = np.diff(coord)
        if not np.allclose(d, d[0], rtol=1e-6, atol=0):
            raise DataError(f"grid coordinate {name!r} is not regularly spaced; a GeoTIFF needs a regular grid "
                            "(resample the product first).")


def export_geotiff(product: Any, out: Any, bbox: Any = None, prefix: int | None = None,
                   coords: str | None = None, overwrite: bool = False) -> Path:
    """Write a region of a gridded ``product`` (a :class:`Product` or its path) to a COG at ``out`` plus the
    float32 scales sidecar (:func:`scales_path`); return ``out``.

    bbox: (minx, miny, maxx, maxy) as in :meth:`Product.read_region` (``coords``), None = the whole grid.
    prefix: only the first k dimensions (bands). Only the region is read. Refuses to overwrite either file
    unless ``overwrite=True``. Needs rioxarray (``pip install rioxarray``).
    """
    from eoembed.checks import check_int, check_out_path
    from eoembed.product.store import Product, open_product

    out = check_out_path(out, option="out", kind="file", exist_ok=overwrite)
    check_out_path(scales_path(out), option="out (its scales sidecar)", kind="file", exist_ok=overwrite)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise DataError(f"out={str(out)!r} should end in .tif (a GeoTIFF); its scales go to <name>.scales.tif.")
    check_int("prefix", prefix, 1, allow_none=True)
    try:
        import rioxarray  # noqa: F401 - registers the .rio accessor
    except ImportError as e:
        raise ImportError("export_geotiff needs rioxarray; install it with `pip install rioxarray`.") from e
    prod = product if isinstance(product, Product) else open_product(product)
    if prod.kind != "grid":
        raise DataError(f"export_geotiff needs a grid product (y, x, feature); this one is {prod.kind!r}. Sample "
                        "products have no raster to write.")
    if prefix is not None:
        prod = prod.prefix(prefix)
    if bbox is not None:
        prod = prod.read_region(bbox, coords=coords)
    for name in ("x", "y"):
        _check_regular(np.asarray(prod.ds[name].values, float), name)
    ds = prod.ds.load()
    drop = [c for c in ds.coords if c not in ("y", "x", "feature")]
    ds_codes = ds.drop_vars([v for v in ("feature_offset", "feature_scale") if v in ds])
    codes = ds_codes["codes"].drop_vars(drop).transpose("feature", "y", "x")
    scales = ds["scales"].drop_vars(drop)
    codes = codes.assign_coords(feature=np.arange(1, codes.sizes["feature"] + 1)).rename(feature="band")
    codes.attrs = {"long_name": [f"emb_{i:03d}" for i in range(codes.sizes["band"])]}
    if prod.standardized:
        for name in ("feature_offset", "feature_scale"):
            codes.attrs[name] = ",".join(f"{v:.9g}" for v in np.asarray(ds[name].values, np.float64))
    scales.attrs = {"long_name": "scale"}
    from rasterio.errors import RasterioError
    written = []
    for da, dest in ((codes, out), (scales, scales_path(out))):
        da.encoding = {}  # the Zarr encoding (_FillValue, chunks) does not apply to the GeoTIFF
        da = da.rio.set_spatial_dims(x_dim="x", y_dim="y")
        if prod.crs is not None:
            da = da.rio.write_crs(prod.crs)
        if da.dtype == np.float32:
            da = da.rio.write_nodata(np.float32(np.nan), encoded=False)
        tmp = dest.with_name(dest.name + ".eoembed-tmp")
        try:
            da.rio.to_raster(tmp, driver="COG", compress="DEFLATE")
        except (OSError, RasterioError) as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"writing {str(dest)!r} failed ({type(e).__name__}: {e}); check the folder and free "
                              "space.") from e
        written.append((tmp, dest))
    for tmp, dest in written:
        tmp.replace(dest)
    return out
