"""A strict, parallel reader (numba) for the plainest NeuCo embedding CSV: ``id,0,1,...,D-1`` (columns in any
order), one unquoted id and D plain decimal numbers per line. Every number is converted exactly as a correctly
rounded parser (pyarrow's, pandas' "high" precision) converts it: mantissas up to 2^53 times or over an exact power of ten 10^0..10^22 (Clinger's fast path: one IEEE operation on two exact
operands, so the result is the correctly rounded value). Anything else -- quotes, blank or missing cells, nan/inf,
more digits, larger exponents, ragged or blank lines, a byte-order mark -- makes :func:`read` return None, and the
caller's general reader (pyarrow, then the checked pandas reader) reads the file instead. (One difference, without
effect on any result: "-0" in a column of integers is -0.0 here, 0.0 in pyarrow, which types that column as integers.)
"""
from __future__ import annotations

import os
from pathlib import Path

import numba
import numpy as np

_POW10 = np.array([10.0 ** k for k in range(23)], dtype=np.float64)   # all exact in float64


def _line_ends(raw, start: int) -> np.ndarray:
    """Positions of every '\\n' after ``start`` (memchr), plus len(raw) when the last line has no newline."""
    ends, find, pos = [], raw.find, start
    while True:
        j = find(b"\n", pos)
        if j < 0:
            break
        ends.append(j)
        pos = j + 1
    if pos < len(raw):
        ends.append(len(raw))
    return np.asarray(ends, dtype=np.int64)


@numba.njit(parallel=True, cache=True, nogil=True)
def _parse(buf, start, ends, id_field, col_of_field, pow10, out, id_span, bad):
    """Parse line i (between ends[i-1]+1, or start, and ends[i]) into out[i] and id_span[i]; bad[i] = 1 when
    the line is anything but plain (then the caller falls back)."""
    nfields = col_of_field.size
    for i in numba.prange(ends.size):
        pos = start if i == 0 else ends[i - 1] + 1
        end = ends[i]
        if end > pos and buf[end - 1] == 13:
            end -= 1
        ok = True
        for f in range(nfields):
            if f > 0:
                if pos >= end or buf[pos] != 44:
                    ok = False
                    break
                pos += 1
            if f == id_field:
                s = pos
                while pos < end and buf[pos] != 44:
                    if buf[pos] == 34:
                        ok = False
                    pos += 1
                id_span[i, 0] = s
                id_span[i, 1] = pos
                if pos == s:
                    ok = False
                if not ok:
                    break
                continue
            neg = False
            if pos < end and (buf[pos] == 45 or buf[pos] == 43):
                neg = buf[pos] == 45
                pos += 1
            m = np.uint64(0)
            nd = 0
            e10 = 0
            digits = 0
            while pos < end and 48 <= buf[pos] <= 57:
                dg = buf[pos] - 48
                digits += 1
                if m != 0 or dg != 0:
                    nd += 1
                    m = m * np.uint64(10) + np.uint64(dg)
                pos += 1
            if pos < end and buf[pos] == 46:
                pos += 1
                while pos < end and 48 <= buf[pos] <= 57:
                    dg = buf[pos] - 48
                    digits += 1
                    e10 -= 1
                    if m != 0 or dg != 0:
                        nd += 1
                        m = m * np.uint64(10) + np.uint64(dg)
                    pos += 1
            if digits == 0 or nd > 19 or m > np.uint64(9007199254740992):
                ok = False
                break
            if pos < end and (buf[pos] == 101 or buf[pos] == 69):
                pos += 1
                eneg = False
                if pos < end and (buf[pos] == 45 or buf[pos] == 43):
                    eneg = buf[pos] == 45
                    pos += 1
                ex = 0
                ed = 0
                while pos < end and 48 <= buf[pos] <= 57:
                    if ex < 100000:
                        ex = ex * 10 + (buf[pos] - 48)
                    ed += 1
                    pos += 1
                if ed == 0:
                    ok = False
                    break
                e10 += -ex if eneg else ex
            if m == 0:
                v = 0.0
            elif 0 <= e10 <= 22:
                v = np.float64(m) * pow10[e10]
            elif -22 <= e10 < 0:
                v = np.float64(m) / pow10[-e10]
            else:
                ok = False
                break
            out[i, col_of_field[f]] = -v if neg else v
        if ok and pos != end:
            ok = False
        bad[i] = 0 if ok else 1


def _header(buf: np.ndarray) -> tuple[int, int, np.ndarray] | None:
    """(position after the header line, id field, output column of each field) or None when not plain."""
    nl = int(np.argmax(buf[: 1 << 20] == 10)) if buf.size else 0
    if buf.size == 0 or buf[nl] != 10:
        return None
    try:
        line = buf[:nl].tobytes().decode("ascii").rstrip("\r")
    except UnicodeDecodeError:
        return None
    names = line.split(",")
    other = [c for c in names if c != "id"]
    if names.count("id") != 1 or not other or len(set(names)) != len(names) \
            or not all(c.isascii() and c.isdigit() for c in other):
        return None
    fields = sorted((j for j, c in enumerate(names) if c != "id"), key=lambda j: int(names[j]))
    if len({int(names[j]) for j in fields}) != len(fields):
        return None
    col_of_field = np.full(len(names), -1, dtype=np.int64)
    col_of_field[fields] = np.arange(len(fields))
    return nl + 1, names.index("id"), col_of_field


def read(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(values float64 (n, D), raw ids) of a plain NeuCo CSV, or None when the file is not plain (see module).
    The file is memory-mapped (no copy; its pages are read by the parallel parse). The map is not closed by hand:
    it is unmapped when the last numpy view of it is gone. (Closing it while a view lives raises BufferError, and
    an exception's traceback keeps the views of its frames alive, so a hand-made close replaced any error in the
    parse by "cannot close exported pointers exist".)"""
    import mmap

    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return None
        raw = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)   # holds its own handle on the file
    return _read(raw, np.frombuffer(raw, dtype=np.uint8))


def _read(raw, buf: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    head = _header(buf)
    if head is None:
        return None
    start, id_field, col_of_field = head
    ends = _line_ends(raw, start)
    if ends.size == 0:
        return None
    out = np.empty((ends.size, col_of_field.size - 1), dtype=np.float64)
    span = np.empty((ends.size, 2), dtype=np.int64)
    bad = np.empty(ends.size, dtype=np.uint8)
    _parse(buf, start, ends, id_field, col_of_field, _POW10, out, span, bad)
    if bad.any():
        return None
    try:
        ids = np.array([raw[a:b].decode("utf-8") for a, b in span.tolist()], dtype=object)
    except UnicodeDecodeError:
        return None
    return out, ids
