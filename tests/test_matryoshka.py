"""Matryoshka distillation (eoembed.compress.matryoshka): heads only in training, nested prefixes, loss decreasing,
ordering against the unordered control, bad inputs, resume, prefix evaluation and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from eoembed.compress import distill, distill_unordered, load_student, prefix_scores, storage_bytes
from eoembed.errors import DataError

N, D_T = 240, 24
FAST = dict(hidden=32, epochs=12, batch_size=32, lr=3e-3, progress=False)


def planted(n: int = N, seed: int = 0) -> tuple[xr.DataArray, pd.DataFrame]:
    """A teacher whose variance lies in an 8-d latent with scales 3 .. 1, plus labels read off that latent."""
    rng = np.random.default_rng(seed)
    lat = rng.normal(size=(n, 8)) * np.linspace(3.0, 1.0, 8)
    t = lat @ rng.normal(size=(8, D_T)) + 0.05 * rng.normal(size=(n, D_T))
    ids = np.asarray([f"s{i:04d}" for i in range(n)], dtype=object)
    teacher = xr.DataArray(t.astype(np.float32), dims=("sample", "feature"), coords={"sample": ids})
    labels = pd.DataFrame({"a": lat[:, 0] + 0.1 * rng.normal(size=n), "b": lat[:, 1] + 0.1 * rng.normal(size=n),
                           "c": (lat[:, 2] > 0).astype(float)}, index=pd.Index(ids, name="id"))
    labels.attrs["task_types"] = {"a": "regression", "b": "regression", "c": "classification"}
    return teacher, labels


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def run(data):
    return distill(data[0], prefixes=(2, 4, 8), out_dim=8, **FAST)


def _linear_r2(z: np.ndarray, t: np.ndarray) -> float:
    """Fraction of the centred teacher's variance a least-squares linear map from z explains."""
    tc = t - t.mean(0)
    zc = np.c_[z - z.mean(0), np.ones(len(z))]
    coef, *_ = np.linalg.lstsq(zc, tc, rcond=None)
    return 1.0 - float(((zc @ coef - tc) ** 2).sum() / (tc ** 2).sum())


def test_heads_only_in_training(run, data):
    st = run.student
    assert st.out_dim == 8 and run.embeddings.sizes["feature"] == 8
    names = [n for n, _ in st.named_parameters()]
    assert names and not any("head" in n for n in names)
    assert not any(p.shape[-1] in (2, 4) and p.shape[0] == D_T for p in st.parameters())  # no h_k weight
    with torch.no_grad():
        z = st(torch.from_numpy(data[0].values)).numpy()
    np.testing.assert_allclose(z, run.embeddings.values, rtol=1e-5, atol=1e-5)
    assert run.embeddings.attrs["prefixes"] == [2, 4, 8] and run.embeddings.attrs["precision"] == "float32"


def test_prefixes_nest(run):
    for k in run.prefixes:
        np.testing.assert_array_equal(run.prefix(k).values, run.embeddings.values[:, :k])
    assert list(run.prefix(4)["sample"].values) == list(run.embeddings["sample"].values)


def test_loss_decreases_and_cosine_ordered(run):
    h = run.history
    assert len(h) == FAST["epochs"]
    assert h["loss"].iloc[-1] < 0.6 * h["loss"].iloc[0]
    last = h.iloc[-1]
    assert last["cos/2"] < last["cos/4"] < last["cos/8"]  # a longer prefix reconstructs the teacher better


def test_prefix_carries_more_than_unordered_beyond_seed_spread(data):
    """On the planted 8-d structure the k=2 prefix of a 16-d Matryoshka student explains more teacher variance
    than the first 2 coordinates of the unordered student, for every seed: the worst Matryoshka seed beats the
    best unordered seed (the margin is the spread over seeds, not a fixed number)."""
    t = data[0].values
    kw = {**FAST, "epochs": 10}
    mat = [_linear_r2(distill(data[0], prefixes=(2, 4, 16), out_dim=16, seed=s, **kw).embeddings.values[:, :2], t)
           for s in range(3)]
    uno = [_linear_r2(distill_unordered(data[0], out_dim=16, seed=s, **kw).embeddings.values[:, :2], t)
           for s in range(3)]
    assert min(mat) > max(uno), (mat, uno)


@pytest.mark.parametrize("kwargs, match", [
    (dict(prefixes=(2, 16), out_dim=8), "larger than the student dimension"),
    (dict(prefixes=(4, 2), out_dim=8), "strictly increasing"),
    (dict(prefixes=(2, 2, 8), out_dim=8), "strictly increasing"),
    (dict(prefixes=(), out_dim=8), "empty"),
    (dict(prefixes=(0, 8), out_dim=8), "positive integer"),
])
def test_bad_prefixes(data, kwargs, match):
    with pytest.raises(DataError, match=match):
        distill(data[0], **kwargs, **FAST)


def test_id_mismatch_and_nan_rows(data):
    teacher = data[0]
    inputs = teacher.isel(sample=slice(0, N - 3))
    with pytest.raises(DataError, match=r"teacher and inputs ids differ.*s0237"):
        distill(teacher, inputs, prefixes=(2, 8), out_dim=8, **FAST)
    bad = teacher.copy()
    bad[[5, 9], 3] = np.nan
    with pytest.raises(DataError, match=r"teacher: 2 sample.*'s0005', 's0009'"):
        distill(bad, prefixes=(2, 8), out_dim=8, **FAST)
    # inputs in another order are aligned by id, not by position
    shuffled = teacher.isel(sample=np.random.default_rng(0).permutation(N))
    a = distill(teacher, shuffled, prefixes=(2, 8), out_dim=8, **{**FAST, "epochs": 2})
    b = distill(teacher, teacher, prefixes=(2, 8), out_dim=8, **{**FAST, "epochs": 2})
    assert list(a.embeddings["sample"].values) == list(teacher["sample"].values)
    np.testing.assert_allclose(a.history["cos/8"], b.history["cos/8"], rtol=1e-4)


def test_resume_equals_uninterrupted(data, tmp_path):
    kw = dict(prefixes=(2, 4, 8), out_dim=8, **{**FAST, "epochs": 6})
    full = distill(data[0], **kw)
    distill(data[0], out=tmp_path / "run", **{**kw, "epochs": 3})  # leaves what a run stopped after epoch 3 leaves
    assert [p.name for p in (tmp_path / "run" / "checkpoints").glob("epoch_*.pt")] == ["epoch_0003.pt"]
    resumed = distill(data[0], out=tmp_path / "run", **kw)
    assert list(resumed.history["epoch"]) == list(range(1, 7))
    np.testing.assert_array_equal(resumed.embeddings.values, full.embeddings.values)
    np.testing.assert_allclose(resumed.history["loss"], full.history["loss"], rtol=0, atol=0)
    st = load_student(tmp_path / "run" / "student.pt")
    assert st.out_dim == 8 and not any("head" in n for n, _ in st.named_parameters())
    assert (tmp_path / "run" / "teacher.npz").exists()
    with pytest.raises(ValueError, match="settings or data differ"):
        distill(data[0], out=tmp_path / "run", **{**kw, "lr": 1e-2})
    with pytest.raises(FileExistsError):
        distill(data[0], out=tmp_path / "run", resume=False, **kw)
    with pytest.raises(ValueError, match="already holds 6 epochs"):
        distill(data[0], out=tmp_path / "run", **{**kw, "epochs": 4})


def test_prefix_scores_table(run, data):
    df = prefix_scores(run, data[1], baselines=("pca", "random", "unordered"), folds=4)
    assert set(df["method"]) == {"matryoshka", "pca", "random", "unordered"}
    assert sorted(df.loc[df.method == "matryoshka", "k"]) == [2, 4, 8]
    for m in ("pca", "random", "unordered"):
        assert sorted(df.loc[df.method == m, "k"]) == [2, 4, 8]
    full = df[(df.method == "matryoshka") & (df.k == 8)].iloc[0]
    assert full["rel_q"] == pytest.approx(1.0) and full["rel_score"] == pytest.approx(1.0)
    row = df[(df.method == "pca") & (df.k == 4)].iloc[0]
    assert row["bytes_float32"] == 16 and row["bytes_float16"] == 8 and row["bytes_int8"] == 8
    assert np.isfinite(df["q"]).all()
    assert df.attrs["selection"].startswith("none")
    assert storage_bytes(128) == {"bytes_float32": 512, "bytes_float16": 256, "bytes_int8": 132}
    with pytest.raises(DataError, match="need the teacher"):
        prefix_scores(run.embeddings, data[1], baselines=("pca",))
    with pytest.raises(DataError, match="unknown"):
        prefix_scores(run, data[1], baselines=("svd",))


def test_cli_distill(data, tmp_path):
    from typer.testing import CliRunner

    from eoembed.cli import app
    from eoembed.compress import export_embeddings

    csv = export_embeddings(data[0], tmp_path / "teacher.csv", dtype="float32")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["distill", str(csv), "--out", str(out), "--prefix", "2", "--prefix", "8",
                                 "--out-dim", "8", "--hidden", "16", "--epochs", "2", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "k=2" in r.output and (out / "embeddings.zarr").exists() and (out / "student.pt").exists()
    assert xr.open_zarr(out / "embeddings.zarr", consolidated=False)["embedding"].shape == (N, 8)
    r = CliRunner().invoke(app, ["distill", str(csv), "--out", str(tmp_path / "o2"), "--prefix", "8", "--prefix",
                                 "2", "--out-dim", "8"])
    assert r.exit_code == 2 and "strictly increasing" in r.output
    assert not (tmp_path / "o2").exists()  # checked before any work
    r = CliRunner().invoke(app, ["distill", str(csv), "--out", str(tmp_path / "o3"), "--prefix", "2", "--prefix",
                                 "8", "--out-dim", "8", "--hidden", "16", "--epochs", "2", "--no-progress",
                                 "--target", "standardized", "--relational", "0.5", "--prefix-weight", "2",
                                 "--prefix-weight", "1", "--loss", "mse"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "o3" / "config.json").read_text())
    assert (cfg["target"], cfg["relational"], cfg["prefix_weights"], cfg["loss"]) == ("standardized", 0.5,
                                                                                     [2.0, 1.0], "mse")
    r = CliRunner().invoke(app, ["distill", str(csv), "--out", str(tmp_path / "o4"), "--prefix", "2", "--prefix",
                                 "8", "--out-dim", "8", "--prefix-weight", "1"])
    assert r.exit_code != 0 and "one weight per prefix" in r.output


def test_teacher_from_store_group(tmp_path):
    from compress_helpers import synthetic_embeddings, write_store

    from eoembed.compress import load_teacher
    from eoembed.errors import StoreError

    emb, _ = synthetic_embeddings(n=40)
    path = write_store(tmp_path / "emb.zarr", emb)
    with pytest.raises(StoreError, match="name one with teacher_model"):
        load_teacher(path)
    with pytest.raises(StoreError, match="'nope' is not in"):
        load_teacher(path, "nope")
    t = load_teacher(path, "croma_tiny")
    assert t.shape == (40, 24) and load_teacher(path, "croma_tiny") is t  # read once, then cached
    np.testing.assert_allclose(t.values, emb["croma_tiny"].values.reshape(40, -1))
    res = distill(path, emb["presto"], teacher_model="croma_tiny", prefixes=(2, 4), out_dim=4, **FAST)
    assert res.embeddings.shape == (40, 4) and res.student.in_dim == 7


# ------------------------------------------------------------------------------------------------ loss options
def _dominated(n: int = N, seed: int = 0) -> xr.DataArray:
    """The planted teacher plus one feature with 30x the scale of all others that carries only its own noise."""
    t = planted(n, seed)[0]
    loud = np.random.default_rng(seed + 1).normal(size=(n, 1)).astype(np.float32) * 30 * float(t.values.std())
    vals = np.concatenate([t.values, loud], axis=1)
    return xr.DataArray(vals, dims=("sample", "feature"), coords={"sample": t["sample"].values})


def test_standardized_target_spreads_the_prefix_over_quiet_features():
    """With one loud feature, a centred-cosine student spends its k=2 prefix on it; target="standardized" makes the
    quiet (informative) features count, so its k=2 prefix explains more of the z-scored teacher, for each seed."""
    t = _dominated()
    tz = (t.values - t.values.mean(0)) / t.values.std(0)
    kw = {**FAST, "epochs": 15}
    for s in (0, 1):
        cen = distill(t, prefixes=(2, 8), out_dim=8, seed=s, **kw)
        std = distill(t, prefixes=(2, 8), out_dim=8, seed=s, target="standardized", **kw)
        assert std.config["target"] == "standardized" and cen.config["target"] == "centred"
        assert _linear_r2(std.prefix(2).values, tz) > _linear_r2(cen.prefix(2).values, tz) + 0.05


def test_relational_term_matches_pairwise_cosines(data):
    """relational > 0 brings the pairwise cosine matrix of the k=2 prefix itself closer to the teacher's."""
    t = data[0]
    tc = t.values - t.values.mean(0)

    def gap(res):
        z = res.prefix(2).values
        zn = z / np.linalg.norm(z, axis=1, keepdims=True)
        tn = tc / np.linalg.norm(tc, axis=1, keepdims=True)
        return float(((zn @ zn.T - tn @ tn.T) ** 2).mean())

    kw = {**FAST, "epochs": 15}
    plain = distill(t, prefixes=(2, 8), out_dim=8, seed=0, **kw)
    rel = distill(t, prefixes=(2, 8), out_dim=8, seed=0, relational=5.0, **kw)
    assert rel.config["relational"] == 5.0
    assert gap(rel) < 0.8 * gap(plain), (gap(rel), gap(plain))


def test_prefix_weights_shift_quality_to_the_small_prefix(data):
    """Weighting k=2 heavily gives its head a higher final cosine than with uniform weights (same seed)."""
    kw = {**FAST, "epochs": 15}
    uni = distill(data[0], prefixes=(2, 8), out_dim=8, seed=0, **kw)
    heavy = distill(data[0], prefixes=(2, 8), out_dim=8, seed=0, prefix_weights=(10.0, 0.1), **kw)
    assert heavy.config["prefix_weights"] == [10.0, 0.1]
    h_u, h_h = uni.history.iloc[-1], heavy.history.iloc[-1]
    assert h_h["cos/2"] > h_u["cos/2"] and h_h["cos/8"] < h_u["cos/8"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(target="whiten"), "target='whiten'"),
    (dict(relational=-1.0), "relational"),
    (dict(prefix_weights=(1.0,)), "one weight per prefix"),
    (dict(prefix_weights=(1.0, -2.0, 1.0)), ">= 0"),
    (dict(prefix_weights=(0, 0, 0)), "not all 0"),
    (dict(loss="l1"), "loss='l1'"),
])
def test_bad_loss_options(data, kwargs, match):
    with pytest.raises(DataError, match=match):
        distill(data[0], prefixes=(2, 4, 8), out_dim=8, **FAST, **kwargs)


def test_pca_standardized_baseline(run, data):
    df = prefix_scores(run, data[1], baselines=("pca_standardized",), folds=4)
    assert sorted(df.loc[df.method == "pca_standardized", "k"]) == [2, 4, 8]
    assert np.isfinite(df["score"]).all()


def test_pca_spherical_baseline_is_the_top_span_of_unit_length_samples(run, data):
    """pca_spherical: unit-length centred teacher rows on their top right singular vectors. Its codes keep more
    squared cosine than any other span of the same size (checked against random spans), and prefix_scores scores
    it at every k."""
    from eoembed.compress.matryoshka import _pca_spherical

    t = np.asarray(run.teacher.values, np.float64)
    tc = t - t.mean(axis=0)
    codes = _pca_spherical(tc, 2)
    u = tc / np.linalg.norm(tc, axis=1, keepdims=True)
    kept = (codes.astype(np.float64) ** 2).sum()
    rng = np.random.default_rng(0)
    for _ in range(20):
        q, _ = np.linalg.qr(rng.normal(size=(u.shape[1], 2)))
        assert kept >= ((u @ q) ** 2).sum()
    assert kept <= len(u) + 1e-6 and np.allclose(np.linalg.norm(u, axis=1), 1.0)
    df = prefix_scores(run, data[1], baselines=("pca_spherical",), folds=4)
    assert sorted(df.loc[df.method == "pca_spherical", "k"]) == [2, 4, 8]
    assert np.isfinite(df["score"]).all()


def test_mse_loss_trains_and_orders_prefixes(data):
    res = distill(data[0], prefixes=(2, 8), out_dim=8, seed=0, loss="mse", **{**FAST, "epochs": 15})
    h = res.history
    assert res.config["loss"] == "mse"
    assert h["loss"].iloc[-1] < 0.6 * h["loss"].iloc[0]
    assert h["cos/2"].iloc[-1] < h["cos/8"].iloc[-1]
