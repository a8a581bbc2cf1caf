"""Embeddings as data on real WorldCereal inputs: Presto per-pixel int8 products (needs ../shared).

1. Cube: time to embed every pixel of the WorldCereal cube (100 x 100 px, 12 months) with Presto on this CPU
   (worldcereal_embeddings), time to write it as a gridded int8 product (write_product, as worldcereal_product
   does), bytes on disk of that product vs a float32 Zarr of the same embeddings with the same chunks and the same
   default compression, cosine of each dequantised int8 vector to its float32 vector, masked (no-data) pixels.
2. Pixels: the 500 labelled pixels embedded into a samples product (pixel_product); train_pixel_classifier on the
   dequantised int8 features and on the float32 embeddings (same split, C chosen by CV on the training part).
Writes benchmarks/results/bench_worldcereal_product.json.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_worldcereal_product.py [--shared ../shared] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared"))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_worldcereal_product.json"))
    a = ap.parse_args()
    import torch
    import xarray as xr
    from eoembed.models.presto import build_presto, presto_embed_pixels
    from eoembed.product import (pixel_product, pixel_series, train_pixel_classifier, worldcereal_embeddings,
                                 write_product)
    shared = Path(a.shared)
    nc = shared / "data/worldcereal/worldcereal_preprocessed_inputs.nc"
    pq = shared / "data/worldcereal/test_public_extractions.parquet"
    weights = shared / "weights/presto/default_model.pt"
    old_threads = torch.get_num_threads()
    if a.threads:
        torch.set_num_threads(a.threads)
    res: dict = {"machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "platform": platform.platform(), "torch": torch.__version__}}
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # presto unit warnings must not fire
            warnings.filterwarnings("ignore", module="zarr")
            tmp = Path(tmp)
            t0 = time.perf_counter()
            da = worldcereal_embeddings(nc, weights=weights, progress=False)
            t_embed_total = time.perf_counter() - t0
            t0 = time.perf_counter()
            prod = write_product(da, tmp / "grid.zarr", model="presto", source=str(nc), nodata="mask")
            t_write = time.perf_counter() - t0
            f32 = xr.Dataset({"embedding": da}).drop_vars(["lat", "lon"])
            f32.to_zarr(tmp / "f32.zarr", mode="w", consolidated=False,
                        encoding={"embedding": {"chunks": (32, 32, 32)}})
            e, q = da.values, prod.embeddings.values
            ok = np.isfinite(e).all(-1)
            cos = (e * q).sum(-1)[ok] / (np.linalg.norm(e, axis=-1) * np.linalg.norm(q, axis=-1))[ok]
            err = np.abs(e - q)[ok].max(-1) / prod.scales.values[ok]
            res["cube"] = {
                "pixels": int(ok.size), "months": 12, "shape": list(da.shape), "n_nodata": int(da.attrs["n_nodata"]),
                "embed_seconds_presto": da.attrs["embed_seconds"], "embed_seconds_total_incl_read": t_embed_total,
                "pixels_per_second": ok.size / da.attrs["embed_seconds"], "write_int8_seconds": t_write,
                "bytes_int8_product": du(tmp / "grid.zarr"), "bytes_float32_zarr": du(tmp / "f32.zarr"),
                "bytes_raw_float32": int(e.nbytes),
                "cosine_int8_vs_float32": {"mean": float(cos.mean()), "min": float(cos.min())},
                "max_error_in_scales": float(err.max()),
                "lat_range": [float(prod.ds.lat.min()), float(prod.ds.lat.max())],
                "lon_range": [float(prod.ds.lon.min()), float(prod.ds.lon.max())], "crs": prod.crs}
            res["cube"]["size_ratio_float32_over_int8"] = (res["cube"]["bytes_float32_zarr"]
                                                           / res["cube"]["bytes_int8_product"])
            t0 = time.perf_counter()
            px = pixel_product(pq, tmp / "pixels.zarr", weights=weights, progress=False)
            t_px = time.perf_counter() - t0
            s = pixel_series(pq)
            f32px = presto_embed_pixels(s["values"], s["bands"], s["months"], s["latlon"],
                                        model=build_presto(weights=weights), progress=False)
            t0 = time.perf_counter()
            clf = train_pixel_classifier(px, "sampling_label", float32=f32px)
            t_clf = time.perf_counter() - t0
            res["pixels"] = {"n": 500, "pixel_product_seconds": t_px, "classifier_seconds": t_clf,
                             "bytes_int8_product": du(tmp / "pixels.zarr"), "classifier": clf}
    finally:
        torch.set_num_threads(old_threads)
    Path(a.out).write_text(json.dumps(res, indent=2))
    c, k = res["cube"], res["pixels"]["classifier"]
    print(f"cube {c['shape']}: Presto {c['embed_seconds_presto']:.1f} s ({c['pixels_per_second']:.0f} px/s), "
          f"int8 {c['bytes_int8_product'] / 1e6:.2f} MB vs float32 {c['bytes_float32_zarr'] / 1e6:.2f} MB "
          f"({c['size_ratio_float32_over_int8']:.2f}x), cosine mean {c['cosine_int8_vs_float32']['mean']:.5f}, "
          f"nodata {c['n_nodata']}")
    print(f"classifier {k['label']} ({len(k['classes'])} classes, test {k['n_test']}): bacc int8 "
          f"{k['int8']['balanced_accuracy']:.4f} float32 {k['float32']['balanced_accuracy']:.4f}; chance-adj int8 "
          f"{k['int8']['chance_adjusted']:.4f} float32 {k['float32']['chance_adjusted']:.4f}")


if __name__ == "__main__":
    main()
