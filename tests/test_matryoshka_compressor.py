"""Matryoshka fusion compressor: train_compressor(prefixes=...), nested-prefix masked loss, per-prefix curves."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from compress_helpers import synthetic_embeddings, write_store

from eoembed.compress import Compressor, check_prefixes, fuse, matryoshka_loss, prefix_masks, train_compressor
from eoembed.compress.model import feature_weights, weighted_mse
from eoembed.errors import DataError

TINY = dict(hidden=32, out_dim=16, epochs=4, eval_every=2, q_folds=3, progress=False)


@pytest.fixture(scope="module")
def data():
    emb, labels = synthetic_embeddings(64, seed=3)
    return fuse(emb), labels


def _no_time(h):
    return h.drop(columns=[c for c in h if c.startswith("time/")])


def test_plain_path_is_deterministic_and_its_loss_is_weighted_mse(data):
    fused, _ = data
    a = train_compressor(fused, None, **TINY)
    b = train_compressor(fused, None, **TINY)
    assert a.prefixes is None and not any("/k" in c for c in a.history)
    assert _no_time(a.history).equals(_no_time(b.history))
    # the recorded val_loss of the selected epoch is the weighted MSE of the full reconstruction
    xv = torch.from_numpy(fused.sel(sample=a.val_ids).values)
    fw = feature_weights(a.slices, a.weights, fused.shape[1])
    with torch.no_grad():
        expect = float(weighted_mse(a.model.eval()(xv)[1], xv, fw))
    row = a.history.set_index("epoch").loc[a.selected_epoch]
    assert row["val_loss"] == pytest.approx(expect, rel=1e-5)


def test_single_full_prefix_equals_plain_compressor(data):
    fused, labels = data
    plain = train_compressor(fused, labels, **TINY)
    full = train_compressor(fused, labels, prefixes=(16,), **TINY)
    cols = [c for c in _no_time(plain.history)]
    np.testing.assert_allclose(full.history[cols].to_numpy(float), plain.history[cols].to_numpy(float), rtol=1e-5)
    np.testing.assert_allclose(full.history["val_mse/k16"], plain.history["val_mse"], rtol=1e-6)


def test_masking_zeroes_coordinates_beyond_k():
    torch.manual_seed(0)
    m = Compressor(12, hidden=8, out_dim=6, dropout=0.0)
    x = torch.randn(5, 12)
    fw = torch.rand(12)
    masks = prefix_masks((2, 4, 6), 6)
    assert masks.tolist()[0] == [1, 1, 0, 0, 0, 0] and masks[2].sum() == 6
    loss, per_k = matryoshka_loss(m, x, fw, masks)
    z = m.encode(x).detach()
    for i, k in enumerate((2, 4, 6)):
        assert float(per_k[i].detach()) == pytest.approx(float(weighted_mse(m.decode(z, k), x, fw)), rel=1e-6)
        z2 = z.clone()
        z2[:, k:] += 100.0   # coordinates >= k cannot change the k-reconstruction
        torch.testing.assert_close(m.decode(z2, k), m.decode(z, k))
    assert float(loss.detach()) == pytest.approx(float(per_k.detach().mean()), rel=1e-6)
    # the k=2 loss alone sends no gradient to decoder columns >= 2
    m.zero_grad()
    per_k[0].backward()
    g = m.decoder.weight.grad
    assert torch.all(g[:, 2:] == 0) and torch.any(g[:, :2] != 0)


def test_history_has_a_curve_per_prefix(data):
    fused, labels = data
    r = train_compressor(fused, labels, prefixes=[4, 8], **TINY)
    assert r.prefixes == (4, 8, 16)   # out_dim appended
    h = r.history
    for k in (4, 8, 16):
        for c in ("val_mse", "val_loss", "q_select", "q_report"):
            assert np.isfinite(h[f"{c}/k{k}"]).all(), (c, k)
    assert (h["q_select/k16"] == h["q_select"]).all() and (h["val_mse/k16"] == h["val_mse"]).all()
    assert not np.allclose(h["q_select/k4"], h["q_select"])
    ps = r.prefix_scores()
    assert ps["k"].tolist() == [4, 8, 16] and np.isfinite(ps[["val_mse", "q_select", "q_report"]]).all().all()
    e4 = r.prefix_embeddings(4)
    assert e4.shape == (64, 4) and np.array_equal(e4.values, r.embeddings.values[:, :4])
    assert r.embeddings.attrs["prefixes"] == [4, 8, 16]
    # selection on a prefix curve
    s = train_compressor(fused, labels, prefixes=[4, 8], select_prefix=4, **TINY)
    best = s.history.loc[s.history["q_select/k4"].idxmax()]
    assert s.selected_epoch == best["epoch"] and s.q_report == best["q_report/k4"] and s.select_prefix == 4


def _planted(n=160, d=40, seed=0):
    rng = np.random.default_rng(seed)
    lat = rng.normal(size=(n, 4)) * np.array([4.0, 3.0, 2.0, 1.5])
    x = lat @ rng.normal(size=(4, d)) + 0.05 * rng.normal(size=(n, d))
    return xr.DataArray(x.astype(np.float32), dims=("sample", "feature"),
                        coords={"sample": [f"p{i:03d}" for i in range(n)]},
                        attrs={"slices": {"a": [0, 25], "b": [25, d]}})


def test_matryoshka_prefix_beats_truncated_plain_code_on_planted_structure():
    f = _planted()
    kw = dict(hidden=32, out_dim=16, epochs=20, eval_every=20, lr=3e-3, batch_size=16, progress=False)
    mat = train_compressor(f, None, prefixes=(4, 8, 16), **kw)
    plain = train_compressor(f, None, **kw)
    xv = torch.from_numpy(f.sel(sample=plain.val_ids).values)
    with torch.no_grad():
        m = plain.model.eval()
        plain_k4 = float((m.decode(m.encode(xv), 4) - xv).pow(2).mean())
    mat_k4 = float(mat.history["val_mse/k4"].iloc[-1])
    assert mat_k4 < 0.75 * plain_k4, (mat_k4, plain_k4)


@pytest.mark.parametrize("prefixes, msg", [((8, 4), "not sorted"), ((4, 4, 8), "repeat"), ((4, 32), "outside"),
                                           ((0, 4), "outside"), ((4.5,), "not an integer"), ((), "empty"),
                                           (16, "sequence")])
def test_bad_prefixes_are_clear_errors_before_any_work(prefixes, msg):
    with pytest.raises(DataError, match=msg):
        train_compressor("/nonexistent/emb.zarr", None, out_dim=16, prefixes=prefixes, progress=False)


def test_check_prefixes_and_select_prefix():
    assert check_prefixes(None, 16) is None
    assert check_prefixes((4, np.int64(8)), 16) == (4, 8, 16)
    assert check_prefixes([16], 16) == (16,)
    with pytest.raises(DataError, match="select_prefix"):
        train_compressor("/nonexistent/emb.zarr", None, out_dim=16, prefixes=(4,), select_prefix=8)
    with pytest.raises(DataError, match="select_prefix"):
        train_compressor("/nonexistent/emb.zarr", None, out_dim=16, select_prefix=16)


def test_resume_with_other_prefixes_is_refused(data, tmp_path):
    fused, _ = data
    kw = dict(TINY, keep_checkpoints="all")
    full = train_compressor(fused, None, out=tmp_path / "m", prefixes=(4, 8), **kw)
    assert full.checkpoint is not None and full.checkpoint.exists()
    (tmp_path / "m" / "checkpoints" / "epoch_0004.pt").unlink()   # interrupted after epoch 2
    with pytest.raises(ValueError, match="prefixes"):
        train_compressor(fused, None, out=tmp_path / "m", prefixes=(4,), **kw)
    with pytest.raises(ValueError, match="prefixes"):
        train_compressor(fused, None, out=tmp_path / "m", **kw)
    # the same prefixes resume from epoch 2 and reproduce the uninterrupted run
    again = train_compressor(fused, None, out=tmp_path / "m", prefixes=(4, 8), **kw)
    cols = ["epoch", "train_loss", "val_mse/k4", "val_mse/k8"]
    assert again.history[cols].equals(full.history[cols])


def test_cli_train_prefix(tmp_path):
    from typer.testing import CliRunner

    from eoembed.cli import app

    emb, labels = synthetic_embeddings(48, seed=1)
    store = write_store(tmp_path / "emb.zarr", emb)
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(store), "--epochs", "2", "--eval-every", "2", "--hidden", "8",
                            "--out-dim", "6", "--prefix", "2", "--prefix", "4", "--out", str(tmp_path / "cli"),
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "prefix k=2" in r.output and "prefix k=6" in r.output
    r = runner.invoke(app, ["train", str(store), "--out-dim", "6", "--prefix", "8", "--no-progress",
                            "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "outside" in r.output and "Traceback" not in r.output
