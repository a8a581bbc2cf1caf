"""NeuCo-Bench linear probes, all folds and tasks trained together as one batched problem.

Each probe p (one task x one fold) is ``nn.Linear(D, 1)`` trained with AdamW (lr 1e-3, weight decay 0.01,
betas (0.9, 0.999), eps 1e-8, decay applied to the bias too), mini-batches of 64 drawn from a fresh random
permutation of its training rows every epoch (last partial batch kept), MSE or BCE-with-logits loss (mean over
the batch). After every epoch the held-out metric is computed; NeuCo-Bench keeps the maximum over epochs.

The stacked parameter is (P, D+1) (bias as a last column against a column of ones). Per step the forward pass
is one GEMM over all rows (P x N outputs, the batch entries gathered from it) and the backward pass a sparse
(P x N, <= 64 non-zeros per row) times dense (N x D+1) product. AdamW is element-wise, so the stacked update
is exactly the per-probe update; probes whose epoch has fewer batches are masked out of the late steps.
"""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from eoembed.bench.metrics import chance_adjusted, f1_batched, r2_batched

BATCH_SIZE = 64
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.01
BETAS = (0.9, 0.999)
EPS = 1e-8


def _pad(rows: list[np.ndarray], fill: int) -> torch.Tensor:
    length = max(len(r) for r in rows)
    out = np.full((len(rows), length), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out)


def _epoch_metric(logits, y, mask, is_cls, metric: str) -> torch.Tensor:
    reg = r2_batched(logits, y, mask)
    if metric == "tessera":
        reg = reg.clamp(min=0.0)
        hard = (logits > 0).long()
        yc = (y > 0.5).long()
        pos = ((hard == 1) & (yc == 1) & mask).sum(1).double() / ((yc == 1) & mask).sum(1).clamp(min=1).double()
        neg = ((hard == 0) & (yc == 0) & mask).sum(1).double() / ((yc == 0) & mask).sum(1).clamp(min=1).double()
        n_pos, n_neg = ((yc == 1) & mask).sum(1), ((yc == 0) & mask).sum(1)
        bacc = torch.where((n_pos > 0) & (n_neg > 0), (pos + neg) / 2, torch.where(n_pos > 0, pos, neg))
        cls = chance_adjusted(bacc, 2)
    else:
        cls = f1_batched(logits, y, mask)
    return torch.where(is_cls, cls, reg)


def _quiet_csr(fn):
    """Run with ``threads`` intra-op threads on CPU (restored afterwards) and without torch's "CSR is beta" warning
    (the kernels are checked against nn.Linear + AdamW by the tests).

    The per-step operations are small and memory-bound: one thread is as fast as two on an idle 2-core machine
    and many times faster on a shared, loaded one (OpenMP workers wait on each other), hence the default 1."""
    @functools.wraps(fn)
    def wrapper(*args, threads: int | None = 1, **kwargs):
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(int(threads))
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)
    return wrapper


@_quiet_csr
def train_linear_probes(X, Y, task_of_probe, is_cls, train_idx: list[np.ndarray], test_idx: list[np.ndarray],
                        epochs: int = 10, seed: int = 42, device=None, metric: str = "neuco",
                        batch_size: int = BATCH_SIZE, lr: float = LEARNING_RATE, weight_decay: float = WEIGHT_DECAY,
                        kernels: str = "auto", progress: bool = True) -> np.ndarray:
    """Train P linear probes at once and return the held-out metric after every epoch, shape (P, epochs).

    X: (N, D) float32 (standardised); Y: (T, N) float labels (NaN where absent); task_of_probe: (P,) row of Y
    per probe; is_cls: (P,) bool; train_idx / test_idx: P arrays of row indices into X.
    metric: "neuco" (R^2 / binary F1) or "tessera" (max(0, R^2) / chance-adjusted balanced accuracy).
    kernels: "sparse" (sampled dense-dense forward + CSR backward: least work, best on CPU), "dense" (GEMM over
    all rows + scatter/GEMM backward: best on GPU) or "auto" (sparse on CPU, dense elsewhere).
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    if kernels == "auto":
        kernels = "sparse" if device.type == "cpu" else "dense"
    if kernels not in ("sparse", "dense"):
        raise ValueError(f"kernels must be 'sparse', 'dense' or 'auto', not {kernels!r}.")
    if metric not in ("neuco", "tessera"):
        raise ValueError(f"metric must be 'neuco' or 'tessera', not {metric!r}.")
    X = torch.as_tensor(np.asarray(X, dtype=np.float32))
    n, d = X.shape
    P = len(train_idx)
    B = batch_size
    # Probes are stored sorted by training size: equal sizes share AdamW step counts, so each such group is one
    # contiguous block updated by a single fused AdamW call. Random draws still follow the caller's probe order.
    sizes = np.array([len(r) for r in train_idx])
    srt = np.argsort(sizes, kind="stable")
    pos_of = np.empty(P, dtype=np.int64)
    pos_of[srt] = np.arange(P)
    train_idx = [train_idx[i] for i in srt]
    test_idx = [test_idx[i] for i in srt]
    task_of_probe = np.asarray(task_of_probe)[srt]
    is_cls = np.asarray(is_cls, dtype=bool)[srt]
    # Row n is an all-zero sentinel (padding): it contributes nothing to outputs or gradients. Columns are padded
    # to a multiple of 16 (zeros) for aligned sparse kernels; the padded weights get zero gradient and stay 0.
    dp = -(-(d + 1) // 16) * 16
    Xa = torch.zeros(n + 1, dp)
    Xa[:n, :d] = X
    Xa[:n, d] = 1.0
    Xa = Xa.to(device)
    XaT = Xa.T.contiguous() if kernels == "dense" else None
    Ysel = np.nan_to_num(np.asarray(Y, dtype=np.float32)[np.asarray(task_of_probe)])
    Yp = torch.zeros(P, n + 1, device=device)
    Yp[:, :n] = torch.as_tensor(Ysel, device=device)
    cls = torch.as_tensor(np.asarray(is_cls, dtype=bool), device=device)
    any_cls, all_cls = bool(cls.any()), bool(cls.all())
    cls_col = cls[:, None]
    tr_rows = [torch.as_tensor(np.asarray(r, dtype=np.int64), device=device) for r in train_idx]
    lens = [len(r) for r in train_idx]
    te = _pad(test_idx, n).to(device)
    te_mask = te < n
    y_te = Yp.gather(1, te)
    n_tr = torch.as_tensor(lens, device=device)
    n_steps = math.ceil(max(lens) / B)
    width = n_steps * B
    # Padding sorts to the end of every permutation, so batch sizes are fixed by position: precompute them.
    pos = torch.arange(width, device=device).view(n_steps, 1, B)
    valid = pos < n_tr.view(1, P, 1)                                      # (S, P, B)
    cnt = valid.sum(2)                                                    # (S, P)
    scale = valid / cnt.clamp(min=1)[:, :, None]                          # mean over the real batch
    active = cnt > 0
    all_active = active.all(1).tolist()
    n_valid = cnt.sum(1).tolist()                                         # real entries per step
    act_f = active.to(torch.float32)
    prow = torch.arange(P, device=device).repeat_interleave(B)            # probe of each flat entry
    crow = torch.arange(0, P * B + 1, B, device=device)
    zero_vals = torch.zeros(P * B, device=device)

    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    bound = 1.0 / math.sqrt(d)
    W = torch.zeros(P, dp, device=device)
    W[:, : d + 1] = ((torch.rand(P, d + 1, generator=gen, device=device) * 2 - 1) * bound)[torch.as_tensor(srt)]
    m = torch.zeros_like(W)
    v = torch.zeros_like(W)
    t = torch.zeros(P, 1, device=device)
    b1, b2 = BETAS
    fused = hasattr(torch, "_fused_adamw_")
    groups = []                                          # (start, stop, shared step tensor) of equal-size probes
    for size in np.unique(sizes):
        rows_g = np.flatnonzero(sizes[srt] == size)
        groups.append((int(rows_g[0]), int(rows_g[-1]) + 1, torch.zeros((), device=device)))
    g = torch.empty(P, dp, device=device)
    history = torch.empty(P, epochs, dtype=torch.float64)

    for epoch in tqdm(range(epochs), desc="probe epochs", disable=not progress, leave=False):
        order = torch.full((P, width), n, dtype=torch.int64, device=device)
        for q in range(P):                              # a fresh shuffle per probe, as DataLoader(shuffle=True)
            p = pos_of[q]
            order[p, : lens[p]] = tr_rows[p][torch.randperm(lens[p], generator=gen, device=device)]
        order = order.view(P, n_steps, B).transpose(0, 1).reshape(n_steps, P * B)
        if kernels == "sparse":
            # Sample-major pattern per step (rows = samples, cols = probes) for the sampled forward product;
            # a stable sort by sample (radix sort on small integers) groups each sample's probes.
            o = order.cpu().numpy().astype(np.int16 if n < 32767 else np.int32)
            perm = torch.from_numpy(np.argsort(o, axis=1, kind="stable")).to(device)
            pcol = prow[perm]
            counts = torch.zeros(n_steps, n + 2, dtype=torch.int64, device=device)
            counts[:, 1:].scatter_add_(1, order, torch.ones_like(order))
            crow_t = counts.cumsum(1)
        for s in range(n_steps):
            idx = order[s]                                                # (P*B,) probe-major
            if kernels == "sparse":
                # Padding entries (sentinel row n) sort last and are left out of the pattern (z = 0 there).
                k = n_valid[s]
                pattern = torch.sparse_csr_tensor(crow_t[s, : n + 1], pcol[s, :k], zero_vals[:k], (n, P),
                                                  check_invariants=False)
                zs = torch.sparse.sampled_addmm(pattern, Xa[:n], W.T, beta=0.0).values()
                z = torch.zeros(P * B, device=device).index_put_((perm[s, :k],), zs).view(P, B)
            else:
                z = (W @ XaT).gather(1, idx.view(P, B))
            yb = Yp.gather(1, idx.view(P, B))
            if all_cls:
                dz = torch.sigmoid(z) - yb
            elif any_cls:
                dz = torch.where(cls_col, torch.sigmoid(z) - yb, 2.0 * (z - yb))
            else:
                dz = 2.0 * (z - yb)
            dz = dz * scale[s]
            if kernels == "sparse":
                grad = torch.sparse_csr_tensor(crow, idx, dz.reshape(-1), (P, n + 1), check_invariants=False)
                g.copy_(grad @ Xa)                                        # (P, dp)
            else:
                R = torch.zeros(P, n + 1, device=device)
                R.scatter_(1, idx.view(P, B), dz)                         # padding lands in the sentinel column
                torch.mm(R, Xa, out=g)
            if fused:
                for a0, a1, step in groups:
                    if not bool(active[s, a0]):
                        continue
                    step.add_(1.0)
                    torch._fused_adamw_([W[a0:a1].view(-1)], [g[a0:a1].view(-1)], [m[a0:a1].view(-1)],
                                        [v[a0:a1].view(-1)], [], [step], lr=lr, beta1=b1, beta2=b2,
                                        weight_decay=weight_decay, eps=EPS, amsgrad=False, maximize=False)
                continue
            if all_active[s]:
                t += 1.0
                W.mul_(1 - lr * weight_decay)
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
            else:
                a = active[s][:, None]
                t += act_f[s][:, None]
                W.copy_(torch.where(a, W * (1 - lr * weight_decay), W))
                m.copy_(torch.where(a, m.lerp(g, 1 - b1), m))
                v.copy_(torch.where(a, v * b2 + (1 - b2) * g * g, v))
            tt = t.clamp(min=1.0)
            denom = (v.sqrt() / torch.sqrt(1 - b2 ** tt)).add_(EPS)
            upd = m.div(denom).mul_(lr / (1 - b1 ** tt))
            if not all_active[s]:
                upd.mul_(act_f[s][:, None])
            W.sub_(upd)
        if kernels == "dense":
            logits = (W @ XaT).gather(1, te)
        else:
            logits = (W @ Xa.T).gather(1, te)
        history[:, epoch] = _epoch_metric(logits, y_te, te_mask, cls, metric).cpu()
    return history.numpy()[pos_of]


def best_over_epochs(history: np.ndarray) -> np.ndarray:
    """Per-probe score = maximum over epochs (NaN epochs ignored, all-NaN -> NaN), as NeuCo-Bench keeps the best."""
    h = np.where(np.isnan(history), -np.inf, history)
    best = h.max(axis=1)
    return np.where(np.isneginf(best) & np.isnan(history).all(axis=1), np.nan, best)
