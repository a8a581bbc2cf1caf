"""2-D layouts of embeddings for the explorer views, cached on disk: :func:`umap_layout`, :func:`layouts`.

A layout is a ``(sample, component)`` DataArray (components ``x``, ``y``; sample ids as coordinates). UMAP
(umap-learn) pays ~45-55 s of numba compilation at its first fit in a process on a 2-core CPU, so layouts are
cached on disk, keyed by a content hash of the embedding values, the sample ids, the method and its parameters:
the second call with the same input returns the stored layout without fitting. :func:`layouts` precomputes one
layout per embedding of an ``eoembed demo`` results folder into ``RESULTS/layouts/`` (CLI ``eoembed layouts``),
which the explorer widgets read with :func:`open_layouts`.

UMAP needs more samples than ``n_neighbors``; with fewer, :func:`umap_layout` falls back to PCA with a warning and
records ``method="pca"`` in the layout's attributes (pass ``method="pca"`` to ask for PCA outright).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from eoembed.errors import DataError, DataFileNotFound

__all__ = ["REDUCERS", "cached_layout", "layout_key", "layouts", "open_layouts", "results_embeddings",
           "umap_layout"]

#: Folder of a results folder that holds the precomputed layouts, and the index file inside it.
LAYOUTS_DIR, INDEX = "layouts", "layouts.json"
#: Bumped when the cached file format or the reducers' meaning changes (old cache entries are then ignored).
CACHE_VERSION = 1


def _fit_umap(x: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed,
                        n_jobs=1)  # a seed makes umap-learn single-threaded anyway (it warns otherwise)
    return np.asarray(reducer.fit_transform(x), np.float32)


def _fit_pca(x: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    n, d = x.shape
    m = min(2, n, d)
    out = np.zeros((n, 2), np.float32)
    if m > 0 and n > 1:
        out[:, :m] = PCA(n_components=m, random_state=seed).fit_transform(x)
    return out


#: The reducers by method name: ``f(x, n_neighbors, min_dist, seed) -> (n, 2) float32``. Tests replace an entry
#: with a cheap fake to check caching without paying for a UMAP fit.
REDUCERS: dict[str, Callable[[np.ndarray, int, float, int], np.ndarray]] = {"umap": _fit_umap, "pca": _fit_pca}


def _as_matrix(embeddings: Any) -> tuple[np.ndarray, list[str]]:
    """(float32 (n, d) values, sample ids) of a (sample, [season,] feature) DataArray; errors name bad samples."""
    if isinstance(embeddings, np.ndarray):
        raise DataError("umap_layout needs sample ids: pass a (sample, feature) DataArray, e.g. "
                        "xr.DataArray(x, dims=('sample', 'feature'), coords={'sample': ids})")
    if not isinstance(embeddings, xr.DataArray):
        raise DataError(f"umap_layout takes a (sample, feature) DataArray, got {type(embeddings).__name__}")
    if "sample" not in embeddings.dims:
        raise DataError(f"embeddings have dims {tuple(embeddings.dims)}; expected a 'sample' dimension")
    da = embeddings.transpose("sample", ...)
    n = da.sizes["sample"]
    x = np.asarray(da.values, np.float32).reshape(n, -1)
    ids = [str(i) for i in da["sample"].values] if "sample" in da.coords else [str(i) for i in range(n)]
    if len(set(ids)) != n:
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise DataError(f"duplicate sample ids in the embeddings (e.g. {dup}); give each sample once")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        few = [ids[i] for i in np.flatnonzero(bad)[:3]]
        raise DataError(f"{int(bad.sum())} samples have NaN/inf embedding values (e.g. {few}); re-extract them or "
                        "drop them (emb.dropna('sample')) before computing a layout")
    if n == 0 or x.shape[1] == 0:
        raise DataError(f"embeddings of shape {x.shape} are empty; nothing to lay out")
    return x, ids


def layout_key(embeddings: Any, method: str = "umap", n_neighbors: int = 15, min_dist: float = 0.1,
               seed: int = 0) -> str:
    """The cache key of a layout: sha1 of the values (float32), sample ids, method and parameters."""
    x, ids = _as_matrix(embeddings)
    return _key(x, ids, method, n_neighbors, min_dist, seed)


def _key(x: np.ndarray, ids: Sequence[str], method: str, n_neighbors: int, min_dist: float, seed: int) -> str:
    h = hashlib.sha1()
    h.update(json.dumps({"v": CACHE_VERSION, "method": method, "n_neighbors": int(n_neighbors),
                         "min_dist": float(min_dist), "seed": int(seed), "shape": list(x.shape)}).encode())
    h.update("\n".join(ids).encode())
    h.update(np.ascontiguousarray(x, np.float32).tobytes())
    return h.hexdigest()


def _to_array(xy: np.ndarray, ids: Sequence[str], attrs: dict) -> xr.DataArray:
    return xr.DataArray(np.asarray(xy, np.float32), dims=("sample", "component"),
                        coords={"sample": np.asarray(ids, dtype=object), "component": ["x", "y"]}, attrs=attrs)


def _read_cache(path: Path) -> xr.DataArray | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            xy, ids, attrs = z["xy"], [str(i) for i in z["ids"]], json.loads(str(z["attrs"]))
    except (OSError, ValueError, KeyError):  # absent or unreadable (e.g. interrupted write): recompute
        return None
    return _to_array(xy, ids, {**attrs, "cached": True})


def _write_cache(path: Path, da: xr.DataArray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    attrs = {k: v for k, v in da.attrs.items() if k != "cached"}
    np.savez(tmp, xy=da.values, ids=np.asarray([str(i) for i in da["sample"].values], dtype=str),
             attrs=np.asarray(json.dumps(attrs)))
    os.replace(tmp, path)


def _resolve_method(method: str, n: int, n_neighbors: int) -> str:
    if method not in REDUCERS:
        raise DataError(f"method {method!r} is unknown; use one of {sorted(REDUCERS)}")
    if method == "umap" and n <= max(int(n_neighbors), 3):
        warnings.warn(f"only {n} samples (UMAP needs more than n_neighbors={n_neighbors}): using a PCA layout "
                      "instead (attrs['method'] == 'pca')", stacklevel=3)
        return "pca"
    return method


def cached_layout(embeddings: Any, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
                  cache_dir: str | os.PathLike | None = None, method: str = "umap") -> xr.DataArray | None:
    """The cached layout of :func:`umap_layout` with these arguments, or None when it was never computed."""
    if cache_dir is None:
        return None
    x, ids = _as_matrix(embeddings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _resolve_method(method, len(ids), n_neighbors)
    return _read_cache(Path(cache_dir) / f"{_key(x, ids, m, n_neighbors, min_dist, seed)}.npz")


def umap_layout(embeddings: Any, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
                cache_dir: str | os.PathLike | None = None, progress: bool = True,
                method: str = "umap") -> xr.DataArray:
    """A 2-D UMAP layout of (sample, [season,] feature) embeddings: a (sample, component) DataArray.

    n_neighbors, min_dist, seed: UMAP's parameters (umap-learn; ``seed`` fixes ``random_state``). cache_dir: a
    folder of cached layouts (``<key>.npz``, key = :func:`layout_key`); a layout found there is returned without
    fitting (``attrs["cached"] = True``). method: "umap" (falls back to "pca" with a warning when there are no
    more samples than ``n_neighbors``) or "pca". progress: a progress bar around the fit (the first UMAP fit of a
    process compiles numba code: ~50 s on a 2-core CPU). Samples keep the input's order; ``attrs`` record the
    method, parameters and key.
    """
    from eoembed.checks import check_int

    check_int("n_neighbors", n_neighbors, 2)
    check_int("seed", seed, 0)
    if not 0.0 <= float(min_dist) <= 1.0:
        raise DataError(f"min_dist must be in [0, 1], got {min_dist}")
    x, ids = _as_matrix(embeddings)
    m = _resolve_method(method, len(ids), n_neighbors)
    key = _key(x, ids, m, n_neighbors, min_dist, seed)
    path = Path(cache_dir) / f"{key}.npz" if cache_dir is not None else None
    if path is not None:
        hit = _read_cache(path)
        if hit is not None:
            return hit
    attrs = {"method": m, "n_neighbors": int(n_neighbors), "min_dist": float(min_dist), "seed": int(seed),
             "key": key, "n_features": int(x.shape[1]), "cached": False}
    name = embeddings.name if isinstance(embeddings, xr.DataArray) and embeddings.name else None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=1, desc=f"{m} layout" + (f" {name}" if name else "") + f" ({len(ids)} samples)",
                   unit="fit")
    try:
        xy = np.asarray(REDUCERS[m](x, int(n_neighbors), float(min_dist), int(seed)), np.float32)
    finally:
        if progress:
            bar.update(1)
            bar.close()
    if xy.shape != (len(ids), 2):
        raise RuntimeError(f"the {m} reducer returned shape {xy.shape}, expected ({len(ids)}, 2)")
    out = _to_array(xy, ids, attrs)
    if path is not None:
        _write_cache(path, out)
    return out


# ------------------------------------------------------------------------------------------ results folders
def _flat(da: xr.DataArray) -> xr.DataArray:
    """(sample, [season,] feature) -> (sample, feature), loaded."""
    da = da.transpose("sample", ...)
    vals = np.asarray(da.values, np.float32).reshape(da.sizes["sample"], -1)
    return xr.DataArray(vals, dims=("sample", "feature"),
                        coords={"sample": np.asarray([str(s) for s in da["sample"].values], dtype=object),
                                "feature": np.arange(vals.shape[1])})


def results_embeddings(results_dir: str | os.PathLike, names: Sequence[str] | None = None) -> dict[str, xr.DataArray]:
    """The embeddings of an ``eoembed demo`` results folder: ``{name: (sample, feature) DataArray}``.

    One entry per model group of ``emb.zarr`` (seasons flattened) and ``fused_ae`` for the compressor's exported
    ``embeddings.csv``. ``names`` picks (and orders) entries; an unknown name is an error listing the known ones.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise DataFileNotFound(f"results folder {str(root)!r} does not exist; run `eoembed demo {root}` first")
    found: dict[str, Any] = {}
    store = root / "emb.zarr"
    if store.is_dir():
        from eoembed.extract import open_embeddings
        for k, v in open_embeddings(store, allow_incomplete=True).items():
            found[k] = v
    csv = root / "embeddings.csv"
    if csv.is_file():
        found["fused_ae"] = csv
    if not found:
        raise DataFileNotFound(f"no embeddings in {str(root)!r} (looked for emb.zarr and embeddings.csv); "
                               f"run `eoembed demo {root}` first")
    pick = list(found) if names is None else list(names)
    unknown = [n for n in pick if n not in found]
    if unknown:
        raise DataError(f"embedding(s) {unknown} are not in {str(root)!r}; it holds {sorted(found)}")
    out = {}
    for n in pick:
        v = found[n]
        if isinstance(v, Path):
            from eoembed.bench.io import read_embeddings
            vals, ids, _ = read_embeddings(v)
            v = xr.DataArray(np.asarray(vals, np.float32), dims=("sample", "feature"),
                             coords={"sample": np.asarray([str(i) for i in ids], dtype=object),
                                     "feature": np.arange(vals.shape[1])})
        out[n] = _flat(v).rename(n)
    return out


def layouts(results_dir: str | os.PathLike, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
            names: Sequence[str] | None = None, method: str = "umap", prefixes: Sequence[int] = (),
            progress: bool = True) -> dict[str, xr.DataArray]:
    """Precompute a layout for every embedding of a results folder (:func:`results_embeddings`) into
    ``RESULTS/layouts/`` (the :func:`umap_layout` cache, plus ``layouts.json`` naming each embedding's entry).

    prefixes: also lay out the first k coordinates of each embedding wider than k (named ``"<name>[:k]"``), e.g.
    the Matryoshka prefixes of ``fused_ae``, which :class:`widgets.PrefixExplorer` then shows instead of PCA.

    Re-running is instant for the layouts already there (cache hits). Returns ``{name: layout}``; read them later
    with :func:`open_layouts`. Samples with NaN embeddings (an unfinished extraction) are an error naming them.
    """
    root = Path(results_dir)
    embs = results_embeddings(root, names)
    for k in sorted({int(k) for k in prefixes}):
        if k < 1:
            raise DataError(f"prefix sizes must be >= 1, got {k}")
        embs.update({f"{n}[:{k}]": e.isel(feature=slice(0, k)).rename(f"{n}[:{k}]") for n, e in list(embs.items())
                     if "[:" not in n and e.sizes["feature"] > k})
    cache = root / LAYOUTS_DIR
    index_p = cache / INDEX
    index = json.loads(index_p.read_text()) if index_p.is_file() else {}
    out: dict[str, xr.DataArray] = {}
    items: Any = embs.items()
    if progress:
        from tqdm.auto import tqdm
        items = tqdm(list(items), desc="layouts", unit="embedding")
    for name, emb in items:
        lay = umap_layout(emb, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, cache_dir=cache,
                          progress=False, method=method)
        out[name] = lay.rename(name)
        index[name] = {"file": f"{lay.attrs['key']}.npz", **{k: lay.attrs[k] for k in
                                                             ("method", "n_neighbors", "min_dist", "seed")}}
        cache.mkdir(parents=True, exist_ok=True)
        tmp = index_p.with_name(INDEX + ".tmp")
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        os.replace(tmp, index_p)  # after each layout: an interrupted run keeps what it finished
    return out


def open_layouts(results_dir: str | os.PathLike, names: Sequence[str] | None = None) -> dict[str, xr.DataArray]:
    """The layouts :func:`layouts` wrote into a results folder, ``{name: (sample, component) DataArray}``
    (empty when none were computed; run ``eoembed layouts RESULTS``)."""
    index_p = Path(results_dir) / LAYOUTS_DIR / INDEX
    if not index_p.is_file():
        return {}
    index = json.loads(index_p.read_text())
    out = {}
    for name in (index if names is None else names):
        if name not in index:
            raise DataError(f"no layout named {name!r} in {str(index_p)!r} (it has {sorted(index)}); run "
                            f"`eoembed layouts {results_dir}`")
        da = _read_cache(index_p.parent / index[name]["file"])
        if da is None:
            raise DataFileNotFound(f"layout file of {name!r} listed in {str(index_p)!r} is missing or unreadable; "
                                   f"re-run `eoembed layouts {results_dir}`")
        out[name] = da.rename(name)
    return out


def _as_layout_dict(obj: Any) -> dict[str, xr.DataArray]:  # used by the widgets
    if isinstance(obj, xr.DataArray):
        return {str(obj.name or "layout"): obj}
    if isinstance(obj, Mapping):
        return {str(k): v for k, v in obj.items()}
    raise DataError(f"expected a layout DataArray or {{name: layout}} dict, got {type(obj).__name__}")
