"""A real SIGKILL in the middle of `python -m eoembed.extract`, then a restart: the store equals an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import zarr

from eoembed.extract import extract, open_embeddings
from test_extract_fakes import make_cube, slow_fake

TESTS = Path(__file__).parent


def done_chunks(out: Path) -> int:
    d = out / "slow" / "_done" / "c"  # a flag file appears when a chunk is committed (0 = fill value, not stored)
    return len(list(d.iterdir())) if d.exists() else 0


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    cube = make_cube(n=24, size=16, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube.to_zarr(tmp_path / "cube.zarr", consolidated=False)
    ref = tmp_path / "ref.zarr"
    extract(cube, [slow_fake()], out=ref, batch_size=2, chunk_size=4, progress=False)

    out = tmp_path / "emb.zarr"
    env = {**os.environ, "EOEMBED_FAKE_DELAY": "0.4",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "eoembed.extract", str(tmp_path / "cube.zarr"), "--model",
           "test_extract_fakes:slow_fake", "--out", str(out), "--batch-size", "2", "--chunk-size", "4", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while done_chunks(out) < 1:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no chunk committed within 60 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    flags = np.asarray(zarr.open_group(str(out), mode="r")["slow/_done"][:])
    assert 1 <= flags.sum() < flags.size, "the kill must land between the first and the last chunk"

    res = extract(tmp_path / "cube.zarr", [slow_fake()], out=out, batch_size=2, chunk_size=4, progress=False)
    assert res.chunks_skipped == int(flags.sum()) and res.chunks_computed == flags.size - int(flags.sum())
    a, b = open_embeddings(ref)["slow"], open_embeddings(out)["slow"]
    assert list(a["sample"].values) == list(b["sample"].values) == list(cube["sample"].values)
    np.testing.assert_array_equal(a.values, b.values)
    assert np.isfinite(b.values).all()
