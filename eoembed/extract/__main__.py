"""``python -m eoembed.extract DATA --model NAME --out emb.zarr`` (same as ``eoembed extract``)."""
import typer

from eoembed.extract.cli import extract

if __name__ == "__main__":
    typer.run(extract)
