"""eoembed.product: int8 quantisation (one scale per vector), the Zarr embedding product, COG export, CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from eoembed.cli import app
from eoembed.errors import DataError, DataFileNotFound, OutputError, StoreError
from eoembed.product import (dequantize_int8, export_geotiff, open_product, quantize, quantize_int8,
                             scales_path, write_product)


def realistic(n: int = 500, d: int = 128, seed: int = 0) -> np.ndarray:
    """Embedding-like vectors: a low-rank signal, per-feature scales, heavy-ish tails (Student-t noise)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 16))
    x = latent @ rng.normal(size=(16, d)) + 0.5 * rng.standard_t(5, size=(n, d))
    return (x * rng.uniform(0.2, 3.0, size=d)).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# ------------------------------------------------------------------------------------------ quantisation
def test_quantize_formula_by_hand():
    codes, scales = quantize_int8(np.array([[1.0, -0.5, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32))
    assert scales.dtype == np.float32 and codes.dtype == np.int8
    assert scales[0] == np.float32(1.0) / np.float32(127) and scales[1] == 0
    # -0.5 * 127 = -63.5 rounds half to even (-64); 0.25 * 127 = 31.75 -> 32
    assert codes.tolist() == [[127, -64, 32, 0], [0, 0, 0, 0]]
    assert np.array_equal(dequantize_int8(codes, scales)[1], np.zeros(4, np.float32))


def test_round_trip_error_bound_and_cosine():
    rng = np.random.default_rng(1)
    e = realistic(600, 128).reshape(3, 200, 128) * rng.lognormal(0, 3, size=(3, 200, 1)).astype(np.float32)
    codes, scales = quantize_int8(e)
    assert codes.shape == e.shape and scales.shape == e.shape[:-1]
    assert codes.min() >= -127 and codes.max() <= 127
    assert (np.abs(codes).max(-1) == 127).all()  # the largest component maps to +-127
    deq = dequantize_int8(codes, scales)
    assert deq.dtype == np.float32
    # per element within half a step (plus float32 rounding of e / scale and code * scale)
    bound = scales[..., None] / 2 + 1e-6 * np.abs(e)
    assert (np.abs(e - deq) <= bound).all()
    # codes round-trip exactly; scales to float32 rounding
    codes2, scales2 = quantize_int8(deq)
    assert np.array_equal(codes2, codes)
    np.testing.assert_allclose(scales2, scales, rtol=2e-7)
    cos = cosine(e.astype(np.float64), deq.astype(np.float64))
    assert cos.mean() >= 0.999 and cos.min() >= 0.998, (cos.mean(), cos.min())


def test_prefix_of_codes_is_a_valid_lower_precision_prefix():
    e = realistic(300, 64, seed=2)
    codes, scales = quantize_int8(e)
    full = dequantize_int8(codes, scales)
    for k in (1, 8, 16, 33):
        pre = dequantize_int8(codes[:, :k], scales)
        assert np.array_equal(pre, full[:, :k])  # prefix of the codes with the full-vector scale
        assert (np.abs(e[:, :k] - pre) <= scales[:, None] / 2 + 1e-6 * np.abs(e[:, :k])).all()
        own_codes, own_scales = quantize_int8(e[:, :k])
        assert (own_scales <= scales).all()  # quantising the prefix alone is never coarser ...
        same = np.abs(e).argmax(1) < k  # ... and identical when max|e| lies in the prefix
        assert same.any() and (~same).any()
        assert np.array_equal(own_codes[same], codes[same, :k])
        assert np.array_equal(own_scales[same], scales[same])
        assert (own_scales[~same] < scales[~same]).all()


def test_quantize_nan_inf_and_nodata_mask():
    e = realistic(6, 8)
    e[2] = np.nan
    with pytest.raises(DataError, match=r"1 vector\(s\) hold NaN \(at 2\).*nodata='mask'"):
        quantize_int8(e)
    codes, scales = quantize_int8(e, nodata="mask")
    assert np.isnan(scales[2]) and (codes[2] == 0).all() and np.isfinite(scales[[0, 1, 3, 4, 5]]).all()
    deq = dequantize_int8(codes, scales)
    assert np.isnan(deq[2]).all() and np.isfinite(deq[[0, 1, 3]]).all()
    e[4, 3] = np.nan  # partly NaN: never stored
    with pytest.raises(DataError, match=r"partly NaN \(at 4\)"):
        quantize_int8(e, nodata="mask")
    e[4, 3], e[5, 0] = 0.0, np.inf
    with pytest.raises(DataError, match=r"\+-inf \(at 5\)"):
        quantize_int8(e, nodata="mask")
    with pytest.raises(DataError, match="nodata='drop' is not valid"):
        quantize_int8(e, nodata="drop")
    with pytest.raises(DataError, match="dtype"):
        dequantize_int8(np.zeros((2, 3), np.int16), np.ones(2, np.float32))
    with pytest.raises(DataError, match="one scale per vector"):
        dequantize_int8(np.zeros((2, 3), np.int8), np.ones(3, np.float32))


# --------------------------------------------------------------------------------------------- products
IDS = [f"s{i:03d}" for i in range(120)]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    rng = np.random.default_rng(3)
    e = realistic(120, 48, seed=3)
    lat, lon = rng.uniform(40, 50, 120), rng.uniform(-5, 5, 120)
    da = xr.DataArray(e, dims=("sample", "feature"), coords={"sample": IDS, "lat": ("sample", lat),
                                                             "lon": ("sample", lon)})
    path = tmp_path_factory.mktemp("prod") / "samples.zarr"
    prod = write_product(da, path, model="toy", source="test", feature_chunk=16, sample_chunk=50)
    return prod, e, lat, lon, path


def grid_array(h: int = 96, w: int = 80, d: int = 40, seed: int = 4) -> xr.DataArray:
    """A UTM-like grid: 10 m pixels, y descending (north up), with per-pixel lat/lon."""
    e = realistic(h * w, d, seed=seed).reshape(h, w, d)
    y = 5_000_000.0 - 10 * np.arange(h) - 5
    x = 400_000.0 + 10 * np.arange(w) + 5
    from pyproj import Transformer
    xx, yy = np.meshgrid(x, y)
    lon, lat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(xx, yy)
    return xr.DataArray(e, dims=("y", "x", "feature"), coords={"y": y, "x": x, "lat": (("y", "x"), lat),
                                                                "lon": (("y", "x"), lon)})


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    da = grid_array()
    path = tmp_path_factory.mktemp("prod") / "grid.zarr"
    prod = write_product(da, path, crs="EPSG:32631", model="toy", feature_chunk=16, spatial_chunk=32)
    return prod, da, path


def test_samples_product_layout_sel_and_float(samples):
    prod, e, lat, lon, path = samples
    assert prod.kind == "samples" and prod.dim == 48
    assert prod.codes.dtype == np.int8 and prod.scales.dtype == np.float32
    assert prod.codes.data.chunksize == (50, 16) and prod.scales.data.chunksize == (50,)
    a = prod.ds.attrs
    assert (a["model"], a["source"], a["precision"], a["dim"]) == ("toy", "test", "int8", 48)
    assert "max|e|/127" in a["quantisation"]
    codes, scales = quantize_int8(e)
    assert np.array_equal(prod.codes.values, codes) and np.array_equal(prod.scales.values, scales)
    assert np.array_equal(prod.embeddings.values, dequantize_int8(codes, scales))
    assert hasattr(prod.embeddings.data, "dask")  # float view is lazy
    picked = prod.sel(["s007", "s002", "s119"])
    assert list(picked.ds["sample"].values) == ["s007", "s002", "s119"]
    np.testing.assert_array_equal(picked.embeddings.values, dequantize_int8(codes, scales)[[7, 2, 119]])
    assert prod.sel("s005").embeddings.shape == (1, 48)
    np.testing.assert_allclose(open_product(path).ds["lat"].values, lat)


def test_samples_nearest_and_region(samples):
    prod, e, lat, lon, _ = samples
    near = prod.nearest(lat[[10, 77]], lon[[10, 77]])
    assert list(near.ds["sample"].values) == ["s010", "s077"]
    np.testing.assert_allclose(near.ds["distance_m"].values, 0, atol=1e-6)
    # a point between samples: brute force over all of them
    q = (45.0, 0.0)
    d = np.hypot((lat - q[0]) * 111_000, (lon - q[1]) * 111_000 * np.cos(np.radians(q[0])))
    assert prod.nearest(*q).ds["sample"].values[0] == IDS[int(d.argmin())]
    reg = prod.read_region((-1, 42, 2, 47))
    inside = (lon >= -1) & (lon <= 2) & (lat >= 42) & (lat <= 47)
    assert list(reg.ds["sample"].values) == [IDS[i] for i in np.flatnonzero(inside)]


def test_grid_region_reads_equal_the_full_slice(grid):
    prod, da, _ = grid
    full_codes, full_scales = prod.codes.values, prod.scales.values
    full = prod.embeddings.values
    codes, scales = quantize_int8(da.values)
    assert np.array_equal(full_codes, codes) and np.array_equal(full_scales, scales)
    for bbox, (ys, xs) in {(400_100, 4_999_600, 400_300, 4_999_900): (slice(10, 40), slice(10, 30)),
                           (400_000, 4_999_000, 400_800, 5_000_000): (slice(0, 96), slice(0, 80)),
                           (400_455, 4_999_155, 400_455, 4_999_155): (slice(84, 85), slice(45, 46))}.items():
        reg = prod.read_region(bbox)
        assert np.array_equal(reg.codes.values, full_codes[ys, xs]), bbox
        assert np.array_equal(reg.scales.values, full_scales[ys, xs]), bbox
        assert np.array_equal(reg.embeddings.values, full[ys, xs]), bbox
        assert np.array_equal(reg.prefix(5).embeddings.values, full[ys, xs, :5])
    # the same region by lat/lon (from the lat/lon coordinates) and by lat/lon through the CRS only
    reg = prod.read_region((400_100, 4_999_600, 400_300, 4_999_900))
    lat, lon = reg.ds["lat"].values, reg.ds["lon"].values
    box = (lon.min(), lat.min(), lon.max(), lat.max())
    by_ll = prod.read_region(box, coords="latlon")
    assert by_ll.codes.shape[0] >= 30 and by_ll.codes.shape[1] >= 20  # covers the window (projection skews it)
    iy = int(np.flatnonzero(prod.ds["y"].values == by_ll.ds["y"].values[0])[0])
    ix = int(np.flatnonzero(prod.ds["x"].values == by_ll.ds["x"].values[0])[0])
    h, w = by_ll.codes.shape[:2]
    assert np.array_equal(by_ll.embeddings.values, full[iy:iy + h, ix:ix + w])
    no_ll = type(prod)(prod.ds.drop_vars(["lat", "lon"]))
    via_crs = no_ll.read_region(box, coords="latlon")
    assert via_crs.codes.shape[0] >= 30 and via_crs.codes.shape[1] >= 20


class CountingStore:
    """A read-only Zarr store that records every key read (to prove a read touches only its chunks)."""

    @staticmethod
    def make(path):
        from zarr.storage import LocalStore, WrapperStore

        class _Counting(WrapperStore):
            keys: list = []

            async def get(self, key, prototype, byte_range=None):
                self.keys.append(key)
                return await self._store.get(key, prototype, byte_range)

            async def get_partial_values(self, prototype, key_ranges):
                key_ranges = list(key_ranges)
                self.keys.extend(k for k, _ in key_ranges)
                return await self._store.get_partial_values(prototype, key_ranges)

        store = _Counting(LocalStore(str(path), read_only=True))
        store.keys = []
        return store


def test_region_and_prefix_read_only_their_chunks(grid):
    prod, da, path = grid
    store = CountingStore.make(path)
    lazy = open_product(store)
    store.keys.clear()
    # a 6 x 4 px region inside the spatial chunk (1, 1) of 32 x 32, prefix 16 = the first feature chunk of 16
    reg = lazy.read_region((400_325, 4_999_505, 400_355, 4_999_555)).prefix(16)
    assert store.keys == []  # selecting is lazy
    assert reg.codes.data.npartitions == 1 and reg.scales.data.npartitions == 1
    vals = reg.embeddings.values
    codes_read = sorted(k for k in store.keys if k.startswith("codes/c"))
    scales_read = sorted(k for k in store.keys if k.startswith("scales/c"))
    assert codes_read == ["codes/c/1/1/0"] and scales_read == ["scales/c/1/1"], store.keys
    assert np.array_equal(vals, prod.embeddings.values[44:50, 32:36, :16])
    # the whole product has 3 x 3 x 3 codes chunks; a 3-chunk prefix of one pixel reads 3 of them
    store.keys.clear()
    lazy.read_region((400_005, 4_999_995, 400_005, 4_999_995)).prefix(33).codes.values
    assert sorted(k for k in store.keys if k.startswith("codes/c")) == ["codes/c/0/0/0", "codes/c/0/0/1",
                                                                        "codes/c/0/0/2"]


def test_grid_nearest_latlon_and_crs(grid):
    prod, da, _ = grid
    lat, lon = da["lat"].values, da["lon"].values
    near = prod.nearest(lat[[3, 50], [7, 60]], lon[[3, 50], [7, 60]])
    assert near.kind == "points" and near.codes.shape == (2, 40)
    assert list(near.ds["y"].values) == [da["y"].values[3], da["y"].values[50]]
    assert list(near.ds["x"].values) == [da["x"].values[7], da["x"].values[60]]
    np.testing.assert_array_equal(near.embeddings.values, prod.embeddings.values[[3, 50], [7, 60]])
    no_ll = type(prod)(prod.ds.drop_vars(["lat", "lon"]))
    near2 = no_ll.nearest(lat[3, 7], lon[3, 7])
    assert (near2.ds["y"].values[0], near2.ds["x"].values[0]) == (da["y"].values[3], da["x"].values[7])
    assert near2.ds["distance_m"].values[0] < 1e-3
    for p in (prod, no_ll):
        with pytest.raises(DataError, match="outside the grid"):
            p.nearest(46.0, 3.0)


def test_dask_input_is_quantised_chunkwise_and_equals_numpy(tmp_path):
    import dask.array as dsa
    da = grid_array(40, 36, 24, seed=5)
    lazy = da.copy(data=dsa.from_array(da.values, chunks=(16, 16, 24)))
    a = write_product(lazy, tmp_path / "a.zarr", spatial_chunk=16, feature_chunk=8)
    b = write_product(da, tmp_path / "b.zarr", spatial_chunk=16, feature_chunk=8)
    assert np.array_equal(a.codes.values, b.codes.values) and np.array_equal(a.scales.values, b.scales.values)
    assert a.codes.data.chunksize == (16, 16, 8)


def test_product_bad_inputs(samples, grid, tmp_path):
    sprod, e, *_ = samples
    gprod, da, gpath = grid
    with pytest.raises(DataError, match="prefix k=49 is larger than the product's dimension 48"):
        sprod.prefix(49)
    with pytest.raises(DataError, match="too small"):
        sprod.prefix(0)
    with pytest.raises(DataError, match=r"2 id\(s\) are not in the product: 'nope', 'x1'"):
        sprod.sel(["s001", "nope", "x1"])
    with pytest.raises(DataError, match="needs a samples product"):
        gprod.sel(["s001"])
    with pytest.raises(DataError, match="holds no pixel centre.*span x 400005..400795"):
        gprod.read_region((0, 0, 10, 10))
    with pytest.raises(DataError, match="min > max"):
        gprod.read_region((400_300, 4_999_600, 400_100, 4_999_900))
    with pytest.raises(DataError, match="four"):
        gprod.read_region((1, 2, 3))
    with pytest.raises(DataError, match="no sample lies inside"):
        sprod.read_region((100, 10, 110, 20))
    with pytest.raises(DataError, match="not a valid WGS84"):
        sprod.nearest(95.0, 0.0)
    bad = e.copy()
    bad[[4, 9]] = np.nan
    with pytest.raises(DataError, match=r"2 vector\(s\) hold NaN \(at 's004', 's009'\)"):
        write_product(bad, tmp_path / "nan.zarr", ids=IDS)
    assert not (tmp_path / "nan.zarr").exists()
    masked = write_product(bad, tmp_path / "nan.zarr", ids=IDS, nodata="mask")
    assert np.isnan(masked.sel("s004").embeddings.values).all()
    with pytest.raises(OutputError, match="already exists"):
        write_product(e, tmp_path / "nan.zarr", ids=IDS)
    write_product(e, tmp_path / "nan.zarr", ids=IDS, overwrite=True)  # replaces a product
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputError, match="not an eoembed product"):
        write_product(e, tmp_path / "folder", ids=IDS, overwrite=True)
    with pytest.raises(DataError, match="need ids="):
        write_product(e, tmp_path / "x.zarr")
    with pytest.raises(DataError, match="duplicate sample ids"):
        write_product(e[:2], tmp_path / "x.zarr", ids=["a", "a"])
    with pytest.raises(DataError, match="Flatten seasons"):
        write_product(xr.DataArray(np.ones((2, 3, 4)), dims=("sample", "season", "feature")), tmp_path / "x.zarr")
    with pytest.raises(DataError, match="not a coordinate reference system"):
        write_product(da, tmp_path / "x.zarr", crs="EPSG:99999999")
    with pytest.raises(DataFileNotFound, match="does not exist"):
        open_product(tmp_path / "missing.zarr")
    with pytest.raises(StoreError, match="not an eoembed embedding product"):
        open_product(tmp_path / "folder")


# ---------------------------------------------------------------------------------------------- GeoTIFF
def test_export_geotiff_reads_back_with_rasterio(grid, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    pytest.importorskip("rioxarray")
    prod, da, _ = grid
    bbox = (400_100, 4_999_600, 400_300, 4_999_900)
    out = export_geotiff(prod, tmp_path / "emb.tif", bbox=bbox, prefix=12)
    reg = prod.read_region(bbox).prefix(12)
    with rasterio.open(out) as f:
        assert (f.count, f.height, f.width) == (12, 30, 20)
        assert set(f.dtypes) == {"int8"} and f.crs.to_epsg() == 32631
        assert f.transform == rasterio.Affine(10.0, 0.0, 400_100.0, 0.0, -10.0, 4_999_900.0)
        assert f.descriptions[:2] == ("emb_000", "emb_001")
        assert f.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert np.array_equal(f.read(), reg.codes.transpose("feature", "y", "x").values)
    with rasterio.open(scales_path(out)) as f:
        assert (f.count, f.dtypes[0], f.crs.to_epsg()) == (1, "float32", 32631)
        assert f.transform == rasterio.Affine(10.0, 0.0, 400_100.0, 0.0, -10.0, 4_999_900.0)
        assert np.array_equal(f.read(1), reg.scales.values)
    with pytest.raises(OutputError, match="already exists"):
        export_geotiff(prod, out)
    # no CRS (pixel-index grid): the GeoTIFF has the grid's transform and no CRS; NaN no-data scales survive
    e = realistic(12 * 10, 6, seed=8).reshape(12, 10, 6)
    e[2, 3] = np.nan
    plain = write_product(e, tmp_path / "plain.zarr", nodata="mask")
    out2 = export_geotiff(plain, tmp_path / "plain.tif")
    with rasterio.open(out2) as f:
        assert f.crs is None and (f.count, f.height, f.width) == (6, 12, 10)
        assert f.transform == rasterio.Affine(1.0, 0.0, -0.5, 0.0, 1.0, -0.5)
        assert (f.read()[:, 2, 3] == 0).all()
    with rasterio.open(scales_path(out2)) as f:
        sc = f.read(1)
        assert np.isnan(sc[2, 3]) and np.isfinite(sc).sum() == 119
    with pytest.raises(DataError, match="grid product"):
        export_geotiff(write_product(np.ones((3, 4), np.float32), tmp_path / "s.zarr", ids=["a", "b", "c"]),
                       tmp_path / "s.tif")


# --------------------------------------------------------------------------------------------------- CLI
def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_quantize_csv_and_export(grid, tmp_path):
    e = realistic(30, 20, seed=6)
    csv = tmp_path / "emb.csv"
    pd.DataFrame(e, index=pd.Index([f"id{i}" for i in range(30)], name="id")).to_csv(csv)
    r = run_cli("quantize", csv, "--out", tmp_path / "p.zarr", "--prefix", 8, "--model", "m")
    assert r.exit_code == 0, r.output
    prod = open_product(tmp_path / "p.zarr")
    assert prod.dim == 8 and prod.ds.attrs["model"] == "m" and prod.ds.attrs["source"] == str(csv)
    codes, scales = quantize_int8(e[:, :8])
    assert np.array_equal(prod.sel(["id3"]).codes.values[0], codes[3])
    same = quantize(csv, tmp_path / "q.zarr", model="m", prefix=8)
    assert np.array_equal(same.codes.values, prod.codes.values)
    # bad inputs: exit 2, one message, no work
    for args, needle in (((csv, "--out", tmp_path / "p.zarr"), "already exists"),
                         ((csv, "--out", tmp_path / "z.zarr", "--prefix", 0), "too small"),
                         ((csv, "--out", tmp_path / "z.zarr", "--prefix", 21), "larger than the embedding dimension 20"),
                         ((tmp_path / "nope.csv", "--out", tmp_path / "z.zarr"), "does not exist")):
        r = run_cli("quantize", *args)
        assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "z.zarr").exists()
    _, _, gpath = grid
    r = run_cli("export-geotiff", gpath, "--out", tmp_path / "g.tif", "--bbox", "400100,4999600,400300,4999900",
                "--prefix", 4)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "g.tif").is_file() and scales_path(tmp_path / "g.tif").is_file()
    for args, needle in ((("--bbox", "1,2,3"), "not four numbers"), (("--prefix", 41), "larger than"),
                         (("--bbox", "0,0,1,1"), "holds no pixel centre"), (("--coords", "ll"), "not valid")):
        r = run_cli("export-geotiff", gpath, "--out", tmp_path / "h.tif", *args)
        assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "h.tif").exists()


def test_quantize_store_groups(tmp_path):
    import zarr
    rng = np.random.default_rng(7)
    store = tmp_path / "emb.zarr"
    ids = np.asarray([f"a{i}" for i in range(10)], dtype=object)
    lat, lon = rng.uniform(0, 1, 10), rng.uniform(0, 1, 10)
    e3 = rng.normal(size=(10, 2, 6)).astype(np.float32)
    for name, arr, dims in (("m3", e3, ("sample", "season", "feature")),
                            ("m2", rng.normal(size=(10, 5)).astype(np.float32), ("sample", "feature"))):
        xr.Dataset({"embedding": (dims, arr)}, coords={"sample": ids, "lat": ("sample", lat),
                                                       "lon": ("sample", lon)}).to_zarr(store, group=name, mode="a")
    zarr.open_group(str(store), mode="a").attrs["models"] = ["m2", "m3"]
    with pytest.raises(DataError, match=r"holds 2 models \['m2', 'm3'\]; choose one"):
        quantize(store, tmp_path / "p.zarr")
    prod = quantize(store, tmp_path / "p.zarr", model="m3")
    assert prod.dim == 12 and "season-major" in prod.ds.attrs["flattened"]
    assert np.array_equal(prod.codes.values, quantize_int8(e3.reshape(10, 12))[0])
    assert prod.nearest(lat[4], lon[4]).ds["sample"].values[0] == "a4"
    fused = quantize(store, tmp_path / "f.zarr", model="fused")
    assert fused.dim == 17


def test_cli_lists_the_product_commands():
    r = run_cli("--help")
    assert r.exit_code == 0 and "quantize" in r.output and "export-geotiff" in r.output, r.output


# ------------------------------------------------------------------------------------- standardised products
def test_standardized_product_keeps_low_variance_features(tmp_path):
    """standardize=True: per-feature offset/scale stored, error bound per element in standardised units, prefixes
    and regions still exact slices, and a nearly constant feature keeps its relative precision (plain int8
    does not: its error is set by the vector's largest component)."""
    rng = np.random.default_rng(11)
    e = realistic(300, 24, seed=11)
    e[:, 5] = 7.0 + 1e-3 * rng.normal(size=300).astype(np.float32)  # large mean, tiny spread
    e[:, 6] = 2.5  # constant: scale 1, stored exactly as its offset
    plain = write_product(e, tmp_path / "plain.zarr", ids=[f"s{i}" for i in range(300)])
    std = write_product(e, tmp_path / "std.zarr", ids=[f"s{i}" for i in range(300)], standardize=True,
                        feature_chunk=8)
    assert std.standardized and not plain.standardized
    off, fsc = std.ds["feature_offset"].values, std.ds["feature_scale"].values
    np.testing.assert_allclose(off, e.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fsc[np.arange(24) != 6], e.std(0)[np.arange(24) != 6], rtol=1e-4)
    assert fsc[6] == 1.0 and open_product(tmp_path / "std.zarr").ds.attrs["standardized"] == 1
    deq = std.embeddings.values
    z_err = np.abs((e - off) / fsc - std.codes.values * std.scales.values[:, None])
    assert (z_err <= std.scales.values[:, None] / 2 * (1 + 1e-5) + 1e-6).all()
    np.testing.assert_allclose(deq[:, 6], 2.5)
    corr_std = np.corrcoef(deq[:, 5], e[:, 5])[0, 1]
    corr_plain = np.corrcoef(plain.embeddings.values[:, 5], e[:, 5])[0, 1]
    assert corr_std > 0.99 > corr_plain  # plain int8 steps (~max|e|/254) swamp a spread of 1e-3
    assert cosine(deq, e).mean() >= 0.999
    np.testing.assert_array_equal(std.prefix(10).embeddings.values, deq[:, :10])
    np.testing.assert_array_equal(std.sel(["s3", "s1"]).embeddings.values, deq[[3, 1]])
    assert "feature_offset" in std.ds.attrs["quantisation"]


def test_standardized_grid_region_geotiff_and_cli(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    pytest.importorskip("rioxarray")
    da = grid_array(40, 36, 10, seed=12)
    prod = write_product(da, tmp_path / "g.zarr", crs="EPSG:32631", standardize=True, spatial_chunk=16)
    full = prod.embeddings.values
    bbox = (400_100, 4_999_700, 400_250, 4_999_900)
    ys, xs = prod.ds.y.values, prod.ds.x.values
    rows = (ys >= 4_999_700) & (ys <= 4_999_900)
    cols = (xs >= 400_100) & (xs <= 400_250)
    np.testing.assert_array_equal(prod.read_region(bbox).embeddings.values, full[rows][:, cols])
    out = export_geotiff(prod, tmp_path / "g.tif", prefix=4)
    with rasterio.open(out) as f:
        tags = f.tags()
        off = np.array(tags["feature_offset"].split(","), float)
        fsc = np.array(tags["feature_scale"].split(","), float)
        codes = f.read().astype(np.float64)
    with rasterio.open(scales_path(out)) as f:
        sc = f.read(1).astype(np.float64)
    rebuilt = (codes * sc * fsc[:, None, None] + off[:, None, None]).transpose(1, 2, 0)
    np.testing.assert_allclose(rebuilt, full[:, :, :4], rtol=1e-5, atol=1e-5)
    e = realistic(30, 12, seed=13)
    csv = tmp_path / "e.csv"
    pd.DataFrame(e, index=pd.Index([f"p{i}" for i in range(30)], name="id")).to_csv(csv)
    r = run_cli("quantize", csv, "--out", tmp_path / "c.zarr", "--standardize")
    assert r.exit_code == 0, r.output
    p = open_product(tmp_path / "c.zarr")
    assert p.standardized and cosine(p.embeddings.values, e).min() > 0.99
