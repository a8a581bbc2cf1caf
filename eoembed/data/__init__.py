"""Data layer: the cube form, SSL4EO-S12-downstream files, labels, the synthetic sample and real-data adapters."""
import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
