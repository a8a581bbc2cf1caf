"""Embedding extraction: cube -> Zarr embedding store (one group per model), batched, streaming, resumable.

>>> from eoembed.extract import extract, open_embeddings
>>> extract("sample_root", models=["croma_base", "presto"], out="emb.zarr", size="tiny")  # doctest: +SKIP
>>> open_embeddings("emb.zarr")["presto"]  # doctest: +SKIP
"""
from eoembed.extract.core import ExtractResult, build_model, extract, open_data
from eoembed.extract.store import failed_ids, open_embeddings

__all__ = ["ExtractResult", "build_model", "extract", "failed_ids", "open_data", "open_embeddings"]
