"""eoembed's SVM probe (probe="svm") vs NeuCo-Bench's own SVM code, side by side in one run on this machine.

Same embeddings CSV, same label folder, same config (NeuCo-Bench's sample_config_svm.yaml search space with fewer
folds / iterations so its code finishes in minutes). NeuCo-Bench's evaluate() runs in a subprocess (source from
--neuco-src or $NEUCO_BENCH_SRC; the REAL scikit-optimize from --skopt-path or the environment) at --seeds
random_states of its BayesSearchCV: their spread is its run-to-run noise. eoembed runs in-process (CSV read
included) with svm_search="random" at the same seeds (the fast default) and "bayes" at the first seed (NeuCo-Bench's
candidate sequence; needs scikit-optimize), plus the honest svm_select="inner". Also times NeuCo-Bench's per-fit
work (fit with kernel='poly', predict train and test parts, as BayesSearchCV's scoring does) on the same candidates
against eoembed's per-fit work, to extrapolate to the sample config (40 folds x 50 candidates per task).
Writes benchmarks/results/bench_svm.json.
Usage: NEUCO_BENCH_SRC=/path/NeuCo-Bench python benchmarks/bench_svm.py --skopt-path /path/site [--n 800 --dim 1024]
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_eval import synthetic  # noqa: E402
from neuco_reference import run_neuco, write_neuco_inputs  # noqa: E402


def per_fit_times(prep, splits, task, cands, n_folds=2):
    """Seconds per fit: NeuCo-Bench's work (SVR/SVC kernel='poly' fit, predict train + test) vs eoembed's
    (kernel matrix shared by the folds, zero-weight fit, test predictions) on the same candidates and folds."""
    from sklearn.svm import SVC, SVR

    from eoembed.bench import svm as S

    k = prep.tasks.index(task)
    cls = prep.task_types[task] == "classification"
    y = prep.Y[k].copy()
    if cls:
        y[y == 0] = -1
    X = prep.X.astype(np.float64)
    folds = splits[task][:n_folds]
    t0 = time.perf_counter()
    for c in cands:
        for tr, te in folds:
            est = (SVC if cls else SVR)(**c).fit(X[tr], y[tr])
            est.predict(X[tr]), est.predict(X[te])
    theirs = (time.perf_counter() - t0) / (len(cands) * len(folds))
    t0 = time.perf_counter()
    G = S.gram(X)
    for c in cands:
        K = S.kernel(G, c)
        for tr, te in folds:
            S.fit_score(K, y, tr, te, c, cls)
    mine = (time.perf_counter() - t0) / (len(cands) * len(folds))
    return theirs, mine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neuco-src", default=os.environ.get("NEUCO_BENCH_SRC"))
    ap.add_argument("--skopt-path", default=None, help="folder holding the real scikit-optimize (on PYTHONPATH)")
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--tasks", default="reg_strong,cls_binary")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--n-iter", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_svm.json"))
    args = ap.parse_args()
    if not args.neuco_src or not (Path(args.neuco_src) / "benchmark" / "main.py").is_file():
        sys.exit("give NeuCo-Bench's source with --neuco-src or NEUCO_BENCH_SRC (a folder holding benchmark/main.py)")
    if args.skopt_path:
        sys.path.insert(0, args.skopt_path)
    has_skopt = importlib.util.find_spec("skopt") is not None
    if not has_skopt:
        sys.exit("NeuCo-Bench's SVM probe needs scikit-optimize: pip install scikit-optimize (or --skopt-path)")
    warnings.filterwarnings("ignore")

    from eoembed.bench import evaluate
    from eoembed.bench.core import _splits
    from eoembed.bench.io import prepare
    from eoembed.bench.svm import SVM_PROBE_DEFAULTS

    tasks = args.tasks.split(",")
    X, ids, lab = synthetic(args.n, args.dim)
    types = {t: lab.attrs["task_types"][t] for t in tasks}
    lab = lab[tasks]
    lab.attrs["task_types"] = types
    work = Path(tempfile.mkdtemp(prefix="bench_svm_"))
    emb, labels = write_neuco_inputs(X, ids, lab, work)
    pp = copy.deepcopy(SVM_PROBE_DEFAULTS)
    pp["opt_params"].update(n_iter=args.n_iter, verbose=0)
    skopt_dir = os.path.dirname(os.path.dirname(importlib.util.find_spec("skopt").origin))

    neuco, mine, mine_t, neuco_t = {}, {}, {}, {}
    for s in args.seeds:
        cfg = {"k_folds": args.folds, "probe_type": "svm", "probe_params": copy.deepcopy(pp),
               "enable_plots": False, "output_fold_results": True}
        cfg["probe_params"]["opt_params"]["random_state"] = s
        r = run_neuco(args.neuco_src, emb, labels, cfg, work / f"neuco_{s}", pythonpath=skopt_dir)
        neuco[s], neuco_t[s] = r, r["seconds"]
        print(f"NeuCo-Bench random_state={s}: {r['seconds']:.1f} s, Q {r['q']}", flush=True)
        cfg.pop("enable_plots")
        for search in (["random", "bayes"] if s == args.seeds[0] else ["random"]):
            t0 = time.perf_counter()
            res = evaluate(emb, labels, config=cfg, progress=False, svm_search=search)
            mine_t[(search, s)] = time.perf_counter() - t0
            mine[(search, s)] = res
            print(f"eoembed {search} seed={s}: {mine_t[(search, s)]:.2f} s, Q {res.per_task.q_stat.to_dict()}",
                  flush=True)
    s0 = args.seeds[0]
    cfg["probe_params"]["opt_params"]["random_state"] = s0        # the same candidates as eoembed random at s0
    t0 = time.perf_counter()
    honest = evaluate(emb, labels, config=cfg, progress=False, svm_select="inner")
    t_honest = time.perf_counter() - t0

    prep = prepare(emb, labels)
    splits = _splits(prep, args.folds, 42)
    cands = mine[("random", s0)].details["svm"]["candidates"][tasks[0]]
    fit_theirs, fit_mine = per_fit_times(prep, splits, tasks[0], cands)

    rows = []
    for t in tasks:
        qn = np.array([neuco[s]["q"][t] for s in args.seeds])
        qr = np.array([mine[("random", s)].per_task.loc[t, "q_stat"] for s in args.seeds])
        noise = float(qn.std(ddof=1)) if len(qn) > 1 else None
        rows.append({
            "task": t, "q_neuco": qn.tolist(), "q_neuco_mean": float(qn.mean()), "q_neuco_seed_std": noise,
            "q_eoembed_random": qr.tolist(), "q_eoembed_random_mean": float(qr.mean()),
            "q_random_minus_neuco": float(qr.mean() - qn.mean()),
            "random_within_2_noise_std": (abs(float(qr.mean() - qn.mean())) <= 2 * noise) if noise else None,
            "q_eoembed_bayes_seed0": float(mine[("bayes", s0)].per_task.loc[t, "q_stat"]),
            "max_abs_fold_diff_bayes_vs_neuco_seed0": float(np.max(np.abs(
                mine[("bayes", s0)].folds[mine[("bayes", s0)].folds.task == t].score.to_numpy()
                - np.array(neuco[s0]["folds"][t])))),
            "q_honest_inner": float(honest.per_task.loc[t, "q_stat"]),
            "mean_honest_inner": float(honest.per_task.loc[t, "mean_score"]),
            "mean_max_over_candidates": float(mine[("random", s0)].per_task.loc[t, "mean_score"]),
            "q_max_over_candidates": float(mine[("random", s0)].per_task.loc[t, "q_stat"]),
        })
    t_neuco = float(np.mean(list(neuco_t.values())))
    t_random = float(np.mean([mine_t[("random", s)] for s in args.seeds]))
    fits = args.folds * args.n_iter * len(tasks)
    result = {
        "machine": f"{os.cpu_count()}-core CPU, no GPU ({platform.processor() or platform.machine()}), shared",
        "n": args.n, "dim": args.dim, "tasks": tasks, "folds": args.folds, "n_iter": args.n_iter,
        "seeds": args.seeds, "fits_per_run": fits,
        "seconds_neuco_per_run": neuco_t, "seconds_eoembed_random_per_run": {str(s): mine_t[("random", s)]
                                                                              for s in args.seeds},
        "seconds_eoembed_bayes": mine_t[("bayes", s0)], "seconds_eoembed_inner": t_honest,
        "speedup_random_vs_neuco": t_neuco / t_random,
        "speedup_bayes_vs_neuco_same_seed": neuco_t[s0] / mine_t[("bayes", s0)],
        "per_fit_seconds_neuco_work": fit_theirs, "per_fit_seconds_eoembed": fit_mine,
        "per_fit_speedup": fit_theirs / fit_mine,
        "extrapolated_sample_config_minutes_per_task": {
            "neuco_fits_only": 40 * 50 * fit_theirs / 60, "eoembed_random": 40 * 50 * fit_mine / 60},
        "load_average_at_end": os.getloadavg(), "tasks_detail": rows, "neuco_commit": "a89ba06",
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps({k: v for k, v in result.items() if k != "tasks_detail"}, indent=1, default=float))
    for r in rows:
        print(r)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
