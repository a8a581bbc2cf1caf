"""Small checks of arguments, output paths and numbers, shared by the Python functions and the CLI.

Each check raises one of eoembed's errors (eoembed/errors.py) with a message that says what is wrong, where,
and how to fix it. Only numpy is imported at module level, so the CLI modules can import this one at start-up.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eoembed.errors import DataError, LabelError, OutputError

#: Largest magnitude accepted in embeddings: float32's range (larger values overflow the float32 engine).
MAX_ABS_EMBEDDING = float(np.finfo(np.float32).max)
_LISTED = 5


def _few(items: Iterable[Any], n: int = _LISTED) -> str:
    items = [str(i) for i in items]
    more = f" ... ({len(items)} in all)" if len(items) > n else ""
    return ", ".join(repr(i) for i in items[:n]) + more


# ------------------------------------------------------------------------------------------------ arguments
def _arg(name: str, value: Any) -> str:
    """``--flag 'x'`` for CLI option names, ``name='x'`` for Python arguments."""
    return f"{name} {value!r}" if name.startswith("-") else f"{name}={value!r}"


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """DataError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise DataError(f"{_arg(name, value)} is not valid; use one of {list(choices)}.")


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False) -> None:
    """DataError unless ``value`` is an int in [minimum, maximum] (None allowed with ``allow_none``)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"{_arg(name, value)} must be an integer.")
    if minimum is not None and value < minimum:
        raise DataError(f"{_arg(name, value)} is too small; use an integer >= {minimum}.")
    if maximum is not None and value > maximum:
        raise DataError(f"{_arg(name, value)} is too large; use an integer <= {maximum}.")


def check_fraction(name: str, value: Any, low: float = 0.0, high: float = 1.0) -> None:
    """DataError unless ``low < value < high``."""
    if not isinstance(value, (int, float, np.floating)) or not (low < float(value) < high):
        raise DataError(f"{_arg(name, value)} must be a number strictly between {low:g} and {high:g}.")


def check_device(device: Any, option: str = "--device") -> None:
    """DataError for a device string torch cannot use here (malformed, or CUDA / MPS not available)."""
    if device is None:
        return
    import re
    d = str(device)
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", d):
        raise DataError(f"{option} {d!r} is not a device; use cpu, cuda or cuda:N (default: cuda when available).")
    if d.startswith("cuda") or d == "mps":
        import torch
        if d == "mps":
            ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        else:
            ok = torch.cuda.is_available() and int(d.partition(":")[2] or 0) < torch.cuda.device_count()
        if not ok:
            raise DataError(f"{option} {d!r} is not available on this machine; use {option} cpu (or leave it "
                            "unset to use CUDA when present).")


def safe_name(name: Any, what: str = "name", where: str = "", error: type[Exception] = LabelError) -> str:
    """``name`` as str when it can be used as one file or folder name; LabelError for path separators, '.', '..',
    empty or control characters (such names would write results outside the output folder)."""
    s = str(name)
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    bad = (not s or s.strip() in (".", "..") or any(c in s for c in seps) or s != s.strip()
           or any(ord(c) < 32 for c in s))
    if bad:
        at = f" in {where}" if where else ""
        raise error(f"{what} {s!r}{at} cannot be used as a file name (empty, '.', '..', leading/trailing "
                         "spaces, control characters or a path separator would write outside the output folder); "
                         f"rename it with letters, digits, '-' and '_' only.")
    return s


# -------------------------------------------------------------------------------------------- output paths
def check_out_path(path: Any, *, option: str = "--out", kind: str = "dir", exist_ok: bool = True) -> Path:
    """Check before any work that ``path`` can be written: ``kind="dir"`` (a folder, created later) or
    ``kind="file"``. OutputError when it is the wrong kind, exists (``exist_ok=False``), a parent is a file, or
    the folder that would hold it is not writable."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not exist_ok:
            raise OutputError(f"{option} {str(p)!r} already exists; choose a new path (nothing is overwritten) "
                              "or remove it first.")
        if kind == "dir" and not p.is_dir():
            raise OutputError(f"{option} {str(p)!r} is a file, not a folder; choose a folder path (it is created).")
        if kind == "file" and p.is_dir():
            raise OutputError(f"{option} {str(p)!r} is a folder; give a file path.")
        target = p if p.is_dir() else p.parent
    else:
        target = p.parent
    anc = target.absolute()
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"{option} {str(p)!r} cannot be created: {str(anc)!r} is a file, not a folder; "
                          "choose another path.")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {str(p)!r} cannot be written: {str(anc)!r} is read-only for this user; "
                          "choose a writable location or fix its permissions.")
    return p


def check_in_path(path: Any, *, option: str, kind: str = "any") -> Path:
    """DataFileNotFound unless ``path`` exists (and is a folder / file for ``kind="dir"`` / ``"file"``)."""
    from eoembed.errors import DataFileNotFound
    p = Path(path)
    if not p.exists():
        raise DataFileNotFound(f"{option} {str(p)!r} does not exist; check the path.")
    if kind == "dir" and not p.is_dir():
        raise DataFileNotFound(f"{option} {str(p)!r} is a file; give a folder.")
    if kind == "file" and not p.is_file():
        raise DataFileNotFound(f"{option} {str(p)!r} is a folder; give a file.")
    return p


def read_csv_checked(path: Any, what: str, error: type[Exception] = DataError, **kwargs: Any) -> Any:
    """``pd.read_csv`` with an eoembed error naming the file when it is empty, ragged or not text."""
    import pandas as pd
    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise error(f"{what} {str(path)!r} is empty (not even a header); write the file again.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise error(f"{what} {str(path)!r} is not a well-formed CSV ({type(e).__name__}: {str(e).strip()}); every row "
                    "needs the same columns as the header. Fix or re-export the file.") from None


# ------------------------------------------------------------------------------------------------- numbers
def check_finite_labels(values: Any, ids: Sequence[Any], where: str) -> None:
    """LabelError when labels hold +-inf (NaN means "no label" and is allowed)."""
    v = np.asarray(values, dtype=np.float64)
    bad = np.isinf(v)
    if bad.any():
        ids = np.asarray([str(i) for i in ids])
        raise LabelError(f"{where}: infinite label(s) for id(s) {_few(ids[bad])}; labels must be finite numbers "
                         "(leave the cell empty for 'no label').")


def check_label_frame(df: Any, where: str) -> None:
    """LabelError for a labels DataFrame whose task names cannot be file names, or whose labels are not finite
    numbers (NaN = no label is allowed)."""
    import pandas as pd
    for t in df.columns:
        safe_name(t, "task name", where)
        num = pd.to_numeric(df[t], errors="coerce")
        bad = num.isna() & df[t].notna()
        if bad.any():
            raise LabelError(f"{where}: task {t!r} has non-numeric label(s) {df.loc[bad, t].tolist()[:3]} (ids "
                             f"{[str(i) for i in df.index[bad][:5]]}); labels must be numbers.")
        check_finite_labels(num.to_numpy(dtype=np.float64), df.index, f"{where}, task {t!r}")


def check_numeric_cells(block: Any, ids: Sequence[Any], where: str) -> None:
    """DataError naming ids and columns when a DataFrame block has cells that are neither numbers nor empty."""
    import pandas as pd
    num = block.apply(pd.to_numeric, errors="coerce")
    bad = num.isna().to_numpy() & block.notna().to_numpy()
    if bad.any():
        r, c = np.nonzero(bad)
        ids = np.asarray([str(i) for i in ids])
        cells = [f"id {ids[i]!r} column {str(block.columns[j])!r} = {block.iat[i, j]!r}" for i, j in zip(r[:3], c[:3])]
        raise DataError(f"{where}: {int(bad.sum())} non-numeric embedding cell(s) ({'; '.join(cells)}; rows "
                        f"{_few(dict.fromkeys(ids[r]))}, columns {_few(dict.fromkeys(str(block.columns[j]) for j in c))}); "
                        "embedding values must be numbers (empty cells count as missing). Fix the file.")


def check_embedding_values(X: np.ndarray, ids: Sequence[Any], where: str) -> None:
    """DataError when values are too large for float32 (they would overflow the standardisation and zero every
    other feature). NaN / inf are handled by the caller (counted and filled, as NeuCo-Bench does)."""
    with np.errstate(invalid="ignore"):
        big = np.isfinite(X) & (np.abs(X) > MAX_ABS_EMBEDDING)
    if big.any():
        r, c = np.nonzero(big)
        ids = np.asarray([str(i) for i in ids])
        raise DataError(f"{where}: {int(big.sum())} embedding value(s) beyond float32's range (|x| > 3.4e38, e.g. "
                        f"{float(X[r[0], c[0]]):.3g} at id {ids[r[0]]!r}, column {int(c[0])}; columns "
                        f"{_few(dict.fromkeys(int(j) for j in c))}); such values overflow the standardisation. "
                        "Rescale or drop those columns.")


def check_not_constant(X: np.ndarray, where: str) -> None:
    """DataError when every (finite) embedding value is the same: nothing can be learnt from it."""
    finite = X[np.isfinite(X)]
    if X.size and (finite.size == 0 or float(finite.max()) == float(finite.min())):
        v = float(finite[0]) if finite.size else math.nan
        raise DataError(f"{where}: the embeddings are constant (every value is {v:g}); a probe cannot learn from "
                        "them. Check that the model produced real embeddings (e.g. not an untrained placeholder).")


def check_finite_matrix(X: np.ndarray, ids: Sequence[Any], where: str) -> None:
    """DataError naming samples whose rows hold NaN or +-inf."""
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
        ids = np.asarray([str(i) for i in ids])
        kind = "inf" if np.isinf(X).any() else "NaN"
        raise DataError(f"{where}: {rows.size} sample(s) have NaN/inf values ({kind} first; ids {_few(ids[rows])}); "
                        "re-extract those samples or drop them before training.")
