"""Fusion of per-model embeddings and their compression (Embed2Scale winning recipe), ablations and baselines."""

from eoembed._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    'AblationResult': 'ablation',
    'ablate': 'ablation',
    'default_combos': 'ablation',
    'pca_baseline': 'baselines',
    'rcf_baseline': 'baselines',
    'select_dim': 'baselines',
    'fuse': 'fusion',
    'fused_slices': 'fusion',
    'load_store': 'fusion',
    'model_family': 'fusion',
    'select_models': 'fusion',
    'PRESETS': 'model',
    'Compressor': 'model',
    'CompressorConfig': 'model',
    'resolve_config': 'model',
    'resolve_weights': 'model',
    'SelectionSplit': 'selection',
    'score_split': 'selection',
    'split_labels': 'selection',
    'IN_LOOP_Q_FOLDS': 'train',
    'TrainResult': 'train',
    'encode': 'train',
    'export_embeddings': 'train',
    'load_checkpoint': 'train',
    'select_checkpoint': 'train',
    'train_compressor': 'train',
})

__all__ = ["AblationResult", "Compressor", "CompressorConfig", "IN_LOOP_Q_FOLDS", "PRESETS", "TrainResult",
           "ablate", "default_combos", "encode", "export_embeddings", "fuse", "fused_slices", "load_checkpoint",
           "load_store", "model_family", "pca_baseline", "rcf_baseline", "resolve_config", "resolve_weights",
           "score_split", "select_checkpoint", "select_dim", "select_models", "SelectionSplit", "split_labels", "train_compressor"]
