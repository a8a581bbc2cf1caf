"""The embedding store: one Zarr group per model with an ``embedding`` variable, plus per-chunk progress flags.

Layout of ``emb.zarr/`` (Zarr v3 directory store)::

    zarr.json                 root attrs: eoembed_version, models, eoembed_extract (settings fingerprint)
    <model>/embedding         float32 (sample, season, feature) or (sample, feature), NaN until written
    <model>/sample, lat, lon  coordinates (season where present)
    <model>/_done             int8 (_chunk,) one flag per sample chunk, set after the chunk's rows are written
    <model>/_failed           int8 (sample,) 1 where a sample failed and was skipped (``on_error="skip"``)

A chunk is committed by writing its embedding rows, then its ``_failed`` rows, then its ``_done`` flag; Zarr's
local store writes every chunk file atomically, so a killed run leaves each chunk either committed or redone.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from eoembed.errors import DataFileNotFound, StoreError

FINGERPRINT_ATTR = "eoembed_extract"
_HIDDEN_VARS = ("_done", "_failed")


def ids_digest(ids: np.ndarray) -> str:
    """SHA-256 of the ordered sample ids (identifies the sample set of a store)."""
    h = hashlib.sha256()
    for i in ids:
        h.update(str(i).encode())
        h.update(b"\n")
    return h.hexdigest()


def jsonable(obj: Any) -> Any:
    """A JSON round-trip copy of ``obj`` (numpy scalars and paths become plain values)."""
    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)
    return json.loads(json.dumps(obj, default=default))


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the sample chunks."""
    return [(a, min(a + chunk_size, n)) for a in range(0, n, chunk_size)]


def _is_store(path: Path) -> bool:
    return (path / "zarr.json").is_file()


def read_fingerprint(path: Path) -> dict | None:
    """The settings fingerprint of an existing store (None if ``path`` is not an eoembed embedding store)."""
    import zarr
    if not _is_store(path):
        return None
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception:  # noqa: BLE001 - unreadable metadata = not our store
        return None
    fp = root.attrs.get(FINGERPRINT_ATTR)
    return dict(fp) if fp is not None else None


def compare_fingerprints(path: Path, old: dict, new: dict) -> None:
    """Raise StoreError naming what differs between the store's settings and the requested ones."""
    what = "use a new --out (out=...) or pass resume=False (--no-resume) to overwrite it"
    if old.get("ids_sha256") != new["ids_sha256"] or old.get("n_samples") != new["n_samples"]:
        raise StoreError(f"embedding store {str(path)!r} was made for a different set of sample ids "
                         f"({old.get('n_samples')} samples there, {new['n_samples']} requested); {what}")
    if sorted(old.get("models", {})) != sorted(new["models"]):
        raise StoreError(f"embedding store {str(path)!r} holds models {sorted(old.get('models', {}))}, "
                         f"this run asks for {sorted(new['models'])}; {what}")
    for name, cfg in new["models"].items():
        prev = old["models"][name]
        diff = sorted(k for k in set(cfg) | set(prev) if cfg.get(k) != prev.get(k))
        if diff:
            detail = ", ".join(f"{k}: {prev.get(k)!r} there vs {cfg.get(k)!r} now" for k in diff)
            raise StoreError(f"embedding store {str(path)!r} was made with different settings for model "
                             f"{name!r} ({detail}); {what}")
    for key in ("chunk_size", "missing_bands"):
        if old.get(key) != new[key]:
            raise StoreError(f"embedding store {str(path)!r} was made with {key}={old.get(key)!r}, this run "
                             f"uses {key}={new[key]!r}; pass the same value to resume, or {what}")


def check_coords(path: Path, models: list[str], lat: np.ndarray, lon: np.ndarray, seasons: list[str]) -> None:
    """Before resuming: the store's coordinates must match the input's. lat/lon that differ only for samples not
    yet committed by any model are rewritten; StoreError (naming the samples) when committed samples differ, or
    the seasons differ (the input changed since those embeddings were made)."""
    import zarr
    root = zarr.open_group(str(path), mode="r+")
    what = "re-run with --no-resume (resume=False) to recompute the store, or use a new --out"
    for name in models:
        g = root[name]
        if "season" in g and [str(s) for s in g["season"][:]] != list(seasons):
            raise StoreError(f"embedding store {str(path)!r}: model {name!r} has seasons {list(g['season'][:])}, the "
                             f"input has {list(seasons)}; {what}")
        old_lat, old_lon = np.asarray(g["lat"][:], np.float64), np.asarray(g["lon"][:], np.float64)
        differ = ~(_same(old_lat, lat) & _same(old_lon, lon))
        if not differ.any():
            continue
        chunk = int(g["embedding"].chunks[0])
        committed = np.zeros(differ.size, bool)
        for other in models:
            done = np.asarray(root[f"{other}/_done"][:]).astype(bool)
            committed |= np.repeat(done, chunk)[: differ.size]
        stale = np.flatnonzero(differ & committed)
        if stale.size:
            ids = np.asarray(g["sample"][:])
            ex = ", ".join(f"{ids[i]} ({old_lat[i]:.6g}, {old_lon[i]:.6g} -> {lat[i]:.6g}, {lon[i]:.6g})" for i in stale[:5])
            raise StoreError(f"embedding store {str(path)!r}: lat/lon of {stale.size} already embedded sample(s) differ "
                             f"from the input (e.g. {ex}); the input changed since they were embedded (e.g. meta.csv "
                             f"was fixed). {what[0].upper()}{what[1:]}.")
        g["lat"][:] = lat
        g["lon"][:] = lon


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


def create_store(path: Path, fingerprint: dict, groups: dict[str, dict], ids: np.ndarray, lat: np.ndarray,
                 lon: np.ndarray, seasons: list[str], chunk_size: int, version: str) -> None:
    """Create the full-shape store atomically: build it beside ``path`` and rename it into place.

    ``groups`` maps model name -> {"shape": per-sample shape tuple, "dims": per-sample dims, "attrs": dict}.
    """
    import dask.array as da
    import zarr

    tmp = path.with_name(path.name + ".eoembed-init")
    if tmp.exists():
        shutil.rmtree(tmp)
    n = len(ids)
    n_chunks = max(1, -(-n // chunk_size))
    root = zarr.open_group(str(tmp), mode="w")
    for name, g in groups.items():
        shape = (n, *g["shape"])
        chunks = (chunk_size, *g["shape"])
        coords: dict[str, Any] = {"sample": np.asarray(ids, dtype=object), "lat": ("sample", lat),
                                  "lon": ("sample", lon)}
        if "season" in g["dims"]:
            coords["season"] = np.asarray(seasons, dtype=object)
        emb = xr.Variable(("sample", *g["dims"]), da.full(shape, np.nan, dtype="float32", chunks=chunks),
                          attrs=g["attrs"])
        ds = xr.Dataset({"embedding": emb,
                         "_done": ("_chunk", np.zeros(n_chunks, dtype="int8")),
                         "_failed": ("sample", np.zeros(n, dtype="int8"))},
                        coords=coords, attrs=g["attrs"])
        encoding = {"embedding": {"chunks": chunks, "fill_value": np.nan},
                    "_done": {"chunks": (1,)}, "_failed": {"chunks": (chunk_size,)}}
        ds.to_zarr(str(tmp), group=name, mode="w-", compute=False, consolidated=False, encoding=encoding)
    root.attrs.update({"eoembed_version": version, "models": list(groups), FINGERPRINT_ATTR: fingerprint})
    if path.exists():
        _replace_dir(tmp, path)
    else:
        os.replace(tmp, path)


def _replace_dir(tmp: Path, path: Path) -> None:
    old = path.with_name(path.name + ".eoembed-old")
    if old.exists():
        shutil.rmtree(old)
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old)


def remove_store(path: Path) -> None:
    """Delete an existing eoembed embedding store (refuses anything that is not one)."""
    if read_fingerprint(path) is None:
        raise StoreError(f"{str(path)!r} exists and is not an eoembed embedding store; refusing to overwrite it - "
                         "choose another --out")
    shutil.rmtree(path)


class StoreWriter:
    """Writes committed chunks into one store (cheap to build; safe to use from several processes for
    disjoint chunks)."""

    def __init__(self, path: str | Path, models: list[str]):
        import zarr
        self.path = str(path)
        root = zarr.open_group(self.path, mode="r+")
        self._emb = {m: root[f"{m}/embedding"] for m in models}
        self._done = {m: root[f"{m}/_done"] for m in models}
        self._failed = {m: root[f"{m}/_failed"] for m in models}

    def done_flags(self, model: str) -> np.ndarray:
        return np.asarray(self._done[model][:]).astype(bool)

    def commit(self, model: str, chunk: int, start: int, stop: int, values: np.ndarray, failed: np.ndarray) -> None:
        """Write one chunk's rows, then its failure flags, then mark it done."""
        self._emb[model][start:stop] = values
        self._failed[model][start:stop] = failed.astype("int8")
        self._done[model][chunk] = 1


def finalize(path: str | Path, failed: dict[str, list[str]], report: dict[str, Any]) -> None:
    """Record failed ids (from the ``_failed`` flags) and the run report in the attrs of each model group."""
    import zarr
    root = zarr.open_group(str(path), mode="r+")
    for name, ids in failed.items():
        for node in (root[name], root[f"{name}/embedding"]):
            node.attrs.update({"failed_ids": list(ids), "extract_report": jsonable(report.get(name, {}))})


def failed_ids(path: str | Path, model: str) -> list[str]:
    """Ids whose rows were left NaN because they failed (``on_error="skip"``)."""
    import zarr
    root = zarr.open_group(str(path), mode="r")
    flags = np.asarray(root[f"{model}/_failed"][:]).astype(bool)
    if not flags.any():
        return []
    ids = np.asarray(root[f"{model}/sample"][:])
    return [str(i) for i in ids[flags]]


def open_embeddings(path: str | Path, models: list[str] | None = None,
                    allow_incomplete: bool = False) -> dict[str, xr.DataArray]:
    """Read an embedding store lazily: ``{model: DataArray}`` with dims (sample, [season,] feature).

    Raises StoreError when a model's extraction is unfinished (re-run ``eoembed extract`` with the same
    arguments to resume it) unless ``allow_incomplete=True`` (unfinished rows are NaN).
    """
    import zarr
    p = Path(path)
    if not p.exists():
        raise DataFileNotFound(f"embedding store {str(p)!r} does not exist; run `eoembed extract DATA --model NAME "
                               f"--out {p}` first")
    fp = read_fingerprint(p)
    if fp is None:
        raise StoreError(f"{str(p)!r} is not an eoembed embedding store (no {FINGERPRINT_ATTR!r} root attribute); "
                         "write one with eoembed.extract.extract")
    root = zarr.open_group(str(p), mode="r")
    names = list(root.attrs.get("models", []))
    if models is not None:
        unknown = [m for m in models if m not in names]
        if unknown:
            raise KeyError(f"models {unknown} are not in embedding store {str(p)!r} (it holds {names}); "
                           "extract them into a new store")
        names = list(models)
    out: dict[str, xr.DataArray] = {}
    for name in names:
        ds = xr.open_zarr(str(p), group=name, consolidated=False)
        done = np.asarray(root[f"{name}/_done"][:]).astype(bool)
        if not done.all() and not allow_incomplete:
            raise StoreError(f"embedding store {str(p)!r}: model {name!r} is unfinished ({int(done.sum())} of "
                             f"{done.size} chunks done); run the same `eoembed extract` command again to resume it, "
                             "or read the partial result in Python with open_embeddings(..., allow_incomplete=True)")
        da = ds["embedding"].drop_vars([v for v in _HIDDEN_VARS if v in ds["embedding"].coords])
        # Zarr v3 returns variable-length strings as numpy StringDType: give plain str ids to every consumer.
        da = da.assign_coords(sample=np.asarray([str(i) for i in da["sample"].values]))
        da.attrs = dict(ds.attrs)
        da.name = name
        out[name] = da
    return out
