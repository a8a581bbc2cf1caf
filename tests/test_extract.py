"""Extraction into the embedding store with fake Embedders: layout, streaming, resume, failures, dask, CLI."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

from eoembed.errors import DataError, StoreError
from eoembed.extract import extract, open_embeddings
from test_extract_fakes import ALL_BANDS, FakeEmbedder, make_cube


def direct(emb: FakeEmbedder, cube: xr.Dataset) -> np.ndarray:
    """The fake's output computed in one batch without the extraction machinery."""
    x = cube["bands"].values
    return emb(**emb.prepare(x, [str(b) for b in cube["band"].values])).detach().numpy()


@pytest.fixture(scope="module")
def cube() -> xr.Dataset:
    return make_cube(n=20, size=16)


def test_store_layout_and_values(cube, tmp_path):
    a, b = FakeEmbedder("a"), FakeEmbedder("b", temporal="all_seasons", dim=5, seed=1)
    res = extract(cube, [a, b], out=tmp_path / "emb.zarr", batch_size=3, chunk_size=7, progress=False)
    assert res.chunks_total == 3 and res.chunks_computed == 3 and res.failed == {"a": [], "b": []}
    emb = open_embeddings(tmp_path / "emb.zarr")
    assert set(emb) == {"a", "b"}
    ea, eb = emb["a"], emb["b"]
    assert ea.dims == ("sample", "season", "feature") and ea.shape == (20, 4, 8) and ea.dtype == np.float32
    assert eb.dims == ("sample", "feature") and eb.shape == (20, 5)
    assert list(ea["sample"].values) == list(cube["sample"].values)
    assert list(ea["season"].values) == ["MAM", "JJA", "SON", "DJF"]
    np.testing.assert_allclose(ea["lat"].values, cube["lat"].values)
    np.testing.assert_allclose(eb["lon"].values, cube["lon"].values)
    np.testing.assert_allclose(ea.values, direct(a, cube), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(eb.values, direct(b, cube), rtol=1e-5, atol=1e-5)
    for name, da in emb.items():
        assert da.attrs["model"] == name and da.attrs["weights"] == "random"
        assert da.attrs["source"] == "fake" and da.attrs["eoembed_version"] == "0.1.0"
        assert "band_mapping" in da.attrs and "preset" in da.attrs and da.attrs["failed_ids"] == []
        assert "_done" not in da.coords and "_failed" not in da.coords
    root = zarr.open_group(str(tmp_path / "emb.zarr"), mode="r")
    assert root.attrs["models"] == ["a", "b"] and root.attrs["eoembed_version"] == "0.1.0"


def test_streams_one_batch_at_a_time(cube, tmp_path):
    emb = FakeEmbedder()
    seen = []
    orig = emb.prepare
    emb.prepare = lambda x, *a, **k: (seen.append(x.shape[0]), orig(x, *a, **k))[1]
    extract(cube, [emb], out=tmp_path / "e.zarr", batch_size=4, chunk_size=8, num_workers=2, progress=False)
    assert max(seen) <= 4 and sum(seen) == 20


def test_resume_recomputes_only_unfinished_chunks(cube, tmp_path):
    out = tmp_path / "e.zarr"
    extract(cube, [FakeEmbedder()], out=out, batch_size=4, chunk_size=8, progress=False)
    ref = open_embeddings(out)["fake"].values
    g = zarr.open_group(str(out), mode="r+")  # pretend the run died inside chunk 1
    g["fake/_done"][1] = 0
    g["fake/embedding"][8:16] = np.nan
    with pytest.raises(StoreError, match="unfinished"):
        open_embeddings(out)
    assert open_embeddings(out, allow_incomplete=True)["fake"].shape == (20, 4, 8)
    res = extract(cube, [FakeEmbedder()], out=out, batch_size=4, chunk_size=8, progress=False)
    assert (res.chunks_computed, res.chunks_skipped) == (1, 2)
    np.testing.assert_array_equal(open_embeddings(out)["fake"].values, ref)


def test_refuses_store_made_with_other_settings(cube, tmp_path):
    out = tmp_path / "e.zarr"
    extract(cube, [FakeEmbedder()], out=out, batch_size=4, progress=False)
    with pytest.raises(StoreError, match=r"different set of sample ids.*new --out.*resume=False"):
        extract(cube.isel(sample=slice(0, 10)), [FakeEmbedder()], out=out, progress=False)
    with pytest.raises(StoreError, match="holds models"):
        extract(cube, [FakeEmbedder("other")], out=out, progress=False)
    with pytest.raises(StoreError, match="different settings for model 'fake'.*embed_dim|shape"):
        extract(cube, [FakeEmbedder(dim=3)], out=out, progress=False)
    with pytest.raises(StoreError, match="chunk_size"):
        extract(cube, [FakeEmbedder()], out=out, batch_size=4, chunk_size=5, progress=False)
    res = extract(cube.isel(sample=slice(0, 10)), [FakeEmbedder(dim=3)], out=out, resume=False, progress=False)
    assert res.chunks_computed == 1 and open_embeddings(out)["fake"].shape == (10, 4, 3)


def test_never_overwrites_foreign_directory(cube, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("x")
    for resume in (True, False):
        with pytest.raises(StoreError, match="not an eoembed embedding store"):
            extract(cube, [FakeEmbedder()], out=out, resume=resume, progress=False)
    assert (out / "precious.txt").exists()


def test_nan_input_raises_with_sample_id(cube, tmp_path):
    bad = cube.copy(deep=True)
    bad["bands"] = bad["bands"].copy(data=bad["bands"].values)
    bad["bands"][13, 2, ALL_BANDS.index("s2l2a/B03"), 0, 0] = np.nan
    out = tmp_path / "e.zarr"
    with pytest.raises(DataError, match=r"id0013 \(non-finite.*on_error='skip'"):
        extract(bad, [FakeEmbedder()], out=out, batch_size=4, chunk_size=4, progress=False)
    with pytest.raises(StoreError, match="unfinished"):  # nothing silently filled: chunk 3 is not committed
        open_embeddings(out)
    with pytest.warns(UserWarning, match="id0013"):
        res = extract(bad, [FakeEmbedder()], out=out, batch_size=4, chunk_size=4, progress=False, on_error="skip")
    assert res.failed == {"fake": ["id0013"]} and res.chunks_computed == 2  # resumed: 3 chunks were done
    da = open_embeddings(out)["fake"]
    assert da.attrs["failed_ids"] == ["id0013"]
    vals = da.values
    assert np.isnan(vals[13]).all() and np.isfinite(np.delete(vals, 13, axis=0)).all()
    np.testing.assert_allclose(np.delete(vals, 13, axis=0), np.delete(direct(FakeEmbedder(), cube), 13, axis=0),
                               rtol=1e-5, atol=1e-5)


def test_read_error_names_the_sample(cube, tmp_path):
    def boom(block, block_info=None):
        if block_info[0]["array-location"][0][0] == 6:
            raise OSError("corrupt file for the 7th sample")
        return block
    flaky = cube.copy()
    flaky["bands"] = cube["bands"].copy(data=cube["bands"].data.rechunk((1, -1, -1, -1, -1)).map_blocks(boom, dtype=np.float32))
    with pytest.raises(DataError, match=r"id0006 \(the cube read failed\).*corrupt file"):
        extract(flaky, [FakeEmbedder()], out=tmp_path / "a.zarr", batch_size=4, progress=False)
    with pytest.warns(UserWarning):
        res = extract(flaky, [FakeEmbedder()], out=tmp_path / "b.zarr", batch_size=4, progress=False,
                      on_error="skip")
    assert res.failed == {"fake": ["id0006"]}


def test_missing_bands(cube, tmp_path):
    s2only = cube.sel(band=[b for b in ALL_BANDS if not b.startswith("s1/")])
    s2only.attrs["missing_bands"] = ["s1/VV", "s1/VH"]
    with pytest.raises(DataError, match=r"\['s1/VV'\].*fill-mean"):
        extract(s2only, [FakeEmbedder()], out=tmp_path / "a.zarr", progress=False)
    res = extract(s2only, [FakeEmbedder()], out=tmp_path / "b.zarr", progress=False, missing_bands="fill-mean")
    assert res.filled_bands == {"fake": ["s1/VV"]}
    da = open_embeddings(tmp_path / "b.zarr")["fake"]
    assert da.attrs["filled_bands"] == ["s1/VV"] and da.attrs["fill_values"] == {"s1/VV": -12.0}
    assert da.attrs["missing_bands"] == "fill-mean"
    filled = cube.copy(deep=True)
    filled["bands"] = filled["bands"].copy(data=filled["bands"].values)
    filled["bands"][:, :, ALL_BANDS.index("s1/VV")] = -12.0
    np.testing.assert_allclose(da.values, direct(FakeEmbedder(), filled), rtol=1e-5, atol=1e-5)


def test_dask_local_cluster_matches_local_path(cube, tmp_path):
    models = [FakeEmbedder(), FakeEmbedder("g", temporal="all_seasons", dim=5, seed=2)]
    extract(cube, models, out=tmp_path / "local.zarr", batch_size=4, chunk_size=4, progress=False)
    res = extract(cube, models, out=tmp_path / "dask.zarr", batch_size=4, chunk_size=4, progress=False,
                  dask_address="local")
    assert res.chunks_computed == 5
    a, b = open_embeddings(tmp_path / "local.zarr"), open_embeddings(tmp_path / "dask.zarr")
    for m in ("fake", "g"):
        np.testing.assert_array_equal(a[m].values, b[m].values)
        assert list(a[m]["sample"].values) == list(b[m]["sample"].values)


def test_input_validation(cube, tmp_path):
    with pytest.raises(ValueError, match="no models"):
        extract(cube, [], out=tmp_path / "a.zarr")
    with pytest.raises(ValueError, match="batch_size"):
        extract(cube, [FakeEmbedder()], out=tmp_path / "a.zarr", batch_size=0)
    with pytest.raises(ValueError, match="on_error"):
        extract(cube, [FakeEmbedder()], out=tmp_path / "a.zarr", on_error="ignore")
    with pytest.raises(ValueError, match="missing_bands"):
        extract(cube, [FakeEmbedder()], out=tmp_path / "a.zarr", missing_bands="zero")
    with pytest.raises(ValueError, match="repeat a name"):
        extract(cube, [FakeEmbedder(), FakeEmbedder()], out=tmp_path / "a.zarr")
    dup = cube.assign_coords(sample=["x"] * 20)
    with pytest.raises(DataError, match="duplicate sample ids.*'x'"):
        extract(dup, [FakeEmbedder()], out=tmp_path / "a.zarr")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        extract(tmp_path / "nowhere", [FakeEmbedder()], out=tmp_path / "a.zarr")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_embeddings(tmp_path / "nothing.zarr")


def test_cli_extract_with_module_reference(cube, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from eoembed.cli import app
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: fixed-length strings have no v3 spec yet
        cube.to_zarr(tmp_path / "cube.zarr", consolidated=False)
    out = tmp_path / "emb.zarr"
    args = ["extract", str(tmp_path / "cube.zarr"), "--model", "test_extract_fakes:slow_fake", "--out", str(out),
            "--batch-size", "8", "--no-progress", "--weights", "random"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "20 samples" in r.output
    da = open_embeddings(out)["slow"]
    np.testing.assert_allclose(da.values, direct(FakeEmbedder("slow"), cube), rtol=1e-5, atol=1e-5)
    r = CliRunner().invoke(app, args[:-2] + ["--chunk-size", "3"])
    assert r.exit_code == 2 and "--chunk-size 3" in r.output and "Traceback" not in r.output, r.output


def test_per_model_cli_values():
    from eoembed.extract.cli import per_model_option
    assert per_model_option(None, ["a"], "auto") == "auto"
    assert per_model_option(["random"], ["a", "presto"], "auto") == "random"
    assert per_model_option(["random", "presto=/w/p.pt"], ["a", "presto"], "auto") == \
        {"*": "random", "presto": "/w/p.pt"}
    assert per_model_option(["presto=full"], ["a", "presto"], "full") == {"presto": "full", "*": "full"}
