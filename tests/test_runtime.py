"""eoembed.runtime: explicit precision, the one device helper, and torch's global numeric state left alone."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from eoembed import runtime


def test_preserve_global_state_undoes_a_library_that_sets_medium():
    before = runtime.global_state()
    with runtime.preserve_global_state():
        torch.set_float32_matmul_precision("medium")      # what `import terratorch` does
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_num_threads(1)
        assert runtime.global_state() != before
    assert runtime.global_state() == before


def test_compute_float32_overrides_the_callers_medium_and_restores_it():
    with runtime.preserve_global_state():
        torch.set_float32_matmul_precision("medium")
        caller = runtime.global_state()
        assert caller["fp32_precision.mkldnn.matmul"] == "bf16"
        with runtime.compute("float32", "cpu"):
            inside = runtime.global_state()
            for key in ("fp32_precision.mkldnn.matmul", "fp32_precision.cuda.matmul", "fp32_precision.mkldnn.conv",
                        "fp32_precision.cudnn.conv"):
                assert inside[key] == "ieee", key
            assert not torch.is_autocast_enabled("cpu")
        assert runtime.global_state() == caller


def test_compute_restores_after_an_exception_and_sets_threads():
    before = runtime.global_state()
    with pytest.raises(KeyError):
        with runtime.compute("float32", "cpu", threads=1):
            assert torch.get_num_threads() == 1
            raise KeyError("boom")
    assert runtime.global_state() == before


def test_bf16_is_a_cuda_opt_in_and_bad_values_are_refused():
    with pytest.raises(ValueError, match="opt-in for CUDA"):
        runtime.check_precision("bf16", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        runtime.check_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        runtime.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA"):
            runtime.resolve_device("cuda")
    assert runtime.resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert runtime.describe("float32")["precision"] == "float32"


_BUILD_ALL = r"""
import json, torch
from eoembed.runtime import global_state
before = global_state()
import eoembed, eoembed.data, eoembed.models, eoembed.extract, eoembed.bench, eoembed.compress, eoembed.pipeline
from eoembed.models import load_model, model_names
after_import = global_state()
built = []
for name in model_names():
    m = load_model(name, weights=None, size="tiny")
    built.append([name, m.metadata["precision"]])
after_build = global_state()
import terratorch  # a user importing it themselves afterwards does change it: the check above is not vacuous
after_user_import = global_state()
print(json.dumps({"before": before, "import": after_import, "build": after_build, "user": after_user_import,
                  "built": built}))
"""


def test_building_every_registered_model_leaves_global_state_alone():
    """In a fresh process (terratorch not yet imported): importing eoembed and building every model (tiny)."""
    out = subprocess.run([sys.executable, "-c", _BUILD_ALL], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["import"] == res["before"]
    assert res["build"] == res["before"], {k: (res["before"][k], res["build"][k]) for k in res["before"]
                                           if res["before"][k] != res["build"][k]}
    names = [n for n, _ in res["built"]]
    assert {"croma_base", "dofa_base", "prithvi_eo_v2_300", "presto", "copernicusfm_base"} <= set(names)
    assert all(p == "float32" for _, p in res["built"])
    # terratorch was already imported by the Prithvi build, so the user's import is a no-op here
    assert res["user"] == res["before"]


def _record_switches(store):
    def hook(module, args):
        store.append(runtime.global_state())
    return hook


def test_models_compute_at_the_precision_they_record_under_a_callers_medium():
    """A caller sets "medium" (fp32 matmuls may run in bf16 on AMX CPUs / TF32 on GPUs); eoembed's forward still
    runs its matmuls at full fp32 (checked inside the forward, so this holds on any CPU) and says so."""
    from eoembed.models import load_model

    seen: list[dict] = []
    emb = load_model("croma_base", weights=None, size="tiny")
    first = next(m for m in emb.backbone.modules() if isinstance(m, torch.nn.Linear))
    first.register_forward_pre_hook(_record_switches(seen))
    x = np.random.default_rng(0).uniform(100, 3000, (2, 4, len(emb.spec.bands), 16, 16)).astype(np.float32)
    with runtime.preserve_global_state():
        torch.set_float32_matmul_precision("medium")
        out = emb.embed(x, list(emb.spec.bands))
        assert torch.get_float32_matmul_precision() == "medium"   # the caller's setting is back afterwards
    assert seen and all(s["fp32_precision.mkldnn.matmul"] == "ieee" and s["fp32_precision.cuda.matmul"] == "ieee"
                        for s in seen)
    assert emb.metadata["precision"] == "float32" and np.isfinite(out).all()


def test_presto_reference_under_callers_medium(shared_dir):
    """The real Presto weights reproduce the reference vectors even when the caller asked for "medium"; the
    same pixels give the same vectors at batch sizes 10 and 24 (the failure seen on AMX CPUs)."""
    from eoembed.models.presto import PRESTO_RAW_BANDS, build_presto, presto_embed_pixels
    from eoembed.models.presto_nn import PRESTO_ADD, PRESTO_DIV

    ref = dict(np.load(shared_dir / "weights" / "presto" / "reference_vectors.npz"))
    presto = build_presto(shared_dir / "weights" / "presto" / "default_model.pt")
    seen: list[dict] = []
    presto.encoder.register_forward_pre_hook(_record_switches(seen))
    raw = ref["x"].astype(np.float64)[..., :16] * np.asarray(PRESTO_DIV[:16]) - np.asarray(PRESTO_ADD[:16])
    mask = ref["mask"][..., :16].astype(bool)
    kw = dict(model=presto, dynamic_world=ref["dynamic_world"], progress=False, mask=mask)
    with runtime.preserve_global_state():
        torch.set_float32_matmul_precision("medium")
        a = presto_embed_pixels(raw, PRESTO_RAW_BANDS, ref["month"], ref["latlons"], batch_size=10, **kw)
        b = presto_embed_pixels(raw, PRESTO_RAW_BANDS, ref["month"], ref["latlons"], batch_size=24, **kw)
    assert seen and all(s["fp32_precision.mkldnn.matmul"] == "ieee" for s in seen)
    assert np.abs(a - ref["embedding_masked"]).max() < 1e-4
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert presto.metadata["precision"] == "float32"


def test_probe_engine_runs_at_full_fp32_under_callers_medium(monkeypatch):
    from eoembed.bench import probe

    seen: list[dict] = []
    real = probe._epoch_metric

    def spy(*args, **kwargs):
        seen.append(runtime.global_state())
        return real(*args, **kwargs)

    monkeypatch.setattr(probe, "_epoch_metric", spy)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    Y = rng.normal(size=(1, 60))
    tr = [np.arange(50)]
    te = [np.arange(50, 60)]
    with runtime.preserve_global_state():
        torch.set_float32_matmul_precision("medium")
        probe.train_linear_probes(X, Y, [0], [False], tr, te, epochs=2, progress=False)
    assert len(seen) == 2 and all(s["fp32_precision.mkldnn.matmul"] == "ieee" for s in seen)


def test_extract_records_precision_and_refuses_bf16_on_cpu(sample_cube, tmp_path):
    from eoembed.extract import extract, open_embeddings

    sub = sample_cube.isel(sample=slice(0, 4))
    with pytest.raises(ValueError, match="opt-in for CUDA"):
        extract(sub, ["dofa_base"], out=tmp_path / "bf16.zarr", size="tiny", weights=None, device="cpu",
                precision="bf16", progress=False)
    assert not (tmp_path / "bf16.zarr").exists()          # refused before anything was written
    extract(sub, ["dofa_base"], out=tmp_path / "emb.zarr", size="tiny", weights=None, device="cpu", progress=False)
    assert open_embeddings(tmp_path / "emb.zarr")["dofa_base"].attrs["precision"] == "float32"


def test_overlapping_compute_blocks_on_threads_leave_no_trace():
    """Dask workers are threads: blocks that enter and leave out of order must still restore the caller's state."""
    import threading

    before = runtime.global_state()
    entered, release = threading.Barrier(2), threading.Event()
    seen: list[str] = []

    def worker(wait_first: bool):
        with runtime.compute("float32", "cpu"):
            entered.wait(timeout=10)
            if wait_first:
                release.wait(timeout=10)
            seen.append(runtime.global_state()["fp32_precision.mkldnn.matmul"])
        if not wait_first:
            release.set()

    threads = [threading.Thread(target=worker, args=(w,)) for w in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert seen == ["ieee", "ieee"]
    assert runtime.global_state() == before


def test_evaluation_results_record_their_precision(sample_root, tmp_path):
    import json

    from eoembed.bench import evaluate
    from eoembed.pipeline import raw_band_features
    from eoembed.data import open_cube

    emb = raw_band_features(open_cube(sample_root))
    res = evaluate(emb, sample_root / "labels", folds=3, tasks=["crops"], out=tmp_path / "ev", progress=False)
    assert res.details["precision"]["precision"] == "float32"
    assert json.loads((tmp_path / "ev" / "eoembed_report.json").read_text())["precision"]["precision"] == "float32"


def test_compressor_records_precision_refuses_bf16_on_cpu_and_trains_at_fp32_under_medium():
    import xarray as xr

    from eoembed.compress import train_compressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 24)).astype(np.float32)
    fused = xr.DataArray(x, dims=("sample", "feature"),
                         coords={"sample": [f"s{i}" for i in range(40)], "feature": np.arange(24)},
                         attrs={"slices": {"a": [0, 12], "b": [12, 24]}, "models": ["a", "b"]})
    kw = dict(epochs=2, eval_every=1, hidden=16, out_dim=8, progress=False, device="cpu")
    with pytest.raises(ValueError, match="opt-in for CUDA"):
        train_compressor(fused, precision="bf16", **kw)
    seen: list[dict] = []
    with runtime.preserve_global_state():
        torch.set_float32_matmul_precision("medium")
        res = train_compressor(fused, callbacks=[lambda row: seen.append(runtime.global_state())], **kw)
    assert seen and all(s["fp32_precision.mkldnn.matmul"] == "ieee" for s in seen)
    assert res.precision == "float32" and res.embeddings.attrs["precision"] == "float32"
