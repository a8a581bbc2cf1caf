"""Fusion: concatenate per-model embeddings of an Embedding store into one vector per sample.

Order of the fused vector
    Models are concatenated in sorted name order (``models=None``) or in the order given. Inside one model the
    (season, feature) block is flattened season-major: position ``season_index * n_features + feature``. A model
    without a season axis contributes its features as they are. The per-model slices are kept in
    ``fused.attrs["slices"]`` ({model: [start, stop]}) and as the ``model`` coordinate of the ``feature`` axis.

No normalisation happens here: the compressor's first layer is one LayerNorm over the whole fused vector, and
its reconstruction target is this raw vector.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from eoembed.errors import DataFileNotFound, StoreError

__all__ = ["load_store", "fuse", "fused_slices", "select_models", "model_family"]

_FAMILIES = ("copernicus", "dofa", "croma", "prithvi", "scalemae", "scale_mae", "presto", "panopticon",
             "terramind", "olmoearth")


def model_family(name: str) -> str:
    """Family of a model name by prefix ("croma_large" -> "croma"); the name itself when no family matches."""
    low = name.lower().replace("-", "_")
    for fam in _FAMILIES:
        if low.startswith(fam):
            return "scalemae" if fam == "scale_mae" else fam
    return low


def _open_path(path: Path) -> dict[str, xr.DataArray]:
    if not path.exists():
        raise DataFileNotFound(f"embedding store {str(path)!r} does not exist; run `eoembed extract` first "
                               "or pass the path of an existing emb.zarr directory")
    import zarr

    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as err:  # noqa: BLE001 - any reader failure means "not a store"
        raise StoreError(f"{str(path)!r} is not a Zarr embedding store ({err}); pass an emb.zarr directory "
                         "written by eoembed extract") from err
    if "eoembed_extract" in root.attrs:  # written by eoembed.extract: its reader checks completeness
        try:
            from eoembed.extract import open_embeddings  # type: ignore[attr-defined]
        except ImportError:
            open_embeddings = None
        if open_embeddings is not None:
            return dict(open_embeddings(path))
    names = root.attrs.get("models") or sorted(k for k, _ in root.groups())
    if not names:
        raise StoreError(f"embedding store {str(path)!r} has no model groups; extract embeddings into it first")
    out = {}
    for name in names:
        ds = xr.open_zarr(str(path), group=name, consolidated=False)
        if "embedding" not in ds:
            raise StoreError(f"group {name!r} of store {str(path)!r} has no 'embedding' variable; "
                             "re-run the extraction of that model")
        out[name] = ds["embedding"]
    return out


def load_store(store: Any) -> dict[str, xr.DataArray]:
    """Return {model: embedding DataArray} from a store path, a dict of DataArrays/Datasets or an xr.DataTree."""
    if isinstance(store, (str, os.PathLike)):
        return _open_path(Path(store))
    if isinstance(store, xr.DataArray):
        raise StoreError("got a single DataArray where a store was expected; pass {model_name: DataArray} "
                         "or the path of an emb.zarr store")
    if hasattr(store, "children") and hasattr(store, "to_dataset"):  # xr.DataTree
        store = {k: v.to_dataset() for k, v in store.children.items()}
    if not isinstance(store, Mapping) or not store:
        raise StoreError(f"cannot read an embedding store from {type(store).__name__}; pass the path of an "
                         "emb.zarr store or a non-empty {model_name: DataArray} dict")
    out = {}
    for name, val in store.items():
        if isinstance(val, xr.Dataset):
            if "embedding" not in val:
                raise StoreError(f"model {name!r}: Dataset has no 'embedding' variable")
            val = val["embedding"]
        if not isinstance(val, xr.DataArray):
            raise StoreError(f"model {name!r}: expected an xr.DataArray, got {type(val).__name__}")
        out[str(name)] = val
    return out


def _fmt_ids(ids: Sequence[Any], limit: int = 5) -> str:
    ids = [str(i) for i in ids]
    more = f" ... and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def _flatten(name: str, da: xr.DataArray) -> tuple[np.ndarray, list[int]]:
    dims = tuple(da.dims)
    if dims == ("sample", "season", "feature"):
        arr = np.asarray(da.values, dtype=np.float32)
        shape = [int(arr.shape[1]), int(arr.shape[2])]
        return arr.reshape(arr.shape[0], -1), shape
    if dims == ("sample", "feature"):
        arr = np.asarray(da.values, dtype=np.float32)
        return arr, [int(arr.shape[1])]
    raise StoreError(f"model {name!r}: embedding dims are {dims}; expected ('sample', 'season', 'feature') "
                     "or ('sample', 'feature') - re-extract it with eoembed.extract")


def fuse(store: Any, models: Sequence[str] | None = None) -> xr.DataArray:
    """Concatenate the models of an embedding store into one (sample, feature) float32 DataArray.

    ``models=None`` takes every model in sorted name order; otherwise the order given. Samples follow the order
    of the first model; other models are aligned to it by id. Raises StoreError (naming the model and ids) when
    the models do not cover the same ids, an id repeats, a model is missing (all-NaN row) for some samples, or
    an embedding holds NaN values. attrs: "models", "slices" {model: [start, stop]}, "shapes" {model: [seasons,
    features] or [features]}, "order" ("sorted" | "given").
    """
    data = load_store(store)
    order, how = _model_order(data, models)
    ref_ids = [str(s) for s in data[order[0]]["sample"].values]
    blocks, slices, shapes, start = [], {}, {}, 0
    for name in order:
        arr, shape = _flatten(name, _aligned(name, data[name], order[0], ref_ids))
        _check_finite(name, arr, ref_ids)
        blocks.append(arr)
        slices[name] = [start, start + arr.shape[1]]
        shapes[name] = shape
        start += arr.shape[1]
    fused = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    ref = data[order[0]]
    coords: dict[str, Any] = {"sample": np.asarray(ref_ids, dtype=object),
                              "feature": np.arange(fused.shape[1]),
                              "model": ("feature", np.repeat(np.asarray(order, dtype=object),
                                                             [slices[m][1] - slices[m][0] for m in order]))}
    for c in ("lat", "lon"):
        if c in ref.coords:
            coords[c] = ("sample", np.asarray(ref[c].sel(sample=ref_ids).values
                                              if ref["sample"].size else [], dtype=np.float64))
        else:
            coords[c] = ("sample", np.full(len(ref_ids), np.nan))
    return xr.DataArray(fused, dims=("sample", "feature"), coords=coords, name="fused",
                        attrs={"models": list(order), "slices": slices, "shapes": shapes, "order": how,
                               "layout": "season-major flatten of (season, feature) per model"})


def _model_order(data: dict, models: Sequence[str] | None) -> tuple[list[str], str]:
    """(models in fusion order, "sorted" | "given"); unknown, repeated or no models are errors."""
    if models is None:
        return sorted(data), "sorted"
    order = [models] if isinstance(models, str) else list(models)
    if not order:
        raise StoreError("models=[] selects nothing; pass model names from the store or None for all")
    unknown = [m for m in order if m not in data]
    if unknown:
        raise StoreError(f"models {unknown} are not in the store (it holds {sorted(data)}); pick names from that list")
    if len(set(order)) != len(order):
        raise StoreError(f"models {order} name a model twice; give each model once")
    return order, "given"


def _aligned(name: str, da: xr.DataArray, ref_name: str, ref_ids: list[str]) -> xr.DataArray:
    """``da`` in the sample order of the first model; repeated or mismatched ids are errors naming them."""
    if "sample" not in da.dims:
        raise StoreError(f"model {name!r} has no 'sample' dimension (dims {da.dims}); re-extract it")
    ids = [str(s) for s in da["sample"].values]
    seen: set[str] = set()
    dups = sorted({i for i in ids if i in seen or seen.add(i)})
    if dups:
        raise StoreError(f"model {name!r}: sample ids repeat: {_fmt_ids(dups)}; each id must appear once")
    if ids == ref_ids:
        return da
    only_here = sorted(set(ids) - set(ref_ids))
    only_ref = sorted(set(ref_ids) - set(ids))
    if only_here or only_ref:
        parts = []
        if only_ref:
            parts.append(f"{len(only_ref)} ids of {ref_name!r} are missing from {name!r}: {_fmt_ids(only_ref)}")
        if only_here:
            parts.append(f"{len(only_here)} ids of {name!r} are not in {ref_name!r}: {_fmt_ids(only_here)}")
        raise StoreError("mismatched sample ids across models: " + "; ".join(parts)
                         + ". Extract every model for the same samples (or select models with the same ids).")
    return da.sel(sample=ref_ids)


def _check_finite(name: str, arr: np.ndarray, ref_ids: list[str]) -> None:
    """StoreError naming the samples whose embedding is missing (all NaN) or holds NaN/inf values."""
    nan = ~np.isfinite(arr)  # inf is treated like NaN
    if not nan.any():
        return
    rows_all = np.where(nan.all(axis=1))[0]
    if rows_all.size:
        raise StoreError(f"model {name!r} is missing (all-NaN embedding) for {rows_all.size} samples: "
                         f"{_fmt_ids([ref_ids[i] for i in rows_all])}. Re-run the extraction for those "
                         "samples (eoembed extract resumes) or fuse without that model.")
    rows = np.where(nan.any(axis=1))[0]
    raise StoreError(f"model {name!r} has NaN/inf embedding values for {rows.size} samples: "
                     f"{_fmt_ids([ref_ids[i] for i in rows])}. Check those inputs (nodata) and re-extract.")


def fused_slices(fused: xr.DataArray) -> dict[str, tuple[int, int]]:
    """{model: (start, stop)} of a fused DataArray (attrs may come back as JSON text from Zarr)."""
    sl = fused.attrs.get("slices")
    if isinstance(sl, str):
        sl = json.loads(sl)
    if not sl:
        raise StoreError("the fused array carries no 'slices' attribute; build it with eoembed.compress.fuse")
    return {str(k): (int(v[0]), int(v[1])) for k, v in sl.items()}


def select_models(fused: xr.DataArray, models: Sequence[str]) -> xr.DataArray:
    """Sub-vector of a fused array holding only ``models`` (in the order given), with updated slices."""
    sl = fused_slices(fused)
    models = [models] if isinstance(models, str) else list(models)
    unknown = [m for m in models if m not in sl]
    if unknown or not models:
        raise StoreError(f"models {unknown or models} are not in the fused vector (it holds {list(sl)}); "
                         "pick names from that list")
    if len(set(models)) != len(models):
        raise StoreError(f"models {models} name a model twice; give each model once")
    shapes = fused.attrs.get("shapes", {})
    if isinstance(shapes, str):
        shapes = json.loads(shapes)
    idx = np.concatenate([np.arange(*sl[m]) for m in models])
    out = fused.isel(feature=idx)
    out = out.assign_coords(feature=np.arange(idx.size))
    new_sl, start = {}, 0
    for m in models:
        n = sl[m][1] - sl[m][0]
        new_sl[m] = [start, start + n]
        start += n
    out.attrs = {**fused.attrs, "models": models, "slices": new_sl,
                 "shapes": {m: shapes.get(m) for m in models}, "order": "given"}
    return out
