"""NeuCo-Bench's SVM probe (``probe_type: svm``), computed fast, and an honest variant.

NeuCo-Bench (benchmark/evaluation/probes/svm.py, configs/sample_config_svm.yaml) tunes a polynomial-kernel
``SVR`` (regression; metric R^2, search scoring neg MSE) or ``SVC`` (binary classification, labels 0 -> -1;
metric F1, search scoring accuracy) with skopt ``BayesSearchCV`` whose ``cv`` is the task's K-fold 90/10
ShuffleSplit. Every candidate is fitted on every fold; a fold's score is the MAXIMUM of the metric over the
candidates (chosen on the test fold: optimistic); Q is computed over the K fold maxima.

What eoembed computes identically: same splits, same search space (C log-uniform, degree categorical, gamma
log-uniform, coef0 uniform, epsilon categorical for SVR), same number of candidates (``opt_params.n_iter``),
same libsvm solver and tolerance on the same kernel ``(gamma <x, y> + coef0) ** degree`` (given to scikit-learn
as a precomputed kernel), same per-fold metric and scoring, same per-fold maximum, same Q, same output files.

What differs (``search``):
- ``"random"`` (default, no extra dependency): the candidates are a seeded sample of the search space from its
  priors (the distribution of BayesSearchCV's 5 random initial points), not BayesSearchCV's sequence, whose later
  45 points follow a random-forest surrogate of the fold-mean scoring and so concentrate near the best region.
  Scores then differ from NeuCo-Bench's by less than its own run-to-run noise at 10 candidates (5 guided;
  benchmarks/bench_svm.py's noise study); at 45 guided points expect somewhat lower fold maxima.
- ``"bayes"`` (needs scikit-optimize): skopt's ``Optimizer`` driven exactly as ``BayesSearchCV`` drives it
  (same dimensions in the same order, ``optimizer_kwargs``, ``random_state``, one point per step, told the
  fold-mean of the scoring): the same candidate sequence as NeuCo-Bench for the same random_state, up to
  floating-point ties in the surrogate. Its random-forest surrogate predicts bit-identically but faster
  (:func:`_fast_forest`); skopt's forest fit and point sampling still cost ~0.2 s CPU per guided candidate.
NeuCo-Bench's refit of the best candidate on all samples (used only for its plots and stored probe) is not done;
``hyperparamaters`` (sic) in <task>_result.json is the same best-by-mean-scoring candidate's ``get_params()``.

Speed: one Gram matrix ``X X^T`` per task (float64; on the GPU when the device is CUDA), one kernel matrix per
candidate shared by every fold (and every task with the same rows), each fold fitted on the full kernel with
zero sample weights outside its train part (libsvm drops them: no copy of the fold's sub-matrix), libsvm called
with the arguments SVC/SVR.fit passes it but without the estimator's per-call validation (K is checked once),
predictions from the support vectors' kernel columns. What is left is libsvm's own SMO iterations (its working-set
selection and kernel-row look-ups), the same iterations NeuCo-Bench's fit runs; NeuCo-Bench additionally computes
every kernel entry as a D-dimensional dot product inside libsvm and predicts the train and test parts.

Solver (``solver``): "libsvm" runs libsvm on every fold. "active-set" (the default with random search) fits libsvm
on a candidate's first fold, then solves every other fold (and inner split) exactly from that solution
(:mod:`eoembed.bench._activeset`: a few Newton steps on the KKT system, each from one Cholesky factor per
candidate); a fold's answer is used only when it passes libsvm's own stopping rule, else libsvm fits the fold. It
is used for candidates whose kernel is positive semi-definite (coef0 >= 0; with coef0 < 0 the dual can be
non-convex and libsvm's answer depends on its path), with at least ``_activeset.MIN_FREE`` free vectors and
``_activeset.MIN_SOLVES`` fits to share the factorisation (fewer folds: libsvm). Fold scores
then equal libsvm's up to libsvm's tolerance (it stops within 1e-3 of the optimum this solver reaches): a test
decision within ~1e-3 of the boundary can flip, regression scores move by ~1e-4 (benchmarks/bench_svm.py counts
both). Random search runs candidates in parallel (``n_jobs`` threads, one BLAS thread each), each candidate's
folds in order, so scores do not depend on n_jobs; bayes search runs each candidate's folds in parallel.

Honest variant (``select="inner"``): each outer fold's hyper-parameters are chosen by the mean metric over
``INNER_FOLDS`` 90/10 ShuffleSplits of its training part only, refitted on the whole training part and scored once
on its test part; the per-fold maximum is computed beside it for comparison (never used for selection).
"""
from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Mapping

import numpy as np

from eoembed.bench import _activeset
from eoembed.errors import DataError, LabelError

#: probe_params of NeuCo-Bench's configs/sample_config_svm.yaml.
SVM_PROBE_DEFAULTS: dict = {
    "C_start_end": [0.001, 1000],
    "epsilon_list": [0.01, 0.05, 0.1, 0.5],
    "kernel_degree_list": [2, 3],
    "kernel_gamma_start_end": [0.0001, 10],
    "kernel_coef0_start_end": [-1, 2],
    "opt_params": {"n_iter": 50, "n_jobs": 1, "n_points": 1,
                   "optimizer_kwargs": {"base_estimator": "RF", "n_initial_points": 5}, "verbose": 1},
}
SEARCHES = ("random", "bayes")
SELECTS = ("max", "inner")
SOLVERS = ("auto", "libsvm", "active-set")
INNER_FOLDS = 3
PROBE_KEYS = ("C_start_end", "epsilon_list", "kernel_degree_list", "kernel_gamma_start_end",
              "kernel_coef0_start_end", "opt_params")
#: BayesSearchCV arguments a config may give in opt_params (NeuCo-Bench passes them through; ``cv`` is forbidden).
OPT_KEYS = ("n_iter", "n_jobs", "n_points", "optimizer_kwargs", "verbose", "random_state")


def _fail(where: str, msg: str) -> DataError:
    return DataError(f"config {where}: {msg}")


def _range(where, key, v, positive):
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in v)):
        raise _fail(where, f"`probe_params.{key}` must be a list [start, end] of two numbers, got {v!r}.")
    if not v[0] < v[1]:
        raise _fail(where, f"`probe_params.{key}` must be [minimum, maximum] with minimum < maximum, got {list(v)}.")
    if positive and v[0] <= 0:
        raise _fail(where, f"`probe_params.{key}` is searched log-uniformly: both ends must be > 0, got {list(v)}.")


def check_svm_params(pp, where: str = "dict") -> dict:
    """Check NeuCo-Bench SVM ``probe_params`` (its validate_config rules, as DataErrors naming the option);
    returns a deep copy with NeuCo-Bench's scalar forms (``kernel_degree_list: 2``, ``epsilon_list: 0.1``) kept."""
    if not isinstance(pp, Mapping):
        raise _fail(where, f"`probe_params` must be a mapping, got {type(pp).__name__}.")
    pp = copy.deepcopy(dict(pp))
    bad = [k for k in pp if k not in PROBE_KEYS]
    if bad:
        raise _fail(where, f"unknown probe_params option(s) {bad} for probe_type svm; known: {list(PROBE_KEYS)}.")
    for k in ("C_start_end", "kernel_degree_list"):
        if k not in pp:
            raise _fail(where, f"`probe_params.{k}` is required for probe_type svm (sample_config_svm.yaml: "
                               f"{SVM_PROBE_DEFAULTS[k]}).")
    _range(where, "C_start_end", pp["C_start_end"], True)
    deg = pp["kernel_degree_list"]
    degs = [deg] if isinstance(deg, int) and not isinstance(deg, bool) else deg
    if (not isinstance(degs, list) or not degs
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in degs)):
        raise _fail(where, f"`probe_params.kernel_degree_list` must be an integer >= 1 or a list of them, got {deg!r}.")
    for k, positive in (("kernel_gamma_start_end", True), ("kernel_coef0_start_end", False)):
        if pp.get(k) is not None:
            _range(where, k, pp[k], positive)
            if 1 in degs:
                raise _fail(where, f"`probe_params.{k}` cannot be searched with kernel degree 1 (NeuCo-Bench's "
                                   f"rule): remove 1 from kernel_degree_list or leave {k} out.")
    eps = pp.get("epsilon_list")
    if eps is not None:
        epss = [eps] if isinstance(eps, float) else eps
        if (not isinstance(epss, list) or not epss
                or not all(isinstance(e, (int, float)) and not isinstance(e, bool) and e > 0 for e in epss)):
            raise _fail(where, f"`probe_params.epsilon_list` must be a positive float or a list of them, got {eps!r}.")
    op = pp.get("opt_params")
    if op is not None:
        if not isinstance(op, Mapping):
            raise _fail(where, f"`probe_params.opt_params` must be a mapping, got {type(op).__name__}.")
        if "cv" in op:
            raise _fail(where, "`probe_params.opt_params.cv` must not be given: the folds are the k_folds "
                               "ShuffleSplit (NeuCo-Bench's rule).")
        bad = [k for k in op if k not in OPT_KEYS]
        if bad:
            raise _fail(where, f"unknown probe_params.opt_params option(s) {bad}; known: {list(OPT_KEYS)}.")
        for k, lo in (("n_iter", 1), ("n_points", 1)):
            v = op.get(k, lo)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise _fail(where, f"`probe_params.opt_params.{k}` must be an integer >= {lo}, got {v!r}.")
        nj = op.get("n_jobs", 1)
        if isinstance(nj, bool) or not isinstance(nj, int) or nj == 0 or nj < -1:
            raise _fail(where, f"`probe_params.opt_params.n_jobs` must be a positive integer or -1, got {nj!r}.")
        rs = op.get("random_state", 0)
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, int) or rs < 0):
            raise _fail(where, f"`probe_params.opt_params.random_state` must be a non-negative integer, got {rs!r}.")
        ok = op.get("optimizer_kwargs", {})
        if ok is not None and not isinstance(ok, Mapping):
            raise _fail(where, f"`probe_params.opt_params.optimizer_kwargs` must be a mapping, got {ok!r}.")
    return pp


def search_space(pp: dict, classification: bool) -> dict:
    """The search space of NeuCo-Bench's SVMHPOptimizer: name -> ("log", lo, hi) | ("uniform", lo, hi) |
    ("cat", values), in skopt's order (sorted names). epsilon only for regression."""
    deg = pp["kernel_degree_list"]
    sp = {"C": ("log", float(pp["C_start_end"][0]), float(pp["C_start_end"][1])),
          "degree": ("cat", [deg] if isinstance(deg, int) else list(deg)),
          "kernel": ("cat", ["poly"])}
    if pp.get("kernel_gamma_start_end") is not None:
        sp["gamma"] = ("log",) + tuple(float(v) for v in pp["kernel_gamma_start_end"])
    if pp.get("kernel_coef0_start_end") is not None:
        sp["coef0"] = ("uniform",) + tuple(float(v) for v in pp["kernel_coef0_start_end"])
    eps = pp.get("epsilon_list")
    if eps is not None and not classification:
        sp["epsilon"] = ("cat", [eps] if isinstance(eps, float) else list(eps))
    return dict(sorted(sp.items()))


def sample_candidates(pp: dict, classification: bool, n: int, seed: int) -> list[dict]:
    """``n`` candidates drawn independently from the priors of :func:`search_space` (seeded). The kernel and C
    draws do not depend on the task type (epsilon comes from its own stream), so regression and classification
    tasks share their kernel matrices."""
    sp = search_space(pp, classification)
    rng, rng_eps = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    out = []
    for _ in range(n):
        c = {}
        for name in ("C", "coef0", "degree", "gamma"):
            if name not in sp:
                continue
            kind, *a = sp[name]
            if kind == "log":
                c[name] = float(10 ** rng.uniform(np.log10(a[0]), np.log10(a[1])))
            elif kind == "uniform":
                c[name] = float(rng.uniform(a[0], a[1]))
            else:
                c[name] = a[0][int(rng.integers(len(a[0])))]
        eps_draw = int(rng_eps.integers(1 << 30))
        if "epsilon" in sp:
            c["epsilon"] = float(sp["epsilon"][1][eps_draw % len(sp["epsilon"][1])])
        c["kernel"] = "poly"
        out.append(c)
    return out


def estimator_params(cand: dict, classification: bool) -> dict:
    """``get_params()`` of the scikit-learn estimator NeuCo-Bench builds for a candidate (its 'hyperparamaters')."""
    from sklearn.svm import SVC, SVR

    est = (SVC if classification else SVR)(**cand)
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in est.get_params(deep=True).items()}


def gram(X: np.ndarray, device=None) -> np.ndarray:
    """``X X^T`` in float64 (NeuCo-Bench's libsvm computes its kernel in double); on the GPU when ``device`` is
    CUDA. ``device="cpu"`` (what :func:`eoembed.bench.evaluate` passes on a machine without CUDA) does not import
    torch."""
    X64 = np.ascontiguousarray(X, dtype=np.float64)
    if not (isinstance(device, str) and device.strip() == "cpu"):
        import torch

        from eoembed import runtime

        dev = runtime.resolve_device(device)
        if dev.type == "cuda":
            with runtime.compute("float32", dev):
                t = torch.as_tensor(X64, device=dev)
                return (t @ t.T).cpu().numpy()
    return X64 @ X64.T


def kernel(G: np.ndarray, cand: dict, gamma: float | None = None, bounds: tuple[float, float] | None = None
           ) -> np.ndarray:
    """Polynomial kernel ``(gamma G + coef0) ** degree`` from a Gram matrix (a new C-contiguous float64 array).
    ``bounds``: (min, max) of ``G`` when known (the overflow check then needs no pass over the result)."""
    g = float(cand.get("gamma", gamma))
    r = float(cand.get("coef0", 0.0))
    d = int(cand.get("degree", 3))
    lo, hi = bounds if bounds is not None else (float(G.min()), float(G.max()))
    top = max(abs(g * lo + r), abs(g * hi + r))        # the base is monotone in G: its extremes bound |K|
    if not math.isfinite(top) or (top > 1 and d * math.log10(top) > 307.5):
        raise DataError(f"the polynomial kernel of candidate {cand} overflows (values past 1e307); narrow "
                        "kernel_gamma_start_end / kernel_coef0_start_end or standardise the embeddings.")
    K = G * g
    K += r
    if d == 2:
        return np.square(K, out=K)
    out = K
    if d > 2:
        out = K * K
        for _ in range(d - 2):
            out *= K
    return out


def _metrics(y: np.ndarray, pred: np.ndarray, classification: bool) -> tuple[float, float]:
    """(metric, scoring) as NeuCo-Bench's scorers: (R^2, neg MSE) or (F1 of class 1, accuracy); sklearn's edge
    cases (constant targets: R^2 1 if exact else 0; no positive predicted or true: F1 0)."""
    if classification:
        tp = float(np.sum((pred == 1) & (y == 1)))
        fp = float(np.sum((pred == 1) & (y != 1)))
        fn = float(np.sum((pred != 1) & (y == 1)))
        den = 2 * tp + fp + fn
        return (2 * tp / den if den > 0 else 0.0), float(np.mean(pred == y))
    sse = float(np.sum((y - pred) ** 2))
    sst = float(np.sum((y - y.mean()) ** 2))
    r2 = (1.0 - sse / sst) if sst > 0 else (1.0 if sse == 0 else 0.0)
    return r2, -sse / len(y)


def _libsvm_fit(K: np.ndarray, y: np.ndarray, w: np.ndarray, cand: dict, classification: bool):
    """libsvm's training call exactly as ``SVC/SVR(kernel="precomputed", C, epsilon).fit(K, y, sample_weight=w)``
    makes it (same arguments: tol 1e-3, cache 200 MB, shrinking, no iteration limit, class weights 1), without the
    estimator's per-call parameter and input validation (milliseconds per fit; ``K`` was checked once by
    :func:`kernel`). Returns (support indices into the non-zero-weight rows, dual coefficients, intercept) with
    scikit-learn's signs (``decision_function = K[:, sv] @ dual + intercept``). Falls back to the estimator when
    scikit-learn's private ``_libsvm`` module is not there."""
    try:
        from sklearn.svm import _libsvm
    except ImportError:   # pragma: no cover - other scikit-learn layouts
        _libsvm = None
    if _libsvm is None:
        from sklearn.svm import SVC, SVR

        import sklearn
        est = (SVC(kernel="precomputed", C=cand["C"]) if classification
               else SVR(kernel="precomputed", C=cand["C"], epsilon=cand.get("epsilon", 0.1)))
        with sklearn.config_context(assume_finite=True):
            est.fit(K, y, sample_weight=w)
        return est.support_, est.dual_coef_[0], float(est.intercept_[0])
    if classification:   # what BaseSVC._validate_targets hands libsvm: class indices of the sorted classes
        yy = (y > 0).astype(np.float64)
        kw = dict(svm_type=0, class_weight=np.ones(2), epsilon=0.0)
    else:
        yy = np.ascontiguousarray(y, dtype=np.float64)
        kw = dict(svm_type=3, class_weight=np.empty(0), epsilon=float(cand.get("epsilon", 0.1)))
    _libsvm.set_verbosity_wrap(0)   # libsvm's global print switch (the estimator sets it from verbose=False)
    support, _, _, coef, intercept, _, _, status, _ = _libsvm.fit(
        K, yy, kernel="precomputed", C=float(cand["C"]), nu=0.5, probability=0, degree=3, shrinking=1, tol=1e-3,
        cache_size=200.0, coef0=0.0, gamma=0.0, max_iter=-1, random_seed=0, sample_weight=w, **kw)
    dual, b = coef[0], float(intercept[0])
    if classification:   # scikit-learn flips both for two classes
        dual, b = -dual, -b
    return support, dual, b


def fit_score(K: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, cand: dict,
              classification: bool, where: str = "") -> tuple[float, float]:
    """Fit libsvm on the kernel rows/columns of ``train`` (zero sample weights elsewhere) and score on ``test``:
    (metric, scoring). ``K``: finite, C-contiguous float64 (as :func:`kernel` returns it); ``y``: labels of all
    rows (classification in {-1, 1})."""
    return _score(K, y, test, *fit_libsvm(K, y, train, cand, classification, where), classification)


def fit_libsvm(K: np.ndarray, y: np.ndarray, train: np.ndarray, cand: dict, classification: bool,
               where: str = "") -> tuple[np.ndarray, np.ndarray, float]:
    """libsvm on the rows ``train`` of ``K``: (support rows, their signed dual coefficients, intercept)."""
    n = len(y)
    w = np.zeros(n)
    w[train] = 1.0
    if classification and ((y[train] > 0).all() or (y[train] < 0).all()):
        raise LabelError(f"{where}: the training part of this fold holds one class only; the SVM needs both "
                         "(NeuCo-Bench fails here too). Use more samples of the rare class.")
    support, dual, b = _libsvm_fit(K, y, w, cand, classification)
    return np.sort(train)[support], dual, b   # libsvm dropped the zero-weight rows: support indexes the rest


def _score(K, y, test, sv, dual, b, classification) -> tuple[float, float]:
    dec = K[np.ix_(test, sv)] @ dual + b
    if classification:
        dec = np.where(dec < 0, -1.0, 1.0)   # sklearn/libsvm: decision >= 0 -> classes_[1] (= 1)
    return _metrics(y[test], dec, classification)


def _scale_gamma(G: np.ndarray, train: np.ndarray, X: np.ndarray) -> float:
    """scikit-learn's gamma='scale' on a fold's training rows: 1 / (n_features * X.var())."""
    v = float(np.asarray(X[train], dtype=np.float64).var())
    return 1.0 / (X.shape[1] * v) if v > 0 else 1.0


def _inner_splits(train: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import ShuffleSplit

    ss = ShuffleSplit(n_splits=INNER_FOLDS, test_size=0.1, random_state=seed)
    return [(train[a], train[b]) for a, b in ss.split(np.zeros(len(train)))]


class _Task:
    """One task of an SVM run: labels, local folds, per-(fold, candidate) metric and scoring."""

    def __init__(self, name, y, classification, folds, cands, select, split_seed, solver="libsvm"):
        self.name, self.cls, self.folds, self.cands = name, classification, folds, cands
        self.y = np.where(y == 0, -1.0, y) if classification else y
        K, C = len(folds), len(cands)
        self.metric = np.full((K, C), np.nan)
        self.scoring = np.full((K, C), np.nan)
        self.inner = [_inner_splits(tr, split_seed) for tr, _ in folds] if select == "inner" else None
        self.inner_metric = np.full((K, C, INNER_FOLDS), np.nan) if select == "inner" else None
        self.optimizer_steps: list[float] = []   # CPU seconds in skopt's ask + tell per step (search="bayes")
        self.bounds = None                       # (min, max) of the Gram matrix
        self.active = solver == "active-set"
        self.fits = {"active-set": 0, "libsvm": 0}   # fits per solver (the active set falls back to libsvm)
        self._lock = threading.Lock()             # candidates may run in parallel threads

    def _fit(self, K, tr, te, c, where, fs):
        """(metric, scoring, solver used) of one fit: the active-set solver when it certifies, else libsvm."""
        if fs is not None:
            r = fs.solve(tr)
            if r is not None:
                beta, b = r
                sv = np.flatnonzero(beta)
                return (*_score(K, self.y, te, sv, beta[sv], b, self.cls), "active-set")
        return (*fit_score(K, self.y, tr, te, c, self.cls, where), "libsvm")

    def _seed(self, j, K, c):
        """libsvm on fold 0 (its scores recorded); its solution seeds the other folds' active-set solver (None when
        the solver cannot take this candidate)."""
        tr, te = self.folds[0]
        sv, dual, b = fit_libsvm(K, self.y, tr, c, self.cls, f"task {self.name!r}, fold 0")
        self.metric[0, j], self.scoring[0, j] = _score(K, self.y, te, sv, dual, b, self.cls)
        beta0 = np.zeros(len(self.y))
        beta0[sv] = dual
        fs = _activeset.FoldSolver(K, self.y, c["C"], beta0, b, train0=tr,
                                   epsilon=None if self.cls else float(c.get("epsilon", 0.1)))
        return fs if fs.ok else None

    def run_candidate(self, j, K, X, G, pool):
        c = self.cands[j]
        # the active set only for positive semi-definite kernels (coef0 >= 0), whose dual is convex: there every
        # KKT point is the optimum libsvm approximates. With coef0 < 0 the kernel can be indefinite and libsvm's
        # answer depends on its path: libsvm it stays. It pays once the factorisation it costs is shared by enough
        # solves (MIN_SOLVES: about the break-even of a 2,000-row candidate whose every row is a free vector).
        solves = len(self.folds) * (1 + (INNER_FOLDS if self.inner is not None else 0)) - 1
        seed = (self.active and K is not None and float(c.get("coef0", 0.0)) >= 0
                and solves >= _activeset.MIN_SOLVES)
        fs = self._seed(j, K, c) if seed else None
        used = ["libsvm"] if seed else []

        def one(k):
            tr, te = self.folds[k]
            Kk = K if K is not None else kernel(G, c, _scale_gamma(G, tr, X), self.bounds)
            where = f"task {self.name!r}, fold {k}"
            if not (seed and k == 0):      # fold 0 of a seeded candidate is scored by _seed
                self.metric[k, j], self.scoring[k, j], u = self._fit(Kk, tr, te, c, where, fs)
                used.append(u)
            if self.inner is not None:
                for i, (itr, ite) in enumerate(self.inner[k]):
                    Ki = K if K is not None else kernel(G, c, _scale_gamma(G, itr, X), self.bounds)
                    self.inner_metric[k, j, i], _, u = self._fit(Ki, itr, ite, c, f"{where}, inner split {i}", fs)
                    used.append(u)
        if pool is not None:
            list(pool.map(one, range(len(self.folds))))
        else:
            for k in range(len(self.folds)):
                one(k)
        with self._lock:
            for u in used:
                self.fits[u] += 1


def resolve_solver(solver: str, search: str) -> str:
    """``"auto"``: the active-set solver for random search, libsvm for bayes (whose candidate sequence then
    follows NeuCo-Bench's fold scores bit for bit)."""
    if solver not in SOLVERS:
        raise DataError(f"svm_solver={solver!r}; use one of {SOLVERS}.")
    if solver == "auto":
        return "active-set" if search == "random" else "libsvm"
    return solver


def svm_scores(X: np.ndarray, tasks: list[dict], pp: dict, *, search: str = "random", select: str = "max",
               seed: int = 42, split_seed: int = 42, n_jobs: int = 1, device=None, progress: bool = True,
               solver: str = "auto") -> list[dict]:
    """NeuCo-Bench's SVM protocol on every task. ``tasks``: dicts with ``name``, ``rows`` (indices into X),
    ``y`` (labels of those rows, scaled), ``classification``, ``folds`` (list of (train, test) positions into
    ``rows``). ``pp``: checked probe_params. Returns per task: ``scores`` (K,) reported fold scores (per-fold max,
    or the inner-selected candidate's test score), ``max_scores`` (K,) per-fold maxima, ``metric`` / ``scoring``
    (K, C), ``candidates``, ``best`` (index of the best fold-mean scoring), ``chosen`` (K,) for select="inner"."""
    if search not in SEARCHES:
        raise DataError(f"svm_search={search!r}; use one of {SEARCHES}.")
    if select not in SELECTS:
        raise DataError(f"svm_select={select!r}; use one of {SELECTS}.")
    solver = resolve_solver(solver, search)
    op = pp.get("opt_params") or {}
    n_iter = int(op.get("n_iter", 50))
    rs = op.get("random_state", seed)
    if n_jobs == -1:
        import os
        n_jobs = os.cpu_count() or 1
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    pool = ThreadPoolExecutor(n_jobs) if n_jobs > 1 else None
    # tasks with the same rows share the Gram matrix (and, for random search, every kernel matrix)
    groups: list[tuple[np.ndarray, list[_Task]]] = []
    for t in tasks:
        cands = sample_candidates(pp, t["classification"], n_iter, rs) if search == "random" else []
        # each task's rows in ascending order (its labels and fold positions mapped along), so that tasks
        # labelling the same samples in different orders share one Gram matrix and kernel matrices
        rows0 = np.asarray(t["rows"])
        order = np.argsort(rows0, kind="stable")
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        task = _Task(t["name"], np.asarray(t["y"], dtype=np.float64)[order], t["classification"],
                     [(inv[np.asarray(a)], inv[np.asarray(b)]) for a, b in t["folds"]], cands, select, split_seed,
                     solver)
        rows = rows0[order]
        for grows, members in groups:
            if len(grows) == len(rows) and np.array_equal(grows, rows):
                members.append(task)
                break
        else:
            groups.append((rows, [task]))
    try:
        bar = tqdm(total=n_iter * len(tasks), desc="svm candidates", disable=not progress)
        for rows, members in groups:
            Xg = X[rows]
            G = gram(Xg, device)
            bounds = (float(G.min()), float(G.max()))
            for task in members:
                task.bounds = bounds
            # one BLAS thread per fit: n_jobs is the number of cores used (NeuCo-Bench's libsvm uses one each)
            with threadpool_limits(limits=1, user_api="blas"):
                if search == "random":
                    # candidates in parallel (each one's folds in order, in one thread: the active-set solver's
                    # shared state then never depends on n_jobs, nor do the scores, to the last bit)
                    def candidate(j, members=members, Xg=Xg, G=G, bounds=bounds):
                        c = members[0].cands[j]
                        K = kernel(G, c, bounds=bounds) if "gamma" in c else None
                        for task in members:
                            task.run_candidate(j, K, Xg, G, None)
                        return len(members)
                    for m in (pool.map(candidate, range(n_iter)) if pool is not None
                              else map(candidate, range(n_iter))):
                        bar.update(m)
                else:
                    for task in members:
                        _bayes(task, pp, n_iter, rs, Xg, G, pool, bar)
        bar.close()
    finally:
        if pool is not None:
            pool.shutdown()
    out = []
    for _, members in groups:
        for task in members:
            mx = np.max(task.metric, axis=1)
            res = {"name": task.name, "max_scores": mx, "metric": task.metric, "scoring": task.scoring,
                   "candidates": task.cands, "best": int(np.argmax(task.scoring.mean(axis=0))),
                   "optimizer_steps": task.optimizer_steps, "solver": solver, "fits": dict(task.fits)}
            if select == "inner":
                chosen = np.argmax(task.inner_metric.mean(axis=2), axis=1)   # training part only
                res["chosen"] = chosen
                res["scores"] = task.metric[np.arange(len(chosen)), chosen]
                res["inner_metric"] = task.inner_metric
            else:
                res["scores"] = mx
            out.append(res)
    order = {t["name"]: i for i, t in enumerate(tasks)}
    return sorted(out, key=lambda r: order[r["name"]])


def _bayes(task: _Task, pp: dict, n_iter: int, rs, X, G, pool, bar) -> None:
    """Drive skopt's Optimizer as BayesSearchCV does (NeuCo-Bench's search), told the fold-mean scoring."""
    try:
        from skopt import Optimizer
        from skopt.space import Categorical, Real
        from skopt.utils import dimensions_aslist, point_asdict
    except ImportError:
        raise DataError("svm_search='bayes' needs scikit-optimize (pip install scikit-optimize); or use "
                        "svm_search='random' (a seeded sample of the same space).") from None
    from sklearn.utils import check_random_state

    sp = {}
    for name, (kind, *a) in search_space(pp, task.cls).items():
        sp[name] = Categorical(a[0]) if kind == "cat" else Real(a[0], a[1], prior="log-uniform" if kind == "log"
                                                                 else "uniform")
    op = pp.get("opt_params") or {}
    kwargs = dict(op.get("optimizer_kwargs") or {})
    kwargs["dimensions"] = dimensions_aslist(sp)
    kwargs["random_state"] = check_random_state(rs)
    opt = Optimizer(**kwargs)
    opt.base_estimator_ = _fast_forest(opt.base_estimator_)
    n_points = int(op.get("n_points", 1))
    K_, C_ = task.metric.shape
    task.metric = np.full((K_, n_iter), np.nan)
    task.scoring = np.full((K_, n_iter), np.nan)
    if task.inner_metric is not None:
        task.inner_metric = np.full((K_, n_iter, INNER_FOLDS), np.nan)
    left = n_iter
    while left > 0:
        m = min(left, n_points)
        t0 = time.process_time()
        params = [[np.array(v).item() for v in p] for p in _ask(opt, m)]
        step = time.process_time() - t0
        start = len(task.cands)
        for p in params:
            task.cands.append(dict(point_asdict(sp, p)))
        for j in range(start, start + m):
            c = task.cands[j]
            task.run_candidate(j, kernel(G, c, bounds=task.bounds) if "gamma" in c else None, X, G, pool)
            bar.update(1)
        t0 = time.process_time()
        opt.tell(params, [-float(np.mean(task.scoring[:, j])) for j in range(start, start + m)])
        task.optimizer_steps.append(step + time.process_time() - t0)
        left -= m


_FAST_RF = None


def _fast_forest(est):
    """skopt's random-forest surrogate with the same parameters (so ``clone`` and ``fit`` are unchanged) whose
    ``predict`` gives bit-identical mean and std faster: one leaf look-up per tree serves both the tree's mean and
    its variance (skopt calls ``tree.apply`` and ``tree.predict`` separately, each with scikit-learn's per-call
    input validation), the sum runs in the forest's estimator order as scikit-learn's single-job predict does, and
    the last (X, return_std) answer is reused: skopt's ``gp_hedge`` acquisition asks the same 10,000 points three
    times per step. Other surrogates are returned unchanged."""
    global _FAST_RF
    from skopt.learning import RandomForestRegressor

    if type(est) is not RandomForestRegressor or est.criterion != "squared_error":
        return est
    if _FAST_RF is None:
        class FastRF(RandomForestRegressor):
            def predict(self, X, return_std=False):
                memo = getattr(self, "_memo", None)
                if memo is not None and memo[0] is X and memo[1] == return_std:
                    return memo[2]
                X32 = np.asarray(X, dtype=np.float32)
                if X32.ndim != 2 or not np.isfinite(X32).all():
                    return super().predict(X, return_std=return_std)
                mean = np.zeros(len(X32))
                second = np.zeros(len(X32)) if return_std else None
                for t in self.estimators_:
                    leaf = t.tree_.apply(X32)
                    m = t.tree_.value.take(leaf, axis=0, mode="clip").reshape(len(X32), -1)[:, 0]
                    mean += m
                    if return_std:
                        var = t.tree_.impurity[leaf]
                        var[var < self.min_variance] = self.min_variance
                        second += var + m ** 2
                mean /= len(self.estimators_)
                out = mean
                if return_std:
                    second /= len(self.estimators_)
                    second -= mean ** 2.0
                    second[second < 0.0] = 0.0
                    out = (mean, second ** 0.5)
                self._memo = (X, return_std, out)
                return out

        _FAST_RF = FastRF
    return _FAST_RF(**est.get_params())


def probe_params_of(cfg: dict | None) -> dict:
    """The SVM probe_params of a (checked) config: its own when probe_type is svm, else the sample config's."""
    if cfg and cfg.get("probe_type") == "svm" and cfg.get("probe_params") is not None:
        return copy.deepcopy(cfg["probe_params"])
    return copy.deepcopy(SVM_PROBE_DEFAULTS)


def run(prep, splits: dict, pp: dict, *, search: str, select: str, seed: int, split_seed: int, device,
        progress: bool, solver: str = "auto") -> tuple[np.ndarray, list[dict]]:
    """:func:`svm_scores` on a Prepared problem with eoembed's splits (indices into prep.X): scores (T, K)."""
    tasks = []
    for k, t in enumerate(prep.tasks):
        rows = np.asarray(prep.rows[t])
        pos = np.full(len(prep.X), -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        folds = [(pos[tr], pos[te]) for tr, te in splits[t]]
        if any((f < 0).any() for tr_te in folds for f in tr_te):
            raise DataError(f"task {t!r}: a fold holds rows without a label for this task.")
        tasks.append({"name": t, "rows": rows, "y": prep.Y[k][rows], "folds": folds,
                      "classification": prep.task_types[t] == "classification"})
    op = pp.get("opt_params") or {}
    res = svm_scores(prep.X, tasks, pp, search=search, select=select, seed=seed, split_seed=split_seed,
                     n_jobs=int(op.get("n_jobs", 1)), device=device, progress=progress, solver=solver)
    return np.stack([r["scores"] for r in res]), res


def finish(result, info: list[dict], pp: dict, *, search: str, select: str, seed: int) -> None:
    """Turn a compat EvalResult assembled from SVM scores into the SVM one: NeuCo-Bench's config (probe_type svm,
    opt_params.random_state set as its cross_validate does), per-task 'hyperparamaters', candidate table, the
    optimistic per-fold maxima beside honest scores."""
    import pandas as pd

    from eoembed.bench.metrics import q_score

    cfg = copy.deepcopy(result.summary["config"])   # the given config (or sample) with the effective values
    ppw = copy.deepcopy(pp)
    op = ppw.get("opt_params")
    if op is not None and "random_state" not in op:
        op["random_state"] = seed   # NeuCo-Bench's cross_validate writes its random_seed (42) into the config
    cfg["probe_type"], cfg["probe_params"] = "svm", ppw
    result.summary["config"] = cfg
    d = result.details
    compat = select == "max"
    d["mode_note"] = ("NeuCo-Bench SVM-probe protocol (per-fold maximum over the candidates; scores comparable with "
                      "NeuCo-Bench's)." if compat else
                      "NOT NeuCo-Bench: SVM probe with hyper-parameters chosen on inner splits of each fold's "
                      "training part (honest); NeuCo-Bench's per-fold maximum is in details['svm']['max_over_"
                      "candidates'].")
    d["neuco_compatible"] = bool(compat and d.get("metric") == "neuco")
    for k in ("epochs", "batch_size", "learning_rate", "weight_decay"):
        d["settings"][k] = None
    op = pp.get("opt_params") or {}
    d["settings"].update(probe="svm", svm_search=search, svm_select=select,
                         svm_solver=info[0]["solver"] if info else None, n_iter=int(op.get("n_iter", 50)),
                         svm_seed=int(op.get("random_state", seed)),
                         inner_folds=INNER_FOLDS if select == "inner" else None)
    d["hyperparameters"] = {"probe": "svm"}
    d["task_hyperparameters"] = {r["name"]: estimator_params(r["candidates"][r["best"]],
                                                             result.per_task.loc[r["name"], "type"] == "classification")
                                 for r in info}
    opt = {}
    for r in info:
        s = r["max_scores"]
        opt[r["name"]] = {"q_stat": q_score(s), "mean_score": float(np.nanmean(s)), "std_dev": float(np.nanstd(s))}
        if select == "inner":
            opt[r["name"]]["chosen"] = [int(c) for c in r["chosen"]]
    d["svm"] = {"search": search, "select": select, "solver": info[0]["solver"] if info else None,
                "fits": {r["name"]: r["fits"] for r in info}, "max_over_candidates": opt,
                "optimizer_cpu_seconds": {r["name"]: r["optimizer_steps"] for r in info},   # per ask+tell step
                "candidates": {r["name"]: r["candidates"] for r in info}}
    rows = []
    for r in info:
        K, C = r["metric"].shape
        rows.append(pd.DataFrame({"task": r["name"], "fold": np.repeat(np.arange(K), C),
                                  "candidate": np.tile(np.arange(C), K), "score": r["metric"].reshape(-1),
                                  "scoring": r["scoring"].reshape(-1)}))
    result.history = pd.concat(rows, ignore_index=True)
    from eoembed.bench.core import _json_safe

    result.details = _json_safe(d)


def _ask(opt, n_points: int) -> list:
    """``opt.ask(n_points=n_points)`` (what BayesSearchCV calls): for one point the same point, without the
    constant-liar ``_tell`` on the throw-away copy that ``ask`` does after drawing it (its result is discarded)."""
    if n_points != 1:
        return opt.ask(n_points=n_points)
    if (1, "cl_min") in opt.cache_:
        return opt.cache_[(1, "cl_min")]
    cp = opt.copy(random_state=opt.rng.randint(0, np.iinfo(np.int32).max))
    X = [cp.ask()]
    opt.cache_ = {(1, "cl_min"): X}
    return X
