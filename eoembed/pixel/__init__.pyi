# Lazy exports (SPEC 1): lazy_loader.attach_stub reads this file; IDEs and type checkers read it too.
from .data import (
    as_series as as_series,
    from_dpixels as from_dpixels,
    has_observations as has_observations,
    iter_chunks as iter_chunks,
    make_series as make_series,
    open_series as open_series,
    S1_BANDS as S1_BANDS,
    S2_BANDS as S2_BANDS,
    sample_series as sample_series,
    save_series as save_series,
    validate_series as validate_series,
    worldcereal_cube_series as worldcereal_cube_series,
    worldcereal_pixel_series as worldcereal_pixel_series,
)
from .buckets import (
    BUCKETS as BUCKETS,
    bucket_length as bucket_length,
    encode as encode,
    midpoint_indices as midpoint_indices,
    pack as pack,
    to_grid as to_grid,
    write_grid_product as write_grid_product,
)
from .encoder import (
    EncoderConfig as EncoderConfig,
    PixelEncoder as PixelEncoder,
    projector as projector,
    resolve_config as resolve_config,
    SIZES as SIZES,
    sizes as sizes,
)
from .training import (
    band_stats as band_stats,
    barlow_twins_loss as barlow_twins_loss,
    BarlowTwins as BarlowTwins,
    cross_correlation as cross_correlation,
    draw_view as draw_view,
    load_encoder as load_encoder,
    mixup_loss as mixup_loss,
    pretrain as pretrain,
    PretrainResult as PretrainResult,
)
from .score import (
    linear_probe_score as linear_probe_score,
    pretrain_and_score as pretrain_and_score,
)
