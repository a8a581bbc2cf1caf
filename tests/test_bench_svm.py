"""NeuCo-Bench's SVM probe in eoembed (eoembed.bench.svm): scores equal a straightforward per-fold scikit-learn
implementation of the same protocol (same candidates, same folds), the honest variant never selects on test
labels, output files carry NeuCo-Bench's keys, bad inputs fail clearly; with scikit-optimize installed, the
"bayes" search reproduces BayesSearchCV; with NeuCo-Bench's source (NEUCO_BENCH_SRC, slow) its own code."""
from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, r2_score
from sklearn.svm import SVC, SVR

from eoembed.bench import evaluate
from eoembed.bench import svm as S
from eoembed.bench.config import read_config
from eoembed.bench.metrics import q_score
from eoembed.errors import DataError

HAS_SKOPT = importlib.util.find_spec("skopt") is not None
NEUCO_SRC = os.environ.get("NEUCO_BENCH_SRC")

# a narrow space keeps every libsvm fit short on tiny data (the sample config's C up to 1e3 with gamma up to 10
# makes some fits run for minutes, in NeuCo-Bench too)
PP = {"C_start_end": [0.01, 10.0], "epsilon_list": [0.01, 0.05, 0.1], "kernel_degree_list": [2, 3],
      "kernel_gamma_start_end": [0.001, 0.1], "kernel_coef0_start_end": [-1, 2],
      "opt_params": {"n_iter": 5}}


def _data(n=120, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    ids = np.array([f"s{i:03d}" for i in range(n)])
    lab = pd.DataFrame({"reg": X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.3 * rng.standard_normal(n),
                        "cls": (X[:, 2] + 0.5 * rng.standard_normal(n) > 0).astype(float)}, index=ids)
    lab.attrs["task_types"] = {"reg": "regression", "cls": "classification"}
    return X, ids, lab


def _reg_problem(n, seed):
    """float64 embeddings and the regression target min-max scaled to [0, 1] (as NeuCo-Bench normalises labels)."""
    X, _, lab = _data(n=n, seed=seed)
    y = lab["reg"].to_numpy()
    return X.astype(np.float64), (y - y.min()) / (y.max() - y.min())


def _write_inputs(d: Path, X, ids, lab) -> Path:
    """NeuCo-Bench inputs under ``d``: emb.csv and labels/<task>__<type>.csv (classes as integers)."""
    (d / "labels").mkdir(parents=True)
    emb = pd.DataFrame(X, columns=[str(i) for i in range(X.shape[1])])
    emb.insert(0, "id", ids)
    emb.to_csv(d / "emb.csv", index=False)
    for t, kind in lab.attrs["task_types"].items():
        col = lab[t].astype(int) if kind == "classification" else lab[t]
        col.rename("label").rename_axis("id").reset_index().to_csv(d / "labels" / f"{t}__{kind}.csv", index=False)
    return d


def _cfg(folds=3, **pp):
    p = copy.deepcopy(PP)
    p.update(pp)
    return {"k_folds": folds, "probe_type": "svm", "probe_params": p}


def _reference(prep, splits, task, cands):
    """Per fold, per candidate: NeuCo-Bench's estimator with kernel='poly' on the fold's rows; its metric."""
    k = prep.tasks.index(task)
    cls = prep.task_types[task] == "classification"
    y = prep.Y[k].copy()
    if cls:
        y[y == 0] = -1
    X = prep.X.astype(np.float64)
    out = np.zeros((len(splits[task]), len(cands)))
    for f, (tr, te) in enumerate(splits[task]):
        for j, c in enumerate(cands):
            est = (SVC if cls else SVR)(**c).fit(X[tr], y[tr])
            p = est.predict(X[te])
            out[f, j] = f1_score(y[te], p) if cls else r2_score(y[te], p)
    return out


def test_scores_equal_straightforward_per_fold_sklearn(tmp_path):
    from eoembed.bench.core import _splits
    from eoembed.bench.io import prepare

    X, ids, lab = _data()
    res = evaluate(X, lab, ids=ids, config=_cfg(), progress=False, out=tmp_path / "run")
    prep = prepare(X, lab, ids=ids)
    splits = _splits(prep, 3, 42)
    hist = res.history
    for t in prep.tasks:
        cands = res.details["svm"]["candidates"][t]
        assert len(cands) == 5 and all(c["kernel"] == "poly" for c in cands)
        ref = _reference(prep, splits, t, cands)
        mine = hist[hist.task == t].pivot(index="fold", columns="candidate", values="score").to_numpy()
        np.testing.assert_allclose(mine, ref, atol=1e-6)
        np.testing.assert_allclose(res.folds[res.folds.task == t].score, ref.max(axis=1), atol=1e-6)
        assert res.per_task.loc[t, "q_stat"] == pytest.approx(q_score(ref.max(axis=1)), abs=1e-4)
    # kernel and C draws are shared by regression and classification tasks (one kernel matrix per candidate)
    kern = lambda c: (c["C"], c["degree"], c["gamma"], c["coef0"])  # noqa: E731
    assert [kern(c) for c in res.details["svm"]["candidates"]["reg"]] == \
        [kern(c) for c in res.details["svm"]["candidates"]["cls"]]
    assert all("epsilon" not in c for c in res.details["svm"]["candidates"]["cls"])


@pytest.mark.parametrize("classification", [False, True])
def test_direct_libsvm_call_equals_the_estimator(classification):
    """The per-fit fast path calls libsvm as SVC/SVR(kernel='precomputed').fit does (same solution: support,
    dual coefficients, intercept, decisions) on the zero-weight full kernel and on the fold's sub-matrix."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((70, 6))
    y = X[:, 0] + 0.3 * rng.standard_normal(70)
    if classification:
        y = np.where(y > 0, 1.0, -1.0)
    tr = np.sort(rng.permutation(70)[:60])
    te = np.setdiff1d(np.arange(70), tr)
    for cand in ({"C": 0.7, "degree": 3, "gamma": 0.2, "coef0": 1.0, "epsilon": 0.05, "kernel": "poly"},
                 {"C": 300.0, "degree": 2, "gamma": 0.05, "coef0": -0.5, "epsilon": 0.1, "kernel": "poly"}):
        K = S.kernel(S.gram(X), cand)
        w = np.zeros(70)
        w[tr] = 1.0
        sup, dual, b = S._libsvm_fit(K, y, w, cand, classification)
        est = (SVC(kernel="precomputed", C=cand["C"]) if classification
               else SVR(kernel="precomputed", C=cand["C"], epsilon=cand["epsilon"])).fit(K, y, sample_weight=w)
        np.testing.assert_array_equal(sup, est.support_)
        np.testing.assert_array_equal(dual, est.dual_coef_[0])
        assert b == est.intercept_[0]
        ref = est.fit(K[np.ix_(tr, tr)], y[tr])          # NeuCo-Bench's per-fold fit on the fold's rows
        dec = (ref.decision_function if classification else ref.predict)(K[np.ix_(te, tr)])
        np.testing.assert_allclose(K[np.ix_(te, tr[sup])] @ dual + b, dec, rtol=1e-6, atol=1e-6)
        m, _ = S.fit_score(K, y, tr, te, cand, classification)
        p = ref.predict(K[np.ix_(te, tr)])
        assert m == pytest.approx(f1_score(y[te], p) if classification else r2_score(y[te], p), abs=1e-9)


def test_kernel_from_gram_and_its_overflow_check():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 5))
    G = S.gram(X)
    for d in (2, 3):
        c = {"gamma": 0.3, "coef0": -0.7, "degree": d}
        K = S.kernel(G, c)
        np.testing.assert_allclose(K, (0.3 * X @ X.T - 0.7) ** d, rtol=1e-12)
        assert K.flags.c_contiguous and K.dtype == np.float64
        np.testing.assert_array_equal(S.kernel(G, c, bounds=(float(G.min()), float(G.max()))), K)
    with pytest.raises(DataError, match="overflows.*narrow kernel_gamma_start_end"):
        S.kernel(G * 1e120, {"gamma": 10.0, "coef0": 1.0, "degree": 3})


def test_tasks_with_the_same_samples_in_another_order_share_kernels_and_scores():
    X64, y = _reg_problem(80, 4)
    rng = np.random.default_rng(1)
    perm = rng.permutation(80)
    folds = [(np.arange(8, 80), np.arange(8)), (np.arange(72), np.arange(72, 80))]
    pp = S.check_svm_params({**PP, "opt_params": {"n_iter": 3}})
    a = {"name": "a", "rows": np.arange(80), "y": y, "classification": False, "folds": folds}
    inv = np.argsort(perm)           # position of sample i in the permuted listing
    b = {"name": "b", "rows": perm, "y": y[perm], "classification": False,
         "folds": [(inv[tr], inv[te]) for tr, te in folds]}
    ra, rb = S.svm_scores(X64, [a, b], pp, progress=False)
    np.testing.assert_allclose(ra["metric"], rb["metric"], atol=1e-9)
    assert [r["name"] for r in (ra, rb)] == ["a", "b"]


def test_candidates_follow_the_search_space():
    pp = S.check_svm_params(S.SVM_PROBE_DEFAULTS)
    c = S.sample_candidates(pp, False, 400, seed=3)
    C = np.array([x["C"] for x in c])
    g = np.array([x["gamma"] for x in c])
    r = np.array([x["coef0"] for x in c])
    assert C.min() >= 1e-3 and C.max() <= 1e3 and g.min() >= 1e-4 and g.max() <= 10 and -1 <= r.min() <= r.max() <= 2
    assert abs(np.median(np.log10(C))) < 0.5 and abs(np.median(np.log10(g)) + 1.5) < 0.5   # log-uniform
    assert {x["degree"] for x in c} == {2, 3} and {x["epsilon"] for x in c} == {0.01, 0.05, 0.1, 0.5}
    assert c[:5] == S.sample_candidates(pp, False, 5, seed=3)                      # seeded, prefix-stable
    assert c[:5] != S.sample_candidates(pp, False, 5, seed=4)


def test_inner_selection_never_uses_test_labels():
    X64, y = _reg_problem(150, 1)
    rng = np.random.default_rng(0)
    perm = rng.permutation(150)
    tr, te = perm[:135], perm[135:]
    pp = S.check_svm_params({**PP, "opt_params": {"n_iter": 6}})

    def run(labels):
        task = {"name": "reg", "rows": np.arange(150), "y": labels, "classification": False, "folds": [(tr, te)]}
        return S.svm_scores(X64, [task], pp, select="inner", progress=False)[0]

    a = run(y)
    leak = y.copy()
    leak[te] = 1.0 - leak[te]              # planted: test labels that flip which candidate looks best on test
    b = run(leak)
    assert a["chosen"][0] == b["chosen"][0]                                   # selection blind to test labels
    np.testing.assert_array_equal(a["inner_metric"], b["inner_metric"])
    assert not np.allclose(a["metric"], b["metric"])                         # ... which the max-select sees
    assert a["scores"][0] == a["metric"][0, a["chosen"][0]] <= a["max_scores"][0]
    for itr, ite in S._inner_splits(tr, 42):
        assert set(itr) | set(ite) <= set(tr) and not set(ite) & set(itr)


def test_honest_variant_reports_both(tmp_path):
    X, ids, lab = _data()
    honest = evaluate(X, lab, ids=ids, config=_cfg(), progress=False, svm_select="inner")
    compat = evaluate(X, lab, ids=ids, config=_cfg(), progress=False)
    assert not honest.details["neuco_compatible"] and compat.details["neuco_compatible"]
    mx = honest.details["svm"]["max_over_candidates"]
    for t in ("reg", "cls"):
        assert mx[t]["q_stat"] == pytest.approx(compat.per_task.loc[t, "q_stat"])       # same optimistic score
        h = honest.folds[honest.folds.task == t].score.to_numpy()
        c = compat.folds[compat.folds.task == t].score.to_numpy()
        assert (h <= c + 1e-12).all() and len(mx[t]["chosen"]) == 3


def test_output_files_have_neuco_keys(tmp_path):
    X, ids, lab = _data()
    cfg = _cfg()
    cfg["output_fold_results"] = True
    evaluate(X, lab, ids=ids, config=cfg, progress=False, out=tmp_path / "run")
    summ = json.loads((tmp_path / "run" / "results_summary.json").read_text())
    assert list(summ) == ["experiment", "overall_q_score", "overall_acc_score", "task_q_scores", "task_acc_scores",
                          "config"]
    assert summ["config"]["probe_type"] == "svm"
    assert summ["config"]["probe_params"]["opt_params"] == {"n_iter": 5, "random_state": 42}   # as NeuCo-Bench
    r = json.loads((tmp_path / "run" / "reg" / "reg_result.json").read_text())
    assert list(r) == ["q_stat", "mean_score", "std_dev", "hyperparamaters", "q_t"] and len(r["q_t"]) == 3
    assert set(r["hyperparamaters"]) == set(SVR().get_params()) and r["hyperparamaters"]["kernel"] == "poly"
    c = json.loads((tmp_path / "run" / "cls" / "cls_result.json").read_text())
    assert set(c["hyperparamaters"]) == set(SVC().get_params())
    cand = pd.read_csv(tmp_path / "run" / "candidate_scores.csv")
    assert list(cand.columns) == ["task", "fold", "candidate", "score", "scoring"] and len(cand) == 2 * 3 * 5


def test_cli_probe_svm(tmp_path):
    from typer.testing import CliRunner

    from eoembed.cli import app
    import yaml

    d = _write_inputs(tmp_path / "in", *_data())
    (tmp_path / "svm.yaml").write_text(yaml.safe_dump(_cfg()))
    r = CliRunner().invoke(app, ["bench", str(d / "emb.csv"), "--labels", str(d / "labels"), "--out",
                                 str(tmp_path / "o"), "--config", str(tmp_path / "svm.yaml"), "--no-progress"])
    assert r.exit_code == 0, r.output
    ref = evaluate(d / "emb.csv", d / "labels", config=tmp_path / "svm.yaml", progress=False)
    summ = json.loads((tmp_path / "o" / "results_summary.json").read_text())
    assert summ["task_q_scores"] == pytest.approx(ref.summary["task_q_scores"], abs=0)
    r = CliRunner().invoke(app, ["bench", str(d / "emb.csv"), "--labels", str(d / "labels"), "--out",
                                 str(tmp_path / "o2"), "--config", str(tmp_path / "svm.yaml"), "--probe", "svm",
                                 "--svm-select", "inner", "--folds", "2", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o2" / "eoembed_report.json").read_text())["settings"]["svm_select"] == "inner"
    bad = CliRunner().invoke(app, ["bench", str(d / "emb.csv"), "--labels", str(d / "labels"), "--out",
                                   str(tmp_path / "o3"), "--probe", "rbf"])
    assert bad.exit_code != 0 and "--probe" in bad.output + str(bad.exception)


def test_cli_probe_svm_on_cpu_does_not_import_torch(tmp_path):
    """`eoembed bench --probe svm --device cpu` runs libsvm on NumPy kernels: torch (2.2-2.8 s to import here) stays out."""
    import subprocess
    import sys

    import yaml

    d = _write_inputs(tmp_path / "in", *_data(n=60))
    (tmp_path / "svm.yaml").write_text(yaml.safe_dump(_cfg(folds=2, opt_params={"n_iter": 2})))
    code = ("import sys\nfrom eoembed.cli import app\ntry:\n"
            f"    app(['bench', {str(d / 'emb.csv')!r}, '--labels', {str(d / 'labels')!r}, '--out', "
            f"{str(tmp_path / 'o')!r}, '--config', {str(tmp_path / 'svm.yaml')!r}, '--device', 'cpu', "
            "'--no-progress'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('TORCH', 'torch' in sys.modules)\n")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TORCH False" in proc.stdout, proc.stdout[-2000:]
    assert json.loads((tmp_path / "o" / "results_summary.json").read_text())["config"]["probe_type"] == "svm"


@pytest.mark.parametrize("kwargs,match", [
    ({"probe": "rbf"}, r"probe='rbf'; use one of \('linear', 'svm'\)"),
    ({"probe": "svm", "mode": "ridge"}, "runs in mode='compat' only"),
    ({"probe": "svm", "metric": "tessera"}, "metric='neuco'"),
    ({"probe": "svm", "svm_select": "best"}, "svm_select='best'"),
    ({"probe": "svm", "svm_search": "grid"}, "svm_search='grid'"),
])
def test_bad_arguments(kwargs, match):
    X, ids, lab = _data(n=40)
    with pytest.raises(DataError, match=match):
        evaluate(X, lab, ids=ids, progress=False, **kwargs)


@pytest.mark.parametrize("pp,match", [
    ({"C_start_end": [10, 1]}, r"C_start_end` must be \[minimum, maximum\]"),
    ({"C_start_end": [0, 1]}, "log-uniformly: both ends must be > 0"),
    ({"C_start_end": "big"}, "C_start_end` must be a list"),
    ({"kernel_degree_list": [1, 2]}, "cannot be searched with kernel degree 1"),
    ({"kernel_degree_list": [2.5]}, "kernel_degree_list` must be an integer"),
    ({"epsilon_list": [0.1, -1]}, "epsilon_list` must be a positive"),
    ({"opt_params": {"cv": 5}}, "opt_params.cv` must not be given"),
    ({"opt_params": {"n_iter": 0}}, r"opt_params.n_iter` must be an integer >= 1"),
    ({"opt_params": {"scoring": "r2"}}, r"unknown probe_params.opt_params option\(s\) \['scoring'\]"),
    ({"kernel": "rbf"}, r"unknown probe_params option\(s\) \['kernel'\] for probe_type svm"),
])
def test_bad_config_values(pp, match):
    with pytest.raises(DataError, match=match):
        read_config(_cfg(**pp))
    cfg = _cfg()
    del cfg["probe_params"]["C_start_end"]
    with pytest.raises(DataError, match="C_start_end` is required"):
        read_config(cfg)


def test_one_class_training_fold_is_a_clear_error():
    X, ids, lab = _data(n=40)
    lab["cls"] = 0.0
    lab.iloc[0, 1] = 1.0
    with pytest.raises(Exception, match="one class only|classes"):
        evaluate(X, lab[["cls"]].assign(), ids=ids, config=_cfg(folds=2), progress=False)


@pytest.mark.skipif(not HAS_SKOPT, reason="scikit-optimize not installed (svm_search='bayes')")
def test_bayes_search_reproduces_bayessearchcv():
    import warnings

    from skopt import BayesSearchCV
    from skopt.space import Categorical, Real
    from sklearn.model_selection import ShuffleSplit

    from eoembed.bench.io import prepare

    X, ids, lab = _data(n=100)
    pp = copy.deepcopy(PP)
    pp["opt_params"] = {"n_iter": 9, "optimizer_kwargs": {"base_estimator": "RF", "n_initial_points": 5}}
    res = evaluate(X, lab[["reg"]], ids=ids, config={"k_folds": 3, "probe_type": "svm", "probe_params": pp},
                   progress=False, svm_search="bayes")
    prep = prepare(X, lab[["reg"]], ids=ids)
    rows = prep.rows["reg"]
    space = {"C": Real(0.01, 10.0, prior="log-uniform"), "degree": Categorical([2, 3]), "kernel": Categorical(["poly"]),
             "gamma": Real(0.001, 0.1, prior="log-uniform"), "coef0": Real(-1, 2, prior="uniform"),
             "epsilon": Categorical([0.01, 0.05, 0.1])}
    opt = BayesSearchCV(SVR(), space, cv=ShuffleSplit(3, test_size=0.1, random_state=42), n_iter=9, n_points=1,
                        scoring={"metric": "r2", "scoring": "neg_mean_squared_error"}, refit="scoring",
                        return_train_score=True, random_state=42,
                        optimizer_kwargs={"base_estimator": "RF", "n_initial_points": 5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.fit(prep.X[rows].astype(np.float64), prep.Y[0][rows])
    theirs = [max(opt.cv_results_[f"split{f}_test_metric"]) for f in range(3)]
    np.testing.assert_allclose(res.folds.score, theirs, atol=1e-6)
    cands = res.details["svm"]["candidates"]["reg"]
    assert [round(c["C"], 9) for c in cands] == [round(p["C"], 9) for p in opt.cv_results_["params"]]
    assert [{k: c[k] for k in ("degree", "epsilon")} for c in cands] == \
        [{k: p[k] for k in ("degree", "epsilon")} for p in opt.cv_results_["params"]]   # 4 guided points too


@pytest.mark.skipif(not HAS_SKOPT, reason="scikit-optimize not installed (svm_search='bayes')")
def test_fast_forest_surrogate_is_bit_identical():
    """The surrogate's faster predict gives skopt's exact candidate sequence (9 asks, 4 of them guided)."""
    from skopt import Optimizer
    from skopt.space import Categorical, Real
    from sklearn.utils import check_random_state

    dims = [Real(1e-3, 1e3, prior="log-uniform"), Real(-1, 2), Categorical([2, 3]), Real(1e-4, 10, prior="log-uniform")]

    def run(fast):
        opt = Optimizer(dims, base_estimator="RF", n_initial_points=5, random_state=check_random_state(3))
        if fast:
            opt.base_estimator_ = S._fast_forest(opt.base_estimator_)
            assert type(opt.base_estimator_).__name__ == "FastRF"
        rng, xs = np.random.default_rng(0), []
        for _ in range(9):
            x = opt.ask()
            xs.append(x)
            opt.tell(x, float(rng.standard_normal()))
        mean, std = opt.models[-1].predict(opt.space.transform(xs), return_std=True)
        return xs, mean, std

    a, b = run(False), run(True)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])


@pytest.mark.slow
@pytest.mark.skipif(not (HAS_SKOPT and NEUCO_SRC and (Path(NEUCO_SRC or "-") / "benchmark").is_dir()),
                    reason="needs NEUCO_BENCH_SRC (NeuCo-Bench's source) and scikit-optimize")
def test_neuco_svm_itself_twice_and_eoembed(tmp_path):
    """NeuCo-Bench's own SVM code (subprocess) at two random_states: eoembed's bayes search equals the run with
    the same random_state; the run-to-run spread is what benchmarks/bench_svm.py reports as noise."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from neuco_reference import run_neuco, write_neuco_inputs

    X, ids, lab = _data(n=150, d=64)
    emb, labels = write_neuco_inputs(X, ids, lab, tmp_path / "in")
    pp = copy.deepcopy(PP)
    pp["opt_params"] = {"n_iter": 6, "n_points": 1, "optimizer_kwargs": {"base_estimator": "RF",
                                                                          "n_initial_points": 5}}
    runs = {}
    for rs in (42, 7):
        cfg = {"k_folds": 3, "probe_type": "svm", "probe_params": copy.deepcopy(pp), "enable_plots": False,
               "output_fold_results": True}
        cfg["probe_params"]["opt_params"]["random_state"] = rs
        runs[rs] = run_neuco(NEUCO_SRC, emb, labels, cfg, tmp_path / f"n{rs}",
                             pythonpath=os.path.dirname(os.path.dirname(importlib.util.find_spec("skopt").origin)))
    cfg = {"k_folds": 3, "probe_type": "svm", "probe_params": copy.deepcopy(pp)}
    mine = evaluate(emb, labels, config=cfg, progress=False, svm_search="bayes")
    for t in ("reg", "cls"):
        np.testing.assert_allclose(mine.folds[mine.folds.task == t].score, runs[42]["folds"][t], atol=1e-6)


@pytest.mark.skipif(HAS_SKOPT, reason="checks the message shown when scikit-optimize is missing")
def test_bayes_without_skopt_is_a_clear_error():
    X, ids, lab = _data(n=40)
    with pytest.raises(DataError, match="needs scikit-optimize"):
        evaluate(X, lab[["reg"]], ids=ids, config=_cfg(folds=2), progress=False, svm_search="bayes")


def test_default_gamma_scale_and_coef0_match_sklearn():
    """Without kernel_gamma_start_end / kernel_coef0_start_end the estimators keep scikit-learn's defaults
    (gamma='scale' on each fold's training rows, coef0=0), as in NeuCo-Bench."""
    from eoembed.bench.core import _splits
    from eoembed.bench.io import prepare

    X, ids, lab = _data(n=90)
    cfg = _cfg(folds=2)
    del cfg["probe_params"]["kernel_gamma_start_end"], cfg["probe_params"]["kernel_coef0_start_end"]
    cfg["probe_params"]["opt_params"] = {"n_iter": 3}
    res = evaluate(X, lab[["reg"]], ids=ids, config=cfg, progress=False)
    cands = res.details["svm"]["candidates"]["reg"]
    assert all("gamma" not in c and "coef0" not in c for c in cands)
    prep = prepare(X, lab[["reg"]], ids=ids)
    ref = _reference(prep, _splits(prep, 2, 42), "reg", cands)
    np.testing.assert_allclose(res.folds.score, ref.max(axis=1), atol=1e-6)


@pytest.mark.parametrize("script", ["bench_svm.py", "bench_svm_e2e.py"])
def test_side_by_side_benchmarks_skip_without_neuco_source(script):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "NEUCO_BENCH_SRC"}
    p = subprocess.run([sys.executable, str(root / "benchmarks" / script), "--out", os.devnull],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith("SKIPPED: NeuCo-Bench's source is needed"), p.stdout
