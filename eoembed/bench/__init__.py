"""NeuCo-Bench-compatible evaluation of embeddings (batched linear probes), plus a tuned "ridge" mode
(not NeuCo-Bench) and TESSERA-suite chance-adjusted metrics."""
import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
