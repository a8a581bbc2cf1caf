"""An exact solver of the SVC / epsilon-SVR dual for the many folds of one kernel matrix
(``svm_solver="active-set"``).

NeuCo-Bench fits libsvm (SMO: two variables per step, thousands of O(n) steps) on each of K folds that share 90%
of their rows. Here libsvm solves a candidate's first fold; its free support vectors (and the rows it did not
train on whose residual leaves the tube) form F0, ``K[F0, F0]`` is factorised once, and every other fold (and inner
split) is solved by a primal-dual active-set (semismooth Newton) iteration on the KKT system, started from that
solution.

In signed coefficients ``beta`` (SVC: ``alpha * y``, in [0, C] times the label's sign; SVR: ``alpha - alpha*``, in
[-C, C]) and residuals ``r = y - (K beta + b)``, a row is at zero (``|r| <= eps``; SVC: eps = 0 and ``y r <= 0``,
i.e. margin >= 1), free with sign s (``r = s eps``), or at ``s C`` (``s r >= eps``). Per step:

- the free rows F solve ``[[K_FF, 1], [1^T, 0]] [beta_F; b] = [y_F - eps s_F - K_FB beta_B; -sum beta_B]`` (B: rows
  at a bound). F differs from F0 by the rows it drops (the fold's test rows, rows that left: D) and adds (A); the
  system is solved from the inverse of ``K[F0, F0]`` by the principal-submatrix identity (a |D| x |D| solve) and a
  Schur complement on A and b; ``inv(K[F0, F0]) K[F0, j]`` is computed once per row j that enters A or B;
- rows that break their set's condition move: every violator for the first ``FULL_STEPS`` steps (a fold typically
  needs 3-5 from the first fold's solution), then only the worst ``max(MOVES, violations // 4)`` (moving all at once
  can cycle). A fold stops when nothing violates by more than ``VIOL_TOL`` (margin units).

The kernel must be positive semi-definite (the caller's check: polynomial kernels with coef0 >= 0): then the dual
is convex and a KKT point is its optimum. A fold's answer is kept only when it passes libsvm's own stopping rule
(``max_{I_up} -y G - min_{I_low} -y G < tol`` on libsvm's variables, G recomputed from the kernel) after clipping
to the box and re-imposing the equality constraint; the intercept is libsvm's (mean of -y G over the free
variables). Anything else -- no free variable, a factorisation that fails, no convergence in ``MAX_STEPS`` --
returns None, and the caller runs libsvm on that fold.
So every score comes from a solution that libsvm's stopping rule accepts: the exact optimum, where libsvm stops
within its tolerance of it. Test decisions agree with libsvm's except within ~tol of the boundary
(benchmarks/bench_svm.py counts the fold scores that differ).
"""
from __future__ import annotations

import threading

import numpy as np

FULL_STEPS = 10     # steps that move every violator (plain semismooth Newton); later ones move fewer
MOVES = 10
MAX_STEPS = 40
MIN_SOLVES = 9     # fewer fits per candidate to share the factorisation: libsvm (the caller's check)
MIN_FREE = 200     # fewer rows in F0: libsvm (its SMO is short then; measured faster)
MAX_ADDED = 600     # more rows outside F0 than this: libsvm
MAX_BYTES = 2 << 30  # inverse + cached columns (f0 x (f0 + n) float64) larger than this: libsvm
VIOL_TOL = 1e-8     # a violation smaller than this is rounding (libsvm's stopping rule decides at the end)


class FoldSolver:
    """From libsvm's solution on the rows ``train0`` (default: all) of the kernel ``K`` (n x n, float64): ``beta0``
    (n,) signed dual coefficients (0 outside ``train0``) and ``b0`` its intercept, for labels ``y`` (SVC: +-1,
    ``epsilon=None``; SVR: targets and its ``epsilon``) and cost ``C``. Rows outside ``train0`` start free where
    that solution's residual leaves the tube (SVC: margin below 1), else at zero. ``ok`` is False when
    ``K[F0, F0]`` cannot be factorised, F0 has fewer than ``MIN_FREE`` rows, or the inverse and cached columns
    would pass ``MAX_BYTES`` (then :meth:`solve` always returns None)."""

    def __init__(self, K: np.ndarray, y: np.ndarray, C: float, beta0: np.ndarray, b0: float,
                 epsilon: float | None = None, tol: float = 1e-3, train0: np.ndarray | None = None):
        import scipy.linalg as sl

        self.K, self.y, self.C, self.tol = K, np.asarray(y, dtype=np.float64), float(C), tol
        self.cls = epsilon is None
        self.eps = 0.0 if self.cls else float(epsilon)
        n = len(y)
        self.diag = np.abs(np.diagonal(K))
        # allowed signs of beta: SVC the label's, SVR both
        self.pos_ok = self.y > 0 if self.cls else np.ones(n, dtype=bool)
        self.neg_ok = self.y < 0 if self.cls else np.ones(n, dtype=bool)
        bb = np.abs(beta0)
        s = np.sign(beta0).astype(np.int8)
        self.state0 = np.where(bb >= self.C, 2 * s, s).astype(np.int8)   # 0 zero, +-1 free, +-2 at +-C
        if train0 is not None:    # rows that solution did not train on: free where its residual leaves the tube
            out = np.setdiff1d(np.arange(n), train0)
            r = self.y[out] - (K[out] @ beta0 + b0)
            g = np.zeros(len(out), dtype=np.int8)
            g[(r > self.eps) & self.pos_ok[out]] = 1
            g[(r < -self.eps) & self.neg_ok[out]] = -1
            self.state0[out] = g
        self.F0 = np.flatnonzero(np.abs(self.state0) == 1)
        self.pos0 = np.full(n, -1)
        self.pos0[self.F0] = np.arange(len(self.F0))
        self.ok = max(MIN_FREE, 2) <= len(self.F0) and 8 * len(self.F0) * (len(self.F0) + n) <= MAX_BYTES
        self._lock = threading.Lock()
        if not self.ok:
            return
        try:
            c, _ = sl.cho_factor(K[np.ix_(self.F0, self.F0)], lower=True, check_finite=False)
            inv, info = sl.lapack.dpotri(c, lower=1)
        except (np.linalg.LinAlgError, ValueError):
            self.ok = False
            return
        if info != 0 or not np.isfinite(inv).all():
            self.ok = False
            return
        P = np.tril(inv)
        P += np.tril(inv, -1).T
        self.P = P
        self.P1 = P.sum(axis=1)
        self.t0 = self.y[self.F0] - self.eps * np.sign(self.state0[self.F0])   # free rows' targets in F0
        self.Pt0 = P @ self.t0
        self._H = np.empty((len(self.F0), n), order="F")    # columns filled on demand by _h
        self._have = np.zeros(n, dtype=bool)

    def _h(self, idx: np.ndarray) -> np.ndarray:
        """``inv(K[F0, F0]) K[F0, j]`` for rows j in ``idx`` (f0 x len(idx)), each column computed once."""
        new = idx[~self._have[idx]]
        if len(new):
            with self._lock:
                new = np.unique(new[~self._have[new]])
                if len(new):
                    self._H[:, new] = self.P @ self.K[np.ix_(self.F0, new)]
                    self._have[new] = True
        return self._H[:, idx]

    def solve(self, train: np.ndarray) -> tuple[np.ndarray, float] | None:
        """Signed dual coefficients (n,; 0 outside ``train``) and intercept on rows ``train``, or None (use
        libsvm)."""
        if not self.ok:
            return None
        K, y, C, eps = self.K, self.y, self.C, self.eps
        tr = np.asarray(train)
        ytr = y[tr]
        st = self.state0[tr].copy()
        n, f0 = len(y), len(self.F0)
        for step in range(MAX_STEPS):
            free = np.abs(st) == 1
            F, B = tr[free], tr[np.abs(st) == 2]
            inF0 = self.pos0[F] >= 0
            S, A = F[inF0], F[~inF0]
            if len(A) > MAX_ADDED or len(S) == 0:
                return None
            keep = np.zeros(f0, dtype=bool)
            keep[self.pos0[S]] = True
            D = np.flatnonzero(~keep)                         # positions in F0 not free in this step
            Dr = self.F0[D]
            bB = C * np.sign(st[np.abs(st) == 2]).astype(np.float64)
            t = np.zeros(n)                                   # free rows' right-hand side y - eps s (zero-padded)
            t[F] = y[F] - eps * st[free]
            KA = K[A]                                         # rows of the added (a x n, contiguous reads)
            # inv(K_SS) applied to [K_SA, 1_S, t_S - K_SB bB], each zero-padded to F0 (then D removed)
            W = np.empty((f0, len(A) + 2))
            W[:, :len(A)] = self._h(A)
            W[:, len(A)] = self.P1
            # P t_F0 from P t0 (precomputed): only rows whose target changed (D, sign flips) are corrected
            dt = self.t0 - t[self.F0]
            X = np.flatnonzero(dt)
            W[:, len(A) + 1] = self.Pt0 - self.P[X].T @ dt[X] - (self._h(B) @ bB if len(B) else 0.0)
            if len(D):
                KD = np.empty((len(D), len(A) + 2))
                KD[:, :len(A)] = KA[:, Dr].T
                KD[:, len(A)] = 1.0
                KD[:, len(A) + 1] = t[Dr] - (K[np.ix_(Dr, B)] @ bB if len(B) else 0.0)
                PD = self.P[D]                                # = P[:, D].T (P is symmetric): contiguous rows
                W -= PD.T @ KD
                try:
                    W -= PD.T @ np.linalg.solve(PD[:, D], W[D])
                except np.linalg.LinAlgError:
                    return None
            Z = W[self.pos0[S]]
            E = np.empty((len(S), len(A) + 1))
            E[:, :len(A)] = KA[:, S].T
            E[:, len(A)] = 1.0
            M = np.zeros((len(A) + 1, len(A) + 1))
            M[:len(A), :len(A)] = KA[:, A]
            M[:len(A), len(A)] = 1.0
            M[len(A), :len(A)] = 1.0
            M -= E.T @ Z[:, :len(A) + 1]
            rhs = np.empty(len(A) + 1)
            rhs[:len(A)] = t[A] - (KA[:, B] @ bB if len(B) else 0.0)
            rhs[len(A)] = -bB.sum()
            rhs -= E.T @ Z[:, len(A) + 1]
            try:
                sol = np.linalg.solve(M, rhs)
            except np.linalg.LinAlgError:
                return None
            beta = np.zeros(n)
            beta[S] = Z[:, len(A) + 1] - Z[:, :len(A) + 1] @ sol
            beta[A] = sol[:len(A)]
            beta[B] = bB
            if not np.isfinite(beta).all():
                return None
            bt = beta[tr]
            r = np.zeros(len(tr))                             # y - f; on free rows s eps by the solve
            nf = ~free
            rows = tr[nf]
            Kb = K[rows] @ beta if 4 * len(rows) < n else (K @ beta)[rows]   # few rows: copy them; else one pass
            r[nf] = ytr[nf] - Kb - sol[len(A)]
            d = self.diag[tr]
            viol = np.zeros(len(tr))
            new = st.copy()
            # free rows whose coefficient left its sign's range (in margin units: coefficient x K_ii)
            s = np.sign(st)
            to0 = free & (s * bt < 0)
            toB = free & (s * bt > C)
            viol[to0], new[to0] = -s[to0] * bt[to0] * d[to0], 0
            viol[toB], new[toB] = (s[toB] * bt[toB] - C) * d[toB], 2 * s[toB]
            # rows at zero outside the tube, rows at a bound inside it
            z = st == 0
            up = z & (r > eps) & self.pos_ok[tr]
            dn = z & (r < -eps) & self.neg_ok[tr]
            viol[up], new[up] = r[up] - eps, 1
            viol[dn], new[dn] = -eps - r[dn], -1
            hi, lo = (st == 2) & (r < eps), (st == -2) & (r > -eps)
            viol[hi], new[hi] = eps - r[hi], 1
            viol[lo], new[lo] = r[lo] + eps, -1
            nv = int(np.count_nonzero(viol > VIOL_TOL))
            if nv == 0:
                return self._certify(tr, bt)
            m = nv if step < FULL_STEPS else max(MOVES, nv // 4)
            idx = np.argsort(-viol, kind="stable")[:m]
            idx = idx[viol[idx] > VIOL_TOL]
            st[idx] = new[idx]
        return None

    def _certify(self, tr: np.ndarray, bt: np.ndarray) -> tuple[np.ndarray, float] | None:
        """libsvm's stopping rule and intercept on the clipped coefficients; None when they do not hold."""
        C, y, eps = self.C, self.y, self.eps
        ytr = y[tr]
        lo = np.where(self.neg_ok[tr], -C, 0.0)
        hi = np.where(self.pos_ok[tr], C, 0.0)
        b = np.clip(bt, lo, hi)
        free = (b != 0) & (np.abs(b) < C)
        if not free.any():
            return None
        b[free] -= float(b.sum()) / np.count_nonzero(free)    # sum beta = 0 again after the clip
        b = np.clip(b, lo, hi)
        if abs(float(b.sum())) > 1e-12 * float(np.abs(b).sum()):
            return None
        beta = np.zeros(len(y))
        beta[tr] = b
        f = (self.K @ beta)[tr]
        if self.cls:         # libsvm's variables a = y beta in [0, C], labels y, gradient G = y f - 1
            a, lab, G = ytr * b, ytr, ytr * f - 1.0
        else:                # 2n variables: a+ = max(beta, 0) (label +1), a- = max(-beta, 0) (label -1)
            a = np.concatenate([np.maximum(b, 0.0), np.maximum(-b, 0.0)])
            lab = np.concatenate([np.ones(len(tr)), -np.ones(len(tr))])
            G = np.concatenate([f + eps - ytr, -f + eps + ytr])
        v = -lab * G
        up = ((a < C) & (lab > 0)) | ((a > 0) & (lab < 0))
        low = ((a < C) & (lab < 0)) | ((a > 0) & (lab > 0))
        fr = (a > 0) & (a < C)
        if not (up.any() and low.any() and fr.any()) or v[up].max() - v[low].min() >= self.tol:
            return None
        return beta, float(v[fr].mean())
