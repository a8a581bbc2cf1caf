"""The compressor (Embed2Scale winning recipe) and its per-model weighted reconstruction loss.

Encoder: LayerNorm(in) -> Dropout(p) -> Linear(in, hidden) -> GELU -> Dropout(p) -> Linear(hidden, out_dim).
Decoder (a stand-in used only for training): Linear(out_dim, in). The loss is the weighted sum over models of the
MSE between the decoder output and the RAW fused vector restricted to that model's slice:
``loss = sum_m w_m * mean((x_hat[:, s_m] - x[:, s_m])**2)``.

Matryoshka variant (``prefixes=(k_1 < ... < k_P)``, :func:`matryoshka_loss`): the one shared decoder reconstructs
the input from the code with coordinates ``k:`` zeroed (:func:`prefix_masks`), for every prefix k, and the loss is
the mean over k of the weighted loss above (uniform weighting), so every prefix ``z[:, :k]`` is a usable code.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from eoembed.compress.fusion import model_family
from eoembed.errors import DataError

__all__ = ["Compressor", "CompressorConfig", "PRESETS", "resolve_config", "resolve_weights", "feature_weights",
           "weighted_mse", "check_prefixes", "prefix_masks", "matryoshka_loss"]


@dataclasses.dataclass
class CompressorConfig:
    """Hyper-parameters of one compressor run (library defaults = the winning recipe with uniform weights)."""

    hidden: int = 2048
    out_dim: int = 1024
    dropout: float = 0.1
    lr: float = 1e-4
    weight_decay: float = 0.05
    milestones: tuple[float, float] = (0.6, 0.9)  # fractions of all optimiser steps where lr is multiplied by gamma
    gamma: float = 0.1
    batch_size: int = 32
    epochs: int = 160
    seed: int = 1337
    weights: Any = None  # None (all 1.0) | preset name | {model or family prefix: weight}
    default_weight: float = 1.0  # weight of models no key of `weights` matches

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d


_E2S_WEIGHTS = {"copernicus": 1.0, "dofa": 1.0, "croma": 0.5, "prithvi": 2.0, "scalemae": 0.75}

#: Named presets. "embed2scale" = the 1st-place Embed2Scale recipe (Kerekes et al. code).
PRESETS: dict[str, dict[str, Any]] = {
    "embed2scale": dict(hidden=2048, out_dim=1024, dropout=0.1, lr=1e-4, weight_decay=0.05, milestones=(0.6, 0.9),
                        gamma=0.1, batch_size=32, epochs=160, seed=1337, weights=dict(_E2S_WEIGHTS)),
}


def resolve_config(preset: str | None = None, **overrides: Any) -> CompressorConfig:
    """Defaults <- preset <- explicit overrides (None values are ignored)."""
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown compressor preset {preset!r}; choose one of {sorted(PRESETS)}")
        base.update(PRESETS[preset])
    fields = {f.name for f in dataclasses.fields(CompressorConfig)}
    for k, v in overrides.items():
        if k not in fields:
            raise TypeError(f"unknown compressor option {k!r}; valid options: {sorted(fields)}")
        if v is not None:
            base[k] = v
    cfg = CompressorConfig(**base)
    cfg.milestones = tuple(float(m) for m in cfg.milestones)  # type: ignore[assignment]
    for name in ("hidden", "out_dim", "batch_size", "epochs"):
        if int(getattr(cfg, name)) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.lr <= 0:
        raise ValueError(f"lr must be > 0, got {cfg.lr}")
    if any(not 0.0 <= m <= 1.0 for m in cfg.milestones):
        raise ValueError(f"milestones are fractions of training steps in [0, 1], got {cfg.milestones}")
    return cfg


def resolve_weights(models: list[str], weights: Any = None, default: float = 1.0) -> dict[str, float]:
    """Per-model loss weights. ``weights``: None (all ``default``), a preset name, or {key: weight} where a key
    matches a model by exact name first, then by family prefix ("croma" matches "croma_large")."""
    if weights is None:
        return {m: float(default) for m in models}
    if isinstance(weights, str):
        if weights not in PRESETS:
            raise ValueError(f"unknown weight preset {weights!r}; choose one of {sorted(PRESETS)} or pass a dict")
        weights = PRESETS[weights]["weights"]
    if not isinstance(weights, Mapping):
        raise ValueError(f"weights must be None, a preset name or a dict, got {type(weights).__name__}")
    out = {}
    for m in models:
        if m in weights:
            w = weights[m]
        else:
            fam = model_family(m)
            hits = [k for k in weights if m.lower().startswith(str(k).lower()) or fam == str(k).lower()]
            w = weights[max(hits, key=len)] if hits else default
        w = float(w)
        if w < 0:
            raise ValueError(f"loss weight of model {m!r} is negative ({w}); weights must be >= 0")
        out[m] = w
    if not any(out.values()):
        raise ValueError(f"all loss weights are zero for models {models}; give at least one model a weight > 0")
    return out


def feature_weights(slices: Mapping[str, tuple[int, int]], weights: Mapping[str, float], in_dim: int) -> torch.Tensor:
    """Per-feature weights w_m / n_m so that ``(sq_err * fw).sum(1).mean()`` = sum_m w_m * MSE_m."""
    fw = torch.zeros(in_dim, dtype=torch.float32)
    for m, (s, e) in slices.items():
        fw[s:e] = float(weights[m]) / max(e - s, 1)
    return fw


def weighted_mse(recon: torch.Tensor, target: torch.Tensor, fw: torch.Tensor) -> torch.Tensor:
    """sum_m w_m * MSE_m given per-feature weights from :func:`feature_weights`."""
    return ((recon.float() - target.float()).pow(2) * fw).sum(dim=1).mean()


def check_prefixes(prefixes: Any, out_dim: int) -> tuple[int, ...] | None:
    """Validated Matryoshka prefixes: None stays None; otherwise a sorted tuple of unique ints in [1, out_dim]
    with ``out_dim`` appended when missing (the full code is always one of the nested losses). Raises DataError
    on an unsorted, repeated, non-integer, < 1 or > out_dim prefix."""
    if prefixes is None:
        return None
    if isinstance(prefixes, (int, str)) or not hasattr(prefixes, "__iter__"):
        raise DataError(f"prefixes={prefixes!r} must be a sequence of ints, e.g. (16, 32, 64)")
    ks = list(prefixes)
    if not ks:
        raise DataError("prefixes is empty; pass e.g. (16, 32, 64) or None for the plain compressor")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise DataError(f"prefix {k!r} in prefixes={ks} is not an integer; use whole code sizes like 16, 32")
    ks = [int(k) for k in ks]
    bad = [k for k in ks if k < 1 or k > out_dim]
    if bad:
        raise DataError(f"prefixes {bad} are outside [1, out_dim={out_dim}]; a prefix of the code cannot be "
                        "larger than the code: drop them or raise out_dim")
    if len(set(ks)) != len(ks):
        raise DataError(f"prefixes={ks} repeat a size; give each prefix once")
    if ks != sorted(ks):
        raise DataError(f"prefixes={ks} are not sorted; give them in increasing order, e.g. {sorted(ks)}")
    if ks[-1] != out_dim:
        ks.append(int(out_dim))
    return tuple(ks)


def prefix_masks(prefixes: tuple[int, ...], out_dim: int, device: Any = None) -> torch.Tensor:
    """(P, out_dim) float32 0/1 masks: row i keeps coordinates ``:prefixes[i]`` and zeroes ``prefixes[i]:``."""
    ar = torch.arange(out_dim, device=device)
    return (ar.unsqueeze(0) < torch.as_tensor(prefixes, device=device).unsqueeze(1)).float()


def matryoshka_loss(model: "Compressor", x: torch.Tensor, fw: torch.Tensor, masks: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over prefixes of the weighted MSE, (P,) per-prefix weighted MSEs) of one batch: one encoder pass,
    the shared decoder applied to the code masked by each row of ``masks`` (:func:`prefix_masks`)."""
    z = model.encode(x)
    rec = model.decoder(z.unsqueeze(0) * masks.to(z.dtype).unsqueeze(1))          # (P, B, in_dim)
    per_k = ((rec.float() - x.float().unsqueeze(0)).pow(2) * fw).sum(dim=2).mean(dim=1)
    return per_k.mean(), per_k


class Compressor(nn.Module):
    """LayerNorm -> Dropout -> Linear -> GELU -> Dropout -> Linear encoder with a linear stand-in decoder."""

    def __init__(self, in_dim: int, hidden: int = 2048, out_dim: int = 1024, dropout: float = 0.1) -> None:
        super().__init__()
        if in_dim < 1:
            raise ValueError(f"in_dim must be >= 1, got {in_dim}")
        self.in_dim, self.hidden, self.out_dim, self.dropout = int(in_dim), int(hidden), int(out_dim), float(dropout)
        self.encoder = nn.Sequential(
            nn.LayerNorm(self.in_dim), nn.Dropout(self.dropout), nn.Linear(self.in_dim, self.hidden), nn.GELU(),
            nn.Dropout(self.dropout), nn.Linear(self.hidden, self.out_dim))
        self.decoder = nn.Linear(self.out_dim, self.in_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Stand-in decoder output from the code ``z``; with ``k``, from its prefix ``z[:, :k]`` (coordinates
        ``k:`` zeroed, as the Matryoshka loss trains it)."""
        if k is not None:
            z = torch.cat([z[:, :k], z.new_zeros(z.shape[0], z.shape[1] - k)], dim=1)
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.decoder(z)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, hidden={self.hidden}, out_dim={self.out_dim}, dropout={self.dropout}"
