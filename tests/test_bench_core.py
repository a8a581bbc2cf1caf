"""evaluate(): inputs, id matching report, errors, output schema, known answers, cross-method scores."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from eoembed.bench import compare, evaluate, label_fraction_curve, leaderboard, q_score, tessera_score, z_scores
from eoembed.bench.io import prepare, read_embeddings, read_label_folder
from eoembed.errors import DataError, LabelError

N, D = 240, 12


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D)).astype(np.float32)
    ids = np.array([f"id{i:04d}" for i in range(N)])
    lab = pd.DataFrame({
        "linear": X @ rng.standard_normal(D),
        "noise": rng.standard_normal(N),
        "binary": (X[:, 0] > 0).astype(float),
    }, index=pd.Index(ids, name="id"))
    lab.attrs["task_types"] = {"linear": "regression", "noise": "regression", "binary": "classification"}
    return X, ids, lab


def _write_neuco(tmp_path, X, ids, lab, suffix=".zarr.zip"):
    emb = pd.DataFrame(X, columns=[str(i) for i in range(X.shape[1])])
    emb.insert(0, "id", [i + suffix for i in ids])
    emb = emb[["id"] + [str(i) for i in reversed(range(X.shape[1]))]]  # column order must not matter
    emb.to_csv(tmp_path / "emb.csv", index=False)
    (tmp_path / "labels").mkdir()
    for t, kind in lab.attrs["task_types"].items():
        lab[t].rename("label").reset_index().to_csv(tmp_path / "labels" / f"{t}__{kind}.csv", index=False)
    return tmp_path / "emb.csv", tmp_path / "labels"


# ------------------------------------------------------------------------------------------------ formulas
def test_q_score_formula():
    s = np.array([0.5, 0.7, np.nan, 0.6])
    m, sd = np.mean([0.5, 0.7, 0.6]), np.std([0.5, 0.7, 0.6])
    assert q_score(s) == pytest.approx(2 * m / (0.02 + sd))
    assert q_score([0.3, 0.3]) == pytest.approx(30.0)       # 100 * mean / (1 + 50 * std)
    assert q_score([-1.0, -1.0]) == pytest.approx(-100.0)   # no clipping
    assert np.isnan(q_score([np.nan]))


def test_leaderboard_and_z_by_hand():
    table = pd.DataFrame({"A": [10.0, 1.0], "B": [5.0, 3.0], "C": [0.0, 2.0]}, index=["t1", "t2"])
    board = leaderboard(table)
    std = np.array([np.std([10, 5, 0], ddof=1), np.std([1, 3, 2], ddof=1)])
    w = std / std.sum()
    ranks = {"A": [1, 3], "B": [2, 1], "C": [3, 2]}
    expect = {m: float(np.dot(r, w)) for m, r in ranks.items()}
    got = dict(zip(board["method"], board["weighted_score"]))
    assert got == pytest.approx(expect)
    assert list(board["method"]) == sorted(expect, key=expect.get)
    assert board["aggregated_rank"].tolist() == [1, 2, 3]
    z = z_scores(table)
    za = np.mean([(10 - 5) / np.std([10, 5, 0]), (1 - 2) / np.std([1, 3, 2])])
    assert z["A"] == pytest.approx(za)
    nan_table = table.copy()
    nan_table.loc["t1", "C"] = np.nan
    assert "C" not in leaderboard(nan_table)["method"].tolist()


def test_tessera_metrics():
    assert tessera_score([0, 1, 2, 0], [0, 1, 2, 0], "classification") == pytest.approx(1.0)
    # balanced accuracy 1/3 with 3 classes = chance -> 0
    assert tessera_score([0, 1, 2], [0, 0, 0], "classification") == pytest.approx(0.0)
    assert tessera_score([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], "regression") == 0.0


# ------------------------------------------------------------------------------------------------ inputs
def test_neuco_csv_and_folder_match_dataframe(tmp_path, data):
    X, ids, lab = data
    emb, labels = _write_neuco(tmp_path, X, ids, lab)
    Xr, idr, info = read_embeddings(emb)
    assert info["ids_suffix_stripped"] == N and idr[0] == ids[0]
    np.testing.assert_allclose(Xr, X, rtol=1e-6)            # digit columns sorted numerically
    lab2, skipped, _ = read_label_folder(labels)
    assert lab2.attrs["task_types"] == lab.attrs["task_types"] and sum(skipped.values()) == 0
    r_csv = evaluate(emb, labels, folds=3, mode="ridge", progress=False)
    da = xr.DataArray(X, dims=("sample", "feature"), coords={"sample": ids})
    r_da = evaluate(da, lab, folds=3, mode="ridge", progress=False)
    pd.testing.assert_frame_equal(r_csv.per_task, r_da.per_task, rtol=1e-5)


def test_drops_and_nan_are_reported(data):
    X, ids, lab = data
    X = X.copy()
    X[3, 2] = np.nan
    X[5, :] = np.nan
    extra = np.vstack([X, np.ones((4, D), np.float32)])
    extra_ids = np.concatenate([ids, [f"unlabelled{i}" for i in range(4)]])
    lab = lab.copy()
    lab.loc[ids[7], "noise"] = np.nan
    prep = prepare(extra, lab, ids=extra_ids)
    rep = prep.report
    assert rep["dropped_no_label"]["count"] == 4 and rep["dropped_no_label"]["ids"][0] == "unlabelled0"
    assert rep["nan_filled"] == {"rows": 2, "values": D + 1, "non_numeric_cells": 0, "inf_values": 0,
                                 "ids": [ids[3], ids[5]]}
    assert rep["n_samples"]["noise"] == N - 1
    assert np.isfinite(prep.X).all()
    assert prep.X.mean() == pytest.approx(0, abs=1e-5) and prep.X.std() == pytest.approx(1, abs=1e-4)
    res = evaluate(extra, lab, ids=extra_ids, folds=2, mode="ridge", progress=False)
    assert res.details["report"]["nan_filled"]["rows"] == 2
    assert res.details["report"]["dropped_no_label"]["count"] == 4


def test_bad_inputs(tmp_path, data):
    X, ids, lab = data
    with pytest.raises(LabelError, match="No embedding id matches"):
        evaluate(X, lab, ids=[f"other{i}" for i in range(N)], folds=2, progress=False)
    const = lab.copy()
    const["noise"] = 1.0
    with pytest.raises(LabelError, match="constant"):
        evaluate(X, const, ids=ids, folds=2, progress=False)
    one = lab.copy()
    one["binary"] = np.where(np.arange(N) < N, 0.0, 1.0)
    one["binary"] = one["binary"].where(np.arange(N) % 2 == 0)   # labelled rows all 0 -> one class
    with pytest.raises(LabelError, match="single class|constant"):
        evaluate(X, one, ids=ids, folds=2, progress=False)
    emb, labels = _write_neuco(tmp_path, X, ids, lab)
    (labels / "binary__classification.csv").rename(labels / "binary__categorical.csv")
    with pytest.raises(LabelError, match="binary__categorical.csv"):
        evaluate(emb, labels, folds=2, progress=False)
    with pytest.raises(DataError, match="ids="):
        evaluate(X, lab, folds=2, progress=False)
    with pytest.raises(DataError, match="Duplicate"):
        evaluate(X[:2], lab, ids=["a", "a.zarr"], folds=2, progress=False)
    notypes = lab.copy()
    notypes.attrs = {}
    with pytest.raises(LabelError, match="task_types"):
        evaluate(X, notypes, ids=ids, folds=2, progress=False)
    multi = lab.copy()
    multi["binary"] = np.arange(N) % 3
    with pytest.raises(LabelError, match="mode='ridge'"):
        evaluate(X, multi, ids=ids, folds=2, progress=False)


# ------------------------------------------------------------------------------------------------ results
def test_known_answers_ridge(data):
    X, ids, lab = data
    res = evaluate(X, lab, ids=ids, folds=5, mode="ridge", progress=False)
    assert res.per_task.loc["linear", "mean_score"] > 0.99
    assert res.per_task.loc["binary", "mean_score"] > 0.9
    assert abs(res.per_task.loc["noise", "q_stat"]) < 3.0
    assert res.details["neuco_compatible"] is False and "NOT NeuCo-Bench" in res.details["mode_note"]
    assert res.summary["config"]["probe_type"] == "eoembed_ridge"


def test_multiclass_ridge_tessera(data):
    X, ids, lab = data
    lab = lab.copy()
    lab["binary"] = np.digitize(X[:, 0], [-0.5, 0.5]).astype(float)
    res = evaluate(X, lab, ids=ids, folds=3, mode="ridge", metric="tessera", tasks=["binary"], progress=False)
    assert res.per_task.loc["binary", "mean_score"] > 0.5


def test_compat_schema_and_outputs(tmp_path, data):
    X, ids, lab = data
    res = evaluate(X, lab, ids=ids, folds=4, epochs=3, out=tmp_path / "out", progress=False)
    assert list(res.per_task.columns) == ["type", "q_stat", "mean_score", "std_dev", "n_samples"]
    assert res.folds.shape == (3 * 4, 3) and list(res.folds.columns) == ["task", "fold", "score"]
    assert res.history.shape == (3 * 4 * 3, 4)
    summ = json.loads((tmp_path / "out" / "results_summary.json").read_text())
    assert summ["overall_q_score"] == pytest.approx(res.per_task["q_stat"].mean())
    assert summ["overall_acc_score"] == pytest.approx(res.per_task["mean_score"].mean())
    details = json.loads((tmp_path / "out" / "eoembed_report.json").read_text())
    assert details["neuco_compatible"] is True and "report" in details and "report" not in summ
    for t in lab.columns:
        per = json.loads((tmp_path / "out" / t / f"{t}_result.json").read_text())
        assert "q_t" not in per                                  # NeuCo-Bench default: output_fold_results false
        q_t = details["task_results"][t]["q_t"]
        assert len(q_t) == 4 and per["q_stat"] == pytest.approx(q_score(q_t))
    tidy = pd.read_csv(tmp_path / "out" / "fold_scores.csv")
    assert len(tidy) == 12
    table, z, board = compare({"a": res, "b": {"linear": 1.0, "noise": 0.0, "binary": 2.0}})
    assert table.shape == (3, 2) and set(z.index) == {"a", "b"} and len(board) == 2


def test_pure_noise_q_near_zero():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 16)).astype(np.float32)
    lab = pd.DataFrame({"noise": rng.standard_normal(400)}, index=pd.Index([f"n{i}" for i in range(400)], name="id"))
    lab.attrs["task_types"] = {"noise": "regression"}
    res = evaluate(X, lab, ids=lab.index, folds=8, mode="ridge", progress=False)
    assert abs(res.per_task.loc["noise", "q_stat"]) < 2.0


def test_label_fraction_curve(data):
    X, ids, lab = data
    df = label_fraction_curve(X, lab, ids=ids, fractions=(0.1, 1.0), folds=2, tasks=["linear", "binary"],
                              progress=False)
    assert set(df.columns) == {"task", "fraction", "fold", "n_train", "score"} and len(df) == 8
    curve = df.groupby(["task", "fraction"]).score.mean()
    assert curve["linear", 1.0] > curve["linear", 0.1] - 1e-9
    assert (df.score >= 0).all()                                 # TESSERA metrics are chance-adjusted/clipped
    df2 = label_fraction_curve(X, lab, ids=ids, fractions=(0.5,), folds=2, mode="compat", epochs=2,
                               tasks=["binary"], progress=False)
    assert len(df2) == 2 and (df2.n_train < N).all()


def test_cli(tmp_path, data):
    from eoembed.cli import app

    X, ids, lab = data
    emb, labels = _write_neuco(tmp_path, X, ids, lab)
    out = tmp_path / "res"
    r = CliRunner().invoke(app, ["bench", str(emb), "--labels", str(labels), "--out", str(out), "--folds", "3",
                                 "--mode", "ridge", "--tasks", "linear,noise", "--no-progress"])
    assert r.exit_code == 0, r.output
    summ = json.loads((out / "results_summary.json").read_text())
    assert set(summ["task_q_scores"]) == {"linear", "noise"} and summ["experiment"] == "res"
    assert "overall_q_score" in r.output


def test_leaderboard_reports_each_methods_null_control(sample_root):
    """compare(..., nulls=) puts every method's null (same protocol, permuted labels) and its gap on the board."""
    from eoembed.bench import compare, evaluate, null_control
    from eoembed.data import open_cube
    from eoembed.pipeline import raw_band_features

    emb = raw_band_features(open_cube(sample_root))
    kw = dict(folds=3, mode="ridge", tasks=["crops", "nodata"], progress=False)
    noise = emb.copy(data=np.random.default_rng(0).normal(size=emb.shape).astype(np.float32))
    results = {"raw": evaluate(emb, sample_root / "labels", **kw), "noise": evaluate(noise, sample_root / "labels", **kw)}
    nulls = {m: null_control(e, sample_root / "labels", draws=2, **kw) for m, e in (("raw", emb), ("noise", noise))}
    _, _, board = compare(results, nulls=nulls)
    b = board.set_index("method")
    np.testing.assert_allclose(b["q_gap"], b["mean_score"] - b["q_null"])
    assert b.loc["raw", "q_null"] == nulls["raw"].q_mean and b.loc["raw", "q_null_std"] == nulls["raw"].q_std
    assert b.loc["raw", "q_gap"] > b.loc["noise", "q_gap"]
    _, _, plain = compare(results)
    assert "q_null" not in plain.columns
