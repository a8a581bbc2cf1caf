"""``eoembed quantize | export-geotiff | worldcereal-product`` (mirror eoembed.product.quantize, export_geotiff and
worldcereal_product)."""
from __future__ import annotations

from typing import Optional

import typer

from eoembed.checks import check_choice, check_in_path, check_int, check_out_path


def parse_bbox(text: str | None, option: str = "--bbox") -> tuple[float, float, float, float] | None:
    """``"minx,miny,maxx,maxy"`` -> four floats (DataError naming the option when malformed)."""
    from eoembed.errors import DataError
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise DataError(f"{option} {text!r} is not four numbers; give minx,miny,maxx,maxy (e.g. "
                        f"{option}=-1.5,40,-1.2,40.3; use '=' when the first number is negative).")
    from eoembed.product.store import _bbox
    return _bbox(vals)


def quantize(
    store_or_csv: str = typer.Argument(..., help="embedding store (emb.zarr) or NeuCo CSV (id,0..D-1)"),
    out: str = typer.Option(..., help="product folder to write (e.g. product.zarr)"),
    model: Optional[str] = typer.Option(None, help="model group of the store (needed when it holds several; "
                                                   "'fused' = all models concatenated)"),
    prefix: Optional[int] = typer.Option(None, help="keep only the first K dimensions"),
    nodata: str = typer.Option("error", help="error: NaN vectors are an error | mask: store all-NaN vectors as NaN"),
    standardize: bool = typer.Option(False, help="quantise per-feature standardised vectors (keeps low-variance "
                                                 "features' precision; offsets and scales are stored)"),
    overwrite: bool = typer.Option(False, help="replace OUT if it is an existing product"),
) -> None:
    """Write embeddings as an int8 product (int8 codes + one float32 scale per vector, Zarr)."""
    from eoembed.product.convert import quantize as run
    check_in_path(store_or_csv, option="STORE_OR_CSV")
    check_out_path(out, option="--out", exist_ok=overwrite)
    check_int("--prefix", prefix, 1, allow_none=True)
    check_choice("--nodata", nodata, ("error", "mask"))
    prod = run(store_or_csv, out, model=model, prefix=prefix, nodata=nodata, standardize=standardize,
              overwrite=overwrite)
    sizes = ", ".join(f"{k} {v}" for k, v in prod.codes.sizes.items())
    typer.echo(f"wrote {out}: int8 {prod.kind} product ({sizes})")


def export_geotiff(
    product: str = typer.Argument(..., help="gridded product folder (written by write_product)"),
    out: str = typer.Option(..., help="GeoTIFF to write (*.tif; the scales go to <name>.scales.tif)"),
    bbox: Optional[str] = typer.Option(None, help="minx,miny,maxx,maxy (default: the whole grid)"),
    prefix: Optional[int] = typer.Option(None, help="only the first K dimensions (bands)"),
    coords: Optional[str] = typer.Option(None, help="bbox coordinates: xy (the grid's, default) | latlon"),
    overwrite: bool = typer.Option(False, help="replace OUT and its scales file if they exist"),
) -> None:
    """Write a region of a gridded product as a Cloud-Optimized GeoTIFF (int8 bands + float32 scales file)."""
    from eoembed.product.geotiff import export_geotiff as run, scales_path
    check_in_path(product, option="PRODUCT", kind="dir")
    check_out_path(out, option="--out", kind="file", exist_ok=overwrite)
    box = parse_bbox(bbox)
    check_int("--prefix", prefix, 1, allow_none=True)
    if coords is not None:
        check_choice("--coords", coords, ("xy", "latlon"))
    path = run(product, out, bbox=box, prefix=prefix, coords=coords, overwrite=overwrite)
    typer.echo(f"wrote {path} (int8 codes) and {scales_path(path)} (float32 scales)")


def worldcereal_product(
    nc_path: str = typer.Argument(..., help="WorldCereal monthly cube (.nc, dims t/y/x)"),
    out: str = typer.Option(..., help="product folder to write (e.g. worldcereal.zarr)"),
    weights: str = typer.Option("auto", help="Presto weights: path of default_model.pt | auto (registry)"),
    batch_size: int = typer.Option(4096, help="pixels per Presto batch"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    window: Optional[str] = typer.Option(None, help="row0,row1,col0,col1: embed only this pixel window"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    overwrite: bool = typer.Option(False, help="replace OUT if it is an existing product"),
) -> None:
    """Presto per-pixel embeddings of a WorldCereal cube as a gridded int8 product (y, x, feature; lat/lon, CRS)."""
    from eoembed.errors import DataError
    from eoembed.product.worldcereal import worldcereal_product as run
    check_in_path(nc_path, option="NC_PATH", kind="file")
    check_out_path(out, option="--out", exist_ok=overwrite)
    check_int("--batch-size", batch_size, 1)
    win = None
    if window is not None:
        try:
            win = tuple(int(v) for v in window.split(","))
        except ValueError:
            win = ()
        if len(win) != 4:
            raise DataError(f"--window {window!r} is not four integers; give row0,row1,col0,col1 (e.g. 0,20,0,20).")
    prod = run(nc_path, out, weights=weights, batch_size=batch_size, progress=progress, window=win, device=device,
               overwrite=overwrite)
    sizes = ", ".join(f"{k} {v}" for k, v in prod.codes.sizes.items())
    typer.echo(f"wrote {out}: int8 grid product ({sizes}), crs {prod.crs}, {prod.ds.attrs['n_nodata']} no-data "
               "pixel(s) stored as NaN")


def register(app: typer.Typer) -> None:
    """Add ``quantize``, ``export-geotiff`` and ``worldcereal-product`` to the eoembed CLI."""
    app.command("quantize")(quantize)
    app.command("export-geotiff")(export_geotiff)
    app.command("worldcereal-product")(worldcereal_product)
