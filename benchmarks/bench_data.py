"""Data benchmark: writing the synthetic sample (``eoembed.data.sample``) and reading it back lazily.

Measures samples/s and peak memory of (1) ``sample(n, size)`` (three zipped Zarr files per sample),
(2) ``open_cube`` (metadata only), (3) a full lazy read of every value (per-sample dask chunks reduced to
per-band means, so memory stays flat) and (4) ``validate_cube`` streaming every value once.
Each step runs in a fresh child process; peak memory = its max RSS (and the part above the RSS after imports).
Prints a table and writes benchmarks/results/bench_data.json.

    python benchmarks/bench_data.py [--n 500] [--size 264] [--out DIR] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "bench_data.json"


def _child(step: str, root: Path, n: int, size: int) -> dict:
    """Run one step in this (fresh) process; peak memory = max RSS minus the RSS after imports."""
    import dask

    from eoembed.data import open_cube, sample, validate_cube
    base = _rss_mib()
    t0 = time.perf_counter()
    extra = {}
    if step == "sample":
        sample(root, n=n, seed=0, size=size, progress=False)
        extra["disk_mib"] = round(sum(f.stat().st_size for f in Path(root, "data").rglob("*.zarr.zip")) / 2**20, 1)
    else:
        cube = open_cube(root)
        with dask.config.set(scheduler="threads", num_workers=2):
            if step == "read":
                cube["bands"].mean(("y", "x")).compute()
                extra["mib_per_s"] = round(cube["bands"].nbytes / 2**20 / (time.perf_counter() - t0), 1)
            elif step == "validate":
                validate_cube(cube)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(dt, 3), "samples_per_s": round(n / dt, 2), "rss_after_imports_mib": round(base, 1),
            "peak_rss_mib": round(peak, 1), "peak_over_imports_mib": round(peak - base, 1), **extra}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


STEPS = {"sample": "sample (write)", "open": "open_cube (metadata)", "read": "lazy full read",
         "validate": "validate_cube (stream)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--size", type=int, default=264)
    ap.add_argument("--out", type=Path, default=None, help="dataset folder (default: a temp dir, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the generated dataset")
    ap.add_argument("--child", choices=list(STEPS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.out, args.n, args.size)))
        return

    tmp = None
    if args.out is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_data_"))
        args.out = tmp / "sample"
    rows = []
    try:
        for step, label in STEPS.items():
            cmd = [sys.executable, __file__, "--child", step, "--out", str(args.out), "--n", str(args.n),
                   "--size", str(args.size)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append({"step": label, "n": args.n, **json.loads(res.stdout.strip().splitlines()[-1])})
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"{'step':<26}{'n':>6}{'seconds':>10}{'samples/s':>11}{'peak RSS MiB':>14}{'over imports':>14}")
    for r in rows:
        print(f"{r['step']:<26}{r['n']:>6}{r['seconds']:>10.2f}{r['samples_per_s']:>11.1f}"
              f"{r['peak_rss_mib']:>14.1f}{r['peak_over_imports_mib']:>14.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    info = {"n": args.n, "size": args.size, "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "load_avg_at_end": os.getloadavg(), "rows": rows}
    RESULTS.write_text(json.dumps(info, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
