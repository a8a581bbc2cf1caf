"""The active-set SVM solver (eoembed.bench._activeset, ``svm_solver="active-set"``): on every fold it solves, its
answer is the SVC / SVR optimum (dual objective no worse than libsvm's, libsvm's own stopping rule met, decisions
equal to libsvm's up to libsvm's tolerance); what it cannot certify goes to libsvm; the choice is an argument of
the API and the CLI, recorded in the report, and results do not depend on n_jobs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import ShuffleSplit

from eoembed.bench import _activeset as AS
from eoembed.bench import evaluate
from eoembed.bench import svm as S
from eoembed.errors import DataError
from test_bench_svm import _cfg, _data, _write_inputs


def _problem(n=300, d=20, seed=0):
    rng = np.random.default_rng(seed)
    lat = rng.standard_normal((n, 3))
    X = lat @ rng.standard_normal((3, d)) * 0.5 + rng.standard_normal((n, d))
    X = (X - X.mean(0)) / X.std(0)
    y_cls = np.where(lat[:, 0] + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0)
    y_reg = lat[:, 1] + 0.3 * rng.standard_normal(n)
    return X, y_cls, (y_reg - y_reg.min()) / (y_reg.max() - y_reg.min())


# candidates from the sample config's space where many vectors are free (the solver's case)
CANDS = [{"C": 50.0, "degree": 3, "gamma": 0.1, "coef0": 1.0, "kernel": "poly", "epsilon": 0.01},
         {"C": 0.5, "degree": 3, "gamma": 0.05, "coef0": 0.5, "kernel": "poly", "epsilon": 0.05},
         {"C": 5.0, "degree": 3, "gamma": 0.3, "coef0": 0.2, "kernel": "poly", "epsilon": 0.1}]


def _libsvm(K, y, train, c, cls):
    w = np.zeros(len(y))
    w[train] = 1.0
    sup, dual, b = S._libsvm_fit(K, y, w, c, cls)
    beta = np.zeros(len(y))
    beta[np.sort(train)[sup]] = dual
    return beta, b


def _objective(K, y, beta, eps, cls):
    """The dual objective both solvers minimise, in signed coefficients."""
    q = 0.5 * beta @ K @ beta
    return q - y @ beta if cls else q - y @ beta + eps * np.abs(beta).sum()


@pytest.mark.parametrize("seed_rows", ["fold", "all"])
@pytest.mark.parametrize("cls", [True, False], ids=["svc", "svr"])
def test_folds_solved_to_the_optimum_that_libsvm_approximates(monkeypatch, cls, seed_rows):
    monkeypatch.setattr(AS, "MIN_FREE", 2)
    X, yc, yr = _problem()
    y = yc if cls else yr
    G = X @ X.T
    folds = list(ShuffleSplit(7, test_size=0.1, random_state=0).split(X))
    solved = 0
    for c in CANDS:
        K = S.kernel(G, c)
        # seeded as evaluate() does (libsvm on the first fold; its test rows guessed), or from all rows
        rows0 = folds[0][0] if seed_rows == "fold" else np.arange(len(y))
        b0, i0 = _libsvm(K, y, rows0, c, cls)
        fs = AS.FoldSolver(K, y, c["C"], b0, i0, epsilon=None if cls else c["epsilon"],
                           train0=rows0 if seed_rows == "fold" else None)
        assert fs.ok
        for tr, te in folds[1:]:
            r = fs.solve(tr)
            if r is None:
                continue
            solved += 1
            beta, b = r
            ref, rb = _libsvm(K, y, tr, c, cls)
            out = np.setdiff1d(np.arange(len(y)), tr)
            assert not beta[out].any()                                    # nothing outside the fold's rows
            assert abs(beta.sum()) <= 1e-10 * np.abs(beta).sum()          # equality constraint
            assert np.all(np.abs(beta) <= c["C"] * (1 + 1e-12))
            if cls:
                assert np.all(beta * y >= 0)                              # the label's sign
            eps = 0.0 if cls else c["epsilon"]
            mine, theirs = _objective(K, y, beta, eps, cls), _objective(K, y, ref, eps, cls)
            assert mine <= theirs + 1e-9 * abs(theirs)                    # at least as good as libsvm
            assert mine >= theirs - 1e-2 * abs(theirs)                    # and libsvm is near it
            dec, dref = K[te] @ beta + b, K[te] @ ref + rb
            if cls:
                assert np.mean((dec >= 0) == (dref >= 0)) >= 0.95
            else:
                assert np.max(np.abs(dec - dref)) < 0.05
    assert solved >= 0.8 * len(CANDS) * (len(folds) - 1)


def test_certificate_is_libsvms_stopping_rule(monkeypatch):
    monkeypatch.setattr(AS, "MIN_FREE", 2)
    X, y, _ = _problem()
    c = CANDS[0]
    K = S.kernel(X @ X.T, c)
    b0, i0 = _libsvm(K, y, np.arange(len(y)), c, True)
    fs = AS.FoldSolver(K, y, c["C"], b0, i0)
    tr = np.arange(270)
    beta, b = fs.solve(tr)
    assert fs._certify(tr, beta[tr]) is not None
    worse = beta[tr].copy()
    free = np.flatnonzero((worse != 0) & (np.abs(worse) < c["C"]))[:20]
    worse[free] *= 0.5                                  # feasible after the re-balance, far from optimal
    assert fs._certify(tr, worse) is None


def test_small_free_set_or_unfactorisable_kernel_goes_to_libsvm(monkeypatch):
    X, y, _ = _problem(n=120)
    c = CANDS[0]
    K = S.kernel(X @ X.T, c)
    b0, i0 = _libsvm(K, y, np.arange(len(y)), c, True)
    fs = AS.FoldSolver(K, y, c["C"], b0, i0)
    assert 2 <= len(fs.F0) < AS.MIN_FREE and not fs.ok          # few free vectors: libsvm is quicker there
    assert fs.solve(np.arange(100)) is None
    monkeypatch.setattr(AS, "MIN_FREE", 2)
    assert AS.FoldSolver(K, y, c["C"], b0, i0).ok
    beta = np.zeros(len(y))
    beta[np.flatnonzero(y > 0)[:3]], beta[np.flatnonzero(y < 0)[:3]] = 0.1, -0.1
    assert not AS.FoldSolver(np.ones_like(K), y, 1.0, beta, 0.0).ok   # rank one: no Cholesky factor
    monkeypatch.setattr(AS, "MAX_BYTES", 8 * len(y) * len(y))           # inverse + columns would not fit
    assert not AS.FoldSolver(K, y, c["C"], b0, i0).ok


def test_evaluate_with_the_active_set_solver(monkeypatch, tmp_path):
    X, ids, lab = _data()
    cfg = _cfg(folds=5, opt_params={"n_iter": 8})
    monkeypatch.setattr(AS, "MIN_FREE", 2)
    few = evaluate(X, lab, ids=ids, config=cfg, progress=False, svm_solver="active-set")
    assert few.details["svm"]["fits"]["cls"]["active-set"] == 0      # 4 solves to share a factor: libsvm
    monkeypatch.setattr(AS, "MIN_SOLVES", 2)
    lib = evaluate(X, lab, ids=ids, config=cfg, progress=False, svm_solver="libsvm")
    act = evaluate(X, lab, ids=ids, config=cfg, progress=False, svm_solver="active-set", out=tmp_path / "o")
    fits = act.details["svm"]["fits"]
    assert fits["cls"]["active-set"] > 0 and fits["reg"]["active-set"] > 0
    psd = sum(c["coef0"] >= 0 for c in act.details["svm"]["candidates"]["cls"])
    assert 0 < psd < 8                    # both kinds drawn: coef0 < 0 (maybe indefinite kernel) stays libsvm
    assert 0 < fits["cls"]["active-set"] <= 4 * psd             # fold 0 of each candidate is libsvm's
    assert fits["cls"]["active-set"] + fits["cls"]["libsvm"] == 40
    assert lib.details["svm"]["fits"]["cls"] == {"active-set": 0, "libsvm": 40}
    a, b = lib.history, act.history
    for t, tol in (("cls", 0.05), ("reg", 5e-3)):   # one flipped test decision moves F1 by ~1/20 here
        d = np.abs(a[a.task == t].score.to_numpy() - b[b.task == t].score.to_numpy())
        assert d.max() <= tol and np.median(d) <= 1e-3
    rep = json.loads((tmp_path / "o" / "eoembed_report.json").read_text())
    assert rep["settings"]["svm_solver"] == "active-set"
    assert "active-set" in act.details["precision"]["meaning"]
    # the same numbers with the folds run on two threads (one shared cache of solved columns)
    cfg2 = _cfg(folds=5, opt_params={"n_iter": 8, "n_jobs": 2})
    two = evaluate(X, lab, ids=ids, config=cfg2, progress=False, svm_solver="active-set")
    np.testing.assert_array_equal(two.history.score.to_numpy(), act.history.score.to_numpy())


def test_auto_picks_active_set_for_random_search_and_libsvm_for_bayes():
    assert S.resolve_solver("auto", "random") == "active-set"
    assert S.resolve_solver("auto", "bayes") == "libsvm"
    assert S.resolve_solver("libsvm", "random") == "libsvm"
    with pytest.raises(DataError, match="svm_solver='smo'"):
        S.resolve_solver("smo", "random")
    X, ids, lab = _data(n=40)
    with pytest.raises(DataError, match="svm_solver='smo'"):
        evaluate(X, lab, ids=ids, probe="svm", svm_solver="smo", progress=False)
    res = evaluate(X, lab, ids=ids, config=_cfg(folds=2), progress=False)
    assert res.details["settings"]["svm_solver"] == "active-set"


def test_blas_threads_are_restored():
    from threadpoolctl import threadpool_info

    before = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    X, ids, lab = _data(n=40)
    evaluate(X, lab, ids=ids, config=_cfg(folds=2), progress=False)
    assert [(i["internal_api"], i["num_threads"]) for i in threadpool_info()] == before


def test_cli_svm_solver(tmp_path):
    from typer.testing import CliRunner
    import yaml

    from eoembed.cli import app

    d = _write_inputs(tmp_path / "in", *_data(n=60))
    (tmp_path / "svm.yaml").write_text(yaml.safe_dump(_cfg(folds=2)))
    base = ["bench", str(d / "emb.csv"), "--labels", str(d / "labels"), "--config", str(tmp_path / "svm.yaml"),
            "--no-progress"]
    r = CliRunner().invoke(app, base + ["--out", str(tmp_path / "o"), "--svm-solver", "libsvm"])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "o" / "eoembed_report.json").read_text())
    assert rep["settings"]["svm_solver"] == "libsvm"
    bad = CliRunner().invoke(app, base + ["--out", str(tmp_path / "o2"), "--svm-solver", "smo"])
    assert bad.exit_code != 0 and "--svm-solver" in bad.output + str(bad.exception)
