"""Selection and reporting on disjoint labels: what chooses a checkpoint (or a baseline's size) never scores it.

:func:`split_labels` divides the labels once into a *selection* part and a *report* part:
- by samples (default): the labelled samples are permuted with ``seed`` and the first ``select_fraction`` of them
  form the selection set, the rest the report set (every task keeps its labels on both sides);
- by tasks (``select_tasks=[...]``, as in the Embed2Scale challenge whose final tasks were hidden): the selection
  set is those tasks on every sample, the report set the remaining tasks.
:func:`score_split` scores one embedding on both parts with :func:`eoembed.bench.evaluate` (same protocol on each):
``q_select``/``q_select/<task>`` and ``q_report``/``q_report/<task>``. A choice (epoch, PCA size) is made on
``q_select`` only; ``q_report`` is the number to report.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eoembed.errors import DataFileNotFound, LabelError

__all__ = ["SelectionSplit", "split_labels", "score_split"]

#: Fewest labelled samples a task needs in each part (a 10% test fold then holds two samples; see bench.core).
MIN_PER_PART = 11


def _sha1(items: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(map(str, items)).encode()).hexdigest()


def _subset(labels: pd.DataFrame, rows: Any, tasks: Sequence[str]) -> pd.DataFrame:
    """Rows (boolean mask, label order kept) and task columns of a labels DataFrame, with its task types."""
    sub = labels.loc[rows, list(tasks)].copy()
    sub = sub.loc[sub.notna().any(axis=1)]
    sub.attrs = {"task_types": {t: labels.attrs["task_types"][t] for t in tasks}}
    order = labels.attrs.get("label_order") or {}
    if any(t in order for t in tasks):   # file row order (NeuCo splits); task_row_order keeps only labelled ids
        sub.attrs["label_order"] = {t: order[t] for t in tasks if t in order}
    return sub


@dataclasses.dataclass(frozen=True)
class SelectionSplit:
    """Labels of the selection part (``select``) and the report part (``report``), each a labels DataFrame
    (index id, one column per task, ``attrs["task_types"]``). ``kind``: "samples" or "tasks"."""

    select: pd.DataFrame
    report: pd.DataFrame
    kind: str
    seed: int
    select_fraction: float | None = None

    @property
    def select_ids(self) -> list[str]:
        return [str(i) for i in self.select.index]

    @property
    def report_ids(self) -> list[str]:
        return [str(i) for i in self.report.index]

    @property
    def select_tasks(self) -> list[str]:
        return list(self.select.columns)

    @property
    def report_tasks(self) -> list[str]:
        return list(self.report.columns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (counts, tasks, id hashes) for checkpoints and ablation settings."""
        return {"kind": self.kind, "seed": self.seed, "select_fraction": self.select_fraction,
                "select_tasks": self.select_tasks, "report_tasks": self.report_tasks,
                "n_select": len(self.select), "n_report": len(self.report),
                "select_ids_sha1": _sha1(self.select_ids), "report_ids_sha1": _sha1(self.report_ids)}

    def __repr__(self) -> str:
        return (f"SelectionSplit(kind={self.kind!r}, select: {len(self.select)} samples x {self.select_tasks}, "
                f"report: {len(self.report)} samples x {self.report_tasks})")


def _read_labels(labels: Any) -> Any:
    """None, a labels DataFrame, or a labels folder read with :func:`eoembed.data.read_labels`."""
    if labels is None or isinstance(labels, pd.DataFrame):
        return labels
    if isinstance(labels, (str, os.PathLike)):
        p = Path(labels)
        if not p.exists():
            raise DataFileNotFound(f"labels folder {str(p)!r} does not exist; pass a NeuCo-Bench labels folder "
                                   "(<task>__<type>.csv files) or a labels DataFrame")
        from eoembed.data import read_labels  # type: ignore[attr-defined]

        return read_labels(p)
    raise LabelError(f"labels must be a folder path or a labels DataFrame, got {type(labels).__name__}")


def _normalised(labels: Any) -> pd.DataFrame:
    from eoembed.bench.io import read_labels_any

    return read_labels_any(_read_labels(labels))[0]


def _check_counts(part: pd.DataFrame, name: str, how: str) -> None:
    fix = ("Use more labelled samples, another select_fraction or select_seed, or leave the task out (q_tasks=) / "
           "select on tasks (select_tasks=).")
    for t in part.columns:
        n = int(part[t].notna().sum())
        if n < MIN_PER_PART:
            raise LabelError(f"task {t!r} has only {n} labelled samples in the {name} set ({how}); each task needs "
                             f">= {MIN_PER_PART} on each side. {fix}")
        if part.attrs["task_types"][t] == "classification" and part[t].nunique() < 2:
            raise LabelError(f"classification task {t!r} has a single class in the {name} set ({how}). {fix}")


def split_labels(labels: Any, ids: Sequence[str] | None = None, *, select_fraction: float = 0.5,
                 select_tasks: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                 seed: int = 0) -> SelectionSplit:
    """Split labels once into disjoint selection and report parts (see module doc).

    labels: labels folder or DataFrame. ids: the samples that may be used (e.g. the store's; default all labelled).
    tasks: tasks to use (default all). select_tasks: select on these tasks, report on the others (then
    ``select_fraction`` is not used). seed: the permutation of the sample split (independent of the model seed,
    so runs with different model seeds are reported on the same samples).
    """
    lab = _normalised(labels)
    tasks_l = list(tasks) if tasks is not None else list(lab.columns)
    unknown = [t for t in tasks_l + list(select_tasks or []) if t not in lab.columns]
    if unknown:
        raise LabelError(f"unknown task(s) {unknown}; the labels have {list(lab.columns)}")
    rows = lab.index.isin([str(i) for i in ids]) if ids is not None else np.ones(len(lab), bool)
    if select_tasks is not None:
        sel_t = list(dict.fromkeys(select_tasks))
        rep_t = [t for t in tasks_l if t not in set(sel_t)]
        if not rep_t:
            raise LabelError(f"select_tasks={list(select_tasks)} leaves no task to report on (tasks {tasks_l}); "
                             "keep at least one task out of select_tasks")
        split = SelectionSplit(_subset(lab, rows, sel_t), _subset(lab, rows, rep_t), "tasks", int(seed))
        how = f"select_tasks={sel_t}"
    else:
        if not 0.0 < select_fraction < 1.0:
            raise ValueError(f"select_fraction must be in (0, 1), got {select_fraction}")
        pos = np.flatnonzero(rows & lab[tasks_l].notna().any(axis=1).to_numpy())
        n_sel = int(round(select_fraction * len(pos)))
        if n_sel < 1 or n_sel > len(pos) - 1:
            raise LabelError(f"{len(pos)} labelled samples cannot be split with select_fraction={select_fraction}; "
                             "use more labelled samples")
        chosen = np.zeros(len(lab), bool)
        chosen[np.random.default_rng(seed).permutation(pos)[:n_sel]] = True
        split = SelectionSplit(_subset(lab, chosen, tasks_l), _subset(lab, rows & ~chosen, tasks_l), "samples",
                               int(seed), float(select_fraction))
        how = f"select_fraction={select_fraction} of {len(pos)} labelled samples"
    _check_counts(split.select, "selection", how)
    _check_counts(split.report, "report", how)
    return split


def score_split(embeddings: Any, split: SelectionSplit, parts: Sequence[str] = ("select", "report"),
                **evaluate_kwargs: Any) -> dict[str, float]:
    """Q-bar and per-task Q of ``embeddings`` on each part of ``split``, with the same evaluate arguments.

    Returns {"q_select", "q_select/<task>", ..., "q_report", "q_report/<task>", ...} for the requested parts.
    The embeddings may hold more samples than a part: :func:`eoembed.bench.evaluate` scores only the samples
    labelled in that part (and standardises over them), exactly as when given that part alone.
    """
    from eoembed.bench import evaluate

    kw = {"progress": False, **evaluate_kwargs}
    out: dict[str, float] = {}
    for part in parts:
        if part not in ("select", "report"):
            raise ValueError(f"parts must be 'select' and/or 'report', got {part!r}")
        res = evaluate(embeddings, getattr(split, part), **kw)
        out[f"q_{part}"] = float(res.overall_q)
        out.update({f"q_{part}/{t}": float(v) for t, v in res.per_task["q_stat"].items()})
    return out
