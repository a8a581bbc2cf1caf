"""Baselines (PCA, RCF)."""
from __future__ import annotations

import numpy as np
import pytest
from compress_helpers import synthetic_embeddings, tiny_cube

from eoembed.compress import pca_baseline, rcf_baseline
from eoembed.errors import DataError


@pytest.fixture(scope="module")
def emb():
    return synthetic_embeddings(n=60, seed=1)


def test_baselines_shapes_caps_and_determinism(emb):
    data, _ = emb
    z = pca_baseline(data, out_dim=5)
    assert z.shape == (60, 5) and np.isfinite(z.attrs["val_mse"])
    with pytest.warns(UserWarning, match="capped"):
        big = pca_baseline({"presto": data["presto"]}, out_dim=1024)
    assert big.shape == (60, 7) and big.attrs["out_dim_requested"] == 1024
    cube = tiny_cube([f"x{i}" for i in range(6)])
    a = rcf_baseline(cube, n_features=16, out_dim=4, seed=3, progress=False)
    b = rcf_baseline(cube["bands"], n_features=16, out_dim=4, seed=3, progress=False)
    assert a.dims == ("sample", "feature") and a.shape == (6, 4)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="even"):
        rcf_baseline(cube, n_features=15, out_dim=4, progress=False)
    with pytest.raises(DataError, match="not in the cube"):
        rcf_baseline(cube, n_features=16, out_dim=4, bands=["s1/VV"], progress=False)
