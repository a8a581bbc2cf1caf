"""The fused NeuCo-Bench probe epoch kernel (numba), compiled once and cached on disk. Imported by
:mod:`eoembed.bench.engine` on first use (importing numba takes a few tenths of a second)."""
import math

import numba
import numpy as np


@numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def epoch(X, Y, task, cls, tr, tr_off, perm, te, te_off, W, M, V, steps, lr, wd, b1, b2, eps, B, logits):
    """One epoch of every probe of the block; probe p's state is row p of W / M / V ([weight | bias])."""
    P = tr_off.shape[0] - 1
    d = X.shape[1]
    decay = np.float32(1.0 - lr * wd)
    c1, c2 = np.float32(1.0 - b1), np.float32(1.0 - b2)
    fb2, feps = np.float32(b2), np.float32(eps)
    for p in numba.prange(P):
        w, m, v = W[p], M[p], V[p]
        g = np.empty(d + 1, dtype=np.float32)
        dz = np.empty(B, dtype=np.float32)
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
            r = 0
            while r < bs:                                 # forward, 4 rows per pass over w
                i0 = rows[r]
                i1 = rows[min(r + 1, bs - 1)]
                i2 = rows[min(r + 2, bs - 1)]
                i3 = rows[min(r + 3, bs - 1)]
                x0, x1, x2, x3 = X[i0], X[i1], X[i2], X[i3]
                a0 = a1 = a2 = a3 = np.float32(0.0)
                for k in range(d):
                    wk = w[k]
                    a0 += x0[k] * wk
                    a1 += x1[k] * wk
                    a2 += x2[k] * wk
                    a3 += x3[k] * wk
                zz[0], zz[1], zz[2], zz[3] = a0, a1, a2, a3
                for q in range(min(4, bs - r)):
                    z = zz[q] + w[d]
                    yi = y[rows[r + q]]
                    if cls[p]:
                        dz[r + q] = (np.float32(1.0) / (np.float32(1.0) + np.exp(-z)) - yi) * inv
                    else:
                        dz[r + q] = np.float32(2.0) * (z - yi) * inv
                r += 4
            g[:] = 0.0
            gb = np.float32(0.0)
            r = 0
            while r + 4 <= bs:
                a0, a1, a2, a3 = dz[r], dz[r + 1], dz[r + 2], dz[r + 3]
                x0, x1, x2, x3 = X[rows[r]], X[rows[r + 1]], X[rows[r + 2]], X[rows[r + 3]]
                for k in range(d):
                    g[k] += a0 * x0[k] + a1 * x1[k] + a2 * x2[k] + a3 * x3[k]
                gb += a0 + a1 + a2 + a3
                r += 4
            while r < bs:
                a0 = dz[r]
                x0 = X[rows[r]]
                for k in range(d):
                    g[k] += a0 * x0[k]
                gb += a0
                r += 1
            g[d] = gb
            # AdamW, as torch.optim.AdamW (single-tensor): decay, moments, bias-corrected step
            steps[p] += 1.0
            t = steps[p]
            step_size = np.float32(lr / (1.0 - b1 ** t))
            bc2 = np.float32(math.sqrt(1.0 - b2 ** t))
            for k in range(d + 1):
                gk = g[k]
                mk = m[k] + c1 * (gk - m[k])
                vk = v[k] * fb2 + c2 * gk * gk
                m[k], v[k] = mk, vk
                w[k] = w[k] * decay - step_size * mk / (math.sqrt(vk) / bc2 + feps)
        ot = te_off[p]
        for r in range(te_off[p + 1] - ot):
            i = te[ot + r]
            acc = np.float32(0.0)
            for k in range(d):
                acc += X[i, k] * w[k]
            logits[ot + r] = acc + w[d]

