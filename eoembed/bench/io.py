"""Inputs of the evaluation engine: embeddings, NeuCo-Bench label folders, id matching.

Everything NeuCo-Bench does silently (dropping rows without labels, filling NaN with 0, skipping empty labels,
dropping labels without an embedding) is done here too, but counted in a report dict.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eoembed.checks import (check_embedding_values, check_label_frame, check_not_constant, check_numeric_cells,
                            read_csv_checked)
from eoembed.data.labels import LABEL_ORDER, read_label_file, task_row_order
from eoembed.errors import DataError, DataFileNotFound, LabelError

#: Accepted task type names in label file names, mapped to the canonical names.
TASK_TYPES: dict[str, str] = {"classification": "classification", "cls": "classification",
                              "regression": "regression", "regr": "regression"}
_MAX_LISTED = 20  # ids listed in reports (counts are always complete)


def strip_id(s: str) -> str:
    """Remove ``.zarr.zip`` / ``.zarr`` from an id, exactly as NeuCo-Bench does (every occurrence)."""
    return str(s).replace(".zarr.zip", "").replace(".zarr", "")


# ----------------------------------------------------------------------------------------------- embeddings
def _digit_columns(columns) -> list | None:
    digit = [c for c in columns if str(c).isdigit()]
    return sorted(digit, key=lambda c: int(str(c))) if digit else None


def _frame_to_array(df: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(values float64 with NaN, ids, number of non-numeric cells coerced to NaN)."""
    if "id" in df.columns:
        ids = df["id"].astype(str).to_numpy()
        df = df.drop(columns=["id"])
    else:
        ids = df.index.astype(str).to_numpy()
    cols = _digit_columns(df.columns)
    if cols is None:
        cols = list(df.columns)
    if not cols:
        raise DataError(f"{source}: no embedding columns found; expected columns 'id,0,1,...,D-1'.")
    block = df[cols]
    if all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in block.dtypes):
        return block.to_numpy(dtype=np.float64), ids, 0      # numeric columns: nothing to coerce
    check_numeric_cells(block, ids, source)  # text cells are an error, not silently NaN -> 0
    values = block.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    return values, ids, 0


#: Cells pandas.read_csv reads as missing (its default na_values) and None (empty cell).
_PANDAS_NA = np.array([None, "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                       "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"], dtype=object)


def _read_csv_plain(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The strict parallel numba reader of :mod:`eoembed.bench._csv` (None: not a plain file, or no numba; the
    ids pandas reads as missing are handed over too)."""
    try:
        from eoembed.bench import _csv
    except ImportError:
        return None
    out = _csv.read(path)
    if out is None or np.isin(out[1], _PANDAS_NA).any():
        return None
    return out


def _read_csv_fast(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(values float64 with NaN, raw ids) of a plain NeuCo CSV parsed by eoembed's strict numba reader, else by pyarrow
    (multi-threaded), or None when the
    file is anything but a clean numeric table (compressed, ragged, duplicate or non-digit columns, text cells,
    ...): the checked pandas reader then reads it and names what is wrong."""
    if path.suffix.lower() != ".csv":
        return None
    plain = _read_csv_plain(path)
    if plain is not None:
        return plain
    try:
        import pyarrow as pa
        from pyarrow import csv as pacsv

        tbl = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={"id": pa.string()}))
    except Exception:  # noqa: BLE001 - any parse problem: the checked pandas reader explains it
        return None
    names = tbl.column_names
    other = [c for c in names if c != "id"]
    if names.count("id") != 1 or len(set(names)) != len(names) or not other or not all(c.isdigit() for c in other):
        return None
    cols = sorted(range(len(names)), key=lambda j: int(names[j]) if names[j] != "id" else -1)[1:]
    if not all(pa.types.is_floating(tbl.schema.field(j).type) or pa.types.is_integer(tbl.schema.field(j).type)
               for j in cols):
        return None
    ids = np.asarray(tbl.column("id").to_pylist(), dtype=object)
    if np.isin(ids, _PANDAS_NA).any():   # pandas reads these ids as missing: its reader reports them
        return None
    values = np.empty((tbl.num_rows, len(cols)), dtype=np.float64)
    for k, j in enumerate(cols):
        values[:, k] = tbl.column(j).to_numpy(zero_copy_only=False)
    return values, ids


def read_embeddings(embeddings, ids=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read embeddings from a NeuCo CSV path, DataFrame, xarray DataArray or NumPy array (+ ``ids``).

    Returns ``(X, ids, info)``: X float32 (n, D) possibly with NaN, ids (str, suffixes stripped),
    info with the source description and counts of suffix-stripped ids / coerced cells.
    """
    info: dict = {"non_numeric_cells": 0}
    if isinstance(embeddings, (str, Path)):
        path = Path(embeddings)
        if not path.is_file():
            raise DataFileNotFound(f"Embedding file {path} does not exist; pass a NeuCo CSV with columns id,0..D-1.")
        fast = _read_csv_fast(path)
        if fast is not None:
            values, raw_ids = fast
            coerced = 0
        else:
            df = read_csv_checked(path, "embedding CSV", dtype={"id": str})
            if "id" not in df.columns:
                raise DataError(f"{path}: the embedding CSV must contain a column 'id' (NeuCo format id,0..D-1).")
            values, raw_ids, coerced = _frame_to_array(df, str(path))
        info.update(source=str(path), non_numeric_cells=coerced)
    elif isinstance(embeddings, pd.DataFrame):
        values, raw_ids, coerced = _frame_to_array(embeddings, "embeddings DataFrame")
        info.update(source="DataFrame", non_numeric_cells=coerced)
    elif type(embeddings).__name__ == "DataArray":
        da = embeddings
        if "sample" not in da.dims:
            raise DataError(f"embeddings DataArray has dims {da.dims}; it needs a 'sample' dimension with ids.")
        other = [d for d in da.dims if d != "sample"]
        da = da.transpose("sample", *other)
        values = np.asarray(da.values, dtype=np.float64).reshape(da.sizes["sample"], -1)
        raw_ids = np.asarray([str(i) for i in da["sample"].values]) if ids is None else np.asarray(ids).astype(str)
        info.update(source=f"DataArray{tuple(da.dims)}", flattened_dims=other)
    else:
        try:
            values = np.asarray(embeddings, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"Cannot read embeddings of type {type(embeddings).__name__}: pass a CSV path, "
                            "DataFrame, xarray DataArray or NumPy array with ids=.") from exc
        if values.ndim != 2:
            raise DataError(f"embeddings array has shape {values.shape}; expected (n_samples, n_features).")
        if ids is None:
            raise DataError("A NumPy embeddings array needs ids= (one sample id per row) to match labels.")
        raw_ids = np.asarray(ids).astype(str)
        info.update(source="ndarray")
    if len(raw_ids) != values.shape[0]:
        raise DataError(f"{len(raw_ids)} ids for {values.shape[0]} embedding rows; pass one id per row.")
    stripped = np.array([strip_id(i) for i in raw_ids], dtype=object)
    info["ids_suffix_stripped"] = int(np.sum(stripped != raw_ids.astype(object)))
    uniq, counts = np.unique(stripped, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][:5].tolist()
        raise DataError(f"Duplicate embedding ids (after stripping .zarr suffixes): {dup}; keep one row per sample.")
    return values, stripped.astype(str), info


# ----------------------------------------------------------------------------------------------- labels
def read_label_folder(folder) -> tuple[pd.DataFrame, dict]:
    """Read a NeuCo-Bench label folder ``<task>__<type>.csv`` (columns id,label) into the labels DataFrame form.

    Returns ``(labels, skipped_empty, order)``: labels indexed by id, one float column per task (NaN = no label),
    ``labels.attrs["task_types"]``; skipped_empty = {task: number of rows with an empty label};
    order = {task: ids in file order} (NeuCo-Bench splits index the rows in this order).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileNotFound(f"Label folder {folder} does not exist; pass a folder of <task>__<type>.csv files.")
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise LabelError(f"Label folder {folder} holds no <task>__<type>.csv file.")
    series, types, skipped = {}, {}, {}
    for f in files:
        task, kind, lab = read_label_file(f)  # one parser for the layout (eoembed.data.labels)
        if not lab.notna().any():
            raise LabelError(f"label file {str(f)!r} holds no label (only a header, or every label cell empty); "
                             "fill it or move it out of the label folder.")
        if task in series:
            raise LabelError(f"Task {task!r} appears in two label files in {folder}; keep one.")
        skipped[task] = int(lab.isna().sum())  # NeuCo-Bench skips empty labels: counted here
        series[task] = lab.dropna()
        types[task] = kind
    labels = pd.concat(series.values(), axis=1) if series else pd.DataFrame()
    labels.index.name = "id"
    labels.attrs["task_types"] = types
    return labels, skipped, {t: sr.index.to_numpy().astype(str) for t, sr in series.items()}


def read_labels_any(labels) -> tuple[pd.DataFrame, dict, dict]:
    """Labels from a folder path or a labels DataFrame (index id, one column per task, attrs task_types)."""
    if isinstance(labels, (str, Path)):
        return read_label_folder(labels)
    if not isinstance(labels, pd.DataFrame):
        raise LabelError(f"labels must be a label folder path or a labels DataFrame, not {type(labels).__name__}.")
    types = dict(labels.attrs.get("task_types") or {})
    df = labels
    if "id" in df.columns:
        df = df.set_index("id")
    missing = [c for c in df.columns if c not in types]
    if missing:
        raise LabelError(f"labels DataFrame: no task type for {missing}; set "
                         "df.attrs['task_types'] = {task: 'regression' | 'classification'}.")
    canon = {}
    for t in df.columns:
        if types[t] not in TASK_TYPES:
            raise LabelError(f"labels DataFrame: task {t!r} has unknown type {types[t]!r}; "
                             f"use one of {sorted(TASK_TYPES)}.")
        canon[t] = TASK_TYPES[types[t]]
    check_label_frame(df, "labels DataFrame")  # task names usable as file names, numeric, finite
    out = df.apply(pd.to_numeric, errors="raise").astype(float)
    out.index = out.index.astype(str)
    out.index.name = "id"
    if out.index.duplicated().any():
        raise LabelError(f"labels DataFrame: duplicate id {out.index[out.index.duplicated()][0]!r}; keep one row per id.")
    out.attrs["task_types"] = canon
    if df.attrs.get(LABEL_ORDER):
        out.attrs[LABEL_ORDER] = df.attrs[LABEL_ORDER]
    order = {t: task_row_order(out, t).to_numpy().astype(str) for t in out.columns}  # = the label files' order
    return out, {t: 0 for t in out.columns}, order


# ----------------------------------------------------------------------------------------------- matching
@dataclass
class Prepared:
    """Embeddings and labels matched, standardised and scaled the NeuCo-Bench way."""

    X: np.ndarray                  # (n, D) float32, standardised (one global scalar mean/std)
    ids: np.ndarray                # (n,) str
    Y: np.ndarray                  # (T, n) float64 scaled labels, NaN = no label
    Y_raw: np.ndarray              # (T, n) float64 labels as given
    tasks: list[str]
    task_types: dict[str, str]
    rows: dict[str, np.ndarray] = field(default_factory=dict)  # per task: row indices in label-file order
    report: dict = field(default_factory=dict)


def _listed(ids) -> list[str]:
    return [str(i) for i in list(ids)[:_MAX_LISTED]]


def read_exclude_file(path) -> list[str]:
    """Ids listed in a NeuCo-Bench exclude file: one id per line, surrounding spaces and empty lines ignored.

    Unlike NeuCo-Bench (which ignores a missing exclude file silently), a missing file is an error."""
    p = Path(path)
    if not p.is_file():
        raise DataFileNotFound(f"exclude file {str(p)!r} does not exist or is not a file; give a text file with one "
                               "embedding id per line (or no exclude_file).")
    return [line.strip() for line in p.read_text().splitlines() if line.strip()]


def _exclude(values, emb_ids, exclude_file):
    """Drop the rows whose (suffix-stripped) id is listed in ``exclude_file``, like NeuCo-Bench's --exclude_file
    (listed ids are matched as written). Returns (values, ids, report entry)."""
    listed = read_exclude_file(exclude_file)
    drop = np.isin(emb_ids, listed)
    absent = sorted(set(listed) - set(emb_ids[drop].tolist()))
    entry = {"file": str(exclude_file), "count": int(drop.sum()), "ids": _listed(emb_ids[drop]),
             "not_in_embeddings": {"count": len(absent), "ids": _listed(absent)}}
    return values[~drop], emb_ids[~drop], entry


def _pad_to(X: np.ndarray, embedding_dim: int | None, source) -> tuple[np.ndarray, dict | None]:
    """NeuCo-Bench's ``embedding_dim``: more columns than it is an error, fewer are zero-padded (before the
    global standardisation, as NeuCo-Bench does)."""
    if embedding_dim is None:
        return X, None
    d = X.shape[1]
    if d > embedding_dim:
        raise DataError(f"{source}: the embeddings have {d} columns but embedding_dim={embedding_dim}; NeuCo-Bench "
                        f"rejects this too. Set embedding_dim to {d} (or None to infer it) or drop columns.")
    if d == embedding_dim:
        return X, None
    return np.pad(X, ((0, 0), (0, embedding_dim - d))), {"from": int(d), "to": int(embedding_dim)}


def _select_tasks(lab: pd.DataFrame, tasks) -> list[str]:
    """The tasks to score, alphabetical (NeuCo-Bench's order); unknown names are an error."""
    if tasks is None:
        return sorted(lab.columns)
    tasks = sorted([tasks] if isinstance(tasks, str) else list(tasks))
    unknown = [t for t in tasks if t not in lab.columns]
    if unknown:
        raise LabelError(f"Unknown task(s) {unknown}; available: {sorted(lab.columns)}.")
    return tasks


#: Above this many values the standardisation works in place and in row blocks (bounded extra memory).
_BIG = 2**24


def _std_blocked(X: np.ndarray, mu: float) -> float:
    """Population std of all values around ``mu``, summed over row blocks of about 2^22 values (no full-size
    temporary)."""
    rows = max(1, 2**22 // max(1, X.shape[1]))
    ss = 0.0
    for a in range(0, X.shape[0], rows):
        blk = X[a:a + rows] - mu
        ss += float(np.einsum("ij,ij->", blk, blk))
    return float(np.sqrt(ss / X.size))


def _standardise(X: np.ndarray, kept_ids: np.ndarray, source: str, standardize: bool,
                 embedding_dim: int | None, owned: bool = False) -> tuple[np.ndarray, dict]:
    """Checked values, NaN/inf -> 0 (counted), zero-padded to ``embedding_dim``, one global scalar mean/std.
    Returns (X float32, facts for the report). owned: X may be modified in place (large inputs are then
    standardised in place, with the std summed over row blocks)."""
    check_embedding_values(X, kept_ids, source)
    nan_mask = ~np.isfinite(X)
    nan_rows = nan_mask.any(axis=1)
    n_nan = int(nan_mask.sum())
    n_inf = int(np.isinf(X).sum()) if n_nan else 0
    big = owned and X.size > _BIG
    if big:
        if n_nan:
            X[nan_mask] = 0.0
    elif n_nan:
        X = np.where(nan_mask, 0.0, X)
    del nan_mask
    if X.size and float(X.max()) == float(X.min()):
        check_not_constant(X, source)
    X, padded = _pad_to(X, embedding_dim, source)
    mu = float(X.mean())
    sigma = _std_blocked(X, mu) if big else float(X.std())
    if standardize:
        if big:
            X -= mu
            X /= sigma if sigma != 0 else 1.0
        elif owned:                       # same IEEE operations, no temporaries
            X -= mu
            X /= sigma if sigma != 0 else 1.0
        else:
            X = (X - mu) / (sigma if sigma != 0 else 1.0)
    facts = {"nan_rows": nan_rows, "nan_values": n_nan, "inf_values": n_inf, "padded": padded,
             "mean": mu, "std": sigma}
    return np.ascontiguousarray(X, dtype=np.float32), facts


def _task_labels(lab: pd.DataFrame, kept_ids: np.ndarray, tasks: list[str], types: dict, order: dict,
                 scale_labels: bool) -> tuple[np.ndarray, np.ndarray, dict, dict, dict]:
    """(Y scaled, Y_raw, samples per task, labels without an embedding per task, rows per task in label order);
    tasks with no embedded label, a constant label or a single class are errors."""
    sub = lab.reindex(kept_ids)
    Y_raw = np.empty((len(tasks), len(kept_ids)))
    Y = np.empty_like(Y_raw)
    per_task, no_embedding, rows = {}, {}, {}
    position = pd.Series(np.arange(len(kept_ids)), index=kept_ids)
    for k, t in enumerate(tasks):
        y = sub[t].to_numpy(dtype=float)
        n_lab_total = int(lab[t].notna().sum())
        n = int(np.isfinite(y).sum())
        no_embedding[t] = n_lab_total - n
        if n == 0:
            raise LabelError(f"Task {t!r}: none of its {n_lab_total} labelled ids has an embedding; "
                             "check the ids or leave the task out with tasks=.")
        lo, hi = np.nanmin(y), np.nanmax(y)
        if hi == lo:
            raise LabelError(f"Task {t!r}: the label is constant ({lo}) over its {n} samples; nothing to predict, "
                             "leave the task out with tasks=.")
        if types[t] == "classification" and len(np.unique(y[np.isfinite(y)])) < 2:
            raise LabelError(f"Task {t!r}: classification with a single class; leave it out with tasks=.")
        Y_raw[k] = y
        Y[k] = (y - lo) / (hi - lo) if scale_labels else y
        per_task[t] = n
        rows[t] = position.reindex(order[t]).dropna().to_numpy().astype(np.int64)
    return Y, Y_raw, per_task, no_embedding, rows


def prepare(embeddings, labels, ids=None, tasks=None, standardize: bool = True,
            scale_labels: bool = True, exclude_file=None, embedding_dim: int | None = None) -> Prepared:
    """Match embeddings to labels like NeuCo-Bench, and report every dropped or filled row.

    Steps: strip id suffixes; drop ids listed in ``exclude_file`` (counted); keep embedding rows whose id has a
    label in any task (others dropped, counted); NaN / non-numeric embedding values -> 0 (counted); zero-pad to
    ``embedding_dim`` columns if given (more columns: error); one global scalar mean/std over all kept values;
    labels min-max scaled per task over all labelled kept samples.
    """
    values, emb_ids, info = read_embeddings(embeddings, ids=ids)
    excluded = None
    if exclude_file is not None:
        values, emb_ids, excluded = _exclude(values, emb_ids, exclude_file)
    lab, skipped, order = read_labels_any(labels)
    all_types = lab.attrs["task_types"]
    tasks = _select_tasks(lab, tasks)
    labelled_any = lab.index[lab.notna().any(axis=1)]
    keep = np.isin(emb_ids, labelled_any.to_numpy().astype(str))
    if not keep.any():
        raise LabelError(f"No embedding id matches a label id (embedding ids like {_listed(emb_ids[:3])}, "
                         f"label ids like {_listed(labelled_any[:3])}); check that both use the same sample ids.")
    dropped_ids = emb_ids[~keep]
    kept_ids = emb_ids[keep]
    kept = values[keep]                      # a copy: standardised in place when large
    del values
    X, f = _standardise(kept, kept_ids, str(info.get("source")), standardize, embedding_dim, owned=True)
    del kept
    Y, Y_raw, per_task, no_embedding, rows = _task_labels(lab, kept_ids, tasks, all_types, order, scale_labels)
    report = {
        "source": info.get("source"),
        "n_embeddings_in": int(len(emb_ids)),
        "n_embeddings_kept": int(keep.sum()),
        "ids_suffix_stripped": info["ids_suffix_stripped"],
        "dropped_no_label": {"count": int(len(dropped_ids)), "ids": _listed(dropped_ids)},
        "nan_filled": {"rows": int(f["nan_rows"].sum()), "values": f["nan_values"],
                       "non_numeric_cells": int(info.get("non_numeric_cells", 0)), "inf_values": f["inf_values"],
                       "ids": _listed(kept_ids[f["nan_rows"]])},
        "labels_without_embedding": no_embedding,
        "empty_labels_skipped": {t: int(skipped.get(t, 0)) for t in tasks},
        "n_samples": per_task,
        "standardization": {"applied": bool(standardize), "mean": f["mean"], "std": f["std"]},
        "embedding_dim": int(X.shape[1]),
    }
    if excluded is not None:
        report["excluded"] = excluded
    if f["padded"] is not None:
        report["zero_padded"] = f["padded"]
    if "flattened_dims" in info and info["flattened_dims"] != ["feature"]:
        report["flattened_dims"] = info["flattened_dims"]
    return Prepared(X=X, ids=kept_ids, Y=Y, Y_raw=Y_raw, tasks=list(tasks),
                    task_types={t: all_types[t] for t in tasks}, rows=rows, report=report)
