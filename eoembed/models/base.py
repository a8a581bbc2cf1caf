"""ModelSpec (what a model needs and produces) and Embedder (the runnable model).

An :class:`Embedder` has two halves:

* ``prepare(x, band_keys, lat, lon)`` - CPU side, numpy in, dict of CPU tensors out: band selection per input
  group, S2 offset, normalisation, resize. Safe in DataLoader workers/threads.
* ``forward(**inputs)`` - device side: ``(B, 4, D)`` for ``temporal="per_season"`` (the 4 seasons of all B samples
  go through the backbone as ONE batch of ``B*4``) or ``(B, D)`` for ``"all_seasons"``. It computes at
  ``embedder.precision`` (:mod:`eoembed.runtime`: "float32" by default, full IEEE fp32 whatever torch's global
  matmul precision is; "bf16" = CUDA autocast, opt-in), recorded in ``metadata["precision"]``, and returns float32.
  Runs without autograd.

Model modules subclass :class:`Embedder` and implement ``encode``.
"""
from __future__ import annotations

import dataclasses
import re
import warnings
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eoembed import runtime
from eoembed.data.bands import SEASONS, split_key
from eoembed.errors import DataError

RESIZE_MODES = ("bilinear", "crop", "native")
TEMPORAL_MODES = ("per_season", "all_seasons", "pixel_series")
NORM_KINDS = ("zscore", "minmax2std", "rgb_imagenet")
MISSING_POLICIES = ("error", "fill-mean")
#: torch.hub's hash-in-file-name convention (``name-<hex>.ext``), as torchgeo names its checkpoints.
_NAME_HASH = re.compile(r"-([a-f0-9]{8,64})\.[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Normalisation:
    """Per-band normalisation applied after adding ``offset`` to the cube values.

    kinds:
      * ``"zscore"``: ``(x + offset - mean) / std``;
      * ``"minmax2std"``: ``clip((x + offset - (mean - 2 std)) / (4 std), 0, 1)`` (SSL4EO-S12 / CROMA style);
      * ``"rgb_imagenet"``: ``v = clip((x + offset) / scale_max, 0, 1)`` (a display stretch to [0, 1]) then
        ``(v - mean) / std`` with ImageNet mean/std.
    """

    mean: Mapping[str, float]
    std: Mapping[str, float]
    offset: Mapping[str, float] = field(default_factory=dict)
    kind: str = "zscore"
    scale_max: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in NORM_KINDS:
            raise ValueError(f"unknown normalisation kind {self.kind!r}; expected one of {NORM_KINDS}")
        if set(self.mean) != set(self.std):
            raise ValueError("normalisation mean and std must cover the same band keys")

    def arrays(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, std, offset) float32 arrays in the order of ``keys``."""
        missing = [k for k in keys if k not in self.mean]
        if missing:
            raise KeyError(f"normalisation ({self.source or 'unnamed'}) has no statistics for bands {missing}")
        return (np.array([self.mean[k] for k in keys], np.float32), np.array([self.std[k] for k in keys], np.float32),
                np.array([self.offset.get(k, 0.0) for k in keys], np.float32))

    def apply(self, x: torch.Tensor, keys: list[str]) -> torch.Tensor:
        """Normalise ``x`` (..., C, H, W) whose channels are ``keys``."""
        mean, std, off = (torch.from_numpy(a).view(-1, 1, 1) for a in self.arrays(keys))
        x = x + off
        if self.kind == "zscore":
            return (x - mean) / std
        if self.kind == "minmax2std":
            lo = mean - 2 * std
            return ((x - lo) / (4 * std)).clamp_(0.0, 1.0)
        v = (x / self.scale_max).clamp_(0.0, 1.0)
        return (v - mean) / std

    def fill_value(self) -> float:
        """Normalised value of a band at its mean (what ``missing_bands="fill-mean"`` writes)."""
        return 0.5 if self.kind == "minmax2std" else 0.0

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for embedder metadata."""
        return {"kind": self.kind, "source": self.source, "offset": dict(self.offset),
                "mean": dict(self.mean), "std": dict(self.std),
                **({"scale_max": self.scale_max} if self.kind == "rgb_imagenet" else {})}


_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX = re.compile(r"^[0-9a-f]+$")
_MOVING_REFS = ("main", "master", "latest", "head", "HEAD")


@dataclass(frozen=True)
class WeightSource:
    """One published checkpoint: file name (the look-up key in EOEMBED_WEIGHTS and the hub cache), URL and hashes.

    ``url`` must be pinned to ``revision`` (a 40-hex commit of the hosting repository that appears in the URL;
    branch names such as ``main`` are refused). ``sha256`` is the full SHA-256 of the published file and
    ``sha256_prefix`` torchgeo's/torch.hub's file-name prefix (``name-<hex>.pth``); at least one of them makes
    the file verifiable. Neither known (``None``): eoembed refuses to download it and warns when a local copy is
    loaded (see :mod:`eoembed.models.weights`).
    """

    filename: str
    url: str | None = None
    sha256_prefix: str | None = None  # torch.hub convention: the '-<hex>' suffix of the file name
    revision: str | None = None  # commit of the hosting repository; required with a url
    licence: str = ""
    note: str = ""
    sha256: str | None = None  # full SHA-256 of the published file, when known (cite its source where declared)

    def __post_init__(self) -> None:
        where = f"weight source {self.filename!r}"
        for name in ("sha256", "sha256_prefix"):
            v = getattr(self, name)
            if v is not None and not (_HEX.match(v) and (len(v) == 64 if name == "sha256" else 8 <= len(v) <= 64)):
                raise ValueError(f"{where}: {name}={v!r} is not a lower-case hex SHA-256"
                                 f"{'' if name == 'sha256' else ' prefix (8..64 hex digits)'}")
        if self.sha256 and self.sha256_prefix and not self.sha256.startswith(self.sha256_prefix):
            raise ValueError(f"{where}: sha256 {self.sha256} does not start with sha256_prefix {self.sha256_prefix}")
        m = _NAME_HASH.search(self.filename)
        if m and self.sha256_prefix and m.group(1) != self.sha256_prefix:
            raise ValueError(f"{where}: the file name carries hash prefix {m.group(1)} but sha256_prefix is "
                             f"{self.sha256_prefix}")
        if self.url is None:
            return
        if not self.revision or not _HEX40.match(self.revision):
            raise ValueError(f"{where}: url {self.url} needs revision= the 40-hex commit it is pinned to "
                             f"(got {self.revision!r}); a branch such as 'main' can change under the same URL")
        parts = self.url.split("/")
        if self.revision not in parts:
            raise ValueError(f"{where}: url {self.url} is not pinned to revision {self.revision} (the commit must "
                             "be a path segment of the URL, e.g. .../resolve/<commit>/<file>)")
        moving = [p for p in parts if p in _MOVING_REFS]
        if moving:
            raise ValueError(f"{where}: url {self.url} names the moving ref {moving[0]!r}; pin it to a commit")

    @property
    def expected_sha256(self) -> str | None:
        """The full SHA-256 if known, else the prefix (None: the file cannot be verified)."""
        return self.sha256 or self.sha256_prefix


@dataclass(frozen=True)
class ModelSpec:
    """Everything eoembed needs to know to run one model (one size of one family).

    ``groups`` maps each input group (one backbone pass or one named backbone input) to its band keys in model
    order; ``bands`` is their concatenation. ``embed_dim = width * out_multiplier`` (features per season for
    ``per_season``, in all for ``all_seasons``). ``presets`` map a preset name to field overrides (``options``
    overrides are merged); ``tiny`` holds the overrides of the tiny test configuration.
    """

    name: str
    family: str
    groups: tuple[tuple[str, tuple[str, ...]], ...]
    input_size: int
    resize: str
    normalisation: Normalisation
    temporal: str
    pooling: str
    width: int
    out_multiplier: int
    licence: str
    weight_sources: tuple[WeightSource, ...]
    embedder: Callable[..., "Embedder"]
    options: Mapping[str, Any] = field(default_factory=dict)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tiny: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    bands: tuple[str, ...] = field(init=False)
    embed_dim: int = field(init=False)
    modalities: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"{self.name}: resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.temporal not in TEMPORAL_MODES:
            raise ValueError(f"{self.name}: temporal must be one of {TEMPORAL_MODES}, got {self.temporal!r}")
        bands = tuple(k for _, keys in self.groups for k in keys)
        for k in bands:
            split_key(k)
        object.__setattr__(self, "bands", bands)
        object.__setattr__(self, "embed_dim", int(self.width) * int(self.out_multiplier))
        mods: list[str] = []
        for k in bands:
            m = k.split("/", 1)[0]
            if m not in mods:
                mods.append(m)
        object.__setattr__(self, "modalities", tuple(mods))

    @property
    def group_dict(self) -> dict[str, tuple[str, ...]]:
        return dict(self.groups)

    def replace(self, **overrides: Any) -> "ModelSpec":
        """A copy with fields replaced; ``options`` given here are merged into the current options."""
        if "options" in overrides:
            overrides["options"] = {**self.options, **overrides["options"]}
        fields = {f.name for f in dataclasses.fields(self) if f.init}
        bad = set(overrides) - fields
        if bad:
            raise ValueError(f"{self.name}: unknown spec fields {sorted(bad)}")
        return dataclasses.replace(self, **overrides)

    def resolved(self, preset: str | None = None, size: str = "full") -> "ModelSpec":
        """The spec after applying ``preset`` (None = eoembed defaults) and then the ``size`` overrides."""
        spec = self
        if preset is not None:
            if preset not in self.presets:
                raise KeyError(f"model {self.name!r} has no preset {preset!r}; available: {sorted(self.presets)}")
            spec = spec.replace(**dict(self.presets[preset]))
        if size == "tiny":
            spec = spec.replace(**dict(self.tiny))
        elif size != "full":
            raise ValueError(f"size must be 'full' or 'tiny', got {size!r}")
        return spec

    def summary(self) -> dict[str, Any]:
        """JSON-able description (used in metadata and by the CLI)."""
        return {"name": self.name, "family": self.family, "groups": {g: list(k) for g, k in self.groups},
                "input_size": self.input_size, "resize": self.resize, "temporal": self.temporal,
                "pooling": self.pooling, "embed_dim": self.embed_dim, "licence": self.licence,
                "weights": [s.filename for s in self.weight_sources], "presets": sorted(self.presets)}


def _eoembed_version() -> str:
    import eoembed

    return getattr(eoembed, "__version__", "unknown")


class Embedder(nn.Module):
    """Base class of every eoembed model wrapper (see module docstring). Subclasses implement :meth:`encode`."""

    def __init__(self, spec: ModelSpec, backbone: nn.Module, *, size: str = "full", preset: str | None = None,
                 missing_bands: str = "error") -> None:
        super().__init__()
        if missing_bands not in MISSING_POLICIES:
            raise ValueError(f"missing_bands must be one of {MISSING_POLICIES}, got {missing_bands!r}")
        self.spec = spec
        self.backbone = backbone
        self.size = size
        self.preset = preset
        self.missing_bands = missing_bands
        self.precision = "float32"  # eoembed.runtime precision of forward(); "bf16" = CUDA autocast opt-in
        self.weights_id = "random"
        self.weights_info: dict[str, Any] = {"id": "random", "note": "random initialisation (weights=None)"}
        self.random_init_seed: int | None = None  # set by load_model (the seed the model was built under)
        self._filled: set[str] = set()
        self._resized_from: set[tuple[int, int]] = set()
        self._lock = threading.Lock()
        self.eval()

    # ----------------------------------------------------------------------------------------------- metadata
    @property
    def metadata(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "model": spec.name, "family": spec.family, "weights": self.weights_id,
            "weights_info": dict(self.weights_info), "random_weights": self.weights_id == "random",
            "random_init_seed": self.random_init_seed if self.weights_id == "random" else None,
            "preset": self.preset or "default", "size": self.size,
            "band_mapping": {g: list(k) for g, k in spec.groups}, "input_size": spec.input_size,
            "resize": spec.resize, "normalisation": spec.normalisation.describe(), "temporal": spec.temporal,
            "pooling": spec.pooling, "embed_dim": spec.embed_dim, "licence": spec.licence,
            "precision": self.precision,
            "seasons": list(SEASONS) if spec.temporal == "per_season" else [],
            "missing_bands_policy": self.missing_bands, "filled_bands": sorted(self._filled),
            "resized_from": sorted(list(hw) for hw in self._resized_from),
            "options": {k: v for k, v in spec.options.items() if _jsonable(v)},
            "eoembed_version": _eoembed_version(),
        }

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    # ------------------------------------------------------------------------------------------------ prepare
    def prepare(self, x: np.ndarray, band_keys: list[str], lat: np.ndarray | None = None,
                lon: np.ndarray | None = None, missing_bands: str | None = None) -> dict[str, torch.Tensor]:
        """Select, normalise and resize bands: ``x`` (B, 4, C, H, W) cube units -> dict of CPU tensors.

        Each group becomes ``(B, 4, C_g, S, S)`` float32 (S = ``spec.input_size``); model-specific extras
        (e.g. Copernicus-FM metadata) are added by :meth:`extra_inputs`.
        """
        policy = missing_bands or self.missing_bands
        if policy not in MISSING_POLICIES:
            raise ValueError(f"missing_bands must be one of {MISSING_POLICIES}, got {policy!r}")
        arr = np.asarray(x)
        if arr.ndim != 5 or arr.shape[1] != len(SEASONS):
            raise DataError(f"{self.spec.name}: expected x of shape (B, 4 seasons, C, H, W), got {arr.shape}; "
                            "pass one cube batch with all four seasons")
        band_keys = [str(k) for k in band_keys]
        if arr.shape[2] != len(band_keys):
            raise DataError(f"{self.spec.name}: x has {arr.shape[2]} channels but {len(band_keys)} band_keys were "
                            "given; pass the cube's 'band' coordinate as band_keys")
        if len(set(band_keys)) != len(band_keys):
            raise DataError(f"{self.spec.name}: duplicate band keys in {band_keys}")
        needed = list(self.spec.bands)
        absent = [k for k in needed if k not in band_keys]
        if absent and policy == "error":
            raise DataError(
                f"model {self.spec.name!r} needs bands {absent} that the input does not have (input bands: "
                f"{band_keys}). Add them to the cube, choose another preset/model, or pass "
                "missing_bands='fill-mean' to fill them with the normalisation mean (recorded in metadata).")
        if len(absent) == len(needed):
            raise DataError(f"model {self.spec.name!r} needs bands {needed} and the input has none of them (input "
                            f"bands: {band_keys}); filling every band would give the same embedding for all samples. "
                            "Use data with these bands or another model.")
        B = arr.shape[0]
        index = {k: i for i, k in enumerate(band_keys)}
        out: dict[str, torch.Tensor] = {}
        for gname, keys in self.spec.groups:
            present = [k for k in keys if k in index]
            sel = np.asarray(arr[:, :, [index[k] for k in present]], dtype=np.float32)
            if np.isnan(sel).any():
                bad = [present[i] for i in range(len(present)) if np.isnan(sel[:, :, i]).any()]
                raise DataError(f"{self.spec.name}: NaN values in bands {bad}; fill or drop those samples first "
                                "(eoembed never fills data silently)")
            t = torch.from_numpy(np.ascontiguousarray(sel)).reshape(B * 4, len(present), *arr.shape[-2:])
            t = self.spec.normalisation.apply(t, present) if present else t
            t = self._resize(t)
            if len(present) != len(keys):
                full = torch.full((B * 4, len(keys), *t.shape[-2:]), self.spec.normalisation.fill_value(),
                                  dtype=torch.float32)
                for j, k in enumerate(keys):
                    if k in index:
                        full[:, j] = t[:, present.index(k)]
                t = full
                with self._lock:
                    self._filled.update(k for k in keys if k not in index)
            out[gname] = t.reshape(B, 4, len(keys), *t.shape[-2:]).contiguous()
        out.update(self.extra_inputs(B, arr.shape[-2:], lat, lon))
        return out

    def _resize(self, t: torch.Tensor) -> torch.Tensor:
        S = self.spec.input_size
        H, W = t.shape[-2:]
        if (H, W) == (S, S):
            return t
        if self.spec.resize == "bilinear":
            if t.shape[1] == 0:  # a wholly absent group (filled by prepare); F.interpolate rejects 0 channels
                return t.new_empty(t.shape[0], 0, S, S)
            return F.interpolate(t, size=(S, S), mode="bilinear", align_corners=False, antialias=True)
        if self.spec.resize == "crop":
            if H < S or W < S:
                raise DataError(f"{self.spec.name}: centre-crop to {S} px needs images of at least {S} px, "
                                f"got {H}x{W}; use a bilinear-resize preset or larger images")
            top, left = (H - S) // 2, (W - S) // 2
            return t[..., top:top + S, left:left + S]
        # "native": the model was trained at S px; other sizes are resized (bilinear) to S and recorded in metadata.
        with self._lock:
            if (H, W) not in self._resized_from:
                warnings.warn(f"{self.spec.name}: input {H}x{W} px resized (bilinear) to the model's native {S} px; "
                              "recorded in metadata['resized_from']", stacklevel=3)
                self._resized_from.add((H, W))
        if t.shape[1] == 0:
            return t.new_empty(t.shape[0], 0, S, S)
        return F.interpolate(t, size=(S, S), mode="bilinear", align_corners=False, antialias=True)

    def extra_inputs(self, batch: int, hw: tuple[int, int], lat: np.ndarray | None,
                     lon: np.ndarray | None) -> dict[str, torch.Tensor]:
        """Model-specific non-image inputs (default: none)."""
        return {}

    # ------------------------------------------------------------------------------------------------ forward
    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        """Run the backbone: per_season gets (N=B*4, C, S, S) groups -> (N, D); all_seasons (B, 4, C, S, S) -> (B, D)."""
        raise TypeError(f"{type(self).__name__} must implement encode()")

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        names = [g for g, _ in self.spec.groups]
        missing = [g for g in names if g not in inputs]
        if missing:
            raise DataError(f"{self.spec.name}: forward() is missing inputs {missing}; pass the dict from prepare()")
        dev = self.device
        moved = {k: v.to(dev, non_blocking=True) for k, v in inputs.items()}
        B = moved[names[0]].shape[0]
        if self.spec.temporal == "per_season":
            flat = {k: v.reshape(B * v.shape[1], *v.shape[2:]) if v.dim() >= 2 and v.shape[:1] == (B,) and
                    v.shape[1] == len(SEASONS) else v for k, v in moved.items()}
        else:
            flat = moved
        with torch.no_grad(), runtime.compute(self.precision, dev):
            out = self.encode(flat)
        out = out.float()
        if self.spec.temporal == "per_season":
            out = out.reshape(B, len(SEASONS), -1)
        if out.shape[-1] != self.spec.embed_dim:
            raise RuntimeError(f"{self.spec.name}: produced {out.shape[-1]} features, spec says {self.spec.embed_dim}")
        return out

    def embed(self, x: np.ndarray, band_keys: list[str], lat: np.ndarray | None = None,
              lon: np.ndarray | None = None) -> np.ndarray:
        """Convenience: ``forward(**prepare(...))`` as a float32 numpy array."""
        return self.forward(**self.prepare(x, band_keys, lat, lon)).cpu().numpy()


def _jsonable(v: Any) -> bool:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return True
    if isinstance(v, (list, tuple)):
        return all(_jsonable(i) for i in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _jsonable(i) for k, i in v.items())
    return False
