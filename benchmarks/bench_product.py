"""int8 embedding products: bytes on disk vs float32, cosine to float32, and the probe score change.

1. Disk: the same embeddings written as an int8 product (write_product: int8 codes + float32 scales) and as a
   float32 Zarr with the same chunks and the same (default zstd) compression, for a samples product
   (--n-disk x --dim realistic vectors) and a grid product (--grid x --grid x --dim). Bytes = sum of the files.
2. Cosine: mean / min cosine between each float32 vector and its dequantised int8 vector.
3. Probe score: eoembed.bench.evaluate (ridge mode, --folds folds, same splits) on float32 and on dequantised
   int8 embeddings of the demo-like generated sample (n=--n, --size px): a tiny random-weight CROMA (as the
   demo), the raw-band baseline, and every model of an optional --store (embedding store of that same
   sample, e.g. Presto with real weights: eoembed extract SAMPLE --model presto). Reports Q-bar and the
   relative change, for the plain product and for a standardised one (write_product(standardize=True):
   per-feature mean/std removed before the per-vector int8 scale). --analysis adds, per method, the Q-bar with Gaussian noise of the int8 error's per-feature
   size (is the change int8-specific?) and with int8 of feature-centred vectors (not the product format).
Writes benchmarks/results/bench_product.json and prints a summary. The probe numbers here are one draw of folds
(too noisy for the 0.5% goal); the paired measurement is benchmarks/bench_int8_paired.py.

    .venv/bin/python benchmarks/bench_product.py [--n 200] [--size 32] [--store emb.zarr --sample-root SAMPLE]
        [--analysis]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr


def realistic(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Embedding-like vectors: low-rank signal, per-feature scales, Student-t noise (as tests/test_product.py)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)) @ rng.normal(size=(16, d)) + 0.5 * rng.standard_t(5, size=(n, d))
    return (x * rng.uniform(0.2, 3.0, size=d)).astype(np.float32)


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def cosine_stats(e: np.ndarray, d: np.ndarray) -> dict:
    e, d = e.astype(np.float64), d.astype(np.float64)
    c = (e * d).sum(-1) / (np.linalg.norm(e, axis=-1) * np.linalg.norm(d, axis=-1))
    return {"mean": float(c.mean()), "min": float(c.min()), "n": int(c.size)}


def disk(tmp: Path, n: int, dim: int, grid: int) -> dict:
    from eoembed.product import write_product
    out = {}
    for kind in ("samples", "grid"):
        if kind == "samples":
            e = realistic(n, dim, seed=1)
            da = xr.DataArray(e, dims=("sample", "feature"), coords={"sample": [f"{i:08d}" for i in range(n)]})
            chunks = {"embedding": {"chunks": (4096, 32)}}
        else:
            e = realistic(grid * grid, dim, seed=2).reshape(grid, grid, dim)
            da = xr.DataArray(e, dims=("y", "x", "feature"),
                              coords={"y": np.arange(grid, dtype=float), "x": np.arange(grid, dtype=float)})
            chunks = {"embedding": {"chunks": (32, 32, 32)}}
        t = time.perf_counter()
        prod = write_product(da, tmp / f"{kind}_int8.zarr")
        t_int8 = time.perf_counter() - t
        t = time.perf_counter()
        da.to_dataset(name="embedding").to_zarr(tmp / f"{kind}_f32.zarr", mode="w", consolidated=False,
                                                encoding=chunks)
        t_f32 = time.perf_counter() - t
        b_int8, b_f32 = du(tmp / f"{kind}_int8.zarr"), du(tmp / f"{kind}_f32.zarr")
        deq = prod.embeddings.values
        out[kind] = {"shape": list(e.shape), "bytes_int8_product": b_int8, "bytes_float32_zarr": b_f32,
                     "ratio": b_f32 / b_int8, "raw_bytes_int8_plus_scales": int(e.size + 4 * e.size // dim),
                     "raw_bytes_float32": int(4 * e.size), "raw_ratio": 4 * e.size / (e.size + 4 * e.size // dim),
                     "write_s_int8": t_int8, "write_s_float32": t_f32,
                     "cosine": cosine_stats(e.reshape(-1, dim), deq.reshape(-1, dim))}
        if kind == "grid":  # a 64 x 64 region, prefix 16, read lazily
            t = time.perf_counter()
            prod.read_region((0, 0, 63, 63)).prefix(16).embeddings.values
            out[kind]["read_region_64x64_prefix16_s"] = time.perf_counter() - t
    return out


def probe(sample_root: Path | None, store: Path | None, n: int, size: int, folds: int, tmp: Path,
          analysis: bool = False) -> dict:
    from eoembed.bench import evaluate
    from eoembed.compress.fusion import load_store
    from eoembed.data import open_cube, read_labels, sample
    from eoembed.extract import extract
    from eoembed.pipeline import _flat, raw_band_features
    from eoembed.product import dequantize_int8, quantize_int8

    t = time.perf_counter()
    root = sample_root or sample(tmp / "sample", n=n, seed=0, size=size, progress=False)
    labels, cube = read_labels(Path(root) / "labels"), open_cube(root)
    timings = {"sample_s": time.perf_counter() - t}
    t = time.perf_counter()
    extract(cube, models=["croma_base"], out=tmp / "emb.zarr", size="tiny", weights=None, progress=False)
    timings["extract_croma_tiny_s"] = time.perf_counter() - t
    methods = {"raw_bands": raw_band_features(cube),
               "croma_base_tiny_random": _flat(load_store(tmp / "emb.zarr")["croma_base"])}
    if store is not None:
        methods.update({name: _flat(da) for name, da in load_store(store).items()})
    rows = {}
    for name, da in methods.items():
        e = np.asarray(da.values, np.float32)
        codes, scales = quantize_int8(e)
        deq = da.copy(data=dequantize_int8(codes, scales))
        t = time.perf_counter()
        r32 = evaluate(da, labels, folds=folds, mode="ridge", progress=False)
        r8 = evaluate(deq, labels, folds=folds, mode="ridge", progress=False)
        from eoembed.product import write_product
        std = write_product(da.drop_vars([c for c in da.coords if c not in ("sample", "feature")]),
                            tmp / f"{name}_std.zarr", standardize=True, overwrite=True).embeddings.load()
        std = da.copy(data=std.values)
        r8s = evaluate(std, labels, folds=folds, mode="ridge", progress=False)
        dq = (r8.per_task["q_stat"] - r32.per_task["q_stat"]).abs()
        at = da.attrs
        weights = (at.get("weights") or ("random init" if str(at.get("random_weights")) == "True" else None)
                   or ("none (training-free features)" if "method" in at else "random init (tiny, as the demo)"))
        rows[name] = {"dim": int(e.shape[1]), "weights": str(weights),
                      "cosine": cosine_stats(e, deq.values),
                      "q_bar_float32": float(r32.overall_q), "q_bar_int8": float(r8.overall_q),
                      "q_bar_change": float(r8.overall_q - r32.overall_q),
                      "q_bar_change_relative": float((r8.overall_q - r32.overall_q) / abs(r32.overall_q))
                      if r32.overall_q else None,
                      "standardized_int8": {
                          "cosine": cosine_stats(e, std.values), "q_bar": float(r8s.overall_q),
                          "q_bar_change_relative": float((r8s.overall_q - r32.overall_q) / abs(r32.overall_q))
                          if r32.overall_q else None},
                      "max_abs_task_q_change": float(dq.max()), "task_q_worst": str(dq.idxmax()),
                      "eval_s": time.perf_counter() - t}
        if analysis:  # is the change int8-specific? the same per-feature error size as Gaussian noise; centring
            err = (e - deq.values).std(0)
            noisy = e + (np.random.default_rng(0).normal(size=e.shape) * err).astype(np.float32)
            mu = e.mean(0)
            c_codes, c_scales = quantize_int8(e - mu)
            centred = dequantize_int8(c_codes, c_scales) + mu
            rows[name]["analysis"] = {
                "q_bar_gaussian_noise_same_per_feature_std": float(
                    evaluate(da.copy(data=noisy), labels, folds=folds, mode="ridge", progress=False).overall_q),
                "q_bar_int8_of_feature_centred_vectors": float(
                    evaluate(da.copy(data=centred), labels, folds=folds, mode="ridge", progress=False).overall_q),
                "cosine_int8_of_feature_centred_vectors": cosine_stats(e, centred)}
    return {"n": n, "size": size, "folds": folds, "mode": "ridge", "sample_root": str(root),
            "store": None if store is None else str(store), "timings": timings, "methods": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--analysis", action="store_true", help="also score Gaussian noise of the int8 error's size "
                    "and int8 of feature-centred vectors (2 more evaluations per method)")
    ap.add_argument("--n-disk", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--grid", type=int, default=192)
    ap.add_argument("--sample-root", default=None, help="reuse a generated sample (must match --store)")
    ap.add_argument("--store", default=None, help="embedding store of the same sample (its models are added)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_product.json"))
    a = ap.parse_args()
    if a.store and not a.sample_root:
        ap.error("--store needs --sample-root (the sample it was extracted from)")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res_disk = disk(tmp, a.n_disk, a.dim, a.grid)
        res_probe = probe(Path(a.sample_root) if a.sample_root else None, Path(a.store) if a.store else None,
                          a.n, a.size, a.folds, tmp, a.analysis)
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "load_avg_at_end": os.getloadavg()},
              "disk": res_disk, "probe": res_probe, "total_s": time.perf_counter() - t0,
              "targets": {"disk_ratio": ">= 4x smaller", "mean_cosine": ">= 0.999", "probe": "within 0.5%"}}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    for kind, r in res_disk.items():
        print(f"{kind:8s} {r['shape']}: int8 product {r['bytes_int8_product'] / 1e6:.2f} MB vs float32 Zarr "
              f"{r['bytes_float32_zarr'] / 1e6:.2f} MB = {r['ratio']:.2f}x smaller (raw {r['raw_ratio']:.2f}x); "
              f"mean cosine {r['cosine']['mean']:.6f}")
    for name, r in res_probe["methods"].items():
        print(f"{name:24s} d={r['dim']:4d} cosine mean {r['cosine']['mean']:.6f} min {r['cosine']['min']:.6f}; "
              f"Q-bar ridge float32 {r['q_bar_float32']:.3f} int8 {r['q_bar_int8']:.3f} "
              f"(change {r['q_bar_change']:+.4f}); standardised int8 {r['standardized_int8']['q_bar']:.3f} "
              f"(relative {r['standardized_int8']['q_bar_change_relative']:+.2%})")
        if "analysis" in r:
            x = r["analysis"]
            print(f"{'':24s} Q-bar with Gaussian noise of the same per-feature size "
                  f"{x['q_bar_gaussian_noise_same_per_feature_std']:.3f}; int8 of feature-centred vectors "
                  f"{x['q_bar_int8_of_feature_centred_vectors']:.3f}")
    print(f"wrote {out} ({result['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
