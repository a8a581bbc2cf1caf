"""The model registry: ``register``, ``get_model``, ``list_models``, ``load_model``.

How to add a model
------------------
1. Write ``eoembed/models/<name>.py`` with a module docstring (inputs, normalisation, embedding, presets,
   differences from published code) that

   * subclasses :class:`eoembed.models.base.Embedder` and implements ``encode`` (and ``extra_inputs`` if the
     model needs non-image inputs);
   * builds its backbone in the subclass ``__init__(spec, size, preset, missing_bands)`` (the subclass itself is
     ``ModelSpec.embedder``) and, when the published checkpoint format differs from the module's ``state_dict``,
     returns explicit :class:`eoembed.models.weights.LoadRules` from a ``load_rules()`` method;
   * calls ``register(ModelSpec(...))`` at import time for each size (see croma.py for a small example).
2. Add the module path to ``MODEL_MODULES`` in ``eoembed/models/__init__.py``. Nothing else changes: the
   registry, ``load_model``, the CLI (``eoembed models``) and the extraction code pick it up.
3. Add ``tests/test_models_<name>.py`` using the tiny configuration (``load_model(name, weights=None, size="tiny")``).
"""
from __future__ import annotations

import importlib
import os
import threading
import warnings
import zlib
from typing import Any

import pandas as pd
import torch

from eoembed import runtime
from eoembed.errors import WeightsNotFound

from .base import Embedder, ModelSpec
from .weights import LoadRules, find_local, read_checkpoint, resolve, strict_load

_REGISTRY: dict[str, ModelSpec] = {}
_LOADED = False
_LOCK = threading.RLock()


def register(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add a model to the registry (called by each model module at import). Duplicate names raise ValueError."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"register() takes a ModelSpec, got {type(spec).__name__}")
    with _LOCK:
        if spec.name in _REGISTRY and not replace and _REGISTRY[spec.name] is not spec:
            raise ValueError(f"model {spec.name!r} is already registered; pass replace=True to override it")
        _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    with _LOCK:
        if _LOADED:
            return
        from . import MODEL_MODULES

        for mod in MODEL_MODULES:
            try:
                with runtime.preserve_global_state():  # a model module's imports must not change torch's numerics
                    importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name != mod:
                    raise
                warnings.warn(f"model module {mod} is listed in eoembed.models.MODEL_MODULES but does not exist; "
                              "its models are not available", RuntimeWarning, stacklevel=3)
        _LOADED = True


def get_model(name: str) -> ModelSpec:
    """The registered :class:`ModelSpec` called ``name`` (KeyError listing the known names otherwise)."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {sorted(_REGISTRY)} "
                       "(see `eoembed models`)") from None


def model_names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def weights_found_locally(spec: ModelSpec) -> str | None:
    """Path of a local checkpoint for ``spec`` (EOEMBED_WEIGHTS or hub cache), or None. Never downloads."""
    if not spec.weight_sources:
        return None
    p = find_local([s.filename for s in spec.weight_sources])
    return str(p) if p else None


def list_models() -> pd.DataFrame:
    """One row per registered model: name, family, modalities, bands, input_size, resize, dims, temporal,
    pooling, licence, presets, weights_file, weights_found_locally."""
    _ensure_loaded()
    rows = []
    for name in sorted(_REGISTRY):
        s = _REGISTRY[name]
        local = weights_found_locally(s)
        rows.append({
            "name": s.name, "family": s.family, "modalities": ",".join(s.modalities), "bands": len(s.bands),
            "input_size": s.input_size, "resize": s.resize, "dims": s.embed_dim, "temporal": s.temporal,
            "pooling": s.pooling, "licence": s.licence, "presets": ",".join(sorted(s.presets)) or "-",
            "weights_file": ",".join(w.filename for w in s.weight_sources) or "-",
            "weights_found_locally": local is not None,
        })
    cols = ["name", "family", "modalities", "bands", "input_size", "resize", "dims", "temporal", "pooling",
            "licence", "presets", "weights_file", "weights_found_locally"]
    return pd.DataFrame(rows, columns=cols)


def random_init_seed(name: str, size: str = "full", preset: str | None = None) -> int:
    """Default seed of ``load_model``'s initialisation: CRC-32 of (name, size, preset), the same in every process."""
    return zlib.crc32(f"eoembed-random-init/{name}/{size}/{preset or 'default'}".encode())


def load_model(name: str, weights: str | os.PathLike | None = "auto", size: str = "full",
               preset: str | None = None, device: str | Any = "cpu", missing_bands: str = "error",
               download: bool = True, seed: int | None = None, precision: str = "float32") -> Embedder:
    """Build model ``name`` and load its weights.

    weights: ``"auto"`` (explicit search order in :mod:`eoembed.models.weights`; WeightsNotFound if none, never a
    silent random model), a file path, or ``None`` / ``"random"`` (random init, ``weights_id == "random"``).
    Every file is SHA-256 checked against the published hash before it is read (pinned downloads, local copies;
    see :mod:`eoembed.models.weights` for the rules and for explicit paths to other checkpoints);
    ``metadata["weights_info"]`` records the hash and whether it was verified.
    size: ``"full"`` or ``"tiny"`` (same classes, 1-2 layers, width 64: tests and CPU demos; has no published
    weights). preset: None (eoembed defaults) or a preset name such as ``"embed2scale"``.
    missing_bands: ``"error"`` or ``"fill-mean"`` (absent bands set to the normalisation mean; recorded).
    seed: seed of the initialisation (None: ``random_init_seed(name, size, preset)``), so a random model is the
    same in every process (resumed runs, Dask workers); recorded as ``metadata["random_init_seed"]``. The model
    is built under ``torch.random.fork_rng``: the global RNG state is left unchanged, and so is torch's global
    numeric state (:func:`eoembed.runtime.preserve_global_state`). precision: what ``forward`` computes at,
    "float32" (default) or "bf16" (CUDA opt-in); recorded as ``metadata["precision"]``.
    """
    runtime.check_precision(precision, device)
    if seed is None:
        seed = random_init_seed(name, size, preset)
    elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    base = get_model(name)
    spec = base.resolved(preset, size)
    if size == "tiny":
        spec = spec.replace(weight_sources=())
    if isinstance(weights, str) and weights == "random":
        weights = None
    found = None
    if weights is not None:  # resolve + hash-check before building: fail fast, never build a big model for nothing
        found = resolve(spec.name, list(spec.weight_sources), weights, download=download)
    with torch.random.fork_rng(devices=[]), runtime.preserve_global_state():
        torch.manual_seed(seed)
        emb: Embedder = spec.embedder(spec, size=size, preset=preset, missing_bands=missing_bands)
    emb.random_init_seed = seed
    emb.precision = precision
    if found is not None:
        sd = read_checkpoint(found.path)
        rules: LoadRules = getattr(emb, "load_rules", LoadRules)()
        report = strict_load(emb.backbone, sd, rules, path=str(found.path), sha256=found.sha256, model=spec.name)
        emb.weights_id = f"{found.path.name}@sha256:{found.sha256[:12]}"
        emb.weights_info = {"id": emb.weights_id, **report.as_dict(), **found.info(),
                            "sources": [{"file": s.filename, "url": s.url, "revision": s.revision,
                                         "sha256": s.sha256, "sha256_prefix": s.sha256_prefix}
                                        for s in spec.weight_sources]}
    emb.eval()
    return emb.to(device)


__all__ = ["register", "get_model", "list_models", "load_model", "model_names", "random_init_seed",
           "weights_found_locally", "WeightsNotFound"]
