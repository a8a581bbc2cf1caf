"""Every registered model (tiny, random weights) through `extract` on the sample dataset and the WorldCereal cube,
plus Presto with its real weights and the `eoembed extract` command line."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from eoembed.errors import DataError
from eoembed.extract import extract, open_embeddings
from eoembed.models import get_model, model_names

PRESTO_WEIGHTS = "weights/presto/default_model.pt"


def check_group(da, name, cube, size, source):
    spec = get_model(name).resolved(None, size)
    n = cube.sizes["sample"]
    if spec.temporal == "per_season":
        assert da.dims == ("sample", "season", "feature") and da.shape == (n, 4, spec.embed_dim), name
        assert list(da["season"].values) == ["MAM", "JJA", "SON", "DJF"]
    else:
        assert da.dims == ("sample", "feature") and da.shape == (n, spec.embed_dim), name
    assert list(da["sample"].values) == [str(s) for s in cube["sample"].values]
    np.testing.assert_allclose(da["lat"].values, cube["lat"].values)
    np.testing.assert_allclose(da["lon"].values, cube["lon"].values)
    assert da.attrs["model"] == name and da.attrs["size"] == size and da.attrs["source"] == source
    assert da.attrs["band_mapping"] and da.attrs["eoembed_version"] and "preset" in da.attrs
    assert da.attrs["failed_ids"] == []
    vals = da.values
    assert vals.dtype == np.float32 and np.isfinite(vals).all() and vals.std() > 0, name


def test_every_model_tiny_on_sample(sample_root, sample_cube, tmp_path):
    names = model_names()
    assert len(names) >= 6
    res = extract(sample_root, models=names, out=tmp_path / "emb.zarr", size="tiny", weights="random",
                  batch_size=8, progress=False)
    assert res.models == names and res.n_samples == sample_cube.sizes["sample"]
    emb = open_embeddings(tmp_path / "emb.zarr")
    assert list(emb) == names
    for name in names:
        check_group(emb[name], name, sample_cube, "tiny", str(sample_root))
        assert emb[name].attrs["weights"] == "random"


def test_dask_workers_build_registry_models_and_read_by_path(sample_root, tmp_path):
    kw = dict(models=["croma_base", "dofa_base"], size="tiny", weights="random", batch_size=4, chunk_size=8,
              progress=False)
    extract(sample_root, out=tmp_path / "local.zarr", **kw)
    res = extract(sample_root, out=tmp_path / "dask.zarr", dask_address="local", **kw)
    assert res.chunks_computed == 5
    a, b = open_embeddings(tmp_path / "local.zarr"), open_embeddings(tmp_path / "dask.zarr")
    for m in ("croma_base", "dofa_base"):
        np.testing.assert_array_equal(a[m].values, b[m].values)


def test_presto_real_weights_and_cli(sample_cube, shared_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from eoembed.extract.cli import register
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    small = sample_cube.isel(sample=slice(0, 8)).chunk({"band": -1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: fixed-length strings have no v3 spec yet
        small.to_zarr(tmp_path / "cube.zarr", consolidated=False)
    out = tmp_path / "emb.zarr"
    w = str(shared_dir / PRESTO_WEIGHTS)
    r = CliRunner().invoke(app, ["extract", str(tmp_path / "cube.zarr"), "--model", "croma_base", "--model", "presto",
                                 "--out", str(out), "--size", "tiny", "--size", "presto=full", "--weights", "random",
                                 "--weights", f"presto={w}", "--no-progress"])
    assert r.exit_code == 0, r.output
    emb = open_embeddings(out)
    check_group(emb["presto"], "presto", small, "full", str(tmp_path / "cube.zarr"))
    assert emb["presto"].attrs["weights"].startswith("default_model.pt")
    assert emb["croma_base"].attrs["weights"] == "random"


def test_fill_mean_uses_the_models_own_filling(sample_cube, tmp_path):
    from eoembed.models import load_model
    x = sample_cube.isel(sample=slice(0, 2))
    # no L1C (a whole DOFA group) and no L2A B04 (one band of CROMA's and Scale-MAE's inputs)
    keep = [str(b) for b in x["band"].values if not b.startswith("s2l1c/") and b != "s2l2a/B04"]
    cut = x.sel(band=keep)
    names = ["croma_base", "scalemae_large", "dofa_base"]
    res = extract(cut, names, out=tmp_path / "emb.zarr", size="tiny", weights="random", missing_bands="fill-mean",
                  progress=False)
    emb = open_embeddings(res.path)
    for name in names:
        model = load_model(name, weights=None, size="tiny", missing_bands="fill-mean")
        absent = [b for b in model.spec.bands if b not in keep]
        assert res.filled_bands[name] == emb[name].attrs["filled_bands"] == absent, name
        assert emb[name].attrs["fill_values"] == {}  # nothing filled by the extraction code itself
        np.testing.assert_allclose(emb[name].values, model.embed(cut["bands"].values, keep), rtol=1e-5, atol=1e-5,
                                   err_msg=name)


def test_worldcereal_cube_fill_mean(shared_dir, tmp_path):
    from eoembed.data import worldcereal_cube
    cube = worldcereal_cube(shared_dir / "data/worldcereal/worldcereal_preprocessed_inputs.nc", tile=50)
    cube = cube.isel(y=slice(0, 32), x=slice(0, 32))  # 4 tiles cut to 32 px, the native size of tiny CROMA
    names = model_names()
    absent = {n: [b for b in get_model(n).bands if b not in set(cube["band"].values)] for n in names}
    needy = [n for n in names if absent[n]]
    assert needy, "the WorldCereal cube lacks L1C and B01/B09/B8A, some model must need them"
    with pytest.raises(DataError, match="fill-mean"):
        extract(cube, [needy[0]], out=tmp_path / "err.zarr", size="tiny", weights="random", progress=False)
    res = extract(cube, names, out=tmp_path / "emb.zarr", size="tiny", weights="random", batch_size=8,
                  missing_bands="fill-mean", progress=False)
    emb = open_embeddings(res.path)
    for name in names:
        check_group(emb[name], name, cube, "tiny", cube.attrs["source"])
        assert emb[name].attrs["filled_bands"] == absent[name]
        assert emb[name].attrs["missing_bands"] == "fill-mean"
