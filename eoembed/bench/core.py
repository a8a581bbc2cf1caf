"""evaluate(): NeuCo-Bench-compatible evaluation of embeddings, and label-fraction curves."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import ShuffleSplit

from eoembed.bench.io import Prepared, prepare
from eoembed.bench.metrics import q_score
from eoembed.bench.probe import best_over_epochs, train_linear_probes
from eoembed.bench.ridge import ridge_scores
from eoembed.errors import LabelError

MODES = ("compat", "ridge")
MODE_NOTES = {
    "compat": "NeuCo-Bench linear-probe protocol (scores comparable with NeuCo-Bench).",
    "ridge": "NOT NeuCo-Bench: closed-form ridge / logistic probes with inner-CV penalty; not comparable "
             "with NeuCo-Bench scores.",
}
MIN_SAMPLES = 11  # a 10% test fold then holds >= 2 samples (R^2 needs two)


@dataclass
class EvalResult:
    """Result of :func:`evaluate`. ``summary`` is what results_summary.json holds."""

    per_task: pd.DataFrame            # index task: type, q_stat, mean_score, std_dev, n_samples
    folds: pd.DataFrame               # tidy: task, fold, score
    overall_q: float
    overall_acc: float
    summary: dict
    report: dict
    mode: str = "compat"
    history: pd.DataFrame | None = field(default=None, repr=False)  # compat: task, fold, epoch, score

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


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _splits(prep: Prepared, folds: int, split_seed: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """NeuCo-Bench splits: ShuffleSplit(K, test_size=0.1, random_state) over each task's rows in label order."""
    out = {}
    for t in prep.tasks:
        rows = prep.rows[t]
        if len(rows) < MIN_SAMPLES:
            raise LabelError(f"Task {t!r} has only {len(rows)} samples with both a label and an embedding; "
                             f"at least {MIN_SAMPLES} are needed for 90/10 splits (two held-out samples per fold). "
                             "Use more samples or leave the task out with tasks=.")
        ss = ShuffleSplit(n_splits=folds, test_size=0.1, random_state=split_seed)
        out[t] = [(rows[tr], rows[te]) for tr, te in ss.split(np.zeros(len(rows)))]
    return out


def _check_compat_labels(prep: Prepared) -> None:
    for k, t in enumerate(prep.tasks):
        if prep.task_types[t] == "classification":
            vals = np.unique(prep.Y[k][np.isfinite(prep.Y[k])])
            if len(vals) != 2:
                raise LabelError(f"Task {t!r}: NeuCo-Bench classification is binary but the labels have "
                                 f"{len(vals)} classes; use mode='ridge' for multi-class tasks.")


def _run(prep: Prepared, splits: dict, mode: str, metric: str, epochs: int, seed: int, device, progress: bool,
         threads: int | None = 1):
    """Scores (T, K) and, for compat, the per-epoch history (T, K, E). threads: CPU intra-op threads of the
    compat probe engine (its default 1; None = leave torch's setting)."""
    tasks = prep.tasks
    K = len(splits[tasks[0]])
    if mode == "compat":
        tr = [splits[t][k][0] for t in tasks for k in range(K)]
        te = [splits[t][k][1] for t in tasks for k in range(K)]
        task_of = np.repeat(np.arange(len(tasks)), K)
        is_cls = np.array([prep.task_types[t] == "classification" for t in tasks])[task_of]
        hist = train_linear_probes(prep.X, prep.Y, task_of, is_cls, tr, te, epochs=epochs, seed=seed,
                                   device=device, metric=metric, progress=progress, threads=threads)
        return best_over_epochs(hist).reshape(len(tasks), K), hist.reshape(len(tasks), K, epochs)
    sp = [splits[t] for t in tasks]
    return ridge_scores(prep.X, prep.Y, prep.Y_raw, tasks, prep.task_types, sp, metric=metric, seed=seed,
                        device=device, progress=progress), None


def evaluate(embeddings, labels, folds: int = 40, mode: str = "compat", seed: int = 42, epochs: int = 10,
             tasks=None, out=None, device=None, ids=None, progress: bool = True, metric: str = "neuco",
             split_seed: int = 42) -> EvalResult:
    """Evaluate embeddings with linear probes on every labelled task, NeuCo-Bench style.

    embeddings: NeuCo CSV path | DataFrame (index or column ``id``) | xarray DataArray (sample, ...) | NumPy array
    with ``ids``. labels: NeuCo label folder | labels DataFrame (index id, one column per task,
    ``attrs["task_types"]``). mode: "compat" (NeuCo-Bench protocol, all folds and tasks trained as one batched
    problem) or "ridge" (NOT NeuCo-Bench: tuned closed-form probes). seed drives probe initialisation and batch
    order; split_seed the ShuffleSplit (NeuCo-Bench: 42). metric: "neuco" (R^2 / F1) or "tessera"
    (max(0, R^2) / chance-adjusted balanced accuracy). out: folder for results_summary.json,
    <task>/<task>_result.json and fold_scores.csv.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}.")
    if metric not in ("neuco", "tessera"):
        raise ValueError(f"metric must be 'neuco' or 'tessera', not {metric!r}.")
    if int(folds) < 2:
        raise ValueError(f"folds must be >= 2 (NeuCo-Bench default 40), got {folds}.")
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    if out is not None:
        from eoembed.checks import check_out_path
        check_out_path(out, option="out")
    prep = prepare(embeddings, labels, ids=ids, tasks=tasks)
    if mode == "compat":
        _check_compat_labels(prep)
    dev = _device(device)
    splits = _splits(prep, int(folds), split_seed)
    scores, hist = _run(prep, splits, mode, metric, int(epochs), seed, dev, progress)
    return _assemble(prep, scores, hist, mode=mode, metric=metric, folds=int(folds), epochs=int(epochs),
                     seed=seed, split_seed=split_seed, out=out)


def _assemble(prep, scores, hist, *, mode, metric, folds, epochs, seed, split_seed, out) -> EvalResult:
    rows, task_results = [], {}
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
    overall_q = float(np.mean(per_task["q_stat"].to_numpy()))
    overall_acc = float(np.mean(per_task["mean_score"].to_numpy()))
    report = dict(prep.report)
    report["nan_folds"] = {t: int(per_task.loc[t, "nan_folds"]) for t in prep.tasks}
    summary = {
        "engine": "eoembed.bench",
        "mode": mode,
        "mode_note": MODE_NOTES[mode],
        "neuco_compatible": mode == "compat" and metric == "neuco",
        "metric": metric,
        "overall_q_score": overall_q,
        "overall_acc_score": overall_acc,
        "task_results": task_results,
        "config": {"k_folds": folds, "test_size": 0.1, "split_seed": split_seed, "seed": seed,
                   "epochs": epochs if mode == "compat" else None, "batch_size": 64 if mode == "compat" else None,
                   "learning_rate": 1e-3 if mode == "compat" else None,
                   "weight_decay": 0.01 if mode == "compat" else None,
                   "standardize_embeddings": "global scalar", "normalize_labels": "min-max per task"},
        "report": report,
    }
    summary = _json_safe(summary)
    result = EvalResult(per_task=per_task.drop(columns="nan_folds"), folds=fold_df, overall_q=overall_q,
                        overall_acc=overall_acc, summary=summary, report=report, mode=mode, history=history)
    if out is not None:
        write_result(result, out)
    return result


def write_result(result: EvalResult, out) -> Path:
    """Write results_summary.json, <task>/<task>_result.json (NeuCo schema) and fold_scores.csv into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results_summary.json").write_text(json.dumps(result.summary, indent=2))
    for t, r in result.summary["task_results"].items():
        (out / t).mkdir(exist_ok=True)
        payload = {"q_stat": r["q_stat"], "mean_score": r["mean_score"], "std_dev": r["std_dev"], "q_t": r["q_t"]}
        (out / t / f"{t}_result.json").write_text(json.dumps(payload, indent=2))
    result.folds.to_csv(out / "fold_scores.csv", index=False)
    if result.history is not None:
        result.history.to_csv(out / "epoch_scores.csv", index=False)
    return out


def label_fraction_curve(embeddings, labels, fractions=(0.01, 0.1, 0.3, 0.5, 1.0), folds: int = 10,
                         mode: str = "ridge", metric: str = "tessera", seed: int = 42, epochs: int = 10,
                         tasks=None, ids=None, device=None, progress: bool = True) -> pd.DataFrame:
    """Scores when only a fraction of each fold's training labels is used (same held-out folds throughout).

    Returns a tidy DataFrame (task, fraction, fold, n_train, score); ``df.groupby(["task", "fraction"]).score
    .mean()`` gives the curves. Default metric: TESSERA's (max(0, R^2) / chance-adjusted balanced accuracy)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}.")
    fr = [float(f) for f in fractions]
    if not fr or any(not 0 < f <= 1 for f in fr):
        raise ValueError(f"fractions must lie in (0, 1], got {fractions}.")
    prep = prepare(embeddings, labels, ids=ids, tasks=tasks)
    if mode == "compat":
        _check_compat_labels(prep)
    dev = _device(device)
    base = _splits(prep, int(folds), 42)
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
            sc = ridge_scores(prep.X, prep.Y, prep.Y_raw, prep.tasks, prep.task_types, sp, metric=metric,
                              seed=seed, device=dev, progress=progress)
            for i, t in enumerate(prep.tasks):
                for k in range(folds):
                    records.append((t, f, k, len(sp[i][k][0]), float(sc[i, k])))
    df = pd.DataFrame.from_records(records, columns=["task", "fraction", "fold", "n_train", "score"])
    df.attrs["report"] = prep.report
    df.attrs["mode"] = mode
    df.attrs["metric"] = metric
    return df
