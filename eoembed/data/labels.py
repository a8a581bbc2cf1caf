"""Labels in the NeuCo-Bench folder layout: ``labels/<task>__<regression|classification>.csv`` with ``id,label``.

In memory: a DataFrame indexed by ``id`` (str), one float column per task (NaN = no label for that sample),
``df.attrs["task_types"] = {task: "regression" | "classification"}``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from eoembed.errors import DataFileNotFound, LabelError

#: File-name suffixes accepted for each task type (as in NeuCo-Bench).
TYPE_ALIASES: dict[str, str] = {"classification": "classification", "cls": "classification",
                                "regression": "regression", "regr": "regression"}
#: ``df.attrs`` key of per-task id orders that differ from the row order (see :func:`task_row_order`).
LABEL_ORDER = "label_order"


def parse_label_filename(path: str | Path) -> tuple[str, str]:
    """``"labels/crops__regression.csv" -> ("crops", "regression")``; LabelError for other names."""
    p = Path(path)
    stem = p.name[:-4] if p.name.endswith(".csv") else None
    task, sep, typ = (stem or "").rpartition("__")
    if stem is None or not sep or not task or typ not in TYPE_ALIASES:
        raise LabelError(f"label file {str(p)!r} is not named '<task>__<type>.csv' with type one of "
                         f"{sorted(TYPE_ALIASES)}; rename it (e.g. 'crops__regression.csv') or move it out of the folder.")
    from eoembed.checks import safe_name
    return safe_name(task, "task name", f"label file {str(p)!r}"), TYPE_ALIASES[typ]


def read_label_file(path: str | Path) -> tuple[str, str, pd.Series]:
    """One ``<task>__<type>.csv`` -> ``(task, type, labels)``: float Series indexed by id in file order, NaN where
    the label is empty. LabelError (naming the file and the fix) for bad names, columns, ids or values."""
    f = Path(path)
    task, typ = parse_label_filename(f)
    try:
        t = pd.read_csv(f, dtype={"id": str})
    except pd.errors.EmptyDataError:
        raise LabelError(f"label file {str(f)!r} is empty (not even a header); write 'id,label' rows or remove it.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise LabelError(f"label file {str(f)!r} is not a well-formed CSV ({type(e).__name__}); write 'id,label' "
                         "rows.") from None
    if not {"id", "label"} <= set(t.columns):
        raise LabelError(f"label file {str(f)!r} has columns {list(t.columns)}; expected 'id,label'. Rename the columns.")
    if t["id"].isna().any():
        raise LabelError(f"label file {str(f)!r} has {int(t['id'].isna().sum())} row(s) without an id; fill or drop them.")
    if t["id"].duplicated().any():
        dup = t.loc[t["id"].duplicated(), "id"].tolist()[:5]
        raise LabelError(f"label file {str(f)!r} repeats id(s) {dup}; keep one label per id.")
    lab = pd.to_numeric(t["label"], errors="coerce")
    bad = lab.isna() & t["label"].notna()
    if bad.any():
        raise LabelError(f"label file {str(f)!r} has non-numeric label(s) {t.loc[bad, 'label'].tolist()[:5]} "
                         f"(ids {t.loc[bad, 'id'].tolist()[:5]}); labels must be numbers (classification: 0/1).")
    from eoembed.checks import check_finite_labels
    check_finite_labels(lab.to_numpy(), t["id"].to_numpy(), f"label file {str(f)!r}")
    if typ == "classification":
        vals = {float(v) for v in np.unique(lab.dropna())}
        if not vals <= {0.0, 1.0}:
            raise LabelError(f"classification label file {str(f)!r} has values {sorted(vals)[:6]}; "
                             "NeuCo-Bench classification is binary 0/1. Threshold the labels or rename the file "
                             "'<task>__regression.csv'.")
    return task, typ, pd.Series(lab.to_numpy(dtype=np.float64), index=t["id"].astype(str).to_numpy(), name=task)


def read_labels(labels_dir: str | Path, tasks: list[str] | None = None) -> pd.DataFrame:
    """Read every ``<task>__<type>.csv`` of a label folder into one DataFrame (index ``id``, one column per task).

    Samples without a label for a task get NaN. ``tasks`` restricts (and orders) the tasks read.
    Empty label files give an all-NaN column listed in ``df.attrs["empty_tasks"]``.
    Rows keep the files' order (ids in order of first appearance, files in task order; not sorted), so that
    ``evaluate(emb, read_labels(folder))`` splits exactly like ``evaluate(emb, folder)`` (NeuCo-Bench's folds index
    each task's rows in file order); a task whose file lists its ids in another order keeps that order in
    ``df.attrs["label_order"]``.
    """
    d = Path(labels_dir)
    if not d.is_dir():
        hint = " (pass the 'labels' folder inside the dataset root)" if (d / "labels").is_dir() else ""
        raise DataFileNotFound(f"label folder {str(d)!r} does not exist or is not a folder{hint}; "
                               "point to a folder of '<task>__<type>.csv' files.")
    if (d / "labels").is_dir() and not any(d.glob("*.csv")):
        d = d / "labels"
    files = sorted(p for p in d.iterdir() if p.suffix == ".csv" and not p.name.startswith("."))
    if not files:
        raise DataFileNotFound(f"no '<task>__<type>.csv' files in {str(d)!r}; write labels with "
                               "eoembed.data.write_labels(df, folder) or check the path.")
    cols: dict[str, pd.Series] = {}
    types: dict[str, str] = {}
    empty: list[str] = []
    for f in files:
        task, typ = parse_label_filename(f)
        if tasks is not None and task not in tasks:
            continue
        if task in types:
            raise LabelError(f"task {task!r} has two label files in {str(d)!r} (one is {f.name!r}); keep one.")
        task, typ, lab = read_label_file(f)
        if lab.notna().sum() == 0:
            empty.append(task)
        cols[task] = lab
        types[task] = typ
    if tasks is not None:
        absent = [t for t in tasks if t not in types]
        if absent:
            raise LabelError(f"task(s) {absent} have no label file in {str(d)!r} (found {sorted(types)}).")
        order = list(tasks)
    else:
        order = sorted(types)
    # Rows in order of first appearance (files in task order), never sorted: NeuCo-Bench's splits index each
    # task's rows in file order, so evaluating this DataFrame must see the same order as the folder.
    all_ids = [cols[k].index.to_numpy(dtype=object) for k in order]
    index = pd.Index(pd.unique(np.concatenate(all_ids)) if all_ids else [], dtype=object).astype(str)
    index.name = "id"
    df = pd.DataFrame({k: cols[k].reindex(index) for k in order}, index=index)
    df.attrs["task_types"] = {k: types[k] for k in order}
    file_order = {}
    for k in order:
        ids = cols[k].index[cols[k].notna()]
        if not ids.equals(index[df[k].notna().to_numpy()]):
            file_order[k] = ids.to_numpy(dtype=str)   # only tasks whose file order the index cannot show
    if file_order:
        df.attrs[LABEL_ORDER] = file_order
    if empty:
        df.attrs["empty_tasks"] = empty
    return df


def task_row_order(df: pd.DataFrame, task: str) -> pd.Index:
    """Ids labelled for ``task`` in the order NeuCo-Bench's splits see them (the label file's row order).

    That is the DataFrame's row order, unless ``df.attrs["label_order"][task]`` (set by :func:`read_labels` when a
    file lists its ids in another order than the index) says otherwise; ids labelled in ``df`` but absent from
    that list (rows added later) follow in row order."""
    labelled = df.index[df[task].notna().to_numpy()]
    saved = (df.attrs.get(LABEL_ORDER) or {}).get(task)
    if saved is None:
        return labelled
    saved = pd.Index(np.asarray(saved, dtype=str))
    return saved[saved.isin(labelled)].append(labelled[~labelled.isin(saved)])


def write_labels(df: pd.DataFrame, labels_dir: str | Path, task_types: dict[str, str] | None = None,
                 overwrite: bool = False) -> list[Path]:
    """Write one ``<task>__<type>.csv`` (``id,label``; NaN rows = no label, not written) per column of ``df``.

    Types come from ``task_types`` or ``df.attrs["task_types"]``. Existing files raise unless ``overwrite``.
    Returns the written paths.
    """
    if not isinstance(df, pd.DataFrame):
        raise LabelError(f"labels must be a pandas DataFrame (index id, one column per task); got {type(df).__name__}.")
    types = dict(task_types or df.attrs.get("task_types") or {})
    untyped = [c for c in df.columns if c not in types]
    if untyped:
        raise LabelError(f"no task type for column(s) {untyped}; pass task_types={{task: 'regression'|'classification'}} "
                         "or set df.attrs['task_types'].")
    if df.index.duplicated().any():
        raise LabelError(f"label index repeats id(s) {df.index[df.index.duplicated()].tolist()[:5]}; ids must be unique.")
    out = Path(labels_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for task in df.columns:
        typ = TYPE_ALIASES.get(str(types[task]))
        if typ is None:
            raise LabelError(f"task {task!r} has type {types[task]!r}; use one of {sorted(TYPE_ALIASES)}.")
        if "__" in str(task) or os.sep in str(task):
            raise LabelError(f"task name {task!r} contains '__' or a path separator; rename the column.")
        col = pd.to_numeric(df[task], errors="coerce")
        if (col.isna() & df[task].notna()).any():
            raise LabelError(f"task {task!r} has non-numeric labels; convert them to numbers first.")
        p = out / f"{task}__{typ}.csv"
        if p.exists() and not overwrite:
            raise LabelError(f"label file {str(p)!r} already exists; pass overwrite=True to replace it.")
        keep = col.notna()
        vals = col[keep].to_numpy(dtype=np.float64)
        if typ == "classification":
            if not set(np.unique(vals)) <= {0.0, 1.0}:
                raise LabelError(f"classification task {task!r} has values other than 0/1; threshold it first.")
            vals = vals.astype(np.int64)
        t = pd.DataFrame({"id": df.index[keep].astype(str), "label": vals})
        tmp = p.with_name(p.name + ".tmp")
        t.to_csv(tmp, index=False)
        os.replace(tmp, p)
        paths.append(p)
    return paths
