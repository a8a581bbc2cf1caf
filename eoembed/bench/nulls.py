"""Null controls: the score an embedding gets when its labels carry no information about it.

Under the NeuCo-Bench protocol a Q-bar is not measured against zero: each embedding geometry has its own level on
labels of pure noise (measured in issue 9 with 150 samples: autoencoder about -0.3, PCA -2.7, RCF -2.9, raw Presto
-1.0; a short-trained linear probe overfits differently with each geometry), and F1 on random binary labels is
not chance-corrected (Q 7-10 for every embedding). :func:`null_control` measures that level for given embeddings:
the same evaluation with each task's labels permuted among its labelled samples (several draws). A Q-bar is
evidence of signal only by its difference to this null, judged against the spread over draws.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["NullControl", "null_control", "permute_labels"]


@dataclasses.dataclass
class NullControl:
    """Result of :func:`null_control`.

    ``draws``: one row per draw, columns ``q_bar`` and one per task. ``per_task``: index task, columns ``mean``
    and ``std`` over draws. ``q_mean``/``q_std``: mean and standard deviation (ddof=1) of Q-bar over draws.
    """

    draws: pd.DataFrame
    per_task: pd.DataFrame
    q_mean: float
    q_std: float

    @property
    def n_draws(self) -> int:
        return len(self.draws)

    def tolerance(self, k: float = 3.0) -> float:
        """``k`` standard deviations of the difference between one score and the null mean: a score that is itself
        a draw from the null differs from ``q_mean`` by sd ``q_std * sqrt(1 + 1/n_draws)``."""
        return float(k * self.q_std * math.sqrt(1.0 + 1.0 / self.n_draws))

    def gap(self, q: float) -> dict[str, float]:
        """{"q_null", "q_null_std", "q_gap"} for a score ``q`` measured with the same protocol."""
        return {"q_null": self.q_mean, "q_null_std": self.q_std, "q_gap": float(q) - self.q_mean}

    def __repr__(self) -> str:
        return f"NullControl(draws={self.n_draws}, q_bar={self.q_mean:.3f} +/- {self.q_std:.3f})"


def _labels_frame(labels: Any) -> pd.DataFrame:
    from eoembed.bench.io import read_labels_any

    if not isinstance(labels, pd.DataFrame):
        from eoembed.data import read_labels  # type: ignore[attr-defined]

        labels = read_labels(labels)
    return read_labels_any(labels)[0]


def permute_labels(labels: Any, seed: int | Sequence[int] = 0) -> pd.DataFrame:
    """A copy of ``labels`` (folder or DataFrame) with each task's labels permuted among the samples that have one
    (which samples are labelled, the class balance and the value distribution of every task are kept)."""
    lab = _labels_frame(labels)
    rng = np.random.default_rng(seed)
    out = lab.copy()
    for t in lab.columns:
        has = lab[t].notna().to_numpy()
        vals = lab[t].to_numpy()[has]
        col = lab[t].to_numpy().copy()
        col[has] = vals[rng.permutation(len(vals))]
        out[t] = col
    out.attrs = {"task_types": dict(lab.attrs["task_types"])}
    if lab.attrs.get("label_order"):   # same ids in the same file order: the folds are the real evaluation's
        out.attrs["label_order"] = dict(lab.attrs["label_order"])
    return out


def null_control(embeddings: Any, labels: Any, draws: int = 5, null_seed: int = 0,
                 **evaluate_kwargs: Any) -> NullControl:
    """Score ``embeddings`` with :func:`eoembed.bench.evaluate` on ``draws`` permutations of ``labels``.

    Each draw permutes every task's labels among its labelled samples (:func:`permute_labels`, seed
    ``[null_seed, draw]``) and evaluates with ``evaluate_kwargs`` (pass the same folds, mode, epochs, seed and
    tasks as the score it is compared with; the folds stay the same, only the labels move). Returns the per-draw scores,
    their mean and spread per task and overall (see :class:`NullControl`).
    """
    from eoembed.bench import evaluate

    if int(draws) < 2:
        raise ValueError(f"draws must be >= 2 (the spread over draws is part of the result), got {draws}")
    if evaluate_kwargs.get("out") is not None:
        raise ValueError("null_control writes no results; drop out=")
    kw = {"progress": False, **evaluate_kwargs}
    kw.pop("out", None)
    lab = _labels_frame(labels)
    rows = []
    for d in range(int(draws)):
        res = evaluate(embeddings, permute_labels(lab, seed=[int(null_seed), d]), **kw)
        rows.append({"q_bar": float(res.overall_q), **{t: float(v) for t, v in res.per_task["q_stat"].items()}})
    table = pd.DataFrame(rows)
    table.index.name = "draw"
    tasks = [c for c in table.columns if c != "q_bar"]
    per_task = pd.DataFrame({"mean": table[tasks].mean(), "std": table[tasks].std(ddof=1)})
    per_task.index.name = "task"
    return NullControl(draws=table, per_task=per_task, q_mean=float(table["q_bar"].mean()),
                       q_std=float(table["q_bar"].std(ddof=1)))
