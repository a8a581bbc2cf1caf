"""Scale-MAE large (Reed et al. 2023), torchgeo ``scalemae_large_patch16`` (timm ViT-L/16, GSD-aware positions).

The only published Scale-MAE weights are ViT-L/16 pre-trained on fMoW RGB: 3-channel, 8-bit RGB scaled to [0, 1]
then ImageNet mean/std (torchgeo's transforms). eoembed default: one pass per season on the S2 L2A true-colour
bands ``[B04, B03, B02]``, stretched to [0, 1] as a display image (``DN / 3000``, i.e. reflectance 0..0.3, clipped;
an eoembed choice since S2 has no 8-bit product in the cube) then ImageNet-normalised; 264 -> 224 bilinear
antialias; GSD ``res=10`` m. Embedding: mean of the final (LayerNorm-ed) patch tokens, CLS excluded -> 1024 per
season, ``(B, 4, 1024)``.

Weights: ``vit_large_patch16_224_fmow_rgb_scalemae-98ed9821.pth`` (torchgeo ``ScaleMAELarge16_Weights.FMOW_RGB``,
re-hosted by I. Corley). ``pos_embed`` is computed from the GSD at run time (the stored table is unused and
taken from the model); MAE decoder / mask-token keys, if present, are dropped on purpose and listed in the
metadata. Licence CC-BY-NC-4.0 (non-commercial).

Preset ``"embed2scale"`` (winning code ``embed_scale_mae.py``): two passes per season, S1 as ``[VV, VH, VV]`` and
S2 L1C as ``[B08, B04, B03]`` (false colour), SSL4EO-S12 v1.1 z-score (+1000 on S2), 224 bilinear antialias,
``res=1.0`` (torchgeo default), mean of ALL tokens including CLS, concatenated ``[s1 | s2]``.
Differences: the winning code built ``ScaleMAE()`` with timm's ViT-B defaults and loaded the ViT-L checkpoint with
``strict=False``, so it ran a RANDOM 768-d ViT-B; eoembed's preset uses the real ViT-L (2 x 1024 = 2048 per
season) and fails loudly if the checkpoint does not fit.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .base import Embedder, ModelSpec, Normalisation, WeightSource
from .registry import register
from .stats import IMAGENET_MEAN, IMAGENET_STD, ssl4eo_stats
from .weights import LoadRules

RGB = ("s2l2a/B04", "s2l2a/B03", "s2l2a/B02")
E2S_S1 = ("s1/VV", "s1/VH", "s1/VV")
E2S_S2 = ("s2l1c/B08", "s2l1c/B04", "s2l1c/B03")


class ScaleMaeEmbedder(Embedder):
    """One Scale-MAE pass per input group; token pooling per ``options['pool']``."""

    def __init__(self, spec: ModelSpec, size: str = "full", preset: str | None = None,
                 missing_bands: str = "error") -> None:
        from torchgeo.models import scale_mae as tg_smae

        o = spec.options
        if o.get("builder"):
            backbone = getattr(tg_smae, o["builder"])(weights=None, img_size=spec.input_size, num_classes=0,
                                                     res=o["res"])
        else:
            backbone = tg_smae.ScaleMAE(res=o["res"], img_size=spec.input_size, patch_size=o["patch_size"],
                                        embed_dim=spec.width, depth=o["depth"], num_heads=o["num_heads"],
                                        mlp_ratio=4, qkv_bias=True, num_classes=0,
                                        norm_layer=partial(nn.LayerNorm, eps=1e-6))
        super().__init__(spec, backbone, size=size, preset=preset, missing_bands=missing_bands)

    def load_rules(self) -> LoadRules:
        return LoadRules(computed=("pos_embed",), dropped_prefixes=("decoder", "mask_token", "fpn", "fcn_high",
                                                                    "fcn_low"))

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = []
        for g, _ in self.spec.groups:
            tokens = self.backbone.forward_features(inputs[g])  # (N, 1 + patches, D), final norm applied
            if self.spec.options["pool"] == "mean_all_tokens":
                feats.append(tokens.mean(dim=1))
            else:
                feats.append(tokens[:, self.backbone.num_prefix_tokens:].mean(dim=1))
        return torch.cat(feats, dim=-1)


def _default_norm() -> Normalisation:
    return Normalisation(mean=dict(zip(RGB, IMAGENET_MEAN)), std=dict(zip(RGB, IMAGENET_STD)),
                         offset={k: 0.0 for k in RGB}, kind="rgb_imagenet", scale_max=3000.0,
                         source="S2 L2A DN/3000 clipped to [0,1], then ImageNet mean/std (fMoW-RGB weights)")


def _e2s_norm() -> Normalisation:
    mean, std, offset = ssl4eo_stats(("s1/VV", "s1/VH") + E2S_S2)
    return Normalisation(mean=mean, std=std, offset=offset, kind="zscore",
                         source="SSL4EO-S12 v1.1 z-score (+1000 on S2), embed2scale code")


# torchgeo 0.8.1 ScaleMAELarge16_Weights.FMOW_RGB. Full SHA-256 not found in any public source checked (TODO: add it
# from the Hugging Face file page at this revision); the file-name prefix is checked, as torchgeo does.
_REV = "9dc7f569424baeb780698352cf6e87638c882123"
_FILE = "vit_large_patch16_224_fmow_rgb_scalemae-98ed9821.pth"

register(ModelSpec(
    name="scalemae_large", family="Scale-MAE", groups=(("rgb", RGB),), input_size=224, resize="bilinear",
    normalisation=_default_norm(), temporal="per_season", pooling="mean_patch_tokens", width=1024,
    out_multiplier=1, licence="CC-BY-NC-4.0",
    weight_sources=(WeightSource(_FILE, f"https://hf.co/isaaccorley/vit_large_patch16_224_fmow_rgb_scalemae/resolve/"
                                        f"{_REV}/{_FILE}", sha256_prefix="98ed9821", revision=_REV,
                                 licence="CC-BY-NC-4.0", note="torchgeo ScaleMAELarge16_Weights.FMOW_RGB"),),
    embedder=ScaleMaeEmbedder,
    options={"builder": "scalemae_large_patch16", "res": 10.0, "pool": "mean_patch_tokens"},
    presets={"embed2scale": {"groups": (("s1", E2S_S1), ("s2", E2S_S2)), "normalisation": _e2s_norm(),
                             "out_multiplier": 2, "pooling": "mean_all_tokens per pass, [s1|s2]",
                             "options": {"res": 1.0, "pool": "mean_all_tokens"}}},
    tiny={"input_size": 32, "width": 64, "options": {"builder": None, "patch_size": 8, "depth": 2, "num_heads": 2}},
    description="Scale-MAE ViT-L/16 fMoW-RGB (S2 L2A true colour)",
))
