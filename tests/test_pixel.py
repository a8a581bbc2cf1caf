"""eoembed.pixel: d-pixel series, encoder, Barlow Twins pretraining (resume), bucket inference, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import eoembed.pixel as ep
from eoembed.errors import DataError

KW = dict(batch_size=32, progress=False, threads=1)


@pytest.fixture(scope="module")
def dense():
    return ep.sample_series(160, seed=1)


@pytest.fixture(scope="module")
def trained(dense):
    return ep.pretrain(dense, steps=3, **KW)


def _series(n_s2, n_s1, t=20, seed=0, empty_rows=()):
    """Pixels with exactly n_s2[i] / n_s1[i] valid observations out of t (random days, sorted)."""
    rng = np.random.default_rng(seed)
    n = len(n_s2)
    s2 = rng.uniform(300, 3000, (n, t, 10)).astype(np.float32)
    s1 = rng.uniform(-20, -5, (n, t, 2)).astype(np.float32)
    doy = np.asarray([np.sort(rng.choice(np.arange(1, 366), t, replace=False)) for _ in range(n)])
    v2 = np.zeros((n, t), bool)
    v1 = np.zeros((n, t), bool)
    for i in range(n):
        v2[i, rng.choice(t, n_s2[i], replace=False)] = True
        v1[i, rng.choice(t, n_s1[i], replace=False)] = True
    return ep.make_series([f"p{i}" for i in range(n)], s2, doy, s1, doy, s2_valid=v2, s1_valid=v1,
                          s1_orbit=rng.integers(1, 3, (n, t)), empty="keep", attrs={"source": "test.zarr"})


# ------------------------------------------------------------------------------------------------------- loss
def test_barlow_twins_minimal_for_identical_views():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(256, 8, generator=g)
    q, _ = torch.linalg.qr(z - z.mean(0))           # decorrelated, centred columns
    assert float(ep.barlow_twins_loss(q, q)) < 1e-6  # the global minimum (the loss is >= 0)
    for scale in (0.1, 0.5, 1.0):
        noisy = q + scale * q.std() * torch.randn(q.shape, generator=g)
        assert float(ep.barlow_twins_loss(q, noisy)) > 10 * float(ep.barlow_twins_loss(q, q)) + 1e-5
    # any z: identical views have C_ii = 1, only the off-diagonal term remains; other views cost more
    c = ep.cross_correlation(z, z)
    assert torch.allclose(torch.diagonal(c), torch.ones(8), atol=1e-4)
    assert float(ep.barlow_twins_loss(z, z)) < float(ep.barlow_twins_loss(z, z + torch.randn(z.shape, generator=g)))


def test_pretraining_loss_decreases(dense):
    res = ep.pretrain(dense, steps=24, **KW)
    h = res.history["loss"].to_numpy()
    assert len(h) == 24 and np.isfinite(h).all()
    assert h[-6:].mean() < 0.8 * h[:3].mean()
    assert res.n_params == res.encoder.n_params == ep.sizes().loc["tiny", "n_params_enc"]
    assert res.precision == "float32" and res.pixels_seen == 24 * 32


def test_resume_after_interrupt_gives_same_state(dense, tmp_path):
    full = ep.pretrain(dense, steps=6, out=tmp_path / "full", checkpoint_every=1, **KW)

    def stop(row):
        if row["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ep.pretrain(dense, steps=6, out=tmp_path / "cut", checkpoint_every=1, callbacks=[stop], **KW)
    ck = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 3 and ck["precision"]["precision"] == "float32"
    resumed = ep.pretrain(dense, steps=6, out=tmp_path / "cut", checkpoint_every=1, **KW)
    a, b = full.encoder.state_dict(), resumed.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert np.array_equal(full.history["loss"].to_numpy(), resumed.history["loss"].to_numpy())
    # other settings on the same folder: refused, naming the setting
    with pytest.raises(DataError, match="lr"):
        ep.pretrain(dense, steps=6, out=tmp_path / "cut", lr=1e-2, **KW)
    enc = ep.load_encoder(tmp_path / "cut")
    assert all(torch.equal(enc.state_dict()[k], b[k]) for k in b)


def test_views_use_only_valid_observations():
    ds = _series([3, 12, 20], [5, 0, 9])
    arr = {"values": ds["s2"].values, "doy": ds["s2_doy"].values.astype(np.int64), "valid": ds["s2_valid"].values,
           "orbit": np.zeros((3, 20), np.int64)}
    v = ep.draw_view(arr, 10, np.random.default_rng(0))
    assert v["mask"].sum(1).tolist() == [3, 10, 10]           # fewer than L when fewer valid
    for i in range(3):
        doys = v["doy"][i][v["mask"][i]]
        assert set(doys) <= set(arr["doy"][i][arr["valid"][i]]) and np.all(np.diff(doys) >= 0)
        assert np.isfinite(v["values"][i]).all()


# ---------------------------------------------------------------------------------------------------- buckets
def test_buckets_never_drop_an_observation():
    k = np.array([0, 1, 7, 8, 9, 16, 17, 255, 256, 257, 300])
    b = ep.bucket_length(k)
    assert b.tolist() == [0, 8, 8, 8, 16, 16, 24, 256, 256, 264, 304]
    ds = _series([1, 5, 8, 13, 20], [20, 2, 8, 0, 9])
    arr = {"values": ds["s2"].values, "doy": ds["s2_doy"].values.astype(np.int64), "valid": ds["s2_valid"].values,
           "orbit": np.zeros(ds["s2_doy"].shape, np.int64)}
    kk = arr["valid"].sum(1)
    for fill in ("resample", "mask"):
        for i in range(5):
            length = int(ep.bucket_length(kk[i:i + 1])[0])
            p = ep.pack(arr, np.array([i]), length, fill)
            used = p["doy"][0][p["mask"][0]]
            want = arr["doy"][i][arr["valid"][i]]
            assert sorted(set(used)) == sorted(set(want))          # every observation, nothing else
            if fill == "resample":
                assert p["mask"][0].all() and np.all(np.diff(used) >= 0)
                assert np.bincount(ep.midpoint_indices(kk[i], length)).min() >= 1


def test_bucket_output_equals_padding(trained):
    ds = _series([8, 16, 5, 13, 20, 8], [8, 8, 3, 0, 20, 16], seed=2)
    enc = trained.encoder
    pad = ep.encode(enc, ds, mode="pad", progress=False)
    masked = ep.encode(enc, ds, fill="mask", batch_size=2, progress=False)
    np.testing.assert_allclose(masked.values, pad.values, atol=2e-5)
    res = ep.encode(enc, ds, progress=False)                 # midpoint resampling (TESSERA)
    fit = [0, 1, 5]                                          # k = a bucket length in every modality
    np.testing.assert_allclose(res.values[fit], pad.values[fit], atol=2e-5)
    assert masked.attrs["n_batches"] > pad.attrs["n_batches"]
    assert res.attrs["sequence_slots"] < pad.attrs["sequence_slots"]


def test_empty_pixels_flagged_nan(trained, tmp_path):
    ds = _series([4, 0, 9], [3, 0, 0])
    da = ep.encode(trained.encoder, ds, out=tmp_path / "emb.zarr", progress=False)
    assert da["no_obs"].values.tolist() == [False, True, False]
    assert np.isnan(da.values[1]).all() and np.isfinite(da.values[[0, 2]]).all()
    assert da.attrs["n_no_obs"] == 1 and da.attrs["no_obs_ids"] == ["p1"]
    from eoembed.extract import open_embeddings
    import zarr
    stored = open_embeddings(tmp_path / "emb.zarr")["pixel_encoder"]
    np.testing.assert_array_equal(stored.values, da.values)
    assert zarr.open_group(str(tmp_path / "emb.zarr"))["pixel_encoder/no_obs"][:].tolist() == [0, 1, 0]
    with pytest.raises(DataError, match="'p1'"):
        ep.pretrain(ds, steps=1, batch_size=2, progress=False)
    res = ep.pretrain(ds, steps=1, batch_size=2, empty="drop", progress=False)
    assert res.settings["n_dropped_empty"] == 1 and res.n_pixels == 2


# -------------------------------------------------------------------------------------------------- bad inputs
def test_bad_inputs_named():
    good = _series([5, 5], [5, 5])
    s2, doy = good["s2"].values.copy(), good["s2_doy"].values.copy()
    with pytest.raises(DataError, match=r"pixel 'p0'.*no valid|no valid.*'p0'"):
        ep.make_series(["p0", "p1"], np.full((2, 3, 10), np.nan, np.float32), np.ones((2, 3)), attrs={})
    bad = doy.copy()
    i = np.flatnonzero(good["s2_valid"].values[1])
    bad[1, i[1]], bad[1, i[2]] = bad[1, i[2]], bad[1, i[1]]
    with pytest.raises(DataError, match=r"pixel 'p1': s2 days of year are not sorted.*test.zarr"):
        ep.make_series(["p0", "p1"], s2, bad, s2_valid=good["s2_valid"].values, attrs={"source": "test.zarr"})
    bad = doy.copy()
    bad[0, np.flatnonzero(good["s2_valid"].values[0])[-1]] = 367
    with pytest.raises(DataError, match=r"pixel 'p0'.*367.*outside 1\.\.366"):
        ep.make_series(["p0", "p1"], s2, bad, s2_valid=good["s2_valid"].values)
    with pytest.raises(DataError, match=r"s2 values have 9 bands but 10 band names"):
        ep.make_series(["p0", "p1"], s2[..., :9], doy, s2_valid=good["s2_valid"].values)
    nine = ep.make_series(["p0", "p1"], s2[..., :9], doy, s2_valid=good["s2_valid"].values,
                          s2_bands=list(ep.S2_BANDS[:9]), attrs={"source": "nine.parquet"})
    with pytest.raises(DataError, match=r"9 bands.*nine.parquet.*10 bands"):
        ep.encode(ep.PixelEncoder("tiny"), nine, progress=False)
    with pytest.raises(ValueError, match="bf16"):
        ep.pretrain(good, steps=1, batch_size=2, precision="bf16", device="cpu", progress=False)


# ------------------------------------------------------------------------------------------ sources and outputs
def test_generated_sample_as_series(sample_cube):
    from eoembed.data import cube_to_pixels
    px = cube_to_pixels(sample_cube.isel(sample=slice(0, 8)), n_per_sample=8)
    ds = ep.from_dpixels(px, empty="keep")
    assert ds.sizes["s2_obs"] == 4 and ds.sizes["s2_band"] == 10 and ds.sizes["s1_band"] == 2
    doy = np.where(ds["s2_valid"].values, ds["s2_doy"].values, 0)
    assert (np.diff(np.sort(doy, 1), axis=1) >= 0).all()
    res = ep.pretrain(ds, steps=2, empty="drop", **KW)          # views hold the <= 4 valid seasons
    assert np.isfinite(res.history["loss"]).all()


def test_lazy_store_chunks_feed_pretrain_and_evaluate_distill(dense, trained, tmp_path):
    path = ep.save_series(dense, tmp_path / "px.zarr", chunk=64)
    lazy = ep.open_series(path)
    assert lazy["s2"].chunks is not None and lazy["s2"].chunks[0][0] == 64
    res = ep.pretrain(lazy, steps=3, chunk_size=64, **KW)
    assert len(res.history) == 3
    da = ep.encode(trained.encoder, lazy, out=tmp_path / "emb.zarr", chunk_size=50, progress=False)
    from eoembed.bench import evaluate
    from eoembed.compress import distill
    from eoembed.extract import open_embeddings
    emb = open_embeddings(tmp_path / "emb.zarr")["pixel_encoder"]
    labels = dense[["biomass"]].to_dataframe()[["biomass"]].set_index(dense["id"].values)
    labels.index.name = "id"
    labels.attrs["task_types"] = {"biomass": "regression"}
    ev = evaluate(emb, labels, folds=2, epochs=1, progress=False)
    assert np.isfinite(ev.per_task.loc["biomass", "q_stat"])
    st = distill(tmp_path / "emb.zarr", prefixes=(16, 32), out_dim=32, epochs=2, teacher_model="pixel_encoder",
                 progress=False)
    assert st.embeddings.shape == (da.sizes["sample"], 32)


def test_worldcereal_series_and_grid_product(shared_dir, trained, tmp_path):
    wc = shared_dir / "data" / "worldcereal"
    px = ep.worldcereal_pixel_series(wc / "test_public_extractions.parquet")
    assert px.sizes["pixel"] == 500 and px.sizes["s2_obs"] == 12 and "sampling_label" in px
    cube = ep.worldcereal_cube_series(wc / "worldcereal_preprocessed_inputs.nc", window=(0, 12, 0, 10))
    assert cube.sizes["pixel"] == 120 and "B8A" in cube.attrs["missing_bands"]
    res = ep.pretrain(cube, steps=2, **KW)
    prod = tmp_path / "grid.int8.zarr"
    da = ep.encode(res.encoder, cube, product=prod, progress=False)
    from eoembed.product import open_product
    p = open_product(prod)
    assert p.kind == "grid" and p.embeddings.shape == (12, 10, res.encoder.out_dim)
    deq = np.asarray(p.embeddings.values, np.float32).reshape(120, -1)
    cos = (deq * da.values).sum(1) / np.linalg.norm(deq, axis=1) / np.linalg.norm(da.values, axis=1)
    assert cos.min() > 0.999


def test_sizes_and_cli(tmp_path):
    from typer.testing import CliRunner
    from eoembed.cli import app

    t = ep.sizes()
    assert list(t.index) == ["tiny", "N", "S", "M", "L"]
    assert abs(t.loc["S", "n_params_enc"] - 7.1e6) / 7.1e6 < 0.03       # the paper's student S: 7.1 M
    assert t["n_params_enc"].is_monotonic_increasing
    run = CliRunner().invoke(app, ["pretrain", "sample:64", "--out", str(tmp_path / "run"), "--steps", "2",
                                   "--batch-size", "16", "--no-progress", "--threads", "1"])
    assert run.exit_code == 0, run.output
    assert (tmp_path / "run" / "encoder.pt").exists()
    enc = CliRunner().invoke(app, ["encode", str(tmp_path / "run"), "sample:64", "--out", str(tmp_path / "e.zarr"),
                                   "--no-progress"])
    assert enc.exit_code == 0, enc.output
    assert "encoded 64 pixels" in enc.output
    bad = CliRunner().invoke(app, ["pretrain", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "nope.parquet" in bad.output


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    """Two CPU processes (gloo) under torchrun: DDP joins, rank 0 writes the run; the launcher is torch's own."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29871",
           "-m", "eoembed.cli", "pretrain", "sample:128", "--out", str(tmp_path / "ddp"), "--steps", "3",
           "--batch-size", "32", "--device", "cpu", "--no-progress", "--checkpoint-every", "1"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    ck = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 3 and ck["settings"]["world_size"] == 2
    enc = ep.load_encoder(tmp_path / "ddp")
    assert enc.n_params == ep.sizes().loc["tiny", "n_params_enc"]


def test_pretrain_and_score_keys():
    """The per-run function of the scaling sweep: documented keys, D = d-pixels seen, unknown keys refused."""
    r = ep.pretrain_and_score({"data": "sample:96", "steps": 2, "batch_size": 32, "folds": 2, "threads": 1,
                               "d_model": 16, "d_ffn": 32, "label": "biomass", "task_type": "regression"})
    for k in ("n_params_enc", "n_params_proj", "n_pixels", "steps", "L_ref", "final_loss", "score", "seconds"):
        assert k in r and np.isfinite(r[k]), k
    assert r["n_pixels"] == 64 and r["n_train_pixels"] == 96 and r["steps"] == 2 and r["L_ref"] == 12.0
    assert r["n_params_enc"] < ep.sizes().loc["tiny", "n_params_enc"]
    assert 0.0 <= r["score"] <= 1.0 and r["score_metric"] == "max(0, R^2)"
    with pytest.raises(DataError, match="n_enc"):
        ep.pretrain_and_score({"n_enc": 1000})
