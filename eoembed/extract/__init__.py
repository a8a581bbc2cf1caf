"""Embedding extraction: cube -> Zarr embedding store (one group per model), batched, streaming, resumable.

>>> from eoembed.extract import extract, open_embeddings
>>> extract("sample_root", models=["croma_base", "presto"], out="emb.zarr", size="tiny")  # doctest: +SKIP
>>> open_embeddings("emb.zarr")["presto"]  # doctest: +SKIP
"""
import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
