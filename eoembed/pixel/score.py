"""Downstream score of pixel embeddings and the per-run function of the scaling sweep.

:func:`linear_probe_score` scores (sample, feature) embeddings on one labelled task with the evaluation engine
(``eoembed.bench.evaluate``, ``mode="ridge"``, ``metric="tessera"``): seeded ShuffleSplit folds; in each fold the
probe's penalty is chosen by cross-validation INSIDE the training part and the score is measured on the held-out
part, so selection and reporting never share pixels. Classification: chance-adjusted balanced accuracy
(bacc - 1/K) / (1 - 1/K); regression: max(0, R^2); mean over folds. Pixels without observation (NaN
embeddings) and classes with fewer than ``min_class_size`` pixels are left out and reported.
"""
from __future__ import annotations

import math
import time
from typing import Any, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from eoembed.errors import DataError, LabelError


def linear_probe_score(embeddings: Any, labels: Any, task: str | None = None, task_type: str = "classification",
                       folds: int = 10, min_class_size: int = 10, seed: int = 0, ids: Any = None,
                       progress: bool = False) -> dict[str, Any]:
    """Score embeddings on one task with tuned linear probes of the evaluation engine (module doc).

    embeddings: (sample, feature) DataArray (or array with ``ids``). labels: Series indexed by id, a DataFrame
    (``task`` names the column) or a series Dataset (``task`` names a pixel variable). Returns {score, score_sd,
    n_samples, n_classes, classes, excluded (counts by reason), folds, task, task_type, metric}.
    """
    from eoembed.bench import evaluate

    if task_type not in ("classification", "regression"):
        raise DataError(f"task_type={task_type!r}; use 'classification' or 'regression'.")
    if isinstance(embeddings, xr.DataArray):
        X = np.asarray(embeddings.values, np.float64)
        sid = [str(i) for i in embeddings["sample"].values]
    else:
        X = np.asarray(embeddings, np.float64)
        if ids is None:
            raise DataError("embeddings given as an array need ids= (one per row).")
        sid = [str(i) for i in ids]
    if X.ndim != 2 or X.shape[0] != len(sid):
        raise DataError(f"embeddings must be (sample, feature) with one id per row; got {X.shape}, {len(sid)} ids.")
    if isinstance(labels, xr.Dataset):
        if task is None or task not in labels:
            raise LabelError(f"task={task!r} is not a pixel variable of the labels dataset "
                             f"({[v for v in labels.data_vars if labels[v].dims == ('pixel',)]}).")
        lab = pd.Series(np.asarray(labels[task].values), index=[str(i) for i in labels["id"].values], name=task)
    elif isinstance(labels, pd.DataFrame):
        if task is None or task not in labels:
            raise LabelError(f"task={task!r} is not a column of the labels ({list(labels.columns)}).")
        lab = labels[task]
        lab.index = lab.index.astype(str)
    else:
        lab = pd.Series(labels)
        lab.index = lab.index.astype(str)
        task = task or str(lab.name or "label")
    missing = [i for i in sid if i not in lab.index]
    if missing:
        raise LabelError(f"{len(missing)} embedded sample(s) have no label, e.g. {missing[:3]}.")
    y = lab.loc[sid]
    excluded: dict[str, int] = {}
    keep = np.isfinite(X).all(1)
    excluded["no_observation_or_nan"] = int((~keep).sum())
    if task_type == "classification":
        ys = y.astype(str).to_numpy()
        lab_ok = ~pd.isna(y.to_numpy())
        counts = pd.Series(ys[keep & lab_ok]).value_counts()
        small = counts[counts < min_class_size].index
        drop_small = np.isin(ys, small) & keep & lab_ok
        excluded[f"class_smaller_than_{min_class_size}"] = int(drop_small.sum())
        excluded["no_label"] = int((keep & ~lab_ok).sum())
        keep &= lab_ok & ~drop_small
        classes = sorted(pd.unique(ys[keep]).tolist())
        if len(classes) < 2:
            raise LabelError(f"task {task!r} has fewer than 2 classes with >= {min_class_size} samples "
                             f"({counts.to_dict()}); lower min_class_size or use another task.")
        code = {c: i for i, c in enumerate(classes)}
        target = np.asarray([code[c] for c in ys[keep]], np.float64)
    else:
        target = pd.to_numeric(y, errors="coerce").to_numpy(np.float64)
        excluded["no_label"] = int((keep & ~np.isfinite(target)).sum())
        keep &= np.isfinite(target)
        target = target[keep]
        classes = []
    ids_k = np.asarray(sid)[keep]
    frame = pd.DataFrame({task: target}, index=pd.Index(ids_k, name="id"))
    frame.attrs["task_types"] = {task: task_type}
    emb = xr.DataArray(X[keep].astype(np.float32), dims=("sample", "feature"), coords={"sample": ids_k})
    res = evaluate(emb, frame, folds=folds, mode="ridge", metric="tessera", seed=seed, split_seed=seed,
                   progress=progress)
    row = res.per_task.loc[task]
    return {"score": float(row["mean_score"]), "score_sd": float(row["std_dev"]), "n_samples": int(keep.sum()),
            "n_classes": len(classes), "classes": classes, "excluded": excluded, "folds": int(folds), "task": task,
            "task_type": task_type, "metric": "chance-adjusted balanced accuracy" if task_type == "classification"
            else "max(0, R^2)"}


def _default_task(ds: xr.Dataset) -> tuple[str, str]:
    tt = ds.attrs.get("task_types") or {}
    if isinstance(tt, dict) and tt:
        t = next(iter(tt))
        return t, tt[t]
    if "sampling_label" in ds:
        return "sampling_label", "classification"
    raise DataError("no task to score: give config['label'] (a pixel variable) and config['task_type'].")


def pretrain_and_score(config: Mapping[str, Any]) -> dict[str, Any]:
    """One scaling-sweep run: pretrain an encoder with ``config`` and score it downstream (module doc).

    config keys (all optional): ``data`` (pretraining pixels, anything ``as_series`` reads; default
    "sample:2000"), ``eval_data`` (labelled pixels to score on; default ``data``), ``label`` / ``task_type``
    (the task; default the dataset's first task, or ``sampling_label`` for WorldCereal), ``size`` (preset,
    default "tiny") and encoder overrides (``d_model``, ``n_layers``, ``n_heads``, ``d_ffn``, ``fusion_hidden``,
    ``out_dim``, ``proj_dim``), ``n_train_pixels`` (use only the first N pretraining pixels), ``n_pixels``
    (d-pixels to SEE: steps = ceil(n_pixels / batch_size)) or ``steps`` (default 100), ``batch_size`` (128),
    ``lr``, ``weight_decay``, ``seed`` (0), ``folds`` (5), ``min_class_size`` (10), ``L_ref``, ``out``
    (run folder; default none), ``device``, ``precision`` ("float32"), ``threads``.

    Returns: ``n_params_enc`` (encoder parameters), ``n_params_proj`` (projector parameters, pretraining only),
    ``n_pixels`` (D = d-pixels seen = steps x batch_size, the D of C = 12 D (N_enc L_ref + N_proj)),
    ``n_train_pixels`` (distinct pretraining pixels), ``steps``, ``L_ref`` (time steps per view for the compute
    axis: config ``L_ref``, default the mean view length (l_min + l_max) / 2 = 12 of these runs; the paper uses
    240), ``final_loss`` (mean pretraining loss over the last max(1, steps // 10) steps), ``score`` (linear-probe
    score of :func:`linear_probe_score` on the held-out folds), ``score_sd``, ``score_metric``,
    ``n_eval_pixels``, ``precision``, ``seconds`` (wall time of pretraining + scoring).
    """
    from eoembed.pixel.data import as_series
    from eoembed.pixel.buckets import encode
    from eoembed.pixel.training import pretrain

    t0 = time.perf_counter()
    cfg = dict(config)
    known = {"data", "eval_data", "label", "task_type", "size", "d_model", "n_layers", "n_heads", "d_ffn",
             "fusion_hidden", "out_dim", "proj_dim", "n_train_pixels", "n_pixels", "steps", "batch_size", "lr",
             "weight_decay", "seed", "folds", "min_class_size", "L_ref", "out", "device", "precision", "threads",
             "view_length", "mix_weight", "modality_dropout"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise DataError(f"pretrain_and_score: unknown config key(s) {unknown}; known: {sorted(known)}.")
    data = as_series(cfg.get("data", "sample:2000"), empty="keep")
    if cfg.get("n_train_pixels"):
        data = data.isel(pixel=slice(0, int(cfg["n_train_pixels"])))
    batch = int(cfg.get("batch_size", 128))
    if "steps" in cfg:
        steps = int(cfg["steps"])
    elif "n_pixels" in cfg:
        steps = max(1, math.ceil(float(cfg["n_pixels"]) / batch))
    else:
        steps = 100
    size = cfg.get("size", "tiny")
    dims = {k: cfg[k] for k in ("d_model", "n_layers", "n_heads", "d_ffn", "fusion_hidden", "out_dim", "proj_dim")
            if k in cfg}
    if dims:
        from eoembed.pixel.encoder import SIZES
        size = {**SIZES[size], **dims} if isinstance(size, str) else {**size, **dims}
    view = tuple(cfg.get("view_length", (8, 16)))
    extra = {k: cfg[k] for k in ("lr", "weight_decay", "mix_weight", "modality_dropout") if k in cfg}
    res = pretrain(data, size, steps=steps, batch_size=batch, seed=int(cfg.get("seed", 0)), out=cfg.get("out"),
                   empty="drop", view_length=view, precision=cfg.get("precision", "float32"),
                   device=cfg.get("device"), threads=cfg.get("threads"), progress=False, **extra)
    ev = as_series(cfg["eval_data"], empty="keep") if "eval_data" in cfg else data
    label, ttype = (cfg["label"], cfg.get("task_type", "classification")) if "label" in cfg else _default_task(ev)
    emb = encode(res.encoder, ev, device=cfg.get("device"), precision=cfg.get("precision", "float32"),
                 threads=cfg.get("threads"), progress=False)
    sc = linear_probe_score(emb, ev, task=label, task_type=ttype, folds=int(cfg.get("folds", 5)),
                            min_class_size=int(cfg.get("min_class_size", 10)), seed=int(cfg.get("seed", 0)))
    h = res.history["loss"].to_numpy()
    tail = max(1, len(h) // 10)
    return {"n_params_enc": int(res.n_params), "n_params_proj": int(res.n_params_proj),
            "n_pixels": int(res.pixels_seen), "n_train_pixels": int(res.n_pixels), "steps": int(len(h)),
            "L_ref": float(cfg.get("L_ref", (view[0] + view[1]) / 2)), "final_loss": float(h[-tail:].mean()),
            "score": sc["score"], "score_sd": sc["score_sd"], "score_metric": sc["metric"],
            "n_eval_pixels": sc["n_samples"], "precision": res.precision, "seconds": time.perf_counter() - t0}
