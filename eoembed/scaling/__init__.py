"""Scaling-law toolkit for pixel-encoder pretraining: compute, sweeps (local or Dask), iso-FLOP fits, plots."""
import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
