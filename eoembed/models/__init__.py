"""eoembed model zoo: one registry, one small module per model.

>>> from eoembed.models import list_models, load_model
>>> emb = load_model("croma_base", weights=None, size="tiny")   # random tiny model for demos/tests
>>> feats = emb(**emb.prepare(x, band_keys))                      # (B, 4, D) per season

See :mod:`eoembed.models.registry` for how to add a model.
"""
from __future__ import annotations

from eoembed.errors import WeightsMismatchError, WeightsNotFound

#: Every model module; each registers its models when imported (lazily, on first registry use).
MODEL_MODULES: tuple[str, ...] = (
    "eoembed.models.croma",
    "eoembed.models.dofa",
    "eoembed.models.scalemae",
    "eoembed.models.copernicusfm",
    "eoembed.models.prithvi",
    "eoembed.models.presto",
)

from eoembed._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["Embedder", "ModelSpec", "Normalisation", "WeightSource"], "base"),
    **dict.fromkeys(["get_model", "list_models", "load_model", "model_names", "register",
                     "weights_found_locally"], "registry"),
    "LoadRules": "weights",
    "presto_embed_pixels": "presto",
})

__all__ = ["Embedder", "ModelSpec", "Normalisation", "WeightSource", "LoadRules", "get_model", "list_models",
           "load_model", "model_names", "register", "weights_found_locally", "presto_embed_pixels",
           "WeightsMismatchError",
           "WeightsNotFound", "MODEL_MODULES"]
