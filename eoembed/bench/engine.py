"""NeuCo-Bench linear probes without torch: the compat engine's entry point, its random draws and its CPU kernel.

:func:`train_linear_probes` trains P probes (one task x one fold each: ``nn.Linear(D, 1)``, AdamW lr 1e-3, weight
decay 0.01 on the bias too, mini-batches of 64 from a fresh permutation every epoch, MSE / BCE-with-logits) and
returns the held-out metric after every epoch. On CPU it runs a fused numba kernel: each probe's whole epoch
(forward, gradient and AdamW step of every batch, then the held-out logits) is one pass over its own rows, probes
in parallel, no per-step synchronisation, all index arithmetic in int64. Elsewhere (CUDA) it runs the batched
torch engine of :mod:`eoembed.bench.probe` on the same draws.

Random draws (:class:`ProbeDraws`): probe p's initial weights and per-epoch permutations come from its own
``numpy.random.default_rng([seed, key_p])`` (key_p = its index in the caller's order), so a probe's scores do not
depend on which other probes are trained with it: blocks of any size give identical scores.

Probes are trained in blocks of ``block_size`` probes (default: as many as fit in ``memory_budget`` bytes of
index, permutation and logit arrays), so memory stays bounded whatever the number of samples, tasks and folds.
This module imports neither torch nor scikit-learn (``eoembed bench`` starts fast); numba is imported on first use.
"""
from __future__ import annotations

import math
import os

import numpy as np

BATCH_SIZE = 64
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.01
BETAS = (0.9, 0.999)
EPS = 1e-8
#: Default bytes of per-block arrays (row indices, permutations, held-out logits of the probes in one block).
MEMORY_BUDGET = 256 * 2**20
#: Probes a CPU thread takes at a time from the fused kernel's parallel loop (dynamic scheduling: a thread slowed by
#: other work on a shared machine does not hold the others up at the end of every epoch).
CHUNK = int(os.environ.get("EOEMBED_PROBE_CHUNK", "4"))


# ----------------------------------------------------------------------------------------------- draws
class ProbeDraws:
    """Initial weights and per-epoch permutations of every probe, one generator per probe.

    ``keys``: one integer per probe (default its position); ``d``: embedding size; ``lens``: training size per
    probe. ``init()`` gives the (P, d+1) float32 initial [weight | bias] (U(-1/sqrt(d), 1/sqrt(d)), as
    ``nn.Linear``); each ``permutations()`` call then gives the next epoch's permutation of every probe's training
    positions. A probe's draws depend only on (seed, its key), never on the other probes."""

    def __init__(self, seed: int, keys, d: int, lens) -> None:
        self.rngs = [np.random.default_rng([int(seed), int(k)]) for k in keys]
        self.d, self.lens = int(d), [int(x) for x in lens]

    def init(self) -> np.ndarray:
        bound = 1.0 / math.sqrt(self.d)
        return np.stack([r.uniform(-bound, bound, self.d + 1) for r in self.rngs]).astype(np.float32)

    def permutations(self) -> list[np.ndarray]:
        return [r.permutation(n) for r, n in zip(self.rngs, self.lens)]


def offsets(lens) -> np.ndarray:
    """int64 start offsets (P+1,) of P concatenated segments: no wrap-around whatever the total size."""
    out = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lens, dtype=np.int64), out=out[1:])
    return out


# ----------------------------------------------------------------------------------------------- metrics (numpy)
def r2_rows(pred: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """R^2 per row as torchmetrics.R2Score (see :func:`eoembed.bench.metrics.r2_batched`), in float64."""
    pred, y = pred.astype(np.float64), y.astype(np.float64)
    m = mask.astype(np.float64)
    n = m.sum(1)
    y0 = np.where(mask, y, 0.0)
    mean = y0.sum(1) / np.maximum(n, 1)
    tss = (((y0 - mean[:, None]) ** 2) * m).sum(1)
    rss = (((y0 - np.where(mask, pred, 0.0)) ** 2) * m).sum(1)
    tiny_rss, tiny_tss = np.abs(rss) <= 1e-4, np.abs(tss) <= 1e-4
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 1.0 - rss / np.where(tiny_tss, 1.0, tss)
    out = np.where(tiny_rss, 1.0, out)
    out = np.where(~tiny_rss & tiny_tss, 0.0, out)
    out = np.where(np.isnan(rss), np.nan, out)
    return np.where(n >= 2, out, np.nan)


def f1_rows(logits: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Binary F1 per row as torchmetrics.BinaryF1Score on logits (see :func:`eoembed.bench.metrics.f1_batched`)."""
    inside = ((logits >= 0) & (logits <= 1)) | ~mask
    as_prob = inside.all(1, keepdims=True)
    hard = np.where(as_prob, logits > 0.5, logits > 0)
    pos = y > 0.5
    tp = (hard & pos & mask).sum(1).astype(np.float64)
    fp = (hard & ~pos & mask).sum(1).astype(np.float64)
    fn = (~hard & pos & mask).sum(1).astype(np.float64)
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)


def _chance_adjusted_bacc(logits: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pred, yc = logits > 0, y > 0.5
    rec, pres = [], []
    for c in (False, True):
        is_c = (yc == c) & mask
        nc = is_c.sum(1).astype(np.float64)
        hit = (is_c & (pred == c)).sum(1).astype(np.float64)
        rec.append(np.where(nc > 0, hit / np.maximum(nc, 1), 0.0))
        pres.append((nc > 0).astype(np.float64))
    rec, pres = np.stack(rec, 1), np.stack(pres, 1)
    return ((rec * pres).sum(1) / np.maximum(pres.sum(1), 1) - 0.5) / 0.5


def epoch_metric(logits: np.ndarray, y: np.ndarray, mask: np.ndarray, is_cls: np.ndarray, metric: str) -> np.ndarray:
    """Held-out metric per probe of (P, L) padded logits / labels: "neuco" R^2 or binary F1, "tessera"
    max(0, R^2) or chance-adjusted balanced accuracy."""
    reg = r2_rows(logits, y, mask)
    if metric == "tessera":
        return np.where(is_cls, _chance_adjusted_bacc(logits, y, mask), np.maximum(reg, 0.0))
    return np.where(is_cls, f1_rows(logits, y, mask), reg)


def best_over_epochs(history: np.ndarray) -> np.ndarray:
    """Per-probe score = maximum over epochs (NaN epochs ignored, all-NaN -> NaN), as NeuCo-Bench keeps the best."""
    h = np.where(np.isnan(history), -np.inf, history)
    best = h.max(axis=1)
    return np.where(np.isneginf(best) & np.isnan(history).all(axis=1), np.nan, best)


# ----------------------------------------------------------------------------------------------- numba kernel
def _kernel():
    """The fused epoch kernel (:mod:`eoembed.bench._kernels`: compiled on first use, then loaded from numba's
    on-disk cache)."""
    from eoembed.bench._kernels import epoch
    return epoch


def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_kernels(device, kernels: str = "auto") -> str:
    """The kernels "auto" means on ``device``: "fused" on CPU when numba is installed (else "sparse"), "dense" on a
    GPU; "fused" on a GPU is an error."""
    cpu = device is None or str(device).split(":")[0] == "cpu"
    if kernels == "auto":
        return ("fused" if numba_available() else "sparse") if cpu else "dense"
    if kernels == "fused" and not cpu:
        raise ValueError(f"kernels='fused' runs on the CPU only (device={device!r}); use 'dense' on a GPU.")
    return kernels


# ----------------------------------------------------------------------------------------------- blocks
def block_probes(lens_train, lens_test, d: int, block_size: int | None, memory_budget: int | None) -> list[range]:
    """Consecutive probe ranges: ``block_size`` probes each, else as many as fit ``memory_budget`` bytes
    (int64 rows + permutation per training row, int64 row + padded float logits per held-out row, 3 x (d+1)
    float32 of AdamW state)."""
    P = len(lens_train)
    if block_size is None:
        per = 16 * np.asarray(lens_train, dtype=np.int64) + 24 * np.asarray(lens_test, dtype=np.int64) + 12 * (d + 1)
        budget = MEMORY_BUDGET if memory_budget is None else int(memory_budget)
        block_size = max(1, int(budget // max(1, int(per.max()))))
    if isinstance(block_size, bool) or int(block_size) < 1:
        raise ValueError(f"block_size={block_size!r}; use a positive number of probes or None.")
    bs = int(block_size)
    return [range(a, min(a + bs, P)) for a in range(0, P, bs)]


def _padded(flat: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, max length) gather index into ``flat`` (0 where padded) and its validity mask."""
    lens = np.diff(off)
    width = int(lens.max()) if lens.size else 0
    j = np.arange(width, dtype=np.int64)
    mask = j[None, :] < lens[:, None]
    return np.where(mask, off[:-1, None] + j[None, :], 0), mask


def _train_fused(X, Y, task_of_probe, is_cls, train_idx, test_idx, epochs, seed, metric, batch_size, lr,
                 weight_decay, progress, threads, blocks, keys) -> np.ndarray:
    """The fused kernel, epoch after epoch, block after block. The kernel (numba, no GIL) runs in a worker thread
    while this thread draws the next epoch's permutations and scores the previous epoch (double-buffered logits):
    the same work in the same order, overlapped."""
    from concurrent.futures import ThreadPoolExecutor

    import numba
    from tqdm.auto import tqdm

    kernel = _kernel()
    X = np.ascontiguousarray(X, dtype=np.float32)
    Yf = np.ascontiguousarray(np.nan_to_num(np.asarray(Y, dtype=np.float32)))
    n, d = X.shape
    task = np.asarray(task_of_probe, dtype=np.int64)
    cls = np.asarray(is_cls, dtype=np.bool_)
    history = np.empty((len(train_idx), epochs), dtype=np.float64)
    nthreads = numba.get_num_threads() if threads is None else max(1, min(int(threads),
                                                                          numba.config.NUMBA_NUM_THREADS))

    def run(*args):                       # in the worker: numba's thread count and chunk size are per thread
        numba.set_num_threads(nthreads)
        with numba.parallel_chunksize(CHUNK):    # probes handed out a few at a time: balanced threads
            kernel(*args)

    bar = tqdm(total=len(blocks) * epochs, desc="probe epochs", disable=not progress, leave=False)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eoembed-probes") as pool:
        for blk in blocks:
            sl = slice(blk.start, blk.stop)
            tr_l = [np.asarray(train_idx[p], dtype=np.int64) for p in blk]
            te_l = [np.asarray(test_idx[p], dtype=np.int64) for p in blk]
            tr, te = np.concatenate(tr_l), np.concatenate(te_l)
            if tr.size and (tr.min() < 0 or tr.max() >= n) or te.size and (te.min() < 0 or te.max() >= n):
                raise ValueError(f"probe row indices must lie in [0, {n}).")
            tr_off, te_off = offsets([len(r) for r in tr_l]), offsets([len(r) for r in te_l])
            draws = ProbeDraws(seed, keys[sl], d, np.diff(tr_off))
            W = draws.init()
            M, V = np.zeros_like(W), np.zeros_like(W)
            steps = np.zeros(len(blk), dtype=np.float64)
            logits = [np.empty(te.size, dtype=np.float32) for _ in range(2)]
            gidx, mask = _padded(te, te_off)
            y_te = Yf[task[sl][:, None], te[gidx]]

            def score(e):
                history[sl, e] = epoch_metric(np.where(mask, logits[e % 2][gidx], 0.0), y_te, mask, cls[sl], metric)
                bar.update(1)

            perm = np.concatenate(draws.permutations()).astype(np.int64, copy=False)
            for e in range(epochs):
                job = pool.submit(run, X, Yf, task[sl], cls[sl], tr, tr_off, perm, te, te_off, W, M, V, steps,
                                  float(lr), float(weight_decay), BETAS[0], BETAS[1], EPS, int(batch_size),
                                  logits[e % 2])
                try:
                    if e > 0:
                        score(e - 1)
                    if e + 1 < epochs:
                        perm = np.concatenate(draws.permutations()).astype(np.int64, copy=False)
                finally:
                    job.result()
            score(epochs - 1)
    bar.close()
    return history


def train_linear_probes(X, Y, task_of_probe, is_cls, train_idx, test_idx, epochs: int = 10, seed: int = 42,
                        device=None, metric: str = "neuco", batch_size: int = BATCH_SIZE, lr: float = LEARNING_RATE,
                        weight_decay: float = WEIGHT_DECAY, kernels: str = "auto", progress: bool = True,
                        threads: int | None = None, block_size: int | None = None,
                        memory_budget: int | None = None, keys=None) -> np.ndarray:
    """Train P linear probes and return the held-out metric after every epoch, shape (P, epochs).

    X: (N, D) float32 (standardised); Y: (T, N) float labels (NaN where absent); task_of_probe: (P,) row of Y
    per probe; is_cls: (P,) bool; train_idx / test_idx: P arrays of row indices into X.
    metric: "neuco" (R^2 / binary F1) or "tessera" (max(0, R^2) / chance-adjusted balanced accuracy).
    kernels: "fused" (numba CPU kernel), "sparse" / "dense" (batched torch engine, :mod:`eoembed.bench.probe`;
    "dense" is the GPU one) or "auto" (fused on CPU when numba is installed, else sparse; dense on CUDA).
    threads: CPU threads (None: all cores for the fused kernel, 1 for the torch engine).
    block_size: probes per block (None: as many as fit ``memory_budget`` bytes, default 256 MiB); scores are
    identical whatever the block size. keys: one integer per probe seeding its draws (default 0..P-1).
    All kernels use the same draws (:class:`ProbeDraws`) and compute in float32.
    """
    if metric not in ("neuco", "tessera"):
        raise ValueError(f"metric must be 'neuco' or 'tessera', not {metric!r}.")
    if kernels not in ("auto", "fused", "sparse", "dense"):
        raise ValueError(f"kernels must be 'auto', 'fused', 'sparse' or 'dense', not {kernels!r}.")
    P = len(train_idx)
    if len(test_idx) != P or len(np.atleast_1d(task_of_probe)) != P or len(np.atleast_1d(is_cls)) != P:
        raise ValueError("train_idx, test_idx, task_of_probe and is_cls need one entry per probe.")
    keys = np.arange(P, dtype=np.int64) if keys is None else np.asarray(keys, dtype=np.int64)
    kernels = resolve_kernels(device, kernels)
    d = int(np.shape(X)[1])
    blocks = block_probes([len(r) for r in train_idx], [len(r) for r in test_idx], d, block_size, memory_budget)
    if kernels == "fused":
        return _train_fused(X, Y, task_of_probe, is_cls, train_idx, test_idx, epochs, seed, metric, batch_size, lr,
                            weight_decay, progress, threads, blocks, keys)
    from eoembed.bench import probe

    out = np.empty((P, epochs), dtype=np.float64)
    for blk in blocks:
        sl = slice(blk.start, blk.stop)
        out[sl] = probe.train_linear_probes(
            X, Y, np.asarray(task_of_probe)[sl], np.asarray(is_cls)[sl], list(train_idx[sl]), list(test_idx[sl]),
            epochs=epochs, seed=seed, device=device if device is not None else "cpu", metric=metric,
            batch_size=batch_size, lr=lr, weight_decay=weight_decay, kernels=kernels, progress=progress,
            threads=1 if threads is None else threads, keys=keys[sl])
    return out
