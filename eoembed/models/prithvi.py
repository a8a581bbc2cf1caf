"""Prithvi-EO-2.0 300M / 600M (Szwarcman et al. 2024), terratorch ``BACKBONE_REGISTRY``
``terratorch_prithvi_eo_v2_300`` / ``terratorch_prithvi_eo_v2_600`` with ``num_frames=4``.

Input: the six HLS bands Blue, Green, Red, NIR-narrow, SWIR1, SWIR2 = S2 L2A ``[B02, B03, B04, B8A, B11, B12]``
(HLS is surface reflectance x 10000 without offset, like the challenge L2A files), all four seasons at once as
``(B, 6, T=4, 224, 224)`` (264 -> 224 bilinear antialias; patch 16 for 300M, 14 for 600M). Normalisation:
Prithvi-EO-2.0's own pre-training mean/std (terratorch ``PRITHVI_V2_MEAN/STD``), no offset.
Embedding: last-layer tokens (after the final LayerNorm), patch tokens only (CLS excluded), concatenated
``[mean | std]`` over tokens -> 2 x 1024 = 2048 (300M) / 2 x 1280 = 2560 (600M), ``(B, D)`` (temporal
"all_seasons"). The non-TL variants take no date/location inputs, so lat/lon are not used.

Weights: ``Prithvi_EO_V2_300M.pt`` / ``Prithvi_EO_V2_600M.pt`` (Hugging Face ``ibm-nasa-geospatial``); terratorch
loads a local ``ckpt_path`` non-strictly, so eoembed loads it itself with explicit rules: MAE format
``encoder.<key>`` -> ``<key>``, decoder/mask-token keys dropped (listed in metadata), ``pos_embed`` recomputed by
the model for 224 px x 4 frames. Licence Apache-2.0 (model cards; foundation_models.md lists Prithvi as
MIT/Apache).

Preset ``"embed2scale"`` (winning code ``embed_prithvi.py``): L1C cube indices ``2:5, 8, 11:`` i.e.
``[B03, B04, B05, B8A, B11, B12]`` (an off-by-one against the intended B02, B03, B04; reproduced as is), SSL4EO-S12
v1.1 L1C z-score (+1000), 264 -> 256 bilinear antialias, T=4 in one pass, mean and (unbiased) std over ALL
last-layer tokens including CLS. Differences: the winning code built a default 768-d ``PrithviMAE`` and loaded the
600M checkpoint with ``strict=False``, so it ran RANDOM weights (1536 dims); eoembed uses the real 300M/600M
weights, the HLS bands from L2A and Prithvi's own statistics by default, and excludes the CLS token.
"""
from __future__ import annotations

import torch

from eoembed import runtime

from .base import Embedder, ModelSpec, Normalisation, WeightSource
from .registry import register
from .stats import PRITHVI_V2_MEAN, PRITHVI_V2_STD, ssl4eo_stats
from .weights import LoadRules

HLS = ("s2l2a/B02", "s2l2a/B03", "s2l2a/B04", "s2l2a/B8A", "s2l2a/B11", "s2l2a/B12")
E2S_BANDS = ("s2l1c/B03", "s2l1c/B04", "s2l1c/B05", "s2l1c/B8A", "s2l1c/B11", "s2l1c/B12")


def mae_to_encoder(sd: dict) -> dict:
    """Prithvi MAE checkpoint -> PrithviViT keys: strip ``encoder.`` and the legacy ``_timm_module.``."""
    out = {}
    for k, v in sd.items():
        k = k.replace("_timm_module.", "")
        out[k[len("encoder."):] if k.startswith("encoder.") else k] = v
    return out


class PrithviEmbedder(Embedder):
    """Prithvi-EO-2.0 on the 4 seasons at once; ``[mean | std]`` of last-layer tokens."""

    def __init__(self, spec: ModelSpec, size: str = "full", preset: str | None = None,
                 missing_bands: str = "error") -> None:
        with runtime.preserve_global_state():  # importing terratorch sets fp32 matmul precision to "medium"
            from terratorch.registry import BACKBONE_REGISTRY

        o = spec.options
        kwargs = {"pretrained": False, "num_frames": 4, "img_size": spec.input_size}
        if size == "tiny":
            kwargs |= {"embed_dim": spec.width, "depth": o["depth"], "num_heads": o["num_heads"],
                       "patch_size": [1, o["patch"], o["patch"]]}
        with runtime.preserve_global_state():
            backbone = BACKBONE_REGISTRY.build(f"terratorch_{o['variant']}", **kwargs)
        super().__init__(spec, backbone, size=size, preset=preset, missing_bands=missing_bands)

    def load_rules(self) -> LoadRules:
        return LoadRules(remap=mae_to_encoder, computed=("pos_embed",),
                         dropped_prefixes=("decoder", "mask_token", "_dec"))

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = inputs["hls"].permute(0, 2, 1, 3, 4).contiguous()  # (B, 4, 6, S, S) -> (B, 6, T=4, S, S)
        tokens = self.backbone.forward_features(x)[-1]  # last block after the final norm: (B, 1 + T*h*w, D)
        if not self.spec.options["include_cls"]:
            tokens = tokens[:, 1:]
        return torch.cat([tokens.mean(dim=1), tokens.float().std(dim=1).to(tokens.dtype)], dim=-1)


def _e2s_norm() -> Normalisation:
    mean, std, offset = ssl4eo_stats(E2S_BANDS)
    return Normalisation(mean=mean, std=std, offset=offset, kind="zscore",
                         source="SSL4EO-S12 v1.1 L1C z-score (+1000), embed2scale code")


def _spec(name: str, variant: str, width: int, filename: str, repo: str, rev: str, sha256: str) -> ModelSpec:
    norm = Normalisation(mean=dict(zip(HLS, PRITHVI_V2_MEAN)), std=dict(zip(HLS, PRITHVI_V2_STD)),
                         offset={k: 0.0 for k in HLS}, kind="zscore", source="Prithvi-EO-2.0 pre-training (HLS)")
    return ModelSpec(
        name=name, family="Prithvi-EO-2.0", groups=(("hls", HLS),), input_size=224, resize="bilinear",
        normalisation=norm, temporal="all_seasons", pooling="mean+std of last-layer patch tokens",
        width=width, out_multiplier=2, licence="Apache-2.0",
        weight_sources=(WeightSource(filename, f"https://huggingface.co/{repo}/resolve/{rev}/{filename}",
                                     revision=rev, sha256=sha256, licence="Apache-2.0",
                                     note=f"Hugging Face {repo}"),),
        embedder=PrithviEmbedder, options={"variant": variant, "include_cls": False},
        presets={"embed2scale": {"groups": (("hls", E2S_BANDS),), "normalisation": _e2s_norm(), "input_size": 256,
                                 "pooling": "mean+std of all last-layer tokens (incl. CLS)",
                                 "options": {"include_cls": True}}},
        tiny={"input_size": 32, "width": 64, "options": {"depth": 2, "num_heads": 2, "patch": 8}},
        description=f"Prithvi-EO-2.0 {name.rsplit('_', 1)[1]}M (HLS bands, T=4)")


# Pins (no official hash list exists and no Hugging Face file page was reachable; values from third-party public code
# found by code search that pins these files):
# 300M: revision 9eb1b110... (2025-10-09; the weights are unchanged since ebfff1d8, 2024-12-03), SHA-256 = the Hub LFS
#   pointer's oid at that revision, 1,326,658,396 bytes (a public weights-provenance document and its code agree).
# 600M: revision 87f15784... (pinned by a public project's Prithvi v2 constants); SHA-256 from one public weights
#   table (no revision given there). If a download reports a mismatch for 600M, the error says what to do.
register(_spec("prithvi_eo_v2_300", "prithvi_eo_v2_300", 1024, "Prithvi_EO_V2_300M.pt",
               "ibm-nasa-geospatial/Prithvi-EO-2.0-300M", "9eb1b1102806593963daa333bcc491b1c6f8562f",
               "faab2c8b776f0723f93431747603a7ec586a54fc45473613b4322c29752486e7"))
register(_spec("prithvi_eo_v2_600", "prithvi_eo_v2_600", 1280, "Prithvi_EO_V2_600M.pt",
               "ibm-nasa-geospatial/Prithvi-EO-2.0-600M", "87f15784813828dc37aa3197a143cd4689e4d080",
               "26a3f387ac6fc8e5eee8eb1986e6b9e99f36aa4d03aeb7fd5722feee5d5f88d0"))
