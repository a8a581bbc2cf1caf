"""The fused NeuCo-Bench probe epoch kernel (numba), compiled once and cached on disk. Imported by
:mod:`eoembed.bench.engine` on first use (importing numba takes a few tenths of a second)."""
import math

import numba
import numpy as np


@numba.njit(fastmath=True, nogil=True, cache=True, inline="always")
def _adamw(w, m, v, g, decay, c1, c2, fb2, feps, step_size, inv_bc2):
    """AdamW step of one probe, as torch.optim.AdamW (single-tensor): decay, moments, bias-corrected step."""
    for k in range(w.shape[0]):
        gk = g[k]
        mk = m[k] + c1 * (gk - m[k])
        vk = v[k] * fb2 + c2 * gk * gk
        m[k] = mk
        v[k] = vk
        w[k] = w[k] * decay - step_size * mk / (math.sqrt(vk) * inv_bc2 + feps)


@numba.njit(fastmath=True, nogil=True, cache=True, inline="always")
def _dot4(x0, x1, x2, x3, w, d):
    """The dot products of four rows with w[:d] in one pass over w (w is read once for the four rows)."""
    a0 = a1 = a2 = a3 = np.float32(0.0)
    for k in range(d):
        wk = w[k]
        a0 += x0[k] * wk
        a1 += x1[k] * wk
        a2 += x2[k] * wk
        a3 += x3[k] * wk
    return a0, a1, a2, a3


@numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def epoch(X, Y, task, cls, tr, tr_off, perm, te, te_off, W, M, V, steps, lr, wd, b1, b2, eps, B, logits):
    """One epoch of every probe of the block; probe p's state is row p of W / M / V ([weight | bias]).
    Per step: the batch rows 4 at a time (forward pass, dL/dz, gradient while the 4 rows are in L1), then AdamW;
    after the epoch the held-out logits."""
    P = tr_off.shape[0] - 1
    d = X.shape[1]
    decay = np.float32(1.0 - lr * wd)
    c1, c2 = np.float32(1.0 - b1), np.float32(1.0 - b2)
    fb2, feps = np.float32(b2), np.float32(eps)
    for p in numba.prange(P):
        w, m, v = W[p], M[p], V[p]
        g = np.empty(d + 1, dtype=np.float32)
        rows = np.empty(B, dtype=np.int64)
        zz = np.empty(4, dtype=np.float32)
        y = Y[task[p]]
        o = tr_off[p]
        L = tr_off[p + 1] - o
        for s0 in range(0, L, B):
            bs = min(B, L - s0)
            inv = np.float32(1.0 / bs)
            for r in range(bs):
                rows[r] = tr[o + perm[o + s0 + r]]
            g[:] = 0.0
            gb = np.float32(0.0)
            r = 0
            while r < bs:              # 4 rows: forward, then their share of the gradient while they are in L1
                i0 = rows[r]
                i1 = rows[min(r + 1, bs - 1)]
                i2 = rows[min(r + 2, bs - 1)]
                i3 = rows[min(r + 3, bs - 1)]
                x0, x1, x2, x3 = X[i0], X[i1], X[i2], X[i3]
                zz[0], zz[1], zz[2], zz[3] = _dot4(x0, x1, x2, x3, w, d)
                nq = min(4, bs - r)
                for q in range(nq):                       # dL/dz of each row (mean over the batch)
                    z = zz[q] + w[d]
                    yi = y[rows[r + q]]
                    if cls[p]:
                        zz[q] = (np.float32(1.0) / (np.float32(1.0) + np.exp(-z)) - yi) * inv
                    else:
                        zz[q] = np.float32(2.0) * (z - yi) * inv
                if nq == 4:
                    a0, a1, a2, a3 = zz[0], zz[1], zz[2], zz[3]
                    for k in range(d):
                        g[k] += a0 * x0[k] + a1 * x1[k] + a2 * x2[k] + a3 * x3[k]
                    gb += a0 + a1 + a2 + a3
                else:
                    for q in range(nq):
                        a0 = zz[q]
                        x0 = X[rows[r + q]]
                        for k in range(d):
                            g[k] += a0 * x0[k]
                        gb += a0
                r += 4
            g[d] = gb
            # AdamW, as torch.optim.AdamW (single-tensor): decay, moments, bias-corrected step
            steps[p] += 1.0
            t = steps[p]
            step_size = np.float32(lr / (1.0 - b1 ** t))
            inv_bc2 = np.float32(1.0 / math.sqrt(1.0 - b2 ** t))
            _adamw(w, m, v, g, decay, c1, c2, fb2, feps, step_size, inv_bc2)
        ot = te_off[p]                                    # held-out logits, 4 rows per pass over w
        nt = te_off[p + 1] - ot
        for r in range(0, nt, 4):
            x0, x1 = X[te[ot + r]], X[te[ot + min(r + 1, nt - 1)]]
            x2, x3 = X[te[ot + min(r + 2, nt - 1)]], X[te[ot + min(r + 3, nt - 1)]]
            zz[0], zz[1], zz[2], zz[3] = _dot4(x0, x1, x2, x3, w, d)
            for q in range(min(4, nt - r)):
                logits[ot + r + q] = zz[q] + w[d]
