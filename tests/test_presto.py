"""Presto re-implementation: strict loading, reference vectors, inputs, cube and pixel paths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eoembed.errors import DataError, WeightsMismatchError, WeightsNotFound
from eoembed.models.presto import (
    PRESTO_BANDS, PRESTO_RAW_BANDS, SEASON_MONTHS, PrestoBackbone, build_presto, load_presto_weights, pixel_grid,
    presto_embed_pixels, presto_inputs, presto_normalise,
)
from eoembed.models.presto_nn import PRESTO_ADD, PRESTO_DIV, month_table, sinusoid_table

CUBE_KEYS = ["s1/VV", "s1/VH"] + [f"s2l1c/{b}" for b in
                                  ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
                                   "B11", "B12")]


@pytest.fixture(scope="module")
def presto_dir(shared_dir) -> Path:
    path = shared_dir / "weights" / "presto"
    if not (path / "default_model.pt").is_file():
        pytest.skip(f"{path}/default_model.pt is absent")
    return path


@pytest.fixture(scope="module")
def checkpoint(presto_dir) -> dict:
    return torch.load(presto_dir / "default_model.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def presto(presto_dir):
    return build_presto(presto_dir / "default_model.pt")


@pytest.fixture(scope="module")
def reference(presto_dir):
    return dict(np.load(presto_dir / "reference_vectors.npz"))


def _cube(b=2, h=20, w=24, seed=0):
    rng = np.random.default_rng(seed)
    s1 = rng.normal(-12, 3, (b, 4, 2, h, w))
    s2 = rng.uniform(100, 4000, (b, 4, 13, h, w))
    return np.concatenate([s1, s2], 2).astype(np.float32)


# ------------------------------------------------------------------------------------------- weights
def test_strict_load_and_fixed_tables(presto, checkpoint):
    assert presto.weights_id.startswith("default_model.pt@sha256:")
    assert sum(p.numel() for p in presto.encoder.parameters()) > 400_000
    meta = presto.metadata
    assert meta["weights"] == presto.weights_id and meta["temporal"] == "pixel_series" and meta["licence"] == "MIT"
    assert presto.spec.embed_dim == 128 and meta["presto_band_mapping"]["B8A"] == "s2l1c/B8A"
    assert meta["weights_info"]["dropped_prefixes"] == ["decoder."]
    # our own position / month tables equal the stored ones (so random init uses the same encodings)
    assert torch.equal(sinusoid_table(24, 64), checkpoint["encoder.pos_embed"][0])
    assert torch.equal(month_table(32), checkpoint["encoder.month_embed.weight"])
    for k, v in presto.encoder.state_dict().items():
        assert torch.equal(v, checkpoint["encoder." + k]), k


def test_mismatch_lists_every_problem(checkpoint):
    state = dict(checkpoint)
    del state["encoder.blocks.1.mlp.fc2.bias"]
    state["encoder.extra_head.weight"] = torch.zeros(3)
    state["stray.tensor"] = torch.zeros(1)
    state["encoder.latlon_embed.weight"] = torch.zeros(128, 4)
    with pytest.raises(WeightsMismatchError) as err:
        load_presto_weights(PrestoBackbone(), state)
    msg = str(err.value)
    for name in ("encoder.blocks.1.mlp.fc2.bias", "encoder.extra_head.weight", "stray.tensor",
                 "encoder.latlon_embed.weight", "(128, 4)", "(128, 3)"):
        assert name in msg
    assert "missing 1" in msg and "unexpected 2" in msg and "mis-shaped 1" in msg
    assert "decoder" not in msg  # decoder tensors are dropped explicitly, by prefix


def test_tiny_size_rejects_full_checkpoint(presto_dir):
    with pytest.raises(WeightsMismatchError, match="mis-shaped"):
        build_presto(presto_dir / "default_model.pt", size="tiny")
    with pytest.raises(WeightsNotFound, match="not found"):
        build_presto(presto_dir / "no_such_model.pt")


def test_registry_load_model(presto_dir, monkeypatch):
    from eoembed.models import get_model, list_models, load_model

    spec = get_model("presto")
    assert spec.temporal == "pixel_series" and spec.embed_dim == 128 and spec.licence == "MIT"
    assert spec.weight_sources[0].filename == "default_model.pt" and "presto" in set(list_models()["name"])
    monkeypatch.setenv("EOEMBED_WEIGHTS", str(presto_dir))
    emb = load_model("presto", weights="auto")
    assert emb.weights_id.startswith("default_model.pt@sha256:")
    assert emb.weights_info["dropped"] and all(k.startswith("decoder.") for k in emb.weights_info["dropped"])
    tiny = load_model("presto", weights=None, size="tiny")
    assert tiny.weights_id == "random" and tiny.spec.embed_dim == 32 and len(tiny.encoder.blocks) == 1
    with pytest.raises(WeightsMismatchError):
        load_model("presto", weights=presto_dir / "default_model.pt", size="tiny")


# -------------------------------------------------------------------------------- reference vectors
def test_reference_vectors(presto, reference):
    r = {k: torch.from_numpy(v) for k, v in reference.items() if k != "channels"}
    assert list(reference["channels"]) == list(PRESTO_BANDS)
    with torch.no_grad():
        plain = presto.encoder(r["x"], r["dynamic_world"], r["latlons"], r["month"])
        masked = presto.encoder(r["x"], r["dynamic_world"], r["latlons"], r["month"], mask=r["mask"])
    assert np.abs(plain.numpy() - reference["embedding"]).max() < 1e-5
    assert np.abs(masked.numpy() - reference["embedding_masked"]).max() < 1e-5


def test_reference_through_pixel_path(presto, reference):
    """De-normalised raw inputs through presto_embed_pixels (NDVI recomputed) give the reference too."""
    x = reference["x"].astype(np.float64)
    raw = x[..., :16] * np.asarray(PRESTO_DIV[:16]) - np.asarray(PRESTO_ADD[:16])
    np.testing.assert_allclose(presto_normalise(raw)[..., 16], reference["x"][..., 16], atol=1e-5)
    mask = reference["mask"][..., :16].astype(bool)
    out = presto_embed_pixels(raw, PRESTO_RAW_BANDS, reference["month"], reference["latlons"], mask=mask,
                              batch_size=10, model=presto, dynamic_world=reference["dynamic_world"],
                              progress=False)
    assert out.shape == (32, 128) and out.dtype == np.float32
    assert np.abs(out - reference["embedding_masked"]).max() < 1e-4


# ---------------------------------------------------------------------------------------- inputs
def test_normalisation_hand_computed():
    raw = np.zeros(16)
    raw[0], raw[1] = -10.0, -20.0  # VV, VH dB
    raw[PRESTO_BANDS.index("B4")], raw[PRESTO_BANDS.index("B8")] = 1000.0, 3000.0
    raw[PRESTO_BANDS.index("temperature_2m")] = 300.0
    raw[PRESTO_BANDS.index("total_precipitation")] = 0.06
    raw[PRESTO_BANDS.index("elevation")], raw[PRESTO_BANDS.index("slope")] = 500.0, 5.0
    out = presto_normalise(raw)
    expect = {"VV": 0.6, "VH": 0.2, "B4": 0.1, "B8": 0.3, "temperature_2m": (300 - 272.15) / 35,
              "total_precipitation": 2.0, "elevation": 0.25, "slope": 0.1, "NDVI": 0.5, "B2": 0.0}
    for band, value in expect.items():
        assert out[PRESTO_BANDS.index(band)] == pytest.approx(value, abs=1e-6), band
    with pytest.raises(DataError, match="16 raw channels"):
        presto_normalise(np.zeros(17))


def test_inputs_masks_missing_bands_and_months():
    vals = np.full((3, 2, 3), 1000.0)
    vals[..., 2] = -12.0  # VV in dB
    vals[1, 0, 2] = np.nan
    vals[2, 1, 0] = 65535
    inp = presto_inputs(vals, ["s2l2a/B04", "B08", "VV"], 11, [[50.0, 4.0], [np.nan, np.nan], [0.0, 0.0]],
                        nodata=65535)
    m = inp["mask"]
    present = [PRESTO_BANDS.index(b) for b in ("B4", "B8", "VV", "NDVI")]
    absent = [i for i in range(17) if i not in present]
    assert m[..., absent].all() and not m[0][..., present].any()
    assert m[1, 0, PRESTO_BANDS.index("VV")] and m[2, 1, PRESTO_BANDS.index("B4")]
    assert m[2, 1, PRESTO_BANDS.index("NDVI")] and inp["x"][m].max() == 0
    assert inp["month"].tolist() == [[11, 0]] * 3
    assert (inp["dynamic_world"] == 9).all() and inp["latlon_valid"].tolist() == [True, False, True]
    with pytest.raises(DataError, match="NDVI is derived"):
        presto_inputs(vals, ["B4", "B8", "NDVI"], 0, [0.0, 0.0])
    with pytest.raises(DataError, match="3 bands but 2 band names"):
        presto_inputs(vals, ["B4", "B8"], 0, [0.0, 0.0])
    with pytest.raises(DataError, match="0..11"):
        presto_inputs(vals, ["B4", "B8", "VV"], [3, 12], [0.0, 0.0])


# ------------------------------------------------------------------------------------ cube & tiny
def test_tiny_cube_shapes_and_determinism():
    model = build_presto(None, size="tiny")
    assert model.weights_id == "random" and model.metadata["temporal"] == "pixel_series"
    x = _cube()
    inp = model.prepare(x, CUBE_KEYS, np.array([50.0, -3.0]), np.array([4.0, 30.0]))
    assert inp["x"].shape == (2, 16 * 16, 4, 17)
    assert inp["month"][0, 0].tolist() == list(SEASON_MONTHS)
    with torch.no_grad():
        e1, e2 = model(**inp), model(**model.prepare(x, CUBE_KEYS, np.array([50.0, -3.0]), np.array([4.0, 30.0])))
    assert e1.shape == (2, 32) and torch.equal(e1, e2) and torch.isfinite(e1).all()
    # ERA5 / SRTM / Dynamic World are masked for cubes
    era5 = [PRESTO_BANDS.index(b) for b in ("temperature_2m", "total_precipitation", "elevation", "slope")]
    assert inp["mask"][..., era5].all() and (inp["dynamic_world"] == 9).all()
    allpix = build_presto(None, size="tiny", pixels="all")
    assert allpix.prepare(x, CUBE_KEYS, None, None)["x"].shape == (2, 20 * 24, 4, 17)
    pix = presto_embed_pixels(np.full((5, 3, 2), -12.0), ["VV", "VH"], 0, [10.0, 10.0], model=model,
                              progress=False)
    assert pix.shape == (5, 32)


def test_cube_real_weights_missing_band_is_masked(presto):
    x = _cube(b=2, h=16, w=16, seed=1)
    lat, lon = np.array([50.0, 10.0]), np.array([4.0, np.nan])
    with torch.no_grad():
        full = presto(**presto.prepare(x, CUBE_KEYS, lat, lon))
        x0 = x.copy()
        x0[:, :, CUBE_KEYS.index("s2l1c/B8A")] = 0  # S2 nodata
        nodata = presto(**presto.prepare(x0, CUBE_KEYS, lat, lon))
        keep = [i for i, k in enumerate(CUBE_KEYS) if k != "s2l1c/B8A"]
        absent = presto(**presto.prepare(x[:, :, keep], [CUBE_KEYS[i] for i in keep], lat, lon))
    assert full.shape == (2, 128) and torch.isfinite(full).all()
    assert torch.allclose(nodata, absent, atol=1e-6) and not torch.allclose(full, absent, atol=1e-3)
    assert "B8A" in presto.metadata["masked_bands"]


def test_cube_without_its_s2_modality_masks_all_s2_under_fill_mean():
    model = build_presto(None, size="tiny")
    x = _cube(b=2, h=8, w=8)
    s1 = x[:, :, :2]
    with pytest.raises(DataError, match="fill-mean"):
        model.prepare(s1, CUBE_KEYS[:2])
    with torch.no_grad():
        absent = model(**model.prepare(s1, CUBE_KEYS[:2], missing_bands="fill-mean"))
        x[:, :, 2:] = 0  # S2 nodata
        nodata = model(**model.prepare(x, CUBE_KEYS))
    torch.testing.assert_close(absent, nodata)
    assert "B2" in model.metadata["masked_bands"]


def test_pixel_grid():
    rows, cols = pixel_grid(264, 264, "grid:16")
    assert len(rows) == 16 and rows[0] == 8 and rows[-1] == 255
    assert len(pixel_grid(10, 10, "grid:16")[0]) == 10
    with pytest.raises(ValueError, match="grid:N"):
        pixel_grid(10, 10, "random")


def test_bad_cube_input():
    model = build_presto(None, size="tiny")
    x = _cube(b=1, h=8, w=8)
    with pytest.raises(DataError, match="15 bands but 14 band keys"):
        model.prepare(x, CUBE_KEYS[:-1], None, None)
    with pytest.raises(DataError, match="4 seasons"):
        model.prepare(x[:, :3], CUBE_KEYS, None, None)
    with pytest.raises(DataError, match="s2l2a"):
        model.prepare(x[:, :, :2], CUBE_KEYS[:2], None, None)
    with pytest.raises(ValueError, match="s2="):
        build_presto(None, size="tiny", s2="s2")
    l2a = build_presto(None, size="tiny", preset="l2a")
    keys = [k.replace("s2l1c", "s2l2a") for k in CUBE_KEYS if k != "s2l1c/B10"]
    keep = [i for i, k in enumerate(CUBE_KEYS) if k != "s2l1c/B10"]
    assert l2a(**l2a.prepare(x[:, :, keep], keys, None, None)).shape == (1, 32)


def test_pixel_path_real_worldcereal_pixels(presto, shared_dir):
    path = shared_dir / "data" / "worldcereal" / "test_public_extractions.parquet"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    import pandas as pd

    df = pd.read_parquet(path).iloc[:24]
    bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]

    def col(prefix, t):
        (name,) = [c for c in df.columns if c.startswith(f"{prefix}-ts{t}-")]
        return df[name].to_numpy(dtype=np.float64)

    opt = np.stack([np.stack([col(f"OPTICAL-{b}", t) for b in bands], -1) for t in range(12)], 1)
    sar = np.stack([np.stack([col(f"SAR-{b}", t) for b in ("VV", "VH")], -1) for t in range(12)], 1)
    sar_db = np.where((sar == 65535) | (sar <= 0), np.nan, 20 * np.log10(np.where(sar > 0, sar, 1.0)) - 83)
    values = np.concatenate([opt, sar_db], -1)
    args = (values, bands + ["VV", "VH"], 11, df[["lat", "lon"]].to_numpy())  # series start in December
    e1 = presto_embed_pixels(*args, nodata=65535, model=presto, batch_size=10, progress=False)
    e2 = presto_embed_pixels(*args, nodata=65535, model=presto, batch_size=24, progress=False)
    assert e1.shape == (24, 128) and np.isfinite(e1).all()
    np.testing.assert_allclose(e1, e2, atol=1e-5)


def test_empty_series_embeds_to_nan():
    model = build_presto(None, size="tiny")
    vals = np.array([[[np.nan, np.nan]], [[-10.0, -15.0]]])
    out = presto_embed_pixels(vals, ["VV", "VH"], [0], [[np.nan, np.nan], [np.nan, np.nan]], model=model,
                              progress=False)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


# ------------------------------------------------------------------- per-pixel API: months and units
def _raw_reference(reference):
    """The reference inputs back in raw units (S1 dB, S2 reflectance x 1e4, K, m, ...), 16 channels."""
    x = reference["x"].astype(np.float64)
    return x[..., :16] * np.asarray(PRESTO_DIV[:16]) - np.asarray(PRESTO_ADD[:16])


def test_months_shapes_without_weights():
    vals = np.full((3, 2, 2), -10.0)
    ll = [0.0, 0.0]
    start = presto_inputs(vals, ["VV", "VH"], np.array([0, 5, 11]), ll)["month"]
    assert start.tolist() == [[0, 1], [5, 6], [11, 0]]  # (N,): a start month per pixel, as the original Presto
    assert presto_inputs(vals, ["VV", "VH"], np.array([4, 9]), ll)["month"].tolist() == [[4, 9]] * 3  # (T,)
    assert presto_inputs(vals, ["VV", "VH"], 11, ll)["month"].tolist() == [[11, 0]] * 3
    square = np.full((2, 2, 2), -10.0)
    with pytest.raises(DataError, match=r"ambiguous.*2 pixels and 2 time steps"):
        presto_inputs(square, ["VV", "VH"], np.array([3, 4]), ll)
    assert presto_inputs(square, ["VV", "VH"], np.array([[3, 4], [3, 4]]), ll)["month"].shape == (2, 2)
    with pytest.raises(DataError, match="whole month"):
        presto_inputs(vals, ["VV", "VH"], np.array([0.5, 1, 2]), ll)
    with pytest.raises(DataError, match=r"shape \(3,\) .*got shape \(4,\)"):
        presto_inputs(vals, ["VV", "VH"], np.arange(4), ll)
    # a cube batch whose pixel count equals its 4 seasons (1 sample, 2 x 2 pixels) is not ambiguous
    model = build_presto(None, size="tiny")
    inp = model.prepare(_cube(b=1, h=2, w=2), CUBE_KEYS, None, None)
    assert inp["month"].shape == (1, 4, 4) and inp["month"][0, :, :].tolist() == [list(SEASON_MONTHS)] * 4


def test_start_month_semantics_real_weights(presto, reference):
    raw, mask = _raw_reference(reference), reference["mask"][..., :16].astype(bool)
    month = reference["month"]
    consecutive = ((month[:, :1] + np.arange(12)) % 12 == month).all(1)
    assert consecutive.sum() == 30
    idx = np.flatnonzero(consecutive)
    kw = dict(mask=mask[idx], model=presto, dynamic_world=reference["dynamic_world"][idx], progress=False)
    args = (raw[idx], PRESTO_RAW_BANDS)
    by_start = presto_embed_pixels(*args, month[idx, 0], reference["latlons"][idx], **kw)
    # (N,) start months reproduce the original implementation's vectors
    assert np.abs(by_start - reference["embedding_masked"][idx]).max() < 1e-4
    by_step = presto_embed_pixels(*args, month[idx], reference["latlons"][idx], **kw)
    np.testing.assert_allclose(by_start, by_step, atol=1e-6)
    shifted = presto_embed_pixels(*args, (month[idx, 0] + 3) % 12, reference["latlons"][idx], **kw)
    assert np.abs(shifted - by_start).max() > 1e-2  # the month really enters the model
    # an int is the start month of every pixel; (T,) are the months of the steps for every pixel
    same = presto_embed_pixels(*args, 7, reference["latlons"][idx], **kw)
    np.testing.assert_allclose(same, presto_embed_pixels(*args, np.full(len(idx), 7), reference["latlons"][idx],
                                                         **kw), atol=1e-6)
    np.testing.assert_allclose(same, presto_embed_pixels(*args, (7 + np.arange(12)) % 12,
                                                         reference["latlons"][idx], **kw), atol=1e-6)
    with pytest.raises(DataError, match="ambiguous"):  # 12 pixels x 12 steps with a 1-D months array
        presto_embed_pixels(raw[:12], PRESTO_RAW_BANDS, month[:12, 0], reference["latlons"][:12], model=presto,
                            progress=False)


def test_unit_warnings_real_weights(presto, reference):
    import warnings

    raw = _raw_reference(reference)[:8]
    ll = reference["latlons"][:8]
    bands = list(PRESTO_RAW_BANDS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # right units: no warning
        good = presto_embed_pixels(raw, bands, 0, ll, model=presto, progress=False)
    s2 = [bands.index(b) for b in ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")]
    cases = {
        "multiply them by 10000": (s2, lambda v: v / 1e4),
        "10 \\* log10": ([0, 1], lambda v: 10 ** (v / 10)),
        "add 273.15": ([bands.index("temperature_2m")], lambda v: v - 273.15),
    }
    for match, (cols, convert) in cases.items():
        bad = raw.copy()
        bad[..., cols] = convert(bad[..., cols])
        with pytest.warns(UserWarning, match=match) as rec:
            out = presto_embed_pixels(bad, bands, 0, ll, model=presto, progress=False)
        assert len(rec) == 1 and rec[0].filename == __file__  # points at the caller's line
        assert np.abs(out - good).max() > 1e-3  # wrong units change the embedding: the warning matters
    # WorldCereal-style scaled SAR (dB = 20 log10(v) - 83) passed without conversion
    scaled = raw.copy()
    scaled[..., :2] = 10 ** ((scaled[..., :2] + 83) / 20)
    with pytest.warns(UserWarning, match="do not look like dB"):
        presto_embed_pixels(scaled, bands, 0, ll, model=presto, progress=False)
    cube = _cube(b=1, h=4, w=4)
    cube[:, :, 2:] /= 1e4  # S2 as 0..1 reflectance in a cube
    with pytest.warns(UserWarning, match="reflectance in 0..1"):
        presto.prepare(cube, CUBE_KEYS, None, None)
