"""Cube form: construction, band selection and validation (every bad input raises a DataError naming the fix)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from eoembed.data import all_band_keys, make_cube, select_bands, validate_cube
from eoembed.errors import DataError


def _cube(n: int = 3, size: int = 4, modalities=("s1", "s2l1c", "s2l2a"), **kw) -> xr.Dataset:
    rng = np.random.default_rng(0)
    keys = all_band_keys(tuple(modalities))
    v = np.empty((n, 4, len(keys), size, size), np.float32)
    for j, k in enumerate(keys):
        v[:, :, j] = rng.uniform(-25, -5, (n, 4, size, size)) if k.startswith("s1/") else rng.integers(1, 5000, (n, 4, size, size))
    ids = kw.pop("ids", [chr(ord("a") + i) for i in range(n)])
    return make_cube(v, ids, keys, lat=np.linspace(40, 50, n), lon=np.linspace(0, 10, n), source="unit", **kw)


def _set(cube, sample, season, band, value):
    arr = cube["bands"].values.copy()
    s = list(cube["sample"].values).index(sample)
    t = list(cube["season"].values).index(season)
    b = list(cube["band"].values).index(band)
    arr[s, t, b, 0, 0] = value
    return cube.copy(data={"bands": arr})


def test_valid_cube_report():
    cube = _cube()
    rep = validate_cube(cube)
    assert rep["n_samples"] == 3 and rep["shape"] == (3, 4, 27, 4, 4)
    assert rep["nan_fraction"] == 0 and set(rep["value_range"]) == {"s1", "s2l1c", "s2l2a"}
    assert cube["bands"].dtype == np.float32 and list(cube["modality"].values[:3]) == ["s1", "s1", "s2l1c"]


def test_missing_bands_default_and_partial_modality():
    keys = [k for k in all_band_keys(("s2l2a",)) if k not in ("s2l2a/B01", "s2l2a/B09")]
    cube = make_cube(np.full((1, 4, len(keys), 2, 2), 1000, np.float32), ["x"], keys)
    assert cube.attrs["missing_bands"] == ["s2l2a/B01", "s2l2a/B09"]
    assert np.isnan(cube["lat"].values).all()


def test_select_bands_order_and_missing():
    cube = _cube(modalities=("s1", "s2l2a"))
    da = select_bands(cube, ["s2l2a/B04", "s1/VH"])
    assert list(da["band"].values) == ["s2l2a/B04", "s1/VH"] and da.dims == ("sample", "season", "band", "y", "x")
    with pytest.raises(DataError, match=r"cube lacks band\(s\) \['s2l1c/B10', 's2l2a/B13'\]"):
        select_bands(cube, ["s2l1c/B10", "s2l2a/B04", "s2l2a/B13"])
    with pytest.raises(DataError, match=r"band\(s\) \['s1/VV'\] requested more than once"):
        select_bands(cube, ["s1/VV", "s1/VV"])


def test_select_bands_names_source_missing():
    keys = [k for k in all_band_keys(("s2l2a",)) if k != "s2l2a/B8A"]
    cube = make_cube(np.full((1, 4, len(keys), 2, 2), 1000, np.float32), ["x"], keys, source="wc.nc")
    with pytest.raises(DataError, match=r"The source \('wc.nc'\) does not have 's2l2a/B8A'"):
        select_bands(cube, ["s2l2a/B8A"])


# ----------------------------------------------------------------------------------------------- bad inputs
def test_bad_not_a_dataset():
    with pytest.raises(DataError, match=r"expected an xr.Dataset cube, got DataArray"):
        validate_cube(_cube()["bands"])


def test_bad_no_bands_variable():
    with pytest.raises(DataError, match=r"cube has no data variable 'bands' \(variables: \['image'\]\)"):
        validate_cube(_cube().rename({"bands": "image"}))


def test_bad_dims_order():
    cube = _cube()
    cube = cube.assign(bands=cube["bands"].transpose("sample", "band", "season", "y", "x"))
    with pytest.raises(DataError, match=r"has dims \('sample', 'band', 'season', 'y', 'x'\); expected .*transpose"):
        validate_cube(cube)


def test_bad_integer_dtype():
    cube = _cube()
    s2 = _cube(modalities=("s2l2a",))
    s2 = s2.assign(bands=s2["bands"].astype("uint16"))
    with pytest.raises(DataError, match=r"has dtype uint16; expected float32 .*astype\('float32'\)"):
        validate_cube(s2)
    cube = cube.assign(bands=cube["bands"].astype("uint16"))  # S1 dB cannot be unsigned
    with pytest.raises(DataError, match=r"integers \(uint16\) but S1 must be float dB"):
        validate_cube(cube)


def test_bad_season_names():
    cube = _cube().assign_coords(season=["spring", "summer", "autumn", "winter"])
    with pytest.raises(DataError, match=r"season coordinate is \['spring', 'summer', 'autumn', 'winter'\]; "
                                        r"expected exactly \['MAM', 'JJA', 'SON', 'DJF'\]"):
        validate_cube(cube)


def test_bad_season_left_out():
    cube = _cube().isel(season=[0, 1, 3])
    with pytest.raises(DataError, match=r"season coordinate is \['MAM', 'JJA', 'DJF'\].*present as NaN"):
        validate_cube(cube)


def test_bad_season_entirely_missing():
    cube = _cube()
    arr = cube["bands"].values.copy()
    arr[1, 1] = np.nan
    cube = cube.copy(data={"bands": arr})
    with pytest.raises(DataError, match=r"season JJA of sample 'b' \(in unit\) has no data in any band"):
        validate_cube(cube, nodata="mask")
    validate_cube(cube, nodata="mask", missing_seasons="allow")


def test_bad_season_s2_all_zero():
    cube = _cube(modalities=("s2l2a",))
    arr = cube["bands"].values.copy()
    arr[2, 3] = 0
    with pytest.raises(DataError, match=r"season DJF of sample 'c'"):
        validate_cube(cube.copy(data={"bands": arr}))


def test_bad_duplicate_ids():
    with pytest.raises(DataError, match=r"duplicate sample id\(s\) 'a' in the cube"):
        _cube(ids=["a", "b", "a"])


def test_bad_empty_id():
    with pytest.raises(DataError, match=r"empty sample id"):
        _cube(ids=["a", "", "c"])


def test_bad_unknown_band_key():
    cube = _cube(modalities=("s1",))
    cube = cube.assign_coords(band=["s1/VV", "s1/HH"], band_name=("band", ["VV", "HH"]))
    with pytest.raises(DataError, match=r"unknown band key\(s\) \['s1/HH'\]"):
        validate_cube(cube)


def test_bad_duplicate_band_key():
    keys = ["s1/VV", "s1/VV", "s1/VH"]
    with pytest.raises(DataError, match=r"band key\(s\) \['s1/VV'\] appear more than once"):
        make_cube(np.zeros((1, 4, 3, 2, 2), np.float32) - 10, ["a"], keys)


def test_bad_incomplete_modality():
    cube = _cube(modalities=("s2l2a",)).drop_sel(band="s2l2a/B05")
    with pytest.raises(DataError, match=r"modality 's2l2a' is incomplete: band\(s\) \['s2l2a/B05'\] are neither"):
        validate_cube(cube)
    cube.attrs["missing_bands"] = ["s2l2a/B05"]
    validate_cube(cube)


def test_bad_present_and_listed_missing():
    cube = _cube(modalities=("s1",), missing_bands=[], validate=False)
    cube.attrs["missing_bands"] = ["s1/VH"]
    with pytest.raises(DataError, match=r"band\(s\) \['s1/VH'\] are in the cube AND listed in attrs\['missing_bands'\]"):
        validate_cube(cube)


def test_bad_modality_coord_disagrees():
    cube = _cube(modalities=("s1",)).assign_coords(modality=("band", ["s1", "s2l2a"]))
    with pytest.raises(DataError, match=r"band 's1/VH' has modality 's2l2a' and band_name 'VH'"):
        validate_cube(cube)


def test_bad_missing_coordinate():
    with pytest.raises(DataError, match=r"cube lacks coordinate 'lat'"):
        validate_cube(_cube().drop_vars("lat"))


def test_bad_nan_default_policy():
    cube = _set(_cube(), "b", "SON", "s2l2a/B04", np.nan)
    with pytest.raises(DataError, match=r"NaN values in sample 'b', season SON, band 's2l2a/B04' \(in unit\) "
                                        r"\(1 values in all\); pass nodata='mask'"):
        validate_cube(cube)
    assert validate_cube(cube, nodata="mask")["nan_fraction"] > 0


def test_bad_inf():
    cube = _set(_cube(), "c", "MAM", "s1/VV", -np.inf)
    with pytest.raises(DataError, match=r"infinite values in sample 'c', season MAM, band 's1/VV'.*log10\(0\)"):
        validate_cube(cube, nodata="mask")


def test_bad_s2_fill_value_65535():
    cube = _set(_cube(), "a", "DJF", "s2l1c/B08", 65535)
    with pytest.raises(DataError, match=r"value 65535 outside the plausible range \[0, 25000\] for s2l1c in sample 'a', "
                                        r"season DJF, band 's2l1c/B08'.*convert 65535"):
        validate_cube(cube)


def test_bad_s2_negative():
    cube = _set(_cube(), "b", "MAM", "s2l2a/B02", -3)
    with pytest.raises(DataError, match=r"value -3 outside .* for s2l2a in sample 'b', season MAM, band 's2l2a/B02'"):
        validate_cube(cube)


def test_bad_s1_not_db():
    cube = _set(_cube(), "a", "JJA", "s1/VH", 4628.0)  # WorldCereal's scaled integer, not dB
    with pytest.raises(DataError, match=r"value 4628 outside the plausible range \[-60, 30\] for s1 .*band 's1/VH'.*in dB"):
        validate_cube(cube)


def test_bad_lat_range():
    cube = _cube().assign_coords(lat=("sample", [45.0, 95.0, 10.0]))
    with pytest.raises(DataError, match=r"lat out of range \[-90, 90\] for sample\(s\) 'b'"):
        validate_cube(cube)


def test_bad_lon_projected_metres():
    cube = _cube().assign_coords(lon=("sample", [664005.0, 5.0, 6.0]))
    with pytest.raises(DataError, match=r"lon out of range \[-180, 180\] for sample\(s\) 'a'.*reproject"):
        validate_cube(cube)


def test_bad_policy_argument():
    with pytest.raises(DataError, match=r"nodata='drop'; use 'error'"):
        validate_cube(_cube(), nodata="drop")


def test_bad_values_not_5d():
    with pytest.raises(DataError, match=r"cube values must be 5-D"):
        make_cube(np.zeros((2, 4, 3, 3), np.float32), ["a", "b"], ["s1/VV"])


def test_lazy_cube_validation_streams(sample_cube):
    rep = validate_cube(sample_cube)
    assert rep["n_samples"] == sample_cube.sizes["sample"]
    assert rep["value_range"]["s2l2a"][0] == 0  # swath-edge nodata zeros are accepted
