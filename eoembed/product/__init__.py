"""Embeddings as data: int8 quantisation (one scale per vector), the Zarr embedding product, GeoTIFF export."""
import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
