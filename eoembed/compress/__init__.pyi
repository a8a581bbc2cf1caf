# Lazy exports (SPEC 1): lazy_loader.attach_stub reads this file; IDEs and type checkers read it too.
from .ablation import (
    ablate as ablate,
    AblationResult as AblationResult,
    default_combos as default_combos,
)
from .baselines import (
    pca_baseline as pca_baseline,
    rcf_baseline as rcf_baseline,
    select_dim as select_dim,
)
from .fusion import (
    fuse as fuse,
    fused_slices as fused_slices,
    load_store as load_store,
    model_family as model_family,
    select_models as select_models,
)
from .matryoshka import (
    distill as distill,
    distill_unordered as distill_unordered,
    DistillResult as DistillResult,
    load_student as load_student,
    load_teacher as load_teacher,
    prefix_scores as prefix_scores,
    storage_bytes as storage_bytes,
    Student as Student,
)
from .model import (
    check_prefixes as check_prefixes,
    Compressor as Compressor,
    CompressorConfig as CompressorConfig,
    matryoshka_loss as matryoshka_loss,
    prefix_masks as prefix_masks,
    PRESETS as PRESETS,
    resolve_config as resolve_config,
    resolve_weights as resolve_weights,
)
from .selection import (
    score_split as score_split,
    SelectionSplit as SelectionSplit,
    split_labels as split_labels,
)
from .train import (
    encode as encode,
    export_embeddings as export_embeddings,
    IN_LOOP_Q_FOLDS as IN_LOOP_Q_FOLDS,
    load_checkpoint as load_checkpoint,
    select_checkpoint as select_checkpoint,
    train_compressor as train_compressor,
    TrainResult as TrainResult,
)
