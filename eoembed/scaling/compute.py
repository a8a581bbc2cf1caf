"""Training compute of a pixel-encoder pretraining run (TESSERA scaling study, ``docs/tessera.md``).

``C = 12 * D * (N_enc * L_ref + N_proj)`` floating-point operations (FLOPs, one multiply-add = 2 FLOPs):
the usual 6 FLOPs per parameter and token (2 forward + 4 backward) times the two Barlow Twins views.

- ``N_enc``: trainable parameters of the encoder (applied to every one of the ``L_ref`` steps of a view);
- ``N_proj``: trainable parameters of the projector (applied once per view, used only in pretraining);
- ``D``: d-pixels seen in pretraining (optimizer steps x batch size; a pixel seen twice counts twice);
- ``L_ref``: reference sequence length per view (time steps), 240 in the paper.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from eoembed.errors import DataError

#: Reference sequence length of the paper's compute axis.
L_REF = 240


def _positive(name: str, value: Any, allow_zero: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    bad = ~np.isfinite(arr) | ((arr < 0) if allow_zero else (arr <= 0))
    if bad.any():
        first = arr[bad].ravel()[0] if arr.ndim else float(arr)
        need = ">= 0" if allow_zero else "> 0"
        raise DataError(f"{name} must be finite and {need}, got {first!r}"
                        + (f" ({int(bad.sum())} of {arr.size} values)" if arr.ndim else "")
                        + f"; pass {name} as counts (parameters, d-pixels, time steps)")
    return arr


def flops(n_enc: Any, n_proj: Any, d: Any, l_ref: Any = L_REF) -> Any:
    """Pretraining compute ``C = 12 * D * (N_enc * L_ref + N_proj)`` in FLOPs (module doc).

    n_enc: encoder parameters (> 0); n_proj: projector parameters (>= 0); d: d-pixels seen (> 0); l_ref: time
    steps per view (> 0). Scalars or arrays (broadcast); a float for scalars, else a float array.
    """
    c = 12.0 * _positive("d", d) * (_positive("n_enc", n_enc) * _positive("l_ref", l_ref)
                                    + _positive("n_proj", n_proj, allow_zero=True))
    return float(c) if c.ndim == 0 else c


def data_for_flops(c: Any, n_enc: Any, n_proj: Any, l_ref: Any = L_REF) -> Any:
    """The inverse of :func:`flops`: d-pixels ``D = C / (12 * (N_enc * L_ref + N_proj))`` for a compute budget."""
    d = _positive("c", c) / (12.0 * (_positive("n_enc", n_enc) * _positive("l_ref", l_ref)
                                     + _positive("n_proj", n_proj, allow_zero=True)))
    return float(d) if d.ndim == 0 else d
