"""The SVM probe end to end at the sample config's 40 folds: NeuCo-Bench's own code vs eoembed, one run, one machine.

bench_svm.py extrapolates the sample config (40 folds x 50 candidates) from measured parts; this runs it whole at
40 folds with fewer candidates (--n-iter, default 5: BayesSearchCV's 5 prior draws, no surrogate steps), so both
sides fit the same candidates on the same folds and nothing is extrapolated. NeuCo-Bench's evaluate() in a
subprocess (its source from --neuco-src or $NEUCO_BENCH_SRC, the real scikit-optimize from --skopt-path), then
eoembed's evaluate() in-process (CSV read included) with svm_search="bayes" (NeuCo-Bench's candidates for the same
random_state) and each solver, and the default (random search, active-set solver). CPU and wall seconds of the
evaluation on both sides (NeuCo-Bench's imports excluded, as eoembed's in-process call), n_jobs 1 on both sides,
fold scores compared. Writes benchmarks/results/bench_svm_e2e.json.
Usage: NEUCO_BENCH_SRC=/path/NeuCo-Bench python benchmarks/bench_svm_e2e.py --skopt-path /path/site
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_svm import side_by_side_inputs, side_by_side_parser  # noqa: E402
from neuco_reference import run_neuco  # noqa: E402


def main() -> None:
    ap = side_by_side_parser(__doc__, folds=40, n_iter=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_svm_e2e.json"))
    args = ap.parse_args()
    setup = side_by_side_inputs(args, "bench_svm_e2e_")
    if setup is None:
        return
    emb, labels, pp, skopt_dir, tasks = setup
    from eoembed.bench import evaluate

    load0 = os.getloadavg()
    pp["opt_params"]["random_state"] = args.seed
    work = Path(emb).parent
    cfg = {"k_folds": args.folds, "probe_type": "svm", "probe_params": pp, "enable_plots": False,
           "output_fold_results": True}
    ref = run_neuco(args.neuco_src, emb, labels, cfg, work / "neuco", pythonpath=skopt_dir)
    print(f"NeuCo-Bench: {ref['seconds']:.1f} s wall, {ref['cpu_seconds']:.1f} s CPU, Q {ref['q']}", flush=True)
    cfg.pop("enable_plots")

    runs = {}
    for name, kw in (("bayes_active_set", dict(svm_search="bayes", svm_solver="active-set")),
                     ("bayes_libsvm", dict(svm_search="bayes", svm_solver="libsvm")),
                     ("random_default", dict())):
        t0, c0 = time.perf_counter(), time.process_time()
        r = evaluate(emb, labels, config=cfg, progress=False, **kw)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        entry = {"seconds_wall": wall, "seconds_cpu": cpu, "q": r.per_task.q_stat.to_dict(),
                 "solver": r.details["svm"]["solver"], "fits": r.details["svm"]["fits"],
                 "speedup_cpu": ref["cpu_seconds"] / cpu, "speedup_wall": ref["seconds"] / wall}
        if kw.get("svm_search") == "bayes":     # same candidates as NeuCo-Bench: fold scores comparable
            d = {t: np.abs(r.folds[r.folds.task == t].score.to_numpy() - np.array(ref["folds"][t])) for t in tasks}
            entry["fold_score_abs_diff_vs_neuco"] = {t: {"max": float(v.max()), "mean": float(v.mean()),
                                                         "folds_differing": int(np.count_nonzero(v > 1e-6))}
                                                     for t, v in d.items()}
            entry["q_minus_neuco"] = {t: float(r.per_task.loc[t, "q_stat"] - ref["q"][t]) for t in tasks}
        runs[name] = entry
        print(name, {k: v for k, v in entry.items() if k != "fits"}, flush=True)

    result = {
        "command": "python benchmarks/bench_svm_e2e.py " + " ".join(sys.argv[1:]),
        "machine": f"{os.cpu_count()}-core CPU, no GPU ({platform.processor() or platform.machine()})",
        "n": args.n, "dim": args.dim, "tasks": tasks, "folds": args.folds, "n_iter": args.n_iter,
        "random_state": args.seed, "fits_per_side": args.folds * args.n_iter * len(tasks),
        "n_jobs": {"neuco": 1, "eoembed": 1},
        "neuco": {"seconds_wall": ref["seconds"], "seconds_cpu": ref["cpu_seconds"], "q": ref["q"]},
        "eoembed": runs, "load_average_at_start": load0, "load_average_at_end": os.getloadavg(),
        "neuco_commit": "a89ba06",
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
