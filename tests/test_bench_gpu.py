"""The prepared device check (benchmarks/bench_gpu.py) must run where it will run: a GPU machine without
torchgeo, terratorch, distributed, rioxarray or the UI libraries. Here on CPU, at smoke-test sizes, with those
imports blocked: every section runs, the CPU-vs-CPU comparisons are exact and torch's global state is untouched."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABSENT_ON_DEVICE = ("torchgeo", "terratorch", "distributed", "h5netcdf", "rioxarray", "skopt", "umap", "panel",
                    "holoviews", "bokeh", "ipywidgets", "ipyleaflet", "datashader", "matplotlib")


def test_device_check_runs_without_the_packages_the_device_lacks(tmp_path):
    out = tmp_path / "gpu.json"
    code = ("import runpy, sys\n"
            f"for m in {ABSENT_ON_DEVICE!r}:\n    sys.modules[m] = None\n"
            f"sys.argv = ['bench_gpu.py', '--device', 'cpu', '--quick', '--out', {str(out)!r}]\n"
            "runpy.run_path('benchmarks/bench_gpu.py', run_name='__main__')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["errors"] == {}, res["errors"]
    assert set(res["sections"]) == {"eval", "svm", "extract", "compress", "distill", "pixel"}
    assert res["state"]["unchanged"], res["state"]
    ev = res["sections"]["eval"]
    assert ev["tasks"] == 11 and ev["max_abs_fold_score_diff_vs_cpu"] == 0.0     # the same engine twice on CPU
    assert ev["q_device"] == ev["q_cpu"]
    assert res["sections"]["svm"]["fold_scores_max_abs_diff"] == 0.0
    assert res["sections"]["extract"]["max_abs_diff_device_vs_cpu"] == 0.0
    assert res["sections"]["compress"]["max_rel_diff_val_mse_device_vs_cpu"] == 0.0
    assert res["sections"]["pixel"]["encoded_finite_device"]
    assert "device_bf16" not in res["sections"]["compress"]["val_mse"]            # bf16 is a CUDA opt-in


def test_device_check_records_a_failing_section_and_goes_on(tmp_path):
    """A device run is scarce: one section's error is recorded with its traceback and the others still run."""
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--device", "cpu", "--quick", "--n", "5",
                        "--sections", "eval,svm,compress", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert "Traceback" in res["errors"]["eval"] and "Use more samples" in res["errors"]["eval"]   # 5: too few
    assert res["sections"]["svm"]["gram_max_rel_diff"] == 0.0                               # the next one ran
    assert "extract" not in res["sections"]
    assert res["errors"]["compress"].startswith("skipped: it needs the embeddings of the extract section")
