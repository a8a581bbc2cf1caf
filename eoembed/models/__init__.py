"""eoembed model zoo: one registry, one small module per model.

>>> from eoembed.models import list_models, load_model
>>> emb = load_model("croma_base", weights=None, size="tiny")   # random tiny model for demos/tests
>>> feats = emb(**emb.prepare(x, band_keys))                      # (B, 4, D) per season

See :mod:`eoembed.models.registry` for how to add a model.
"""
from __future__ import annotations

from eoembed.errors import WeightsMismatchError, WeightsNotFound  # noqa: F401  (re-exported, see the stub)

#: Every model module; each registers its models when imported (lazily, on first registry use).
MODEL_MODULES: tuple[str, ...] = (
    "eoembed.models.croma",
    "eoembed.models.dofa",
    "eoembed.models.scalemae",
    "eoembed.models.copernicusfm",
    "eoembed.models.prithvi",
    "eoembed.models.presto",
)

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
__all__ = [*__all__, "MODEL_MODULES"]
