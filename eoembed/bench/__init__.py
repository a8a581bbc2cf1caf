"""NeuCo-Bench-compatible evaluation of embeddings (batched linear probes), plus a tuned "ridge" mode
(not NeuCo-Bench) and TESSERA-suite chance-adjusted metrics."""
from eoembed.bench.core import EvalResult, evaluate, label_fraction_curve, write_result
from eoembed.bench.metrics import compare, leaderboard, q_score, tessera_score, z_scores

__all__ = ["evaluate", "EvalResult", "compare", "q_score", "z_scores", "leaderboard", "label_fraction_curve",
           "tessera_score", "write_result"]
