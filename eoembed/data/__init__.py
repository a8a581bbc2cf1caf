"""Data layer: the cube form, SSL4EO-S12-downstream files, labels, the synthetic sample and real-data adapters."""
from eoembed.data.bands import (BANDS, MODALITIES, SEASONS, all_band_keys, band_key,  # noqa: F401
                                split_key)
from eoembed.data.cube import make_cube, select_bands, validate_cube  # noqa: F401
from eoembed.data.labels import read_labels, write_labels  # noqa: F401
from eoembed.data.pixels import cube_to_pixels, make_pixels, validate_pixels  # noqa: F401
from eoembed.data.ssl4eo import (open_cube, read_sample_file, write_sample_file,  # noqa: F401
                                 write_ssl4eo)
from eoembed.data.synthetic import TASK_TYPES, sample  # noqa: F401
from eoembed.data.validation import validate  # noqa: F401
from eoembed.data.worldcereal import worldcereal_cube, worldcereal_pixels  # noqa: F401

__all__ = [
    "BANDS", "MODALITIES", "SEASONS", "TASK_TYPES", "all_band_keys", "band_key", "split_key",
    "make_cube", "validate_cube", "select_bands", "open_cube", "write_ssl4eo", "read_sample_file",
    "write_sample_file", "read_labels", "write_labels", "sample", "validate", "make_pixels", "validate_pixels",
    "cube_to_pixels", "worldcereal_cube", "worldcereal_pixels",
]
