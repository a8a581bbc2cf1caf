"""Honest selection (issue 9 section 2): disjoint selection/report labels, selection on q_select only, null
controls, and pure-noise labels scoring within noise of their null for the compressor and the baselines."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from compress_helpers import synthetic_embeddings, tiny_cube

import eoembed.compress.train as train_mod
from eoembed.bench import evaluate, null_control, permute_labels
from eoembed.compress import ablate, fuse, load_checkpoint, split_labels, train_compressor
from eoembed.errors import LabelError

TINY = dict(hidden=16, out_dim=4, batch_size=16, lr=3e-3)
N = 150


@pytest.fixture(scope="module")
def emb():
    return synthetic_embeddings(n=N, seed=2)


def noise_labels(ids, seed: int) -> pd.DataFrame:
    """Labels of pure noise (independent of every embedding): two regression tasks, one balanced binary task."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    lab = pd.DataFrame({"noise_a": rng.normal(size=n), "noise_b": rng.uniform(size=n),
                        "noise_c": rng.permutation(np.arange(n) % 2).astype(float)},
                       index=pd.Index([str(i) for i in ids], name="id"))
    lab.attrs["task_types"] = {"noise_a": "regression", "noise_b": "regression", "noise_c": "classification"}
    return lab


def test_split_by_samples_is_disjoint_and_seeded(emb):
    _, labels = emb
    labels = labels.copy()
    labels.iloc[:5, 0] = np.nan  # partly labelled samples stay in the split through their other tasks
    s = split_labels(labels, select_fraction=0.4, seed=3)
    assert s.kind == "samples" and not set(s.select_ids) & set(s.report_ids)
    assert sorted(s.select_ids + s.report_ids) == sorted(map(str, labels.index))
    assert len(s.select_ids) == round(0.4 * N) and s.select_tasks == s.report_tasks == list(labels.columns)
    # label order is kept inside each part (the NeuCo folds index rows in label order)
    assert s.report_ids == [i for i in map(str, labels.index) if i in set(s.report_ids)]
    assert s.select.attrs["task_types"] == labels.attrs["task_types"]
    assert split_labels(labels, select_fraction=0.4, seed=3).select_ids == s.select_ids
    assert split_labels(labels, select_fraction=0.4, seed=4).select_ids != s.select_ids
    only = split_labels(labels, ids=list(labels.index[:60]), seed=3)  # restricted to given samples
    assert set(only.select_ids + only.report_ids) == set(map(str, labels.index[:60]))


def test_split_by_tasks_and_errors(emb):
    _, labels = emb
    s = split_labels(labels, select_tasks=["reg_b"])
    assert s.kind == "tasks" and s.select_tasks == ["reg_b"] and s.report_tasks == ["reg_a", "cls_c"]
    assert not set(s.select_tasks) & set(s.report_tasks)
    with pytest.raises(LabelError, match="leaves no task to report"):
        split_labels(labels, select_tasks=list(labels.columns))
    with pytest.raises(LabelError, match="unknown task"):
        split_labels(labels, select_tasks=["nope"])
    with pytest.raises(LabelError, match=r"task 'reg_a' has only \d+ labelled samples in the selection set"):
        split_labels(labels.iloc[:30], select_fraction=0.2)
    with pytest.raises(ValueError, match="select_fraction"):
        split_labels(labels, select_fraction=1.0)
    rare = labels.copy()
    rare["cls_c"] = 0.0
    rare.iloc[0, rare.columns.get_loc("cls_c")] = 1.0  # one positive: one side has a single class
    rare.attrs = labels.attrs
    with pytest.raises(LabelError, match="'cls_c' has a single class in the (selection|report) set"):
        split_labels(rare, select_fraction=0.5)


def test_history_keeps_both_curves_on_disjoint_parts(emb, tmp_path):
    data, labels = emb
    res = train_compressor(data, labels, epochs=4, eval_every=2, q_folds=5, out=tmp_path / "run", progress=False,
                           **TINY)
    h = res.history
    for part in ("select", "report"):
        assert np.isfinite(h[f"q_{part}"]).all()
        assert {f"q_{part}/{t}" for t in labels.columns} <= set(h.columns)
    assert {"val_mse", "mse/presto"} <= set(h.columns)
    assert not set(res.split.select_ids) & set(res.split.report_ids)
    ck = load_checkpoint(res.checkpoint)[1]
    assert ck["selection"]["report_ids"] == res.split.report_ids
    # the report curve is evaluate() on the report labels alone (same folds / protocol)
    last = train_mod.encode(load_checkpoint(tmp_path / "run" / "checkpoints" / "epoch_0004.pt")[0],
                            fuse(data).values)
    ev = evaluate(last, res.split.report, ids=[str(s) for s in fuse(data)["sample"].values], progress=False,
                  **{k: v for k, v in res.q_kwargs.items() if k != "progress"})
    assert np.isclose(ev.overall_q, h.set_index("epoch").loc[4, "q_report"], atol=1e-6)
    by_task = train_compressor(data, labels, epochs=2, eval_every=2, q_folds=5, select_tasks=["reg_b"],
                               progress=False, **TINY)
    cols = set(by_task.history.columns)
    assert "q_select/reg_b" in cols and "q_report/reg_b" not in cols and "q_report/reg_a" in cols


def test_selected_epoch_follows_selection_curve_only(emb, tmp_path, monkeypatch):
    """Selection and report curves that disagree (selection peaks at epoch 4, report at 8): epoch 4 is chosen and
    the result carries epoch 4's model, embeddings and report Q-bar."""
    data, labels = emb
    q_sel = {2: 1.0, 4: 5.0, 6: 2.0, 8: 0.0}
    q_rep = {2: 0.0, 4: 1.0, 6: 2.0, 8: 9.0}
    seen = []

    def fake_score(embeddings, split, parts=("select", "report"), **kw):
        epoch = len(seen) * 2 + 2
        seen.append(split)
        return {"q_select": q_sel[epoch], "q_report": q_rep[epoch]}

    monkeypatch.setattr(train_mod, "score_split", fake_score)
    res = train_compressor(data, labels, epochs=8, eval_every=2, out=tmp_path / "run", keep_checkpoints="all",
                           progress=False, **TINY)
    assert res.selected_epoch == 4 and res.selection == "q_select"
    assert res.q_select == 5.0 and res.q_report == 1.0
    assert int(res.history.loc[res.history["q_report"].idxmax(), "epoch"]) == 8
    model = load_checkpoint(tmp_path / "run" / "checkpoints" / "epoch_0004.pt")[0]
    np.testing.assert_allclose(res.embeddings.values, train_mod.encode(model, fuse(data).values), atol=1e-6)
    assert res.embeddings.attrs["epoch"] == 4


def test_permute_labels_and_null_control_detects_signal(emb):
    data, labels = emb
    lab = labels.copy()
    lab.iloc[3, 1] = np.nan
    lab.attrs = labels.attrs
    p = permute_labels(lab, seed=1)
    assert p.index.equals(lab.index) and (p.isna() == lab.isna()).all().all()
    for t in lab.columns:
        np.testing.assert_array_equal(np.sort(p[t].dropna()), np.sort(lab[t].dropna()))
    assert not np.allclose(p["reg_a"].fillna(0), lab["reg_a"].fillna(0))
    with pytest.raises(ValueError, match="draws"):
        null_control(fuse(data), labels, draws=1)
    # embeddings that carry the labels' latent signal score far above their null (60 probe epochs: NeuCo's 10
    # under-train on 150 samples, measured Q-bar 0.47 vs null -0.08 +/- 0.25; at 60 epochs 9.3 vs 1.1 +/- 0.25)
    kw = dict(folds=10, mode="compat", epochs=60)
    q = evaluate(fuse(data), labels, progress=False, **kw).overall_q
    nc = null_control(fuse(data), labels, draws=4, **kw)
    assert nc.n_draws == 4 and list(nc.per_task.columns) == ["mean", "std"] and nc.q_std > 0
    assert q - nc.q_mean > nc.tolerance()


def test_noise_labels_compressor_reported_q_within_null(emb):
    """Pure-noise labels: the selected checkpoint's reported Q-bar minus its null control is within noise of zero
    (3 sd of a single draw around the null mean, the sd taken from the null draws)."""
    data, _ = emb
    labels = noise_labels(fuse(data)["sample"].values, seed=7)
    res = train_compressor(data, labels, epochs=12, eval_every=2, q_folds=10, progress=False, **TINY)
    nc = res.null_control(draws=6)
    assert nc.q_std > 0
    assert abs(res.q_report - nc.q_mean) <= nc.tolerance(3.0), (res.q_report, nc)


def test_noise_labels_ablation_rows_within_null(emb, tmp_path):
    """The same for every ablation row (autoencoder, PCA with its size chosen on the selection part, RCF)."""
    data, _ = emb
    labels = noise_labels(fuse(data)["sample"].values, seed=11)
    cube = tiny_cube([str(s) for s in data["presto"]["sample"].values], size=8)
    draws = 5
    res = ablate(data, labels, combos=[["presto", "croma_tiny"]], cube=cube, epochs=6, eval_every=2,
                 eval_folds=10, q_folds=10, null_draws=draws, baseline_dims=[2, 4, 8], rcf_features=8,
                 progress=False, **TINY)
    t = res.table
    assert list(t["method"]) == ["autoencoder", "pca", "rcf"]
    assert t.loc["PCA (all models)", "out_dim"] in (2, 4, 8)
    tol = 3.0 * t["q_null_std"] * np.sqrt(1 + 1 / draws)
    assert (t["q_null_std"] > 0).all()
    assert (t["q_gap"].abs() <= tol).all(), t[["q_report", "q_null", "q_null_std", "q_gap"]]


def test_cli_ablate_prints_held_out_and_null(emb, tmp_path):
    import typer
    from compress_helpers import write_store
    from typer.testing import CliRunner

    from eoembed.compress.cli import register
    from eoembed.data import write_labels

    data, labels = emb
    store = write_store(tmp_path / "emb.zarr", {"presto": data["presto"]})
    write_labels(labels, tmp_path / "labels")
    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(app, ["ablate", str(store), "--labels", str(tmp_path / "labels"), "--out",
                                 str(tmp_path / "abl"), "--baseline", "pca", "--epochs", "2", "--out-dim", "4",
                                 "--eval-folds", "4", "--q-folds", "3", "--null-draws", "2", "--baseline-dim", "2",
                                 "--baseline-dim", "4", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "q_report" in r.output and "q_null" in r.output and "q_gap" in r.output
    table = pd.read_csv(tmp_path / "abl" / "table.csv", index_col=0)
    assert list(table.index) == ["presto", "PCA (all models)"] and np.isfinite(table["q_null_std"]).all()
    sel = pd.read_csv(tmp_path / "abl" / "selection.csv")
    assert set(sel.loc[sel["combination"] == "PCA (all models)", "candidate"]) == {2, 4}


def test_select_dim_uses_selection_part_only(emb, monkeypatch):
    """select_dim scores every candidate size on the selection part only and keeps the best (smallest on ties)."""
    import eoembed.compress.selection as selection_mod
    from eoembed.compress import pca_baseline, select_dim

    data, labels = emb
    split = split_labels(labels, seed=1)
    full = pca_baseline(data, out_dim=8)
    calls = []

    def fake_score(embeddings, split_, parts=("select", "report"), **kw):
        calls.append((int(embeddings.sizes["feature"]), tuple(parts), split_ is split))
        return {"q_select": {2: 1.0, 4: 3.0, 8: 3.0}[int(embeddings.sizes["feature"])]}

    monkeypatch.setattr(selection_mod, "score_split", fake_score)
    k, table = select_dim(full, split, [8, 2, 4, 64], folds=5)
    assert k == 4 and list(table["candidate"]) == [2, 4, 8] and list(table["chosen"]) == [False, True, False]
    assert calls == [(2, ("select",), True), (4, ("select",), True), (8, ("select",), True)]
