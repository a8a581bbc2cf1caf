"""Compression with the evaluation engine: in-loop Q-bar, NeuCo CSV round trip, ablation table, baselines."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from compress_helpers import synthetic_embeddings, tiny_cube, write_label_folder, write_store

from eoembed.compress import ablate, default_combos, train_compressor

bench = pytest.importorskip("eoembed.bench")
if not hasattr(bench, "evaluate"):
    pytest.skip("eoembed.bench.evaluate is not available yet", allow_module_level=True)

TINY = dict(hidden=16, out_dim=4, batch_size=16, lr=3e-3)


@pytest.fixture(scope="module")
def emb():
    return synthetic_embeddings(n=72, seed=1)  # n<=61 trips an evaluate() bug (reported)


def test_in_loop_q_history_and_selection(emb, tmp_path):
    data, labels = emb
    rows = []
    res = train_compressor(data, labels, epochs=6, eval_every=2, q_folds=4, callbacks=[rows.append],
                           out=tmp_path / "run", progress=False, **TINY)
    h = res.history
    for part in ("select", "report"):
        assert {f"q_{part}", f"q_{part}/reg_a", f"q_{part}/reg_b", f"q_{part}/cls_c"} <= set(h.columns)
        assert np.isfinite(h[f"q_{part}"]).all()
    assert {"val_mse", "train_loss"} <= set(h.columns) and [r["epoch"] for r in rows] == [2, 4, 6]
    assert res.selection == "q_select"
    assert res.selected_epoch == int(h.loc[h["q_select"].idxmax(), "epoch"])
    sel_row = h.set_index("epoch").loc[res.selected_epoch]
    assert res.q_select == sel_row["q_select"] and res.q_report == sel_row["q_report"]
    assert res.best_mse_epoch == int(h.loc[h["val_mse"].idxmin(), "epoch"])
    assert res.checkpoint.exists() and res.mse_checkpoint.exists()
    back = pd.read_csv(tmp_path / "run" / "history.csv")
    np.testing.assert_allclose(back["q_report"], h["q_report"])
    # the result's embeddings are the selected checkpoint's encoder output
    np.testing.assert_allclose(res.encode(data).values, res.embeddings.values, rtol=1e-5, atol=1e-6)


def test_exported_csv_is_accepted_by_evaluate(emb, tmp_path):
    data, labels = emb
    res = train_compressor(data, labels, epochs=2, eval_every=2, q_folds=3, progress=False, **TINY)
    csv = res.export(tmp_path / "emb.csv")
    folder = write_label_folder(labels, tmp_path / "labels")
    from_csv = bench.evaluate(str(csv), str(folder), folds=3, progress=False)
    # the CSV holds the float16 numbers in their shortest decimals: compare with exactly those values in memory
    text = pd.read_csv(csv, index_col=0)
    assert [str(i) for i in text.index] == [str(i) for i in res.embeddings["sample"].values]
    np.testing.assert_allclose(text.to_numpy(), res.embeddings.astype(np.float16).values, rtol=1e-3, atol=1e-4)
    from_mem = bench.evaluate(res.embeddings.copy(data=text.to_numpy(np.float64)), labels, folds=3, progress=False)
    assert set(from_csv.per_task.index) == {"reg_a", "reg_b", "cls_c"}
    np.testing.assert_allclose(from_csv.overall_q, from_mem.overall_q, rtol=1e-6, atol=1e-6)


def test_ablation_table_and_per_task(emb, tmp_path):
    data, labels = emb
    store = write_store(tmp_path / "emb.zarr", data)
    assert default_combos(["b", "a", "c"]) == [("a",), ("b",), ("c",), ("a", "b", "c"), ("b", "c"), ("a", "c"),
                                               ("a", "b")]
    assert default_combos(["a", "b"]) == [("a",), ("b",), ("a", "b")]
    cube = tiny_cube([str(s) for s in data["presto"]["sample"].values])
    res = ablate(store, labels, combos=[["presto"], ["croma_tiny", "presto"]], cube=cube, epochs=2, eval_every=2,
                 eval_folds=4, q_folds=3, out=tmp_path / "abl", rcf_features=8, progress=False, **TINY)
    t = res.table
    assert list(t.index) == ["presto", "croma_tiny + presto", "PCA (all models)", "RCF (cube)"]
    assert list(t.columns) == ["method", "models", "n_models", "in_dim", "out_dim", "selected_epoch", "q_report",
                               "q_null", "q_null_std", "q_gap", "z", "acc", "mse"]
    assert list(t["method"]) == ["autoencoder", "autoencoder", "pca", "rcf"]
    assert np.isfinite(t[["q_report", "q_null", "q_null_std", "q_gap", "z"]]).all().all()
    np.testing.assert_allclose(t["q_gap"], t["q_report"] - t["q_null"])
    assert np.isnan(t.loc["RCF (cube)", "mse"])
    # each row's choice was made on the selection part: one chosen candidate per row, the best q_select
    for name, g in res.selection.groupby("combination"):
        assert g["chosen"].sum() == 1 and g.loc[g["chosen"], "q_select"].iloc[0] == g["q_select"].max()
    assert set(res.selection["combination"]) == set(t.index)
    # the table's Q is the report part's: re-evaluating the PCA row on the report labels gives it
    ev = bench.evaluate(res.runs["PCA (all models)"], res.split.report, folds=4, progress=False)
    assert np.isclose(ev.overall_q, t.loc["PCA (all models)", "q_report"])
    assert not set(res.split.select_ids) & set(res.split.report_ids)
    assert set(res.per_task.columns) == {"cls_c", "reg_a", "reg_b"}
    assert list(res.per_task.index) == list(t.index)
    np.testing.assert_allclose(t["z"], bench.z_scores(res.per_task.T).values)  # same Z as bench.compare
    # resumed: finished runs are read back, same table
    again = ablate(store, labels, combos=[["presto"], ["croma_tiny", "presto"]], cube=cube, epochs=2, eval_every=2,
                   eval_folds=4, q_folds=3, out=tmp_path / "abl", rcf_features=8, progress=False, **TINY)
    cols = ["q_report", "q_null", "q_null_std", "q_gap", "z", "mse", "out_dim"]
    pd.testing.assert_frame_equal(again.table[cols], t[cols])
    assert all(isinstance(v, str) for v in again.runs.values())  # read back, not recomputed
