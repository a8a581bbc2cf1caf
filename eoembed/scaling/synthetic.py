"""Synthetic sweeps with planted scaling laws: a stand-in run function to test and demonstrate the toolkit.

Loss (minimised): ``L(N, D) = E + A / N**alpha + B / D**beta``; downstream score (maximised):
``S(N, D) = S0 - A_s / N**alpha_s - B_s / D**beta_s``; N = encoder parameters, D = d-pixels seen. With the
projector negligible (``n_proj = 0``) compute is ``C = k N D`` (``k = 12 L_ref``), and the iso-FLOP optimum is
known in closed form: ``N_opt = G (C/k)**(beta/(alpha+beta))``, ``D_opt = (C/k) / N_opt`` with
``G = (alpha A / (beta B))**(1/(alpha+beta))`` (Hoffmann et al. 2022, eq. 4).
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Mapping

import numpy as np

from eoembed.errors import DataError
from eoembed.scaling.compute import L_REF, data_for_flops, flops

#: The default planted law: loss exponents give N_opt ~ C^0.36, D_opt ~ C^0.64 (the paper's encoder/data
#: exponents); the score has its own exponents (N_opt ~ C^0.6), so loss and score disagree on the optimum.
PLANTED: dict[str, float] = {"E": 1.0, "A": 100.0, "alpha": 0.384, "B": 20.0, "beta": 0.216,
                             "S0": 0.9, "A_s": 2.0, "alpha_s": 0.2, "B_s": 5.0, "beta_s": 0.3}


def _law(config: Mapping[str, Any]) -> dict[str, float]:
    law = dict(PLANTED)
    law.update({k: float(v) for k, v in config.items() if k in PLANTED})
    for k in ("alpha", "beta", "alpha_s", "beta_s", "A", "B", "A_s", "B_s"):
        if not law[k] > 0:
            raise DataError(f"planted law parameter {k} must be > 0, got {law[k]}")
    return law


def planted_exponents(config: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Exact iso-FLOP exponents of the planted law: ``{"loss": {...}, "score": {...}}`` flattened as
    ``loss_n_opt``, ``loss_d_opt``, ``score_n_opt``, ``score_d_opt`` (``N_opt ~ C^a``, ``D_opt ~ C^b``, a+b=1)."""
    law = _law(config or {})
    a = law["beta"] / (law["alpha"] + law["beta"])
    a_s = law["beta_s"] / (law["alpha_s"] + law["beta_s"])
    return {"loss_n_opt": a, "loss_d_opt": 1.0 - a, "score_n_opt": a_s, "score_d_opt": 1.0 - a_s}


def planted_optimum(c: Any, config: Mapping[str, Any] | None = None, target: str = "loss",
                    l_ref: float = L_REF) -> tuple[np.ndarray, np.ndarray]:
    """(N_opt, D_opt) of the planted law at compute ``c`` (FLOPs) for ``target`` "loss" or "score" (n_proj = 0)."""
    law = _law(config or {})
    if target not in ("loss", "score"):
        raise DataError(f"target must be 'loss' or 'score', got {target!r}")
    al, be, a, b = ((law["alpha"], law["beta"], law["A"], law["B"]) if target == "loss" else
                    (law["alpha_s"], law["beta_s"], law["A_s"], law["B_s"]))
    nd = np.asarray(c, dtype=float) / (12.0 * l_ref)
    g = (al * a / (be * b)) ** (1.0 / (al + be))
    n_opt = g * nd ** (be / (al + be))
    return n_opt, nd / n_opt


def _rng(config: Mapping[str, Any]) -> np.random.Generator:
    key = json.dumps({k: config[k] for k in sorted(config)}, sort_keys=True, default=str)
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))


def synthetic_run(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run function for :func:`eoembed.scaling.sweep` that pretrains nothing: it evaluates the planted law.

    config: ``n_enc`` (encoder parameters), ``n_pixels`` (d-pixels seen) or ``flops`` (a budget; then n_pixels
    follows from :func:`data_for_flops`), optional ``n_proj`` (0), ``l_ref`` (240), ``batch_size`` (256),
    ``noise`` (relative sd of the loss, 0.01), ``score_noise`` (absolute sd of the score, 0.002), ``seed`` and
    law parameters (``PLANTED`` keys). The noise is a deterministic function of the config, so a re-run gives the same row.
    Returns the keys of ``eoembed.pixel.pretrain_and_score``: n_params_enc, n_params_proj, n_pixels, steps, L_ref,
    final_loss, score, seconds.
    """
    t0 = time.perf_counter()
    if "n_enc" not in config:
        raise DataError(f"synthetic_run config {dict(config)!r} has no 'n_enc' (encoder parameters)")
    n_enc = float(config["n_enc"])
    n_proj = float(config.get("n_proj", 0))
    l_ref = float(config.get("l_ref", L_REF))
    if "n_pixels" in config:
        d = float(config["n_pixels"])
    elif "flops" in config:
        d = data_for_flops(config["flops"], n_enc, n_proj, l_ref)
    else:
        raise DataError(f"synthetic_run config {dict(config)!r} needs 'n_pixels' (d-pixels seen) or 'flops'")
    d = float(round(d))
    flops(n_enc, n_proj, d, l_ref)  # checks the sizes
    law = _law(config)
    noise = float(config.get("noise", 0.01))
    score_noise = float(config.get("score_noise", 0.002))
    rng = _rng(config)
    loss = (law["E"] + law["A"] / n_enc ** law["alpha"] + law["B"] / d ** law["beta"]) * \
        (1.0 + noise * rng.standard_normal())
    score = law["S0"] - law["A_s"] / n_enc ** law["alpha_s"] - law["B_s"] / d ** law["beta_s"] + \
        score_noise * rng.standard_normal()
    batch = int(config.get("batch_size", 256))
    return {"n_params_enc": int(n_enc), "n_params_proj": int(n_proj), "n_pixels": int(d),
            "steps": int(np.ceil(d / batch)), "L_ref": l_ref, "final_loss": float(loss), "score": float(score),
            "seconds": time.perf_counter() - t0}


def isoflop_configs(budgets: Any, n_enc: Any, n_proj: Any = 0, l_ref: float = L_REF,
                    **fixed: Any) -> list[dict[str, Any]]:
    """Configs of an iso-FLOP sweep: for each budget (FLOPs) and encoder size, the data size that spends it.

    Returns one dict per (budget, n_enc, n_proj) with keys ``flops`` (the budget), ``n_enc``, ``n_proj``,
    ``n_pixels`` (rounded, >= 1) and the ``fixed`` entries; give it to :func:`eoembed.scaling.sweep` as its grid.
    """
    out = []
    for c in np.atleast_1d(np.asarray(budgets, dtype=float)):
        for n in np.atleast_1d(np.asarray(n_enc, dtype=float)):
            for p in np.atleast_1d(np.asarray(n_proj, dtype=float)):
                d = max(1, int(round(data_for_flops(c, n, p, l_ref))))
                out.append({"flops": float(c), "n_enc": int(n), "n_proj": int(p), "n_pixels": d, **fixed})
    return out
