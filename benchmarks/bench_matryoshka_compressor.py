"""Matryoshka fusion compressor vs compressors trained at each prefix size alone (issue 10 goal: each prefix's
report Q-bar within 10% of the single-size compressor's).

Data: the fused store of ``eoembed demo`` (default /work/main/out/demo/emb.zarr, read only; 200 samples, 6 tiny
models, 1,696 fused features) and its NeuCo labels (11 tasks). Settings as the demo's compressor: hidden 2048,
20 epochs, eval every 5, in-loop Q-bar with the ridge probe and 10 folds, selection on half of the labelled samples
and report on the other half (the same split for every run, select_seed 0).

Runs (per seed): the Matryoshka compressor (out_dim 128, prefixes 16, 32, 64, 128); a plain compressor at each
size alone (out_dim 16, 32, 64, 128); and, as the "unordered" reference, the first k coordinates of the plain
128-d compressor (its selected epoch, scored on the same report split). Every number is the report Q-bar of the
run's selected epoch (selection on the full-size selection Q-bar, as the library default). Also records the cost
of in-loop Q per prefix (time/q_s of the full size vs time/q_prefix_s of the smaller prefixes).
Lower-noise paired check (``--report-repeats R``, default 5): the selected embeddings of the Matryoshka prefix and of
the single-size compressor are re-scored on the same report samples with R further fold draws (split_seed 100..),
and ``ratio_to_single_repeated`` compares the means (same folds for both: fold noise cancels in the ratio).

    .venv/bin/python benchmarks/bench_matryoshka_compressor.py [--store ...] [--labels ...] [--seeds 1337 7]
        [--epochs 20 --eval-every 5 --lr 1e-4] [--out results/....json]
Committed results (one seed per file, each run ~2 min): bench_matryoshka_compressor.json (seed 1337, demo
schedule), *_seed7.json (seed 7), *_lr1e-3.json / *_lr1e-3_seed7.json (40 epochs, lr 1e-3, eval every 10).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from eoembed.compress import fuse, score_split, train_compressor

DEMO = Path("/work/main/out/demo")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=str(DEMO / "emb.zarr"))
    ap.add_argument("--labels", default=str(DEMO / "sample" / "labels"))
    ap.add_argument("--prefixes", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1337])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--mode", default="ridge")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=None, help="AdamW lr (default: the library's 1e-4)")
    ap.add_argument("--report-repeats", type=int, default=5, help="paired re-scoring of the report part: the "
                    "selected embeddings of both compressors scored on the same --report-repeats extra fold draws")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_matryoshka_compressor.json"))
    a = ap.parse_args()
    fused = fuse(a.store)
    ks, out_dim = list(a.prefixes), max(a.prefixes)
    kw = dict(epochs=a.epochs, eval_every=a.eval_every, hidden=a.hidden, q_folds=a.folds, q_mode=a.mode,
              progress=False, device="cpu", lr=a.lr)
    runs = []
    t_all = time.perf_counter()
    for seed in a.seeds:
        t0 = time.perf_counter()
        mat = train_compressor(fused, a.labels, out_dim=out_dim, prefixes=ks, seed=seed, **kw)
        t_mat = time.perf_counter() - t0
        h = mat.history
        ps = mat.prefix_scores().set_index("k")
        single, trunc, t_single = {}, {}, {}
        for k in ks:
            t0 = time.perf_counter()
            r = train_compressor(fused, a.labels, out_dim=k, seed=seed, **kw)
            t_single[k] = time.perf_counter() - t0
            single[k] = {"q_report": r.q_report, "q_select": r.q_select, "selected_epoch": r.selected_epoch,
                         "emb": r.embeddings,
                         "best_mse": r.best_mse, "train_s_per_epoch": float(r.history["time/train_s"].mean()),
                         "q_s_per_eval": float(r.history["time/q_s"].mean())}
            if k == out_dim:
                for j in ks:
                    trunc[j] = score_split(r.prefix_embeddings(j), r.split, parts=("report",),
                                           **r.q_kwargs)["q_report"]
        rows = []

        def rep(emb):  # report Q-bar averaged over extra fold draws (split_seed 100, 101, ...), same for both
            return float(np.mean([score_split(emb, mat.split, parts=("report",), **{**mat.q_kwargs,
                                  "split_seed": 100 + i})["q_report"] for i in range(a.report_repeats)]))

        for k in ks:
            qm, qs = float(ps.loc[k, "q_report"]), single[k]["q_report"]
            pm, psg = (rep(mat.prefix_embeddings(k)), rep(single[k]["emb"])) if a.report_repeats else (None, None)
            rows.append({"k": k, "matryoshka_q_report": qm, "matryoshka_val_mse": float(ps.loc[k, "val_mse"]),
                         "single_q_report": qs, "single_selected_epoch": single[k]["selected_epoch"],
                         "plain_truncated_q_report": float(trunc[k]),
                         "ratio_to_single": qm / qs if qs > 0 else None,
                         "within_10pct": bool(qm >= 0.9 * qs) if qs > 0 else None,
                         "single_best_val_mse": float(single[k]["best_mse"]),
                         "matryoshka_q_report_repeated": pm, "single_q_report_repeated": psg,
                         "ratio_to_single_repeated": pm / psg if psg else None,
                         "within_10pct_repeated": bool(pm >= 0.9 * psg) if psg else None})
        q_full = float(h["time/q_s"].mean())
        q_pref = float(h["time/q_prefix_s"].mean())
        runs.append({"seed": seed, "matryoshka_selected_epoch": mat.selected_epoch, "prefixes": rows,
                     "history_q_report_per_prefix": {str(k): h[f"q_report/k{k}"].round(4).tolist() for k in ks},
                     "history_val_mse_per_prefix": {str(k): h[f"val_mse/k{k}"].round(5).tolist() for k in ks},
                     "history_epochs": h["epoch"].tolist(),
                     "report_repeats": a.report_repeats,
                     "time_s": {"matryoshka_total": t_mat, "single_total": t_single,
                                "single_train_per_epoch": {k: v["train_s_per_epoch"] for k, v in single.items()},
                                "train_per_epoch_matryoshka": float(h["time/train_s"].mean()),
                                "q_full_per_eval": q_full, "q_smaller_prefixes_per_eval": q_pref,
                                "q_cost_factor_vs_plain": (q_full + q_pref) / q_full}})
        print(f"seed {seed}: matryoshka selected epoch {mat.selected_epoch}; "
              f"in-loop Q {q_full:.2f}s full + {q_pref:.2f}s for {len(ks) - 1} smaller prefixes per evaluation")
        print(f"{'k':>5} {'matryoshka':>11} {'single':>8} {'ratio':>6} {'plain[:k]':>10} {'ratio(rep)':>10}")
        for r in rows:
            ratio = f"{r['ratio_to_single']:.3f}" if r["ratio_to_single"] is not None else "n/a"
            rr = f"{r['ratio_to_single_repeated']:.3f}" if r["ratio_to_single_repeated"] is not None else "n/a"
            print(f"{r['k']:>5} {r['matryoshka_q_report']:>11.3f} {r['single_q_report']:>8.3f} {ratio:>6} "
                  f"{r['plain_truncated_q_report']:>10.3f} {rr:>10}")
    for r in single.values():
        r.pop("emb", None)
    res = {"benchmark": "matryoshka_compressor", "store": a.store, "labels": a.labels, "n_samples": fused.shape[0],
           "in_dim": fused.shape[1], "prefixes": ks, "settings": {k: v for k, v in kw.items() if k != "progress"},
           "select": "full-size q_select (library default); report = other half of the labelled samples",
           "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads (2-core machine)",
           "load_avg_at_end": os.getloadavg(),
           "total_s": time.perf_counter() - t_all, "runs": runs}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1, default=lambda v: float(v) if np.isscalar(v) else str(v)))
    print(f"wrote {a.out} ({res['total_s']:.0f}s)")


if __name__ == "__main__":
    main()
