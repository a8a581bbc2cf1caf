"""Shared fixtures: ``shared_dir`` (real data in ../shared, skipped when absent), ``sample_root`` (a small synthetic
SSL4EO-S12-downstream dataset made once per session) and ``sample_cube`` (that dataset opened lazily).

Autouse: ``torch_global_state_unchanged`` fails any test after which torch's process-wide numeric state (matmul
precision per backend, TF32, deterministic flags, default dtype, threads) differs from before it: no eoembed import,
model build or computation may change it."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"

#: Size of the session sample dataset (kept small: every test file may use it).
SAMPLE_N = 40
SAMPLE_SIZE = 32
SAMPLE_SEED = 0


@pytest.fixture(autouse=True)
def torch_global_state_unchanged():
    """Fail the test if torch's global numeric state differs after it (see eoembed.runtime.global_state)."""
    from eoembed.runtime import global_state, restore_global_state

    before = global_state()
    yield
    after = global_state()
    if after != before:
        restore_global_state(before)  # do not let one offender fail every later test
        diff = {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
        pytest.fail(f"torch global numeric state changed during the test (before, after): {diff}")


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    """Empty EOEMBED_WEIGHTS and TORCH_HOME so no real checkpoint is found; returns (env_dir, hub_checkpoints_dir)."""
    import torch

    env = tmp_path / "weights"
    env.mkdir()
    monkeypatch.setenv("EOEMBED_WEIGHTS", str(env))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    return env, hub


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path to ../shared (real data and weights beside the checkout); skips the test when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"real data folder {SHARED} is absent (it sits beside the checkout on developer machines and "
                    "CI; a fresh clone has no copy)")
    return SHARED


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """A synthetic dataset (n=40, 32x32 px, seed 0) in the SSL4EO-S12-downstream layout, generated once per session."""
    from eoembed.data import sample
    root = tmp_path_factory.mktemp("eoembed_sample") / "sample"
    return sample(root, n=SAMPLE_N, seed=SAMPLE_SEED, size=SAMPLE_SIZE, progress=False)


@pytest.fixture(scope="session")
def sample_cube(sample_root):
    """``open_cube(sample_root)``: the session sample as a lazy (dask) cube."""
    from eoembed.data import open_cube
    return open_cube(sample_root)


@pytest.fixture(scope="session")
def sample_labels(sample_root):
    """Labels of the session sample (DataFrame, index id, 11 task columns)."""
    from eoembed.data import read_labels
    return read_labels(sample_root / "labels")
