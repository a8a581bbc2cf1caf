"""Real-data adapters (WorldCereal monthly cube and labelled pixels) and the d-pixel form."""
from __future__ import annotations

import numpy as np
import pytest

from eoembed.data import cube_to_pixels, make_pixels, validate_cube, worldcereal_cube, worldcereal_pixels
from eoembed.data.worldcereal import s1_to_db, utm_to_latlon
from eoembed.errors import DataError, DataFileNotFound

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def wc_nc(shared_dir):
    return shared_dir / "data" / "worldcereal" / "worldcereal_preprocessed_inputs.nc"


@pytest.fixture(scope="module")
def wc_parquet(shared_dir):
    return shared_dir / "data" / "worldcereal" / "test_public_extractions.parquet"


def test_worldcereal_cube(wc_nc):
    import xarray as xr
    cube = worldcereal_cube(wc_nc)
    assert cube.sizes == {"sample": 4, "season": 4, "band": 11, "y": 50, "x": 50}
    assert list(cube["band"].values[:3]) == ["s1/VV", "s1/VH", "s2l2a/B02"]
    assert {"s2l2a/B01", "s2l2a/B8A", "s2l2a/B09", "s2l1c/B10"} <= set(cube.attrs["missing_bands"])
    validate_cube(cube, nodata="mask")
    assert np.all((cube["lat"] > 50.5) & (cube["lat"] < 50.8)) and np.all((cube["lon"] > 5.2) & (cube["lon"] < 5.5))
    # DJF = Dec, Jan (both nodata in S2) and Feb: the season is the Feb values; MAM is the mean of Mar-May
    raw = xr.open_dataset(wc_nc, engine="h5netcdf")
    b08 = raw["S2-L2A-B08"].values.astype(float)
    assert raw["S2-L2A-B08"].dtype == np.uint16 and (b08[1:3] == 65535).all()
    np.testing.assert_allclose(cube["bands"].sel(band="s2l2a/B08", season="DJF").values[0], b08[3, :50, :50])
    np.testing.assert_allclose(cube["bands"].sel(band="s2l2a/B08", season="MAM").values[0],
                               np.rint(b08[4:7, :50, :50].mean(0)))
    vv = s1_to_db(raw["S1-SIGMA0-VV"].values[7:10, :50, :50])  # JJA, averaged in linear power
    np.testing.assert_allclose(cube["bands"].sel(band="s1/VV", season="JJA").values[0],
                               10 * np.log10((10 ** (vv / 10)).mean(0)), rtol=1e-5)
    one = worldcereal_cube(wc_nc, tile=None)
    assert one.sizes["sample"] == 1 and one.sizes["y"] == 100
    with pytest.raises(DataError, match=r"tile=30 does not divide the 100x100 grid"):
        worldcereal_cube(wc_nc, tile=30)


def test_utm_formula_matches_pyproj():
    pyproj = pytest.importorskip("pyproj")
    e, n = np.array([664005.0, 500000.0, 300000.0]), np.array([5612115.0, 4000000.0, 6500000.0])
    lat, lon = utm_to_latlon(e, n, 31)
    lon_p, lat_p = pyproj.Transformer.from_crs(32631, 4326, always_xy=True).transform(e, n)
    np.testing.assert_allclose(lat, lat_p, atol=1e-5)
    np.testing.assert_allclose(lon, lon_p, atol=1e-5)


def test_worldcereal_pixels(wc_parquet):
    px = worldcereal_pixels(wc_parquet)
    assert px["values"].dims == ("pixel", "time", "band") and px.sizes == {"pixel": 500, "time": 12, "band": 12}
    assert px["values"].dtype == np.float32 and px["valid"].dtype == bool
    assert "s2l2a/B8A" in px["band"].values and px.attrs["missing_bands"] == ["s2l2a/B01", "s2l2a/B09"]
    assert 0.85 < float(px["valid"].mean()) < 0.99  # ~7% S2 nodata
    vv = px["values"].sel(band="s1/VV").values[px["valid"].sel(band="s1/VV").values]
    assert -30 < np.median(vv) < 0
    assert px["doy"].values[0, 0] == 350 and px["doy"].values[0, 1] == 15  # 15 Dec 2016 (leap year), 15 Jan 2017
    assert (px["sampling_label"] == "sorghum").sum() == 305 and "ewoc_code" in px
    assert -5 < float(px["lat"].mean()) < 15


def test_adapter_missing_files(tmp_path):
    with pytest.raises(DataFileNotFound, match=r"does not exist; pass the WorldCereal .nc cube path"):
        worldcereal_cube(tmp_path / "x.nc")
    with pytest.raises(DataFileNotFound, match=r"does not exist; pass the WorldCereal extractions"):
        worldcereal_pixels(tmp_path / "x.parquet")


# ---------------------------------------------------------------------------------------------- d-pixels
def test_cube_to_pixels(sample_cube, sample_labels):
    cube = sample_cube.isel(sample=slice(0, 5))
    px = cube_to_pixels(cube, n_per_sample=8, seed=1, labels=sample_labels)
    assert px.sizes == {"pixel": 40, "time": 4, "band": 27}
    assert list(px["doy"].values[0]) == [105, 196, 288, 15]
    p = 11
    s, y, x = str(px["sample"].values[p]), int(px["y"].values[p]), int(px["x"].values[p])
    np.testing.assert_array_equal(px["values"].values[p], cube["bands"].sel(sample=s).values[:, :, y, x])
    assert px["crops"].values[p] == sample_labels.loc[s, "crops"]
    s2 = px["modality"].values != "s1"
    zero = px["values"].values[..., s2] == 0
    assert not px["valid"].values[..., s2][zero].any()
    again = cube_to_pixels(cube, n_per_sample=8, seed=1)
    assert list(again["id"].values) == list(px["id"].values)


def test_pixels_bad_inputs():
    v = np.zeros((2, 3, 2), np.float32)
    with pytest.raises(DataError, match=r"duplicate pixel id\(s\) \['a'\]"):
        make_pixels(v, None, ["s1/VV", "s1/VH"], [1, 2, 3], ["a", "a"])
    with pytest.raises(DataError, match=r"'doy' outside 1..366"):
        make_pixels(v, None, ["s1/VV", "s1/VH"], [0, 2, 3], ["a", "b"])
    v[1, 2, 0] = np.nan
    with pytest.raises(DataError, match=r"pixel 'b', time 2, band 's1/VV' is marked valid but is NaN"):
        make_pixels(v, np.ones(v.shape, bool), ["s1/VV", "s1/VH"], [1, 2, 3], ["a", "b"])
    with pytest.raises(DataError, match=r"band keys must be known"):
        make_pixels(v, None, ["s1/VV", "B04"], [1, 2, 3], ["a", "b"])


def test_worldcereal_cube_cli_writes_a_cube_extract_can_read(shared_dir, tmp_path):
    from typer.testing import CliRunner

    from eoembed.cli import app
    from eoembed.extract.core import open_data

    nc = shared_dir / "data" / "worldcereal" / "worldcereal_preprocessed_inputs.nc"
    out = tmp_path / "wc.zarr"
    res = CliRunner().invoke(app, ["worldcereal-cube", str(nc), "--out", str(out), "--tile", "50"])
    assert res.exit_code == 0, res.output
    cube, _ = open_data(out)
    assert cube["bands"].dims == ("sample", "season", "band", "y", "x")
    assert cube.sizes["sample"] == 4 and cube.sizes["y"] == 50
    assert "s2l1c/B10" in cube.attrs["missing_bands"]
    again = CliRunner().invoke(app, ["worldcereal-cube", str(nc), "--out", str(out)])
    assert again.exit_code != 0 and "exists" in again.output  # never overwritten
