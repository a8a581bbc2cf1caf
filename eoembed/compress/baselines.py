"""Training-light baselines for the ablation table: PCA of the fused vector and random convolutional features.

- :func:`pca_baseline`: sklearn PCA of the raw fused vector, fitted on the same seeded train split as the
  compressor (so its ``val_mse`` is comparable to the autoencoder's), then applied to all samples. The output
  size is ``min(out_dim, n_train_samples, n_features)`` (PCA cannot give more components); a smaller size is
  reported in attrs (``out_dim``, ``out_dim_requested``) and by a warning.
- :func:`rcf_baseline`: the 4th-place Embed2Scale recipe, training-free: torchgeo ``RCF`` in "empirical" mode
  (3x3 filters sampled from the cube's own images, ZCA-whitened) on every cube channel per season, features
  averaged over the seasons, then PCA to ``out_dim`` (capped the same way) fitted on all samples.
- :func:`select_dim`: the baselines' one choice, their size, made like the compressor's epoch: on the selection
  part of a :func:`~eoembed.compress.split_labels` split only (both outputs are PCA-ordered, so the first k
  columns are the k-component embedding); report the chosen size on the report part.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from eoembed import runtime
from eoembed.errors import DataError

__all__ = ["pca_baseline", "rcf_baseline", "select_dim"]

_IN_MEMORY_BYTES = 2 * 1024**3  # rcf_baseline loads cubes up to this size into memory, streams larger ones


def _capped(out_dim: int, n_samples: int, n_features: int, what: str) -> int:
    if out_dim < 1:
        raise ValueError(f"out_dim must be >= 1, got {out_dim}")
    k = min(out_dim, n_samples, n_features)
    if k < out_dim:
        warnings.warn(f"{what}: out_dim {out_dim} capped to {k} (PCA gives at most min(n_samples={n_samples}, "
                      f"n_features={n_features}) components)", stacklevel=3)
    return k


def _coords_like(src: xr.DataArray | xr.Dataset, k: int) -> dict[str, Any]:
    coords: dict[str, Any] = {"sample": np.asarray([str(s) for s in src["sample"].values], dtype=object),
                              "feature": np.arange(k)}
    for c in ("lat", "lon"):
        vals = src[c].values if c in src.coords else np.full(src.sizes["sample"], np.nan)
        coords[c] = ("sample", np.asarray(vals, dtype=np.float64))
    return coords


def pca_baseline(store: Any, out_dim: int = 1024, *, models: Sequence[str] | None = None, val_fraction: float = 0.2,
                 seed: int = 1337) -> xr.DataArray:
    """PCA of the fused vector to ``out_dim`` (capped, see module doc). attrs: method, models, out_dim,
    out_dim_requested, val_mse (reconstruction MSE on the held-out split, same split as the compressor's)."""
    from sklearn.decomposition import PCA

    from eoembed.compress.train import as_fused

    fused = as_fused(store, models)
    x = np.asarray(fused.values, dtype=np.float32)
    n = x.shape[0]
    n_val = int(round(val_fraction * n))
    if not 0.0 < val_fraction < 1.0 or n_val < 1 or n_val > n - 1:
        raise ValueError(f"{n} samples cannot be split with val_fraction={val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    k = _capped(int(out_dim), len(train_idx), x.shape[1], "pca_baseline")
    pca = PCA(n_components=k, random_state=seed, svd_solver="auto")
    pca.fit(x[train_idx])
    rec = pca.inverse_transform(pca.transform(x[val_idx]))
    val_mse = float(np.mean((rec - x[val_idx]) ** 2))
    z = pca.transform(x).astype(np.float32)
    attrs = {"method": "pca", "models": list(fused.attrs.get("models", [])), "out_dim": k,
             "out_dim_requested": int(out_dim), "val_mse": val_mse,
             "explained_variance": float(pca.explained_variance_ratio_.sum())}
    return xr.DataArray(z, dims=("sample", "feature"), coords=_coords_like(fused, k), name="embedding", attrs=attrs)


def select_dim(embeddings: xr.DataArray, split: Any, dims: Sequence[int],
               **evaluate_kwargs: Any) -> tuple[int, pd.DataFrame]:
    """The number of leading (PCA-ordered) components with the best Q-bar on ``split``'s selection part.

    embeddings: a PCA-ordered (sample, feature) array (:func:`pca_baseline`, :func:`rcf_baseline`) with at least
    ``max(dims)`` features (larger candidates are dropped). split: a :class:`~eoembed.compress.SelectionSplit`.
    evaluate_kwargs: the :func:`eoembed.bench.evaluate` protocol. Returns (chosen size, DataFrame of candidates
    with ``candidate``, ``q_select``, ``chosen``); ties go to the smallest size. The report part is not used.
    """
    from eoembed.compress.selection import score_split

    width = int(embeddings.sizes["feature"])
    cands = sorted({int(k) for k in dims if 1 <= int(k) <= width}) or [width]
    q = [score_split(embeddings.isel(feature=slice(0, k)), split, parts=("select",), **evaluate_kwargs)["q_select"]
         for k in cands]
    best = int(np.argmax(np.nan_to_num(np.asarray(q, dtype=float), nan=-np.inf)))
    table = pd.DataFrame({"candidate": cands, "q_select": q, "chosen": [i == best for i in range(len(cands))]})
    return cands[best], table


class _CubeImages(torch.utils.data.Dataset):
    """(sample, season) images of a cube, per-band standardised, NaN -> 0, as torchgeo-style {"image"} dicts."""

    def __init__(self, bands: xr.DataArray, mean: np.ndarray, std: np.ndarray) -> None:
        self.bands, self.mean, self.std = bands, mean[:, None, None], std[:, None, None]
        self.n_season = bands.sizes["season"]

    def __len__(self) -> int:
        return self.bands.sizes["sample"] * self.n_season

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, t = divmod(int(i), self.n_season)
        img = np.asarray(self.bands.isel(sample=s, season=t).values, dtype=np.float32)
        img = np.nan_to_num((img - self.mean) / self.std)
        return {"image": torch.from_numpy(img.astype(np.float32))}


def _cube_bands(cube: Any, bands: Sequence[str] | None) -> xr.DataArray:
    if isinstance(cube, (str, os.PathLike)):
        from eoembed.data import open_cube  # type: ignore[attr-defined]

        cube = open_cube(cube)
    da = cube["bands"] if isinstance(cube, xr.Dataset) else cube
    if not isinstance(da, xr.DataArray) or tuple(da.dims) != ("sample", "season", "band", "y", "x"):
        raise DataError("rcf_baseline needs a cube (xr.Dataset with 'bands' or a DataArray) with dims "
                        f"('sample','season','band','y','x'), got {getattr(da, 'dims', type(da).__name__)}; "
                        "open one with eoembed.data.open_cube")
    if bands is not None:
        missing = [b for b in bands if b not in list(da["band"].values)]
        if missing:
            raise DataError(f"bands {missing} are not in the cube (it has {list(da['band'].values)}); "
                            "pick bands from that list")
        da = da.sel(band=list(bands))
    return da


@runtime.full_float32
def rcf_baseline(cube: Any, n_features: int = 4096, out_dim: int = 1024, *, seed: int = 0,
                 bands: Sequence[str] | None = None, kernel_size: int = 3, bias: float = -1.0, batch_size: int = 8,
                 device: Any = None, progress: bool = True) -> xr.DataArray:
    """Training-free random-convolutional-features embedding of a cube (4th-place Embed2Scale recipe).

    cube: cube Dataset / its "bands" DataArray / a path for eoembed.data.open_cube. Every band (or ``bands``) is
    standardised with the cube's own per-band mean/std; NaN become 0. ``n_features`` (even) RCF features per
    season (torchgeo RCF, empirical 3x3 filters drawn from the cube with ``seed``), mean over seasons, then PCA
    (capped at n_samples / n_features) -> (sample, feature) float32 with lat/lon.
    """
    from sklearn.decomposition import PCA
    from torchgeo.models import RCF

    if n_features < 2 or n_features % 2:
        raise ValueError(f"n_features must be even and >= 2 (RCF gives +/- pairs), got {n_features}")
    da = _cube_bands(cube, bands)
    if da.sizes["y"] <= kernel_size or da.sizes["x"] <= kernel_size:
        raise DataError(f"cube images are {da.sizes['y']}x{da.sizes['x']} px; RCF needs more than kernel_size="
                        f"{kernel_size}")
    if da.nbytes <= _IN_MEMORY_BYTES:  # small cubes: read once instead of once per statistic / batch / patch
        da = da.load()
    red = ("sample", "season", "y", "x")
    mean = np.asarray(da.mean(dim=red, skipna=True).values, dtype=np.float64)
    std = np.asarray(da.std(dim=red, skipna=True).values, dtype=np.float64)
    flat = [str(b) for b, s in zip(da["band"].values, std) if not np.isfinite(s) or s == 0]
    if flat:
        raise DataError(f"bands {flat} are constant or all-NaN in the cube; drop them with bands=[...]")
    ds = _CubeImages(da, mean.astype(np.float32), std.astype(np.float32))
    dev = runtime.resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rcf = RCF(in_channels=da.sizes["band"], features=int(n_features), kernel_size=kernel_size, bias=bias,
                  seed=seed + 1, mode="empirical", dataset=ds)
    rcf = rcf.to(dev).eval()
    n, n_season = da.sizes["sample"], da.sizes["season"]
    feats = np.zeros((n, n_features), dtype=np.float32)
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="rcf features", unit="batch")
    for s in starts:
        block = np.asarray(da.isel(sample=slice(s, s + batch_size)).values, dtype=np.float32)
        block = np.nan_to_num((block - ds.mean[None, None]) / ds.std[None, None])
        b = block.shape[0]
        x = torch.from_numpy(block.reshape(b * n_season, *block.shape[2:]))
        if dev.type == "cuda":
            x = x.pin_memory().to(dev, non_blocking=True)
        f = rcf(x).float().reshape(b, n_season, -1).mean(dim=1)
        feats[s:s + b] = f.cpu().numpy()
    k = _capped(int(out_dim), n, n_features, "rcf_baseline")
    z = PCA(n_components=k, random_state=seed).fit_transform(feats).astype(np.float32)
    attrs = {"method": "rcf", "n_features": int(n_features), "out_dim": k, "out_dim_requested": int(out_dim),
             "bands": [str(b) for b in da["band"].values], "seed": int(seed)}
    return xr.DataArray(z, dims=("sample", "feature"), coords=_coords_like(da, k), name="embedding", attrs=attrs)
