"""Embedding extraction: cube -> Zarr embedding store (one group per model), batched, streaming, resumable.

>>> from eoembed.extract import extract, open_embeddings
>>> extract("sample_root", models=["croma_base", "presto"], out="emb.zarr", size="tiny")  # doctest: +SKIP
>>> open_embeddings("emb.zarr")["presto"]  # doctest: +SKIP
"""

from eoembed._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    'ExtractResult': 'core',
    'build_model': 'core',
    'extract': 'core',
    'open_data': 'core',
    'failed_ids': 'store',
    'open_embeddings': 'store',
})

__all__ = ["ExtractResult", "build_model", "extract", "failed_ids", "open_data", "open_embeddings"]
