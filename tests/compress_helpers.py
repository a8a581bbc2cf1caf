"""Synthetic embedding stores in the contract format (one Zarr group per model) for the compression tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

# model name -> (n_seasons or None, n_features)
TINY_MODELS = {"croma_tiny": (4, 6), "dofa_tiny": (4, 5), "presto": (None, 7)}


def synthetic_embeddings(n: int = 64, seed: int = 0, models: dict | None = None
                         ) -> tuple[dict[str, xr.DataArray], pd.DataFrame]:
    """{model: DataArray} whose values carry a 3-d latent signal, and labels (2 regression + 1 classification)."""
    models = TINY_MODELS if models is None else models
    rng = np.random.default_rng(seed)
    ids = np.asarray([f"s{i:04d}" for i in range(n)], dtype=object)
    lat, lon = rng.uniform(-60, 60, n), rng.uniform(-180, 180, n)
    latent = rng.normal(size=(n, 3))
    out = {}
    for k, (name, (ns, nf)) in enumerate(models.items()):
        width = (ns or 1) * nf
        w = rng.normal(size=(3, width)) * (1 + k)
        vals = (latent @ w + 0.1 * rng.normal(size=(n, width)) + k).astype(np.float32)
        if ns:
            da = xr.DataArray(vals.reshape(n, ns, nf), dims=("sample", "season", "feature"),
                              coords={"sample": ids, "season": ["MAM", "JJA", "SON", "DJF"][:ns],
                                      "lat": ("sample", lat), "lon": ("sample", lon)})
        else:
            da = xr.DataArray(vals, dims=("sample", "feature"),
                              coords={"sample": ids, "lat": ("sample", lat), "lon": ("sample", lon)})
        da.attrs = {"model": name, "weights": "random"}
        out[name] = da.rename("embedding")
    labels = pd.DataFrame({"reg_a": latent[:, 0] + 0.1 * rng.normal(size=n),
                           "reg_b": latent[:, 1] ** 2 + latent[:, 2],
                           "cls_c": (latent[:, 2] > 0).astype(float)}, index=pd.Index(ids, name="id"))
    labels.attrs["task_types"] = {"reg_a": "regression", "reg_b": "regression", "cls_c": "classification"}
    return out, labels


def write_store(path: str | Path, embeddings: dict[str, xr.DataArray]) -> Path:
    """Write {model: DataArray} as a contract-format store: emb.zarr/<model>/embedding, root attrs."""
    path = Path(path)
    for name, da in embeddings.items():
        ds = da.to_dataset(name="embedding")
        ds["sample"] = ds["sample"].astype(str)
        ds.to_zarr(str(path), group=name, mode="a" if path.exists() else "w", consolidated=False)
    root = zarr.open_group(str(path), mode="a")
    root.attrs.update({"eoembed_version": "test", "models": list(embeddings)})
    return path


def write_label_folder(labels: pd.DataFrame, folder: str | Path) -> Path:
    """NeuCo-Bench labels folder: <task>__<type>.csv with columns id,label."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for task, typ in labels.attrs["task_types"].items():
        labels[task].rename("label").reset_index().to_csv(folder / f"{task}__{typ}.csv", index=False)
    return folder


def tiny_cube(ids: list[str], size: int = 10) -> xr.Dataset:
    """A contract-form cube (3 S2 bands, 4 seasons) with random values."""
    rng = np.random.default_rng(0)
    n = len(ids)
    vals = rng.uniform(0, 3000, size=(n, 4, 3, size, size)).astype(np.float32)
    return xr.Dataset({"bands": (("sample", "season", "band", "y", "x"), vals)},
                      coords={"sample": ids, "season": ["MAM", "JJA", "SON", "DJF"],
                              "band": ["s2l2a/B02", "s2l2a/B03", "s2l2a/B04"],
                              "lat": ("sample", np.zeros(n)), "lon": ("sample", np.zeros(n))})
