"""SSL4EO-S12-downstream files: writer / lazy reader round trips, layout variants, file errors, labels."""
from __future__ import annotations

import re
import shutil
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

from eoembed.data import (all_band_keys, make_cube, open_cube, read_labels, read_sample_file, validate_cube,
                          write_labels, write_sample_file, write_ssl4eo)
from eoembed.data.ssl4eo import file_info
from eoembed.errors import DataError, DataFileNotFound, LabelError


def _cube(n=3, size=8, modalities=("s1", "s2l1c", "s2l2a")):
    rng = np.random.default_rng(1)
    keys = all_band_keys(tuple(modalities))
    v = np.stack([rng.uniform(-30, 0, (n, 4, size, size)) if k.startswith("s1/") else
                  rng.integers(0, 12000, (n, 4, size, size)) for k in keys], axis=2).astype(np.float32)
    return make_cube(v, [f"id{i:02d}" for i in range(n)], keys, lat=np.arange(n) + 45.5, lon=np.arange(n) - 2.25,
                     source="unit")


@pytest.fixture()
def written(tmp_path):
    cube = _cube()
    write_ssl4eo(cube, tmp_path / "ds", part_size=2, progress=False)
    return cube, tmp_path / "ds"


def test_roundtrip_exact_lazy(written):
    cube, root = written
    assert sorted(p.name for p in (root / "data" / "s2l2a").iterdir()) == ["part-000000", "part-000001"]
    back = open_cube(root)
    assert back["bands"].chunks[0] == (1, 1, 1)  # one chunk per sample file
    assert hasattr(back["bands"].data, "dask")
    np.testing.assert_array_equal(back["bands"].values, cube["bands"].values)
    np.testing.assert_allclose(back["lat"].values, cube["lat"].values)
    assert list(back["band"].values) == list(cube["band"].values) and back.attrs["missing_bands"] == []
    validate_cube(back)


def test_file_format_matches_challenge(written):
    _, root = written
    f = next((root / "data" / "s2l1c").rglob("*.zarr.zip"))
    names = zipfile.ZipFile(f).namelist()
    assert len(names) == len(set(names)) and "bands/.zarray" in names and ".zmetadata" in names
    assert file_info(f) == ((1, 4, 13, 8, 8), np.dtype("uint16"))
    assert file_info(next((root / "data" / "s1").rglob("*.zarr.zip")))[1] == np.dtype("float32")
    import xarray as xr
    from zarr.storage import ZipStore
    ds = xr.open_zarr(ZipStore(f, mode="r"))  # the challenge's own way of reading a file
    assert ds["bands"].dims == ("sample", "time", "band", "y", "x") and ds["bands"].dtype == np.uint16


def test_open_subset_modalities_and_ids(written):
    cube, root = written
    sub = open_cube(root, modalities=["s2l2a"], ids=["id02", "id00"])
    assert list(sub["sample"].values) == ["id02", "id00"] and sub.sizes["band"] == 12
    np.testing.assert_array_equal(sub["bands"].values[0], cube["bands"].sel(band=sub["band"].values).values[2])
    with pytest.raises(DataError, match=r"requested id\(s\) \['nope'\]"):
        open_cube(root, ids=["nope"])
    with pytest.raises(DataError, match=r"unknown modality\(ies\) \['s2'\]"):
        open_cube(root, modalities=["s2"])


def test_open_does_not_read_values(written, monkeypatch):
    _, root = written
    import eoembed.data.ssl4eo as mod
    calls = []
    monkeypatch.setattr(mod, "read_sample_file", lambda *a, **k: calls.append(a) or np.zeros(0))
    open_cube(root)
    assert calls == []


def test_flat_layout_s1grd_and_absent_modality(tmp_path):
    cube = _cube(modalities=("s1", "s2l2a"))
    write_ssl4eo(cube, tmp_path / "ds", progress=False)
    data = tmp_path / "ds" / "data"
    for f in (data / "s1" / "part-000000").iterdir():  # older copies: no part folder, S1 called s1grd
        (data / "s1").joinpath(f.name).write_bytes(f.read_bytes())
    shutil.rmtree(data / "s1" / "part-000000")
    (data / "s1").rename(data / "s1grd")
    back = open_cube(tmp_path / "ds")
    np.testing.assert_array_equal(back["bands"].values, cube["bands"].values)
    assert back.attrs["missing_bands"] == all_band_keys(("s2l1c",))
    single = open_cube(next((data / "s2l2a").rglob("id01.zarr.zip")))
    assert list(single["sample"].values) == ["id01"] and single.sizes["band"] == 12
    with pytest.raises(DataFileNotFound, match=r"modality folder\(s\) \['s2l1c'\] not found"):
        open_cube(tmp_path / "ds", modalities=["s2l1c"])


def test_missing_ids_error_and_drop(written):
    _, root = written
    next((root / "data" / "s1").rglob("id01.zarr.zip")).unlink()
    with pytest.raises(DataError, match=r"sample ids missing from some modalities .*s1 lacks 1: \['id01'\].*on_missing='drop'"):
        open_cube(root)
    with pytest.warns(UserWarning, match=r"dropped 1 sample\(s\).*id01"):
        back = open_cube(root, on_missing="drop")
    assert list(back["sample"].values) == ["id00", "id02"] and back.attrs["dropped_ids"] == ["id01"]


def test_shape_mismatch_detected_at_read_naming_file(written):
    _, root = written
    bad = next((root / "data" / "s2l2a").rglob("id02.zarr.zip"))
    write_sample_file(bad, np.ones((1, 4, 12, 4, 4), np.uint16), "s2l2a")
    cube = open_cube(root)  # cheap open: only the first file's metadata is read
    with pytest.raises(DataError, match=re.escape(str(bad)) + r".* has shape \(1, 4, 12, 4, 4\) but the other files"):
        cube["bands"].values


def test_corrupt_and_foreign_files(tmp_path):
    bad = tmp_path / "x.zarr.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"x.zarr.zip' is not a readable zipped Zarr file"):
        file_info(bad)
    with pytest.raises(DataError, match=r"cannot read variable 'bands' from .*x.zarr.zip"):
        read_sample_file(bad)
    with zipfile.ZipFile(tmp_path / "y.zarr.zip", "w") as zf:
        zf.writestr(".zgroup", "{}")
    with pytest.raises(DataError, match=r"has no Zarr v2 variable 'bands'"):
        file_info(tmp_path / "y.zarr.zip")


def test_wrong_band_count_in_folder(tmp_path):
    write_sample_file(tmp_path / "data" / "s2l2a" / "a.zarr.zip", np.ones((1, 4, 12, 4, 4)), "s2l2a")
    (tmp_path / "data" / "s2l1c").mkdir()
    shutil.copy(tmp_path / "data" / "s2l2a" / "a.zarr.zip", tmp_path / "data" / "s2l1c" / "a.zarr.zip")
    with pytest.raises(DataError, match=r"s2l1c files must be \(1, 4, 13, H, W\).*wrong modality folder"):
        open_cube(tmp_path)


def test_duplicate_id_across_parts(written):
    _, root = written
    src = next((root / "data" / "s1").rglob("id00.zarr.zip"))
    shutil.copy(src, root / "data" / "s1" / "part-000001" / "id00.zarr.zip")
    with pytest.raises(DataError, match=r"sample id 'id00' occurs twice"):
        open_cube(root)


def test_missing_root_and_empty(tmp_path):
    with pytest.raises(DataFileNotFound, match=r"does not exist; .*eoembed sample"):
        open_cube(tmp_path / "nope")
    (tmp_path / "data" / "s1").mkdir(parents=True)
    with pytest.raises(DataFileNotFound, match=r"no '\*.zarr.zip' files in"):
        open_cube(tmp_path)
    (tmp_path / "other").mkdir()
    with pytest.raises(DataFileNotFound, match=r"holds no SSL4EO-S12-downstream data"):
        open_cube(tmp_path / "other")


def test_writer_refuses_overwrite_and_nan(written, tmp_path):
    cube, root = written
    with pytest.raises(DataError, match=r"already exists; pass resume=True"):
        write_ssl4eo(cube, root, part_size=2, progress=False)
    write_ssl4eo(cube, root, part_size=2, resume=True, progress=False)
    arr = cube["bands"].values.copy()
    arr[1, 0, 5] = np.nan
    with pytest.raises(DataError, match=r"sample 'id01': .*s2l1c values contain NaN/inf; S2 files store nodata as 0"):
        write_ssl4eo(cube.copy(data={"bands": arr}), tmp_path / "n", progress=False)
    with pytest.raises(DataError, match=r"must have shape \(1, 4, 2, H, W\)"):
        write_sample_file(tmp_path / "s.zarr.zip", np.zeros((1, 4, 3, 2, 2)), "s1")


# ------------------------------------------------------------------------------------------------- labels
def _labels():
    df = pd.DataFrame({"crops": [0.1, np.nan, 0.7], "random_cls": [1.0, 0.0, np.nan]},
                      index=pd.Index(["a", "b", "c"], name="id"))
    df.attrs["task_types"] = {"crops": "regression", "random_cls": "classification"}
    return df


def test_labels_roundtrip(tmp_path):
    df = _labels()
    paths = write_labels(df, tmp_path / "labels")
    assert sorted(p.name for p in paths) == ["crops__regression.csv", "random_cls__classification.csv"]
    assert (tmp_path / "labels" / "random_cls__classification.csv").read_text().splitlines()[1] == "a,1"
    back = read_labels(tmp_path / "labels")
    # rows in order of first appearance in the files (crops: a, c; random_cls adds b), not sorted
    assert list(back.index) == ["a", "c", "b"]
    pd.testing.assert_frame_equal(back, df.loc[back.index, ["crops", "random_cls"]])
    assert back.attrs["task_types"] == df.attrs["task_types"] and back.index.name == "id"
    with pytest.raises(LabelError, match=r"crops__regression.csv' already exists; pass overwrite=True"):
        write_labels(df, tmp_path / "labels")


def test_labels_aliases_and_sample_labels(tmp_path, sample_labels):
    (tmp_path / "x__regr.csv").write_text("id,label\na,1.5\n")
    (tmp_path / "y__cls.csv").write_text("id,label\na,0\nb,1\n")
    df = read_labels(tmp_path)
    assert df.attrs["task_types"] == {"x": "regression", "y": "classification"} and np.isnan(df.loc["b", "x"])
    assert len(sample_labels.columns) == 11 and sample_labels.notna().all().all()


@pytest.mark.parametrize("name,content,match", [
    ("crops__reg.csv", "id,label\na,1\n", r"crops__reg.csv' is not named '<task>__<type>.csv'"),
    ("crops.csv", "id,label\na,1\n", r"crops.csv' is not named"),
    ("crops__regression.csv", "sample,value\na,1\n", r"has columns \['sample', 'value'\]; expected 'id,label'"),
    ("crops__regression.csv", "id,label\na,1\na,2\n", r"repeats id\(s\) \['a'\]"),
    ("crops__regression.csv", "id,label\na,high\n", r"non-numeric label\(s\) \['high'\]"),
    ("c__classification.csv", "id,label\na,2\n", r"has values \[2.0\]; NeuCo-Bench classification is binary 0/1"),
    ("crops__regression.csv", "", r"is empty \(not even a header\)"),
])
def test_labels_bad_files(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(LabelError, match=match):
        read_labels(tmp_path)


def test_labels_bad_calls(tmp_path):
    with pytest.raises(DataFileNotFound, match=r"label folder .* does not exist"):
        read_labels(tmp_path / "none")
    df = _labels()
    df.attrs = {}
    with pytest.raises(LabelError, match=r"no task type for column\(s\) \['crops', 'random_cls'\]"):
        write_labels(df, tmp_path)
    with pytest.raises(LabelError, match=r"has type 'ordinal'"):
        write_labels(_labels(), tmp_path, task_types={"crops": "ordinal", "random_cls": "cls"})


def test_no_duplicate_zip_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_sample_file(tmp_path / "a.zarr.zip", np.ones((1, 4, 2, 4, 4), np.float32), "s1")
