"""Synthetic embeddings for the evaluation benchmarks: 8 latent directions in ``dim`` dimensions and 11 tasks like
the challenge's (10 regression, 1 binary), generated in blocks (no float64 copy at 100k x 1,024)."""
from __future__ import annotations

import numpy as np
import pandas as pd

TASKS = ["biomass_mean", "biomass_std", "clouds_reg", "crops", "heatisland_mean", "heatisland_std",
         "landcover_agriculture", "landcover_forest", "nodata", "random_cls", "random_reg"]


def eleven_tasks(n: int, dim: int, seed: int = 0, block: int = 4096) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(X float32 (n, dim), ids, labels with ``attrs["task_types"]``); the same values for any ``block``."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 8)).astype(np.float32)
    proj = rng.standard_normal((8, dim)).astype(np.float32) * 0.5
    X = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, block):
        X[a:a + block] = latent[a:a + block] @ proj + rng.standard_normal((min(block, n - a), dim), dtype=np.float32)
    lab = {}
    for j, t in enumerate(TASKS):
        if t == "random_cls":
            lab[t] = (rng.standard_normal(n) > 0).astype(float)
        elif t == "random_reg":
            lab[t] = rng.standard_normal(n)
        else:
            lab[t] = latent[:, j % 8] + (0.3 + 0.2 * j) * rng.standard_normal(n)
    ids = np.array([f"s{i:07d}" for i in range(n)])
    lab = pd.DataFrame(lab, index=pd.Index(ids, name="id"))
    lab.attrs["task_types"] = {t: "classification" if t == "random_cls" else "regression" for t in TASKS}
    return X, ids, lab
