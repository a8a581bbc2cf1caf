"""Ablation over model subsets (Table 1 / Figure 3 of the Embed2Scale winning paper) plus baselines.

Each combination of models is fused, compressed with :func:`train_compressor` (checkpoint selected by in-loop
Q-bar) and its selected embeddings are scored with the full protocol (:func:`eoembed.bench.evaluate`,
``eval_folds`` folds, 40 = NeuCo default). Baselines (PCA of the all-model fused vector; RCF on the cube when a
cube is given) are further rows of the same table.

Default combinations: every single model, all models together, and every leave-one-out subset (with three or more
models). The shared project docs do not list the paper's Table 1 rows, so this design (singles, full ensemble,
all-but-one) is the default for any number of models; pass ``combos`` for others.

Z (task-normalised score, NeuCo-Bench paper) is :func:`eoembed.bench.z_scores` of the per-task Q table (the same
definition as :func:`eoembed.bench.compare`): per task t, z = (Q_t^m - mean_m Q_t^m) / std_m Q_t^m over the rows m
of the table, Z_m = mean over tasks. It therefore depends on which rows are in the table.
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
from eoembed.compress.train import IN_LOOP_Q_FOLDS, _read_labels, train_compressor

__all__ = ["AblationResult", "ablate", "default_combos"]


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
    """``table``: one row per combination/method (Table 1); ``per_task``: Q per task (Figure 3);
    ``scores``: mean fold score per task; ``runs``: {combination: TrainResult or baseline array}."""

    table: pd.DataFrame
    per_task: pd.DataFrame
    scores: pd.DataFrame
    runs: dict[str, Any]


def _name(combo: Sequence[str]) -> str:
    return " + ".join(combo)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name.replace(" + ", "__"))


def ablate(store: Any, labels: Any, combos: Sequence[Sequence[str]] | None = None, *,
           baselines: Sequence[str] = ("pca", "rcf"), cube: Any = None, epochs: int | None = None,
           preset: str | None = None, out_dim: int | None = None, out: str | os.PathLike | None = None,
           eval_folds: int = 40, q_mode: str = "compat", eval_epochs: int | None = None,
           q_folds: int = IN_LOOP_Q_FOLDS, seed: int | None = None, device: Any = None,
           rcf_features: int = 4096, progress: bool = True, **train_kwargs: Any) -> AblationResult:
    """Train and score the compressor for each model subset, plus baselines, in one table.

    combos: list of model-name lists (default :func:`default_combos`). baselines: "pca" (all-model fused vector)
    and "rcf" (needs ``cube``; skipped with a table note when no cube is given). Remaining keyword arguments go to
    :func:`train_compressor`. With ``out``, each run lives in ``out/<combination>/`` and finished runs are reused
    (the run's settings must match), so an interrupted ablation resumes.
    """
    from eoembed.bench import evaluate, z_scores  # type: ignore[attr-defined]

    if labels is None:
        raise ValueError("ablate needs labels (a NeuCo labels folder or labels DataFrame) to score combinations")
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
    bases = [b for b in baselines]
    unknown = [b for b in bases if b not in ("pca", "rcf")]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from 'pca', 'rcf'")
    if "rcf" in bases and cube is None:
        bases.remove("rcf")
    out_p = Path(out) if out is not None else None
    eval_kw: dict[str, Any] = {"folds": int(eval_folds), "mode": q_mode, "seed": 42, "progress": False}
    if eval_epochs is not None:
        eval_kw["epochs"] = int(eval_epochs)
    if device is not None:
        eval_kw["device"] = str(device)
    settings = {"epochs": epochs, "preset": preset, "out_dim": out_dim, "seed": seed, "eval": eval_kw,
                "q_folds": q_folds, "train": {k: repr(v) for k, v in sorted(train_kwargs.items())},
                "rcf_features": rcf_features}

    jobs = [("autoencoder", c) for c in combos_l] + [(b, tuple(all_models)) for b in bases]
    rows, per_task, scores, runs = [], {}, {}, {}
    it = jobs
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(jobs, desc="ablation", unit="run")
    for method, combo in it:
        name = _name(combo) if method == "autoencoder" else {"pca": "PCA (all models)", "rcf": "RCF (cube)"}[method]
        if progress:
            it.set_postfix_str(name[:40])
        run_dir = out_p / _slug(f"{method}__{name}") if out_p is not None else None
        done = run_dir / "ablation_row.json" if run_dir is not None else None
        if done is not None and done.exists():
            saved = json.loads(done.read_text())
            if saved.get("settings") != json.loads(json.dumps(settings, default=str)):
                raise ValueError(f"{str(done)!r} was made with other settings; use another out folder or "
                                 "delete that run folder to recompute it")
            rows.append(saved["row"])
            per_task[name], scores[name] = saved["q"], saved["scores"]
            runs[name] = str(run_dir)
            continue
        fused = select_models(fused_all, combo)
        if method == "autoencoder":
            res = train_compressor(fused, labels, epochs=epochs, preset=preset, out_dim=out_dim, seed=seed,
                                   device=device, q_folds=q_folds, q_mode=q_mode, out=run_dir, progress=False,
                                   **train_kwargs)
            emb = res.embeddings
            hist = res.history.set_index("epoch")
            mse = float(hist.loc[res.selected_epoch, "val_mse"])
            extra = {"selected_epoch": res.selected_epoch, "in_loop_q": res.best_q}
            runs[name] = res
        elif method == "pca":
            from eoembed.compress.baselines import pca_baseline
            emb = pca_baseline(fused, out_dim=out_dim or 1024, seed=1337 if seed is None else seed)
            mse = float(emb.attrs["val_mse"])
            extra = {"selected_epoch": np.nan, "in_loop_q": np.nan}
            runs[name] = emb
        else:
            from eoembed.compress.baselines import rcf_baseline
            emb = rcf_baseline(cube, n_features=rcf_features, out_dim=out_dim or 1024, seed=seed or 0,
                               device=device, progress=False)
            missing = sorted(set(map(str, fused["sample"].values)) - set(map(str, emb["sample"].values)))
            if missing:
                raise ValueError(f"the cube lacks {len(missing)} samples of the store (e.g. {missing[:3]}); "
                                 "pass the cube the embeddings were extracted from")
            mse = float("nan")
            extra = {"selected_epoch": np.nan, "in_loop_q": np.nan}
            runs[name] = emb
        ev = evaluate(emb, labels, **eval_kw)
        row = {"combination": name, "method": method, "models": list(combo), "n_models": len(combo),
               "in_dim": int(fused.shape[1]), "out_dim": int(emb.shape[1]), "q_bar": float(ev.overall_q),
               "acc": float(ev.overall_acc), "mse": mse, **extra}
        q = {t: float(v) for t, v in ev.per_task["q_stat"].items()}
        sc = {t: float(v) for t, v in ev.per_task["mean_score"].items()}
        rows.append(row)
        per_task[name], scores[name] = q, sc
        if done is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            clean = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
            done.write_text(json.dumps({"settings": settings, "row": clean, "q": q, "scores": sc}, indent=1,
                                       default=str))
    table = pd.DataFrame(rows).set_index("combination")
    table = table.astype({"q_bar": float, "mse": float, "acc": float, "selected_epoch": float, "in_loop_q": float})
    per_task_df = pd.DataFrame.from_dict(per_task, orient="index").reindex(table.index)
    scores_df = pd.DataFrame.from_dict(scores, orient="index").reindex(table.index)
    per_task_df.index.name = scores_df.index.name = "combination"
    table.insert(table.columns.get_loc("q_bar") + 1, "z", z_scores(per_task_df.T).reindex(table.index))
    if "rcf" in baselines and cube is None:
        table.attrs["note"] = "RCF baseline skipped: no cube given (rcf_baseline needs the image cube)"
    return AblationResult(table=table, per_task=per_task_df, scores=scores_df, runs=runs)
