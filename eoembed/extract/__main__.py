"""``python -m eoembed.extract DATA --model NAME --out emb.zarr`` (same as ``eoembed extract``, same error handler)."""
import sys

if __name__ == "__main__":
    from eoembed.cli import app
    app(["extract", *sys.argv[1:]], prog_name="eoembed")
