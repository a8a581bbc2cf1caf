"""Bad inputs across every command: one clear message on stderr, exit code 2, no traceback (``--debug`` shows it).

Each CLI case runs ``eoembed <command>`` in-process (typer's CliRunner) with a tiny input that is wrong in one way,
and checks the exit code, a part of the message that names what is wrong / where / the fix, and that nothing
was written that a re-run would trust. Python-level cases check the same errors from the functions.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from eoembed.cli import app, cli_hints
from eoembed.data.bands import all_band_keys
from eoembed.errors import DataError, LabelError, StoreError
from test_extract_fakes import FakeEmbedder, make_cube

TESTS = Path(__file__).parent
N = 24  # samples of the tiny inputs


def run_cli(*args, env: dict | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def bad(result, *needles: str, code: int = 2) -> str:
    """Assert a clean bad-input failure: exit code, every needle in the message, no traceback."""
    out = result.output
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}:\n{out}\n{result.exception!r}"
    assert "Traceback" not in out, out
    for n in needles:
        assert n in out, f"{n!r} not in:\n{out}"
    return out


def save_cube(cube: xr.Dataset, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube.to_zarr(path, consolidated=False)
    return path


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """A generated dataset (12 samples, 16 px) in the SSL4EO-S12-downstream layout."""
    from eoembed.data import sample
    return sample(tmp_path_factory.mktemp("bad") / "sample", n=12, seed=5, size=16, progress=False)


@pytest.fixture()
def root_copy(tiny_root, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_root, tmp_path / "sample"))


@pytest.fixture(scope="module")
def cube_path(tmp_path_factory) -> Path:
    return save_cube(make_cube(n=N, size=8, seed=1), tmp_path_factory.mktemp("cube") / "cube.zarr")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """An embedding store of two fake models over N samples."""
    from eoembed.extract import extract
    out = tmp_path_factory.mktemp("store") / "emb.zarr"
    cube = make_cube(n=N, size=8, seed=2)
    extract(cube, [FakeEmbedder("fa", dim=6, temporal="pooled"), FakeEmbedder("fb", dim=4, temporal="pooled", seed=1)],
            out=out, batch_size=8, progress=False)
    return out


@pytest.fixture(scope="module")
def labels_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("labels") / "labels"
    d.mkdir()
    rng = np.random.default_rng(0)
    ids = [f"id{i:04d}" for i in range(N)]
    pd.DataFrame({"id": ids, "label": rng.normal(size=N)}).to_csv(d / "reg__regression.csv", index=False)
    pd.DataFrame({"id": ids, "label": np.arange(N) % 2}).to_csv(d / "cls__classification.csv", index=False)
    return d


def emb_csv(path: Path, values: np.ndarray | None = None, ids=None) -> Path:
    values = np.random.default_rng(1).normal(size=(N, 4)) if values is None else values
    df = pd.DataFrame(values, columns=[str(i) for i in range(values.shape[1])])
    df.insert(0, "id", ids if ids is not None else [f"id{i:04d}" for i in range(len(df))])
    df.to_csv(path, index=False)
    return path


def label_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    d = tmp_path / "lab"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def reg_text(values) -> str:
    return "id,label\n" + "".join(f"id{i:04d},{v}\n" for i, v in enumerate(values))


# ------------------------------------------------------------------------------------------------ sample
@pytest.mark.parametrize("case", ["out_is_file", "n_zero", "size_small", "not_empty", "parent_is_file",
                                  "other_params", "bad_manifest"])
def test_sample_bad(case, tmp_path):
    out = tmp_path / "s"
    args = ["sample", out, "--n", "2", "--size", "8", "--no-progress"]
    need = {"out_is_file": "is a file", "n_zero": "--n 0", "size_small": "--size 4", "not_empty": "not empty",
            "parent_is_file": "is a file, not a folder", "other_params": "already holds a sample dataset",
            "bad_manifest": "unreadable"}[case]
    if case == "out_is_file":
        out.write_text("x")
    elif case == "n_zero":
        args[3] = "0"
    elif case == "size_small":
        args[5] = "4"
    elif case == "not_empty":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "parent_is_file":
        (tmp_path / "f").write_text("x")
        args[1] = tmp_path / "f" / "s"
    elif case == "other_params":
        out.mkdir()
        (out / ".eoembed_sample.json").write_text(json.dumps({"generator": "eoembed.data.sample", "n": 9}))
    elif case == "bad_manifest":
        out.mkdir()
        (out / ".eoembed_sample.json").write_text('{"n": 2, "se')
    bad(run_cli(*args), need)
    assert not (out / "data").exists()


def test_sample_read_only_out(tmp_path, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if Path(p) == tmp_path else real(p, mode, **k))
    bad(run_cli("sample", tmp_path / "s", "--n", "2", "--size", "8"), "read-only")


# ------------------------------------------------------------------------------------------------ extract
FAKE = "test_extract_fakes:slow_fake"


@pytest.mark.parametrize("option,value,need", [
    ("--batch-size", "0", "batch_size must be a positive int"),
    ("--chunk-size", "-1", "chunk_size must be a positive int"),
    ("--missing-bands", "zero", "missing_bands must be one of"),
    ("--on-error", "ignore", "on_error must be one of"),
    ("--num-workers", "-2", "num_workers must be an int >= 0"),
    ("--device", "gpu7", "is not a device"),
    ("--size", "nano", "size must be 'full' or 'tiny'"),
])
def test_extract_bad_option(option, value, need, cube_path, tmp_path):
    out = tmp_path / "emb.zarr"
    bad(run_cli("extract", cube_path, "--model", FAKE, "--out", out, option, value, "--no-progress"), need)
    assert not out.exists()


def test_extract_missing_data(tmp_path):
    bad(run_cli("extract", tmp_path / "nope", "--model", FAKE, "--out", tmp_path / "e.zarr"), "does not exist")


def test_extract_unknown_model(cube_path, tmp_path):
    bad(run_cli("extract", cube_path, "--model", "no_such_model", "--out", tmp_path / "e.zarr"),
        "unknown model 'no_such_model'", "eoembed models")


@pytest.mark.parametrize("case,need", [
    ("plain_file", "neither a saved cube (.nc) nor a sample file"),
    ("folder_without_data", "holds no SSL4EO-S12-downstream data"),
    ("garbage_nc", "cannot read the saved cube"),
    ("broken_zarr", "cannot read the saved cube"),
    ("zarr_without_bands", "has no 'bands' variable"),
])
def test_extract_bad_data_path(case, need, tmp_path):
    data = tmp_path / {"plain_file": "cube.txt", "garbage_nc": "cube.nc"}.get(case, "cube.zarr")
    if case in ("plain_file", "garbage_nc"):
        data.write_bytes(b"not a cube")
    elif case == "folder_without_data":
        data.mkdir()
        (data / "readme.txt").write_text("x")
    elif case == "broken_zarr":
        data.mkdir()
        (data / "zarr.json").write_text('{"zarr_format": 3,')
    else:
        xr.Dataset({"image": ("x", np.arange(3.0))}).to_zarr(data, consolidated=False)
    bad(run_cli("extract", data, "--model", FAKE, "--out", tmp_path / "e.zarr", "--no-progress"), need)
    assert not (tmp_path / "e.zarr").exists()


def test_extract_model_reference_not_an_embedder(cube_path, tmp_path):
    bad(run_cli("extract", cube_path, "--model", "math:pi", "--out", tmp_path / "e.zarr"), "is not an Embedder")


def test_extract_out_is_file(cube_path, tmp_path):
    (tmp_path / "e.zarr").write_text("x")
    bad(run_cli("extract", cube_path, "--model", FAKE, "--out", tmp_path / "e.zarr"), "is a file")


def test_extract_out_is_foreign_folder(cube_path, tmp_path):
    (tmp_path / "e.zarr").mkdir()
    (tmp_path / "e.zarr" / "keep.txt").write_text("x")
    bad(run_cli("extract", cube_path, "--model", FAKE, "--out", tmp_path / "e.zarr", "--no-progress"),
        "not an eoembed embedding store")
    assert (tmp_path / "e.zarr" / "keep.txt").exists()


def _first_file(root: Path, mod: str, k: int = 0) -> Path:
    return sorted((root / "data" / mod).rglob("*.zarr.zip"))[k]


@pytest.mark.parametrize("case,need", [
    ("truncated_first", "not a readable zipped Zarr"),
    ("garbage_later", "could not embed"),
    ("no_bands_in_zip", "no Zarr v2 variable 'bands'"),
    ("missing_modality_file", "sample ids missing from some modalities"),
    ("meta_lat_out_of_range", "lat out of range"),
    ("meta_lat_text", "non-numeric lat"),
    ("meta_duplicate_id", "repeats id"),
])
def test_extract_bad_dataset(case, need, root_copy, tmp_path):
    if case == "truncated_first":
        f = _first_file(root_copy, "s2l2a")
        f.write_bytes(f.read_bytes()[:200])
    elif case == "garbage_later":
        f = _first_file(root_copy, "s2l2a", 5)
        f.write_bytes(b"PK\x03\x04 not a zip at all" * 10)
        need = f.name[:12]
    elif case == "no_bands_in_zip":
        f = _first_file(root_copy, "s2l2a")
        with zipfile.ZipFile(f, "w") as zf:
            zf.writestr("other/.zarray", "{}")
    elif case == "missing_modality_file":
        _first_file(root_copy, "s1", 3).unlink()
    else:
        meta = pd.read_csv(root_copy / "meta.csv", dtype={"id": str})
        if case == "meta_lat_out_of_range":
            meta.loc[2, "lat"] = 200.0
        elif case == "meta_lat_text":
            meta["lat"] = meta["lat"].astype(object)
            meta.loc[1, "lat"] = "north"
        else:
            meta.loc[3, "id"] = meta.loc[2, "id"]
        meta.to_csv(root_copy / "meta.csv", index=False)
    out = tmp_path / "emb.zarr"
    text = bad(run_cli("extract", root_copy, "--model", FAKE, "--out", out, "--batch-size", "4",
                       "--weights", "random", "--no-progress"), need)
    assert "--on-missing" not in text  # no hint naming a flag the CLI does not have
    if case != "garbage_later":
        assert not out.exists(), "a bad input found before any work leaves no store behind"


def _unit_cube(case: str) -> xr.Dataset:
    cube = make_cube(n=6, size=8, seed=4).load()
    v = cube["bands"].values.copy()
    s1 = np.array([str(b).startswith("s1/") for b in cube["band"].values])
    if case == "s2_reflectance":
        v[:, :, ~s1] /= 10000.0
        return cube.copy(data={"bands": v})
    if case == "s1_linear":
        v[:, :, s1] = 10 ** (v[:, :, s1] / 10)
        return cube.copy(data={"bands": v})
    if case == "int8":
        return cube.assign(bands=cube["bands"].astype("int8"))
    if case == "uint16_with_s1":
        return cube.assign(bands=cube["bands"].astype("uint16"))
    if case == "duplicate_ids":
        return cube.assign_coords(sample=["a", "b", "a", "c", "d", "e"])
    if case == "lat_out_of_range":
        return cube.assign_coords(lat=("sample", [45, 46, 95, 44, 43, 42.0]))
    raise AssertionError(case)


@pytest.mark.parametrize("case,need", [
    ("s2_reflectance", "multiply by 10000"),
    ("s1_linear", "10*log10(v)"),
    ("int8", "8-bit"),
    ("uint16_with_s1", "S1 must be float dB"),
    ("duplicate_ids", "duplicate sample ids"),
    ("lat_out_of_range", "lat out of range"),
])
def test_extract_bad_units_and_cubes(case, need, tmp_path):
    path = save_cube(_unit_cube(case), tmp_path / "cube.zarr")
    bad(run_cli("extract", path, "--model", FAKE, "--out", tmp_path / "emb.zarr", "--batch-size", "3",
                "--no-progress"), need)


@pytest.mark.parametrize("case,need", [
    ("s2_reflectance", "multiply by 10000"),
    ("s1_linear", "linear power"),
])
def test_validate_cube_units(case, need):
    from eoembed.data import validate_cube
    cube = _unit_cube(case)
    with pytest.raises(DataError, match="look like"):
        validate_cube(cube)
    assert need in str(pytest.raises(DataError, validate_cube, cube).value)


def test_extract_units_skip_records_ids(tmp_path):
    """on_error='skip': samples in the wrong units are left NaN and named, the others are embedded."""
    from eoembed.extract import extract, open_embeddings
    cube = make_cube(n=6, size=8, seed=4).load()
    v = cube["bands"].values.copy()
    s1 = np.array([str(b).startswith("s1/") for b in cube["band"].values])
    v[2, :, ~s1] /= 10000.0
    with pytest.warns(UserWarning, match="1 sample"):
        res = extract(cube.copy(data={"bands": v}), [FakeEmbedder("f")], out=tmp_path / "e.zarr", batch_size=3,
                      on_error="skip", progress=False)
    assert res.failed["f"] == ["id0002"]
    emb = open_embeddings(tmp_path / "e.zarr")["f"].values
    assert np.isnan(emb[2]).all() and np.isfinite(np.delete(emb, 2, axis=0)).all()


def test_extract_bad_lat_then_fixed_rerun_has_fixed_coords(root_copy, tmp_path):
    from eoembed.extract import open_embeddings
    meta = pd.read_csv(root_copy / "meta.csv", dtype={"id": str})
    good = meta.copy()
    meta.loc[0, "lat"] = -120.0
    meta.to_csv(root_copy / "meta.csv", index=False)
    out = tmp_path / "emb.zarr"
    args = ["extract", root_copy, "--model", FAKE, "--out", out, "--batch-size", "4", "--no-progress"]
    bad(run_cli(*args), "lat out of range", "-120")
    assert not out.exists()
    good.to_csv(root_copy / "meta.csv", index=False)
    r = run_cli(*args)
    assert r.exit_code == 0, r.output
    emb = open_embeddings(out)["slow"]
    np.testing.assert_allclose(emb["lat"].values, good.set_index("id").loc[emb["sample"].values, "lat"].values)


def test_extract_resume_refuses_changed_coords_of_committed_samples(tmp_path):
    from eoembed.extract import extract, open_embeddings
    cube = make_cube(n=8, size=8, seed=6)
    out = tmp_path / "e.zarr"
    extract(cube, [FakeEmbedder("f")], out=out, batch_size=4, progress=False)
    moved = cube.assign_coords(lat=("sample", cube["lat"].values + np.r_[0, 0, 1.5, 0, 0, 0, 0, 0]))
    with pytest.raises(StoreError, match=r"lat/lon of 1 already embedded sample\(s\) differ.*id0002.*--no-resume"):
        extract(moved, [FakeEmbedder("f")], out=out, batch_size=4, progress=False)
    res = extract(moved, [FakeEmbedder("f")], out=out, batch_size=4, progress=False, resume=False)
    assert res.chunks_computed == 1 and np.isfinite(open_embeddings(out)["f"].values).all()


def test_extract_resume_rewrites_coords_not_yet_committed(tmp_path):
    """A failed first chunk leaves nothing committed: the fixed re-run writes the new coordinates."""
    from eoembed.extract import extract, open_embeddings
    cube = make_cube(n=8, size=8, seed=6).load()
    v = cube["bands"].values.copy()
    v[1, 0, 0, 0, 0] = np.nan
    out = tmp_path / "e.zarr"
    with pytest.raises(DataError, match="non-finite"):
        extract(cube.copy(data={"bands": v}), [FakeEmbedder("f")], out=out, batch_size=8, progress=False)
    fixed = cube.assign_coords(lat=("sample", cube["lat"].values + 1.0))
    extract(fixed, [FakeEmbedder("f")], out=out, batch_size=8, progress=False)
    np.testing.assert_allclose(open_embeddings(out)["f"]["lat"].values, fixed["lat"].values)


# ------------------------------------------------------------------------------------------------ bench
@pytest.mark.parametrize("case,need", [
    ("emb_missing", "does not exist"),
    ("labels_missing", "does not exist"),
    ("out_is_file", "is a file"),
    ("mode", "--mode 'probe' is not valid"),
    ("metric", "--metric 'acc' is not valid"),
    ("folds", "--folds 1; use an integer >= 2"),
    ("unknown_task", "Unknown task(s) ['nope']"),
    ("device", "not a device"),
])
def test_bench_bad_option(case, need, tmp_path, labels_dir):
    emb = emb_csv(tmp_path / "emb.csv")
    args = {"emb": emb, "--labels": labels_dir, "--out": tmp_path / "res"}
    extra: list[str] = []
    if case == "emb_missing":
        args["emb"] = tmp_path / "none.csv"
    elif case == "labels_missing":
        args["--labels"] = tmp_path / "nolabels"
    elif case == "out_is_file":
        (tmp_path / "res").write_text("x")
    else:
        extra = {"mode": ["--mode", "probe"], "metric": ["--metric", "acc"], "folds": ["--folds", "1"],
                 "unknown_task": ["--tasks", "nope"], "device": ["--device", "tpu"]}[case]
    bad(run_cli("bench", args["emb"], "--labels", args["--labels"], "--out", args["--out"], "--no-progress", *extra),
        need)
    assert not (tmp_path / "res").is_dir()


@pytest.mark.parametrize("case,need", [
    ("traversal_task", "cannot be used as a file name"),
    ("bad_file_name", "is not named '<task>__<type>.csv'"),
    ("inf_label", "infinite label"),
    ("text_label", "non-numeric label"),
    ("constant_label", "the label is constant"),
    ("empty_file", "is empty"),
    ("header_only", "holds no label"),
    ("duplicate_label_id", "repeats id"),
    ("unknown_ids", "No embedding id matches a label id"),
    ("too_few", "at least 11 are needed"),
    ("cls_not_binary", "binary 0/1"),
])
def test_bench_bad_labels(case, need, tmp_path):
    rng = np.random.default_rng(3)
    files = {"ok__regression.csv": reg_text(rng.normal(size=N))}
    if case == "traversal_task":
        files["..__regression.csv"] = reg_text(rng.normal(size=N))
    elif case == "bad_file_name":
        files["crops.csv"] = reg_text(rng.normal(size=N))
    elif case == "inf_label":
        files["t__regression.csv"] = reg_text([*rng.normal(size=N - 1), "inf"])
    elif case == "text_label":
        files["t__regression.csv"] = reg_text([*rng.normal(size=N - 1), "high"])
    elif case == "constant_label":
        files = {"t__regression.csv": reg_text([3.0] * N)}
    elif case == "empty_file":
        files["t__regression.csv"] = ""
    elif case == "header_only":
        files = {"t__regression.csv": "id,label\n"}
    elif case == "duplicate_label_id":
        files["t__regression.csv"] = reg_text(rng.normal(size=N)) + "id0001,0.5\n"
    elif case == "unknown_ids":
        files = {"t__regression.csv": "id,label\n" + "".join(f"other{i},{i}\n" for i in range(N))}
    elif case == "too_few":
        files = {"t__regression.csv": reg_text(rng.normal(size=6))}
    elif case == "cls_not_binary":
        files["t__classification.csv"] = reg_text(np.arange(N) % 3)
    labels = label_folder(tmp_path, files)
    out = tmp_path / "res" / "inner"
    bad(run_cli("bench", emb_csv(tmp_path / "emb.csv"), "--labels", labels, "--out", out, "--folds", "3",
                "--mode", "ridge", "--no-progress"), need)
    assert not out.exists() and not any(p.name.endswith("_result.json") for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("case,need", [
    ("text_cell", "non-numeric embedding cell"),
    ("huge_column", "beyond float32's range"),
    ("constant", "the embeddings are constant"),
    ("duplicate_ids", "Duplicate embedding ids"),
    ("no_id_column", "must contain a column 'id'"),
    ("ids_per_row", "Duplicate embedding ids"),
    ("empty_file", "is empty"),
    ("ragged_rows", "is not a well-formed CSV"),
])
def test_bench_bad_embeddings(case, need, tmp_path, labels_dir):
    values = np.random.default_rng(4).normal(size=(N, 4))
    path = tmp_path / "emb.csv"
    if case == "text_cell":
        emb_csv(path, values)
        df = pd.read_csv(path, dtype=str)
        df.loc[5, "2"] = "n/a?"
        df.to_csv(path, index=False)
        need = "id0005"
    elif case == "huge_column":
        values[:, 1] = 1e300
        emb_csv(path, values)
    elif case == "constant":
        emb_csv(path, np.full((N, 4), 0.25))
    elif case == "duplicate_ids":
        emb_csv(path, values, ids=[f"id{i % (N - 1):04d}" for i in range(N)])
    elif case == "no_id_column":
        pd.DataFrame(values).to_csv(path, index=False)
    elif case == "empty_file":
        path.write_text("")
    elif case == "ragged_rows":
        path.write_text("id,0,1\nid0000,1,2\nid0001,3,4,5,6\n")
    elif case == "ids_per_row":
        emb_csv(path, values, ids=[f"id{i:04d}.zarr.zip" if i == 3 else f"id{i:04d}" for i in range(N - 1)] + ["id0003"])
    text = bad(run_cli("bench", path, "--labels", labels_dir, "--out", tmp_path / "res", "--mode", "ridge",
                       "--folds", "3", "--no-progress"), need)
    if case == "text_cell":
        assert "column '2'" in text


def test_bench_inf_embeddings_counted_not_propagated(labels_dir):
    from eoembed.bench import evaluate
    values = np.random.default_rng(5).normal(size=(N, 4))
    values[3, 1], values[7, 0] = np.inf, -np.inf
    ids = [f"id{i:04d}" for i in range(N)]
    res = evaluate(values, labels_dir, ids=ids, folds=3, mode="ridge", progress=False)
    assert res.report["nan_filled"]["inf_values"] == 2 and res.report["nan_filled"]["rows"] == 2
    assert np.isfinite(res.per_task["q_stat"].to_numpy()).all()


def test_bench_traversal_in_labels_dataframe(tmp_path):
    from eoembed.bench import evaluate
    df = pd.DataFrame({"../escape": np.random.default_rng(0).normal(size=N)}, index=[f"id{i:04d}" for i in range(N)])
    df.attrs["task_types"] = {"../escape": "regression"}
    with pytest.raises(LabelError, match="cannot be used as a file name"):
        evaluate(np.random.default_rng(1).normal(size=(N, 3)), df, ids=list(df.index), folds=3, mode="ridge",
                 out=tmp_path / "r", progress=False)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "r").exists()


def test_inf_labels_in_dataframe():
    from eoembed.bench.io import read_labels_any
    df = pd.DataFrame({"t": [1.0, np.inf, 2.0]}, index=["a", "b", "c"])
    df.attrs["task_types"] = {"t": "regression"}
    with pytest.raises(LabelError, match=r"infinite label\(s\) for id\(s\) 'b'"):
        read_labels_any(df)


# ------------------------------------------------------------------------------------------------ train / fuse / ablate
@pytest.mark.parametrize("case,need", [
    ("store_missing", "does not exist"),
    ("labels_missing", "does not exist"),
    ("out_is_file", "is a file"),
    ("q_mode", "--q-mode 'fast' is not valid"),
    ("q_on", "--q-on 'train' is not valid"),
    ("dtype", "--dtype 'float64' is not valid"),
    ("val_fraction", "--val-fraction 1.5"),
    ("export_exists", "already exists"),
    ("export_suffix", "*.csv or *.zarr"),
    ("eval_every", "--eval-every 0 is too small"),
    ("preset", "--preset 'winners' is not valid"),
    ("weights", "MODEL_OR_FAMILY=WEIGHT"),
    ("weight_value", "the weight must be a number"),
])
def test_train_bad_option(case, need, store, labels_dir, tmp_path):
    out = tmp_path / "run"
    st, labels, extra = store, labels_dir, []
    if case == "store_missing":
        st = tmp_path / "none.zarr"
    elif case == "labels_missing":
        labels = tmp_path / "nolabels"
    elif case == "out_is_file":
        out.write_text("x")
    elif case == "export_exists":
        (tmp_path / "e.csv").write_text("id\n")
        extra = ["--export", tmp_path / "e.csv"]
    else:
        extra = {"q_mode": ["--q-mode", "fast"], "q_on": ["--q-on", "train"], "dtype": ["--dtype", "float64"],
                 "val_fraction": ["--val-fraction", "1.5"], "export_suffix": ["--export", tmp_path / "e.parquet"],
                 "eval_every": ["--eval-every", "0"], "preset": ["--preset", "winners"],
                 "weights": ["--weights", "fa=1", "--weights", "fb"],
                 "weight_value": ["--weights", "fa=heavy"]}[case]
    bad(run_cli("train", st, "--labels", labels, "--out", out, "--epochs", "2", "--no-progress", *extra), need)
    assert not (out / "checkpoints").exists(), "nothing trained before the arguments were checked"


def test_train_compressor_rejects_inf(store):
    from eoembed.compress import fuse, train_compressor
    fused = fuse(store)
    fused.values[4, 2] = np.inf
    with pytest.raises(DataError, match=r"NaN/inf values .*id0004"):
        train_compressor(fused, epochs=1, progress=False)


def test_fuse_rejects_inf(store):
    from eoembed.compress import fuse
    from eoembed.extract import open_embeddings
    embs = {k: v.load() for k, v in open_embeddings(store).items()}
    embs["fb"].values[1, 0] = -np.inf
    with pytest.raises(StoreError, match=r"'fb' has NaN/inf embedding values for 1 samples: id0001"):
        fuse(embs)


@pytest.mark.parametrize("case,need", [
    ("out_exists", "already exists"),
    ("store_missing", "does not exist"),
    ("unknown_model", "not in the store"),
])
def test_fuse_bad(case, need, store, tmp_path):
    out = tmp_path / "fused.zarr"
    st, extra = store, []
    if case == "out_exists":
        out.mkdir()
    elif case == "store_missing":
        st = tmp_path / "none.zarr"
    else:
        extra = ["--model", "fz"]
    bad(run_cli("fuse", st, out, *extra), need)
    assert not (tmp_path / "fused.zarr.eoembed-tmp").exists()


def test_fuse_overwrite_replaces_atomically(store, tmp_path):
    out = tmp_path / "fused.zarr"
    out.mkdir()
    (out / "old.txt").write_text("x")
    r = run_cli("fuse", store, out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert not (out / "old.txt").exists() and xr.open_zarr(out, consolidated=False)["fused"].shape == (N, 10)


@pytest.mark.parametrize("case,need", [
    ("eval_folds", "--eval-folds 1 is too small"),
    ("baseline", "--baseline 'umap' is not valid"),
    ("combo", "not in the store"),
    ("cube_missing", "--cube"),
    ("q_mode", "--q-mode 'x' is not valid"),
    ("empty_combo", "empty combination"),
])
def test_ablate_bad_option(case, need, store, labels_dir, tmp_path):
    extra = {"eval_folds": ["--eval-folds", "1"], "baseline": ["--baseline", "umap"],
             "combo": ["--combo", "fa,fz", "--baseline", "pca"], "cube_missing": ["--cube", tmp_path / "nocube"],
             "q_mode": ["--q-mode", "x"], "empty_combo": ["--combo", ","]}[case]
    out = tmp_path / "abl"
    bad(run_cli("ablate", store, "--labels", labels_dir, "--out", out, "--epochs", "1", "--no-progress", *extra), need)
    assert not any(out.rglob("*.pt")) if out.exists() else True


# ------------------------------------------------------------------------------------------------ worldcereal-cube
def wc_nc(path: Path, s2_scale: float = 1.0, s1_db: bool = False) -> Path:
    """A tiny file in the layout of WorldCereal's preprocessed-inputs cube (12 months, 4 x 4 px)."""
    rng = np.random.default_rng(0)
    t = pd.date_range("2020-11-01", periods=12, freq="MS")
    data = {}
    for b in ("B02", "B03", "B04"):
        v = rng.integers(200, 3000, (12, 4, 4)).astype(np.float64) * s2_scale
        data[f"S2-L2A-{b}"] = (("t", "y", "x"), v.astype(np.float32) if s2_scale != 1.0 else v.astype(np.uint16))
    s1 = rng.integers(3000, 20000, (12, 4, 4))
    data["S1-SIGMA0-VV"] = (("t", "y", "x"), (20 * np.log10(s1) - 83).astype(np.float32) if s1_db else s1.astype(np.uint16))
    ds = xr.Dataset(data, coords={"t": t, "y": 5_600_000 + 10.0 * np.arange(4), "x": 500_000 + 10.0 * np.arange(4)})
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": 'PROJCS["WGS 84 / UTM zone 31N",AUTHORITY["EPSG","32631"]]'})
    ds.to_netcdf(path, engine="h5netcdf")
    return path


@pytest.mark.parametrize("case,need", [
    ("path_missing", "does not exist"),
    ("out_exists", "already exists"),
    ("tile_zero", "--tile 0 is too small"),
    ("tile_not_divisor", "does not divide"),
    ("s2_reflectance", "0..1 reflectance"),
    ("s1_in_db", "looks like dB already"),
    ("not_netcdf", "cannot read"),
])
def test_worldcereal_cube_bad(case, need, tmp_path):
    nc = tmp_path / "wc.nc"
    out = tmp_path / "cube.zarr"
    tile = "2"
    if case == "path_missing":
        nc = tmp_path / "none.nc"
    elif case == "not_netcdf":
        nc.write_bytes(b"\x00garbage" * 50)
    else:
        wc_nc(nc, s2_scale=1e-4 if case == "s2_reflectance" else 1.0, s1_db=case == "s1_in_db")
    if case == "out_exists":
        out.mkdir()
    tile = {"tile_zero": "0", "tile_not_divisor": "3"}.get(case, tile)
    bad(run_cli("worldcereal-cube", nc, "--out", out, "--tile", tile), need)
    assert (out.exists() and case == "out_exists") or not out.exists()
    assert not (tmp_path / "cube.zarr.eoembed-tmp").exists() or case == "out_exists"


def test_worldcereal_cube_good_tiny(tmp_path):
    r = run_cli("worldcereal-cube", wc_nc(tmp_path / "wc.nc"), "--out", tmp_path / "c.zarr", "--tile", "2")
    assert r.exit_code == 0, r.output
    cube = xr.open_zarr(tmp_path / "c.zarr")
    assert cube.sizes["sample"] == 4 and float(cube["bands"].sel(band="s2l2a/B02").max()) > 200


# ------------------------------------------------------------------------------------------------ demo
@pytest.mark.parametrize("args,need", [
    (["--n", "5"], "--n 5 is too small"),
    (["--mode", "knn"], "--mode knn is not valid"),
    (["--model", "no_such_model"], "not registered"),
    (["--model-size", "huge"], "--model-size huge"),
    (["--folds", "1"], "--folds 1 is too small"),
    (["--epochs", "0"], "--epochs 0 is too small"),
    (["--device", "cuda:banana"], "not a device"),
])
def test_demo_bad_option(args, need, tmp_path):
    bad(run_cli("demo", tmp_path / "demo", *args, "--no-progress"), need)
    assert not (tmp_path / "demo").exists()


def test_demo_out_is_file(tmp_path):
    (tmp_path / "demo").write_text("x")
    bad(run_cli("demo", tmp_path / "demo"), "is a file")


def test_demo_refuses_other_sample(tmp_path):
    from eoembed.pipeline import _sample_done
    root = tmp_path / "demo" / "sample"
    root.mkdir(parents=True)
    (root / ".eoembed_sample.json").write_text(json.dumps({"n": 30, "seed": 0, "size": 16, "complete": True}))
    assert _sample_done(root, n=30, seed=0, size=16) and not _sample_done(root, n=40, seed=0, size=16)


# ------------------------------------------------------------------------------------------------ the handler
def test_validate_exit_2_with_cli_flag_hint(root_copy):
    f = _first_file(root_copy, "s1", 2)
    from eoembed.data.ssl4eo import read_sample_file, write_sample_file
    arr = read_sample_file(f)
    arr[0, 1, 0, 0, 0] = np.nan
    write_sample_file(f, arr, "s1")
    text = bad(run_cli("validate", root_copy, "--no-progress"), "NaN values", "--nodata mask")
    assert "nodata='mask'" not in text


def test_debug_flag_and_env_show_traceback(tmp_path):
    args = ["bench", tmp_path / "none.csv", "--labels", tmp_path, "--out", tmp_path / "o"]
    r = run_cli("--debug", *args)
    assert r.exit_code == 2 and "Traceback" in r.output and "does not exist" in r.output
    r = run_cli(*args, env={"EOEMBED_DEBUG": "1"})
    assert r.exit_code == 2 and "Traceback" in r.output


def test_cli_hints_name_only_existing_flags():
    import typer
    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("eoembed", ["train", "x"], resilient_parsing=True)
    train, extract = cmd.get_command(ctx, "train"), cmd.get_command(ctx, "extract")
    assert cli_hints("pass resume=False, overwrite=True to start again", train) == \
        "pass --no-resume, --overwrite to start again"
    assert cli_hints("or pass on_missing='drop' to drop them", extract) == "or pass on_missing='drop' to drop them"
    assert cli_hints("pass on_error='skip' (--on-error skip)", extract) == "pass --on-error skip"


def test_internal_error_is_not_reported_as_bad_input(monkeypatch, tmp_path):
    import eoembed.bench as bench
    monkeypatch.setattr(bench, "evaluate", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    emb = emb_csv(tmp_path / "e.csv")
    labels = label_folder(tmp_path, {"t__regression.csv": reg_text(np.arange(N))})
    text = bad(run_cli("bench", emb, "--labels", labels, "--out", tmp_path / "o"), "internal error", "--debug", code=1)
    assert "boom" in text


def test_subprocess_exit_code_and_stderr(tmp_path):
    """The console entry point itself: exit 2, the message on stderr, nothing on stdout, no traceback."""
    p = subprocess.run([sys.executable, "-m", "eoembed.cli", "bench", str(tmp_path / "none.csv"), "--labels",
                        str(tmp_path), "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert "eoembed bench: error:" in p.stderr and "does not exist" in p.stderr and "Traceback" not in p.stderr


def test_ctrl_c_mid_extract_then_rerun_resumes(cube_path, tmp_path):
    from eoembed.extract import extract, open_embeddings
    from test_extract_fakes import slow_fake
    out = tmp_path / "emb.zarr"
    env = {**os.environ, "EOEMBED_FAKE_DELAY": "0.3",
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "eoembed.cli", "extract", str(cube_path), "--model", FAKE, "--out", str(out),
           "--batch-size", "2", "--chunk-size", "4", "--no-progress"]
    # A shell that starts the test run in the background (CI, `make test &`) leaves SIGINT ignored, and an ignored
    # signal is inherited by the child: Ctrl-C then never reaches it. A user's terminal has the default, so restore it.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        while not (out / "slow" / "_done" / "c").exists() or not any((out / "slow" / "_done" / "c").iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no chunk committed within 90 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted (Ctrl-C)" in err and "re-run the same command to resume" in err and "Traceback" not in err
    res = extract(cube_path, [slow_fake()], out=out, batch_size=2, chunk_size=4, progress=False)
    assert res.chunks_skipped >= 1 and res.chunks_computed >= 1
    assert np.isfinite(open_embeddings(out)["slow"].values).all()


def test_ablate_changed_settings_hint_names_ablate_options(store, labels_dir, tmp_path):
    """An unfinished ablation run resumed with other settings: the message names what ablate can do."""
    from eoembed.compress import ablate
    out = tmp_path / "abl"
    ablate(store, labels_dir, combos=[["fa"]], baselines=[], epochs=1, out_dim=3, out=out, eval_folds=2,
           q_mode="ridge", q_folds=2, hidden=8, progress=False)
    for row in out.rglob("ablation_row.json"):
        row.unlink()  # as if interrupted after training
    text = bad(run_cli("ablate", store, "--labels", labels_dir, "--out", out, "--combo", "fa", "--baseline", "pca",
                       "--eval-folds", "2", "--out-dim", "3", "--q-mode", "ridge", "--epochs", "2", "--no-progress"),
               "settings or data differ", "delete that run's folder")
    assert "overwrite=True" not in text and "--overwrite" not in text


@pytest.mark.parametrize("sid", ["../escape", "a/b", "..", ""])
def test_write_ssl4eo_rejects_ids_that_are_not_file_names(sid, tmp_path):
    from eoembed.data import make_cube, write_ssl4eo
    keys = all_band_keys(("s1",))
    cube = make_cube(np.full((2, 4, 2, 4, 4), -12.0, np.float32), ["ok", sid or "x"], keys, validate=False)
    if not sid:
        cube = cube.assign_coords(sample=np.asarray(["ok", ""], dtype=object))
    with pytest.raises(DataError, match="cannot be used as a file name"):
        write_ssl4eo(cube, tmp_path / "root", progress=False)
    assert not (tmp_path / "escape.zarr.zip").exists() and not (tmp_path / "root" / "data").exists()


@pytest.mark.parametrize("kw,need", [({"eval_folds": 1}, "eval_folds=1 is too small"),
                                     ({"q_mode": "knn"}, "q_mode='knn' is not valid")])
def test_ablate_python_checks_before_training(kw, need, store, labels_dir, tmp_path):
    from eoembed.compress import ablate
    with pytest.raises(DataError, match=need):
        ablate(store, labels_dir, combos=[["fa"]], baselines=[], epochs=1, out=tmp_path / "a", progress=False, **kw)
    assert not (tmp_path / "a").exists()
