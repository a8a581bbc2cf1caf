"""Fusion, compressor, selection, export and bad inputs (no evaluation engine needed)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from compress_helpers import synthetic_embeddings, write_store

from eoembed.compress import (Compressor, PRESETS, export_embeddings, fuse, fused_slices, load_checkpoint,
                              resolve_config, resolve_weights, select_checkpoint, select_models, train_compressor)
from eoembed.compress.model import feature_weights, weighted_mse
from eoembed.errors import StoreError

TINY = dict(hidden=16, out_dim=4, batch_size=16)


@pytest.fixture(scope="module")
def emb():
    return synthetic_embeddings(n=48, seed=0)


@pytest.fixture(scope="module")
def store(emb, tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("store") / "emb.zarr", emb[0])


def test_fuse_sorted_order_shapes_and_layout(store, emb):
    data = emb[0]
    fused = fuse(store)
    assert fused.dims == ("sample", "feature")
    assert fused.shape == (48, 4 * 6 + 4 * 5 + 7)
    assert fused.attrs["models"] == ["croma_tiny", "dofa_tiny", "presto"]
    assert fused.attrs["order"] == "sorted"
    sl = fused_slices(fused)
    assert sl == {"croma_tiny": (0, 24), "dofa_tiny": (24, 44), "presto": (44, 51)}
    # season-major flatten: feature j of season s at s * n_features + j
    np.testing.assert_array_equal(fused.values[:, 24 + 2 * 5 + 3], data["dofa_tiny"].values[:, 2, 3])
    np.testing.assert_array_equal(fused.values[:, 44:], data["presto"].values)
    assert list(fused["model"].values[[0, 24, 50]]) == ["croma_tiny", "dofa_tiny", "presto"]
    np.testing.assert_allclose(fused["lat"].values, data["presto"]["lat"].values)
    assert fused.attrs["shapes"] == {"croma_tiny": [4, 6], "dofa_tiny": [4, 5], "presto": [7]}


def test_fuse_given_order_and_select(emb):
    data = emb[0]
    fused = fuse(data, models=["presto", "croma_tiny"])
    assert fused.attrs["order"] == "given"
    assert fused_slices(fused) == {"presto": (0, 7), "croma_tiny": (7, 31)}
    np.testing.assert_array_equal(fused.values[:, :7], data["presto"].values)
    sub = select_models(fuse(data), ["presto", "croma_tiny"])
    np.testing.assert_array_equal(sub.values, fused.values)
    assert fused_slices(sub) == fused_slices(fused)


def test_fuse_aligns_reordered_ids(emb):
    data = dict(emb[0])
    data["presto"] = data["presto"].isel(sample=slice(None, None, -1))
    fused = fuse(data)
    np.testing.assert_array_equal(fused.values[:, 44:], emb[0]["presto"].values)


def test_fuse_errors_name_model_and_ids(emb):
    data = dict(emb[0])
    short = dict(data, dofa_tiny=data["dofa_tiny"].isel(sample=slice(0, 40)))
    with pytest.raises(StoreError, match=r"mismatched sample ids.*dofa_tiny.*s0040"):
        fuse(short)
    bad = data["presto"].copy(deep=True)
    bad[[3, 5], :] = np.nan
    with pytest.raises(StoreError, match=r"'presto' is missing .*2 samples: s0003, s0005"):
        fuse(dict(data, presto=bad))
    nan = data["croma_tiny"].copy(deep=True)
    nan[7, 1, 2] = np.nan
    with pytest.raises(StoreError, match=r"'croma_tiny' has NaN/inf embedding values .*s0007"):
        fuse(dict(data, croma_tiny=nan))
    with pytest.raises(StoreError, match="not in the store"):
        fuse(data, models=["nope"])
    dup = data["presto"].isel(sample=[0, 0] + list(range(2, 48)))
    with pytest.raises(StoreError, match="repeat"):
        fuse({"presto": dup})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fuse("/nonexistent/emb.zarr")


def test_compressor_architecture_and_weights():
    m = Compressor(30, hidden=12, out_dim=5)
    kinds = [type(x).__name__ for x in m.encoder]
    assert kinds == ["LayerNorm", "Dropout", "Linear", "GELU", "Dropout", "Linear"]
    assert m.encoder[0].normalized_shape == (30,) and m.decoder.in_features == 5 and m.decoder.out_features == 30
    z, rec = m(torch.randn(3, 30))
    assert z.shape == (3, 5) and rec.shape == (3, 30)
    w = resolve_weights(["copernicusfm_base", "croma_large", "dofa_base", "prithvi_eo_v2_300", "scalemae_large",
                         "presto"], "embed2scale")
    assert w == {"copernicusfm_base": 1.0, "croma_large": 0.5, "dofa_base": 1.0, "prithvi_eo_v2_300": 2.0,
                 "scalemae_large": 0.75, "presto": 1.0}
    cfg = resolve_config("embed2scale", epochs=3)
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.seed, cfg.epochs, cfg.hidden, cfg.out_dim) == (
        1e-4, 0.05, 32, 1337, 3, 2048, 1024)
    assert PRESETS["embed2scale"]["epochs"] == 160
    # weighted loss = sum_m w_m * MSE_m
    x, r = torch.randn(4, 10), torch.randn(4, 10)
    fw = feature_weights({"a": (0, 4), "b": (4, 10)}, {"a": 2.0, "b": 0.5}, 10)
    expect = 2.0 * ((x - r)[:, :4] ** 2).mean() + 0.5 * ((x - r)[:, 4:] ** 2).mean()
    assert torch.isclose(weighted_mse(r, x, fw), expect)
    with pytest.raises(ValueError, match="unknown compressor preset"):
        resolve_config("nope")


def test_loss_decreases_and_outputs(store, tmp_path):
    seen = []
    res = train_compressor(store, epochs=12, eval_every=4, callbacks=[seen.append], out=tmp_path / "run",
                           lr=3e-3, progress=False, **TINY)
    h = res.history
    assert list(h["epoch"]) == [4, 8, 12] and len(seen) == 3 and seen[0]["epoch"] == 4
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert h["val_mse"].iloc[-1] < h["val_mse"].iloc[0]
    assert {"epoch", "train_loss", "val_mse", "q_select", "q_report", "mse/presto"} <= set(h.columns)
    assert h["q_select"].isna().all() and h["q_report"].isna().all() and res.selection == "val_mse"
    assert res.embeddings.shape == (48, 4) and res.embeddings.dims == ("sample", "feature")
    assert (tmp_path / "run" / "history.csv").exists()
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 3
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pt"))
    assert "epoch_0012.pt" in kept and f"epoch_{res.best_mse_epoch:04d}.pt" in kept
    model, ck = load_checkpoint(res.checkpoint)
    assert ck["epoch"] == res.selected_epoch and model.out_dim == 4


def test_resume_continues_and_matches(store, tmp_path):
    full = train_compressor(store, epochs=6, eval_every=2, lr=3e-3, progress=False, seed=3, **TINY)
    part = train_compressor(store, epochs=6, eval_every=2, lr=3e-3, progress=False, seed=3,
                            out=tmp_path / "r", keep_checkpoints="all", **TINY)
    # drop the last checkpoint and resume from epoch 4
    (tmp_path / "r" / "checkpoints" / "epoch_0006.pt").unlink()
    again = train_compressor(store, epochs=6, eval_every=2, lr=3e-3, progress=False, seed=3,
                             out=tmp_path / "r", **TINY)
    cols = ["epoch", "train_loss", "val_mse"]
    pd.testing.assert_frame_equal(again.history[cols], full.history[cols])
    pd.testing.assert_frame_equal(part.history[cols], full.history[cols])
    with pytest.raises(ValueError, match="cannot resume"):
        train_compressor(store, epochs=6, eval_every=2, lr=1e-3, progress=False, seed=3, out=tmp_path / "r", **TINY)
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        train_compressor(store, epochs=6, eval_every=2, progress=False, out=tmp_path / "r", resume=False, **TINY)


def test_deterministic_history_on_cpu(emb):
    kw = dict(epochs=4, eval_every=2, progress=False, device="cpu", seed=11, **TINY)
    a = train_compressor(emb[0], **kw).history
    b = train_compressor(emb[0], **kw).history
    keep = [c for c in a.columns if not c.startswith("time/")]
    pd.testing.assert_frame_equal(a[keep], b[keep])
    c = train_compressor(emb[0], **dict(kw, seed=12)).history
    assert not np.allclose(a["train_loss"], c["train_loss"])


def test_select_checkpoint_on_constructed_history():
    # the report curve peaks elsewhere (epoch 25): selection must follow q_select only
    hist = pd.DataFrame({"epoch": [5, 10, 15, 20, 25], "val_mse": [0.9, 0.5, 0.3, 0.2, 0.25],
                         "q_select": [1.0, 4.0, 7.5, 7.5, 6.0], "q_report": [0.5, 1.0, 2.0, 3.0, 9.0]})
    sel = select_checkpoint(hist)
    assert sel["selected_epoch"] == 15 and sel["selection"] == "q_select" and sel["q_select"] == 7.5
    assert sel["q_report"] == 2.0 and sel["best_mse_epoch"] == 20
    sel = select_checkpoint(hist.assign(q_select=np.nan))
    assert sel["selected_epoch"] == 20 and sel["selection"] == "val_mse" and sel["q_report"] == 3.0
    sel = select_checkpoint(hist.to_dict("records")[::-1])  # list of rows, any order
    assert sel["selected_epoch"] == 15
    with pytest.raises(ValueError, match="empty"):
        select_checkpoint(pd.DataFrame())


def test_export_csv_and_zarr(tmp_path):
    rng = np.random.default_rng(0)
    da = xr.DataArray(rng.normal(size=(5, 3)).astype(np.float32), dims=("sample", "feature"),
                      coords={"sample": [f"id{i}" for i in range(5)], "lat": ("sample", np.arange(5.0)),
                              "lon": ("sample", -np.arange(5.0))}, attrs={"method": "x"})
    p = export_embeddings(da, tmp_path / "e.csv")
    df = pd.read_csv(p)
    assert list(df.columns) == ["id", "0", "1", "2"] and list(df["id"]) == [f"id{i}" for i in range(5)]
    # float16 values written in their shortest form: they read back to the same float16 numbers
    np.testing.assert_array_equal(df[["0", "1", "2"]].to_numpy().astype(np.float16), da.values.astype(np.float16))
    with pytest.raises(FileExistsError):
        export_embeddings(da, p)
    p32 = export_embeddings(da, tmp_path / "e32.csv", dtype="float32")
    np.testing.assert_allclose(pd.read_csv(p32).iloc[:, 1:].to_numpy(), da.values, rtol=1e-6)
    z = export_embeddings(da, tmp_path / "e.zarr")
    back = xr.open_zarr(z, consolidated=False)
    assert back["embedding"].dims == ("sample", "feature") and back["embedding"].dtype == np.float16
    np.testing.assert_array_equal(back["lat"].values, np.arange(5.0))
    assert list(back["sample"].values) == [f"id{i}" for i in range(5)]
    bad = da.copy()
    bad[1, 1] = np.nan
    with pytest.raises(StoreError, match="id1"):
        export_embeddings(bad, tmp_path / "bad.csv")


def test_bad_training_inputs(emb):
    with pytest.raises(ValueError, match="val_fraction"):
        train_compressor(emb[0], epochs=1, val_fraction=1.0, progress=False, **TINY)
    with pytest.raises(ValueError, match="eval_every"):
        train_compressor(emb[0], epochs=1, eval_every=0, progress=False, **TINY)
    with pytest.raises(TypeError, match="unknown compressor option"):
        resolve_config(None, hiden=3)


def test_cli_fuse_and_train(store, tmp_path):
    from typer.testing import CliRunner

    from eoembed.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["fuse", str(store), str(tmp_path / "fused.zarr"), "-m", "presto", "-m", "croma_tiny"])
    assert r.exit_code == 0, r.output
    back = xr.open_zarr(tmp_path / "fused.zarr", consolidated=False)
    assert back["fused"].shape == (48, 31) and json.loads(back.attrs["slices"])["presto"] == [0, 7]
    r = runner.invoke(app, ["train", str(store), "--epochs", "2", "--eval-every", "1", "--hidden", "8",
                            "--out-dim", "3", "--out", str(tmp_path / "cli"), "--export", str(tmp_path / "e.csv"),
                            "--weights", "croma=0.5", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "selected epoch" in r.output and pd.read_csv(tmp_path / "e.csv").shape == (48, 4)
    r = runner.invoke(app, ["train", "/nonexistent.zarr", "--no-progress"])
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output
