# Lazy exports (SPEC 1): lazy_loader.attach_stub reads this file; IDEs and type checkers read it too.
from .bands import (
    BANDS as BANDS,
    MODALITIES as MODALITIES,
    SEASONS as SEASONS,
    all_band_keys as all_band_keys,
    band_key as band_key,
    split_key as split_key,
)
from .cube import (
    make_cube as make_cube,
    select_bands as select_bands,
    validate_cube as validate_cube,
)
from .labels import (
    read_labels as read_labels,
    write_labels as write_labels,
)
from .pixels import (
    cube_to_pixels as cube_to_pixels,
    make_pixels as make_pixels,
    validate_pixels as validate_pixels,
)
from .ssl4eo import (
    open_cube as open_cube,
    read_sample_file as read_sample_file,
    write_sample_file as write_sample_file,
    write_ssl4eo as write_ssl4eo,
)
from .synthetic import (
    TASK_TYPES as TASK_TYPES,
    sample as sample,
)
from .validation import (
    validate as validate,
)
from .worldcereal import (
    worldcereal_cube as worldcereal_cube,
    worldcereal_pixels as worldcereal_pixels,
)
