"""NeuCo-Bench-compatible evaluation of embeddings (batched linear probes), plus a tuned "ridge" mode
(not NeuCo-Bench) and TESSERA-suite chance-adjusted metrics."""

from eoembed._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    'EvalResult': 'core',
    'evaluate': 'core',
    'label_fraction_curve': 'core',
    'write_result': 'core',
    'compare': 'metrics',
    'leaderboard': 'metrics',
    'q_score': 'metrics',
    'tessera_score': 'metrics',
    'z_scores': 'metrics',
    'NullControl': 'nulls',
    'null_control': 'nulls',
    'permute_labels': 'nulls',
})

__all__ = ["evaluate", "EvalResult", "compare", "q_score", "z_scores", "leaderboard", "label_fraction_curve",
           "tessera_score", "write_result", "null_control", "NullControl", "permute_labels"]
