"""``quantize``: an embedding store or NeuCo CSV -> an int8 embedding product (the ``eoembed quantize`` command)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eoembed.errors import DataError

__all__ = ["quantize"]


def _check_args(store_or_csv: Any, out: Any, prefix: Any, nodata: str, overwrite: bool) -> Path:
    from eoembed.checks import check_choice, check_in_path, check_int, check_out_path
    src = check_in_path(store_or_csv, option="STORE_OR_CSV")
    check_out_path(out, option="out", exist_ok=overwrite)
    if Path(out).absolute() == src.absolute():
        raise DataError(f"out={str(out)!r} is the input itself; choose a new path for the product.")
    check_int("prefix", prefix, 1, allow_none=True)
    check_choice("nodata", nodata, ("error", "mask"))
    return src


def _from_store(src: Path, model: str | None) -> tuple[Any, str]:
    """(sample, feature) DataArray of one model of an embedding store (seasons flattened into features)."""
    import xarray as xr
    from eoembed.compress.fusion import fuse, load_store
    data = load_store(src)
    if model == "fused":
        return fuse(data), "fused"
    if model is None:
        if len(data) != 1:
            raise DataError(f"store {str(src)!r} holds {len(data)} models {sorted(data)}; choose one with model= "
                            "(or model='fused' for all of them concatenated).")
        model = next(iter(data))
    if model not in data:
        raise DataError(f"model={model!r} is not in store {str(src)!r}; it holds {sorted(data)} (or use "
                        "model='fused').")
    da = data[model]
    if da.dims == ("sample", "season", "feature"):
        seasons = [str(s) for s in da["season"].values] if "season" in da.coords else list(range(da.sizes["season"]))
        keep = {c: da[c] for c in ("lat", "lon") if c in da.coords and da[c].dims == ("sample",)}
        flat = da.data.reshape(da.sizes["sample"], -1)
        da = xr.DataArray(flat, dims=("sample", "feature"), coords={"sample": da["sample"].values, **keep},
                          attrs={"flattened": f"season-major: feature = season_index * {da.sizes['feature']} + "
                                              f"feature; seasons {seasons}"})
    return da, model


def quantize(store_or_csv: Any, out: Any, model: str | None = None, prefix: int | None = None,
             nodata: str = "error", standardize: bool = False, overwrite: bool = False) -> Any:
    """Write the embeddings of an embedding store (emb.zarr; one ``model``, or "fused") or a NeuCo CSV
    (id,0..D-1) as an int8 product at ``out`` (:func:`write_product`, samples with their lat/lon when the store
    has them); return the opened :class:`Product`.

    prefix: keep only the first ``prefix`` dimensions (quantised with the scale of those dimensions). A
    multi-season model is flattened season-major (one vector, one scale per sample; described in attrs).
    standardize: quantise per-feature standardised vectors (see :func:`write_product`).
    """
    import xarray as xr
    from eoembed.product.store import write_product

    src = _check_args(store_or_csv, out, prefix, nodata, overwrite)
    if src.is_dir():
        da, name = _from_store(src, model)
    else:
        from eoembed.bench.io import read_embeddings
        X, ids, _ = read_embeddings(src)
        da = xr.DataArray(X.astype(np.float32), dims=("sample", "feature"), coords={"sample": ids})
        name = model
    if prefix is not None:
        if prefix > da.sizes["feature"]:
            raise DataError(f"prefix={prefix} is larger than the embedding dimension {da.sizes['feature']} of "
                            f"{str(src)!r}; use prefix <= {da.sizes['feature']}.")
        da = da.isel(feature=slice(0, prefix))
    return write_product(da, out, model=name, source=str(src), nodata=nodata, standardize=standardize,
                         overwrite=overwrite)
