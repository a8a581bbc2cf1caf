"""Would another SVM solver beat libsvm? A study behind issue 13's remaining SVM gap (not a solver eoembed uses).

eoembed's SVM probe (eoembed.bench.svm) spends ~93% of its time in libsvm's SMO iterations, the same iterations
NeuCo-Bench runs. This benchmark measures the obvious replacement, written here as a study only: libsvm's own
algorithm (SMO with the second-order working-set selection WSS3 of Fan, Chen & Lin 2005, the same stopping rule
``max violation < tol = 1e-3`` and the same bias rule) in numba on the fold's precomputed kernel, without libsvm's
shrinking, run

- cold (alpha = 0, as libsvm starts), and
- warm-started across folds (the issue's idea): each fold starts from the previous fold's solution on the samples
  both train parts share (about 81% of them for 90/10 ShuffleSplits), new samples at 0, the side with the larger
  sum scaled down so the equality constraint holds; and
- "block": a working set of ``--block`` variables (the most violating half from each side, as ThunderSVM selects
  them) solved by inner SMO steps on their small kernel block until its violation is below max(tol, 0.1 x the
  global one), then one gradient update for the whole block; the same global stopping and bias rules; read
  straight from the full kernel (no copy of the fold's sub-matrix).

Against eoembed's libsvm call (``svm._libsvm_fit``) on the same kernel, fold and candidate: CPU ms per fit,
SMO iterations, and agreement of the test predictions (classification: share of equal signs; regression: largest
difference / sd of libsvm's predictions, floored at 1e-12) and the largest change of the fold metric
(F1 / R^2) against libsvm's. Data as bench_svm.py: 2,000 x 1,024 synthetic, NeuCo-Bench's input
scaling, its ShuffleSplit folds, candidates drawn from sample_config_svm.yaml's space (eoembed's random search).
Writes benchmarks/results/bench_svm_solver.json.

    .venv/bin/python benchmarks/bench_svm_solver.py [--candidates 30] [--folds 4] [--block 8]
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
        oai, oaj = alpha[i], alpha[j]
        ai, aj = _pair_step(oai, oaj, G[i], G[j], QD[i], QD[j], Qi[j], y[i] != y[j], C[i], C[j])
        alpha[i], alpha[j] = ai, aj
        dai = ai - oai
        daj = (aj - oaj) * y[j]
        rowj = Ks[j % l]
        for t in range(l):
            G[t] += Qi[t] * dai + y[t] * rowj[t] * daj
        for t in range(l, m):
            G[t] += Qi[t] * dai + y[t] * rowj[t - l] * daj
    return _rho(G, y, C, alpha), it


@nb.njit(cache=True)
def _keep_top(vals, idx, n, v, t):
    """Insert (v, t) into the descending top-len(vals) list of n entries; returns the new n."""
    k = vals.shape[0]
    if n == k and v <= vals[k - 1]:
        return n
    pos = n if n < k else k - 1
    while pos > 0 and vals[pos - 1] < v:
        vals[pos], idx[pos] = vals[pos - 1], idx[pos - 1]
        pos -= 1
    vals[pos], idx[pos] = v, t
    return n + 1 if n < k else n


@nb.njit(cache=True)
def block_smo(K, tr, y, p, C, alpha, tol, q, max_outer):
    """The same dual as :func:`smo` on the full kernel ``K`` (variable t reads row/column ``tr[t % l]``), solved
    by working sets of ``q`` variables. Returns (rho, outer iterations, inner SMO steps)."""
    l = tr.shape[0]
    m = y.shape[0]
    G = p.copy()
    h = q // 2
    up_v, lo_v = np.empty(h), np.empty(h)
    up_i, lo_i = np.empty(h, np.int64), np.empty(h, np.int64)
    ws = np.empty(q, np.int64)
    inws = np.zeros(m, np.bool_)
    Qs = np.empty((q, q))
    g, a, a0, ys, cs = np.empty(q), np.empty(q), np.empty(q), np.empty(q), np.empty(q)
    outer = 0
    inner = 0
    while outer < max_outer:
        nu = nl = 0
        gmax = gmax2 = -np.inf
        for t in range(m):
            v = -y[t] * G[t]
            if (y[t] > 0 and alpha[t] < C[t]) or (y[t] < 0 and alpha[t] > 0):     # I_up
                gmax = max(gmax, v)
                nu = _keep_top(up_v, up_i, nu, v, t)
            if (y[t] > 0 and alpha[t] > 0) or (y[t] < 0 and alpha[t] < C[t]):     # I_low
                gmax2 = max(gmax2, -v)
                nl = _keep_top(lo_v, lo_i, nl, -v, t)
        viol = gmax + gmax2
        if viol < tol:
            break
        outer += 1
        nw = 0
        for k in range(nu + nl):
            t = up_i[k] if k < nu else lo_i[k - nu]
            if not inws[t]:
                inws[t] = True
                ws[nw] = t
                nw += 1
        for u in range(nw):
            t = ws[u]
            inws[t] = False
            ys[u], cs[u], a[u], a0[u], g[u] = y[t], C[t], alpha[t], alpha[t], G[t]
            rt = K[tr[t % l]]
            for v in range(nw):
                Qs[u, v] = y[t] * y[ws[v]] * rt[tr[ws[v] % l]]
        eps_in = max(tol, 0.1 * viol)
        for _ in range(100 * nw):
            gm = -np.inf
            i = -1
            for u in range(nw):
                if ys[u] > 0:
                    if a[u] < cs[u] and -g[u] >= gm:
                        gm, i = -g[u], u
                elif a[u] > 0 and g[u] >= gm:
                    gm, i = g[u], u
            if i == -1:
                break
            gm2 = -np.inf
            omin = np.inf
            j = -1
            for u in range(nw):
                if ys[u] > 0:
                    if a[u] > 0:
                        gd = gm + g[u]
                        gm2 = max(gm2, g[u])
                        if gd > 0:
                            qc = Qs[i, i] + Qs[u, u] - 2.0 * ys[i] * Qs[i, u]
                            od = -(gd * gd) / (qc if qc > 0 else TAU)
                            if od <= omin:
                                j, omin = u, od
                elif a[u] < cs[u]:
                    gd = gm - g[u]
                    gm2 = max(gm2, -g[u])
                    if gd > 0:
                        qc = Qs[i, i] + Qs[u, u] + 2.0 * ys[i] * Qs[i, u]
                        od = -(gd * gd) / (qc if qc > 0 else TAU)
                        if od <= omin:
                            j, omin = u, od
            if gm + gm2 < eps_in or j == -1:
                break
            inner += 1
            oi, oj = a[i], a[j]
            a[i], a[j] = _pair_step(a[i], a[j], g[i], g[j], Qs[i, i], Qs[j, j], Qs[i, j], ys[i] != ys[j], cs[i], cs[j])
            di, dj = a[i] - oi, a[j] - oj
            for u in range(nw):
                g[u] += Qs[i, u] * di + Qs[j, u] * dj
        for u in range(nw):
            d = a[u] - a0[u]
            if d != 0.0:
                t = ws[u]
                alpha[t] = a[u]
                rt = K[tr[t % l]]
                yd = y[t] * d
                for s in range(l):
                    G[s] += yd * y[s] * rt[tr[s]]
                for s in range(l, m):
                    G[s] += yd * y[s] * rt[tr[s - l]]
    return _rho(G, y, C, alpha), outer, inner


@nb.njit(cache=True)
def _pair_step(ai, aj, gi, gj, qii, qjj, qij, opposite, ci, cj):
    """libsvm's two-variable update (clipped to the box and the equality constraint)."""
    if opposite:
        qc = qii + qjj + 2.0 * qij
        delta = (-gi - gj) / (qc if qc > 0 else TAU)
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
        qc = qii + qjj - 2.0 * qij
        delta = (gi - gj) / (qc if qc > 0 else TAU)
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
    return ai, aj


@nb.njit(cache=True)
def _rho(G, y, C, alpha):
    """libsvm's bias: mean of y G over free variables, else the middle of the bounds."""
    nf, ub, lb, sf = 0, np.inf, -np.inf, 0.0
    for t in range(y.shape[0]):
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
    return sf / nf if nf > 0 else (ub + lb) / 2


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
    ap.add_argument("--candidates", type=int, default=30)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--block", type=int, default=8, help="working-set size of the block solver")
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
    e2, one = np.eye(2), np.array([1.0, -1.0])
    smo(e2, 2, one, -np.ones(2), np.ones(2), np.zeros(2), 1e-3, 10)   # compile before timing
    block_smo(e2, np.arange(2), one, -np.ones(2), np.ones(2), np.zeros(2), 1e-3, args.block, 10)
    modes = ("cold", "warm", "block")
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
                   "libsvm_ms": []}
            rec.update({f"{m}_{x}": [] for m in modes for x in ("ms", "iter", "agree", "dmetric")})
            prev = None
            for tr, te in folds:
                w = np.zeros(n)
                w[tr] = 1.0
                c0 = time.process_time()
                sup, dual, b = S._libsvm_fit(K, y, w, c, cls)
                dl = K[np.ix_(te, tr[sup])] @ dual + b
                rec["libsvm_ms"].append(1e3 * (time.process_time() - c0))
                decs = {}
                for mode in modes:
                    if mode == "warm" and prev is None:
                        continue
                    c0 = time.process_time()
                    yy, p, C = problem(y, tr, c, cls)
                    if mode == "block":
                        a = np.zeros(len(yy))
                        rho, it, _ = block_smo(K, tr, yy, p, C, a, 1e-3, args.block, 10_000_000)
                    else:
                        a = np.zeros(len(yy)) if mode == "cold" else warm_start(prev, tr, yy, C, cls)
                        rho, it = smo(K[np.ix_(tr, tr)], len(tr), yy, p, C, a, 1e-3, 10_000_000)
                    coef = a[:len(tr)] * yy[:len(tr)] + (0.0 if cls else a[len(tr):] * yy[len(tr):])
                    decs[mode] = K[np.ix_(te, tr)] @ coef - rho
                    rec[f"{mode}_ms"].append(1e3 * (time.process_time() - c0))
                    rec[f"{mode}_iter"].append(int(it))
                    if mode == "cold":
                        sol = a
                score_l = S._metrics(y[te], np.where(dl < 0, -1.0, 1.0) if cls else dl, cls)[0]
                for mode, d in decs.items():
                    rec[f"{mode}_agree"].append(
                        float(np.mean(np.sign(d) == np.sign(dl))) if cls
                        else float(np.max(np.abs(d - dl)) / max(np.std(dl), 1e-12)))
                    score = S._metrics(y[te], np.where(d < 0, -1.0, 1.0) if cls else d, cls)[0]
                    rec[f"{mode}_dmetric"].append(abs(score - score_l))
                prev = (np.zeros(n), np.zeros(n))
                prev[0][tr] = sol[:len(tr)]
                if not cls:
                    prev[1][tr] = sol[len(tr):]
            rows_out.append(rec)
            line = " ".join(f"{mode} {np.mean(rec[mode + '_ms']):6.1f} ms" for mode in modes)
            worst = max(max(rec[f"{mode}_dmetric"]) for mode in modes)
            print(f"{task:10s} C={c['C']:9.4f} deg={c['degree']} gamma={c['gamma']:.4f} coef0={c['coef0']:+.3f}  "
                  f"libsvm {np.mean(rec['libsvm_ms']):6.1f} ms  {line}  largest metric change {worst:.3g}", flush=True)
    summary = {}
    for task in tasks:
        rs = [r for r in rows_out if r["task"] == task]
        tot = {m: float(sum(np.sum(r[m + "_ms"]) for r in rs)) for m in ("libsvm",) + modes}
        nfit = {m: sum(len(r[m + "_ms"]) for r in rs) for m in ("libsvm",) + modes}
        worst = min if task.startswith("cls") else max
        dm = {m: np.array([x for r in rs for x in r[m + "_dmetric"]]) for m in modes}
        summary[task] = {
            "ms_per_fit": {m: tot[m] / nfit[m] for m in tot},
            "speed_over_libsvm": {m: (tot["libsvm"] / nfit["libsvm"]) / (tot[m] / nfit[m]) for m in modes},
            "warm_iterations_over_cold": float(sum(np.sum(r["warm_iter"]) for r in rs)
                                               / sum(np.sum(r["cold_iter"][1:]) for r in rs)),
            "worst_agreement": {m: worst(x for r in rs for x in r[m + "_agree"]) for m in modes},
            "fold_metric_change": {m: {"median": float(np.median(dm[m])), "max": float(dm[m].max()),
                                       "share_above_0.01": float(np.mean(dm[m] > 0.01))} for m in modes},
        }
    print(json.dumps(summary, indent=1))
    out = {"what": __doc__.splitlines()[0], "command": "python benchmarks/" + Path(__file__).name + " "
           + " ".join(sys.argv[1:]), "machine": f"{platform.machine()} CPU, 2 cores, no GPU",
           "n": args.n, "dim": args.dim, "folds": args.folds, "candidates": args.candidates, "block": args.block,
           "agreement": "classification: share of test predictions with libsvm's sign; regression: max |difference| "
                        "/ sd of libsvm's test predictions; fold_metric_change: |F1 or R^2 - libsvm's| per fit",
           "load_average_at_start": load0, "load_average_at_end": os.getloadavg(),
           "summary": summary, "runs": rows_out}
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
