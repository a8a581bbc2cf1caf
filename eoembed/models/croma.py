"""CROMA base / large (Fuller et al. 2023), torchgeo ``croma_base`` / ``croma_large``.

Inputs: S1 ``[VV, VH]`` (``x_sar``) and the 12 S2 L2A bands B01..B12 without B10 (``x_optical``), one season at a
time; the 4 seasons of a batch run as one batch of ``B*4``. Patch 8, ALiBi position bias built for a fixed image
size: eoembed runs CROMA at the native 264 px of the challenge cubes (``resize="native"``, multiple of 8).
Embedding: ``joint_GAP`` = mean of the joint (SAR x optical cross-attention) tokens -> 768 (base) / 1024 (large)
per season, ``(B, 4, D)``.

Normalisation (default): CROMA was pre-trained on SSL4EO-S12 with the SSL4EO "mean +- 2 std -> [0, 1]" band
scaling, so eoembed uses ``kind="minmax2std"`` with the SSL4EO-S12 v1.1 statistics after adding the +1000 S2
offset that those statistics include (the challenge files have no offset).

Weights: torchgeo's re-hosted CROMA checkpoints (``CROMA_base-0238d814.pt``, ``CROMA_large-921e69ad.pt``; nested
``{"s1_encoder": ..., "s1_GAP_FFN": ..., "s2_encoder": ..., "s2_GAP_FFN": ..., "joint_encoder": ...}``, flattened
to ``<sub>.<key>`` explicitly); ``attn_bias`` is computed by the model. Licence CC-BY-4.0.

Preset ``"embed2scale"`` (Kerekes et al. winning code, ``embed_croma.py``): CROMA large, L2A + S1, native 264 px,
joint_GAP per season, z-score with the SSL4EO-S12 v1.1 L2A/S1 statistics but WITHOUT adding the +1000 offset
(``shift_s2_channels=False`` there, although the statistics assume it). Differences of the eoembed default:
the +1000 offset is added before normalising and CROMA's own [0, 1] scaling is used instead of a z-score.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from eoembed.data.bands import S2L2A_BANDS

from .base import Embedder, ModelSpec, Normalisation, WeightSource
from .registry import register
from .stats import ssl4eo_stats
from .weights import LoadRules

SAR = ("s1/VV", "s1/VH")
OPTICAL = tuple(f"s2l2a/{b}" for b in S2L2A_BANDS)
_SUBMODULES = ("s1_encoder", "s1_GAP_FFN", "s2_encoder", "s2_GAP_FFN", "joint_encoder")


def _norm(kind: str, with_offset: bool, source: str) -> Normalisation:
    mean, std, offset = ssl4eo_stats(SAR + OPTICAL)
    if not with_offset:
        offset = {k: 0.0 for k in offset}
    return Normalisation(mean=mean, std=std, offset=offset, kind=kind, source=source)


def flatten_nested(sd: dict[str, Any]) -> dict[str, Any]:
    """``{"s1_encoder": {k: v}}`` (published CROMA format) -> ``{"s1_encoder.k": v}``; flat files pass through."""
    out: dict[str, Any] = {}
    for key, value in sd.items():
        if key in _SUBMODULES and isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def alibi_2d(num_heads: int, side: int) -> torch.Tensor:
    """CROMA's 2-D ALiBi bias ``-slope_h * euclidean_distance(patch_i, patch_j)`` (same values and patch order
    as torchgeo ``get_2dalibi``), shape ``(1, heads, side*side, side*side)``."""
    start = 2 ** (-(2 ** -(math.log2(num_heads) - 3)))
    slopes = torch.tensor([start * start ** i for i in range(num_heads)], dtype=torch.float32)
    ar = torch.arange(side, dtype=torch.float64)
    pts = torch.stack(torch.meshgrid(ar, ar, indexing="ij"), dim=-1).reshape(-1, 2)
    dist = torch.cdist(pts, pts).to(torch.float32)
    return (-(slopes.view(-1, 1, 1) * dist)).unsqueeze(0)


class CromaEmbedder(Embedder):
    """CROMA joint embedding per season."""

    def __init__(self, spec: ModelSpec, size: str = "full", preset: str | None = None,
                 missing_bands: str = "error") -> None:
        from torchgeo.models import croma as tg_croma

        o = spec.options
        # Built at 8 px (1 patch) and then given the ALiBi table for the real size, computed vectorised:
        # torchgeo's get_2dalibi loops in Python over all patch pairs (~1.2 M tensor ops at 264 px).
        if o.get("builder"):
            backbone = getattr(tg_croma, o["builder"])(weights=None, modalities=["sar", "optical"], image_size=8)
        else:  # tiny: the same CROMA class with few layers / small width
            backbone = tg_croma.CROMA(modalities=["sar", "optical"], encoder_dim=o["encoder_dim"],
                                      encoder_depth=o["encoder_depth"], num_heads=16, patch_size=8, image_size=8)
        backbone.image_size = spec.input_size
        backbone.num_patches = (spec.input_size // 8) ** 2
        backbone.attn_bias = alibi_2d(backbone.num_heads, spec.input_size // 8)
        super().__init__(spec, backbone, size=size, preset=preset, missing_bands=missing_bands)

    def load_rules(self) -> LoadRules:
        return LoadRules(remap=flatten_nested, computed=("attn_bias",))

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.backbone(x_sar=inputs["sar"], x_optical=inputs["optical"])[self.spec.pooling]


_TINY = {"input_size": 32, "width": 64, "options": {"builder": None, "encoder_dim": 64, "encoder_depth": 2}}


def _spec(name: str, builder: str, width: int, depth: int, source: WeightSource) -> ModelSpec:
    return ModelSpec(
        name=name, family="CROMA", groups=(("sar", SAR), ("optical", OPTICAL)), input_size=264, resize="native",
        normalisation=_norm("minmax2std", True, "SSL4EO-S12 v1.1 (+1000 on S2), mean+-2std -> [0,1] (CROMA)"),
        temporal="per_season", pooling="joint_GAP", width=width, out_multiplier=1, licence="CC-BY-4.0",
        weight_sources=(source,), embedder=CromaEmbedder,
        options={"builder": builder, "encoder_dim": width, "encoder_depth": depth},
        presets={"embed2scale": {
            "normalisation": _norm("zscore", False, "SSL4EO-S12 v1.1 L2A/S1 z-score, NO +1000 (embed2scale code)"),
            "input_size": 264, "resize": "native"}},
        tiny=_TINY, description=f"CROMA {name.split('_')[1]} (S1+S2 L2A, joint_GAP)")


# URLs and revisions: torchgeo 0.8.1 CROMABase_Weights / CROMALarge_Weights (file-name SHA-256 prefixes).
# Full SHA-256: of the original CROMA_base.pt / CROMA_large.pt (huggingface.co/antofuller/CROMA), as pinned in
# third-party public code found by code search (no Hugging Face file page was reachable to confirm): base in several
# independent projects (777,563,846 bytes, HF revision 0dd28e3d633bd6715856ae9890e8c49360040598), large in one
# public weights table. Both start with torchgeo's file-name prefix, i.e. torchgeo re-hosts the same bytes; a wrong
# full value would show up as a mismatch error naming both hashes, never as a silent load.
register(_spec("croma_base", "croma_base", 768, 12, WeightSource(
    "CROMA_base-0238d814.pt",
    "https://hf.co/torchgeo/croma/resolve/387883f08af79d777167519c57cd826eda89a16f/CROMA_base-0238d814.pt",
    sha256_prefix="0238d814", sha256="0238d814b53108f3574bf1ea240e38a0a6edd46173816d9a6962070561893b63",
    revision="387883f08af79d777167519c57cd826eda89a16f", licence="CC-BY-4.0",
    note="torchgeo CROMABase_Weights.CROMA_VIT")))
register(_spec("croma_large", "croma_large", 1024, 24, WeightSource(
    "CROMA_large-921e69ad.pt",
    "https://huggingface.co/torchgeo/croma/resolve/92cb1a0f4e34c6c01558baf070197c01255382f6/CROMA_large-921e69ad.pt",
    sha256_prefix="921e69ad", sha256="921e69ad4069201298bb5c860dc332f31e0cb01df6864f294a79fa8f921915a7",
    revision="92cb1a0f4e34c6c01558baf070197c01255382f6", licence="CC-BY-4.0",
    note="torchgeo CROMALarge_Weights.CROMA_VIT")))

