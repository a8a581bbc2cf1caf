"""Extraction benchmark: peak memory (RSS) must stay flat in the number of samples; throughput in samples/s.

Each configuration runs in a fresh child process on a lazily generated (dask) cube, so nothing but the
streaming extraction itself can hold memory. Prints a table and writes benchmarks/results/bench_extract.json.

    python benchmarks/bench_extract.py [--sizes 200 2000] [--model croma_base] [--image-size 32]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "bench_extract.json"


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def lazy_cube(n: int, size: int, chunk: int = 16):
    """A dask-backed cube in eoembed's form whose values are generated chunk by chunk (never all in memory)."""
    import dask.array as da
    import numpy as np
    import xarray as xr

    from eoembed.data.bands import SEASONS, all_band_keys
    bands = all_band_keys()
    vals = da.random.default_rng(0).uniform(0, 3000, size=(n, len(SEASONS), len(bands), size, size),
                                            chunks=(chunk, -1, -1, -1, -1)).astype("float32")
    return xr.Dataset({"bands": (("sample", "season", "band", "y", "x"), vals)},
                      coords={"sample": np.array([f"s{i:06d}" for i in range(n)], dtype=object),
                              "season": list(SEASONS), "band": bands,
                              "modality": ("band", [b.split("/")[0] for b in bands]),
                              "band_name": ("band", [b.split("/")[1] for b in bands]),
                              "lat": ("sample", np.zeros(n)), "lon": ("sample", np.zeros(n))},
                      attrs={"source": f"bench lazy cube n={n}", "missing_bands": []})


def child(n: int, model: str, size: int, batch_size: int) -> dict:
    import torch

    from eoembed.extract import build_model, extract
    torch.set_num_threads(2)
    emb = build_model(model, weights="random", size="tiny", device="cpu")
    cube = lazy_cube(n, size)
    with tempfile.TemporaryDirectory() as tmp:  # warm-up (first-call allocations, thread pools)
        extract(cube.isel(sample=slice(0, batch_size)), [emb], out=Path(tmp) / "w.zarr", batch_size=batch_size,
                progress=False)
    base = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = extract(cube, [emb], out=Path(tmp) / "emb.zarr", batch_size=batch_size, progress=False)
        secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n_samples": n, "model": f"{model} (tiny, random)", "image_size": size, "batch_size": batch_size,
            "chunk_size": 8 * batch_size, "seconds": round(secs, 3), "samples_per_s": round(n / secs, 1),
            "rss_after_setup_mb": round(base, 1), "peak_rss_mb": round(peak, 1),
            "peak_minus_setup_mb": round(peak - base, 1), "chunks": res.chunks_total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--model", default="croma_base")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()
    if a.child is not None:
        print(json.dumps(child(a.child, a.model, a.image_size, a.batch_size)))
        return
    rows = []
    for n in a.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--model", a.model, "--image-size", str(a.image_size),
               "--batch-size", str(a.batch_size)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"benchmark child for n={n} failed:\n{r.stderr[-3000:]}")
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    hdr = f"{'samples':>8} {'seconds':>8} {'samples/s':>10} {'peak RSS MiB':>13} {'peak - setup':>13}"
    print(hdr)
    for r in rows:
        print(f"{r['n_samples']:>8} {r['seconds']:>8} {r['samples_per_s']:>10} {r['peak_rss_mb']:>13} "
              f"{r['peak_minus_setup_mb']:>13}")
    growth = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    print(f"peak RSS change from {rows[0]['n_samples']} to {rows[-1]['n_samples']} samples: {growth:+.1f} MiB")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"benchmark": "extract", "python": platform.python_version(),
                                 "machine": platform.machine(), "cpus_note": "shared 2-core machine",
                                 "runs": rows, "peak_rss_growth_mb": round(growth, 1)}, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
