"""The synthetic sample dataset: determinism, resumption, physical plausibility, learnable labels, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from eoembed.data import TASK_TYPES, open_cube, read_labels, sample, validate_cube
from eoembed.data.synthetic import CLASSES, URBAN, WATER, generate, sample_id
from eoembed.errors import DataError


def test_layout_and_labels(sample_root, sample_cube, sample_labels):
    assert (sample_root / "meta.csv").exists()
    assert sample_cube.sizes == {"sample": 40, "season": 4, "band": 27, "y": 32, "x": 32}
    assert set(sample_labels.columns) == set(TASK_TYPES) and sample_labels.attrs["task_types"] == TASK_TYPES
    assert set(sample_labels.index) == set(sample_cube["sample"].values)
    assert all(len(s) == 64 for s in sample_cube["sample"].values)
    lat, lon = sample_cube["lat"].values, sample_cube["lon"].values
    assert (lat > 35).all() and (lat < 60).all() and (lon > -10).all() and (lon < 25).all()
    lab = sample_labels
    assert ((lab["random_reg"] > 10) == (lab["random_cls"] == 1)).all()
    for t in ("crops", "landcover_forest", "landcover_agriculture", "clouds_reg", "nodata"):
        assert lab[t].between(0, 1).all() and lab[t].std() > 0.03, t
    assert (lab["crops"] <= lab["landcover_agriculture"] + 1e-12).all()
    assert json.loads((sample_root / ".eoembed_sample.json").read_text())["complete"] is True


def test_deterministic_bit_identical(tmp_path, sample_root):
    a = sample(tmp_path / "a", n=3, seed=0, size=32, progress=False)
    ca = open_cube(a)
    assert set(ca["sample"].values) == {sample_id(0, i) for i in range(3)}
    cs = open_cube(sample_root, ids=list(ca["sample"].values))
    np.testing.assert_array_equal(ca["bands"].values, cs["bands"].values)  # same (seed, index) -> same sample
    other, _, _ = generate(0, seed=1, size=32)
    first = open_cube(a, modalities=["s2l2a"], ids=[sample_id(0, 0)])["bands"].values
    assert first.shape == other["s2l2a"].shape and not np.array_equal(other["s2l2a"], first)
    files = sorted((a / "data").rglob("*.zarr.zip"))
    before = {f: np.asarray(open_cube(f)["bands"].values) for f in files}
    files[0].unlink()  # interrupted run: resuming rewrites exactly the missing file
    sample(a, n=3, seed=0, size=32, progress=False)
    for f in files:
        np.testing.assert_array_equal(open_cube(f)["bands"].values, before[f])


def test_refuses_foreign_folders(tmp_path, sample_root):
    with pytest.raises(DataError, match=r"already holds a sample dataset made with .*'n': 40.*re-run with the same"):
        sample(sample_root, n=41, seed=0, size=32, progress=False)
    (tmp_path / "x.txt").write_text("mine")
    with pytest.raises(DataError, match=r"is not empty and holds no eoembed sample"):
        sample(tmp_path, n=2, size=32, progress=False)
    with pytest.raises(DataError, match=r"size=4; use an integer >= 8"):
        sample(tmp_path / "y", n=2, size=4)


def test_physically_plausible():
    arrays, labels, lat = generate(3, seed=0, size=64)
    s1, l1c, l2a = (arrays[m][0].astype(np.float32) for m in ("s1", "s2l1c", "s2l2a"))
    assert arrays["s2l1c"].dtype == np.uint16 and arrays["s1"].dtype == np.float32
    cls = lat["cls"]
    clear = (lat["cloud"] < 0.01) & ~lat["nodata"]
    # L1C has aerosol path radiance: blue brighter than L2A on clear pixels; B10 (cirrus) dark when cloud-free
    assert (l1c[:, 1][clear] > l2a[:, 1][clear]).mean() > 0.9
    assert np.median(l1c[:, 10][clear]) < 300
    # S1: water very dark, urban bright
    if (cls == WATER).any():
        assert s1[:, 0][:, cls == WATER].mean() < -15
    # nodata label = fraction of zero S2 pixels
    zero = (l2a == 0).all(axis=1)
    assert abs(zero.mean() - labels["nodata"]) < 1e-9
    # clouds are bright in the visible
    if (lat["cloud"] > 0.9).any():
        assert np.median(l2a[:, 2][lat["cloud"] > 0.9]) > 4000
    assert set(np.unique(cls)) <= set(range(len(CLASSES))) and URBAN == CLASSES.index("urban")


def test_crop_phenology_peaks_in_summer():
    ndvi = {c: [] for c in ("soy", "corn", "wheat", "forest")}
    for i in range(6):
        arrays, _, lat = generate(i, seed=0, size=48)
        l2a = arrays["s2l2a"][0].astype(np.float32)
        ok = (lat["cloud"] < 0.01) & ~lat["nodata"]
        nd = (l2a[:, 7] - l2a[:, 3]) / (l2a[:, 7] + l2a[:, 3] + 1)
        for c in ndvi:
            m = (lat["cls"] == CLASSES.index(c))[None] & ok
            ndvi[c].append([nd[t][m[t]].mean() if m[t].any() else np.nan for t in range(4)])
    soy, wheat = np.nanmean(ndvi["soy"], axis=0), np.nanmean(ndvi["wheat"], axis=0)
    assert np.argmax(soy) == 1 and soy[1] > soy[2] > soy[3]  # green JJA, harvested later
    assert np.argmax(wheat) == 0  # winter wheat peaks in spring


def test_labels_learnable_to_different_degrees(sample_cube, sample_labels):
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    x = sample_cube["bands"].mean(("y", "x")).values.reshape(sample_cube.sizes["sample"], -1)
    y = sample_labels.loc[list(sample_cube["sample"].values)]
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))
    r2 = {t: cross_val_score(model, x, y[t].to_numpy(), cv=KFold(5, shuffle=True, random_state=0),
                             scoring="r2").mean() for t in ("landcover_forest", "clouds_reg", "random_reg")}
    assert r2["landcover_forest"] > 0.25 and r2["clouds_reg"] > 0.6
    assert r2["random_reg"] < 0.05 and r2["landcover_forest"] > r2["random_reg"] + 0.3


def test_validates_and_cli(tmp_path, sample_root):
    from typer.testing import CliRunner

    from eoembed.cli import app
    validate_cube(open_cube(sample_root), nodata="error")
    r = CliRunner().invoke(app, ["sample", str(tmp_path / "s"), "--n", "2", "--seed", "3", "--size", "16",
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    assert read_labels(tmp_path / "s" / "labels").shape == (2, 11)
    r = CliRunner().invoke(app, ["validate", str(tmp_path / "s"), "--no-progress"])
    assert r.exit_code == 0 and "OK" in r.output and "task random_cls" in r.output, r.output
    next((tmp_path / "s" / "data" / "s1").rglob("*.zarr.zip")).unlink()
    r = CliRunner().invoke(app, ["validate", str(tmp_path / "s"), "--no-progress"])
    assert r.exit_code == 2 and "sample ids missing from some modalities" in r.output
