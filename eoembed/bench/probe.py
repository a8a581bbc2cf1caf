"""NeuCo-Bench linear probes, all folds and tasks trained together as one batched problem.

Each probe p (one task x one fold) is ``nn.Linear(D, 1)`` trained with AdamW (lr 1e-3, weight decay 0.01,
betas (0.9, 0.999), eps 1e-8, decay applied to the bias too), mini-batches of 64 drawn from a fresh random
permutation of its training rows every epoch (last partial batch kept), MSE or BCE-with-logits loss (mean over
the batch). After every epoch the held-out metric is computed; NeuCo-Bench keeps the maximum over epochs.

The stacked parameter is (P, D+1) (bias as a last column against a column of ones). On CPU ("sparse" kernels) a
step is one sampled dense-dense product for the forward pass (only the P x B entries of the batches, sample-major
so each row of X is read once) and one sparse (P x N, <= 64 non-zeros per row) times dense product for the
backward pass, done over column blocks of X that fit in L2. All index work (batches, sample-major patterns,
labels) is done once per epoch, vectorised. AdamW is element-wise, so the stacked update is exactly the per-probe
update (one fused call when all probes have the same training size); probes whose epoch has fewer batches are
masked out of the late steps. The held-out metric uses a sampled product over the held-out entries only.
On GPU ("dense" kernels) the forward pass is one GEMM over all rows and the backward a scatter + GEMM.
"""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from eoembed import runtime
from eoembed.bench.metrics import chance_adjusted, f1_batched, r2_batched

BATCH_SIZE = 64
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.01
BETAS = (0.9, 0.999)
EPS = 1e-8
CHUNK_BYTES = 2**21   # column block of X in the sparse backward: about one core's L2


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
    """Run at full float32 (:func:`eoembed.runtime.compute`, whatever torch's global matmul precision is) with
    ``threads`` intra-op threads on CPU (restored afterwards) and without torch's "CSR is beta" warning (the
    kernels are checked against nn.Linear + AdamW by the tests).

    The per-step operations are small and cache-bound: on an idle 2-core machine two threads take about 0.65x the
    time of one, but on a shared, loaded machine extra OpenMP workers wait on each other and can be many times
    slower, hence the default 1; pass threads=2 (or None for torch's setting) on an idle machine."""
    @functools.wraps(fn)
    def wrapper(*args, threads: int | None = 1, **kwargs):
        with runtime.compute("float32", kwargs.get("device"), threads=threads), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return fn(*args, **kwargs)
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
    # Sparse backward in column chunks: the (P x n) @ (n x dp) product gathers 64 random rows of X per probe,
    # i.e. P*B rows per step; with X split into column blocks of about 2 MB (one core's L2) every block stays
    # cache-resident while all probes read it. Each block's product lands in its own slab of gc.
    n_chunks = max(1, round((n + 1) * dp * 4 / CHUNK_BYTES)) if kernels == "sparse" else 1
    while dp % n_chunks or (dp // n_chunks) % 4:
        n_chunks -= 1
    dc = dp // n_chunks
    Xc = Xa.view(n + 1, n_chunks, dc).transpose(0, 1).contiguous() if n_chunks > 1 else None
    Ysel = np.nan_to_num(np.asarray(Y, dtype=np.float32)[np.asarray(task_of_probe)])
    Yp = torch.zeros(P, n + 1, device=device)
    Yp[:, :n] = torch.as_tensor(Ysel, device=device)
    cls = torch.as_tensor(np.asarray(is_cls, dtype=bool), device=device)
    any_cls, all_cls = bool(cls.any()), bool(cls.all())
    cls_col = cls[:, None]
    lens = [len(r) for r in train_idx]
    tr_cat = np.concatenate([np.asarray(r, dtype=np.int64) for r in train_idx])
    tr_off = np.repeat(np.concatenate([[0], np.cumsum(lens)[:-1]]), lens).astype(np.int64)
    j = np.concatenate([np.arange(k) for k in lens])                     # position in the probe's epoch
    dest = (j // B) * (P * B) + np.repeat(np.arange(P), lens) * B + j % B  # its slot in the (S, P*B) layout
    te = _pad(test_idx, n).to(device)
    te_mask = te < n
    if kernels == "sparse":
        te_np = te.cpu().numpy().ravel()
        te_keys = np.sort(te_np * te_np.size + np.arange(te_np.size))
        te_keys = te_keys[te_keys // te_np.size < n]                     # padding (row n) left out
        te_s, te_slot = te_keys // te_np.size, te_keys % te_np.size
        te_crow = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(te_s, minlength=n), out=te_crow[1:])
        te_pattern = torch.sparse_csr_tensor(torch.as_tensor(te_crow), torch.as_tensor(te_slot // te.shape[1]),
                                             torch.zeros(len(te_slot)), (n, P), device=device,
                                             check_invariants=True)
        te_slot = torch.as_tensor(te_slot, device=device)
    y_te = Yp.gather(1, te)
    n_tr = torch.as_tensor(lens, device=device)
    n_steps = math.ceil(max(lens) / B)
    width = n_steps * B
    # Padding sorts to the end of every permutation, so batch sizes are fixed by position: precompute them.
    pos = torch.arange(width, device=device).view(n_steps, 1, B)
    valid = pos < n_tr.view(1, P, 1)                                      # (S, P, B)
    cnt = valid.sum(2)                                                    # (S, P)
    scale = valid / cnt.clamp(min=1)[:, :, None]                          # mean over the real batch
    # dL/dz = coef * (sigmoid(z) - y) for BCE, coef * (z - y) for MSE, coef = (1 or 2) / batch size (0 on padding)
    coef = (scale * torch.where(cls_col, 1.0, 2.0)[None]).reshape(n_steps, P * B)
    active = cnt > 0
    all_active = active.all(1).tolist()
    n_valid = cnt.sum(1).tolist()                                         # real entries per step
    act_f = active.to(torch.float32)
    crow = torch.arange(0, P * B + 1, B, device=device)
    zero_vals = torch.zeros(P * B, device=device)
    PB = P * B
    Yp_np = Yp.cpu().numpy()
    yrow_off = np.repeat(np.arange(P) * (n + 1), B)                      # row start in Yp of each slot's probe
    slot_np = np.arange(PB, dtype=np.int32)
    cls_pm = cls.repeat_interleave(B)
    z_pm = torch.zeros(PB, device=device)
    step_off = (np.arange(n_steps) * (n + 1))[:, None]
    crow = crow.to(torch.int32)

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
    flat = fused and len(groups) == 1                    # one group: a single fused call on the flat buffers
    W1, m1, v1 = W.view(-1), m.view(-1), v.view(-1)
    g = torch.empty(P, dp, device=device)
    g1 = g.view(-1)
    gc = torch.empty(n_chunks, P, dc, device=device) if n_chunks > 1 else None
    gv = g.view(P, n_chunks, dc).transpose(0, 1) if n_chunks > 1 else None
    dz_pm = torch.zeros(P * B, device=device)
    XaN = Xa[:n]
    history = torch.empty(P, epochs, dtype=torch.float64)

    for epoch in tqdm(range(epochs), desc="probe epochs", disable=not progress, leave=False):
        # A fresh shuffle per probe, as DataLoader(shuffle=True), drawn in the caller's probe order; the batches
        # of all probes are laid out step-major, (S, P*B) with probe p's batch in slots p*B .. p*B+B-1.
        perms = [None] * P
        for q in range(P):
            p = pos_of[q]
            perms[p] = torch.randperm(lens[p], generator=gen, device=device)
        order_np = np.full(n_steps * P * B, n, dtype=np.int64)
        order_np[dest] = tr_cat[torch.cat(perms).cpu().numpy() + tr_off]
        order_np = order_np.reshape(n_steps, P * B)
        order = torch.from_numpy(order_np).to(device)
        if kernels == "sparse":
            # Sample-major pattern per step (rows = samples, cols = probes) for the sampled forward product.
            # Keys sample * P*B + slot are unique: one vectorised sort per epoch gives both the sample order
            # and each entry's probe-major slot, which scatters the sampled outputs back to probe-major order.
            keys = np.sort(order_np.astype(np.int32) * PB + slot_np, axis=1)
            o_sorted = keys // PB
            slot_sm = keys - o_sorted * PB
            pcol = torch.from_numpy((slot_sm // B).astype(np.int32)).to(device)
            slot_sm = torch.from_numpy(slot_sm.astype(np.int64)).to(device)
            counts = np.bincount((order_np + step_off).ravel(), minlength=n_steps * (n + 1))
            crow_t = np.zeros((n_steps, n + 1), dtype=np.int32)
            np.cumsum(counts.reshape(n_steps, n + 1)[:, :n], axis=1, out=crow_t[:, 1:])
            crow_t = torch.from_numpy(crow_t).to(device)
            idx32 = order.to(torch.int32)
        y_pm = torch.from_numpy(Yp_np.ravel()[order_np + yrow_off]).to(device)          # (S, P*B) labels
        for s in range(n_steps):
            idx = order[s]                                                # (P*B,) probe-major
            if kernels == "sparse":
                # Padding entries (sentinel row n) sort last and are left out of the pattern (dz = 0 there).
                k = n_valid[s]
                pattern = torch.sparse_csr_tensor(crow_t[s, : n + 1], pcol[s, :k], zero_vals[:k], (n, P),
                                                  check_invariants=False)
                z = torch.sparse.sampled_addmm(pattern, XaN, W.T, beta=0.0).values()
                if k < PB:
                    z_pm.zero_()
                z_pm.index_copy_(0, slot_sm[s, :k], z)
                if all_cls:
                    torch.sigmoid(z_pm, out=dz_pm)
                elif any_cls:
                    torch.where(cls_pm, torch.sigmoid(z_pm), z_pm, out=dz_pm)
                else:
                    dz_pm.copy_(z_pm)
                dz_pm.sub_(y_pm[s]).mul_(coef[s])
                grad = torch.sparse_csr_tensor(crow, idx32[s], dz_pm, (P, n + 1), check_invariants=False)
                if gc is None:
                    torch.mm(grad, Xa, out=g)                             # (P, dp)
                else:
                    for c in range(n_chunks):
                        torch.mm(grad, Xc[c], out=gc[c])
                    gv.copy_(gc)
            else:
                z = (W @ XaT).gather(1, idx.view(P, B))
                yb = y_pm[s].view(P, B)
                if all_cls:
                    dz = torch.sigmoid(z) - yb
                elif any_cls:
                    dz = torch.where(cls_col, torch.sigmoid(z) - yb, 2.0 * (z - yb))
                else:
                    dz = 2.0 * (z - yb)
                dz = dz * scale[s]
                R = torch.zeros(P, n + 1, device=device)
                R.scatter_(1, idx.view(P, B), dz)                         # padding lands in the sentinel column
                torch.mm(R, Xa, out=g)
            if flat:
                step = groups[0][2]
                step.add_(1.0)
                torch._fused_adamw_([W1], [g1], [m1], [v1], [], [step], lr=lr, beta1=b1, beta2=b2,
                                    weight_decay=weight_decay, eps=EPS, amsgrad=False, maximize=False)
                continue
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
            # Only the held-out entries (sampled product, sample-major); padding slots stay 0 (masked).
            zt = torch.sparse.sampled_addmm(te_pattern, XaN, W.T, beta=0.0).values()
            logits = torch.zeros(te.numel(), device=device).index_copy_(0, te_slot, zt).view(te.shape)
        history[:, epoch] = _epoch_metric(logits, y_te, te_mask, cls, metric).cpu()
    return history.numpy()[pos_of]


def best_over_epochs(history: np.ndarray) -> np.ndarray:
    """Per-probe score = maximum over epochs (NaN epochs ignored, all-NaN -> NaN), as NeuCo-Bench keeps the best."""
    h = np.where(np.isnan(history), -np.inf, history)
    best = h.max(axis=1)
    return np.where(np.isneginf(best) & np.isnan(history).all(axis=1), np.nan, best)
