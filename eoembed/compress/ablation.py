"""Ablation over model subsets (Table 1 / Figure 3 of the Embed2Scale winning paper) plus baselines, reported on
held-out labels beside a null control.

Protocol (:func:`ablate`)
- The labels are split once (:func:`eoembed.compress.split_labels`) into a selection part and a report part, by
  samples (``select_fraction``, ``select_seed``) or by tasks (``select_tasks``); every row uses the same split.
- Every row makes its one choice on the selection part only, with ``q_folds`` folds: the autoencoder its epoch
  (:func:`train_compressor`, in-loop ``q_select``), PCA (of the all-model fused vector) and RCF (on the cube,
  when a cube is given) their number of components among ``baseline_dims``.
- Each row's chosen embeddings are then scored on the report part only (``eval_folds`` folds, 40 = NeuCo
  default): ``q_report``. The same embeddings are scored on ``null_draws`` permutations of the report labels
  (:func:`eoembed.bench.null_control`, same protocol, the same permutations for every row): ``q_null`` +/-
  ``q_null_std``, and ``q_gap = q_report - q_null``. Under the compat protocol each embedding geometry has its own level on noise (issue 9: autoencoder
  about -0.3, PCA -2.7, RCF -2.9 on pure-noise labels), so rows are compared by ``q_gap`` against ``q_null_std``,
  not by raw ``q_report``.

Default combinations: every single model, all models together, and every leave-one-out subset (with three or more
models). The shared project docs do not list the paper's Table 1 rows, so this design (singles, full ensemble,
all-but-one) is the default for any number of models; pass ``combos`` for others.

Z (task-normalised score, NeuCo-Bench paper) is :func:`eoembed.bench.z_scores` of the per-task report Q table (the
same definition as :func:`eoembed.bench.compare`): per task t, z = (Q_t^m - mean_m Q_t^m) / std_m Q_t^m over the
rows m of the table, Z_m = mean over tasks. It therefore depends on which rows are in the table.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from eoembed.compress.fusion import fuse, fused_slices, select_models
from eoembed.compress.selection import SelectionSplit, split_labels
from eoembed.compress.train import IN_LOOP_Q_FOLDS, _read_labels, train_compressor

__all__ = ["AblationResult", "ablate", "default_combos"]

#: Columns of :attr:`AblationResult.table` (index: ``combination``), in order.
TABLE_COLUMNS = ["method", "models", "n_models", "in_dim", "out_dim", "selected_epoch", "q_report", "q_null",
                 "q_null_std", "q_gap", "z", "acc", "mse"]
_BASELINE_NAMES = {"pca": "PCA (all models)", "rcf": "RCF (cube)"}
_NOT_IN_TRAIN_KWARGS = ("q_on", "q_tasks", "select_fraction", "select_tasks", "select_seed", "labels", "out")


def default_combos(models: Sequence[str]) -> list[tuple[str, ...]]:
    """Singles, all models, and leave-one-out subsets (3+ models), without duplicates, in sorted model order."""
    models = sorted(models)
    combos: list[tuple[str, ...]] = [(m,) for m in models]
    if len(models) > 1:
        combos.append(tuple(models))
    if len(models) > 2:
        combos += [tuple(x for x in models if x != m) for m in models]
    seen, out = set(), []
    for c in combos:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


@dataclasses.dataclass
class AblationResult:
    """Result of :func:`ablate`.

    table: one row per combination/method (columns :data:`TABLE_COLUMNS`, see :func:`ablate`); per_task: report
    Q per task (Figure 3); per_task_null: null-control mean Q per task; scores: report mean fold score per task;
    selection: every candidate each row considered (``combination``, ``candidate`` = epoch or dimension,
    ``q_select``, ``chosen``); split: the :class:`~eoembed.compress.SelectionSplit`; runs: {combination:
    TrainResult, baseline array, or the run folder of a resumed row}.
    """

    table: pd.DataFrame
    per_task: pd.DataFrame
    per_task_null: pd.DataFrame
    scores: pd.DataFrame
    selection: pd.DataFrame
    split: SelectionSplit
    runs: dict[str, Any]


def _name(combo: Sequence[str]) -> str:
    return " + ".join(combo)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name.replace(" + ", "__"))


def _candidate_dims(baseline_dims: Sequence[int] | None, out_dim: int) -> list[int]:
    dims = list(baseline_dims) if baseline_dims is not None else [out_dim // 8, out_dim // 4, out_dim // 2, out_dim]
    dims = sorted({int(d) for d in dims if int(d) >= 1})
    if not dims:
        raise ValueError(f"baseline_dims must hold positive sizes, got {baseline_dims}")
    return dims


def _check_inputs(store: Any, labels: Any, combos: Any, baselines: Sequence[str], cube: Any,
                  train_kwargs: dict, eval_folds: int, q_mode: str, out: Any) -> tuple[pd.DataFrame, xr.DataArray, list[tuple[str, ...]], list[str]]:
    """(labels DataFrame, fused array of all models, combinations, baselines to run); errors before any work."""
    if labels is None:
        raise ValueError("ablate needs labels (a NeuCo labels folder or labels DataFrame) to score combinations")
    bad_kw = sorted(set(train_kwargs) & set(_NOT_IN_TRAIN_KWARGS))
    if bad_kw:
        raise ValueError(f"ablate sets {bad_kw} itself (every row uses one selection/report split of all "
                         "samples); use ablate's select_fraction / select_tasks / select_seed")
    unknown = [b for b in baselines if b not in _BASELINE_NAMES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from 'pca', 'rcf'")
    from eoembed.checks import check_choice, check_int, check_out_path
    check_int("eval_folds", eval_folds, 2)  # checked before any training, like every argument
    check_choice("q_mode", q_mode, ("compat", "ridge"))
    if out is not None:
        check_out_path(out, option="out")
    labels = _read_labels(labels)
    fused_all = store if isinstance(store, xr.DataArray) and "slices" in store.attrs else fuse(store)
    all_models = list(fused_slices(fused_all))
    combos_l = [tuple(c) for c in (combos if combos is not None else default_combos(all_models))]
    for c in combos_l:
        bad = [m for m in c if m not in all_models]
        if bad or not c:
            raise ValueError(f"combination {list(c)} names models {bad or c} not in the store {all_models}")
    bases = [b for b in baselines if b != "rcf" or cube is not None]
    return labels, fused_all, combos_l, bases


def _records(candidates: pd.DataFrame, name: str) -> list[dict]:
    return [{"combination": name, "candidate": int(r.candidate), "q_select": float(r.q_select),
             "chosen": bool(r.chosen)} for r in candidates.itertuples()]


def _autoencoder(fused: xr.DataArray, labels: pd.DataFrame, split: SelectionSplit, name: str, run_dir: Any,
                 kw: dict) -> tuple[Any, xr.DataArray, dict, list[dict]]:
    """Train one combination; (TrainResult, selected embeddings, row fields, selection candidates)."""
    res = train_compressor(fused, labels, out=run_dir, progress=False, **kw)
    if res.split is None or res.split.select_ids != split.select_ids or res.split.select_tasks != split.select_tasks:
        raise RuntimeError(f"{name}: the compressor selected on other labels than the ablation's selection set")
    mse = float(res.history.set_index("epoch").loc[res.selected_epoch, "val_mse"])
    sel = [{"combination": name, "candidate": int(r["epoch"]), "q_select": float(r["q_select"]),
            "chosen": int(r["epoch"]) == res.selected_epoch} for _, r in res.history.iterrows()]
    return res, res.embeddings, {"selected_epoch": res.selected_epoch, "mse": mse}, sel


def _baseline(method: str, fused: xr.DataArray, cube: Any, split: SelectionSplit, dims: list[int], q_kw: dict,
              seed: int | None, device: Any, rcf_features: int) -> tuple[xr.DataArray, dict, list[dict]]:
    """PCA / RCF embeddings at the size chosen on the selection part; (embeddings, row fields, candidates)."""
    from eoembed.compress.baselines import pca_baseline, rcf_baseline, select_dim

    name = _BASELINE_NAMES[method]
    if method == "pca":
        full = pca_baseline(fused, out_dim=max(dims), seed=1337 if seed is None else seed)
        k, sel = select_dim(full, split, dims, **q_kw)
        emb = full if k == full.sizes["feature"] else pca_baseline(fused, out_dim=k,
                                                                   seed=1337 if seed is None else seed)
        return emb, {"selected_epoch": np.nan, "mse": float(emb.attrs["val_mse"])}, _records(sel, name)
    full = rcf_baseline(cube, n_features=rcf_features, out_dim=max(dims), seed=seed or 0, device=device,
                        progress=False)
    missing = sorted(set(map(str, fused["sample"].values)) - set(map(str, full["sample"].values)))
    if missing:
        raise ValueError(f"the cube lacks {len(missing)} samples of the store (e.g. {missing[:3]}); "
                         "pass the cube the embeddings were extracted from")
    k, sel = select_dim(full, split, dims, **q_kw)
    emb = full.isel(feature=slice(0, k))
    emb.attrs = dict(full.attrs, out_dim=k)
    return emb, {"selected_epoch": np.nan, "mse": float("nan")}, _records(sel, name)


def _score(emb: xr.DataArray, split: SelectionSplit, eval_kw: dict, null_draws: int,
           null_seed: int) -> tuple[dict, dict, dict, dict]:
    """(row fields q_report/acc/q_null/q_null_std/q_gap, report Q per task, report score per task, null Q per
    task) of one row's chosen embeddings on the report part."""
    from eoembed.bench import evaluate
    from eoembed.bench.nulls import null_control

    ev = evaluate(emb, split.report, **eval_kw)
    null = null_control(emb, split.report, draws=null_draws, null_seed=null_seed, **eval_kw)
    fields = {"q_report": float(ev.overall_q), "acc": float(ev.overall_acc), **null.gap(ev.overall_q)}
    q = {t: float(v) for t, v in ev.per_task["q_stat"].items()}
    sc = {t: float(v) for t, v in ev.per_task["mean_score"].items()}
    return fields, q, sc, {t: float(v) for t, v in null.per_task["mean"].items()}


def _load_done(done: Path | None, settings: dict) -> dict | None:
    if done is None or not done.exists():
        return None
    saved = json.loads(done.read_text())
    if saved.get("settings") != json.loads(json.dumps(settings, default=str)):
        raise ValueError(f"{str(done)!r} was made with other settings; use another out folder or "
                         "delete that run folder to recompute it")
    return saved


def _save_done(done: Path, settings: dict, record: dict) -> None:
    done.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in record["row"].items()}
    tmp = done.with_name(done.name + ".tmp")
    tmp.write_text(json.dumps({"settings": settings, **record, "row": clean}, indent=1, default=str))
    os.replace(tmp, done)


def _table(records: list[dict], note: str | None) -> tuple[pd.DataFrame, ...]:
    """(table, per_task, per_task_null, scores, selection) of the finished rows, with Z."""
    from eoembed.bench import z_scores

    table = pd.DataFrame([r["row"] for r in records]).set_index("combination")
    num = ["in_dim", "out_dim", "n_models"]
    table = table.astype({c: float for c in TABLE_COLUMNS if c not in ("method", "models", "z") + tuple(num)})
    frames = [pd.DataFrame.from_dict({r["row"]["combination"]: r[k] for r in records}, orient="index")
              .reindex(table.index).rename_axis("combination") for k in ("q", "null", "scores")]
    table["z"] = z_scores(frames[0].T).reindex(table.index)
    table = table[TABLE_COLUMNS]
    if note:
        table.attrs["note"] = note
    selection = pd.DataFrame([s for r in records for s in r["selection"]],
                             columns=["combination", "candidate", "q_select", "chosen"])
    return (table, *frames, selection)


def _run_job(method: str, combo: tuple[str, ...], fused_all: xr.DataArray, labels: pd.DataFrame,
             split: SelectionSplit, run_dir: Path | None, ctx: dict) -> tuple[dict, Any]:
    """One table row (record for the table / resume file, and the run object)."""
    name = _name(combo) if method == "autoencoder" else _BASELINE_NAMES[method]
    fused = select_models(fused_all, combo)
    if method == "autoencoder":
        run, emb, fields, sel = _autoencoder(fused, labels, split, name, run_dir, ctx["train_kw"])
    else:
        emb, fields, sel = _baseline(method, fused, ctx["cube"], split, ctx["dims"], ctx["q_kw"], ctx["seed"],
                                     ctx["device"], ctx["rcf_features"])
        run = emb
    scored, q, sc, null = _score(emb, split, ctx["eval_kw"], ctx["null_draws"], ctx["null_seed"])
    row = {"combination": name, "method": method, "models": list(combo), "n_models": len(combo),
           "in_dim": int(fused.shape[1]), "out_dim": int(emb.shape[1]), **fields, **scored}
    return {"row": row, "q": q, "scores": sc, "null": null, "selection": sel}, run


def ablate(store: Any, labels: Any, combos: Sequence[Sequence[str]] | None = None, *,
           baselines: Sequence[str] = ("pca", "rcf"), cube: Any = None, epochs: int | None = None,
           preset: str | None = None, out_dim: int | None = None, out: str | os.PathLike | None = None,
           eval_folds: int = 40, q_mode: str = "compat", eval_epochs: int | None = None,
           q_folds: int = IN_LOOP_Q_FOLDS, select_fraction: float = 0.5, select_tasks: Sequence[str] | None = None,
           select_seed: int = 0, null_draws: int = 5, baseline_dims: Sequence[int] | None = None,
           seed: int | None = None, device: Any = None, rcf_features: int = 4096, progress: bool = True,
           **train_kwargs: Any) -> AblationResult:
    """Train and score the compressor for each model subset, plus baselines, in one held-out table (module doc).

    combos: list of model-name lists (default :func:`default_combos`). baselines: "pca" (all-model fused vector)
    and "rcf" (needs ``cube``; skipped with a table note when no cube is given). select_fraction / select_tasks /
    select_seed: the selection/report split (:func:`eoembed.compress.split_labels`). q_folds: folds of every
    selection score; eval_folds / q_mode / eval_epochs: protocol of the report and null scores. null_draws:
    permutations of the report labels (>= 2). baseline_dims: candidate sizes of PCA/RCF (default out_dim/8,
    /4, /2, out_dim with out_dim 1024 unless given). Remaining keyword arguments go to :func:`train_compressor`.

    ``table`` columns (index ``combination``): method ("autoencoder" | "pca" | "rcf"), models, n_models, in_dim,
    out_dim (for baselines: the size chosen on the selection part), selected_epoch (autoencoder: epoch chosen on
    the selection part), q_report (held-out Q-bar on the report part), q_null and q_null_std (mean and standard
    deviation over ``null_draws`` of the same embeddings scored on permuted report labels), q_gap (q_report -
    q_null), z (task-normalised score of the report Q), acc (mean report score), mse (validation reconstruction
    MSE; NaN for RCF). Selection scores are in ``selection``, never in the table.
    With ``out``, each run lives in ``out/<combination>/`` and finished rows are reused (the settings must match),
    so an interrupted ablation resumes.
    """
    labels, fused_all, combos_l, bases = _check_inputs(store, labels, combos, baselines, cube, train_kwargs,
                                                       eval_folds, q_mode, out)
    if int(null_draws) < 2:
        raise ValueError(f"null_draws must be >= 2 (the null's spread is reported), got {null_draws}")
    split = split_labels(labels, [str(s) for s in fused_all["sample"].values], select_fraction=select_fraction,
                         select_tasks=select_tasks, seed=select_seed)
    eval_kw: dict[str, Any] = {"folds": int(eval_folds), "mode": q_mode, "seed": 42, "progress": False}
    if eval_epochs is not None:
        eval_kw["epochs"] = int(eval_epochs)
    if device is not None:
        eval_kw["device"] = str(device)
    train_kw = {"epochs": epochs, "preset": preset, "out_dim": out_dim, "seed": seed, "device": device,
                "q_folds": q_folds, "q_mode": q_mode, "q_epochs": eval_epochs, "select_fraction": select_fraction,
                "select_tasks": select_tasks, "select_seed": select_seed, **train_kwargs}
    ctx = {"train_kw": train_kw, "eval_kw": eval_kw, "q_kw": dict(eval_kw, folds=int(q_folds)), "cube": cube,
           "dims": _candidate_dims(baseline_dims, out_dim or 1024), "seed": seed, "device": device,
           "rcf_features": rcf_features, "null_draws": int(null_draws), "null_seed": 0}
    settings = {"epochs": epochs, "preset": preset, "out_dim": out_dim, "seed": seed, "eval": eval_kw,
                "q_folds": q_folds, "train": {k: repr(v) for k, v in sorted(train_kwargs.items())},
                "rcf_features": rcf_features, "split": split.to_dict(), "null_draws": int(null_draws),
                "baseline_dims": ctx["dims"]}
    out_p = Path(out) if out is not None else None
    jobs = [("autoencoder", c) for c in combos_l] + [(b, tuple(fused_slices(fused_all))) for b in bases]
    it: Any = jobs
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(jobs, desc="ablation", unit="run")
    records, runs = [], {}
    for method, combo in it:
        name = _name(combo) if method == "autoencoder" else _BASELINE_NAMES[method]
        if progress:
            it.set_postfix_str(name[:40])
        run_dir = out_p / _slug(f"{method}__{name}") if out_p is not None else None
        done = run_dir / "ablation_row.json" if run_dir is not None else None
        saved = _load_done(done, settings)
        if saved is None:
            saved, runs[name] = _run_job(method, combo, fused_all, labels, split, run_dir, ctx)
            if done is not None:
                _save_done(done, settings, saved)
        else:
            runs[name] = str(run_dir)
        records.append(saved)
    note = ("RCF baseline skipped: no cube given (rcf_baseline needs the image cube)"
            if "rcf" in baselines and cube is None else None)
    table, per_task, per_task_null, scores, selection = _table(records, note)
    return AblationResult(table=table, per_task=per_task, per_task_null=per_task_null, scores=scores,
                          selection=selection, split=split, runs=runs)
