"""DOFA base / large (Xiong et al. 2024), torchgeo ``dofa_base_patch16_224`` / ``dofa_large_patch16_224``.

DOFA builds its patch embedding from the band wavelengths (micrometres), so any band set works. eoembed runs two
passes per season, S1 ``[VV, VH]`` and S2 L1C (13 bands), and concatenates them: ``[s1 | s2]`` ->
2 x 768 = 1536 (base) / 2 x 1024 = 2048 (large) per season, ``(B, 4, D)``; the ``B*4`` season images of a batch go
through the backbone as one batch per pass. Input 224 px (fixed position table): 264 -> 224 bilinear, antialiased.
Embedding per pass: mean of the patch tokens (CLS excluded) followed by ``fc_norm`` (torchgeo ``global_pool``).

Normalisation: DOFA normalised each pre-training sensor with its own dataset statistics; for Sentinel-1/2 cubes
eoembed uses the SSL4EO-S12 v1.1 z-score (+1000 added to S2 first, as those statistics assume).
S1 wavelengths: DOFA's documented SAR wavelength value ``3.75`` um for VV and VH (torchgeo docs).

Weights: ``dofa_base_patch16_224-a0275954.pth`` / ``dofa_large_patch16_224-0ff904d3.pth`` (torchgeo re-host).
They hold no ``fc_norm`` (torchgeo creates it at load time): eoembed keeps its documented initial value
(LayerNorm weight 1, bias 0) and lists it as ``defaulted`` in the metadata. Licence CC-BY-4.0.

Preset ``"embed2scale"`` (winning code ``embed_dofa.py``, DOFA base from torch.hub ``vit_base_dofa``): same bands
(S1 and L1C passes), 224 bilinear antialias, SSL4EO-S12 v1.1 z-score with +1000, same pooling, but S1 wavelengths
``[5.405, 5.405]`` (the C-band wavelength in cm, read as um). Difference of the eoembed default: S1 wavelength
3.75 um (DOFA's SAR convention).
"""
from __future__ import annotations

import torch

from eoembed.data.bands import S2_WAVELENGTH_NM, S2L1C_BANDS

from .base import Embedder, ModelSpec, Normalisation, WeightSource
from .registry import register
from .stats import ssl4eo_stats
from .weights import LoadRules

S1 = ("s1/VV", "s1/VH")
S2 = tuple(f"s2l1c/{b}" for b in S2L1C_BANDS)
S1_WAVELENGTH_UM = 3.75
E2S_S1_WAVELENGTH_UM = 5.405
E2S_S2_WAVELENGTH_UM = (0.443, 0.490, 0.560, 0.665, 0.705, 0.740, 0.783, 0.842, 0.865, 0.945, 1.375, 1.610, 2.190)


def wavelengths_um(keys: tuple[str, ...], s1_um: float, s2_override: dict[str, float] | None = None) -> list[float]:
    """Central wavelength (um) of each band key (S2 from eoembed.data.bands, S1 = ``s1_um``)."""
    out = []
    for k in keys:
        mod, band = k.split("/", 1)
        if mod == "s1":
            out.append(float(s1_um))
        elif s2_override and band in s2_override:
            out.append(float(s2_override[band]))
        else:
            out.append(S2_WAVELENGTH_NM[band] / 1000.0)
    return out


class DofaEmbedder(Embedder):
    """One DOFA pass per input group, concatenated in group order."""

    def __init__(self, spec: ModelSpec, size: str = "full", preset: str | None = None,
                 missing_bands: str = "error") -> None:
        from torchgeo.models import dofa as tg_dofa

        o = spec.options
        if o.get("builder"):
            backbone = getattr(tg_dofa, o["builder"])(weights=None, img_size=spec.input_size, num_classes=0)
        else:
            backbone = tg_dofa.DOFA(img_size=spec.input_size, patch_size=o["patch_size"], embed_dim=spec.width,
                                    depth=o["depth"], num_heads=o["num_heads"], num_classes=0)
        super().__init__(spec, backbone, size=size, preset=preset, missing_bands=missing_bands)
        s2o = dict(zip(S2L1C_BANDS, o["s2_wavelengths_um"])) if o.get("s2_wavelengths_um") else None
        self.wavelengths = {g: wavelengths_um(keys, o["s1_wavelength_um"], s2o) for g, keys in spec.groups}

    def load_rules(self) -> LoadRules:
        return LoadRules(defaulted=("fc_norm.weight", "fc_norm.bias"))

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = [self.backbone.forward_features(inputs[g], self.wavelengths[g]) for g, _ in self.spec.groups]
        return torch.cat(feats, dim=-1)


def _spec(name: str, builder: str, width: int, source: WeightSource) -> ModelSpec:
    mean, std, offset = ssl4eo_stats(S1 + S2)
    norm = Normalisation(mean=mean, std=std, offset=offset, kind="zscore", source="SSL4EO-S12 v1.1 (+1000 on S2)")
    return ModelSpec(
        name=name, family="DOFA", groups=(("s1", S1), ("s2", S2)), input_size=224, resize="bilinear",
        normalisation=norm, temporal="per_season", pooling="mean_patch_tokens+fc_norm per pass, [s1|s2]",
        width=width, out_multiplier=2, licence="CC-BY-4.0", weight_sources=(source,), embedder=DofaEmbedder,
        options={"builder": builder, "s1_wavelength_um": S1_WAVELENGTH_UM, "s2_wavelengths_um": None},
        presets={"embed2scale": {"options": {"s1_wavelength_um": E2S_S1_WAVELENGTH_UM,
                                             "s2_wavelengths_um": list(E2S_S2_WAVELENGTH_UM)},
                                 "input_size": 224, "resize": "bilinear"}},
        tiny={"input_size": 32, "width": 64,
              "options": {"builder": None, "patch_size": 8, "depth": 2, "num_heads": 2}},
        description=f"DOFA {name.split('_')[1]} (wavelength-conditioned; S1 and S2 L1C passes)")


# torchgeo 0.8.1 DOFABase16_Weights / DOFALarge16_Weights. Full SHA-256 not found in any public source checked
# (TODO: add it from the huggingface.co/torchgeo/dofa file page at this revision); the file-name prefix is checked,
# as torchgeo does.
_REV = "b8db318b64a90b9e085ec04ba8851233c5893666"
register(_spec("dofa_base", "dofa_base_patch16_224", 768, WeightSource(
    "dofa_base_patch16_224-a0275954.pth",
    f"https://hf.co/torchgeo/dofa/resolve/{_REV}/dofa_base_patch16_224-a0275954.pth",
    sha256_prefix="a0275954", revision=_REV, licence="CC-BY-4.0", note="torchgeo DOFABase16_Weights.DOFA_MAE")))
register(_spec("dofa_large", "dofa_large_patch16_224", 1024, WeightSource(
    "dofa_large_patch16_224-0ff904d3.pth",
    f"https://hf.co/torchgeo/dofa/resolve/{_REV}/dofa_large_patch16_224-0ff904d3.pth",
    sha256_prefix="0ff904d3", revision=_REV, licence="CC-BY-4.0", note="torchgeo DOFALarge16_Weights.DOFA_MAE")))
