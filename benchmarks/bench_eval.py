"""Per-fold NeuCo-Bench reference loop vs the batched eoembed engine, same data, same splits, same run.

2,000 x 1,024 synthetic embeddings, five tasks (four regression, one binary), K=40 folds, 10 epochs.
Prints both times, the speed-up and the score differences; writes benchmarks/results/bench_eval.json.
Usage: python benchmarks/bench_eval.py [--n 2000] [--dim 1024] [--folds 40] [--skip-reference]
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
    ap.add_argument("--reference-threads", type=int, default=1,
                    help="torch threads for the reference loop (1 = its fastest setting on a shared 2-core machine)")
    ap.add_argument("--noise-seeds", type=int, default=5, help="extra engine seeds to measure the Q noise floor")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_eval.json"))
    args = ap.parse_args()

    X, ids, lab = synthetic(args.n, args.dim)
    prep = prepare(X, lab, ids=ids)
    splits = _splits(prep, args.folds, 42)
    load_before = os.getloadavg()
    _run(prep, {t: s[:2] for t, s in splits.items()}, "compat", "neuco", 1, 0, torch.device("cpu"), False)  # warm-up

    t0 = time.perf_counter()
    ours, _ = _run(prep, splits, "compat", "neuco", args.epochs, 42, torch.device("cpu"), False)
    t_ours = time.perf_counter() - t0
    t_ref, ref = None, None
    if not args.skip_reference:
        from neuco_reference import reference_scores

        threads_before = torch.get_num_threads()
        torch.set_num_threads(args.reference_threads)
        t0 = time.perf_counter()
        ref = reference_scores(prep, splits, epochs=args.epochs, seed=42)
        t_ref = time.perf_counter() - t0
        torch.set_num_threads(threads_before)
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
    print(f"batched engine: {t_ours:.2f} s")
    if t_ref is not None:
        print(f"per-fold reference: {t_ref:.2f} s   speed-up: {t_ref / t_ours:.1f}x")
    print(f"load average before {load_before}, after {load_after}; "
          f"threads: engine 1, reference {args.reference_threads}")
    result = {
        "n": args.n, "dim": args.dim, "folds": args.folds, "epochs": args.epochs, "tasks": len(prep.tasks),
        "seconds_batched": t_ours, "seconds_reference": t_ref,
        "speedup": (t_ref / t_ours) if t_ref else None,
        "scores": rows, "loadavg_before": load_before, "loadavg_after": load_after,
        "cpu_count": os.cpu_count(), "engine_threads": 1, "reference_threads": args.reference_threads,
        "torch": torch.__version__,
        "platform": platform.platform(), "device": "cpu",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
