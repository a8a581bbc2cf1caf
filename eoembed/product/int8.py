"""Symmetric int8 quantisation with one float32 scale per vector (TESSERA's storage; seed 001).

For a vector ``e`` (the last axis): ``scale = max|e| / 127`` and ``code = clip(rint(e / scale), -127, 127)``
(``rint`` rounds halves to even), so the largest component maps to +-127 and -128 is never used. The float
vector is ``code * scale`` (:func:`dequantize_int8`). Guarantees (tested):

- every element is within half a step: ``|e - code * scale| <= scale / 2`` (plus float32 rounding);
- codes round-trip exactly: ``quantize_int8(dequantize_int8(q, s))[0] == q``;
- an all-zero vector gets scale 0 and codes 0 (it dequantises to zeros);
- prefixes: ``dequantize_int8(q[..., :k], s) == dequantize_int8(q, s)[..., :k]`` exactly, so the first k codes
  with the full vector's scale are a valid, lower-precision k-d embedding (same error bound ``scale / 2``, which
  is coarser relative to the prefix when the prefix's own max|e| is smaller). When ``max|e|`` lies within the
  first k components, quantising ``e[..., :k]`` alone gives exactly the same codes and scale.

Missing values (``nodata``): ``"error"`` (default) raises DataError naming the vectors holding NaN; ``"mask"``
accepts vectors that are entirely NaN (no-data pixels) and stores them as scale NaN with codes 0, which
dequantise to NaN again. A vector with only some NaN components, or any +-inf, is always an error (it cannot
be stored without dropping or inventing values).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from eoembed.errors import DataError

__all__ = ["quantize_int8", "dequantize_int8", "bad_vectors", "QMAX", "NODATA"]

#: Largest code; codes lie in [-QMAX, QMAX].
QMAX = 127
#: Accepted ``nodata`` policies.
NODATA = ("error", "mask")


def _positions(mask: np.ndarray, labels: Sequence[Any] | None, n: int = 5) -> str:
    """The first ``n`` offending vectors: their labels (ids) when given, else their index tuples."""
    idx = np.argwhere(mask)
    if labels is not None:
        flat = np.flatnonzero(mask.ravel())
        names = [repr(str(np.asarray(labels).ravel()[i])) for i in flat[:n]]
    else:
        names = [str(tuple(int(v) for v in i)) if len(i) > 1 else str(int(i[0])) for i in idx[:n]]
    more = f" ... ({len(idx)} in all)" if len(idx) > n else ""
    return ", ".join(names) + more


def bad_vectors(e: Any, nodata: str = "error", labels: Sequence[Any] | None = None,
                where: str = "embeddings") -> np.ndarray:
    """Check the vectors of ``e`` (last axis) for NaN / inf; return the boolean mask of all-NaN (no-data) vectors.

    Raises DataError naming the vectors (``labels``, e.g. sample ids, or their index) that hold +-inf, that are
    partly NaN, or (``nodata="error"``) that hold any NaN. Works on NumPy and dask arrays (dask: one lazy pass
    that returns only the per-vector masks).
    """
    if nodata not in NODATA:
        raise DataError(f"nodata={nodata!r} is not valid; use one of {list(NODATA)}.")
    nan = np.isnan(e)
    any_nan, all_nan, any_inf = nan.any(axis=-1), nan.all(axis=-1), np.isinf(e).any(axis=-1)
    if hasattr(any_nan, "dask"):
        import dask
        any_nan, all_nan, any_inf = dask.compute(any_nan, all_nan, any_inf)
    any_nan, all_nan, any_inf = (np.asarray(a) for a in (any_nan, all_nan, any_inf))
    if any_inf.any():
        raise DataError(f"{where}: {int(any_inf.sum())} vector(s) hold +-inf (at {_positions(any_inf, labels)}); "
                        "int8 quantisation needs finite values. Re-extract or drop those vectors.")
    if nodata == "error" and any_nan.any():
        raise DataError(f"{where}: {int(any_nan.sum())} vector(s) hold NaN (at {_positions(any_nan, labels)}); "
                        "re-extract or drop them, or pass nodata='mask' to store all-NaN vectors (no-data "
                        "pixels) as NaN.")
    partial = any_nan & ~all_nan
    if partial.any():
        raise DataError(f"{where}: {int(partial.sum())} vector(s) are partly NaN (at {_positions(partial, labels)}); "
                        "only whole no-data vectors (all NaN) can be stored. Re-extract or drop those vectors.")
    return all_nan


def _quantize(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The arithmetic only (finite or all-NaN vectors; no checks)."""
    e = np.asarray(e, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = (np.max(np.abs(e), axis=-1) / np.float32(QMAX)).astype(np.float32)  # all-NaN vector -> NaN
        safe = np.where((scale > 0) & np.isfinite(scale), scale, np.float32(1.0))
        codes = np.rint(e / safe[..., None])
        codes = np.where(np.isfinite(codes), codes, 0.0)  # all-NaN vectors: codes 0 (scale NaN marks them)
    return np.clip(codes, -QMAX, QMAX).astype(np.int8), scale


def quantize_int8(e: Any, nodata: str = "error") -> tuple[np.ndarray, np.ndarray]:
    """``(codes int8 (..., D), scales float32 (...))`` of the vectors along the last axis of ``e``.

    ``scale = max|e| / 127``, ``code = clip(rint(e / scale), -127, 127)``; an all-zero vector gets scale 0 and
    codes 0. ``nodata``: "error" (NaN -> DataError naming the vectors) or "mask" (all-NaN vectors -> scale NaN,
    codes 0). NumPy in, NumPy out (the Zarr product quantises dask arrays block by block with the same code).
    """
    e = np.asarray(e)
    if e.ndim < 1 or e.shape[-1] == 0:
        raise DataError(f"embeddings of shape {e.shape} have no feature axis; pass vectors along the last axis.")
    if not np.issubdtype(e.dtype, np.number):
        raise DataError(f"embeddings have dtype {e.dtype}; pass numbers.")
    bad_vectors(e, nodata)
    return _quantize(e)


def dequantize_int8(codes: Any, scales: Any) -> np.ndarray:
    """float32 vectors ``codes * scales[..., None]`` (NaN where the scale is NaN = no-data vector).

    Also works on dask arrays (stays lazy). ``codes`` may be a prefix ``codes[..., :k]`` of the stored codes.
    """
    if getattr(codes, "dtype", None) != np.int8:
        codes = np.asarray(codes)
        if codes.dtype != np.int8:
            raise DataError(f"codes have dtype {codes.dtype}; expected int8 codes from quantize_int8.")
    if not hasattr(scales, "dask"):
        scales = np.asarray(scales)
    if tuple(codes.shape[:-1]) != tuple(np.shape(scales)):
        raise DataError(f"codes of shape {tuple(codes.shape)} and scales of shape {tuple(np.shape(scales))} do not "
                        "match; there is one scale per vector (codes.shape[:-1]).")
    return codes.astype(np.float32) * scales[..., None].astype(np.float32)
