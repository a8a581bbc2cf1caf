# Lazy exports (SPEC 1): lazy_loader.attach_stub reads this file; IDEs and type checkers read it too.
MODEL_MODULES: tuple[str, ...]
from .base import (
    Embedder as Embedder,
    ModelSpec as ModelSpec,
    Normalisation as Normalisation,
    WeightSource as WeightSource,
)
from .presto import (
    presto_embed_pixels as presto_embed_pixels,
)
from .registry import (
    get_model as get_model,
    list_models as list_models,
    load_model as load_model,
    model_names as model_names,
    register as register,
    weights_found_locally as weights_found_locally,
)
from .weights import (
    LoadRules as LoadRules,
    WeightsMismatchError as WeightsMismatchError,
    WeightsNotFound as WeightsNotFound,
)
