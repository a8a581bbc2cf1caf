"""Per-fold NeuCo-Bench reference loop vs the batched eoembed engine, same data, same splits, same run.

2,000 x 1,024 synthetic embeddings, five tasks (four regression, one binary), K=40 folds, 10 epochs.
Both sides are timed at every thread count of --threads (default 1 and 2) in the same run, the engine as the best
of --repeats runs, the reference as the best of --reference-repeats runs; the speed-up is reported per thread count
(same count on both sides) and the best of those fair ratios is kept. Prints the times, the speed-ups and the score
differences; writes benchmarks/results/bench_eval.json.
Usage: python benchmarks/bench_eval.py [--n 2000] [--dim 1024] [--folds 40] [--threads 1 2] [--skip-reference]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from eoembed.bench.core import _run, _splits  # noqa: E402
from eoembed.bench.io import prepare  # noqa: E402
from eoembed.bench.metrics import q_score  # noqa: E402


def synthetic(n: int, dim: int, seed: int = 0):
    """Embeddings with a few informative directions; four regression targets and one binary target."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 8))
    X = (latent @ rng.standard_normal((8, dim)) * 0.5 + rng.standard_normal((n, dim))).astype(np.float32)
    ids = np.array([f"s{i:05d}" for i in range(n)])
    lab = pd.DataFrame({
        "reg_strong": latent[:, 0] + 0.3 * rng.standard_normal(n),
        "reg_mixed": latent[:, 1] * latent[:, 2] + latent[:, 3],
        "reg_weak": 0.3 * latent[:, 4] + rng.standard_normal(n),
        "reg_noise": rng.standard_normal(n),
        "cls_binary": (latent[:, 5] + 0.5 * rng.standard_normal(n) > 0).astype(float),
    }, index=pd.Index(ids, name="id"))
    lab.attrs["task_types"] = {c: ("classification" if c.startswith("cls") else "regression") for c in lab.columns}
    return X, ids, lab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--folds", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="torch intra-op thread counts; both sides run at each")
    ap.add_argument("--repeats", type=int, default=3, help="engine runs per thread count (best kept)")
    ap.add_argument("--reference-repeats", type=int, default=1, help="reference runs per thread count (best kept)")
    ap.add_argument("--noise-seeds", type=int, default=5, help="extra engine seeds to measure the Q noise floor")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_eval.json"))
    args = ap.parse_args()

    X, ids, lab = synthetic(args.n, args.dim)
    prep = prepare(X, lab, ids=ids)
    splits = _splits(prep, args.folds, 42)
    load_before = os.getloadavg()
    _run(prep, {t: s[:2] for t, s in splits.items()}, "compat", "neuco", 1, 0, torch.device("cpu"), False)  # warm-up

    timings, ours, ref = [], None, None
    for th in args.threads:
        entry = {"threads": th, "loadavg_before": os.getloadavg()}
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            sc, _ = _run(prep, splits, "compat", "neuco", args.epochs, 42, torch.device("cpu"), False, threads=th)
            runs.append(time.perf_counter() - t0)
        entry.update(seconds_batched=min(runs), seconds_batched_runs=runs)
        if ours is None:
            ours = sc
        else:                                       # the engine's scores do not depend on the thread count
            entry["max_score_diff_vs_first_threads"] = float(np.nanmax(np.abs(sc - ours)))
        if not args.skip_reference:
            from neuco_reference import reference_scores

            threads_before = torch.get_num_threads()
            torch.set_num_threads(th)
            runs = []
            for _ in range(args.reference_repeats):
                t0 = time.perf_counter()
                r = reference_scores(prep, splits, epochs=args.epochs, seed=42)
                runs.append(time.perf_counter() - t0)
            torch.set_num_threads(threads_before)
            ref = r if ref is None else ref
            entry.update(seconds_reference=min(runs), seconds_reference_runs=runs,
                         speedup=min(runs) / entry["seconds_batched"])
        entry["loadavg_after"] = os.getloadavg()
        timings.append(entry)
        print(f"threads {th}: batched engine {entry['seconds_batched']:.3f} s (best of {args.repeats})"
              + (f", per-fold reference {entry['seconds_reference']:.2f} s, speed-up {entry['speedup']:.1f}x"
                 if "speedup" in entry else "")
              + f"; load average {entry['loadavg_before']} -> {entry['loadavg_after']}")
    # Noise floor: the same engine with other seeds (splits fixed), as NeuCo-Bench re-run with other global seeds.
    seeds_q = np.array([[q_score(r) for r in _run(prep, splits, "compat", "neuco", args.epochs, s,
                                                   torch.device("cpu"), False)[0]]
                        for s in range(1, 1 + args.noise_seeds)])
    load_after = os.getloadavg()

    rows = []
    for i, t in enumerate(prep.tasks):
        row = {"task": t, "type": prep.task_types[t], "mean_batched": float(ours[i].mean()),
               "std_batched": float(ours[i].std()), "q_batched": q_score(ours[i]),
               "q_seed_std": float(seeds_q[:, i].std(ddof=1)) if len(seeds_q) > 1 else None}
        if ref is not None:
            row.update(mean_reference=float(ref[i].mean()), std_reference=float(ref[i].std()),
                       q_reference=q_score(ref[i]))
            row["mean_diff"] = row["mean_batched"] - row["mean_reference"]
            row["q_diff"] = row["q_batched"] - row["q_reference"]
        rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    fair = [e for e in timings if "speedup" in e]
    best = max(fair, key=lambda e: e["speedup"]) if fair else None
    first = timings[0]
    if best is not None:
        print(f"best fair speed-up: {best['speedup']:.1f}x at {best['threads']} thread(s) on both sides")
    print(f"load average before {load_before}, after {load_after}")
    result = {
        "n": args.n, "dim": args.dim, "folds": args.folds, "epochs": args.epochs, "tasks": len(prep.tasks),
        "timings": timings,
        "best_fair_speedup": best["speedup"] if best else None,
        "best_fair_threads": best["threads"] if best else None,
        # Single-number summary (kept for older readers): the first thread count of --threads.
        "seconds_batched": first["seconds_batched"], "seconds_reference": first.get("seconds_reference"),
        "speedup": first.get("speedup"), "engine_threads": first["threads"],
        "reference_threads": first["threads"] if "seconds_reference" in first else None,
        "scores": rows, "scores_threads": first["threads"],
        "loadavg_before": load_before, "loadavg_after": load_after,
        "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "platform": platform.platform(), "device": "cpu",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
