"""The pixel-wise temporal encoder (TESSERA-style, eoembed's own implementation).

One branch per modality (S2, S1): per-band standardisation (statistics fitted on the pretraining pixels and stored
in the model), a Linear-ReLU-Linear band embedding to ``d_model``, the sinusoidal encoding of the raw day of year
(plus, for S1, a learned ascending / descending / unknown orbit embedding), a Transformer encoder (pre-norm,
no dropout by default) and single-query softmax attention pooling over the VALID steps only (masked steps get
exactly zero weight). The two modality vectors are concatenated (a modality without any valid step, or dropped in
pretraining, is replaced by a learned "missing" vector) and fused by an MLP to ``out_dim``, followed by an
affine-free LayerNorm.

Sizes (:data:`SIZES`, :func:`sizes` reports parameter counts): ``tiny`` for CPU tests; ``S`` is the paper's
student (d_model 256, 4 layers, 4 heads, FFN 1024, 128-d output: 7.1 M parameters in the paper);
``N``, ``M``, ``L`` are eoembed's choices around it (the paper's exact N/M/L configurations are not in
eoembed's sources), each with its Barlow Twins projector width ``proj_dim`` (pretraining only).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from eoembed.errors import DataError
from eoembed.pixel.data import S1_BANDS, S2_BANDS

#: Size presets: encoder dims and the projector width used in pretraining.
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=32, n_layers=1, n_heads=2, d_ffn=64, fusion_hidden=64, out_dim=64, proj_dim=128),
    "N": dict(d_model=128, n_layers=2, n_heads=4, d_ffn=512, fusion_hidden=256, out_dim=128, proj_dim=1024),
    "S": dict(d_model=256, n_layers=4, n_heads=4, d_ffn=1024, fusion_hidden=768, out_dim=128, proj_dim=4096),
    "M": dict(d_model=384, n_layers=6, n_heads=6, d_ffn=1536, fusion_hidden=1024, out_dim=128, proj_dim=4096),
    "L": dict(d_model=512, n_layers=8, n_heads=8, d_ffn=2048, fusion_hidden=1024, out_dim=128, proj_dim=8192),
}


@dataclass
class EncoderConfig:
    """Encoder hyper-parameters (JSON-able; stored in every checkpoint)."""

    d_model: int = 32
    n_layers: int = 1
    n_heads: int = 2
    d_ffn: int = 64
    fusion_hidden: int = 64
    out_dim: int = 64
    proj_dim: int = 128
    dropout: float = 0.0
    s2_bands: list[str] = field(default_factory=lambda: list(S2_BANDS))
    s1_bands: list[str] = field(default_factory=lambda: list(S1_BANDS))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_config(size: str | dict | EncoderConfig = "tiny", **overrides: Any) -> EncoderConfig:
    """An :class:`EncoderConfig` from a preset name, a dict or a config, with keyword overrides (None ignored)."""
    if isinstance(size, EncoderConfig):
        base = size.to_dict()
    elif isinstance(size, dict):
        base = dict(size)
    elif size in SIZES:
        base = dict(SIZES[size])
    else:
        raise DataError(f"size={size!r}; use one of {list(SIZES)} or a dict of EncoderConfig fields.")
    base.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(base) - set(EncoderConfig.__dataclass_fields__))
    if unknown:
        raise DataError(f"unknown encoder setting(s) {unknown}; known: {list(EncoderConfig.__dataclass_fields__)}.")
    cfg = EncoderConfig(**base)
    for k in ("d_model", "n_layers", "n_heads", "d_ffn", "fusion_hidden", "out_dim", "proj_dim"):
        v = getattr(cfg, k)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise DataError(f"{k}={v!r}; use a positive integer.")
    if cfg.d_model % cfg.n_heads or cfg.d_model % 2:
        raise DataError(f"d_model={cfg.d_model} must be even and divisible by n_heads={cfg.n_heads}.")
    return cfg


def doy_encoding(doy: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal encoding of the raw day of year: (..., T) -> (..., T, dim), frequencies 1/10000^(2i/dim)."""
    i = torch.arange(dim // 2, device=doy.device, dtype=torch.float32)
    freq = torch.exp(-math.log(10000.0) * 2 * i / dim)
    ang = doy.to(torch.float32)[..., None] * freq
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


class AttentionPool(nn.Module):
    """Single-query softmax attention pooling over the valid steps (masked steps get zero weight)."""

    def __init__(self, d: int):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(d))
        self.key = nn.Linear(d, d)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = (self.key(h) @ self.query) / math.sqrt(h.shape[-1])  # (P, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        any_valid = mask.any(1, keepdim=True)
        w = torch.softmax(torch.where(any_valid, scores, torch.zeros_like(scores)), dim=1)
        w = torch.where(mask, w, torch.zeros_like(w))
        return (w[..., None] * h).sum(1)


class Branch(nn.Module):
    """One modality: standardise, embed bands, add day-of-year (and orbit) encoding, Transformer, pool."""

    def __init__(self, bands: list[str], cfg: EncoderConfig, orbit: bool):
        super().__init__()
        nb = len(bands)
        self.bands = list(bands)
        self.register_buffer("mean", torch.zeros(nb))
        self.register_buffer("std", torch.ones(nb))
        self.embed = nn.Sequential(nn.Linear(nb, cfg.d_model), nn.ReLU(), nn.Linear(cfg.d_model, cfg.d_model))
        self.orbit = nn.Embedding(3, cfg.d_model) if orbit else None
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ffn, dropout=cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.pool = AttentionPool(cfg.d_model)
        self.d_model = cfg.d_model

    def tokens(self, values: torch.Tensor, doy: torch.Tensor, mask: torch.Tensor,
               orbit: torch.Tensor | None = None) -> torch.Tensor:
        """(P, T, B) raw values -> (P, T, d) input tokens; masked steps are exactly zero."""
        x = (values - self.mean) / self.std
        x = torch.where(mask[..., None], x, torch.zeros_like(x))  # NaN at invalid steps never enters
        tok = self.embed(x) + doy_encoding(doy, self.d_model)
        if self.orbit is not None and orbit is not None:
            tok = tok + self.orbit(orbit.clamp(0, 2))
        return torch.where(mask[..., None], tok, torch.zeros_like(tok))

    def pool_tokens(self, tok: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(P, T, d) tokens + (P, T) mask -> (P, d); rows without a valid step are zero (replaced by fusion)."""
        # a row with no valid key would make attention NaN: let those rows attend to their (zero) first step
        safe = mask.clone()
        safe[:, 0] |= ~mask.any(1)
        h = self.norm(self.transformer(tok, src_key_padding_mask=~safe))
        return self.pool(h, mask)


class PixelEncoder(nn.Module):
    """Dual-branch pixel encoder -> (P, out_dim) embeddings (final LayerNorm without scale / shift).

    ``forward(batch)``: ``batch = {"s2": {"values", "doy", "mask"}, "s1": {"values", "doy", "mask", "orbit"}}``
    (tensors (P, T, B) / (P, T)); either modality may be absent. Pixels with no valid step in a modality use the
    learned missing vector of that modality; ``present`` (P,) bool per modality overrides it (modality dropout).
    """

    def __init__(self, cfg: EncoderConfig | str = "tiny"):
        super().__init__()
        cfg = resolve_config(cfg) if not isinstance(cfg, EncoderConfig) else cfg
        self.cfg = cfg
        self.branches = nn.ModuleDict({"s2": Branch(cfg.s2_bands, cfg, orbit=False),
                                       "s1": Branch(cfg.s1_bands, cfg, orbit=True)})
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(cfg.d_model)) for m in self.branches})
        self.fusion = nn.Sequential(nn.Linear(2 * cfg.d_model, cfg.fusion_hidden), nn.ReLU(),
                                    nn.Linear(cfg.fusion_hidden, cfg.out_dim))
        self.final_norm = nn.LayerNorm(cfg.out_dim, elementwise_affine=False)

    @property
    def out_dim(self) -> int:
        return self.cfg.out_dim

    @property
    def n_params(self) -> int:
        """Trainable parameters (the normalisation statistics are buffers, not counted)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def set_normalisation(self, stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Per-band mean / std of each modality (raw units), e.g. from :func:`eoembed.pixel.band_stats`."""
        for m, (mean, std) in stats.items():
            b = self.branches[m]
            b.mean.copy_(torch.as_tensor(np.asarray(mean, np.float32)))
            b.std.copy_(torch.as_tensor(np.maximum(np.asarray(std, np.float32), 1e-6)))

    def modality_tokens(self, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{modality: (tokens (P, T, d), mask (P, T))} for the modalities in ``batch``."""
        out = {}
        for m, br in self.branches.items():
            if m in batch:
                b = batch[m]
                out[m] = (br.tokens(b["values"], b["doy"], b["mask"], b.get("orbit")), b["mask"])
        return out

    def from_tokens(self, toks: dict[str, tuple[torch.Tensor, torch.Tensor]], n: int,
                    present: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Pool each modality's tokens, replace absent modalities by their missing vector, fuse, normalise."""
        zs = []
        for m, br in self.branches.items():
            miss = self.missing[m].expand(n, -1)
            if m not in toks:
                zs.append(miss)
                continue
            tok, mask = toks[m]
            z = br.pool_tokens(tok, mask)
            have = mask.any(1)
            if present is not None and m in present:
                have = have & present[m]
            zs.append(torch.where(have[:, None], z, miss))
        return self.final_norm(self.fusion(torch.cat(zs, dim=1)))

    def forward(self, batch: dict, present: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        n = next(iter(batch.values()))["mask"].shape[0]
        return self.from_tokens(self.modality_tokens(batch), n, present)


def projector(in_dim: int, width: int, depth: int = 3) -> nn.Sequential:
    """Barlow Twins projector: (Linear-BatchNorm-ReLU) x (depth-1), then Linear (pretraining only)."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth - 1):
        layers += [nn.Linear(d, width, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
        d = width
    layers.append(nn.Linear(d, width, bias=False))
    return nn.Sequential(*layers)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def sizes(bands: tuple[int, int] = (len(S2_BANDS), len(S1_BANDS))):
    """Table of the size presets: dims, encoder and projector parameter counts (counted by building them)."""
    import pandas as pd

    from eoembed.runtime import preserve_global_state

    rows = []
    with preserve_global_state(), torch.device("meta"):
        for name, dims in SIZES.items():
            cfg = resolve_config(name, s2_bands=list(S2_BANDS[:bands[0]]), s1_bands=list(S1_BANDS[:bands[1]]))
            enc = PixelEncoder(cfg)
            proj = projector(cfg.out_dim, cfg.proj_dim)
            rows.append({"size": name, **dims, "n_params_enc": count_params(enc), "n_params_proj": count_params(proj)})
    return pd.DataFrame(rows).set_index("size")
