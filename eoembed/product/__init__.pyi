# Lazy exports (SPEC 1): lazy_loader.attach_stub reads this file; IDEs and type checkers read it too.
from .geotiff import (
    export_geotiff as export_geotiff,
    scales_path as scales_path,
)
from .int8 import (
    dequantize_int8 as dequantize_int8,
    quantize_int8 as quantize_int8,
)
from .store import (
    open_product as open_product,
    Product as Product,
    write_product as write_product,
)
from .convert import (
    quantize as quantize,
)
from .worldcereal import (
    pixel_product as pixel_product,
    pixel_series as pixel_series,
    train_pixel_classifier as train_pixel_classifier,
    worldcereal_embeddings as worldcereal_embeddings,
    worldcereal_product as worldcereal_product,
    worldcereal_series as worldcereal_series,
)
