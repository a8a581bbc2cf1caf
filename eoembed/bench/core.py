"""evaluate(): NeuCo-Bench-compatible evaluation of embeddings, and label-fraction curves."""
from __future__ import annotations

import copy
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eoembed.checks import check_out_path, safe_name
from eoembed.bench.config import NEUCO_DEFAULTS, read_config
from eoembed.bench.engine import best_over_epochs, resolve_kernels, train_linear_probes
from eoembed.bench.io import Prepared, prepare
from eoembed.bench.metrics import q_score
from eoembed.bench.splits import check_split_options, describe as describe_split, make_splits, split_inputs
from eoembed.errors import DataError, DataFileNotFound, LabelError

MODES = ("compat", "ridge")
PROBES = ("linear", "svm")
MODE_NOTES = {
    "compat": "NeuCo-Bench linear-probe protocol (scores comparable with NeuCo-Bench).",
    "ridge": "NOT NeuCo-Bench: closed-form ridge / logistic probes with inner-CV penalty; not comparable "
             "with NeuCo-Bench scores.",
}
#: eoembed's own file in a result folder (NeuCo-Bench's files keep exactly its keys).
REPORT_FILE = "eoembed_report.json"
MIN_SAMPLES = 11  # a 10% test fold then holds >= 2 samples (R^2 needs two)


@dataclass
class EvalResult:
    """Result of :func:`evaluate`.

    ``summary``: what results_summary.json holds (exactly NeuCo-Bench's keys); ``details``: what
    eoembed_report.json holds (mode, engine, settings and seeds, per-task details with fold scores, ``report``);
    ``report``: the input report (dropped / filled / excluded rows, standardisation, NaN folds)."""

    per_task: pd.DataFrame            # index task: type, q_stat, mean_score, std_dev, n_samples
    folds: pd.DataFrame               # tidy: task, fold, score
    overall_q: float
    overall_acc: float
    summary: dict
    report: dict
    mode: str = "compat"
    history: pd.DataFrame | None = field(default=None, repr=False)  # compat: task, fold, epoch, score
    details: dict = field(default_factory=dict, repr=False)
    experiment: str | None = field(default=None, repr=False)        # name given to evaluate(), if any

    def __repr__(self) -> str:
        q = ", ".join(f"{t}={v:.2f}" for t, v in self.per_task["q_stat"].items())
        return f"EvalResult(mode={self.mode!r}, overall_q={self.overall_q:.3f}, overall_acc={self.overall_acc:.3f}, Q: {q})"


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return obj


def _cuda_possible() -> bool:
    """False only when no CUDA GPU can be present (Linux without the NVIDIA driver): then torch is not imported."""
    return "torch" in sys.modules or not sys.platform.startswith("linux") or os.path.exists("/proc/driver/nvidia")


def _device(device):
    """eoembed.runtime.resolve_device, with the evaluation's error type; "cpu" (a string, without importing torch)
    for device "cpu", or None on a machine without a CUDA driver."""
    if (device is None and not _cuda_possible()) or (isinstance(device, str) and device.strip() == "cpu"):
        return "cpu"
    from eoembed import runtime
    try:
        return runtime.resolve_device(device)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _precision(device, mode: str) -> dict:
    """What is recorded with results: float32 always; the numba version for the fused CPU kernel (no torch), else
    :func:`eoembed.runtime.describe` (with torch's version)."""
    if mode == "compat" and resolve_kernels(device) == "fused":
        import numba
        return {"precision": "float32", "meaning": "IEEE float32 (fused numba CPU kernel, eoembed.bench.engine)",
                "numba": numba.__version__}
    from eoembed import runtime
    return runtime.describe("float32")


def _splits(prep: Prepared, folds: int, split_seed: int, split: str = "shuffle", **options):
    """Folds per task over its rows in label order (:func:`eoembed.bench.splits.make_splits`); default NeuCo-Bench's
    ShuffleSplit(K, test_size=0.1, random_state=split_seed). options: groups, train_ids, test_ids, km, n_clusters,
    latlon."""
    for t in prep.tasks:
        rows = prep.rows[t]
        if split == "shuffle" and len(rows) < MIN_SAMPLES:
            raise LabelError(f"Task {t!r} has only {len(rows)} samples with both a label and an embedding; "
                             f"at least {MIN_SAMPLES} are needed for 90/10 splits (two held-out samples per fold). "
                             "Use more samples or leave the task out with tasks=.")
    return make_splits(prep.ids, {t: prep.rows[t] for t in prep.tasks}, split=split, folds=folds, seed=split_seed,
                       **options)


def _split_options(split, split_km, split_clusters, train_ids, test_ids, folds, groups=None) -> dict:
    """make_splits options of evaluate's arguments (checked before any work)."""
    check_split_options(split, km=split_km, n_clusters=split_clusters, train_ids=train_ids, test_ids=test_ids,
                        groups=groups)
    if split == "fixed" and folds not in (None, 1):
        raise DataError(f"folds={folds!r} with split='fixed': a fixed split is one fold; leave folds unset.")
    opts = {"km": split_km, "n_clusters": split_clusters, "train_ids": train_ids, "test_ids": test_ids}
    return {k: v for k, v in opts.items() if v is not None}


def _check_compat_labels(prep: Prepared) -> None:
    for k, t in enumerate(prep.tasks):
        if prep.task_types[t] == "classification":
            vals = np.unique(prep.Y[k][np.isfinite(prep.Y[k])])
            if len(vals) != 2:
                raise LabelError(f"Task {t!r}: NeuCo-Bench classification is binary but the labels have "
                                 f"{len(vals)} classes; use mode='ridge' for multi-class tasks.")


def _run(prep: Prepared, splits: dict, mode: str, metric: str, epochs: int, seed: int, device, progress: bool,
         threads: int | None = None, batch_size: int = 64, lr: float = 1e-3, block_size: int | None = None):
    """Scores (T, K) and, for compat, the per-epoch history (T, K, E). threads: CPU threads of the compat probe
    engine (None: its default). block_size: probes per block (None: a memory budget; scores identical)."""
    tasks = prep.tasks
    K = len(splits[tasks[0]])
    if mode == "compat":
        tr = [splits[t][k][0] for t in tasks for k in range(K)]
        te = [splits[t][k][1] for t in tasks for k in range(K)]
        task_of = np.repeat(np.arange(len(tasks)), K)
        is_cls = np.array([prep.task_types[t] == "classification" for t in tasks])[task_of]
        hist = train_linear_probes(prep.X, prep.Y, task_of, is_cls, tr, te, epochs=epochs, seed=seed,
                                   device=device, metric=metric, progress=progress, threads=threads,
                                   batch_size=batch_size, lr=lr, block_size=block_size)
        return best_over_epochs(hist).reshape(len(tasks), K), hist.reshape(len(tasks), K, epochs)
    from eoembed.bench.ridge import ridge_scores
    sp = [splits[t] for t in tasks]
    return ridge_scores(prep.X, prep.Y, prep.Y_raw, tasks, prep.task_types, sp, metric=metric, seed=seed,
                        device=device, progress=progress), None


def _settings(config, *, folds, epochs, tasks, device, exclude_file, embedding_dim) -> dict:
    """Effective settings: explicit argument (not None) > config > NeuCo-Bench's sample config."""
    cfg = read_config(config) if config is not None else {}
    pp = cfg.get("probe_params") or {}
    pick = lambda arg, val, default: arg if arg is not None else (val if val is not None else default)  # noqa: E731
    cfg_dev = pp.get("device")
    st = {
        "folds": pick(folds, cfg.get("k_folds"), NEUCO_DEFAULTS["k_folds"]),
        "epochs": pick(epochs, pp.get("epochs"), NEUCO_DEFAULTS["probe_params"]["epochs"]),
        "batch_size": pick(None, pp.get("batch_size"), NEUCO_DEFAULTS["probe_params"]["batch_size"]),
        "learning_rate": pick(None, pp.get("learning_rate"), NEUCO_DEFAULTS["probe_params"]["learning_rate"]),
        "device": pick(device, None if cfg_dev == "auto" else cfg_dev, None),
        "tasks": pick(tasks, cfg.get("task_filter"), None),
        "exclude_file": pick(exclude_file, cfg.get("exclude_file"), None),
        "embedding_dim": pick(embedding_dim, cfg.get("embedding_dim"), None),
        "standardize": pick(None, cfg.get("standardize_embeddings"), True),
        "normalize_labels": pick(None, cfg.get("normalize_labels"), True),
        "output_fold_results": bool(cfg.get("output_fold_results", False)),
        "user_config": cfg,
    }
    for name, lo in (("folds", 2), ("epochs", 1)):
        v = st[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise DataError(f"{name}={v!r}; use an integer >= {lo} (NeuCo-Bench default "
                            f"{NEUCO_DEFAULTS['k_folds'] if name == 'folds' else 10}).")
    if st["embedding_dim"] is not None and (isinstance(st["embedding_dim"], bool)
                                            or not isinstance(st["embedding_dim"], (int, np.integer))
                                            or st["embedding_dim"] < 1):
        raise DataError(f"embedding_dim={st['embedding_dim']!r}; use a positive integer or None (inferred).")
    if st["exclude_file"] is not None and not Path(st["exclude_file"]).is_file():
        raise DataFileNotFound(f"exclude_file {str(st['exclude_file'])!r} does not exist or is not a file; give a "
                               "text file with one embedding id per line.")
    return st


def _neuco_config(st: dict, mode: str, tasks: list[str] | None) -> dict:
    """The ``config`` of results_summary.json as NeuCo-Bench writes it: the config given (else its sample config)
    with the values actually used, and without ``probe_params.device`` (NeuCo-Bench pops it before writing)."""
    cfg = copy.deepcopy(st["user_config"] or NEUCO_DEFAULTS)
    cfg["k_folds"] = int(st["folds"])
    for key, value in (("embedding_dim", st["embedding_dim"]), ("task_filter", tasks),
                       ("output_fold_results", st["output_fold_results"])):
        if key in cfg or value:
            cfg[key] = value
    if "exclude_file" in cfg:  # an eoembed extra of the config (NeuCo-Bench: the --exclude_file argument)
        cfg["exclude_file"] = None if st["exclude_file"] is None else str(st["exclude_file"])
    for key, value in (("standardize_embeddings", st["standardize"]), ("normalize_labels", st["normalize_labels"])):
        if key in cfg or not value:
            cfg[key] = bool(value)
    if mode == "compat":
        pp = dict(cfg.get("probe_params") or {})
        pp.pop("device", None)
        pp.update(batch_size=int(st["batch_size"]), epochs=int(st["epochs"]),
                  learning_rate=float(st["learning_rate"]))
        cfg["probe_type"], cfg["probe_params"] = "linear", pp
    else:
        cfg["probe_type"], cfg["probe_params"] = "eoembed_ridge", {}  # not NeuCo-Bench: scores not comparable
    return cfg


def _check_out(out) -> Path:
    """Before any work: ``out`` must be a folder or creatable in a writable place."""
    return check_out_path(out, option="out")


def _check_task_names(tasks) -> None:
    """Task names become result folders: none may write outside ``out``."""
    for t in tasks:
        safe_name(t, what="task name", where="the results folder")


def evaluate(embeddings, labels, folds: int | None = None, mode: str = "compat", seed: int = 42,
             epochs: int | None = None, tasks=None, out=None, device=None, ids=None, progress: bool = True,
             metric: str = "neuco", split_seed: int = 42, config=None, exclude_file=None,
             embedding_dim: int | None = None, experiment: str | None = None, probe: str | None = None,
             svm_select: str = "max", svm_search: str = "random", svm_solver: str = "auto", split: str = "shuffle",
             split_km: float | None = None, split_clusters: int | None = None, groups=None, train_ids=None,
             test_ids=None, meta=None) -> EvalResult:
    """Evaluate embeddings with linear probes on every labelled task, NeuCo-Bench style.

    embeddings: NeuCo CSV path | DataFrame (index or column ``id``) | xarray DataArray (sample, ...) | NumPy array
    with ``ids``. labels: NeuCo label folder | labels DataFrame (index id, one column per task,
    ``attrs["task_types"]``; :func:`eoembed.data.read_labels` of a folder gives the same folds as the folder).
    mode: "compat" (NeuCo-Bench protocol, all folds and tasks trained as one batched problem) or "ridge" (NOT
    NeuCo-Bench: tuned closed-form probes). seed drives probe initialisation and batch order; split_seed the
    ShuffleSplit (NeuCo-Bench: 42). metric: "neuco" (R^2 / F1) or "tessera" (max(0, R^2) / chance-adjusted
    balanced accuracy).

    NeuCo-Bench options: ``config`` (a NeuCo-Bench YAML config path or dict, see
    :func:`eoembed.bench.config.read_config`), ``exclude_file`` (ids to leave out, one per line),
    ``embedding_dim`` (zero-pad to this many columns; more is an error). An argument given here (not None) wins
    over the config, the config over the defaults (NeuCo-Bench's sample config: 40 folds, 10 epochs, batch 64,
    lr 1e-3). All arguments and ``out`` are checked before any computation.

    out: folder written like one NeuCo-Bench run folder (``<output_dir>/<phase>/<experiment>``):
    results_summary.json and <task>/<task>_result.json with exactly NeuCo-Bench's keys, plus eoembed's own
    eoembed_report.json, fold_scores.csv and (compat) epoch_scores.csv. experiment: the run's name in
    results_summary.json (default: the name of ``out``, as NeuCo-Bench's run folder name).

    probe: "linear" | "svm" (default: the config's probe_type, else linear). "svm" (mode="compat" only) is
    NeuCo-Bench's SVM probe (polynomial SVR/SVC, per-fold maximum over the searched candidates), see
    :mod:`eoembed.bench.svm`; svm_search "random" (seeded sample of its search space) | "bayes" (skopt's sequence,
    needs scikit-optimize); svm_select "max" (NeuCo-Bench) | "inner" (honest: chosen on inner splits of each
    fold's training part; NOT NeuCo-Bench); svm_solver "libsvm" (NeuCo-Bench's solver on every fold) |
    "active-set" (folds solved exactly from libsvm's fit of a candidate's first fold, each checked against
    libsvm's stopping rule, else refitted by libsvm) | "auto" (active-set for random search, libsvm for bayes).

    Splits (any mode; :mod:`eoembed.bench.splits`; Q is computed the same way over the folds): ``split="shuffle"``
    (NeuCo-Bench: ``folds`` random 90/10 splits per task), ``"fixed"`` (one fold: ``test_ids`` held out, trained on
    ``train_ids`` or every other labelled sample; ids as a list or a text file), ``"group"`` (``groups``: a Series /
    dict {id: group}, a CSV file ``id,<group>`` or a column of ``meta`` / of the labels DataFrame; 10% of the
    groups held out per fold), ``"spatial"`` (blocks of about ``split_km`` km, else ``split_clusters`` KMeans
    clusters (default 20) of lat/lon, 10% held out per fold; lat/lon from ``meta`` (a table, CSV or sample root with
    meta.csv), the embeddings' sample coordinates, lat/lon columns of the labels DataFrame, or ROOT/meta.csv beside
    a label folder ROOT/labels). The strategy and its parameters are recorded in eoembed_report.json (settings.split).
    """
    if probe is not None and probe not in PROBES:
        raise DataError(f"probe={probe!r}; use one of {PROBES}.")
    if mode not in MODES:
        raise DataError(f"mode={mode!r}; use one of {MODES}.")
    if metric not in ("neuco", "tessera"):
        raise DataError(f"metric={metric!r}; use 'neuco' or 'tessera'.")
    for name, v in (("seed", seed), ("split_seed", split_seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise DataError(f"{name}={v!r}; use a non-negative integer (NeuCo-Bench: 42).")
    split_opts = _split_options(split, split_km, split_clusters, train_ids, test_ids, folds, groups)
    labels, split_in, split_src = split_inputs(embeddings, labels, split=split, groups=groups, meta=meta)
    st = _settings(config, folds=None if split == "fixed" else folds, epochs=epochs, tasks=tasks, device=device,
                   exclude_file=exclude_file, embedding_dim=embedding_dim)
    if out is not None:
        _check_out(out)
    if experiment is not None and not str(experiment).strip():
        raise DataError("experiment=''; give a non-empty name, or None for the name of out.")
    probe = probe or (st["user_config"] or {}).get("probe_type", "linear")
    if probe == "svm":
        from eoembed.bench import svm as _svm

        if mode != "compat":
            raise DataError(f"probe='svm' is NeuCo-Bench's SVM protocol and runs in mode='compat' only, not "
                            f"mode={mode!r}; use mode='compat' (svm_select='inner' for the honest variant).")
        if metric != "neuco":
            raise DataError(f"probe='svm' scores with NeuCo-Bench's metrics only (metric='neuco'), not {metric!r}.")
        if svm_select not in _svm.SELECTS or svm_search not in _svm.SEARCHES:
            raise DataError(f"svm_select={svm_select!r}, svm_search={svm_search!r}; use svm_select in "
                            f"{_svm.SELECTS} and svm_search in {_svm.SEARCHES}.")
        svm_solver = _svm.resolve_solver(svm_solver, svm_search)
    dev = _device(st["device"])
    prep = prepare(embeddings, labels, ids=ids, tasks=st["tasks"], standardize=st["standardize"],
                   scale_labels=st["normalize_labels"], exclude_file=st["exclude_file"],
                   embedding_dim=st["embedding_dim"])
    if out is not None:
        _check_task_names(prep.tasks)
    if mode == "compat":
        _check_compat_labels(prep)
    splits = _splits(prep, int(st["folds"]), split_seed, split, **split_opts, **split_in)
    st["folds"] = len(splits[prep.tasks[0]])
    st["split"] = {**describe_split(splits.info), "sources": split_src}
    st["precision"] = _precision(dev, mode) if probe != "svm" else {
        "precision": "float64", "meaning": "libsvm on float64 kernel matrices" + (
            "; folds after the first by the float64 active-set solver where it applies, certified by libsvm's "
            "stopping rule"
            if svm_solver == "active-set" else "")}
    if probe == "svm":
        svm_pp = _svm.probe_params_of(st["user_config"])
        scores, svm_info = _svm.run(prep, splits, svm_pp, search=svm_search, select=svm_select, seed=seed,
                                    split_seed=split_seed, device=dev, progress=progress, solver=svm_solver)
        hist = None
    else:
        scores, hist = _run(prep, splits, mode, metric, int(st["epochs"]), seed, dev, progress,
                            batch_size=int(st["batch_size"]), lr=float(st["learning_rate"]))
    name = experiment if experiment is not None else (
        Path(out).name if out is not None else Path(embeddings).stem if isinstance(embeddings, (str, Path))
        else "eoembed")
    result = _assemble(prep, scores, hist, mode=mode, metric=metric, seed=seed, split_seed=split_seed,
                       settings=st, experiment=str(name))
    if probe == "svm":
        _svm.finish(result, svm_info, svm_pp, search=svm_search, select=svm_select, seed=seed)
    result.experiment = None if experiment is None else str(experiment)
    if out is not None:
        write_result(result, out)
    return result


def _assemble(prep, scores, hist, *, mode, metric, seed, split_seed, settings, experiment) -> EvalResult:
    rows, task_results = [], {}
    st = settings
    for k, t in enumerate(prep.tasks):
        s = scores[k]
        mean = float(np.nanmean(s)) if not np.isnan(s).all() else float("nan")
        std = float(np.nanstd(s)) if not np.isnan(s).all() else float("nan")
        q = q_score(s)
        rows.append({"task": t, "type": prep.task_types[t], "q_stat": q, "mean_score": mean, "std_dev": std,
                     "n_samples": int(len(prep.rows[t])), "nan_folds": int(np.isnan(s).sum())})
        task_results[t] = {"type": prep.task_types[t], "q_stat": q, "mean_score": mean, "std_dev": std,
                           "n_samples": int(len(prep.rows[t])), "q_t": s.tolist()}
    per_task = pd.DataFrame(rows).set_index("task")
    fold_df = pd.DataFrame([{"task": t, "fold": f, "score": float(scores[k, f])}
                            for k, t in enumerate(prep.tasks) for f in range(scores.shape[1])])
    history = None
    if hist is not None:
        T, K, E = hist.shape
        history = pd.DataFrame({"task": np.repeat(prep.tasks, K * E), "fold": np.tile(np.repeat(np.arange(K), E), T),
                                "epoch": np.tile(np.arange(1, E + 1), T * K), "score": hist.reshape(-1)})
    q_by_task = {t: float(per_task.loc[t, "q_stat"]) for t in prep.tasks}
    acc_by_task = {t: float(per_task.loc[t, "mean_score"]) for t in prep.tasks}
    overall_q = float(np.mean(list(q_by_task.values())))
    overall_acc = float(np.mean(list(acc_by_task.values())))
    report = dict(prep.report)
    report["nan_folds"] = {t: int(per_task.loc[t, "nan_folds"]) for t in prep.tasks}
    tf = st["tasks"]
    neuco_cfg = _neuco_config(st, mode, None if tf is None else [tf] if isinstance(tf, str) else list(tf))
    # results_summary.json: exactly NeuCo-Bench's keys (benchmark/evaluation/results.py, save_results).
    summary = {"experiment": experiment, "overall_q_score": overall_q, "overall_acc_score": overall_acc,
               "task_q_scores": q_by_task, "task_acc_scores": acc_by_task, "config": neuco_cfg}
    hyper = ({"epochs": int(st["epochs"]), "learning_rate": float(st["learning_rate"]),
              "batch_size": int(st["batch_size"])} if mode == "compat" else {"probe": "eoembed_ridge"})
    details = {
        "engine": "eoembed.bench",
        "mode": mode,
        "mode_note": MODE_NOTES[mode],
        "neuco_compatible": mode == "compat" and metric == "neuco",
        "metric": metric,
        "experiment": experiment,
        "settings": {"k_folds": int(st["folds"]), "test_size": st.get("split", {}).get("test_size", 0.1),
                     "split_seed": split_seed, "seed": seed, "split": st.get("split", {"strategy": "shuffle"}),
                     "epochs": int(st["epochs"]) if mode == "compat" else None,
                     "batch_size": int(st["batch_size"]) if mode == "compat" else None,
                     "learning_rate": float(st["learning_rate"]) if mode == "compat" else None,
                     "weight_decay": 0.01 if mode == "compat" else None,
                     "standardize_embeddings": "global scalar" if st["standardize"] else False,
                     "normalize_labels": "min-max per task" if st["normalize_labels"] else False,
                     "embedding_dim": st["embedding_dim"], "exclude_file": None if st["exclude_file"] is None
                     else str(st["exclude_file"]), "output_fold_results": bool(st["output_fold_results"])},
        "hyperparameters": hyper,
        "precision": st.get("precision") or _precision("cpu", mode),   # probes always compute in float32
        "task_results": task_results,
        "report": report,
    }
    result = EvalResult(per_task=per_task.drop(columns="nan_folds"), folds=fold_df, overall_q=overall_q,
                        overall_acc=overall_acc, summary=summary, report=report, mode=mode, history=history,
                        details=_json_safe(details))
    return result


def _task_result(result: EvalResult, task: str) -> dict:
    """<task>_result.json exactly as NeuCo-Bench writes it (benchmark/evaluation/evaluation.py, cross_validate)."""
    payload = {"q_stat": float(result.per_task.loc[task, "q_stat"]),
               "mean_score": float(result.per_task.loc[task, "mean_score"]),
               "std_dev": float(result.per_task.loc[task, "std_dev"]),
               "hyperparamaters": dict(result.details.get("task_hyperparameters", {}).get(
                   task, result.details["hyperparameters"]))}  # sic: NeuCo-Bench's spelling
    if result.details["settings"]["output_fold_results"]:
        payload["q_t"] = [float(v) for v in result.folds.loc[result.folds["task"] == task, "score"]]
    return payload


def write_result(result: EvalResult, out, experiment: str | None = None) -> Path:
    """Write ``result`` into the folder ``out`` as one NeuCo-Bench run folder, readable by NeuCo-Bench's own
    summary code (``summarize_runs(output_dir, phase)`` reads ``output_dir/phase/*/results_summary.json``):

    - results_summary.json: ``experiment``, ``overall_q_score``, ``overall_acc_score``, ``task_q_scores``,
      ``task_acc_scores``, ``config`` (exactly NeuCo-Bench's keys; NaN written as NaN, as NeuCo-Bench does);
    - <task>/<task>_result.json: ``q_stat``, ``mean_score``, ``std_dev``, ``hyperparamaters`` (NeuCo-Bench's
      spelling) and ``q_t`` (per-fold scores) only with ``output_fold_results: true``;
    - eoembed's own files: eoembed_report.json (mode, engine, seeds, per-task details with fold scores, the report
      of dropped / filled / excluded rows), fold_scores.csv and, in compat mode, epoch_scores.csv.

    experiment: name stored in results_summary.json (default: the one given to evaluate, else ``out``'s name).
    """
    out = _check_out(out)
    _check_task_names(result.per_task.index)
    name = str(experiment or result.experiment or out.name)
    out.mkdir(parents=True, exist_ok=True)
    result.summary["experiment"] = result.details["experiment"] = name   # the file and memory agree
    (out / "results_summary.json").write_text(json.dumps(result.summary, indent=2))
    for t in result.per_task.index:
        (out / t).mkdir(exist_ok=True)
        (out / t / f"{t}_result.json").write_text(json.dumps(_task_result(result, t), indent=2))
    (out / REPORT_FILE).write_text(json.dumps(result.details, indent=2))
    result.folds.to_csv(out / "fold_scores.csv", index=False)
    if result.history is not None:
        svm = "candidate" in result.history.columns
        result.history.to_csv(out / ("candidate_scores.csv" if svm else "epoch_scores.csv"), index=False)
    return out


def label_fraction_curve(embeddings, labels, fractions=(0.01, 0.1, 0.3, 0.5, 1.0), folds: int = 10,
                         mode: str = "ridge", metric: str = "tessera", seed: int = 42, epochs: int = 10,
                         tasks=None, ids=None, device=None, progress: bool = True, split: str = "shuffle",
                         split_km: float | None = None, split_clusters: int | None = None, groups=None,
                         train_ids=None, test_ids=None, meta=None) -> pd.DataFrame:
    """Scores when only a fraction of each fold's training labels is used (same held-out folds throughout).

    Returns a tidy DataFrame (task, fraction, fold, n_train, score); ``df.groupby(["task", "fraction"]).score
    .mean()`` gives the curves. Default metric: TESSERA's (max(0, R^2) / chance-adjusted balanced accuracy).
    Split options as in :func:`evaluate` (``split="fixed"``: one fold, ``folds`` is not used)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}.")
    fr = [float(f) for f in fractions]
    if not fr or any(not 0 < f <= 1 for f in fr):
        raise ValueError(f"fractions must lie in (0, 1], got {fractions}.")
    split_opts = _split_options(split, split_km, split_clusters, train_ids, test_ids, None, groups)
    labels, split_in, split_src = split_inputs(embeddings, labels, split=split, groups=groups, meta=meta)
    prep = prepare(embeddings, labels, ids=ids, tasks=tasks)
    if mode == "compat":
        _check_compat_labels(prep)
    dev = _device(device)
    base = _splits(prep, int(folds), 42, split, **split_opts, **split_in)
    folds = len(base[prep.tasks[0]])
    sub = {}
    for t in prep.tasks:
        for fi, f in enumerate(fr):
            lst = []
            for k, (tr, te) in enumerate(base[t]):
                rng = np.random.default_rng([seed, fi, k])        # same subsample for tasks sharing rows
                n_keep = max(2, int(round(f * len(tr))))
                lst.append((np.sort(rng.permutation(len(tr))[:n_keep]).astype(np.int64), te))
                lst[-1] = (tr[lst[-1][0]], te)
            sub[(t, fi)] = lst
    records = []
    if mode == "compat":
        keys = list(sub)
        tr = [s[0] for key in keys for s in sub[key]]
        te = [s[1] for key in keys for s in sub[key]]
        task_of = np.repeat([prep.tasks.index(t) for t, _ in keys], folds)
        is_cls = np.array([prep.task_types[prep.tasks[i]] == "classification" for i in task_of])
        hist = train_linear_probes(prep.X, prep.Y, task_of, is_cls, tr, te, epochs=epochs, seed=seed,
                                   device=dev, metric=metric, progress=progress)
        best = best_over_epochs(hist).reshape(len(keys), folds)
        for j, (t, fi) in enumerate(keys):
            for k in range(folds):
                records.append((t, fr[fi], k, len(sub[(t, fi)][k][0]), float(best[j, k])))
    else:
        for fi, f in enumerate(fr):
            sp = [sub[(t, fi)] for t in prep.tasks]
            from eoembed.bench.ridge import ridge_scores
            sc = ridge_scores(prep.X, prep.Y, prep.Y_raw, prep.tasks, prep.task_types, sp, metric=metric,
                              seed=seed, device=dev, progress=progress)
            for i, t in enumerate(prep.tasks):
                for k in range(folds):
                    records.append((t, f, k, len(sp[i][k][0]), float(sc[i, k])))
    df = pd.DataFrame.from_records(records, columns=["task", "fraction", "fold", "n_train", "score"])
    df.attrs["report"] = prep.report
    df.attrs["mode"] = mode
    df.attrs["metric"] = metric
    df.attrs["precision"] = _precision(dev, mode)
    df.attrs["split"] = {**describe_split(base.info), "sources": split_src}
    return df
