"""Batched, streaming, resumable embedding extraction into an embedding store (see ``store.py``)."""
from __future__ import annotations

import importlib
import inspect
import logging
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from eoembed.errors import DataError, DataFileNotFound, StoreError
from eoembed.runtime import check_precision, resolve_device
from eoembed.extract import store as st

log = logging.getLogger(__name__)

MISSING_BANDS = ("error", "fill-mean")
#: Embedder metadata keys that may change while a model runs or between machines (not part of the fingerprint).
_VOLATILE_META = ("filled_bands", "weights_info", "eoembed_version")
ON_ERROR = ("raise", "skip")
#: Reasons recorded per failed sample in the ``_failed`` flags.
_FAIL_INPUT, _FAIL_READ, _FAIL_OUTPUT, _FAIL_UNITS = 1, 2, 3, 4
_FAIL_TEXT = {_FAIL_INPUT: "non-finite (NaN/inf) input values", _FAIL_READ: "the cube read failed",
              _FAIL_OUTPUT: "the model returned a non-finite embedding",
              _FAIL_UNITS: "input values in the wrong units"}


@dataclass
class ExtractResult:
    """What ``extract`` did. ``failed`` maps model -> ids left NaN (``on_error="skip"``)."""

    path: Path
    models: list[str]
    n_samples: int
    chunks_total: int
    chunks_computed: int
    chunks_skipped: int
    seconds: float
    samples_per_s: float
    failed: dict[str, list[str]] = field(default_factory=dict)
    filled_bands: dict[str, list[str]] = field(default_factory=dict)

    def open(self) -> dict[str, xr.DataArray]:
        """``open_embeddings(self.path)``."""
        return st.open_embeddings(self.path)


# --------------------------------------------------------------------------------------------------- inputs
def _is_embedder(obj: Any) -> bool:
    return isinstance(obj, torch.nn.Module) and hasattr(obj, "prepare") and hasattr(obj, "spec")


def _per_model(value: Any, name: str, default: Any) -> Any:
    """``value`` itself, or ``value[name]`` when it is a {model: value} mapping (``"*"`` = any other model)."""
    if isinstance(value, Mapping):
        return value.get(name, value.get("*", default))
    return value


def _weights_arg(w: Any) -> Any:
    if isinstance(w, str) and w.lower() in ("random", "none"):
        return None
    return w


def _import_embedder(ref: str) -> Any:
    """``"package.module:attr"`` -> the Embedder (attr may be an instance, a class or a factory)."""
    mod, _, attr = ref.partition(":")
    try:
        obj = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as err:
        raise KeyError(f"cannot import embedder {ref!r} ({err}); give a registered model name "
                       "(see eoembed.models.list_models()) or 'module:attribute' of an Embedder") from err
    if not _is_embedder(obj) and callable(obj):
        obj = obj()
    if not _is_embedder(obj):
        raise KeyError(f"{ref!r} is not an Embedder (an nn.Module with .spec, .prepare and forward); give a "
                       "registered model name or 'module:attribute' of an Embedder")
    return obj


def build_model(ref: Any, weights: Any = "auto", size: Any = "full", preset: Any = None,
                device: str | torch.device | None = None, missing_bands: str = "error",
                precision: str = "float32") -> Any:
    """An Embedder from a registered name, a ``"module:attr"`` reference or an Embedder instance, in eval mode,
    computing at ``precision`` (see :mod:`eoembed.runtime`)."""
    dev = resolve_device(device)
    check_precision(precision, dev)
    if _is_embedder(ref):
        emb = ref
    elif isinstance(ref, str) and ":" in ref and not Path(ref).exists():
        emb = _import_embedder(ref)
    elif isinstance(ref, str):
        from eoembed.models import load_model
        w = _weights_arg(_per_model(weights, ref, "auto"))
        # load_model seeds the initialisation from (name, size, preset): every process builds the same random model
        emb = load_model(ref, weights=w, size=_per_model(size, ref, "full"), preset=_per_model(preset, ref, None),
                         device=str(dev), missing_bands=missing_bands)
    else:
        raise TypeError(f"model {ref!r} must be a registered model name or an Embedder instance")
    emb.precision = precision
    return emb.to(dev).eval()


def _model_name(emb: Any) -> str:
    return str(getattr(emb.spec, "name", type(emb).__name__))


def _out_layout(emb: Any, n_seasons: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
    spec = emb.spec
    dim = int(spec.embed_dim)
    if getattr(spec, "temporal", "") == "per_season":
        return (n_seasons, dim), ("season", "feature")
    return (dim,), ("feature",)


def open_data(data: Any, modalities: Sequence[str] | None = None) -> tuple[xr.Dataset, str]:
    """A cube Dataset and its source description from a cube, a sample root or a saved cube (.zarr / .nc)."""
    if isinstance(data, xr.Dataset):
        return data, str(data.attrs.get("source", "in-memory cube"))
    if isinstance(data, xr.DataArray):
        raise TypeError("pass the cube Dataset (with its 'bands' variable), not a DataArray")
    p = Path(data)
    if not p.exists():
        raise DataFileNotFound(f"data path {str(p)!r} does not exist; pass a sample root (with data/ and labels/) "
                               "or a cube Dataset")
    if p.suffix == ".nc" or (p.is_dir() and any((p / f).exists() for f in ("zarr.json", ".zgroup", ".zmetadata"))):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no consolidated metadata: read array by array
                cube = xr.open_dataset(p, chunks={}) if p.suffix == ".nc" else xr.open_zarr(p)
        except Exception as e:  # noqa: BLE001 - xarray / zarr / netCDF raise many types for unreadable files
            raise DataError(f"cannot read the saved cube {str(p)!r} ({type(e).__name__}: {e}); it is corrupt or not "
                            "a cube written by eoembed (cube.to_zarr / to_netcdf): write it again") from None
    else:
        from eoembed.data import open_cube
        cube = open_cube(p, modalities=list(modalities) if modalities else None)
    return cube, str(p)


def _check_data_path(data: Any) -> None:
    """A data path must be a sample root, a saved cube (.zarr folder / .nc) or one .zarr.zip sample file."""
    from eoembed.data.ssl4eo import SUFFIX, _find_data_dir
    if isinstance(data, (xr.Dataset, xr.DataArray)):
        return
    p = Path(data)
    if not p.exists():
        raise DataFileNotFound(f"data path {str(p)!r} does not exist; pass a sample root (with data/ and labels/), "
                               "a saved cube (.zarr / .nc) or a cube Dataset")
    if p.is_file() and not (p.suffix == ".nc" or p.name.endswith(SUFFIX)):
        raise DataError(f"data path {str(p)!r} is a file but neither a saved cube (.nc) nor a sample file "
                        f"(*{SUFFIX}); pass a sample root, a saved cube (.zarr folder / .nc) or a sample file")
    if p.is_dir() and not any((p / f).exists() for f in ("zarr.json", ".zgroup", ".zmetadata")):
        _find_data_dir(p)  # DataFileNotFound describing the expected layout


def _check_cube(cube: xr.Dataset, source: str = "the cube") -> None:
    """Structure, unique ids, a dtype that can hold the sensors' units, lat/lon in degrees (before any store)."""
    from eoembed.data.cube import _check_latlon, check_dtype

    if "bands" not in cube.data_vars:
        raise DataError(f"{source!r} has no 'bands' variable (variables: {list(cube.data_vars)}); it is not a cube: "
                        "build one with eoembed.data.open_cube / make_cube, or pass a sample root")
    dims = cube["bands"].dims
    if dims != ("sample", "season", "band", "y", "x"):
        raise DataError(f"cube 'bands' of {source!r} has dims {dims}; expected ('sample', 'season', 'band', 'y', 'x') "
                        "(eoembed.data.open_cube makes this form)")
    ids = [str(i) for i in cube["sample"].values]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
        raise DataError(f"duplicate sample ids in the cube: {dup[:10]}; make ids unique before extracting")
    check_dtype(cube["bands"].dtype, [str(b) for b in cube["band"].values],
                where=f" (in {source})")
    if all(c in cube.coords and cube[c].dims == ("sample",) for c in ("lat", "lon")):
        _check_latlon(cube)


def _latlon(cube: xr.Dataset, name: str) -> np.ndarray:
    n = cube.sizes["sample"]
    if name in cube.coords and cube[name].dims == ("sample",):
        return np.asarray(cube[name].values, dtype="float64")
    return np.full(n, np.nan)


# --------------------------------------------------------------------------------------------- band filling
def _fills_itself(emb: Any) -> bool:
    """True for Embedders whose ``prepare`` takes ``missing_bands=`` (eoembed.models ones fill absent bands)."""
    try:
        return "missing_bands" in inspect.signature(emb.prepare).parameters
    except (TypeError, ValueError):
        return False


def fill_values(emb: Any, bands: Sequence[str]) -> dict[str, float]:
    """For Embedders that do not fill absent bands themselves: per-band constant in cube units that the model's
    normalisation maps to the band mean: ``mean - offset``, or for the ``rgb_imagenet`` stretch
    ``mean * scale_max - offset``."""
    norm = getattr(emb.spec, "normalisation", None)
    get = (lambda k: norm.get(k)) if isinstance(norm, Mapping) else (lambda k: getattr(norm, k, None))
    means, offset = get("mean"), get("offset") or {}
    kind, scale = get("kind") or "zscore", float(get("scale_max") or 1.0)
    if isinstance(means, Mapping) and all(b in means for b in bands):
        return {b: float(means[b]) * (scale if kind == "rgb_imagenet" else 1.0) - float(offset.get(b, 0.0))
                for b in bands}
    raise DataError(f"model {_model_name(emb)!r} publishes no normalisation mean for bands {list(bands)}, so "
                    "missing_bands='fill-mean' cannot fill them; use a cube that has these bands")


@dataclass
class _ModelPlan:
    """How one model reads the cube: the cube bands it takes and the absent bands filled with constants."""

    name: str
    emb: Any
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    present: list[str]
    filled: dict[str, float]  # bands this code fills with constants (cube units; Embedders that cannot fill)
    absent: list[str]  # all absent bands (filled by the Embedder's own prepare or here)
    delegate: bool  # the Embedder fills absent bands itself (prepare(..., missing_bands="fill-mean"))


def _plan(emb: Any, cube_bands: list[str], n_seasons: int, missing_bands: str) -> _ModelPlan:
    name = _model_name(emb)
    wanted = [str(b) for b in emb.spec.bands]
    absent = [b for b in wanted if b not in cube_bands]
    filled: dict[str, float] = {}
    if absent:
        if missing_bands == "error":
            raise DataError(f"model {name!r} needs bands {absent} that the cube does not have (cube bands: "
                            f"{cube_bands}); use data with these bands, drop the model, or pass "
                            "missing_bands='fill-mean' (--missing-bands fill-mean) to fill them with the model's "
                            "normalisation mean (recorded in the store's attrs)")
    delegate = bool(absent) and _fills_itself(emb)  # prepare(..., missing_bands="fill-mean") fills them
    if absent and not delegate:
        filled = fill_values(emb, absent)
    present = [b for b in wanted if b in cube_bands]
    shape, dims = _out_layout(emb, n_seasons)
    return _ModelPlan(name, emb, shape, dims, present, filled, absent, delegate)


# ------------------------------------------------------------------------------------------------ the engine
@dataclass
class _Batch:
    chunk: int
    start: int  # absolute sample index
    stop: int
    inputs: dict[str, dict[str, Any]]  # model -> prepared inputs (rows = valid rows only)
    valid: dict[str, np.ndarray]  # model -> bool (stop-start,)
    reasons: dict[str, np.ndarray]  # model -> int8 failure code per row (0 = ok)
    messages: dict[str, str]


def _read(cube_bands: xr.DataArray, start: int, stop: int, idx: list[int]) -> np.ndarray:
    arr = cube_bands.isel(sample=slice(start, stop), band=idx).values
    return np.ascontiguousarray(arr, dtype=np.float32)


def _read_batch(cube_bands: xr.DataArray, start: int, stop: int, idx: list[int],
                ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Read rows [start, stop); on failure isolate the failing samples (their rows are NaN, flag True)."""
    try:
        return _read(cube_bands, start, stop, idx), np.zeros(stop - start, bool), ""
    except Exception as batch_err:  # noqa: BLE001 - retried per sample to name the failing ids
        rows, bad, msgs = [], np.zeros(stop - start, bool), []
        shape = None
        for i in range(start, stop):
            try:
                r = _read(cube_bands, i, i + 1, idx)
                shape = r.shape[1:]
                rows.append(r)
            except Exception as err:  # noqa: BLE001
                bad[i - start] = True
                rows.append(None)
                msgs.append(f"{ids[i]}: {type(err).__name__}: {err}")
        if shape is None:
            raise DataError(f"reading samples {list(ids[start:stop])} from the cube failed: {batch_err}") from batch_err
        out = np.stack([r[0] if r is not None else np.full(shape, np.nan, np.float32) for r in rows])
        return out, bad, "; ".join(msgs)


def _unit_problems(x: np.ndarray, band_keys: list[str]) -> dict[int, tuple[str, list[str]]]:
    """Rows of a (batch, season, band, y, x) block in the wrong units: {row: (message, bands concerned)}."""
    import warnings

    from eoembed.data.cube import S2_MODALITIES, unit_problems
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        finite = np.where(np.isfinite(x), x, np.nan)
        mins, maxs = np.nanmin(finite, axis=(1, 3, 4)), np.nanmax(finite, axis=(1, 3, 4))
    out = {}
    for i, msg in unit_problems(mins, maxs, band_keys).items():
        mods = (S2_MODALITIES if msg.startswith("S2") else ()) + (("s1",) if "S1 values" in msg else ())
        out[i] = (msg, [b for b in band_keys if b.partition("/")[0] in mods])
    return out


def _prepare_batch(chunk: int, start: int, stop: int, cube_bands: xr.DataArray, idx: list[int],
                   band_keys: list[str], ids: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                   plans: list[_ModelPlan], pin: bool) -> _Batch:
    x, read_bad, read_msg = _read_batch(cube_bands, start, stop, idx, ids)
    units = _unit_problems(x, band_keys)
    inputs, valid, reasons, messages = {}, {}, {}, {}
    for plan in plans:
        cols = [band_keys.index(b) for b in plan.present]
        xm = x[:, :, cols]
        finite = np.isfinite(xm).all(axis=(1, 2, 3, 4))
        code = np.where(read_bad, _FAIL_READ, np.where(finite, 0, _FAIL_INPUT)).astype("int8")
        for i, msg in units.items():
            if code[i] == 0 and any(b in plan.present for b in msg[1]):
                code[i] = _FAIL_UNITS
        ok = code == 0
        keys = list(plan.present)
        if plan.filled:
            fill = np.broadcast_to(np.asarray(list(plan.filled.values()), np.float32)[None, None, :, None, None],
                                   (xm.shape[0], xm.shape[1], len(plan.filled), xm.shape[3], xm.shape[4]))
            xm = np.concatenate([xm, fill], axis=2)
            keys += list(plan.filled)
        prepared: dict[str, Any] = {}
        if ok.any():
            args = (np.ascontiguousarray(xm[ok]), keys, lat[start:stop][ok], lon[start:stop][ok])
            prepared = plan.emb.prepare(*args, missing_bands="fill-mean") if plan.delegate else plan.emb.prepare(*args)
            if pin:
                prepared = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in prepared.items()}
        inputs[plan.name], valid[plan.name], reasons[plan.name] = prepared, ok, code
        notes = [read_msg] if read_msg else []
        notes += [f"{ids[start + i]}: {m}" for i, (m, _) in units.items() if code[i] == _FAIL_UNITS]
        if notes and (~ok).any():
            messages[plan.name] = "; ".join(notes)
    return _Batch(chunk, start, stop, inputs, valid, reasons, messages)


def _forward(emb: Any, inputs: dict[str, Any], device: torch.device) -> np.ndarray:
    cuda = device.type == "cuda"
    with torch.inference_mode():
        moved = {k: v.to(device, non_blocking=cuda) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        out = emb(**moved)  # the Embedder computes at its own recorded precision (emb.precision)
        return out.float().cpu().numpy()


def _failure_error(name: str, ids: np.ndarray, codes: np.ndarray, extra: str = "") -> DataError:
    bad = np.flatnonzero(codes)
    listed = ", ".join(f"{ids[i]} ({_FAIL_TEXT[int(codes[i])]})" for i in bad[:20])
    more = f" and {bad.size - 20} more" if bad.size > 20 else ""
    detail = f"; {extra}" if extra else ""
    return DataError(f"model {name!r} could not embed sample(s) {listed}{more}{detail}. Fix or drop these samples, "
                     "or pass on_error='skip' (--on-error skip) to leave their rows NaN and record their ids; "
                     "chunks already written are kept and the next run resumes after them")


class _Chunks:
    """Per-chunk output buffers and failure codes; a chunk is committed when its last batch is embedded."""

    def __init__(self, chunks: list[tuple[int, int, int, list[str]]], plans: dict[str, _ModelPlan],
                 writer: st.StoreWriter, batch_size: int):
        self.plans, self.writer = plans, writer
        self.info = {ci: (a, b, pending) for ci, a, b, pending in chunks}
        self.remaining = {ci: len(range(a, b, batch_size)) for ci, a, b, _ in chunks}
        self.bufs: dict[tuple[int, str], np.ndarray] = {}
        self.codes: dict[tuple[int, str], np.ndarray] = {}
        self.n_failed = {name: 0 for name in plans}

    def buffers(self, chunk: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        key = (chunk, name)
        if key not in self.bufs:
            a, b, _ = self.info[chunk]
            self.bufs[key] = np.full((b - a, *self.plans[name].shape), np.nan, np.float32)
            self.codes[key] = np.zeros(b - a, np.int8)
        return self.bufs[key], self.codes[key]

    def batch_done(self, chunk: int) -> None:
        self.remaining[chunk] -= 1
        if self.remaining[chunk]:
            return
        a, b, pending = self.info[chunk]
        for name in pending:
            key = (chunk, name)
            self.writer.commit(name, chunk, a, b, self.bufs.pop(key), self.codes[key])
            self.n_failed[name] += int((self.codes.pop(key) != 0).sum())


def _embed_batch(batch: _Batch, plan: _ModelPlan, state: _Chunks, ids: np.ndarray, device: torch.device,
                 on_error: str) -> None:
    """Run one model on one prepared batch and put its rows (NaN + failure code where it failed) in the buffers."""
    name = plan.name
    a = state.info[batch.chunk][0]
    buf, codes = state.buffers(batch.chunk, name)
    rows = slice(batch.start - a, batch.stop - a)
    ok = batch.valid[name]
    code = batch.reasons[name].copy()
    if ok.any():
        out = _forward(plan.emb, batch.inputs[name], device)
        if out.shape != (int(ok.sum()), *plan.shape):
            raise StoreError(f"model {name!r} returned shape {out.shape} for {int(ok.sum())} samples; "
                             f"its spec promises {(int(ok.sum()), *plan.shape)} - fix the Embedder")
        good = np.isfinite(out.reshape(out.shape[0], -1)).all(axis=1)
        code[np.flatnonzero(ok)[~good]] = _FAIL_OUTPUT
        out[~good] = np.nan
        buf[rows][ok] = out
    if code.any():
        err = _failure_error(name, ids[batch.start:batch.stop], code, batch.messages.get(name, ""))
        if on_error == "raise":
            raise err
        log.warning("%s", err)
        codes[rows] = code


def run_chunks(cube: xr.Dataset, chunks: list[tuple[int, int, int, list[str]]], plans: list[_ModelPlan],
               writer: st.StoreWriter, device: torch.device, batch_size: int, num_workers: int, on_error: str,
               pbar: tqdm | None = None) -> dict[str, int]:
    """Embed the given chunks ``(chunk, start, stop, models_pending)`` and commit each one.

    Loading (cube read + ``prepare``) runs in ``max(1, num_workers)`` background threads, ``num_workers + 2``
    batches ahead, while the calling thread runs the models. Returns the number of failed samples per model.
    """
    ids = np.asarray([str(i) for i in cube["sample"].values])
    lat, lon = _latlon(cube, "lat"), _latlon(cube, "lon")
    cube_bands = cube["bands"]
    all_keys = [str(b) for b in cube["band"].values]
    by_name = {p.name: p for p in plans}
    pin = device.type == "cuda"

    def jobs() -> Iterator[tuple[int, int, int, list[_ModelPlan], list[int], list[str]]]:
        for ci, a, b, pending in chunks:
            ps = [by_name[m] for m in pending]
            keys = sorted({k for p in ps for k in p.present}, key=all_keys.index)
            idx = [all_keys.index(k) for k in keys]
            for s in range(a, b, batch_size):
                yield ci, s, min(s + batch_size, b), ps, idx, keys

    state = _Chunks(chunks, by_name, writer, batch_size)
    lookahead = max(1, num_workers) + 1
    with ThreadPoolExecutor(max_workers=max(1, num_workers), thread_name_prefix="eoembed-load") as pool:
        queue: deque = deque()
        it = jobs()

        def fill() -> None:
            while len(queue) < lookahead:
                job = next(it, None)
                if job is None:
                    return
                ci, s, e, ps, idx, keys = job
                queue.append(pool.submit(_prepare_batch, ci, s, e, cube_bands, idx, keys, ids, lat, lon, ps, pin))

        try:
            fill()
            while queue:
                batch: _Batch = queue.popleft().result()
                fill()
                for name in state.info[batch.chunk][2]:
                    _embed_batch(batch, by_name[name], state, ids, device, on_error)
                state.batch_done(batch.chunk)
                if pbar is not None:
                    pbar.update(batch.stop - batch.start)
        finally:
            for f in queue:
                f.cancel()
    return state.n_failed


# ----------------------------------------------------------------------------------------------- dask path
_WORKER_CACHE: dict[tuple, Any] = {}
_WORKER_LOCK = threading.Lock()


def _worker_key() -> str:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _worker_cached(key: tuple, make: Any) -> Any:
    """One object per (worker, key): models and cubes are built once per worker and reused by its tasks."""
    full = (_worker_key(), *key)
    with _WORKER_LOCK:
        if full not in _WORKER_CACHE:
            _WORKER_CACHE[full] = make()
        return _WORKER_CACHE[full]


def _dask_chunk_task(store_path: str, chunk: tuple[int, int, int, list[str]], data_ref: Any,
                     model_refs: list[tuple[str, Any, str]], plan_info: dict[str, dict], device: str | None,
                     batch_size: int, on_error: str) -> dict[str, int]:
    """Runs on a dask worker: embed one chunk and write its disjoint region of the store."""
    import dask

    if isinstance(data_ref, tuple) and data_ref and data_ref[0] == "path":
        cube = _worker_cached(("cube", data_ref[1], tuple(data_ref[2] or ())),
                              lambda: open_data(data_ref[1], data_ref[2])[0])
    else:
        cube = data_ref
    dev = resolve_device(device)
    plans = []
    for name, ref, weights_id in model_refs:
        if isinstance(ref, tuple):  # ("registry", name, weights, size, preset, missing_bands, precision)
            emb = _worker_cached(("model", *ref, str(dev)),
                                 lambda ref=ref: build_model(ref[1], ref[2], ref[3], ref[4], dev, ref[5], ref[6]))
        else:
            emb = _worker_cached(("instance", name, id(ref), str(dev)), lambda ref=ref: ref.to(dev).eval())
        if str(getattr(emb, "weights_id", "")) != weights_id:
            raise StoreError(f"dask worker {_worker_key()} loaded model {name!r} with weights "
                             f"{getattr(emb, 'weights_id', '')!r}, the driver with {weights_id!r}; give every worker "
                             "the same weights (an explicit weights path)")
        info = plan_info[name]
        plans.append(_ModelPlan(name, emb, tuple(info["shape"]), tuple(info["dims"]), info["present"], info["filled"],
                                info["absent"], info["delegate"]))
    writer = st.StoreWriter(store_path, [p.name for p in plans])
    with dask.config.set(scheduler="synchronous"):
        return run_chunks(cube, [chunk], plans, writer, dev, batch_size, 0, on_error)


def _client(dask_address: Any) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster
    if isinstance(dask_address, Client):
        return dask_address, None
    if dask_address == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
        return Client(cluster), cluster
    return Client(dask_address), None


def _run_dask(dask_address: Any, store_path: str, cube: xr.Dataset, data: Any, modalities: list[str] | None,
              todo: list[tuple[int, int, int, list[str]]], plans: list[_ModelPlan], refs: dict[str, Any],
              device: str | None, batch_size: int, on_error: str, pbar: tqdm | None) -> dict[str, int]:
    from distributed import as_completed
    client, cluster = _client(dask_address)
    try:
        data_ref = ("path", str(data), modalities) if not isinstance(data, xr.Dataset) else \
            client.scatter(cube, broadcast=True, hash=False)
        model_refs = []
        for p in plans:
            ref = refs[p.name]
            if not isinstance(ref, tuple):
                ref = client.scatter(ref, broadcast=True, hash=False)
            model_refs.append((p.name, ref, str(getattr(p.emb, "weights_id", ""))))
        plan_info = {p.name: {"shape": list(p.shape), "dims": list(p.dims), "present": p.present, "filled": p.filled,
                              "absent": p.absent, "delegate": p.delegate} for p in plans}
        futures = {client.submit(_dask_chunk_task, store_path, ch, data_ref, model_refs, plan_info, device,
                                 batch_size, on_error, pure=False): ch for ch in todo}
        n_failed = {p.name: 0 for p in plans}
        try:
            for fut in as_completed(futures):
                res = fut.result()
                for k, v in res.items():
                    n_failed[k] += v
                if pbar is not None:
                    _, a, b, _ = futures[fut]
                    pbar.update(b - a)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        return n_failed
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


# ---------------------------------------------------------------------------------------------- entry point
def _check_args(data: Any, models: Any, out: Any, batch_size: Any, chunk_size: Any, num_workers: Any,
                missing_bands: str, on_error: str, device: Any, size: Any) -> tuple[list, int, Path]:
    """Every argument of :func:`extract`, checked before any model is built; returns (models, chunk_size, out)."""
    from eoembed.checks import check_device, check_out_path

    if isinstance(models, (str, torch.nn.Module)):
        models = [models]
    models = list(models)
    if not models:
        raise ValueError("no models given; pass e.g. models=['croma_base'] (see eoembed.models.list_models())")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if chunk_size is None:
        chunk_size = 8 * batch_size
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
    if missing_bands not in MISSING_BANDS:
        raise ValueError(f"missing_bands must be one of {MISSING_BANDS}, got {missing_bands!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    _check_data_path(data)
    for v in (size.values() if isinstance(size, Mapping) else [size]):
        if v not in ("full", "tiny"):
            raise ValueError(f"size must be 'full' or 'tiny' (one value, or one per model), got {v!r}")
    if isinstance(device, str):
        check_device(device, option="device")
    return models, chunk_size, check_out_path(out, option="out")


def _store_layout(plans: list[_ModelPlan], cube: xr.Dataset, source: str, dev: torch.device, ids: np.ndarray,
                  chunk_size: int, missing_bands: str, version: str) -> tuple[dict, dict]:
    """(groups: per-model shape / dims / attrs of the store, fingerprint: what a resumed run must match)."""
    groups, fp_models = {}, {}
    for p in plans:
        meta = st.jsonable(dict(getattr(p.emb, "metadata", {}) or {}))
        meta.setdefault("model", p.name)
        meta.setdefault("weights", str(getattr(p.emb, "weights_id", "")))
        meta.setdefault("eoembed_version", version)
        attrs = {**meta, "source": source, "missing_bands": missing_bands, "filled_bands": list(p.absent),
                 "fill_values": p.filled, "cube_missing_bands": st.jsonable(list(cube.attrs.get("missing_bands", []))),
                 "device": dev.type, "failed_ids": []}
        groups[p.name] = {"shape": p.shape, "dims": p.dims, "attrs": attrs}
        stable = {k: v for k, v in meta.items() if k not in _VOLATILE_META}
        fp_models[p.name] = st.jsonable({"weights": meta["weights"], "shape": list(p.shape), "metadata": stable,
                                         "filled_bands": list(p.absent)})
    fingerprint = {"ids_sha256": st.ids_digest(ids), "n_samples": len(ids), "chunk_size": chunk_size,
                   "missing_bands": missing_bands, "models": fp_models}
    return groups, fingerprint


def _open_store(out: Path, resume: bool, fingerprint: dict, groups: dict, ids: np.ndarray, cube: xr.Dataset,
                seasons: list[str], chunk_size: int, version: str) -> None:
    """Create the store, or check that an existing one matches this run (settings, ids, coordinates) to resume."""
    lat, lon = _latlon(cube, "lat"), _latlon(cube, "lon")
    old = st.read_fingerprint(out) if out.exists() else None
    if out.exists() and old is None:
        raise StoreError(f"{str(out)!r} exists and is not an eoembed embedding store; choose another --out")
    if old is not None and resume:
        st.compare_fingerprints(out, old, fingerprint)
        st.check_coords(out, list(groups), lat, lon, seasons)
    else:
        st.create_store(out, fingerprint, groups, ids, lat, lon, seasons, chunk_size, version)


def _run(todo: list, plans: list[_ModelPlan], models: list, cube: xr.Dataset, data: Any, modalities: list[str],
         out: Path, names: list[str], dev: torch.device, device: Any, weights: Any, size: Any, preset: Any,
         missing_bands: str, batch_size: int, num_workers: int, dask_address: Any, on_error: str,
         pbar: tqdm | None, precision: str = "float32") -> None:
    """Embed the pending chunks in this process or on a dask cluster."""
    if todo and dask_address is not None:
        refs = {p.name: (("registry", m, _per_model(weights, m, "auto"), _per_model(size, m, "full"),
                          _per_model(preset, m, None), missing_bands, precision)
                         if isinstance(m, str) and ":" not in m else p.emb)
                for p, m in zip(plans, models)}
        _run_dask(dask_address, str(out), cube, data, modalities, todo, plans, refs,
                  None if device is None else str(device), batch_size, on_error, pbar)
    elif todo:
        run_chunks(cube, todo, plans, st.StoreWriter(out, names), dev, batch_size, num_workers, on_error, pbar)


def extract(data: Any, models: Sequence[Any] | str | Any, out: str | Path = "emb.zarr", batch_size: int = 16,
            device: str | None = None, weights: Any = "auto", size: Any = "full", preset: Any = None,
            chunk_size: int | None = None, num_workers: int = 0, dask_address: Any = None,
            progress: bool = True, resume: bool = True, missing_bands: str = "error",
            on_error: str = "raise", precision: str = "float32") -> ExtractResult:
    """Embed every sample of a cube with each model into the Zarr embedding store ``out``.

    data: cube Dataset, sample root (read with eoembed.data.open_cube) or a saved cube (.zarr/.nc).
    models: registered names, ``"module:attr"`` references or Embedder instances.
    weights / size / preset: one value for all models or a {model: value} mapping; ``weights="random"``
    (or None) = random init. chunk_size: samples per committed chunk (default ``8 * batch_size``).
    num_workers: loader threads (cube read + prepare) overlapping the model compute (0 = one thread).
    dask_address: ``"local"``, a scheduler address or a Client: one model replica per worker, one task per chunk.
    resume: skip chunks already done in ``out`` (refused when it was made with other ids/models/settings, or
    with other lat/lon for samples already embedded); ``resume=False`` overwrites ``out``. missing_bands:
    ``"error"`` or ``"fill-mean"`` (absent bands = the model's normalisation mean; recorded in attrs). on_error:
    ``"raise"`` (DataError naming the ids) or ``"skip"`` (rows stay NaN, ids recorded in attrs ``failed_ids``
    and in the result). Samples in the wrong units (S2 as 0..1 reflectance, S1 in linear power) fail like
    non-finite ones, with the conversion to apply in the message. precision: "float32" (default, full IEEE fp32
    on any machine) or "bf16" (CUDA autocast opt-in); set on every model and recorded in the store attrs (a
    store is never resumed at another precision).
    """
    from eoembed import __version__

    t0 = time.perf_counter()
    models, chunk_size, out = _check_args(data, models, out, batch_size, chunk_size, num_workers, missing_bands,
                                          on_error, device, size)
    dev = resolve_device(device)
    check_precision(precision, dev)
    embedders = [build_model(m, weights, size, preset, dev, missing_bands, precision) for m in models]
    names = [_model_name(e) for e in embedders]
    if len(set(names)) != len(names):
        raise ValueError(f"models {names} repeat a name; each model is one group of the store")
    modalities = sorted({str(b).split("/")[0] for e in embedders for b in e.spec.bands})
    cube, source = open_data(data, modalities)
    _check_cube(cube, source)
    ids = np.asarray([str(i) for i in cube["sample"].values], dtype=object)
    n = len(ids)
    if n == 0:
        raise DataError(f"the cube from {source!r} has no samples; nothing to extract")
    seasons = [str(s) for s in cube["season"].values]
    plans = [_plan(e, [str(b) for b in cube["band"].values], len(seasons), missing_bands) for e in embedders]
    groups, fingerprint = _store_layout(plans, cube, source, dev, ids, chunk_size, missing_bands, __version__)
    _open_store(out, resume, fingerprint, groups, ids, cube, seasons, chunk_size, __version__)

    done = {m: st.StoreWriter(out, names).done_flags(m) for m in names}
    bounds = st.chunk_bounds(n, chunk_size)
    todo = [(ci, a, b, [m for m in names if not done[m][ci]]) for ci, (a, b) in enumerate(bounds)]
    todo = [t for t in todo if t[3]]
    n_todo = sum(b - a for _, a, b, _ in todo)
    pbar = tqdm(total=n, initial=n - n_todo, unit="sample", desc=f"extract {'+'.join(names)}",
                disable=not progress, dynamic_ncols=True)
    try:
        _run(todo, plans, models, cube, data, modalities, out, names, dev, device, weights, size, preset,
             missing_bands, batch_size, num_workers, dask_address, on_error, pbar, precision)
    finally:
        pbar.close()
    return _finish(out, names, plans, n, len(bounds), len(todo), n_todo, t0)


def _finish(out: Path, names: list[str], plans: list[_ModelPlan], n: int, n_chunks: int, computed: int,
            n_todo: int, t0: float) -> ExtractResult:
    """Record failed ids and the run report in the store; warn about failed samples."""
    secs = time.perf_counter() - t0
    skipped = n_chunks - computed
    failed = {m: st.failed_ids(out, m) for m in names}
    report = {m: {"failed": len(failed[m]), "chunks_computed": computed, "chunks_skipped": skipped,
                  "seconds": round(secs, 3)} for m in names}
    st.finalize(out, failed, report)
    for m, f in failed.items():
        if f:
            warnings.warn(f"model {m!r}: {len(f)} sample(s) failed and were left NaN (on_error='skip'): "
                          f"{f[:10]}{' ...' if len(f) > 10 else ''}; their ids are in the store attrs 'failed_ids'",
                          stacklevel=3)
    return ExtractResult(path=out, models=names, n_samples=n, chunks_total=n_chunks, chunks_computed=computed,
                         chunks_skipped=skipped, seconds=secs, samples_per_s=(n_todo / secs if secs > 0 else 0.0),
                         failed=failed, filled_bands={p.name: list(p.absent) for p in plans})
