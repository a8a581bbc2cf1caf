"""Inference with adaptive buckets: every valid observation of every pixel is used, nothing is discarded.

For each pixel and modality with k valid observations the sequence length is the smallest bucket of the ladder
(default 8, 16, 24, ..., 256, then further multiples of 8: nothing is ever thinned) that holds all k; the k
observations (in day-of-year order) fill it by midpoint resampling (slot j takes observation
floor((j + 0.5) k / B), so every observation appears and the repeats are spread evenly: ``fill="resample"``,
TESSERA's rule) or are followed by masked slots (``fill="mask"``: masked slots get exactly zero attention, so the
output equals that of one fixed-length padded batch). Pixels sharing a bucket pair (S2 length, S1 length) are
batched together. A modality without valid observation is given to the encoder as absent (its learned missing
vector); a pixel without ANY valid observation gets a NaN embedding and ``no_obs=True`` (never uninitialised
memory). ``mode="pad"`` is the fixed-length baseline: every pixel masked-padded to the full observation axis.

Output: a (sample, feature) DataArray with coords sample (ids), lat, lon, ``no_obs``; with ``out=`` the
embedding store of ``eoembed.extract`` (one group ``model``, resumable chunk by chunk), which
``eoembed.bench.evaluate`` and ``eoembed.compress.distill`` read; with ``product=`` for pixels of a grid (the
WorldCereal cube) the gridded int8 product of ``eoembed.product.write_product`` (y, x, feature).
"""
from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr

from eoembed import runtime
from eoembed.errors import DataError
from eoembed.pixel.data import MODALITIES, as_series, modality_arrays
from eoembed.pixel.encoder import PixelEncoder

#: Default bucket ladder (longer sequences get the next multiple of 8).
BUCKETS: tuple[int, ...] = tuple(range(8, 257, 8))
FILLS = ("resample", "mask")


def bucket_length(k: np.ndarray, buckets: Sequence[int] = BUCKETS) -> np.ndarray:
    """Smallest ladder length >= k (0 for k = 0; above the ladder: k rounded up to a multiple of 8)."""
    lad = np.asarray(sorted(int(b) for b in buckets))
    k = np.asarray(k)
    pos = np.searchsorted(lad, k, side="left")
    above = pos >= len(lad)
    out = np.where(above, -(-k // 8) * 8, lad[np.minimum(pos, len(lad) - 1)])
    return np.where(k == 0, 0, out).astype(np.int64)


def midpoint_indices(k: int, length: int) -> np.ndarray:
    """Indices into k observations that fill ``length`` >= k slots: floor((j + 0.5) k / length); all k used."""
    if length < k:
        raise ValueError(f"bucket length {length} < {k} observations")
    return np.floor((np.arange(length) + 0.5) * k / length).astype(np.int64)


def pack(arr: dict[str, np.ndarray], rows: np.ndarray, length: int, fill: str = "resample") -> dict[str, np.ndarray]:
    """Pack the valid observations of pixels ``rows`` into (len(rows), length) sequences (module doc)."""
    valid = arr["valid"][rows]
    t = valid.shape[1]
    k = valid.sum(1)
    if (k > length).any():
        raise ValueError(f"{int(k.max())} observations do not fit length {length}")
    comp = np.argsort(~valid, axis=1, kind="stable")  # valid steps first, in their (day-of-year) order
    j = np.arange(length)[None, :]
    if fill == "resample":
        pos = np.floor((j + 0.5) * k[:, None] / length).astype(np.int64)
        mask = np.broadcast_to(k[:, None] > 0, pos.shape)
    else:
        pos = np.broadcast_to(j, (len(rows), length))
        mask = pos < k[:, None]
    pos = np.where(mask, np.minimum(pos, t - 1), 0)
    src = np.take_along_axis(comp, pos, 1)
    r = np.asarray(rows)[:, None]
    values = np.where(mask[..., None], arr["values"][r, src], 0).astype(np.float32)
    return {"values": values, "doy": np.where(mask, arr["doy"][r, src], 0),
            "orbit": np.where(mask, arr["orbit"][r, src], 0), "mask": np.ascontiguousarray(mask)}


def _check_bands(encoder: PixelEncoder, ds: xr.Dataset) -> list[str]:
    mods = []
    for m in MODALITIES:
        if m not in ds:
            continue
        have = [str(b) for b in ds[f"{m}_band"].values]
        want = list(encoder.cfg.s2_bands if m == "s2" else encoder.cfg.s1_bands)
        if have != want:
            src = ds.attrs.get("source", "")
            raise DataError(f"{m} bands of the pixels {have} ({len(have)} bands"
                            f"{', file ' + repr(src) if src else ''}) differ from the encoder's {want} "
                            f"({len(want)} bands); encode pixels with the bands (and order) the encoder was "
                            f"pretrained on, or pretrain an encoder on these bands.")
        mods.append(m)
    return mods


def _embed_chunk(encoder: PixelEncoder, sub: xr.Dataset, mods: list[str], batch_size: int, mode: str, fill: str,
                 buckets: Sequence[int], dev: torch.device) -> tuple[np.ndarray, np.ndarray, dict]:
    arrs = {m: modality_arrays(sub, m) for m in mods}
    n = sub.sizes["pixel"]
    counts = {m: arrs[m]["valid"].sum(1) for m in mods}
    no_obs = np.all([counts[m] == 0 for m in mods], axis=0)
    out = np.full((n, encoder.out_dim), np.nan, np.float32)
    if mode == "pad":
        lens = {m: np.where(counts[m] > 0, arrs[m]["valid"].shape[1], 0) for m in mods}
        fill = "mask"
    else:
        lens = {m: bucket_length(counts[m], buckets) for m in mods}
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i in np.flatnonzero(~no_obs):
        groups[tuple(int(lens[m][i]) for m in mods)].append(int(i))
    stats = {"n_batches": 0, "n_groups": len(groups), "slots": 0}
    for key in sorted(groups):
        rows_all = np.asarray(groups[key])
        for a in range(0, len(rows_all), batch_size):
            rows = rows_all[a:a + batch_size]
            batch = {}
            for m, length in zip(mods, key):
                if length == 0:
                    continue
                packed = pack(arrs[m], rows, length, fill)
                batch[m] = {k: torch.as_tensor(v, device=dev) for k, v in packed.items()}
                stats["slots"] += len(rows) * length
            with torch.inference_mode():
                out[rows] = encoder(batch).float().cpu().numpy()
            stats["n_batches"] += 1
    return out, no_obs, stats


def encode(encoder: PixelEncoder | str | os.PathLike, pixels: Any, *, out: str | os.PathLike | None = None,
           model: str = "pixel_encoder", product: str | os.PathLike | None = None, batch_size: int = 1024,
           mode: str = "bucket", fill: str = "resample", buckets: Sequence[int] = BUCKETS, chunk_size: int = 65536,
           resume: bool = True, overwrite: bool = False, device: Any = None, precision: str = "float32",
           threads: int | None = None, progress: bool = True) -> xr.DataArray:
    """Embed every pixel of ``pixels`` with a pretrained encoder (module doc); returns (sample, feature).

    encoder: a :class:`PixelEncoder`, a pretrain run folder or its encoder.pt. pixels: anything
    :func:`eoembed.pixel.as_series` reads (series Dataset or store, d-pixels, WorldCereal .parquet / .nc,
    "sample[:N]"). mode: "bucket" (adaptive buckets) or "pad" (fixed-length masked padding, the baseline).
    fill: "resample" (midpoint resampling, TESSERA) or "mask". out: embedding store (group ``model``; chunks of
    ``chunk_size`` pixels are committed one by one and a re-run resumes; resume=False re-creates the store).
    product: path of a gridded int8 product for pixels of a grid (series with row / col). attrs of the result
    record the encoder, precision, bucket settings, timings and ``n_no_obs``.
    """
    from tqdm.auto import tqdm

    from eoembed import __version__
    from eoembed.checks import check_int
    from eoembed.extract import store as st
    from eoembed.pixel.training import load_encoder

    check_int("batch_size", batch_size, 1)
    check_int("chunk_size", chunk_size, 1)
    if mode not in ("bucket", "pad"):
        raise DataError(f"mode={mode!r}; use 'bucket' or 'pad'.")
    if fill not in FILLS:
        raise DataError(f"fill={fill!r}; use one of {FILLS}.")
    if not buckets or any(int(b) < 1 for b in buckets):
        raise DataError(f"buckets={tuple(buckets)!r}; give positive lengths.")
    dev = runtime.resolve_device(device)
    runtime.check_precision(precision, dev)
    if not isinstance(encoder, PixelEncoder):
        encoder = load_encoder(encoder, device=dev)
    encoder = encoder.to(dev).eval()
    out_p = Path(out) if out is not None else None
    if out_p is not None:
        from eoembed.checks import check_out_path
        check_out_path(out_p, option="out")
    if product is not None:
        from eoembed.checks import check_out_path
        check_out_path(product, option="product", exist_ok=overwrite)
    ds = as_series(pixels, empty="keep")
    mods = _check_bands(encoder, ds)
    ids = np.asarray([str(i) for i in ds["id"].values], dtype=object)
    n = len(ids)
    lat = np.asarray(ds["lat"].values, np.float64)
    lon = np.asarray(ds["lon"].values, np.float64)
    attrs = {"model": model, "weights": str(getattr(encoder, "source", "in-memory")), "eoembed_version": __version__,
             "encoder_config": encoder.cfg.to_dict(), "n_params": int(encoder.n_params),
             "encode_mode": mode, "fill": fill, "buckets": [int(b) for b in buckets],
             "source": str(ds.attrs.get("source", "")), "device": dev.type, **runtime.describe(precision),
             "pretrain_precision": str(getattr(encoder, "settings", {}).get("precision", "unknown"))}
    emb = np.full((n, encoder.out_dim), np.nan, np.float32)
    no_obs = np.zeros(n, bool)
    bounds = st.chunk_bounds(n, chunk_size)
    writer = None
    if out_p is not None:
        fp = {"ids_sha256": st.ids_digest(ids), "n_samples": n, "chunk_size": chunk_size, "missing_bands": "n/a",
              "models": {model: st.jsonable({"weights": attrs["weights"], "shape": [encoder.out_dim],
                                             "metadata": {k: attrs[k] for k in ("encoder_config", "encode_mode",
                                                                                "fill", "buckets", "precision")}})}}
        old = st.read_fingerprint(out_p) if out_p.exists() else None
        if out_p.exists() and old is None:
            from eoembed.errors import StoreError
            raise StoreError(f"{str(out_p)!r} exists and is not an eoembed embedding store; choose another out.")
        if old is not None and resume:
            st.compare_fingerprints(out_p, old, fp)
        else:
            st.create_store(out_p, fp, {model: {"shape": (encoder.out_dim,), "dims": ("feature",),
                                                "attrs": st.jsonable({**attrs, "failed_ids": []})}},
                            ids, lat, lon, [], chunk_size, __version__)
        writer = st.StoreWriter(out_p, [model])
        import zarr
        root = zarr.open_group(str(out_p), mode="r+")
        if "no_obs" not in root[model]:
            root[model].create_array("no_obs", shape=(n,), dtype="int8", chunks=(chunk_size,), fill_value=0,
                                     dimension_names=["sample"])
        flags = root[f"{model}/no_obs"]
        done = writer.done_flags(model)
    t0 = time.perf_counter()
    stats = {"n_batches": 0, "slots": 0, "n_groups": 0}
    with runtime.compute(precision, dev, threads):
        for c, (a, b) in enumerate(tqdm(bounds, desc=f"eoembed encode {model}", disable=not progress)):
            if writer is not None and done[c]:
                import zarr
                g = zarr.open_group(str(out_p), mode="r")[model]
                emb[a:b] = np.asarray(g["embedding"][a:b])
                no_obs[a:b] = np.asarray(g["no_obs"][a:b]).astype(bool)
                continue
            sub = ds.isel(pixel=slice(a, b)).load()
            e, f, s = _embed_chunk(encoder, sub, mods, batch_size, mode, fill, buckets, dev)
            emb[a:b], no_obs[a:b] = e, f
            for k in stats:
                stats[k] += s[k]
            if writer is not None:
                flags[a:b] = f.astype("int8")
                writer.commit(model, c, a, b, e, np.zeros(b - a, bool))
    secs = time.perf_counter() - t0
    attrs.update({"n_no_obs": int(no_obs.sum()), "no_obs_ids": [str(i) for i in ids[no_obs][:20]],
                  "encode_seconds": round(secs, 3), "pixels_per_second": round(n / max(secs, 1e-9), 1),
                  "n_batches": stats["n_batches"], "sequence_slots": stats["slots"]})
    if writer is not None:
        st.finalize(out_p, {model: []}, {model: {k: attrs[k] for k in ("n_no_obs", "encode_seconds")}})
        import zarr
        root = zarr.open_group(str(out_p), mode="r+")
        for node in (root[model], root[f"{model}/embedding"]):
            node.attrs.update(st.jsonable({"n_no_obs": attrs["n_no_obs"], "no_obs_ids": attrs["no_obs_ids"]}))
    da = xr.DataArray(emb, dims=("sample", "feature"),
                      coords={"sample": ids, "lat": ("sample", lat), "lon": ("sample", lon),
                              "no_obs": ("sample", no_obs)}, attrs=attrs, name=model)
    if product is not None:
        write_grid_product(da, ds, product, model=model, overwrite=overwrite)
    return da


def to_grid(emb: xr.DataArray, ds: xr.Dataset) -> xr.DataArray:
    """(sample, feature) embeddings of grid pixels -> (y, x, feature) with y/x and 2-D lat/lon coordinates
    (cells without a pixel are NaN)."""
    if "row" not in ds.coords or "grid_y" not in ds.attrs:
        raise DataError("these pixels are not from a grid (no row / col coordinates and grid_y / grid_x attrs); "
                        "a gridded product needs cube pixels, e.g. worldcereal_cube_series(...).")
    gy, gx = np.asarray(ds.attrs["grid_y"]), np.asarray(ds.attrs["grid_x"])
    rows, cols = np.asarray(ds["row"].values), np.asarray(ds["col"].values)
    grid = np.full((len(gy), len(gx), emb.shape[1]), np.nan, np.float32)
    grid[rows, cols] = emb.values
    lat = np.full((len(gy), len(gx)), np.nan)
    lon = np.full((len(gy), len(gx)), np.nan)
    lat[rows, cols], lon[rows, cols] = ds["lat"].values, ds["lon"].values
    attrs = {k: v for k, v in emb.attrs.items() if isinstance(v, (str, int, float))}
    attrs["crs"] = ds.attrs.get("crs")
    return xr.DataArray(grid, dims=("y", "x", "feature"),
                        coords={"y": gy, "x": gx, "lat": (("y", "x"), lat), "lon": (("y", "x"), lon)}, attrs=attrs)


def write_grid_product(emb: xr.DataArray, ds: xr.Dataset, path: str | os.PathLike, model: str = "pixel_encoder",
                       overwrite: bool = False):
    """Write grid-pixel embeddings as the gridded int8 product (no-observation pixels stored as NaN vectors)."""
    from eoembed.product import write_product

    grid = to_grid(emb, ds)
    return write_product(grid, path, model=model, source=str(ds.attrs.get("source", "")), nodata="mask",
                         overwrite=overwrite)
