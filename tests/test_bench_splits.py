"""Split strategies of the evaluation (eoembed.bench.splits): shuffle (NeuCo-Bench), fixed, group, spatial."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import ShuffleSplit
from typer.testing import CliRunner

from eoembed.bench import evaluate, label_fraction_curve
from eoembed.bench.core import _splits
from eoembed.bench.io import prepare
from eoembed.bench.ridge import ALPHAS
from eoembed.bench.splits import haversine_km, make_splits, spatial_blocks
from eoembed.errors import DataError, DataFileNotFound

N, D = 160, 5
NEUCO_SUMMARY_KEYS = {"experiment", "overall_q_score", "overall_acc_score", "task_q_scores", "task_acc_scores",
                      "config"}


@pytest.fixture(scope="module")
def problem():
    """N samples on a 16 x 10 grid of locations over ~1,100 x 1,400 km (Europe), labels driven by X and a
    smooth spatial field; the 'sparse' task misses a third of its labels."""
    rng = np.random.default_rng(0)
    ids = np.array([f"s{i:03d}" for i in range(N)])
    lat = np.repeat(np.linspace(42.0, 52.0, 16), 10) + rng.uniform(-0.05, 0.05, N)
    lon = np.tile(np.linspace(0.0, 18.0, 10), 16) + rng.uniform(-0.05, 0.05, N)
    X = rng.standard_normal((N, D))
    X[:, 0] += np.sin(lat / 2.0)  # embeddings know the place a little
    lab = pd.DataFrame({"linear": X @ rng.standard_normal(D) + 0.3 * rng.standard_normal(N),
                        "spatial": np.sin(lat) + np.cos(lon / 3.0) + 0.1 * rng.standard_normal(N),
                        "binary": (X[:, 1] > 0).astype(float)}, index=pd.Index(ids, name="id"))
    lab.loc[ids[::3], "linear"] = np.nan
    lab.attrs["task_types"] = {"linear": "regression", "spatial": "regression", "binary": "classification"}
    meta = pd.DataFrame({"lat": lat, "lon": lon, "region": (np.arange(N) // 8).astype(str)},
                        index=pd.Index(ids, name="id"))
    return X.astype(np.float32), ids, lab, meta


def _prep(problem):
    X, ids, lab, _ = problem
    return prepare(X, lab, ids=ids)


def _groups_of(folds, g):
    for t, fl in folds.items():
        for tr, te in fl:
            yield t, set(g[tr].tolist()), set(g[te].tolist()), tr, te


# ------------------------------------------------------------------------------------------------ shuffle
def test_shuffle_folds_identical_to_neuco_shufflesplit(problem):
    prep = _prep(problem)
    sp = _splits(prep, 12, 42)
    for t in prep.tasks:
        rows = prep.rows[t]
        ref = [(rows[a], rows[b]) for a, b in
               ShuffleSplit(n_splits=12, test_size=0.1, random_state=42).split(np.zeros(len(rows)))]
        assert len(sp[t]) == 12
        for (tr, te), (rtr, rte) in zip(sp[t], ref):
            np.testing.assert_array_equal(tr, rtr)
            np.testing.assert_array_equal(te, rte)
    assert sp.info["strategy"] == "shuffle" and sp.info["test_size"] == 0.1


def test_default_evaluate_unchanged_and_split_recorded(problem, tmp_path):
    X, ids, lab, _ = problem
    kw = dict(ids=ids, folds=6, mode="ridge", progress=False, tasks=["linear", "spatial"])
    a = evaluate(X, lab, out=tmp_path / "a", **kw)
    b = evaluate(X, lab, split="shuffle", **kw)
    pd.testing.assert_frame_equal(a.per_task, b.per_task)
    rep = json.loads((tmp_path / "a" / "eoembed_report.json").read_text())
    assert rep["settings"]["split"]["strategy"] == "shuffle" and rep["settings"]["k_folds"] == 6
    summary = json.loads((tmp_path / "a" / "results_summary.json").read_text())
    assert set(summary) == NEUCO_SUMMARY_KEYS and "split" not in summary["config"]


# ------------------------------------------------------------------------------------------------ group
def test_group_folds_never_share_a_group_and_respect_task_rows(problem):
    prep = _prep(problem)
    region = problem[3]["region"]
    sp = _splits(prep, 15, 3, "group", groups=region)
    g = region.reindex(prep.ids).to_numpy()
    for t, gtr, gte, tr, te in _groups_of(sp, g):
        assert not gtr & gte
        assert set(tr.tolist()) | set(te.tolist()) == set(prep.rows[t].tolist())   # every labelled row, once
        assert not set(tr.tolist()) & set(te.tolist())
        assert len(gte) == math.ceil(0.1 * len(set(g[prep.rows[t]].tolist())))
    lin = prep.tasks.index("linear")
    assert all(np.isfinite(prep.Y[lin][np.concatenate(f)]).all() for f in sp["linear"])  # no unlabelled rows
    assert sp.info["per_task"]["spatial"]["n_groups"] == N // 8


def test_group_folds_from_a_dict_and_an_array_agree(problem):
    prep = _prep(problem)
    region = problem[3]["region"].reindex(prep.ids)
    a = make_splits(prep.ids, prep.rows, "group", folds=5, groups=region.to_dict())
    b = make_splits(prep.ids, prep.rows, "group", folds=5, groups=region.to_numpy())
    for t in a:
        for (tra, tea), (trb, teb) in zip(a[t], b[t]):
            np.testing.assert_array_equal(tea, teb)


# ------------------------------------------------------------------------------------------------ spatial
@pytest.mark.parametrize("km", [50.0, 200.0])
def test_spatial_blocks_respect_the_size(km):
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(38, 60, 3000), rng.uniform(-8, 24, 3000)
    b = spatial_blocks(lat, lon, km)
    worst = 0.0
    for blk in np.unique(b):
        i = np.flatnonzero(b == blk)
        if len(i) > 1:
            d = haversine_km(lat[i, None], lon[i, None], lat[None, i], lon[None, i])
            worst = max(worst, float(d.max()))
    assert worst <= math.sqrt(2) * km * 1.05           # a block is no larger than its km x km diagonal
    assert worst >= 0.6 * km                            # and not much smaller (blocks of the asked size)
    # about area / km^2 blocks: the area of the box on the sphere
    area = (math.radians(24 + 8) * 6371.0088 ** 2 * (math.sin(math.radians(60)) - math.sin(math.radians(38))))
    assert 0.6 * area / km ** 2 < len(np.unique(b)) < 1.6 * area / km ** 2 + 4


def test_spatial_block_folds_hold_out_whole_blocks(problem):
    prep = _prep(problem)
    X, ids, lab, meta = problem
    sp = _splits(prep, 10, 42, "spatial", km=150.0, latlon=meta)
    blocks = spatial_blocks(meta.loc[prep.ids, "lat"], meta.loc[prep.ids, "lon"], 150.0)
    np.testing.assert_array_equal(sp.info["groups"], blocks)
    for t, btr, bte, tr, te in _groups_of(sp, blocks):
        assert not btr & bte
        # a held-out sample's nearest training sample is in another block: the gap is >= the smallest
        # distance between points of different blocks, so no training sample sits in a test block
        assert not np.isin(blocks[tr], blocks[te]).any()
    assert sp.info["method"] == "blocks" and sp.info["km"] == 150.0


def test_spatial_clusters_when_no_km(problem):
    prep = _prep(problem)
    meta = problem[3]
    sp = _splits(prep, 8, 42, "spatial", latlon=meta, n_clusters=12)
    g = sp.info["groups"]
    assert len(np.unique(g[g >= 0])) == 12 and sp.info["method"] == "kmeans"
    for t, gtr, gte, tr, te in _groups_of(sp, g):
        assert not gtr & gte and len(gte) == 2      # ceil(0.1 * 12) clusters held out


def test_spatial_gap_on_a_spatial_task(problem):
    """Random folds interpolate a smooth spatial field from neighbours; spatial blocks cannot."""
    X, ids, lab, meta = problem
    Xs = np.c_[X, meta[["lat", "lon"]].to_numpy()]  # embeddings that know the place
    a = evaluate(Xs, lab, ids=ids, folds=10, mode="ridge", tasks=["spatial"], progress=False)
    b = evaluate(Xs, lab, ids=ids, folds=10, mode="ridge", tasks=["spatial"], progress=False, split="spatial",
                 split_km=300, meta=meta)
    assert b.details["settings"]["split"]["sources"]["latlon"] == "meta DataFrame"
    assert np.isfinite(b.overall_q) and b.per_task.loc["spatial", "mean_score"] < a.per_task.loc["spatial",
                                                                                                  "mean_score"]


# ------------------------------------------------------------------------------------------------ fixed
def test_fixed_split_reproduces_a_hand_computed_ridge_score(problem):
    X, ids, lab, _ = problem
    test_ids = ids[100:140]
    res = evaluate(X, lab, ids=ids, mode="ridge", split="fixed", test_ids=test_ids, tasks=["spatial"],
                   progress=False)
    # by hand: NeuCo-Bench preprocessing (global scalar standardisation, min-max labels), sklearn RidgeCV (exact LOO
    # over the same penalty grid, relative to the mean eigenvalue of the centred training Gram matrix)
    Xs = (X - X.astype(np.float64).mean()) / X.astype(np.float64).std()
    y = lab["spatial"].to_numpy()
    y = (y - y.min()) / (y.max() - y.min())
    te = np.isin(ids, test_ids)
    Xtr = Xs[~te].astype(np.float32).astype(np.float64)
    e = np.linalg.eigvalsh((Xtr - Xtr.mean(0)).T @ (Xtr - Xtr.mean(0)))
    fit = RidgeCV(alphas=ALPHAS * e.mean()).fit(Xtr, y[~te])
    expect = r2_score(y[te], fit.predict(Xs[te].astype(np.float32).astype(np.float64)))
    assert res.per_task.loc["spatial", "mean_score"] == pytest.approx(expect, abs=1e-6)
    assert res.per_task.loc["spatial", "q_stat"] == pytest.approx(2 * expect / 0.02, abs=1e-4)  # one fold: std 0
    assert res.details["settings"]["k_folds"] == 1 and res.summary["config"]["k_folds"] == 1


def test_fixed_split_with_train_ids_and_missing_labels(problem):
    X, ids, lab, _ = problem
    prep = _prep(problem)
    sp = _splits(prep, 40, 42, "fixed", train_ids=ids[:90], test_ids=ids[120:])
    for t in prep.tasks:
        (tr, te), = sp[t]
        assert set(prep.ids[te]) == set(ids[120:]) & set(prep.ids[prep.rows[t]])
        assert set(prep.ids[tr]) == set(ids[:90]) & set(prep.ids[prep.rows[t]])
    assert sp.info["unassigned"]["spatial"] == 30 and sp.info["unassigned"]["linear"] == 20


def test_fixed_compat_scores_the_given_test_ids(problem):
    X, ids, lab, _ = problem
    res = evaluate(X, lab, ids=ids, mode="compat", split="fixed", test_ids=list(ids[-30:]), tasks=["binary"],
                   progress=False)
    assert len(res.folds) == 1 and res.history["fold"].max() == 0
    assert res.per_task.loc["binary", "n_samples"] == N


# ------------------------------------------------------------------------------------------------ other modes / API
def test_label_fraction_curve_with_group_split(problem):
    X, ids, lab, meta = problem
    df = label_fraction_curve(X, lab, ids=ids, fractions=(0.5, 1.0), folds=4, tasks=["spatial"], progress=False,
                              split="group", groups=meta["region"])
    assert df.attrs["split"]["strategy"] == "group" and len(df) == 8
    fx = label_fraction_curve(X, lab, ids=ids, fractions=(1.0,), tasks=["spatial"], progress=False,
                              split="fixed", test_ids=ids[:30])
    assert len(fx) == 1 and fx["n_train"].iloc[0] == N - 30


def test_groups_and_latlon_from_labels_dataframe_columns(problem):
    X, ids, lab, meta = problem
    lab2 = lab.join(meta)
    lab2.attrs["task_types"] = dict(lab.attrs["task_types"])
    r = evaluate(X, lab2, ids=ids, folds=4, mode="compat", progress=False, split="group", groups="region")
    assert set(r.per_task.index) == set(lab.columns)      # region / lat / lon are not scored as tasks
    assert r.details["settings"]["split"]["sources"]["groups"] == "column 'region' of labels DataFrame columns"


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_split_flags(problem, tmp_path):
    from eoembed.cli import app

    X, ids, lab, meta = problem
    root = tmp_path / "root"
    (root / "labels").mkdir(parents=True)
    emb = pd.DataFrame(X, columns=[str(i) for i in range(D)])
    emb.insert(0, "id", ids)
    emb.to_csv(tmp_path / "emb.csv", index=False)
    for t, kind in lab.attrs["task_types"].items():
        lab[t].dropna().rename("label").reset_index().to_csv(root / "labels" / f"{t}__{kind}.csv", index=False)
    meta.reset_index().to_csv(root / "meta.csv", index=False)   # id,lat,lon,region: found beside the label folder
    meta[["region", "lat"]].reset_index().to_csv(tmp_path / "groups.csv", index=False)
    (tmp_path / "test.txt").write_text("\n".join(ids[:25]) + "\n")
    runner = CliRunner()
    base = ["bench", str(tmp_path / "emb.csv"), "--labels", str(root / "labels"), "--mode", "ridge", "--no-progress",
            "--tasks", "linear,spatial"]
    cases = {"spatial": ["--split", "spatial", "--split-km", "250", "--folds", "5"],
             "group": ["--split", "group", "--groups", f"{tmp_path / 'groups.csv'}:region", "--folds", "5"],
             "group_column": ["--split", "group", "--groups", "region", "--folds", "5"],
             "fixed": ["--split", "fixed", "--test-ids", str(tmp_path / "test.txt")]}
    for name, flags in cases.items():
        r = runner.invoke(app, base + ["--out", str(tmp_path / name)] + flags)
        assert r.exit_code == 0, r.output
        rep = json.loads((tmp_path / name / "eoembed_report.json").read_text())
        assert rep["settings"]["split"]["strategy"] == name.split("_")[0]
        assert set(json.loads((tmp_path / name / "results_summary.json").read_text())) == NEUCO_SUMMARY_KEYS
    assert rep["settings"]["k_folds"] == 1
    spatial = json.loads((tmp_path / "spatial" / "eoembed_report.json").read_text())["settings"]["split"]
    assert spatial["km"] == 250.0 and spatial["sources"]["latlon"].endswith("meta.csv")
    scores = [pd.read_csv(tmp_path / n / "fold_scores.csv")["score"] for n in ("group", "group_column")]
    pd.testing.assert_series_equal(*scores)          # FILE.csv:COLUMN and the meta.csv column: the same folds
    bad = runner.invoke(app, base + ["--out", str(tmp_path / "bad"), "--split", "spatia"])
    assert bad.exit_code != 0 and "spatial" in (bad.output + str(bad.exception))


# ------------------------------------------------------------------------------------------------ bad inputs
def test_bad_split_inputs(problem):
    X, ids, lab, meta = problem
    prep = _prep(problem)
    kw = dict(ids=ids, mode="ridge", progress=False)
    with pytest.raises(DataError, match="nope1"):
        evaluate(X, lab, split="fixed", test_ids=["nope1", ids[0]], **kw)
    with pytest.raises(DataError, match="share 1 id"):
        make_splits(prep.ids, prep.rows, "fixed", train_ids=ids[:50], test_ids=ids[49:60])
    with pytest.raises(DataError, match="'linear', fold 0: the test part has 0"):
        make_splits(prep.ids, prep.rows, "fixed", test_ids=ids[::3][:10])      # 'linear' misses those labels
    with pytest.raises(DataError, match="fixed split is one fold"):
        evaluate(X, lab, split="fixed", test_ids=ids[:20], folds=5, **kw)
    with pytest.raises(DataError, match="needs test_ids"):
        make_splits(prep.ids, prep.rows, "fixed")
    with pytest.raises(DataFileNotFound, match="missing.txt"):
        make_splits(prep.ids, prep.rows, "fixed", test_ids="missing.txt")
    with pytest.raises(DataError, match="groups belong|group"):
        evaluate(X, lab, split="shuffle", groups=meta["region"], **kw)
    with pytest.raises(DataError, match="use one of"):
        evaluate(X, lab, split="random", **kw)
    # spatial: missing lat/lon named, none found at all, bad km
    holes = meta.copy()
    holes.loc[["s005", "s077"], "lat"] = np.nan
    with pytest.raises(DataError, match="s005.*s077"):
        evaluate(X, lab, split="spatial", split_km=100, meta=holes, **kw)
    with pytest.raises(DataError, match="lat/lon"):
        evaluate(X, lab, split="spatial", split_km=100, **kw)
    with pytest.raises(DataError, match="split_km"):
        make_splits(prep.ids, prep.rows, "spatial", km=-3, latlon=meta)
    # groups: too few for the folds, a single group, a missing group, an unknown column
    few = pd.Series(np.arange(N) % 4, index=ids)
    with pytest.raises(DataError, match="fewer than folds=10"):
        make_splits(prep.ids, prep.rows, "group", folds=10, groups=few)
    with pytest.raises(DataError, match="1 group"):
        make_splits(prep.ids, prep.rows, "group", folds=2, groups=pd.Series(0, index=ids))
    with pytest.raises(DataError, match="s010"):
        make_splits(prep.ids, prep.rows, "group", folds=2, groups=few.drop("s010"))
    with pytest.raises(DataError, match="no such column"):
        evaluate(X, lab, split="group", groups="county", meta=meta, **kw)
    with pytest.raises(DataError, match="too large|fewer than folds"):
        make_splits(prep.ids, prep.rows, "spatial", folds=40, km=4000, latlon=meta)


def test_svm_probe_takes_the_spatial_folds(problem):
    X, ids, lab, meta = problem
    pp = {"C_start_end": [0.01, 10.0], "epsilon_list": [0.01, 0.1], "kernel_degree_list": [2, 3],
          "kernel_gamma_start_end": [0.001, 0.1], "kernel_coef0_start_end": [-1, 2], "opt_params": {"n_iter": 3}}
    r = evaluate(X, lab, ids=ids, folds=3, tasks=["linear"], split="spatial", split_km=250, meta=meta,
                 progress=False, config={"probe_type": "svm", "k_folds": 3, "probe_params": pp})
    sp = r.details["settings"]["split"]
    assert sp["strategy"] == "spatial" and sp["km"] == 250 and r.details["settings"]["probe"] == "svm"
    assert len(r.folds) == 3 and np.isfinite(r.overall_q)
