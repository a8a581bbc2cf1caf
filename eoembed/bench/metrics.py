"""Scores: NeuCo-Bench Q statistic, leaderboard, task-normalised Z, TESSERA chance-adjusted metrics.

Batched metric helpers work on (P, L) tensors of predictions with a validity mask, one row per probe.
"""
from __future__ import annotations

from typing import Mapping

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # torch and scipy are imported where used: `eoembed bench` needs neither
    import torch


# ----------------------------------------------------------------------------------------------- per task
def q_score(scores) -> float:
    """NeuCo-Bench Q = 2 * nanmean(s) / (0.02 + nanstd(s)) (ddof 0; NaN folds ignored; no clipping)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0 or np.isnan(s).all():
        return float("nan")
    return float(2.0 * np.nanmean(s) / (0.02 + np.nanstd(s)))


# ----------------------------------------------------------------------------------------------- batched metrics
def r2_batched(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """R^2 per row as torchmetrics.R2Score computes it (near-zero rss / tss rules, atol 1e-4)."""
    import torch
    pred, y, m = pred.double(), y.double(), mask.double()
    n = m.sum(1)
    y0 = torch.where(mask, y, torch.zeros_like(y))
    mean = y0.sum(1) / n.clamp(min=1)
    tss = (((y0 - mean[:, None]) ** 2) * m).sum(1)
    rss = (((y0 - torch.where(mask, pred, torch.zeros_like(pred))) ** 2) * m).sum(1)
    tiny_rss = rss.abs() <= 1e-4
    tiny_tss = tss.abs() <= 1e-4
    out = 1.0 - rss / torch.where(tiny_tss, torch.ones_like(tss), tss)
    out = torch.where(tiny_rss, torch.ones_like(out), out)               # rss ~ 0 -> 1
    out = torch.where(~tiny_rss & tiny_tss, torch.zeros_like(out), out)  # constant target, errors -> 0
    out = torch.where(torch.isnan(rss), torch.full_like(out, float("nan")), out)
    return torch.where(n >= 2, out, torch.full_like(out, float("nan")))


def f1_batched(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary F1 per row as torchmetrics.BinaryF1Score on logits: a row whose outputs all lie in [0, 1] is
    taken as probabilities (threshold 0.5 on the raw output), otherwise sigmoid(logit) > 0.5, i.e. logit > 0.
    Zero division -> 0."""
    import torch
    inside = ((logits >= 0) & (logits <= 1)) | ~mask
    as_prob = inside.all(1, keepdim=True)
    hard = torch.where(as_prob, logits > 0.5, logits > 0)
    pos = y > 0.5
    tp = (hard & pos & mask).sum(1).double()
    fp = (hard & ~pos & mask).sum(1).double()
    fn = (~hard & pos & mask).sum(1).double()
    den = 2 * tp + fp + fn
    return torch.where(den > 0, 2 * tp / den.clamp(min=1), torch.zeros_like(den))


def balanced_accuracy_batched(pred_class: torch.Tensor, y_class: torch.Tensor, mask: torch.Tensor,
                              n_classes: int) -> torch.Tensor:
    """Balanced accuracy per row (mean recall over the classes present in the row's targets)."""
    import torch
    recalls, present = [], []
    for c in range(n_classes):
        is_c = (y_class == c) & mask
        nc = is_c.sum(1).double()
        hit = (is_c & (pred_class == c)).sum(1).double()
        recalls.append(torch.where(nc > 0, hit / nc.clamp(min=1), torch.zeros_like(nc)))
        present.append((nc > 0).double())
    rec, pres = torch.stack(recalls, 1), torch.stack(present, 1)
    return (rec * pres).sum(1) / pres.sum(1).clamp(min=1)


def chance_adjusted(balanced_accuracy, n_classes: int):
    """TESSERA chance-adjusted balanced accuracy (bacc - 1/K) / (1 - 1/K)."""
    return (balanced_accuracy - 1.0 / n_classes) / (1.0 - 1.0 / n_classes)


def tessera_score(y_true, y_pred, task_type: str) -> float:
    """TESSERA-suite score of one prediction: chance-adjusted balanced accuracy (classification, any number of
    classes; y_pred = predicted classes) or max(0, R^2) (regression)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if task_type == "classification":
        classes = np.unique(y_true)
        k = max(len(classes), 2)
        recalls = [np.mean(y_pred[y_true == c] == c) for c in classes]
        return float(chance_adjusted(np.mean(recalls), k))
    ss_res = float(np.sum((y_true - y_pred) ** 2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return max(0.0, 1.0 - ss_res / ss_tot) if ss_tot > 0 else 0.0


# ----------------------------------------------------------------------------------------------- across methods
def _q_table(results: Mapping) -> pd.DataFrame:
    cols = {}
    for name, r in results.items():
        if hasattr(r, "per_task"):
            cols[name] = r.per_task["q_stat"].astype(float)
        elif isinstance(r, pd.Series):
            cols[name] = r.astype(float)
        else:
            cols[name] = pd.Series(dict(r), dtype=float)
    table = pd.DataFrame(cols)
    table.index.name = "task"
    table.columns.name = "method"
    return table


def z_scores(table: pd.DataFrame, ddof: int = 0) -> pd.Series:
    """Task-normalised score Z_m = mean_t((s_t^m - mean_m s_t^m) / std_m s_t^m) of a task x method table.

    Tasks whose score is equal for all methods (std 0) carry no information and are skipped."""
    t = table.astype(float)
    mu = t.mean(axis=1)
    sd = t.std(axis=1, ddof=ddof).replace(0.0, np.nan)
    z = t.sub(mu, axis=0).div(sd, axis=0)
    out = z.mean(axis=0, skipna=True)
    out.name = "z"
    return out


def leaderboard(table: pd.DataFrame, nulls: Mapping | None = None) -> pd.DataFrame:
    """NeuCo-Bench leaderboard of a task x method Q table.

    nulls: {method: eoembed.bench.NullControl} (same labels permuted, same protocol): adds ``q_null`` (mean Q-bar
    over the permutation draws), ``q_null_std`` (their spread) and ``q_gap`` (= mean_score - q_null) per method, so
    a row's level can be read against what the same embedding scores on labels without signal.

    Methods with a NaN task are dropped; per task methods are ranked (1 = best, ties get the lowest rank);
    each task is weighted by the std of Q across methods (ddof 1) normalised to sum 1 (equal weights for a single
    method); weighted_score = sum(rank * weight), lower is better; aggregated_rank ranks weighted_score.
    """
    from scipy.stats import rankdata
    df = table.astype(float).T  # method x task
    tasks = list(df.columns)
    dropped = [m for m in df.index if df.loc[m].isna().any()]
    df = df.drop(index=dropped)
    cols = ["method", "mean_score", "weighted_score", "aggregated_rank"] + tasks
    if df.empty:
        out = pd.DataFrame(columns=cols)
        out.attrs["dropped"] = dropped
        return out
    scores = df.to_numpy()
    ranks = rankdata(-scores, axis=0, method="min")
    if len(df) > 1:
        std = np.std(scores, axis=0, ddof=1)
        weights = std / std.sum() if std.sum() > 0 else np.full(len(tasks), 1.0 / len(tasks))
    else:
        weights = np.full(len(tasks), 1.0 / len(tasks))
    out = df.copy()
    out.insert(0, "mean_score", scores.mean(axis=1))
    out.insert(1, "weighted_score", (ranks * weights).sum(axis=1))
    out.insert(2, "aggregated_rank", rankdata(out["weighted_score"].to_numpy(), method="min").astype(int))
    out = out.rename_axis("method").reset_index()[cols].sort_values("weighted_score").reset_index(drop=True)
    out.columns.name = None
    if nulls:
        get = {m: (nulls[m].q_mean, nulls[m].q_std) if m in nulls else (np.nan, np.nan) for m in out["method"]}
        out.insert(2, "q_null", [get[m][0] for m in out["method"]])
        out.insert(3, "q_null_std", [get[m][1] for m in out["method"]])
        out.insert(4, "q_gap", out["mean_score"] - out["q_null"])
    out.attrs["weights"] = dict(zip(tasks, weights.tolist()))
    out.attrs["dropped"] = dropped
    return out


def compare(results: Mapping, nulls: Mapping | None = None) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """Compare methods. ``results``: {method: EvalResult | {task: Q} | Series}; ``nulls``: optional
    {method: NullControl} (:func:`eoembed.bench.null_control` with the same protocol).

    Returns ``(table, z, board)``: task x method Q table (the paper's Figure-3 heatmap), task-normalised Z per
    method, NeuCo leaderboard (see :func:`leaderboard`; with ``nulls`` it holds each method's null control)."""
    if not results:
        raise ValueError("compare() needs at least one result: {method_name: EvalResult}.")
    table = _q_table(results)
    return table, z_scores(table), leaderboard(table, nulls=nulls)
