"""Fusion of per-model embeddings and their compression (Embed2Scale winning recipe), ablations and baselines."""
import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
