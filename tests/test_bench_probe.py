"""The batched NeuCo-Bench probe engine against per-fold nn.Linear + AdamW references."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torchmetrics.classification import BinaryF1Score
from torchmetrics.regression import R2Score

from eoembed.bench.core import _run, _splits
from eoembed.bench.io import prepare
from eoembed.bench.metrics import q_score
from eoembed.bench.engine import ProbeDraws, train_linear_probes as train_probes
from eoembed.bench.probe import best_over_epochs, train_linear_probes

sys.path.insert(0, str(Path(__file__).parent))
from neuco_reference import reference_scores  # noqa: E402


def _problem(n=150, d=8, seed=0, sizes=(130, 100)):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y_reg = X[:, 0] - 0.5 * X[:, 1] + 0.3 * rng.standard_normal(n)
    y_cls = (X[:, 2] + 0.5 * rng.standard_normal(n) > 0).astype(float)
    Y = np.stack([(y_reg - y_reg.min()) / (y_reg.max() - y_reg.min()), y_cls])
    perm = rng.permutation(n)
    a, b = sizes
    tr = [np.sort(perm[:a]), np.sort(perm[n - b:])]          # unequal sizes: masking of late steps
    te = [perm[a:], perm[: n - b]]
    return X, Y, tr, te


def _replay(X, Y, tr, te, is_cls, epochs, seed, B=64):
    """The same draws as the engine (init, per-epoch permutations), replayed through nn.Linear + AdamW, one probe
    after another: the straightforward per-fold implementation."""
    n, d = X.shape
    P = len(tr)
    draws = ProbeDraws(seed, np.arange(P), d, [len(r) for r in tr])
    W0 = torch.as_tensor(draws.init())
    models, opts = [], []
    for p in range(P):
        lin = nn.Linear(d, 1)
        with torch.no_grad():
            lin.weight.copy_(W0[p, :d][None])
            lin.bias.copy_(W0[p, d:])
        models.append(lin)
        opts.append(torch.optim.AdamW(lin.parameters(), lr=1e-3, weight_decay=0.01))
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y, dtype=torch.float32)
    hist = np.zeros((P, epochs))
    for e in range(epochs):
        orders = [torch.as_tensor(r)[torch.as_tensor(q)] for r, q in zip(tr, draws.permutations())]
        for p in range(P):
            rows = orders[p]
            loss_fn = nn.BCEWithLogitsLoss() if is_cls[p] else nn.MSELoss()
            for s in range(0, len(rows), B):
                b = rows[s:s + B]
                loss = loss_fn(models[p](Xt[b]).view(-1), Yt[p, b])
                opts[p].zero_grad()
                loss.backward()
                opts[p].step()
            with torch.no_grad():
                out = models[p](Xt[te[p]]).view(-1)
            metric = BinaryF1Score() if is_cls[p] else R2Score()
            hist[p, e] = float(metric(out, Yt[p, te[p]]))
    return hist


@pytest.mark.parametrize("kernels", ["fused", "sparse", "dense"])
@pytest.mark.parametrize("shape", [(150, (130, 100)), (30, (26, 20))])   # second: every batch is partial
def test_engine_replays_adamw_exactly(kernels, shape):
    X, Y, tr, te = _problem(n=shape[0], sizes=shape[1])
    is_cls = np.array([False, True])
    hist = train_probes(X, Y, [0, 1], is_cls, tr, te, epochs=4, seed=7, kernels=kernels, progress=False)
    ref = _replay(X, Y, tr, te, is_cls, epochs=4, seed=7)
    np.testing.assert_allclose(hist, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernels", ["fused", "sparse", "dense"])
@pytest.mark.parametrize("is_cls", [(False, False), (True, True), (False, True)])
def test_engine_replays_adamw_equal_sizes(kernels, is_cls):
    """Equal training sizes (one fused AdamW call on the flat parameters), all-regression / all-binary / mixed."""
    X, Y, tr, te = _problem(n=150, sizes=(130, 130))
    is_cls = np.array(is_cls)
    hist = train_probes(X, Y[is_cls.astype(int)], [0, 1], is_cls, tr, te, epochs=3, seed=3,
                               kernels=kernels, progress=False)
    ref = _replay(X, Y[is_cls.astype(int)], tr, te, is_cls, epochs=3, seed=3)
    np.testing.assert_allclose(hist, ref, rtol=1e-4, atol=1e-4)


def test_engine_replays_adamw_with_column_blocks(monkeypatch):
    """The sparse backward split into column blocks of X (as on large problems) changes nothing."""
    import eoembed.bench.probe as probe
    monkeypatch.setattr(probe, "CHUNK_BYTES", 2048)                    # 151 x 16 floats -> 4 blocks of 4 columns
    X, Y, tr, te = _problem(n=150, sizes=(130, 100))
    is_cls = np.array([False, True])
    hist = train_linear_probes(X, Y, [0, 1], is_cls, tr, te, epochs=3, seed=5, kernels="sparse", progress=False)
    ref = _replay(X, Y, tr, te, is_cls, epochs=3, seed=5)
    np.testing.assert_allclose(hist, ref, rtol=1e-4, atol=1e-4)


def test_engine_threads_give_the_same_scores():
    X, Y, tr, te = _problem(n=150, sizes=(130, 100))
    kw = dict(epochs=2, seed=1, progress=False)
    h1 = train_linear_probes(X, Y, [0, 1], np.array([False, True]), tr, te, threads=1, **kw)
    h2 = train_linear_probes(X, Y, [0, 1], np.array([False, True]), tr, te, threads=2, **kw)
    np.testing.assert_allclose(h1, h2, rtol=1e-5, atol=1e-5)


def test_best_over_epochs_ignores_nan():
    h = np.array([[0.1, np.nan, 0.3], [np.nan, np.nan, np.nan]])
    out = best_over_epochs(h)
    assert out[0] == 0.3 and np.isnan(out[1])


def _labels(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    ids = [f"s{i}" for i in range(n)]
    lab = pd.DataFrame({"lin": X[:, :5].sum(1) + rng.standard_normal(n),
                        "cls": (X[:, 0] + rng.standard_normal(n) > 0).astype(float)},
                       index=pd.Index(ids, name="id"))
    lab.attrs["task_types"] = {"lin": "regression", "cls": "classification"}
    return X, ids, lab


def _agreement(n, d, K, seeds):
    X, ids, lab = _labels(n, d, 1)
    prep = prepare(X, lab, ids=ids)
    sp = _splits(prep, K, 42)
    ours = np.stack([_run(prep, sp, "compat", "neuco", 10, s, torch.device("cpu"), False)[0] for s in seeds])
    ref = np.stack([reference_scores(prep, sp, seed=s + 100) for s in seeds])
    return prep, ours, ref


def test_compat_agrees_with_per_fold_reference():
    prep, ours, ref = _agreement(600, 48, 8, seeds=[0])
    for i, t in enumerate(prep.tasks):
        a, b = ours[:, i].ravel(), ref[:, i].ravel()
        se = math.sqrt(a.var() / a.size + b.var() / b.size)
        assert abs(a.mean() - b.mean()) < 4 * se + 0.02, (t, a.mean(), b.mean())
        qa, qb = q_score(a), q_score(b)
        assert abs(qa - qb) < max(4.0, 0.5 * abs(qb)), (t, qa, qb)


@pytest.mark.slow
def test_compat_agrees_with_reference_k40():
    prep, ours, ref = _agreement(2000, 256, 40, seeds=[0, 1])
    for i, t in enumerate(prep.tasks):
        a, b = ours[:, i], ref[:, i]
        assert abs(a.mean() - b.mean()) < 3 * math.sqrt(a.var() / a.size + b.var() / b.size) + 0.01, t
        qa = np.mean([q_score(r) for r in a])
        qb = np.mean([q_score(r) for r in b])
        assert abs(qa - qb) < max(1.5, 0.15 * abs(qb)), (t, qa, qb)


# ------------------------------------------------------------------------- index arithmetic past 2^31
def _probe_case(n, P, D=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)).astype(np.float32)
    Y = (X @ rng.normal(size=D))[None]
    perm = [rng.permutation(n) for _ in range(P)]
    cut = int(0.9 * n)
    return X, Y, [p[:cut] for p in perm], [p[cut:] for p in perm]


def test_index_dtype_switches_exactly_at_the_int32_boundary():
    from eoembed.bench.probe import INT32_MAX, _index_dtype

    assert _index_dtype(INT32_MAX) is np.int32 and _index_dtype(INT32_MAX + 1) is np.int64
    # (n+1) * P * 64 for n = 1000: 33,520 probes still fit in int32 keys, 33,521 do not (the measured failure)
    assert _index_dtype(1001 * 33_520 * 64) is np.int32 and _index_dtype(1001 * 33_521 * 64) is np.int64


def test_sample_major_keys_do_not_wrap_past_2_31():
    from eoembed.bench.probe import _sample_major

    B, P = 64, 40_000
    PB = P * B                                            # 2.56M slots: sample * PB passes 2^31 from sample 839
    rng = np.random.default_rng(0)
    order = rng.integers(0, 1_000_000, size=(1, PB), dtype=np.int64)
    slot_sm, probe = _sample_major(order, PB, B, np.int64)
    assert sorted(slot_sm[0].tolist()) == list(range(PB))                    # every slot exactly once
    assert (np.diff(order[0][slot_sm[0]]) >= 0).all()                       # entries in sample order
    np.testing.assert_array_equal(probe[0], slot_sm[0] // B)
    wrapped, _ = _sample_major(order, PB, B, np.int32)                       # what int32 keys did: wrong order
    assert (np.diff(order[0][wrapped[0] % PB]) < 0).any()


def test_int64_index_path_gives_identical_scores(monkeypatch):
    """The int64 path (taken past 2^31) is the int32 path's arithmetic exactly: forced on a small case."""
    from eoembed.bench import probe

    X, Y, tr, te = _probe_case(n=300, P=12)
    args = (X, Y, np.zeros(12, int), np.zeros(12, bool), tr, te)
    small = probe.train_linear_probes(*args, epochs=3, progress=False)
    monkeypatch.setattr(probe, "INT32_MAX", 1000)                            # every index array goes int64
    big = probe.train_linear_probes(*args, epochs=3, progress=False)
    np.testing.assert_array_equal(small, big)


@pytest.mark.slow
def test_probes_past_2_31_match_the_dense_kernels():
    """33,600 probes of 1,000 samples: (n+1)*P*64 > 2^31 (int32 keys wrapped here and 99% of scores were wrong).
    The sparse engine must equal the dense kernels, which build no such keys (about 1 min on 2 cores)."""
    from eoembed.bench.probe import train_linear_probes

    n, P = 1000, 33_600
    assert (n + 1) * P * 64 > 2**31
    X, Y, tr, te = _probe_case(n=n, P=P)
    args = (X, Y, np.zeros(P, int), np.zeros(P, bool), tr, te)
    a = train_linear_probes(*args, epochs=1, kernels="sparse", progress=False)
    b = train_linear_probes(*args, epochs=1, kernels="dense", progress=False)
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, atol=1e-5)
