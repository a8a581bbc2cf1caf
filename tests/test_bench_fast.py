"""The fast compat path: fused CPU kernel vs the torch engine, blocks, int64 index arithmetic, scikit-learn-free
ShuffleSplit, the pyarrow CSV reader, numpy metrics, and an `eoembed bench` that imports neither torch nor sklearn."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from eoembed.bench import engine
from eoembed.bench.core import _run, _splits, evaluate
from eoembed.bench.io import prepare, read_embeddings
from eoembed.bench.shuffle import shuffle_split

ROOT = Path(__file__).resolve().parents[1]
needs_numba = pytest.mark.skipif(not engine.numba_available(), reason="the fused kernel needs numba")


def _task_problem(n=240, d=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    ids = [f"s{i}" for i in range(n)]
    lab = pd.DataFrame({"reg": X[:, 0] - X[:, 1] + 0.5 * rng.standard_normal(n),
                        "cls": (X[:, 2] + 0.5 * rng.standard_normal(n) > 0).astype(float)},
                       index=pd.Index(ids, name="id"))
    lab.attrs["task_types"] = {"reg": "regression", "cls": "classification"}
    return X, ids, lab


def _probes(prep, K=6):
    sp = _splits(prep, K, 42)
    tr = [sp[t][k][0] for t in prep.tasks for k in range(K)]
    te = [sp[t][k][1] for t in prep.tasks for k in range(K)]
    task_of = np.repeat(np.arange(len(prep.tasks)), K)
    is_cls = np.array([prep.task_types[t] == "classification" for t in prep.tasks])[task_of]
    return task_of, is_cls, tr, te


@needs_numba
@pytest.mark.parametrize("metric", ["neuco", "tessera"])
def test_fused_kernel_equals_torch_engine(metric):
    """Same draws, two implementations: the fused numba kernel and the batched torch engine (sparse and dense)."""
    X, ids, lab = _task_problem()
    prep = prepare(X, lab, ids=ids)
    args = (prep.X, prep.Y, *_probes(prep))
    kw = dict(epochs=4, seed=3, metric=metric, progress=False)
    fused = engine.train_linear_probes(*args, kernels="fused", **kw)
    for kernels in ("sparse", "dense"):
        np.testing.assert_allclose(fused, engine.train_linear_probes(*args, kernels=kernels, **kw), atol=2e-4)


@needs_numba
def test_scores_identical_whatever_the_block_size():
    X, ids, lab = _task_problem()
    prep = prepare(X, lab, ids=ids)
    args = (prep.X, prep.Y, *_probes(prep))
    ref = engine.train_linear_probes(*args, epochs=3, seed=1, progress=False, block_size=10**6)
    for bs in (1, 5, 7):
        np.testing.assert_array_equal(engine.train_linear_probes(*args, epochs=3, seed=1, progress=False,
                                                                 block_size=bs), ref)
    tiny = engine.train_linear_probes(*args, epochs=3, seed=1, progress=False, memory_budget=1)  # 1 probe a block
    np.testing.assert_array_equal(tiny, ref)
    assert len(engine.block_probes([100] * 12, [10] * 12, 4, None, 1)) == 12


@needs_numba
def test_fused_threads_and_run_block_size_give_the_same_scores():
    X, ids, lab = _task_problem()
    prep = prepare(X, lab, ids=ids)
    sp = _splits(prep, 5, 42)
    a, _ = _run(prep, sp, "compat", "neuco", 3, 0, "cpu", False, threads=1)
    b, _ = _run(prep, sp, "compat", "neuco", 3, 0, "cpu", False, threads=2, block_size=3)
    np.testing.assert_array_equal(a, b)


def test_probe_draws_depend_only_on_seed_and_key():
    a = engine.ProbeDraws(42, [0, 1, 2], 8, [30, 20, 30])
    b = engine.ProbeDraws(42, [2], 8, [30])
    np.testing.assert_array_equal(a.init()[2], b.init()[0])
    np.testing.assert_array_equal(a.permutations()[2], b.permutations()[0])
    assert np.abs(a.init()).max() <= 1 / np.sqrt(8)


def test_index_arithmetic_past_2_31():
    """Offsets and block sizes of segments totalling far more than 2^31 rows stay exact (int64, no wrap)."""
    lens = [2**31 - 1, 2**31 + 5, 3 * 2**31]
    off = engine.offsets(lens)
    assert off.dtype == np.int64
    assert off.tolist() == [0, 2**31 - 1, 2**32 + 4, 2**32 + 4 + 3 * 2**31]
    # 11 tasks x 40 folds of a 100M-sample problem: 440 probes of 90M rows; blocks of one probe under 4 GiB
    blocks = engine.block_probes([90_000_000] * 440, [10_000_000] * 440, 1024, None, 4 * 2**30)
    assert sum(len(b) for b in blocks) == 440 and max(len(b) for b in blocks) == 2
    # the padded held-out gather index of segments lying past 2^31 in the flat array
    idx, mask = engine._padded(None, np.array([2**31, 2**31 + 3, 2**31 + 5], dtype=np.int64))
    assert idx.dtype == np.int64 and mask.sum() == 5
    assert idx[mask].tolist() == [2**31 + k for k in range(5)]


@pytest.mark.parametrize("n", [11, 12, 19, 20, 29, 30, 31, 99, 100, 101, 997, 2000, 4321])
def test_shuffle_split_is_sklearns(n):
    from sklearn.model_selection import ShuffleSplit

    for seed in (0, 1, 42):
        for K in (1, 5, 40):
            ref = list(ShuffleSplit(n_splits=K, test_size=0.1, random_state=seed).split(np.zeros(n)))
            mine = shuffle_split(n, K, 0.1, seed)
            assert len(mine) == K
            for (a, b), (c, e) in zip(ref, mine):
                np.testing.assert_array_equal(a, c)
                np.testing.assert_array_equal(b, e)


def test_numpy_metrics_equal_the_torch_ones():
    from eoembed.bench.probe import _epoch_metric

    rng = np.random.default_rng(0)
    P, L = 9, 13
    logits = rng.normal(size=(P, L)).astype(np.float32)
    logits[1] = rng.uniform(0, 1, L)                               # all in [0, 1]: taken as probabilities
    y = rng.uniform(size=(P, L))
    y[2] = 0.5                                                     # constant target
    y[3:6] = rng.integers(0, 2, (3, L))
    y[6] = 0.0                                                     # no positive
    mask = rng.uniform(size=(P, L)) > 0.2
    mask[7, 1:] = False                                            # a single held-out sample
    is_cls = np.array([False, True, False, True, True, False, True, False, True])
    for metric in ("neuco", "tessera"):
        a = engine.epoch_metric(logits, y, mask, is_cls, metric)
        b = _epoch_metric(torch.as_tensor(logits), torch.as_tensor(y), torch.as_tensor(mask), torch.as_tensor(is_cls),
                          metric).numpy()
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


def _write_csv(path, X, ids, text=None):
    df = pd.DataFrame(X, columns=[str(i) for i in range(X.shape[1])])
    df.insert(0, "id", ids)
    df.to_csv(path, index=False)
    if text:
        path.write_text(path.read_text().replace(*text))


@pytest.mark.parametrize("case", ["plain", "nan", "ints", "text", "ragged", "shuffled_columns", "na_id"])
def test_fast_csv_reader_equals_pandas_reader(tmp_path, monkeypatch, case):
    """The pyarrow reader gives what the checked pandas reader gives, or hands over to it (same values or the
    same error) on anything unusual."""
    from eoembed.bench import io

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 6)).astype(np.float32) * 1e3
    ids = [f"a{i}.zarr" for i in range(20)]
    if case == "nan":
        X[3, 2] = np.nan
    if case == "ints":
        X = np.round(X)
    path = tmp_path / "emb.csv"
    _write_csv(path, X, ids)
    if case == "text":
        lines = path.read_text().splitlines()
        lines[5] = lines[5].rsplit(",", 1)[0] + ",abc"
        path.write_text("\n".join(lines) + "\n")
    if case == "ragged":
        path.write_text(path.read_text() + "a99,1,2\n")
    if case == "shuffled_columns":
        df = pd.read_csv(path, dtype={"id": str})
        df[["id", "5", "0", "3", "1", "2", "4"]].to_csv(path, index=False)
    if case == "na_id":
        path.write_text(path.read_text().replace("a4.zarr", "NA"))

    def read():
        try:
            return read_embeddings(path)
        except Exception as exc:  # noqa: BLE001
            return exc

    fast = read()
    monkeypatch.setattr(io, "_read_csv_fast", lambda p: None)
    slow = read()
    if isinstance(slow, Exception):
        assert type(fast) is type(slow) and str(fast) == str(slow)
        return
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
    assert fast[2] == slow[2]


@needs_numba
def test_eoembed_bench_imports_neither_torch_nor_sklearn(tmp_path):
    """`eoembed bench` on CPU: the command's imports and its whole evaluation leave torch and scikit-learn alone."""
    X, ids, lab = _task_problem(n=60, d=4)
    _write_csv(tmp_path / "emb.csv", X, ids)
    (tmp_path / "labels").mkdir()
    for t, kind in lab.attrs["task_types"].items():
        lab[t].rename("label").reset_index().to_csv(tmp_path / "labels" / f"{t}__{kind}.csv", index=False)
    code = (
        "import sys\n"
        "from eoembed.cli import app\n"
        "try:\n"
        f"    app([\"bench\", {str(tmp_path / 'emb.csv')!r}, \"--labels\", {str(tmp_path / 'labels')!r}, \"--out\", "
        f"{str(tmp_path / 'out')!r}, \"--folds\", \"3\", \"--epochs\", \"2\", \"--device\", \"cpu\", \"--no-progress\"])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('LOADED', sorted(m for m in ('torch', 'sklearn') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stdout, proc.stdout[-2000:]
    assert (tmp_path / "out" / "results_summary.json").is_file()


@needs_numba
def test_evaluate_csv_equals_dataframe_fast_path(tmp_path):
    X, ids, lab = _task_problem(n=80, d=5)
    _write_csv(tmp_path / "emb.csv", X, ids)
    a = evaluate(tmp_path / "emb.csv", lab, folds=4, epochs=2, progress=False, device="cpu")
    df = pd.DataFrame(X, index=pd.Index(ids, name="id"), columns=[str(i) for i in range(5)])
    b = evaluate(df, lab, folds=4, epochs=2, progress=False, device="cpu")
    pd.testing.assert_frame_equal(a.folds, b.folds)
    assert a.details["precision"]["precision"] == "float32"
