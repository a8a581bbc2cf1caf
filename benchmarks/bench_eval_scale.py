"""Compat evaluation at scale: time per sample and peak memory at 10k, 30k and 100k samples x 1,024 dims x 11 tasks
x 40 folds (10 epochs) on CPU, and scores identical whatever the block size.

Each size runs in its own subprocess (so its peak RSS is its own): synthetic float32 embeddings with 8 latent
directions, 11 tasks like the challenge's (10 regression, 1 binary), ``evaluate(X, labels, ids=..., folds=40,
device="cpu")`` timed from the array to the scores (label matching, standardisation, splits, probes). Peak memory =
the child's maximum RSS (``ru_maxrss``), also reported above the RSS it had before evaluate (data generated).
``--check-blocks N`` re-runs the first size with ``block_size=N`` probes and checks every fold score is identical.
Writes benchmarks/results/bench_eval_scale.json (merged with earlier sizes of the same settings).
Usage: python benchmarks/bench_eval_scale.py [--sizes 10000 30000 100000] [--dim 1024] [--check-blocks 16]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _synthetic import TASKS  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
n, dim, folds, epochs, block = (int(a) for a in sys.argv[1:6])
sys.path.insert(0, %(bench)r)
from _synthetic import eleven_tasks
X, ids, lab = eleven_tasks(n, dim)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
from eoembed.bench import evaluate
import eoembed.bench.core as core
orig = core._run
core._run = lambda *a, **k: orig(*a, **{**k, "block_size": block or None})
evaluate(X[:200], lab.iloc[:200], ids=ids[:200], folds=2, epochs=1, device="cpu", progress=False)  # compile/warm
rss_warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
t0 = time.perf_counter(); c0 = time.process_time()
res = evaluate(X, lab, ids=ids, folds=folds, epochs=epochs, device="cpu", progress=False)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print("RESULT", json.dumps({"n": n, "seconds": wall, "cpu_seconds": cpu,
      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
      "rss_before_evaluate_gib": rss_warm, "rss_after_data_gib": rss0,
      "q": res.per_task["q_stat"].to_dict(), "fold_scores": res.folds["score"].tolist()}))
""" % {"bench": str(Path(__file__).resolve().parent)}


def run(n, dim, folds, epochs, block, nice):
    cmd = [sys.executable, "-c", CHILD, str(n), str(dim), str(folds), str(epochs), str(block)]
    if nice:
        cmd = ["nice", "-n", str(nice)] + cmd
    load = os.getloadavg()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    out["loadavg_before"] = load
    out["loadavg_after"] = os.getloadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--folds", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--check-blocks", type=int, default=0, help="re-run the first size with this block size")
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_eval_scale.json"))
    args = ap.parse_args()
    path = Path(args.out)
    old = json.loads(path.read_text()) if path.is_file() else {}
    same = old.get("settings") == {"dim": args.dim, "folds": args.folds, "epochs": args.epochs, "tasks": len(TASKS)}
    rows = {r["n"]: r for r in old.get("runs", [])} if same else {}
    result = {"settings": {"dim": args.dim, "folds": args.folds, "epochs": args.epochs, "tasks": len(TASKS)},
              "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, no GPU used",
              "platform": platform.platform()}
    for n in args.sizes:
        r = run(n, args.dim, args.folds, args.epochs, 0, args.nice)
        r["ms_per_sample"] = 1000 * r["seconds"] / n
        r["cpu_ms_per_sample"] = 1000 * r["cpu_seconds"] / n
        print(f"n={n}: {r['seconds']:.1f} s wall ({r['cpu_seconds']:.1f} s CPU), {r['ms_per_sample']:.2f} ms/sample, "
              f"peak RSS {r['peak_rss_gib']:.2f} GiB (before evaluate {r['rss_before_evaluate_gib']:.2f}), "
              f"load {r['loadavg_before'][0]:.1f}", flush=True)
        if args.check_blocks and n == args.sizes[0]:
            b = run(n, args.dim, args.folds, args.epochs, args.check_blocks, args.nice)
            r["block_check"] = {"block_size": args.check_blocks, "identical": b["fold_scores"] == r["fold_scores"],
                                "seconds": b["seconds"], "peak_rss_gib": b["peak_rss_gib"]}
            print(f"  block_size={args.check_blocks}: identical scores {r['block_check']['identical']}, "
                  f"{b['seconds']:.1f} s, peak RSS {b['peak_rss_gib']:.2f} GiB", flush=True)
        r.pop("fold_scores")
        rows[n] = r
        result["runs"] = [rows[k] for k in sorted(rows)]
        path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
