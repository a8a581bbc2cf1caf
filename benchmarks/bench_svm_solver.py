"""Would another SVM solver beat libsvm? A study behind issue 13's remaining SVM gap (not a solver eoembed uses).

eoembed's SVM probe (eoembed.bench.svm) spends ~93% of its time in libsvm's SMO iterations, the same iterations
NeuCo-Bench runs. This benchmark measures the obvious replacement, written here as a study only: libsvm's own
algorithm (SMO with the second-order working-set selection WSS3 of Fan, Chen & Lin 2005, the same stopping rule
``max violation < tol = 1e-3`` and the same bias rule) in numba on the fold's precomputed kernel, without libsvm's
shrinking, run

- cold (alpha = 0, as libsvm starts), and
- warm-started across folds (the issue's idea): each fold starts from the previous fold's solution on the samples
  both train parts share (about 81% of them for 90/10 ShuffleSplits), new samples at 0, the side with the larger
  sum scaled down so the equality constraint holds.

Against eoembed's libsvm call (``svm._libsvm_fit``) on the same kernel, fold and candidate: CPU ms per fit,
SMO iterations, and agreement of the test predictions (classification: share of equal signs; regression: largest
difference / sd of libsvm's predictions, floored at 1e-12). Data as bench_svm.py: 2,000 x 1,024 synthetic, NeuCo-Bench's input
scaling, its ShuffleSplit folds, candidates drawn from sample_config_svm.yaml's space (eoembed's random search).
Writes benchmarks/results/bench_svm_solver.json.

    .venv/bin/python benchmarks/bench_svm_solver.py [--candidates 6] [--folds 8]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numba as nb
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_eval import synthetic  # noqa: E402
from neuco_reference import write_neuco_inputs  # noqa: E402

TAU = 1e-12   # libsvm's floor for a non-positive curvature


@nb.njit(cache=True)
def smo(Ks, l, y, p, C, alpha, tol, max_iter):
    """min 1/2 a'Qa + p'a, 0 <= a <= C, y'a = 0 with Q_st = y_s y_t Ks[s % l, t % l] (m = l variables for C-SVC,
    2l for epsilon-SVR); ``alpha`` (m,) is the start and is updated in place. Returns (rho, iterations)."""
    m = y.shape[0]
    G = p.copy()
    QD = np.empty(m)
    for t in range(m):
        QD[t] = Ks[t % l, t % l]
    for s in range(m):          # gradient of a warm start
        if alpha[s] != 0.0:
            row = Ks[s % l]
            ya = y[s] * alpha[s]
            for t in range(l):
                G[t] += ya * y[t] * row[t]
            for t in range(l, m):
                G[t] += ya * y[t] * row[t - l]
    Qi = np.empty(m)
    it = 0
    while it < max_iter:
        gmax = -np.inf
        i = -1
        for t in range(m):      # i: the most violating index in I_up
            if y[t] > 0:
                if alpha[t] < C[t] and -G[t] >= gmax:
                    gmax, i = -G[t], t
            elif alpha[t] > 0 and G[t] >= gmax:
                gmax, i = G[t], t
        gmax2 = -np.inf
        omin = np.inf
        j = -1
        if i != -1:
            row = Ks[i % l]
            yi = y[i]
            for t in range(l):      # two loops, not t % l: the modulo would double the time
                Qi[t] = yi * y[t] * row[t]
            for t in range(l, m):
                Qi[t] = yi * y[t] * row[t - l]
            for t in range(m):  # j: the largest second-order decrease in I_low
                if y[t] > 0:
                    if alpha[t] > 0:
                        gd = gmax + G[t]
                        if G[t] >= gmax2:
                            gmax2 = G[t]
                        if gd > 0:
                            qc = QD[i] + QD[t] - 2.0 * yi * Qi[t]
                            od = -(gd * gd) / (qc if qc > 0 else TAU)
                            if od <= omin:
                                j, omin = t, od
                elif alpha[t] < C[t]:
                    gd = gmax - G[t]
                    if -G[t] >= gmax2:
                        gmax2 = -G[t]
                    if gd > 0:
                        qc = QD[i] + QD[t] + 2.0 * yi * Qi[t]
                        od = -(gd * gd) / (qc if qc > 0 else TAU)
                        if od <= omin:
                            j, omin = t, od
        if gmax + gmax2 < tol or j == -1:
            break
        it += 1
        ci, cj = C[i], C[j]
        oai, oaj = alpha[i], alpha[j]
        ai, aj = oai, oaj
        if y[i] != y[j]:
            qc = QD[i] + QD[j] + 2.0 * Qi[j]
            delta = (-G[i] - G[j]) / (qc if qc > 0 else TAU)
            diff = ai - aj
            ai += delta
            aj += delta
            if diff > 0:
                if aj < 0:
                    aj, ai = 0.0, diff
            elif ai < 0:
                ai, aj = 0.0, -diff
            if diff > ci - cj:
                if ai > ci:
                    ai, aj = ci, ci - diff
            elif aj > cj:
                aj, ai = cj, cj + diff
        else:
            qc = QD[i] + QD[j] - 2.0 * Qi[j]
            delta = (G[i] - G[j]) / (qc if qc > 0 else TAU)
            s = ai + aj
            ai -= delta
            aj += delta
            if s > ci:
                if ai > ci:
                    ai, aj = ci, s - ci
            elif aj < 0:
                aj, ai = 0.0, s
            if s > cj:
                if aj > cj:
                    aj, ai = cj, s - cj
            elif ai < 0:
                ai, aj = 0.0, s
        alpha[i], alpha[j] = ai, aj
        dai = ai - oai
        daj = (aj - oaj) * y[j]
        rowj = Ks[j % l]
        for t in range(l):
            G[t] += Qi[t] * dai + y[t] * rowj[t] * daj
        for t in range(l, m):
            G[t] += Qi[t] * dai + y[t] * rowj[t - l] * daj
    nf, ub, lb, sf = 0, np.inf, -np.inf, 0.0
    for t in range(m):          # libsvm's rho: mean over free variables, else the middle of the bounds
        yg = y[t] * G[t]
        if alpha[t] >= C[t]:
            if y[t] < 0:
                ub = min(ub, yg)
            else:
                lb = max(lb, yg)
        elif alpha[t] <= 0:
            if y[t] > 0:
                ub = min(ub, yg)
            else:
                lb = max(lb, yg)
        else:
            nf += 1
            sf += yg
    return (sf / nf if nf > 0 else (ub + lb) / 2), it


def problem(y, tr, cand, cls):
    """(y, p, C) of libsvm's dual for the fold's training rows."""
    l = len(tr)
    if cls:
        return y[tr].copy(), -np.ones(l), np.full(l, cand["C"])
    e = cand["epsilon"]
    return np.r_[np.ones(l), -np.ones(l)], np.r_[e - y[tr], e + y[tr]], np.full(2 * l, cand["C"])


def warm_start(prev, tr, yy, C, cls):
    """The previous fold's solution (per sample of all rows) on this fold's variables, feasible again."""
    a = prev[0][tr].copy() if cls else np.r_[prev[0][tr], prev[1][tr]]
    a = np.minimum(a, C)
    pos, neg = a[yy > 0].sum(), a[yy < 0].sum()
    if pos > neg:
        a[yy > 0] *= neg / pos
    elif neg > pos:
        a[yy < 0] *= pos / neg
    return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--tasks", default="reg_strong,cls_binary")
    ap.add_argument("--candidates", type=int, default=6)
    ap.add_argument("--folds", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_svm_solver.json"))
    args = ap.parse_args()

    from eoembed.bench import svm as S
    from eoembed.bench.core import _splits
    from eoembed.bench.io import prepare

    load0 = os.getloadavg()
    X, ids, lab = synthetic(args.n, args.dim)
    tasks = args.tasks.split(",")
    types = {t: lab.attrs["task_types"][t] for t in tasks}
    lab = lab[tasks]
    lab.attrs["task_types"] = types
    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare(*write_neuco_inputs(X, ids, lab, Path(tmp)))
    splits = _splits(prep, args.folds, 42)
    smo(np.eye(2), 2, np.array([1.0, -1.0]), -np.ones(2), np.ones(2), np.zeros(2), 1e-3, 10)   # compile
    rows_out = []
    for task in tasks:
        k = prep.tasks.index(task)
        cls = prep.task_types[task] == "classification"
        rows = np.asarray(prep.rows[task])
        y = prep.Y[k][rows].astype(np.float64)
        if cls:
            y[y == 0] = -1
        pos = np.full(len(prep.X), -1)
        pos[rows] = np.arange(len(rows))
        folds = [(np.sort(pos[tr]), pos[te]) for tr, te in splits[task]]
        G = S.gram(prep.X[rows])
        n = len(rows)
        for c in S.sample_candidates(S.SVM_PROBE_DEFAULTS, cls, args.candidates, 42):
            K = S.kernel(G, c)
            rec = {"task": task, "candidate": {a: (round(v, 6) if isinstance(v, float) else v) for a, v in c.items()},
                   "libsvm_ms": [], "cold_ms": [], "warm_ms": [], "cold_iter": [], "warm_iter": [],
                   "agree_cold": [], "agree_warm": []}
            prev = None
            for f, (tr, te) in enumerate(folds):
                w = np.zeros(n)
                w[tr] = 1.0
                c0 = time.process_time()
                sup, dual, b = S._libsvm_fit(K, y, w, c, cls)
                dl = K[np.ix_(te, tr[sup])] @ dual + b
                rec["libsvm_ms"].append(1e3 * (time.process_time() - c0))
                decs = {}
                for mode in ("cold", "warm"):
                    if mode == "warm" and prev is None:
                        continue
                    c0 = time.process_time()
                    Ks = K[np.ix_(tr, tr)]
                    yy, p, C = problem(y, tr, c, cls)
                    a = np.zeros(len(yy)) if mode == "cold" else warm_start(prev, tr, yy, C, cls)
                    rho, it = smo(Ks, len(tr), yy, p, C, a, 1e-3, 10_000_000)
                    coef = a[:len(tr)] * yy[:len(tr)] + (0.0 if cls else a[len(tr):] * yy[len(tr):])
                    decs[mode] = K[np.ix_(te, tr)] @ coef - rho
                    rec[f"{mode}_ms"].append(1e3 * (time.process_time() - c0))
                    rec[f"{mode}_iter"].append(int(it))
                    if mode == "cold":
                        sol = (a, coef)
                for mode, d in decs.items():
                    rec[f"agree_{mode}"].append(float(np.mean(np.sign(d) == np.sign(dl))) if cls
                                                else float(np.max(np.abs(d - dl)) / max(np.std(dl), 1e-12)))
                a, coef = sol
                prev = (np.zeros(n), np.zeros(n))
                prev[0][tr] = a[:len(tr)]
                if not cls:
                    prev[1][tr] = a[len(tr):]
            rows_out.append(rec)
            m = {key: float(np.mean(rec[key])) for key in ("libsvm_ms", "cold_ms", "warm_ms", "cold_iter",
                                                          "warm_iter")}
            worst = min(rec["agree_cold"] + rec["agree_warm"]) if cls else max(rec["agree_cold"] + rec["agree_warm"])
            print(f"{task:10s} C={c['C']:9.4f} deg={c['degree']} gamma={c['gamma']:.4f} coef0={c['coef0']:+.3f}  "
                  f"libsvm {m['libsvm_ms']:6.1f} ms  cold {m['cold_ms']:6.1f} ms ({m['cold_iter']:.0f} it)  "
                  f"warm {m['warm_ms']:6.1f} ms ({m['warm_iter']:.0f} it)  worst agreement {worst:.3g}", flush=True)
    summary = {}
    for task in tasks:
        rs = [r for r in rows_out if r["task"] == task]
        tot = {key: float(sum(np.sum(r[key]) for r in rs)) for key in ("libsvm_ms", "cold_ms", "warm_ms")}
        nw = sum(len(r["warm_ms"]) for r in rs)
        nl = sum(len(r["libsvm_ms"]) for r in rs)
        summary[task] = {
            "libsvm_ms_per_fit": tot["libsvm_ms"] / nl, "cold_ms_per_fit": tot["cold_ms"] / nl,
            "warm_ms_per_fit": tot["warm_ms"] / nw,
            "cold_over_libsvm": tot["cold_ms"] / tot["libsvm_ms"],
            "warm_iterations_over_cold": float(sum(np.sum(r["warm_iter"]) for r in rs)
                                               / sum(np.sum(r["cold_iter"][1:]) for r in rs)),
            "worst_agreement_cold": (min if task.startswith("cls") else max)(
                x for r in rs for x in r["agree_cold"]),
            "worst_agreement_warm": (min if task.startswith("cls") else max)(
                x for r in rs for x in r["agree_warm"]),
        }
    print(json.dumps(summary, indent=1))
    out = {"what": __doc__.splitlines()[0], "command": "python benchmarks/" + Path(__file__).name + " "
           + " ".join(sys.argv[1:]), "machine": f"{platform.machine()} CPU, 2 cores, no GPU",
           "n": args.n, "dim": args.dim, "folds": args.folds, "candidates": args.candidates,
           "agreement": "classification: share of test predictions with libsvm's sign; regression: max |difference| "
                        "/ sd of libsvm's test predictions",
           "load_average_at_start": load0, "load_average_at_end": os.getloadavg(),
           "summary": summary, "runs": rows_out}
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
