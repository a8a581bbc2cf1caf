# Lazy exports (SPEC 1): lazy_loader.attach_stub reads this file; IDEs and type checkers read it too.
from .core import (
    build_model as build_model,
    extract as extract,
    ExtractResult as ExtractResult,
    open_data as open_data,
)
from .store import (
    failed_ids as failed_ids,
    open_embeddings as open_embeddings,
)
