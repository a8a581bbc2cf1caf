"""Does the iso-FLOP toolkit recover planted scaling exponents, and do its intervals cover them?

Synthetic sweeps (eoembed.scaling.synthetic_run): loss = E + A/N^alpha + B/D^beta (planted N_opt ~ C^0.36,
D_opt ~ C^0.64) and score = S0 - A_s/N^alpha_s - B_s/D^beta_s (N_opt ~ C^0.6, D_opt ~ C^0.4); 5 budgets
1e14..1e18 FLOPs x 13 encoder sizes 10^4.5..10^7.5 (fixed for every budget), D from the budget. For each noise
level and ``--reps`` noise draws: the fitted exponent of N_opt, whether the 95% bootstrap interval and the
leave-one-bucket-out range hold the planted value, with the quadratic fitted near the best run (window 1 decade)
and over all sizes (window None). Also times the sweep runner (65 runs, parquet rewrite per run) in this process
and on a 2-worker dask LocalCluster. Writes benchmarks/results/bench_scaling.json and prints a table.

    .venv/bin/python benchmarks/bench_scaling.py [--reps 10] [--n-boot 200]
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
import pandas as pd

import eoembed.scaling as sc

BUDGETS = np.logspace(14, 18, 5)
N_GRID = np.logspace(4.5, 7.5, 13)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    args = ap.parse_args()
    planted = sc.planted_exponents()
    rows = []
    t0 = time.perf_counter()
    for noise in args.noise:
        for rep in range(args.reps):
            configs = sc.isoflop_configs(BUDGETS, N_GRID, noise=noise, score_noise=noise / 5, seed=rep)
            table = pd.DataFrame([{**sc.synthetic_run(c), "cfg_flops": c["flops"]} for c in configs])
            for window in (1.0, None):
                for y, key in (("final_loss", "loss"), ("score", "score")):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        try:
                            fit = sc.scaling_laws(table, y=y, budget="cfg_flops", window=window,
                                                  n_boot=args.n_boot, seed=rep)
                        except Exception as err:  # a draw without >= 2 vertices: counted, not hidden
                            rows.append({"noise": noise, "rep": rep, "window": str(window), "y": y,
                                         "error": str(err)[:120]})
                            continue
                    for t in ("n_opt", "d_opt"):
                        e, p = fit.exponents.loc[t], planted[f"{key}_{t}"]
                        rows.append({"noise": noise, "rep": rep, "window": str(window), "y": y, "target": t,
                                     "planted": p, "fit": e["exponent"], "ci_low": e["ci_low"],
                                     "ci_high": e["ci_high"], "covered": bool(e["ci_low"] <= p <= e["ci_high"]),
                                     "lobo_covered": bool(e["lobo_low"] <= p <= e["lobo_high"]),
                                     "ci_width": e["ci_high"] - e["ci_low"],
                                     "n_buckets": int(e["n_buckets"]), "error": None})
    fit_s = time.perf_counter() - t0
    df = pd.DataFrame(rows)
    ok = df[df["error"].isna()]
    summary = (ok[ok["target"] == "n_opt"].groupby(["y", "window", "noise"])
               .agg(planted=("planted", "first"), fit_mean=("fit", "mean"), fit_sd=("fit", "std"),
                    abs_err=("fit", lambda f: float(np.mean(np.abs(f - ok.loc[f.index, "planted"])))),
                    coverage=("covered", "mean"), lobo_coverage=("lobo_covered", "mean"),
                    ci_width=("ci_width", "mean"), n=("fit", "size")).reset_index())
    timing = {}
    with tempfile.TemporaryDirectory() as tmp:
        configs = sc.isoflop_configs(BUDGETS, N_GRID)
        for name, sched in (("local", None), ("dask_local_cluster", "local")):
            t = time.perf_counter()
            sc.sweep(configs, Path(tmp) / name, run_fn="eoembed.scaling:synthetic_run", scheduler=sched,
                     progress=False)
            timing[name] = {"runs": len(configs), "seconds": time.perf_counter() - t}
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU",
           "design": {"budgets": BUDGETS.tolist(), "n_enc": N_GRID.tolist(), "reps": args.reps,
                      "n_boot": args.n_boot, "ci": 0.95},
           "planted": planted, "summary_n_opt": summary.to_dict("records"),
           "failed_fits": int(df["error"].notna().sum()), "fit_seconds_total": fit_s, "sweep_timing": timing}
    path = Path(__file__).parent / "results" / "bench_scaling.json"
    path.write_text(json.dumps(out, indent=1, default=float))
    with pd.option_context("display.width", 160):
        print(summary.round(3).to_string(index=False))
    print("sweep runner:", {k: f"{v['runs']} runs in {v['seconds']:.1f} s" for k, v in timing.items()},
          f"failed fits: {out['failed_fits']}; fits took {fit_s:.0f} s")
    print("wrote", path)


if __name__ == "__main__":
    main()
