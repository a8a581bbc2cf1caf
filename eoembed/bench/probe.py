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

This is the torch engine (GPU, and CPU without numba). The default CPU path is the fused numba kernel of
:mod:`eoembed.bench.engine`, whose ``train_linear_probes`` dispatches between them; both take probe p's initial
weights and batch orders from its own generator (:class:`eoembed.bench.engine.ProbeDraws`), so both give the same
scores (up to float32 rounding) for the same seed.
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from eoembed import runtime
from eoembed.bench.engine import ProbeDraws, best_over_epochs  # noqa: F401  (best_over_epochs: re-exported)
from eoembed.bench.metrics import balanced_accuracy_batched, chance_adjusted, f1_batched, r2_batched

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
        bacc = balanced_accuracy_batched((logits > 0).long(), (y > 0.5).long(), mask, 2)
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


#: Largest value an int32 index may hold. Index arrays switch to int64 when a value could pass it (the sort keys
#: sample * P*B + slot reach (n+1)*P*64: past 2^31 at e.g. 33,521 probes of 1,000 samples).
INT32_MAX = 2**31 - 1


def _index_dtype(largest: int) -> type:
    """np.int32 when every value up to ``largest`` fits, else np.int64 (never a silent wrap-around)."""
    return np.int32 if int(largest) <= INT32_MAX else np.int64


@dataclass
class _Layout:
    """Everything fixed for the whole run: probes sorted by training size, X with a bias column and a sentinel
    row, labels per probe, the step-major batch layout and the held-out pattern."""

    device: torch.device
    kernels: str
    n: int
    d: int
    P: int
    B: int
    dp: int
    srt: np.ndarray
    pos_of: np.ndarray
    sizes: np.ndarray
    lens: list
    Xa: torch.Tensor
    XaT: torch.Tensor | None
    Xc: torch.Tensor | None
    n_chunks: int
    dc: int
    Yp_np: np.ndarray
    cls: torch.Tensor
    tr_cat: np.ndarray
    tr_off: np.ndarray
    dest: np.ndarray
    te: torch.Tensor
    te_mask: torch.Tensor
    y_te: torch.Tensor
    n_steps: int
    scale: torch.Tensor
    coef: torch.Tensor
    active: torch.Tensor
    key_dtype: type
    csr_dtype: type
    te_pattern: torch.Tensor | None = None
    te_slot: torch.Tensor | None = None

    @property
    def PB(self) -> int:
        return self.P * self.B

    @property
    def any_cls(self) -> bool:
        return bool(self.cls.any())

    @property
    def all_cls(self) -> bool:
        return bool(self.cls.all())


def _layout(X, Y, task_of_probe, is_cls, train_idx, test_idx, B: int, device, kernels: str) -> _Layout:
    """Sort probes by training size (equal sizes share AdamW step counts, so each such group is one contiguous
    block updated by a single fused AdamW call; random draws still follow the caller's probe order), add the bias
    column and an all-zero sentinel row n (padding: contributes nothing), pad columns to a multiple of 16."""
    X = torch.as_tensor(np.asarray(X, dtype=np.float32))
    n, d = X.shape
    P = len(train_idx)
    sizes = np.array([len(r) for r in train_idx])
    srt = np.argsort(sizes, kind="stable")
    pos_of = np.empty(P, dtype=np.int64)
    pos_of[srt] = np.arange(P)
    train_idx = [train_idx[i] for i in srt]
    test_idx = [test_idx[i] for i in srt]
    task_of_probe = np.asarray(task_of_probe)[srt]
    dp = -(-(d + 1) // 16) * 16
    Xa = torch.zeros(n + 1, dp)
    Xa[:n, :d] = X
    Xa[:n, d] = 1.0
    Xa = Xa.to(device)
    # Sparse backward in column chunks: the (P x n) @ (n x dp) product gathers 64 random rows of X per probe;
    # with X split into column blocks of about 2 MB (one core's L2) every block stays cache-resident.
    n_chunks = max(1, round((n + 1) * dp * 4 / CHUNK_BYTES)) if kernels == "sparse" else 1
    while dp % n_chunks or (dp // n_chunks) % 4:
        n_chunks -= 1
    dc = dp // n_chunks
    Ysel = np.nan_to_num(np.asarray(Y, dtype=np.float32)[task_of_probe])
    Yp = torch.zeros(P, n + 1, device=device)
    Yp[:, :n] = torch.as_tensor(Ysel, device=device)
    cls = torch.as_tensor(np.asarray(is_cls, dtype=bool)[srt], device=device)
    lens = [len(r) for r in train_idx]
    j = np.concatenate([np.arange(k) for k in lens])                     # position in the probe's epoch
    te = _pad(test_idx, n).to(device)
    n_steps = math.ceil(max(lens) / B)
    # Padding sorts to the end of every permutation, so batch sizes are fixed by position: precompute them.
    pos = torch.arange(n_steps * B, device=device).view(n_steps, 1, B)
    valid = pos < torch.as_tensor(lens, device=device).view(1, P, 1)     # (S, P, B)
    cnt = valid.sum(2)                                                    # (S, P)
    scale = valid / cnt.clamp(min=1)[:, :, None]                          # mean over the real batch
    # dL/dz = coef * (sigmoid(z) - y) for BCE, coef * (z - y) for MSE, coef = (1 or 2) / batch size (0 on padding)
    coef = (scale * torch.where(cls[:, None], 1.0, 2.0)[None]).reshape(n_steps, P * B)
    lay = _Layout(
        device=device, kernels=kernels, n=n, d=d, P=P, B=B, dp=dp, srt=srt, pos_of=pos_of, sizes=sizes, lens=lens,
        Xa=Xa, XaT=Xa.T.contiguous() if kernels == "dense" else None,
        Xc=Xa.view(n + 1, n_chunks, dc).transpose(0, 1).contiguous() if n_chunks > 1 else None,
        n_chunks=n_chunks, dc=dc, Yp_np=Yp.cpu().numpy(), cls=cls,
        tr_cat=np.concatenate([np.asarray(r, dtype=np.int64) for r in train_idx]),
        tr_off=np.repeat(np.concatenate([[0], np.cumsum(lens)[:-1]]), lens).astype(np.int64),
        dest=(j // B) * (P * B) + np.repeat(np.arange(P), lens) * B + j % B,  # slot in the (S, P*B) layout
        te=te, te_mask=te < n, y_te=Yp.gather(1, te), n_steps=n_steps, scale=scale, coef=coef, active=cnt > 0,
        key_dtype=_index_dtype((n + 1) * P * B), csr_dtype=_index_dtype(max(P * B, n + 1)))
    if kernels == "sparse":
        _heldout_pattern(lay)
    return lay


def _heldout_pattern(lay: _Layout) -> None:
    """Sample-major CSR pattern of the held-out entries (padding left out), for the sampled held-out product."""
    te_np = lay.te.cpu().numpy().ravel().astype(np.int64)
    width = te_np.size
    te_keys = np.sort(te_np * width + np.arange(width, dtype=np.int64))
    te_keys = te_keys[te_keys // width < lay.n]                           # padding (row n) left out
    te_s, te_slot = te_keys // width, te_keys % width
    te_crow = np.zeros(lay.n + 1, dtype=np.int64)
    np.cumsum(np.bincount(te_s, minlength=lay.n), out=te_crow[1:])
    lay.te_pattern = torch.sparse_csr_tensor(torch.as_tensor(te_crow), torch.as_tensor(te_slot // lay.te.shape[1]),
                                             torch.zeros(len(te_slot)), (lay.n, lay.P), device=lay.device,
                                             check_invariants=True)
    lay.te_slot = torch.as_tensor(te_slot, device=lay.device)


def _sample_major(order_np: np.ndarray, PB: int, B: int, key_dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Per step (row of ``order_np``, shape (S, P*B) of sample indices in probe-major slots): the entries sorted by
    sample, as (slot of each entry, probe of each entry). Keys sample * P*B + slot are unique, so one vectorised
    sort gives both; they are built in ``key_dtype`` (int64 whenever (n+1)*P*B could pass 2^31)."""
    slot = np.arange(PB, dtype=key_dtype)
    keys = np.sort(order_np.astype(key_dtype) * key_dtype(PB) + slot, axis=1)
    slot_sm = keys % key_dtype(PB)
    return slot_sm, slot_sm // key_dtype(B)


@dataclass
class _Epoch:
    """One epoch's batches: sample indices (S, P*B) probe-major, their labels and, for the sparse kernels, the
    sample-major patterns of every step."""

    order: torch.Tensor
    y_pm: torch.Tensor
    n_valid: list
    crow_t: torch.Tensor | None = None
    pcol: torch.Tensor | None = None
    slot_sm: torch.Tensor | None = None
    idx: torch.Tensor | None = None


def _epoch(lay: _Layout, draws: ProbeDraws) -> _Epoch:
    """A fresh shuffle per probe, as DataLoader(shuffle=True), from each probe's own generator
    (:class:`eoembed.bench.engine.ProbeDraws`); the batches of all probes are laid out step-major, (S, P*B) with
    probe p's batch in slots p*B .. p*B+B-1 (padding = row n)."""
    n, P, B, dev = lay.n, lay.P, lay.B, lay.device
    perms = draws.permutations()                                          # caller's probe order
    order_np = np.full(lay.n_steps * lay.PB, n, dtype=np.int64)
    order_np[lay.dest] = lay.tr_cat[np.concatenate([perms[q] for q in lay.srt]) + lay.tr_off]
    order_np = order_np.reshape(lay.n_steps, lay.PB)
    yrow_off = np.repeat(np.arange(P, dtype=np.int64) * (n + 1), B)      # row start in Yp of each slot's probe
    ep = _Epoch(order=torch.from_numpy(order_np).to(dev),
                y_pm=torch.from_numpy(lay.Yp_np.ravel()[order_np + yrow_off]).to(dev),
                n_valid=(order_np < n).sum(1).tolist())
    if lay.kernels == "sparse":
        slot_sm, pcol = _sample_major(order_np, lay.PB, B, lay.key_dtype)
        step_off = (np.arange(lay.n_steps, dtype=np.int64) * (n + 1))[:, None]
        counts = np.bincount((order_np + step_off).ravel(), minlength=lay.n_steps * (n + 1))
        crow_t = np.zeros((lay.n_steps, n + 1), dtype=lay.csr_dtype)
        np.cumsum(counts.reshape(lay.n_steps, n + 1)[:, :n], axis=1, out=crow_t[:, 1:])
        ep.crow_t = torch.from_numpy(crow_t).to(dev)
        ep.pcol = torch.from_numpy(pcol.astype(lay.csr_dtype)).to(dev)
        ep.slot_sm = torch.from_numpy(slot_sm.astype(np.int64)).to(dev)
        ep.idx = torch.from_numpy(order_np.astype(lay.csr_dtype)).to(dev)
    return ep


class _Workspace:
    """Buffers reused by every step (no allocation inside the step loop)."""

    def __init__(self, lay: _Layout) -> None:
        dev, P, PB = lay.device, lay.P, lay.PB
        self.g = torch.empty(P, lay.dp, device=dev)
        self.gc = torch.empty(lay.n_chunks, P, lay.dc, device=dev) if lay.n_chunks > 1 else None
        self.gv = self.g.view(P, lay.n_chunks, lay.dc).transpose(0, 1) if lay.n_chunks > 1 else None
        self.z_pm = torch.zeros(PB, device=dev)
        self.dz_pm = torch.zeros(PB, device=dev)
        self.zero_vals = torch.zeros(PB, device=dev)
        self.crow = torch.arange(0, PB + 1, lay.B, device=dev).to(torch.int32 if lay.csr_dtype == np.int32
                                                                 else torch.int64)
        self.cls_pm = lay.cls.repeat_interleave(lay.B)


def _gradient_sparse(lay: _Layout, ep: _Epoch, ws: _Workspace, W: torch.Tensor, s: int) -> torch.Tensor:
    """Gradient (P, dp) of step s: sampled forward over the batch entries only (sample-major, padding left out),
    then the CSR (P x n+1, <= B non-zeros per row) times X backward, column block by column block."""
    n, k = lay.n, ep.n_valid[s]
    pattern = torch.sparse_csr_tensor(ep.crow_t[s, : n + 1], ep.pcol[s, :k], ws.zero_vals[:k], (n, lay.P),
                                      check_invariants=False)
    z = torch.sparse.sampled_addmm(pattern, lay.Xa[:n], W.T, beta=0.0).values()
    if k < lay.PB:
        ws.z_pm.zero_()
    ws.z_pm.index_copy_(0, ep.slot_sm[s, :k], z)
    if lay.all_cls:
        torch.sigmoid(ws.z_pm, out=ws.dz_pm)
    elif lay.any_cls:
        torch.where(ws.cls_pm, torch.sigmoid(ws.z_pm), ws.z_pm, out=ws.dz_pm)
    else:
        ws.dz_pm.copy_(ws.z_pm)
    ws.dz_pm.sub_(ep.y_pm[s]).mul_(lay.coef[s])
    grad = torch.sparse_csr_tensor(ws.crow, ep.idx[s], ws.dz_pm, (lay.P, n + 1), check_invariants=False)
    if ws.gc is None:
        torch.mm(grad, lay.Xa, out=ws.g)
    else:
        for c in range(lay.n_chunks):
            torch.mm(grad, lay.Xc[c], out=ws.gc[c])
        ws.gv.copy_(ws.gc)
    return ws.g


def _gradient_dense(lay: _Layout, ep: _Epoch, ws: _Workspace, W: torch.Tensor, s: int) -> torch.Tensor:
    """Gradient (P, dp) of step s: one GEMM over all rows, gather of the batch, scatter + GEMM backward."""
    P, B = lay.P, lay.B
    idx = ep.order[s].view(P, B)
    z = (W @ lay.XaT).gather(1, idx)
    yb = ep.y_pm[s].view(P, B)
    if lay.all_cls:
        dz = torch.sigmoid(z) - yb
    elif lay.any_cls:
        dz = torch.where(lay.cls[:, None], torch.sigmoid(z) - yb, 2.0 * (z - yb))
    else:
        dz = 2.0 * (z - yb)
    R = torch.zeros(P, lay.n + 1, device=lay.device)
    R.scatter_(1, idx, dz * lay.scale[s])                                 # padding lands in the sentinel column
    torch.mm(R, lay.Xa, out=ws.g)
    return ws.g


class _StackedAdamW:
    """AdamW on the stacked (P, dp) parameter, exactly torch's per-probe update (decay on the bias too).
    Probes of equal training size share a step count and are updated by one fused call; probes whose epoch has
    fewer batches are left out of the late steps."""

    def __init__(self, lay: _Layout, W0: np.ndarray, lr: float, weight_decay: float) -> None:
        dev, P, d = lay.device, lay.P, lay.d
        self.W = torch.zeros(P, lay.dp, device=dev)
        self.W[:, : d + 1] = torch.as_tensor(W0[lay.srt], device=dev)      # W0 in the caller's order
        self.m, self.v = torch.zeros_like(self.W), torch.zeros_like(self.W)
        self.t = torch.zeros(P, 1, device=dev)
        self.lr, self.wd = lr, weight_decay
        self.active = lay.active
        self.all_active = lay.active.all(1).tolist()
        self.act_f = lay.active.to(torch.float32)
        self.fused = hasattr(torch, "_fused_adamw_")
        self.groups = []                                  # (start, stop, shared step tensor) of equal-size probes
        for size in np.unique(lay.sizes):
            rows = np.flatnonzero(lay.sizes[lay.srt] == size)
            self.groups.append((int(rows[0]), int(rows[-1]) + 1, torch.zeros((), device=dev)))

    def _fused(self, W, g, m, v, step) -> None:
        step.add_(1.0)
        torch._fused_adamw_([W.view(-1)], [g.view(-1)], [m.view(-1)], [v.view(-1)], [], [step], lr=self.lr,
                            beta1=BETAS[0], beta2=BETAS[1], weight_decay=self.wd, eps=EPS, amsgrad=False,
                            maximize=False)

    def step(self, g: torch.Tensor, s: int) -> None:
        if self.fused:
            for a0, a1, step in self.groups:
                if len(self.groups) == 1 or bool(self.active[s, a0]):
                    self._fused(self.W[a0:a1], g[a0:a1], self.m[a0:a1], self.v[a0:a1], step)
            return
        b1, b2, lr = BETAS[0], BETAS[1], self.lr
        W, m, v = self.W, self.m, self.v
        if self.all_active[s]:
            self.t += 1.0
            W.mul_(1 - lr * self.wd)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
        else:
            a = self.active[s][:, None]
            self.t += self.act_f[s][:, None]
            W.copy_(torch.where(a, W * (1 - lr * self.wd), W))
            m.copy_(torch.where(a, m.lerp(g, 1 - b1), m))
            v.copy_(torch.where(a, v * b2 + (1 - b2) * g * g, v))
        tt = self.t.clamp(min=1.0)
        upd = m.div((v.sqrt() / torch.sqrt(1 - b2 ** tt)).add_(EPS)).mul_(lr / (1 - b1 ** tt))
        if not self.all_active[s]:
            upd.mul_(self.act_f[s][:, None])
        W.sub_(upd)


def _heldout_logits(lay: _Layout, W: torch.Tensor) -> torch.Tensor:
    """Logits of every probe on its held-out rows, (P, max test size); padding slots are 0 (masked later)."""
    if lay.kernels == "dense":
        return (W @ lay.XaT).gather(1, lay.te)
    zt = torch.sparse.sampled_addmm(lay.te_pattern, lay.Xa[: lay.n], W.T, beta=0.0).values()
    return torch.zeros(lay.te.numel(), device=lay.device).index_copy_(0, lay.te_slot, zt).view(lay.te.shape)


@_quiet_csr
def train_linear_probes(X, Y, task_of_probe, is_cls, train_idx: list[np.ndarray], test_idx: list[np.ndarray],
                        epochs: int = 10, seed: int = 42, device=None, metric: str = "neuco",
                        batch_size: int = BATCH_SIZE, lr: float = LEARNING_RATE, weight_decay: float = WEIGHT_DECAY,
                        kernels: str = "auto", progress: bool = True, keys=None) -> np.ndarray:
    """Train P linear probes at once and return the held-out metric after every epoch, shape (P, epochs).

    X: (N, D) float32 (standardised); Y: (T, N) float labels (NaN where absent); task_of_probe: (P,) row of Y
    per probe; is_cls: (P,) bool; train_idx / test_idx: P arrays of row indices into X.
    metric: "neuco" (R^2 / binary F1) or "tessera" (max(0, R^2) / chance-adjusted balanced accuracy).
    kernels: "sparse" (sampled dense-dense forward + CSR backward: least work, best on CPU), "dense" (GEMM over
    all rows + scatter/GEMM backward: best on GPU) or "auto" (sparse on CPU, dense elsewhere).
    Computes at full float32 (eoembed.runtime), whatever torch's global matmul precision is. Random draws: probe
    p's own generator seeded by (seed, keys[p]) (:class:`eoembed.bench.engine.ProbeDraws`; default keys 0..P-1),
    the same draws as the fused CPU kernel of :func:`eoembed.bench.engine.train_linear_probes`.
    """
    device = runtime.resolve_device(device if device is not None else "cpu")
    if kernels == "auto":
        kernels = "sparse" if device.type == "cpu" else "dense"
    if kernels not in ("sparse", "dense"):
        raise ValueError(f"kernels must be 'sparse', 'dense' or 'auto', not {kernels!r}.")
    if metric not in ("neuco", "tessera"):
        raise ValueError(f"metric must be 'neuco' or 'tessera', not {metric!r}.")
    lay = _layout(X, Y, task_of_probe, is_cls, train_idx, test_idx, batch_size, device, kernels)
    P = len(train_idx)
    draws = ProbeDraws(seed, np.arange(P) if keys is None else keys, lay.d, [len(r) for r in train_idx])
    opt = _StackedAdamW(lay, draws.init(), lr, weight_decay)
    ws = _Workspace(lay)
    gradient = _gradient_sparse if kernels == "sparse" else _gradient_dense
    history = torch.empty(lay.P, epochs, dtype=torch.float64)
    for epoch in tqdm(range(epochs), desc="probe epochs", disable=not progress, leave=False):
        ep = _epoch(lay, draws)
        for s in range(lay.n_steps):
            opt.step(gradient(lay, ep, ws, opt.W, s), s)
        history[:, epoch] = _epoch_metric(_heldout_logits(lay, opt.W), lay.y_te, lay.te_mask, lay.cls, metric).cpu()
    return history.numpy()[lay.pos_of]

