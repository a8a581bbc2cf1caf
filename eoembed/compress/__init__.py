"""Fusion of per-model embeddings and their compression (Embed2Scale winning recipe), ablations and baselines."""
from eoembed.compress.ablate import AblationResult, ablate, default_combos
from eoembed.compress.baselines import pca_baseline, rcf_baseline
from eoembed.compress.fusion import fuse, fused_slices, load_store, model_family, select_models
from eoembed.compress.model import PRESETS, Compressor, CompressorConfig, resolve_config, resolve_weights
from eoembed.compress.train import (IN_LOOP_Q_FOLDS, TrainResult, encode, export_embeddings, load_checkpoint,
                                    select_checkpoint, train_compressor)

__all__ = ["AblationResult", "Compressor", "CompressorConfig", "IN_LOOP_Q_FOLDS", "PRESETS", "TrainResult",
           "ablate", "default_combos", "encode", "export_embeddings", "fuse", "fused_slices", "load_checkpoint",
           "load_store", "model_family", "pca_baseline", "rcf_baseline", "resolve_config", "resolve_weights",
           "select_checkpoint", "select_models", "train_compressor"]
