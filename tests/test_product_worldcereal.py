"""Embeddings as data on real WorldCereal inputs (eoembed.product.worldcereal); skipped without ../shared.

Default tests embed a 20 x 20 px window of the cube (about 2 s of Presto on 2 CPU cores) and the 500 labelled
pixels (about 1 s); the whole 100 x 100 cube (about 40-50 s) is marked slow.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from eoembed.errors import DataError, DataFileNotFound, LabelError, WeightsNotFound

NC = "data/worldcereal/worldcereal_preprocessed_inputs.nc"
PQ = "data/worldcereal/test_public_extractions.parquet"
WEIGHTS = "weights/presto/default_model.pt"
WINDOW = (10, 30, 40, 60)


@pytest.fixture(scope="module")
def presto(shared_dir):
    from eoembed.models.presto import build_presto
    return build_presto(weights=shared_dir / WEIGHTS)


@pytest.fixture(scope="module")
def grid(shared_dir, tmp_path_factory):
    from eoembed.product import worldcereal_product
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # presto's unit checks must not fire on the converted inputs
        return worldcereal_product(shared_dir / NC, tmp_path_factory.mktemp("wc") / "grid.zarr",
                                   weights=shared_dir / WEIGHTS, window=WINDOW, progress=False)


@pytest.fixture(scope="module")
def pixels(shared_dir, tmp_path_factory):
    from eoembed.product import pixel_product
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", category=Warning, module="zarr")  # zarr's string-dtype notice
        return pixel_product(shared_dir / PQ, tmp_path_factory.mktemp("wc") / "pixels.zarr",
                             weights=shared_dir / WEIGHTS, progress=False)


def test_grid_product_layout(grid):
    assert grid.kind == "grid"
    assert dict(grid.codes.sizes) == {"y": 20, "x": 20, "feature": 128}
    assert grid.codes.dtype == np.int8 and grid.scales.dtype == np.float32
    assert grid.crs == "EPSG:32631"
    a = grid.ds.attrs
    assert a["model"] == "presto" and a["weights"].startswith("default_model.pt@sha256:559c9d76f525")
    assert a["precision"] == "int8" and a["compute_precision"] == "float32" and a["n_nodata"] == 0
    lat, lon = grid.ds["lat"].values, grid.ds["lon"].values
    assert lat.shape == lon.shape == (20, 20)
    assert (lat > 49.5).all() and (lat < 51.6).all() and (lon > 2.5).all() and (lon < 6.5).all()  # Belgium
    assert np.all(np.diff(grid.ds["y"].values) < 0) and np.all(np.diff(grid.ds["x"].values) > 0)
    assert np.isfinite(grid.embeddings.values).all()


def test_grid_region_equals_direct_embedding(grid, shared_dir, presto):
    from eoembed.models.presto import presto_embed_pixels
    from eoembed.product import worldcereal_series
    y0, x0 = WINDOW[0], WINDOW[2]
    rows, cols = (y0 + 4, y0 + 9), (x0 + 2, x0 + 7)
    s = worldcereal_series(shared_dir / NC, window=(*rows, *cols))
    direct = presto_embed_pixels(s["values"], s["bands"], s["start_month"], s["latlon"], model=presto,
                                 progress=False).reshape(5, 5, 128)
    ys, xs = s["y"], s["x"]
    region = grid.read_region((xs.min(), ys.min(), xs.max(), ys.max())).load()
    assert dict(region.codes.sizes) == {"y": 5, "x": 5, "feature": 128}
    np.testing.assert_array_equal(region.ds["y"].values, ys)
    got = region.embeddings.values
    bound = region.scales.values[..., None] / 2 + 1e-5
    assert (np.abs(got - direct) <= bound).all()
    cos = (got * direct).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(direct, axis=-1)
    assert cos.min() > 0.999


def _cube_with_empty_pixel(shared_dir, path):
    """A 6 x 6 crop of the real cube where pixel (2, 3) has no valid S1/S2 value (65535) in any month."""
    import xarray as xr
    ds = xr.open_dataset(shared_dir / NC, engine="h5netcdf").isel(y=slice(0, 6), x=slice(0, 6)).load()
    for v in ds.data_vars:
        if v.startswith(("S1-", "S2-")):
            a = ds[v].values.copy()
            a[:, 2, 3] = 65535
            ds[v] = (ds[v].dims, a, ds[v].attrs)
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def test_pixel_without_observation_is_masked_and_counted(shared_dir, tmp_path, presto):
    from eoembed.product import worldcereal_product, worldcereal_series
    nc = _cube_with_empty_pixel(shared_dir, tmp_path / "cube.nc")
    s = worldcereal_series(nc)
    assert s["has_obs"].sum() == 35 and not s["has_obs"][2 * 6 + 3]
    p = worldcereal_product(nc, tmp_path / "p.zarr", weights=shared_dir / WEIGHTS, progress=False)
    assert p.ds.attrs["n_nodata"] == 1 and p.ds.attrs["nodata"] == "mask"
    e, sc = p.embeddings.values, p.scales.values
    assert np.isnan(e[2, 3]).all() and np.isnan(sc[2, 3])
    ok = np.ones((6, 6), bool)
    ok[2, 3] = False
    assert np.isfinite(e[ok]).all() and np.isfinite(sc[ok]).all()  # every other pixel stored (none dropped)


def test_nodata_months_are_masked_not_filled(shared_dir):
    from eoembed.product import worldcereal_series
    s = worldcereal_series(shared_dir / NC, window=(0, 4, 0, 4))
    b02 = s["bands"].index("B02")
    # Dec and Jan (steps 1, 2) are nodata for S2 in this file: NaN in the series, so Presto masks them
    assert np.isnan(s["values"][:, 1:3, b02]).all() and np.isfinite(s["values"][:, [0, 3, 4], b02]).all()
    assert s["start_month"] == 10  # November, 0 = January
    t = s["values"][..., s["bands"].index("temperature_2m")]
    p = s["values"][..., s["bands"].index("total_precipitation")]
    assert 260 < t.min() and t.max() < 300 and 0 <= p.min() and p.max() < 0.5  # K and metres
    vv = s["values"][..., s["bands"].index("VV")]
    assert -30 < np.median(vv) < 0  # dB


def test_pixel_product_and_classifier(pixels, shared_dir, presto):
    from eoembed.models.presto import presto_embed_pixels
    from eoembed.product import pixel_series, train_pixel_classifier
    assert pixels.kind == "samples" and dict(pixels.codes.sizes) == {"sample": 500, "feature": 128}
    lat, lon = pixels.ds["lat"].values, pixels.ds["lon"].values
    assert (lat > -2).all() and (lat < 6).all() and (lon > 29).all() and (lon < 36).all()  # Uganda / S. Sudan
    assert (pixels.ds["label_sampling_label"].values == "sorghum").sum() == 305
    s = pixel_series(shared_dir / PQ)
    f32 = presto_embed_pixels(s["values"], s["bands"], s["months"], s["latlon"], model=presto, progress=False)
    assert s["ids"] == [str(i) for i in pixels.ds["sample"].values]
    res = train_pixel_classifier(pixels, "sampling_label", float32=f32)
    assert res["classes"] == ["dry_pulses_legumes", "maize", "other_oilseeds", "sorghum", "trees_mixed"]
    assert res["excluded"]["n_samples"] == 28 and res["excluded"]["small_classes"]["sunflower"] == 9
    assert res["n_train"] + res["n_test"] == 472
    for part in ("int8", "float32"):
        r = res[part]
        assert r["balanced_accuracy"] > 0.3  # well above chance (0.2) for 5 classes
        assert r["chance_adjusted"] == pytest.approx((r["balanced_accuracy"] - 0.2) / 0.8)
    assert abs(res["delta_balanced_accuracy"]) <= 0.03
    again = train_pixel_classifier(pixels, "sampling_label")
    assert again["int8"] == res["int8"]  # fixed seed: same split, same score


def test_bad_inputs(shared_dir, tmp_path, grid, pixels):
    import xarray as xr
    from eoembed.product import pixel_product, train_pixel_classifier, worldcereal_product, worldcereal_series
    with pytest.raises(DataFileNotFound, match="does not exist"):
        worldcereal_product(tmp_path / "nope.nc", tmp_path / "a.zarr", weights=None)
    with pytest.raises(DataFileNotFound, match="does not exist"):
        pixel_product(tmp_path / "nope.parquet", tmp_path / "b.zarr", weights=None)
    wrong = tmp_path / "wrong.nc"
    ds = xr.open_dataset(shared_dir / NC, engine="h5netcdf").isel(y=slice(0, 3), x=slice(0, 3))
    ds[["slope", "elevation", "crs"]].to_netcdf(wrong, engine="h5netcdf")
    with pytest.raises(DataError, match="no 'S2-L2A-Bxx'"):
        worldcereal_series(wrong)
    with pytest.raises(DataError, match="window"):
        worldcereal_series(shared_dir / NC, window=(0, 200, 0, 10))
    with pytest.raises(WeightsNotFound, match="do not exist"):
        worldcereal_product(shared_dir / NC, tmp_path / "c.zarr", weights=tmp_path / "missing.pt", window=(0, 2, 0, 2))
    with pytest.raises(LabelError, match="no label 'crop'"):
        train_pixel_classifier(pixels, "crop")
    with pytest.raises(DataError, match="samples product"):
        train_pixel_classifier(grid, "sampling_label")
    with pytest.raises(DataError, match="float32 embeddings have shape"):
        train_pixel_classifier(pixels, float32=np.zeros((3, 128)))


@pytest.mark.slow
def test_whole_cube_product(shared_dir, tmp_path):
    from eoembed.product import worldcereal_product
    p = worldcereal_product(shared_dir / NC, tmp_path / "full.zarr", weights=shared_dir / WEIGHTS, progress=False)
    assert dict(p.codes.sizes) == {"y": 100, "x": 100, "feature": 128}
    assert p.ds.attrs["n_nodata"] == 0 and np.isfinite(p.embeddings.values).all()


def test_cli_worldcereal_product(shared_dir, tmp_path):
    from typer.testing import CliRunner
    from eoembed.cli import app
    from eoembed.product import open_product
    out = tmp_path / "cli.zarr"
    r = CliRunner().invoke(app, ["worldcereal-product", str(shared_dir / NC), "--out", str(out), "--weights",
                                 str(shared_dir / WEIGHTS), "--window", "0,3,0,4", "--no-progress"])
    assert r.exit_code == 0, r.output
    p = open_product(out)
    assert dict(p.codes.sizes) == {"y": 3, "x": 4, "feature": 128} and p.crs == "EPSG:32631"
    bad = CliRunner().invoke(app, ["worldcereal-product", str(shared_dir / NC), "--out", str(tmp_path / "b.zarr"),
                                   "--window", "1,2"])
    assert bad.exit_code == 2 and "--window" in bad.output
    missing = CliRunner().invoke(app, ["worldcereal-product", str(tmp_path / "nope.nc"), "--out",
                                       str(tmp_path / "c.zarr")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
