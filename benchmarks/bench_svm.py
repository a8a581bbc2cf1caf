"""eoembed's SVM probe (probe="svm") vs NeuCo-Bench's own SVM code, side by side in one run on this machine.

Same embeddings CSV (2,000 x 1,024 synthetic by default: the size at which the issue measured NeuCo-Bench), same
label folder, same config: NeuCo-Bench's sample_config_svm.yaml search space and n_jobs 1 on both sides, with fewer
folds and candidates than its 40 x 50 so its code finishes in minutes. Three measurements:

1. End to end, same run: NeuCo-Bench's evaluate() in a subprocess (source from --neuco-src or $NEUCO_BENCH_SRC;
   the REAL scikit-optimize from --skopt-path or the environment) at each of --seeds (BayesSearchCV random_state:
   the spread of its Q over seeds is its run-to-run noise), eoembed's evaluate() in-process (CSV read included)
   with svm_search="random" at the same seeds, "bayes" at the first seed (NeuCo-Bench's candidate sequence) and
   the honest svm_select="inner". Wall and CPU seconds (NeuCo-Bench's evaluation only, imports excluded, like
   eoembed's in-process call).
2. Noise study: NeuCo-Bench's run-to-run spread of Q measured with eoembed's bayes search (NeuCo-Bench's own
   candidate sequence, checked against its code in step 1) at --noise-seeds, beside eoembed's random search at the
   same seeds: more seeds, folds and candidates (5 prior draws, then guided points) than NeuCo-Bench's code could
   afford here.
3. Per fit, CPU seconds, on NeuCo-Bench's own candidates (the noise study's first seed: prior draws and guided
   points): NeuCo-Bench's work for one (fold, candidate) -- SVR/SVC with kernel='poly' fitted on the fold's rows,
   predictions on its train and test parts (BayesSearchCV scores both, return_train_score=True) -- on --fit-folds
   folds; eoembed's per candidate over --fit-folds-eoembed folds (the sample config's 40) through evaluate()'s own
   code path, with each solver: "active-set" (the default for random search: libsvm on a candidate's first fold,
   exact solves of the others from it) and "libsvm" (every fold); both solvers' fold metrics compared; eoembed's
   kernel per candidate.
4. The sample config (40 folds x 50 candidates per task), extrapolated from the measured parts, which is how the
   scaled-down run is made representative: a short run amortises eoembed's per-run costs (CSV read, Gram matrix)
   and per-candidate kernel over few fits, so its end-to-end ratio understates the one at 40 x 50. Per task:
   NeuCo-Bench = 2,000 x its per-fit CPU + its optimizer (46 guided steps at the CPU cost skopt's own surrogate
   has, 4 random ones); eoembed random = 50 x (its per-candidate cost at 40 folds + kernel) + Gram; eoembed bayes =
   the same with the libsvm solver + its optimizer steps (measured; bit-identical surrogate, faster predict); plus
   eoembed's CSV read once. NeuCo-Bench's own CSV read, joblib/scorer overhead and final refit are left out (in
   its favour).
Writes benchmarks/results/bench_svm.json.
Usage: NEUCO_BENCH_SRC=/path/NeuCo-Bench python benchmarks/bench_svm.py --skopt-path /path/site
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


def per_fit_cpu(prep, splits, task, cands, n_folds=1, n_folds_mine=40):
    """CPU seconds of NeuCo-Bench's work per (fold, candidate) -- SVR/SVC kernel='poly' fit on the fold's rows,
    predict train + test -- on ``n_folds`` folds per candidate; eoembed's per candidate on ``n_folds_mine`` folds
    (the sample config's 40: the active-set solver's factorisation per candidate is amortised over them),
    with each solver, through the code path evaluate() runs (``_Task.run_candidate``); eoembed's kernel matrix per
    candidate; and both solvers' fold metrics (to count the scores that differ)."""
    from sklearn.svm import SVC, SVR

    from eoembed.bench import svm as S

    k = prep.tasks.index(task)
    cls = prep.task_types[task] == "classification"
    rows = np.asarray(prep.rows[task])
    X = prep.X[rows].astype(np.float64)
    y = prep.Y[k][rows].astype(np.float64)
    pos = np.full(len(prep.X), -1)
    pos[rows] = np.arange(len(rows))
    folds = [(pos[tr], pos[te]) for tr, te in splits[task]]
    c0 = time.process_time()
    G = S.gram(X, "cpu")
    t_gram = time.process_time() - c0
    yy = np.where(y == 0, -1.0, y) if cls else y
    theirs, kern = [], []
    for c in cands:
        for tr, te in folds[:n_folds]:
            c0 = time.process_time()
            est = (SVC if cls else SVR)(**c).fit(X[tr], yy[tr])
            est.predict(X[tr]), est.predict(X[te])
            theirs.append(time.process_time() - c0)
    mine, metric, used = {}, {}, {}
    from threadpoolctl import threadpool_limits

    blas = threadpool_limits(limits=1, user_api="blas")     # as evaluate() runs the fits: one BLAS thread
    for solver in ("libsvm", "active-set"):
        t = S._Task(task, y, cls, folds[:n_folds_mine], list(cands), "max", 42, solver)
        per = []
        for j, c in enumerate(cands):
            c0 = time.process_time()
            K = S.kernel(G, c)
            kt = time.process_time() - c0
            if solver == "libsvm":
                kern.append(kt)
            c0 = time.process_time()
            t.run_candidate(j, K, X, G, None)
            per.append(time.process_time() - c0)
        mine[solver], metric[solver], used[solver] = np.array(per), t.metric, dict(t.fits)
    blas.restore_original_limits()
    return np.array(theirs), mine, np.array(kern), t_gram, metric, used


def side_by_side_parser(doc: str, folds: int, n_iter: int) -> argparse.ArgumentParser:
    """The options both SVM side-by-side benchmarks take (NeuCo-Bench's source, skopt, data size, folds, n_iter)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--neuco-src", default=os.environ.get("NEUCO_BENCH_SRC"))
    ap.add_argument("--skopt-path", default=None, help="folder holding the real scikit-optimize (on PYTHONPATH)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--tasks", default="reg_strong,cls_binary")
    ap.add_argument("--folds", type=int, default=folds)
    ap.add_argument("--n-iter", type=int, default=n_iter)
    return ap


def side_by_side_inputs(args, prefix: str):
    """What both SVM side-by-side benchmarks start from, or None (after a SKIPPED line) without NeuCo-Bench's source
    or scikit-optimize: the synthetic embeddings CSV and label folder of ``args.tasks`` (``args.n`` x ``args.dim``),
    the sample config's probe_params with ``args.n_iter`` candidates, the folder holding skopt, the task names.
    Imports sklearn.svm and scipy first: the timers exclude imports on both sides (NeuCo-Bench's starts after its
    own)."""
    if not args.neuco_src or not (Path(args.neuco_src) / "benchmark" / "main.py").is_file():
        print("SKIPPED: NeuCo-Bench's source is needed to run it side by side; give --neuco-src or NEUCO_BENCH_SRC "
              "(a folder holding benchmark/main.py, e.g. a checkout of github.com/embed2scale/NeuCo-Bench).")
        return None
    if args.skopt_path:
        sys.path.insert(0, args.skopt_path)
    if importlib.util.find_spec("skopt") is None:
        print("SKIPPED: NeuCo-Bench's SVM probe needs scikit-optimize: pip install scikit-optimize (or give "
              "--skopt-path, a folder holding it).")
        return None
    warnings.filterwarnings("ignore")
    import scipy.linalg  # noqa: F401
    import sklearn.svm  # noqa: F401

    from eoembed.bench.svm import SVM_PROBE_DEFAULTS

    tasks = args.tasks.split(",")
    X, ids, lab = synthetic(args.n, args.dim)
    types = {t: lab.attrs["task_types"][t] for t in tasks}
    lab = lab[tasks]
    lab.attrs["task_types"] = types
    emb, labels = write_neuco_inputs(X, ids, lab, Path(tempfile.mkdtemp(prefix=prefix)))
    pp = copy.deepcopy(SVM_PROBE_DEFAULTS)        # n_jobs 1 on both sides, as in sample_config_svm.yaml
    pp["opt_params"].update(n_iter=args.n_iter, verbose=0)
    skopt_dir = os.path.dirname(os.path.dirname(importlib.util.find_spec("skopt").origin))
    return emb, labels, pp, skopt_dir, tasks


def main() -> None:
    ap = side_by_side_parser(__doc__, folds=4, n_iter=6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    ap.add_argument("--fit-folds", type=int, default=3, help="folds per candidate in NeuCo-Bench's per-fit timing")
    ap.add_argument("--fit-folds-eoembed", type=int, default=40,
                    help="folds per candidate in eoembed's per-fit timing (the sample config's K)")
    ap.add_argument("--noise-seeds", type=int, nargs="+", default=[42, 7, 1, 2, 3, 4],
                    help="seeds of the noise study (eoembed bayes = NeuCo-Bench's candidates, and random)")
    ap.add_argument("--noise-n-iter", type=int, default=10,
                    help="candidates in the noise study (its first seed's are also those of the per-fit timing)")
    ap.add_argument("--noise-folds", type=int, default=8, help="folds in the noise study")
    ap.add_argument("--jobs", type=int, default=2,
                    help="also time eoembed's random search with this many threads (n_jobs) at the first seed")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_svm.json"))
    args = ap.parse_args()
    setup = side_by_side_inputs(args, "bench_svm_")
    if setup is None:
        return
    emb, labels, pp, skopt_dir, tasks = setup
    work = Path(emb).parent

    from eoembed.bench import evaluate
    from eoembed.bench.core import _splits
    from eoembed.bench.io import prepare

    load0 = os.getloadavg()

    def timed(**kw):
        t0, c0 = time.perf_counter(), time.process_time()
        r = evaluate(emb, labels, progress=False, **kw)
        return r, time.perf_counter() - t0, time.process_time() - c0

    neuco, mine, wall, cpu = {}, {}, {}, {}
    s0 = args.seeds[0]
    for s in args.seeds:
        cfg = {"k_folds": args.folds, "probe_type": "svm", "probe_params": copy.deepcopy(pp),
               "enable_plots": False, "output_fold_results": True}
        cfg["probe_params"]["opt_params"]["random_state"] = s
        r = run_neuco(args.neuco_src, emb, labels, cfg, work / f"neuco_{s}", pythonpath=skopt_dir)
        neuco[s], wall[("neuco", s)], cpu[("neuco", s)] = r, r["seconds"], r["cpu_seconds"]
        print(f"NeuCo-Bench random_state={s}: {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU, Q {r['q']}",
              flush=True)
        cfg.pop("enable_plots")
        variants = [("random", "max"), ("bayes", "max"), ("random", "inner")] if s == s0 else [("random", "max")]
        for search, select in variants:
            key = (f"{search}_{select}" if select == "inner" else search, s)
            mine[key], wall[key], cpu[key] = timed(config=cfg, svm_search=search, svm_select=select)
            print(f"eoembed {key[0]} seed={s}: {wall[key]:.2f} s wall, {cpu[key]:.2f} s CPU, "
                  f"Q {mine[key].per_task.q_stat.to_dict()}", flush=True)

    # both cores: eoembed's random search with n_jobs=--jobs (fits of a candidate's folds in threads; libsvm
    # releases the GIL), same config and seed; NeuCo-Bench's sample config ships n_jobs 1
    both = None
    if args.jobs > 1:
        cfg = {"k_folds": args.folds, "probe_type": "svm", "probe_params": copy.deepcopy(pp),
               "output_fold_results": True}
        cfg["probe_params"]["opt_params"].update(random_state=s0, n_jobs=args.jobs)
        rj, wj, cj = timed(config=cfg, svm_search="random")
        same = bool(np.allclose(rj.folds.score.to_numpy(), mine[("random", s0)].folds.score.to_numpy(), atol=1e-9))
        both = {"n_jobs": args.jobs, "seconds_wall": wj, "seconds_cpu": cj,
                "seconds_wall_1_job": wall[("random", s0)], "threads_speedup_wall": wall[("random", s0)] / wj,
                "speedup_vs_neuco_wall_same_seed": wall[("neuco", s0)] / wj, "fold_scores_equal_1_job": same}
        print(f"eoembed random seed={s0} n_jobs={args.jobs}: {wj:.2f} s wall ({both['threads_speedup_wall']:.2f}x "
              f"vs 1 job; scores equal: {same})", flush=True)

    # noise study: NeuCo-Bench's run-to-run spread via eoembed's bayes search (its candidate sequence, checked
    # against NeuCo-Bench's own runs above), more seeds and candidates than NeuCo-Bench's code could afford here
    noise = {"bayes": {}, "random": {}}
    steps = {t: [] for t in tasks}
    for s in args.noise_seeds:
        cfg = {"k_folds": args.noise_folds, "probe_type": "svm", "probe_params": copy.deepcopy(pp)}
        cfg["probe_params"]["opt_params"].update(n_iter=args.noise_n_iter, random_state=s)
        for search in ("bayes", "random"):
            r, w, c = timed(config=cfg, svm_search=search)
            noise[search][s] = r.per_task.q_stat.to_dict()
            if search == "bayes":
                if s == args.noise_seeds[0]:
                    noise_cands = r.details["svm"]["candidates"]
                for t in tasks:
                    steps[t].append(r.details["svm"]["optimizer_cpu_seconds"][t])
        print(f"noise seed {s}: bayes {noise['bayes'][s]}, random {noise['random'][s]}", flush=True)
    for t in tasks:    # the steps of the first bayes run too
        steps[t].append(mine[("bayes", s0)].details["svm"]["optimizer_cpu_seconds"][t])
    n_init = int(pp["opt_params"]["optimizer_kwargs"]["n_initial_points"])

    # per fit, same candidates and folds: NeuCo-Bench's own candidate sequence at the first seed of the noise study
    # (its n_initial_points prior draws, then surrogate-guided points); the first folds of a 40-fold split
    prep_c0 = time.process_time()
    prep = prepare(emb, labels)
    t_prepare = time.process_time() - prep_c0
    fits = {}
    splits40 = _splits(prep, max(args.fit_folds_eoembed, args.fit_folds), 42)
    for t in tasks:
        cands = noise_cands[t]
        fits[t] = per_fit_cpu(prep, splits40, t, cands, args.fit_folds, args.fit_folds_eoembed)
        th, me, ke, _, met, used = fits[t]
        kf = args.fit_folds_eoembed
        print(f"per fit {t}: NeuCo-Bench {th.mean() * 1e3:.0f} ms, eoembed libsvm {me['libsvm'].mean() / kf * 1e3:.1f}"
              f" ms, active-set {me['active-set'].mean() / kf * 1e3:.1f} ms (+ kernel {ke.mean() * 1e3:.1f} ms per "
              f"candidate), ratio {th.mean() * kf / me['active-set'].mean():.1f}x; fits {used['active-set']}",
              flush=True)
    # the sample config, extrapolated from the measured parts (CPU seconds)
    K40, C50 = 40, 50
    heavy, light = {}, {}
    for t in tasks:     # step j's tell fits the surrogate and maximises the acquisition once j >= n_initial - 1
        hv = [x for run in steps[t] for x in run[n_init - 1:]]
        lt = [x for run in steps[t] for x in run[:n_init - 1]]
        heavy[t] = float(np.mean(hv)) if hv else 0.0
        light[t] = float(np.mean(lt)) if lt else 0.0
    opt_task = {t: (C50 - n_init + 1) * heavy[t] + (n_init - 1) * light[t] for t in tasks}
    neuco_task = {t: K40 * C50 * fits[t][0].mean() + opt_task[t] for t in tasks}
    kf = args.fit_folds_eoembed    # eoembed's per-candidate cost at kf folds, scaled to 40 (kf = 40: as measured)
    mine_task = {t: C50 * (fits[t][1]["active-set"].mean() * K40 / kf + fits[t][2].mean()) + fits[t][3]
                 for t in tasks}
    mine_libsvm_task = {t: C50 * (fits[t][1]["libsvm"].mean() * K40 / kf + fits[t][2].mean()) + fits[t][3]
                        for t in tasks}
    mine_bayes_task = {t: mine_libsvm_task[t] + opt_task[t] for t in tasks}
    sample = {
        "neuco_minutes_per_task": {t: v / 60 for t, v in neuco_task.items()},
        "eoembed_random_minutes_per_task": {t: v / 60 for t, v in mine_task.items()},
        "eoembed_random_libsvm_solver_minutes_per_task": {t: v / 60 for t, v in mine_libsvm_task.items()},
        "eoembed_bayes_minutes_per_task": {t: v / 60 for t, v in mine_bayes_task.items()},
        "eoembed_csv_read_seconds": t_prepare,
        "speedup_random": sum(neuco_task.values()) / (sum(mine_task.values()) + t_prepare),
        "speedup_random_per_task": {t: neuco_task[t] / (mine_task[t] + t_prepare) for t in tasks},
        "speedup_random_libsvm_solver": sum(neuco_task.values()) / (sum(mine_libsvm_task.values()) + t_prepare),
        "speedup_bayes": sum(neuco_task.values()) / (sum(mine_bayes_task.values()) + t_prepare),
        "optimizer_cpu_seconds_per_guided_step": heavy, "optimizer_cpu_seconds_per_random_step": light,
        "note": "eoembed random = the default solver (auto: active-set for random search); bayes = libsvm solver "
                "(auto) plus its optimizer steps",
    }
    if both:   # NeuCo-Bench as shipped (n_jobs 1) against eoembed on both cores: the per-core ratio x the threads' gain
        sample["speedup_random_both_cores_est"] = sample["speedup_random"] * both["threads_speedup_wall"]
    noise_rows = {}
    for t in tasks:
        qb = np.array([noise["bayes"][s][t] for s in args.noise_seeds])
        qr = np.array([noise["random"][s][t] for s in args.noise_seeds])
        noise_rows[t] = {"q_bayes_eq_neuco": qb.round(3).tolist(), "q_random": qr.round(3).tolist(),
                         "mean_bayes": float(qb.mean()), "std_bayes_run_to_run": float(qb.std(ddof=1)),
                         "mean_random": float(qr.mean()), "std_random": float(qr.std(ddof=1)),
                         "random_minus_bayes": float(qr.mean() - qb.mean()),
                         "within_1_run_to_run_std": bool(abs(qr.mean() - qb.mean()) <= qb.std(ddof=1)),
                         "within_2_run_to_run_std": bool(abs(qr.mean() - qb.mean()) <= 2 * qb.std(ddof=1))}
        print(t, noise_rows[t], flush=True)

    rows = []
    for t in tasks:
        qn = np.array([neuco[s]["q"][t] for s in args.seeds])
        qr = np.array([mine[("random", s)].per_task.loc[t, "q_stat"] for s in args.seeds])
        noise = float(qn.std(ddof=1)) if len(qn) > 1 else None
        b = mine[("bayes", s0)]
        th, me, ke, _, met, used = fits[t]
        kf = args.fit_folds_eoembed
        dm = np.abs(met["active-set"] - met["libsvm"])
        mine_fit = me["active-set"] / kf
        rows.append({
            "task": t, "q_neuco": qn.tolist(), "q_neuco_mean": float(qn.mean()), "q_neuco_seed_std": noise,
            "q_eoembed_random": qr.tolist(), "q_eoembed_random_mean": float(qr.mean()),
            "q_random_minus_neuco": float(qr.mean() - qn.mean()),
            "random_within_2_noise_std": (abs(float(qr.mean() - qn.mean())) <= 2 * noise) if noise else None,
            "q_eoembed_bayes_seed0": float(b.per_task.loc[t, "q_stat"]),
            "max_abs_fold_diff_bayes_vs_neuco_seed0": float(np.max(np.abs(
                b.folds[b.folds.task == t].score.to_numpy() - np.array(neuco[s0]["folds"][t])))),
            "q_honest_inner": float(mine[("random_inner", s0)].per_task.loc[t, "q_stat"]),
            "mean_honest_inner": float(mine[("random_inner", s0)].per_task.loc[t, "mean_score"]),
            "mean_max_over_candidates": float(mine[("random", s0)].per_task.loc[t, "mean_score"]),
            "q_max_over_candidates": float(mine[("random", s0)].per_task.loc[t, "q_stat"]),
            "per_fit_cpu_ms_neuco": (th * 1e3).round(1).tolist(),
            "per_fit_cpu_ms_eoembed_by_candidate": (mine_fit * 1e3).round(2).tolist(),
            "per_fit_cpu_ms_eoembed_libsvm_solver_by_candidate": (me["libsvm"] / kf * 1e3).round(2).tolist(),
            "eoembed_folds_per_candidate": kf,
            "fits_by_solver": used["active-set"],
            "active_set_vs_libsvm_fold_metric": {
                "fits": int(dm.size), "differ": int(np.count_nonzero(dm > 1e-12)),
                "max_abs_diff": float(dm.max()), "mean_abs_diff": float(dm.mean()),
                "per_fold_max_over_candidates_max_abs_diff": float(np.max(np.abs(
                    met["active-set"].max(axis=1) - met["libsvm"].max(axis=1))))},
            "kernel_cpu_ms_per_candidate": (ke * 1e3).round(2).tolist(),
            "per_fit_speedup": float(th.mean() / mine_fit.mean()),
            "per_fit_speedup_libsvm_solver": float(th.mean() * kf / me["libsvm"].mean()),
            "per_fit_speedup_prior_draws": float(th.reshape(len(noise_cands[t]), -1)[:n_init].mean()
                                                 / mine_fit[:n_init].mean()),
            "per_fit_speedup_guided": (float(th.reshape(len(noise_cands[t]), -1)[n_init:].mean()
                                             / mine_fit[n_init:].mean())
                                       if len(noise_cands[t]) > n_init else None),
            "per_fit_speedup_by_candidate": (th.reshape(len(noise_cands[t]), -1).mean(axis=1) / mine_fit).round(1)
                                            .tolist(),
        })

    def ratio(a, b):
        return {str(s): a[("neuco", s)] / b[("random", s)] for s in args.seeds}

    n_fits = args.folds * args.n_iter * len(tasks)
    result = {
        "command": "python benchmarks/bench_svm.py " + " ".join(sys.argv[1:]),
        "machine": f"{os.cpu_count()}-core CPU, no GPU ({platform.processor() or platform.machine()}), shared",
        "n": args.n, "dim": args.dim, "tasks": tasks, "folds": args.folds, "n_iter": args.n_iter,
        "seeds": args.seeds, "fits_per_run": n_fits, "n_jobs": {"neuco": 1, "eoembed": 1},
        "both_cores": both,
        "end_to_end": {
            "seconds_wall": {f"{k}_{s}": v for (k, s), v in wall.items()},
            "seconds_cpu": {f"{k}_{s}": v for (k, s), v in cpu.items()},
            "speedup_random_wall": ratio(wall, wall), "speedup_random_cpu": ratio(cpu, cpu),
            "speedup_bayes_cpu_same_seed": cpu[("neuco", s0)] / cpu[("bayes", s0)],
            "note": "few fits per run: eoembed's CSV read, Gram matrix and per-candidate kernels are amortised "
                    "over only fits_per_run fits, so these ratios understate the sample config's (below)",
        },
        "per_fit_cpu_seconds": {
            "neuco": float(np.mean([fits[t][0].mean() for t in tasks])),
            "eoembed": float(np.mean([fits[t][1]["active-set"].mean() / args.fit_folds_eoembed for t in tasks])),
            "eoembed_libsvm_solver": float(np.mean([fits[t][1]["libsvm"].mean() / args.fit_folds_eoembed
                                                    for t in tasks])),
            "speedup": float(np.mean([fits[t][0].mean() for t in tasks])
                             / np.mean([fits[t][1]["active-set"].mean() / args.fit_folds_eoembed for t in tasks])),
            "note": "eoembed's per candidate (its first fold's libsvm fit and the factorisation included) / its folds"},
        "sample_config_40x50_extrapolated_cpu": sample,
        "noise_study": {"seeds": args.noise_seeds, "n_iter": args.noise_n_iter, "folds": args.noise_folds,
                        "tasks": noise_rows},
        "load_average_at_start": load0, "load_average_at_end": os.getloadavg(),
        "tasks_detail": rows, "neuco_commit": "a89ba06",
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps({k: v for k, v in result.items() if k != "tasks_detail"}, indent=1, default=float))
    for r in rows:
        print({k: v for k, v in r.items() if not k.startswith("per_fit_cpu_ms") and not k.startswith("kernel_")})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
