"""Copernicus-FM base (Wang et al. 2025), torchgeo ``copernicusfm_base``.

A ViT-B/16 whose patch embedding is generated from each band's central wavelength and bandwidth (nm) and whose
position embedding adds optional metadata ``(lon, lat, days since 1970, area km^2)`` (NaN -> learned "unknown"
token). eoembed default: two passes per season, S1 ``[VV, VH]`` (wavelength 5e7 nm = 5 cm, bandwidth 1e9 nm, the
torchgeo-documented SAR convention) and S2 L1C 13 bands (ESA S2A wavelengths/bandwidths from
``eoembed.data.bands``), each pooled as mean of patch tokens + ``fc_norm`` (torchgeo ``global_pool=True``),
concatenated ``[s1 | s2]`` -> 1536 per season, ``(B, 4, 1536)``. 264 -> 224 bilinear antialias, kernel 16.
Metadata: lon/lat when given to ``prepare`` (per sample, NaN when unknown), time NaN (the cubes carry seasons,
not dates), area = footprint of the input image (H x 10 m)^2 in km^2. Samples with and without coordinates in one
batch are encoded separately (torchgeo switches the whole batch to the "unknown" token if any value is NaN), so a
sample's embedding never depends on its batch mates.

Normalisation: Copernicus-Pretrain's S1/S2 data extend SSL4EO-S12 v1.1, so the SSL4EO-S12 v1.1 z-score is used
(+1000 added to S2 as those statistics assume).

Weights: ``CopernicusFM_ViT_base_varlang-085350e4.pth`` (torchgeo re-host). It holds no ``fc_norm`` (torchgeo
creates it at load time): kept at its documented initial value (LayerNorm 1/0) and listed as ``defaulted``.
Licence CC-BY-4.0.

Preset ``"embed2scale"`` (winning code ``embed_copernicus.py``): ONE pass per season on S1 + L1C as 15 channels,
S1 wavelength 5e7 nm but bandwidth 100 nm, their rounded S2 wavelengths, SSL4EO-S12 v1.1 z-score (+1000), 224
bilinear antialias, all metadata NaN, output = CLS token after the final norm (``global_pool=False``) -> 768 per
season. It used the original checkpoint ``CopernicusFM_ViT_base_varlang_e100.pth`` (wangyi111/Copernicus-FM),
which carries the final ``norm``; the preset resolves that file (``{"model": ...}`` nesting unwrapped, ``head.*``
dropped). Differences of the eoembed default: separate S1/S2 passes (the model was pre-trained per modality),
S1 bandwidth 1e9 nm, mean-token pooling, known area and coordinates used.
"""
from __future__ import annotations

import numpy as np
import torch

from eoembed.data.bands import S2_BANDWIDTH_NM, S2_WAVELENGTH_NM, S2L1C_BANDS

from .base import Embedder, ModelSpec, Normalisation, WeightSource
from .registry import register
from .stats import ssl4eo_stats
from .weights import LoadRules, unwrap

S1 = ("s1/VV", "s1/VH")
S2 = tuple(f"s2l1c/{b}" for b in S2L1C_BANDS)
S1_WAVELENGTH_NM = 5e7
S1_BANDWIDTH_NM = 1e9
E2S_S1_BANDWIDTH_NM = 100.0
E2S_S2_WAVELENGTH_NM = (443, 492, 560, 665, 704, 740, 783, 833, 865, 945, 1374, 1614, 2190)
GSD_M = 10.0


def spectral(keys: tuple[str, ...], o: dict) -> tuple[list[float], list[float]]:
    """(wavelengths_nm, bandwidths_nm) for band keys under the spec options."""
    s2w = dict(zip(S2L1C_BANDS, o["s2_wavelengths_nm"])) if o.get("s2_wavelengths_nm") else S2_WAVELENGTH_NM
    wl, bw = [], []
    for k in keys:
        mod, band = k.split("/", 1)
        if mod == "s1":
            wl.append(float(o["s1_wavelength_nm"]))
            bw.append(float(o["s1_bandwidth_nm"]))
        else:
            wl.append(float(s2w[band]))
            bw.append(float(S2_BANDWIDTH_NM[band]))
    return wl, bw


class CopernicusFmEmbedder(Embedder):
    """Copernicus-FM, one pass per input group, concatenated in group order."""

    def __init__(self, spec: ModelSpec, size: str = "full", preset: str | None = None,
                 missing_bands: str = "error") -> None:
        from torchgeo.models import copernicusfm as tg_cfm

        o = spec.options
        if o.get("builder"):
            backbone = getattr(tg_cfm, o["builder"])(weights=None, img_size=spec.input_size, num_classes=0,
                                                     global_pool=o["global_pool"])
        else:
            backbone = tg_cfm.CopernicusFM(img_size=spec.input_size, patch_size=o["patch_size"],
                                           embed_dim=spec.width, depth=o["depth"], num_heads=o["num_heads"],
                                           num_classes=0, global_pool=o["global_pool"])
        super().__init__(spec, backbone, size=size, preset=preset, missing_bands=missing_bands)
        self.spectral = {g: spectral(keys, dict(o)) for g, keys in spec.groups}

    def load_rules(self) -> LoadRules:
        if self.spec.options["global_pool"]:
            return LoadRules(remap=unwrap, defaulted=("fc_norm.weight", "fc_norm.bias"), dropped_prefixes=("head.",))
        return LoadRules(remap=unwrap, dropped_prefixes=("head.",))

    def extra_inputs(self, batch: int, hw: tuple[int, int], lat: np.ndarray | None,
                     lon: np.ndarray | None) -> dict[str, torch.Tensor]:
        meta = torch.full((batch, 4, 4), float("nan"), dtype=torch.float32)
        if self.spec.options["use_metadata"]:
            for name, arr, col in (("lon", lon, 0), ("lat", lat, 1)):
                if arr is not None:
                    a = np.asarray(arr, dtype=np.float64).reshape(-1)
                    if a.shape[0] != batch:
                        raise ValueError(f"{self.spec.name}: {name} has {a.shape[0]} values for {batch} samples")
                    meta[:, :, col] = torch.from_numpy(a).float().view(-1, 1)
            meta[:, :, 3] = (hw[0] * GSD_M / 1000.0) * (hw[1] * GSD_M / 1000.0)
        return {"metadata": meta}

    def _run(self, x: torch.Tensor, meta: torch.Tensor, group: str) -> torch.Tensor:
        wl, bw = self.spectral[group]
        return self.backbone.forward_features(x, meta, wavelengths=wl, bandwidths=bw, input_mode="spectral",
                                              kernel_size=self.spec.options["kernel_size"])

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        meta = inputs["metadata"]
        known = ~torch.isnan(meta[:, :2]).any(dim=1)
        feats = []
        for g, _ in self.spec.groups:
            x = inputs[g]
            if bool(known.all()) or not bool(known.any()):
                feats.append(self._run(x, meta, g))
            else:  # mixed batch: run the two subsets separately so each sample is batch-independent
                out = None
                for mask in (known, ~known):
                    part = self._run(x[mask], meta[mask], g)
                    if out is None:
                        out = part.new_empty((x.shape[0], part.shape[-1]))
                    out[mask] = part
                feats.append(out)
        return torch.cat(feats, dim=-1)


def _norm(keys: tuple[str, ...], source: str) -> Normalisation:
    mean, std, offset = ssl4eo_stats(keys)
    return Normalisation(mean=mean, std=std, offset=offset, kind="zscore", source=source)


# torchgeo 0.8.1 CopernicusFM_Base_Weights. Full SHA-256 not found in any public source checked (TODO: add it from the
# huggingface.co/torchgeo/copernicus-fm file page at this revision); the file-name prefix is checked, as torchgeo does.
_REV = "f395812cc990ba25a451dbb9c9e6d95c8482947e"
_FILE = "CopernicusFM_ViT_base_varlang-085350e4.pth"
# Original release (embed2scale preset): revision as pinned by a public project (allenai's evaluation code).
# SHA-256 UNKNOWN (TODO: take it from huggingface.co/wangyi111/Copernicus-FM/blob/<_E2S_REV>/<_E2S_FILE>): eoembed
# refuses to download it; a local copy loads with an "unverified" warning, an explicit path as given.
_E2S_REV = "e1db406d517a122c8373802e1c130c5fc4789f84"
_E2S_FILE = "CopernicusFM_ViT_base_varlang_e100.pth"

register(ModelSpec(
    name="copernicusfm_base", family="Copernicus-FM", groups=(("s1", S1), ("s2", S2)), input_size=224,
    resize="bilinear", normalisation=_norm(S1 + S2, "SSL4EO-S12 v1.1 (+1000 on S2)"), temporal="per_season",
    pooling="mean_patch_tokens+fc_norm per pass, [s1|s2]", width=768, out_multiplier=2, licence="CC-BY-4.0",
    weight_sources=(WeightSource(_FILE, f"https://huggingface.co/torchgeo/copernicus-fm/resolve/{_REV}/{_FILE}",
                                 sha256_prefix="085350e4", revision=_REV, licence="CC-BY-4.0",
                                 note="torchgeo CopernicusFM_Base_Weights.CopernicusFM_ViT"),),
    embedder=CopernicusFmEmbedder,
    options={"builder": "copernicusfm_base", "global_pool": True, "kernel_size": 16, "use_metadata": True,
             "s1_wavelength_nm": S1_WAVELENGTH_NM, "s1_bandwidth_nm": S1_BANDWIDTH_NM, "s2_wavelengths_nm": None},
    presets={"embed2scale": {
        "groups": (("s1s2", S1 + S2),), "normalisation": _norm(S1 + S2, "SSL4EO-S12 v1.1 z-score (+1000), e2s code"),
        "out_multiplier": 1, "pooling": "CLS after final norm (global_pool=False)",
        "weight_sources": (WeightSource(_E2S_FILE, f"https://huggingface.co/wangyi111/Copernicus-FM/resolve/"
                                                   f"{_E2S_REV}/{_E2S_FILE}", revision=_E2S_REV, sha256=None,
                                        licence="CC-BY-4.0",
                                        note="original Copernicus-FM release used by the embed2scale code"),),
        "options": {"global_pool": False, "use_metadata": False, "s1_bandwidth_nm": E2S_S1_BANDWIDTH_NM,
                    "s2_wavelengths_nm": list(E2S_S2_WAVELENGTH_NM)}}},
    tiny={"input_size": 32, "width": 64,
          "options": {"builder": None, "patch_size": 8, "kernel_size": 8, "depth": 2, "num_heads": 2}},
    description="Copernicus-FM ViT-B/16 (wavelength+bandwidth conditioned; S1 and S2 L1C passes; metadata)",
))

