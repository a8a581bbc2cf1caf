"""The README's main job (`eoembed demo`) end to end on a tiny configuration, and the CLI wiring."""
from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from eoembed.cli import app
from eoembed.pipeline import demo, raw_band_features


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    out = tmp_path / "demo"
    kw = dict(n=40, size=32, seed=1, models=("croma_base", "presto"), epochs=4, eval_every=2, folds=5,
              out_dim=16, progress=False, prefixes=(8,), layouts=False, report=False)
    summary = demo(str(out), **kw)
    assert summary["prefixes"] == [8]  # the Matryoshka compressor: scored at its 8-d prefix too
    assert all(pd.notna(row["q_report/k8"]) for row in summary["history"])
    assert set(summary["overall_q"]) == {"raw_bands", "croma_base", "presto", "fused_ae"}
    assert [row["epoch"] for row in summary["history"]] == [2, 4]
    assert all(pd.notna(row["q_select"]) and pd.notna(row["q_report"]) and row["val_mse"] > 0
               for row in summary["history"])
    emb = pd.read_csv(out / "embeddings.csv")
    assert emb.shape == (40, 17) and list(emb.columns[:3]) == ["id", "0", "1"]
    assert json.loads((out / "demo_summary.json").read_text())["n_samples"] == 40
    # Re-running reuses the sample, the store and the checkpoints: same numbers.
    again = demo(str(out), **kw)
    assert again["overall_q"] == summary["overall_q"]


def test_raw_band_features_shape(sample_cube):
    feats = raw_band_features(sample_cube)
    assert feats.dims == ("sample", "feature")
    assert feats.shape == (sample_cube.sizes["sample"], 2 * 4 * sample_cube.sizes["band"])
    assert list(feats["sample"].values) == list(sample_cube["sample"].values)


def test_cli_lists_every_command():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("sample", "validate", "models", "extract", "bench", "train", "ablate", "fuse", "demo"):
        assert cmd in res.output, cmd


def test_package_exports_resolve_and_stay_lazy():
    import importlib
    import subprocess
    import sys

    for pkg in ("eoembed.bench", "eoembed.compress", "eoembed.data", "eoembed.extract", "eoembed.models"):
        mod = importlib.import_module(pkg)
        assert [n for n in mod.__all__ if not hasattr(mod, n)] == [], pkg
    # `eoembed --help` must not pay for torch / scikit-learn imports.
    code = ("import sys, eoembed.cli; "
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lazy_stubs_match_the_packages():
    """Every package's __init__.pyi (read by lazy_loader, IDEs and type checkers) names real objects, and no public
    name equals a submodule's name (importing the submodule would shadow it)."""
    import ast
    import importlib
    import pkgutil
    from pathlib import Path

    import eoembed

    for stub in sorted(Path(eoembed.__file__).parent.glob("*/__init__.pyi")):
        pkg = f"eoembed.{stub.parent.name}"
        mod = importlib.import_module(pkg)
        names = {a.asname or a.name for node in ast.parse(stub.read_text()).body
                 if isinstance(node, ast.ImportFrom) for a in node.names}
        assert names and names <= set(mod.__all__), pkg
        for node in ast.parse(stub.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                sub = importlib.import_module(f"{pkg}.{node.module}")
                missing = [a.name for a in node.names if not hasattr(sub, a.name)]
                assert not missing, (pkg, node.module, missing)
        submodules = {m.name for m in pkgutil.iter_modules(mod.__path__)}
        assert not names & submodules, (pkg, names & submodules)
