"""Compressor epoch time with and without in-loop Q-bar on a 2,000-sample synthetic store.

Store: 5 models with base-size dims (copernicusfm_base, croma_base, dofa_base, scalemae 4 seasons x 768;
prithvi 1536 all-season) = 13,824 fused features; 11 tasks like the sample dataset (10 regression, 1 binary).
Compressor at default sizes (hidden 2048, out 1024, batch 32, val_fraction 0.2 -> 1,600 training samples).

Measures (through train_compressor itself, eval_every=1 so every epoch has both numbers):
- train time of one epoch; val-MSE time; in-loop Q time with the default IN_LOOP_Q_FOLDS;
- evaluate() alone on the 2,000 x 1,024 encoded embeddings for several fold counts;
- overhead of in-loop Q at eval_every=5 = q_time / (5 * epoch_time) for each fold count.
Writes benchmarks/results/bench_compress.json and prints a table.

    .venv/bin/python benchmarks/bench_compress.py [--n 2000] [--epochs 2] [--folds 5 10 20 40] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

MODELS = {"copernicusfm_base": (4, 768), "croma_base": (4, 768), "dofa_base": (4, 768),
          "prithvi_eo_v2_300": (None, 1536), "scalemae_large": (4, 768)}
TASKS = {"biomass_mean": "regression", "biomass_std": "regression", "crops": "regression",
         "landcover_agriculture": "regression", "landcover_forest": "regression", "clouds_reg": "regression",
         "heatisland_mean": "regression", "heatisland_std": "regression", "nodata": "regression",
         "random_reg": "regression", "random_cls": "classification"}


def synthetic(n: int, seed: int = 0) -> tuple[dict[str, xr.DataArray], pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.asarray([f"{i:064x}" for i in range(n)], dtype=object)
    latent = rng.normal(size=(n, 16)).astype(np.float32)
    data = {}
    for name, (ns, nf) in MODELS.items():
        width = (ns or 1) * nf
        vals = latent @ rng.normal(size=(16, width)).astype(np.float32) + rng.normal(size=(n, width)).astype(
            np.float32)
        shape = (n, ns, nf) if ns else (n, nf)
        dims = ("sample", "season", "feature") if ns else ("sample", "feature")
        data[name] = xr.DataArray(vals.reshape(shape), dims=dims, coords={"sample": ids})
    lab = {}
    for k, t in enumerate(TASKS):
        y = latent[:, k % 16] + 0.5 * rng.normal(size=n) if t != "random_reg" else rng.uniform(0, 20, n)
        lab[t] = y
    lab["random_cls"] = (lab["random_reg"] > 10).astype(float)
    labels = pd.DataFrame(lab, index=pd.Index(ids, name="id"))
    labels.attrs["task_types"] = dict(TASKS)
    return data, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--folds", type=int, nargs="+", default=[5, 10, 20, 40])
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_compress.json"))
    args = ap.parse_args()

    from eoembed.bench import evaluate
    from eoembed.compress import IN_LOOP_Q_FOLDS, fuse, train_compressor
    from eoembed.compress.train import encode

    data, labels = synthetic(args.n)
    t0 = time.perf_counter()
    fused = fuse(data)
    t_fuse = time.perf_counter() - t0
    res = train_compressor(fused, labels, epochs=args.epochs, eval_every=1, device=args.device, progress=False)
    h = res.history
    epoch_s = float(h["time/train_s"].median())
    q_s = float(h["time/q_s"].median())
    mse_s = float(h["time/val_mse_s"].median())
    z = encode(res.model, fused.values, args.device)
    emb = xr.DataArray(z, dims=("sample", "feature"), coords={"sample": fused["sample"].values})
    folds = {}
    for k in args.folds:
        t0 = time.perf_counter()
        ev = evaluate(emb, labels, folds=k, progress=False, device=args.device)
        dt = time.perf_counter() - t0
        folds[k] = {"eval_s": dt, "overhead_at_eval_every_5": dt / (5 * epoch_s), "q_bar": float(ev.overall_q)}
    result = {
        "n_samples": args.n, "in_dim": int(fused.shape[1]), "models": {k: list(v) for k, v in MODELS.items()},
        "n_tasks": len(TASKS), "hidden": 2048, "out_dim": 1024, "batch_size": 32, "epochs_timed": args.epochs,
        "device": str(args.device or ("cuda" if torch.cuda.is_available() else "cpu")),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "fuse_s": t_fuse, "epoch_train_s": epoch_s, "val_mse_s": mse_s,
        "in_loop_q_folds": IN_LOOP_Q_FOLDS, "in_loop_q_s": q_s,
        "epoch_with_q_s": epoch_s + mse_s + q_s, "epoch_without_q_s": epoch_s + mse_s,
        "in_loop_overhead_eval_every_1": q_s / epoch_s, "in_loop_overhead_eval_every_5": q_s / (5 * epoch_s),
        "evaluate_by_folds": folds,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"fused {args.n} x {fused.shape[1]} ({len(MODELS)} models), device {result['device']}")
    print(f"{'':32s}{'seconds':>10s}")
    print(f"{'epoch (train only)':32s}{epoch_s:10.2f}")
    print(f"{'val MSE':32s}{mse_s:10.2f}")
    print(f"{'in-loop Q (' + str(IN_LOOP_Q_FOLDS) + ' folds)':32s}{q_s:10.2f}")
    print(f"{'overhead @ eval_every=5':32s}{q_s / (5 * epoch_s):10.1%}")
    print(f"\n{'folds':>6s}{'evaluate s':>12s}{'overhead@5':>12s}{'Q-bar':>8s}")
    for k, v in folds.items():
        print(f"{k:6d}{v['eval_s']:12.2f}{v['overhead_at_eval_every_5']:12.1%}{v['q_bar']:8.2f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
