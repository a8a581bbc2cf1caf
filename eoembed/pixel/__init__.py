"""Pixel-wise temporal encoder (TESSERA-style): d-pixel observation series, encoder, Barlow Twins pretraining,
bucket inference. See ``docs`` in each module and ``notebooks/07_pixel_encoder_and_scaling.ipynb``."""
import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
