"""``eoembed quantize | export-geotiff`` (mirror eoembed.product.quantize and export_geotiff)."""
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
    overwrite: bool = typer.Option(False, help="replace OUT if it is an existing product"),
) -> None:
    """Write embeddings as an int8 product (int8 codes + one float32 scale per vector, Zarr)."""
    from eoembed.product.convert import quantize as run
    check_in_path(store_or_csv, option="STORE_OR_CSV")
    check_out_path(out, option="--out", exist_ok=overwrite)
    check_int("--prefix", prefix, 1, allow_none=True)
    check_choice("--nodata", nodata, ("error", "mask"))
    prod = run(store_or_csv, out, model=model, prefix=prefix, nodata=nodata, overwrite=overwrite)
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


def register(app: typer.Typer) -> None:
    """Add ``quantize`` and ``export-geotiff`` to the eoembed CLI."""
    app.command("quantize")(quantize)
    app.command("export-geotiff")(export_geotiff)
