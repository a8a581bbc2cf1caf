"""Small fake Embedders and cubes for the extraction tests (no test functions here).

FakeEmbedder obeys the Embedder contract (spec / weights_id / metadata / prepare / forward) with a few
deterministic parameters so that results can be compared array-equal between runs.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from eoembed.data.bands import SEASONS, all_band_keys
from eoembed.errors import DataError

ALL_BANDS = all_band_keys()


@dataclass(frozen=True)
class FakeSpec:
    name: str
    bands: tuple[str, ...]
    embed_dim: int
    temporal: str = "per_season"
    input_size: int = 8
    resize: str = "bilinear"
    normalisation: dict = field(default_factory=dict)
    pooling: str = "mean"
    licence: str = "MIT"
    weight_sources: tuple = ()
    presets: tuple = ()


class FakeEmbedder(nn.Module):
    """Per-band z-score, resize to 8 px, per-season linear map of band means/stds (optionally slow)."""

    def __init__(self, name: str = "fake", bands: tuple[str, ...] = ("s2l2a/B02", "s2l2a/B03", "s2l2a/B04", "s1/VV"),
                 dim: int = 8, temporal: str = "per_season", delay: float = 0.0, seed: int = 0):
        super().__init__()
        means = {b: (-12.0 if b.startswith("s1/") else 1000.0) for b in bands}
        stds = {b: (5.0 if b.startswith("s1/") else 500.0) for b in bands}
        self.spec = FakeSpec(name, tuple(bands), dim, temporal, normalisation={"mean": means, "std": stds})
        self.weights_id = "random"
        self.delay = delay
        g = torch.Generator().manual_seed(seed)
        self.proj = nn.Linear(2 * len(bands), dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=g))
            self.proj.bias.copy_(torch.randn(self.proj.bias.shape, generator=g))
        self.register_buffer("mean", torch.tensor([means[b] for b in bands]).view(1, 1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([stds[b] for b in bands]).view(1, 1, -1, 1, 1))
        self.metadata = {"model": name, "weights": "random", "preset": None, "size": "tiny",
                         "band_mapping": {b: b for b in bands}, "temporal": temporal, "pooling": "mean",
                         "eoembed_version": "0.1.0"}

    def prepare(self, x, band_keys, lat=None, lon=None):
        missing = [b for b in self.spec.bands if b not in band_keys]
        if missing:
            raise DataError(f"{self.spec.name} needs bands {missing}")
        idx = [list(band_keys).index(b) for b in self.spec.bands]
        t = torch.from_numpy(np.asarray(x, np.float32)[:, :, idx])
        t = (t - self.mean) / self.std
        b, s, c, h, w = t.shape
        t = F.interpolate(t.reshape(b * s, c, h, w), size=(8, 8), mode="bilinear", align_corners=False)
        return {"x": t.reshape(b, s, c, 8, 8)}

    def forward(self, x):
        if self.delay:
            time.sleep(self.delay)
        feats = torch.cat([x.mean(dim=(-1, -2)), x.std(dim=(-1, -2))], dim=-1)  # (B, S, 2C)
        out = self.proj(feats)
        return out if self.spec.temporal == "per_season" else out.mean(dim=1)


def slow_fake() -> FakeEmbedder:
    """The fake used by the kill-and-resume subprocess; EOEMBED_FAKE_DELAY seconds per batch."""
    return FakeEmbedder(name="slow", delay=float(os.environ.get("EOEMBED_FAKE_DELAY", "0")))


def make_cube(n: int = 20, size: int = 16, seed: int = 0, bands: list[str] | None = None,
              chunk: int = 4) -> xr.Dataset:
    """A lazy (dask) cube in the contract's form with deterministic values (S2 DN, S1 dB)."""
    bands = list(bands or ALL_BANDS)
    rng = np.random.default_rng(seed)
    vals = rng.uniform(0, 1, size=(n, len(SEASONS), len(bands), size, size)).astype(np.float32)
    s1 = np.array([b.startswith("s1/") for b in bands])
    vals[:, :, s1] = vals[:, :, s1] * 20 - 25
    vals[:, :, ~s1] = vals[:, :, ~s1] * 3000
    ids = [f"id{i:04d}" for i in range(n)]
    return xr.Dataset(
        {"bands": (("sample", "season", "band", "y", "x"), da.from_array(vals, chunks=(chunk, -1, -1, -1, -1)))},
        coords={"sample": ids, "season": list(SEASONS), "band": bands,
                "modality": ("band", [b.split("/")[0] for b in bands]),
                "band_name": ("band", [b.split("/")[1] for b in bands]),
                "lat": ("sample", np.linspace(40, 50, n)), "lon": ("sample", np.linspace(0, 10, n))},
        attrs={"source": "fake", "missing_bands": [b for b in ALL_BANDS if b not in bands]})
