"""widgets/: LiveHistory (live curves fed by train_compressor callbacks) and SampleMap (click selection)."""
from __future__ import annotations

import math

import numpy as np
import pytest

ROWS = [{"epoch": 2, "train_loss": 1.0, "val_mse": 0.9, "q_report": 10.0, "q/a": 1.0},
        {"epoch": 4, "train_loss": 0.5, "val_mse": 0.6, "q_report": 12.5},
        {"epoch": 6, "train_loss": 0.4, "val_mse": 0.5, "q_report": 11.0}]


def _sources(root_model):
    from bokeh.models import ColumnDataSource
    out = {}
    for s in root_model.references():
        if isinstance(s, ColumnDataSource):
            for m in ("val_mse", "q_report"):
                if m in s.data:
                    out.setdefault(m, []).append({k: list(map(float, v)) for k, v in s.data.items()})
    return out


def test_live_history_streams_rows_into_rendered_plot():
    from widgets import LiveHistory
    live = LiveHistory()
    root = live.panel().get_root()  # rendered bokeh models, as a displayed notebook cell holds them
    for r in ROWS:
        live(r)
    srcs = _sources(root)
    assert set(srcs) == {"val_mse", "q_report"}
    for m in ("val_mse", "q_report"):
        assert srcs[m], m
        for d in srcs[m]:  # curve and scatter glyphs both updated in place
            assert d["epoch"] == [2.0, 4.0, 6.0]
            assert d[m] == [r[m] for r in ROWS]
    h = live.history
    assert list(h["epoch"]) == [2, 4, 6] and h.loc[0, "q/a"] == 1.0 and math.isnan(h.loc[1, "q/a"])
    assert "rows=3" in repr(live)


def test_live_history_missing_metric_is_nan():
    from widgets import LiveHistory
    live = LiveHistory(metrics=("val_mse", "q_report"))
    live({"epoch": 1, "val_mse": 0.7})  # labels=None run: no q_report key
    live({"epoch": 2, "val_mse": 0.6, "q_report": None})
    q = live.buffers["q_report"].data
    assert len(q) == 2 and q["q_report"].isna().all()
    assert list(live.buffers["val_mse"].data["val_mse"]) == [0.7, 0.6]
    assert live.history["q_report"].isna().all()
    with pytest.raises(KeyError, match="epoch"):
        live({"val_mse": 1.0})
    live.clear()
    assert live.history.empty or len(live.history) == 0
    assert len(live.buffers["val_mse"].data) == 0


def test_live_history_as_train_callback():
    """A real (tiny) train_compressor run without labels: one row per evaluation, Q-bar curves NaN."""
    from eoembed.compress import train_compressor
    from widgets import LiveHistory
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 24)).astype(np.float32)
    import xarray as xr
    fused = xr.DataArray(x, dims=("sample", "feature"), coords={"sample": [f"s{i}" for i in range(40)]},
                         attrs={"slices": {"a": (0, 12), "b": (12, 24)}})
    live = LiveHistory()
    res = train_compressor(fused, None, epochs=4, eval_every=2, hidden=16, out_dim=4, batch_size=8,
                           callbacks=[live], progress=False)
    assert list(live.history["epoch"]) == list(res.history["epoch"]) == [2, 4]
    assert np.allclose(live.buffers["val_mse"].data["val_mse"], res.history["val_mse"])
    for m in ("q_select", "q_report"):  # train_compressor's selection / report curves, NaN without labels
        assert live.buffers[m].data[m].isna().all()


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    from eoembed.data import sample
    return sample(tmp_path_factory.mktemp("wmap") / "s", n=12, size=16, progress=False)


def _click(marker):
    marker._handle_mouse_events(None, {"type": "click", "coordinates": list(marker.location)}, None)


def test_sample_map_markers_and_click_selection(small_root):
    from eoembed.data.ssl4eo import read_meta
    from widgets import SampleMap, sample_map
    meta = read_meta(small_root)
    sm = sample_map(small_root)
    assert isinstance(sm, SampleMap) and len(sm.markers) == 12 and sm.unplaced == []
    assert len(sm.layer.layers) == 12 and sm.layer in sm.map.layers
    sid = meta.index[3]
    assert sm.markers[sid].location == pytest.approx((meta.loc[sid, "lat"], meta.loc[sid, "lon"]))
    seen = []
    sm.on_select(seen.append)
    _click(sm.markers[sid])
    _click(sm.markers[meta.index[5]])
    assert sm.selected == [sid, meta.index[5]]
    assert sm.markers[sid].fill_color != sm.markers[meta.index[0]].fill_color
    assert seen[-1] == [sid, meta.index[5]] and len(seen) == 2
    _click(sm.markers[sid])  # second click deselects
    assert sm.selected == [meta.index[5]]
    with pytest.raises(KeyError):
        sm.select(["nope"])


def test_sample_map_unplaced_and_other_sources(small_root):
    from eoembed.data import open_cube
    from eoembed.data.ssl4eo import read_meta
    from widgets import sample_map
    meta = read_meta(small_root)
    df = meta.copy()
    df.loc[df.index[0], "lat"] = np.nan
    ids = [*df.index[:4], "missing_id"]
    sm = sample_map(df, ids=ids)
    assert len(sm.markers) == 3 and sm.unplaced == [df.index[0], "missing_id"]
    assert "without lat/lon" in sm.status.value and "missing_id" in sm.status.value
    cube_map = sample_map(open_cube(small_root))
    assert sorted(cube_map.markers) == sorted(meta.index)
    assert sorted(sample_map(small_root / "data").markers) == sorted(meta.index)


def test_embeddings_dict_source():
    import xarray as xr
    from widgets import sample_map
    da = xr.DataArray(np.zeros((3, 2)), dims=("sample", "feature"),
                      coords={"sample": ["a", "b", "c"], "lat": ("sample", [45.0, np.nan, 50.0]),
                              "lon": ("sample", [5.0, 6.0, np.nan])})
    sm = sample_map({"presto": da})
    assert list(sm.markers) == ["a"] and sm.unplaced == ["b", "c"]


def test_eoembed_imports_no_ui_library():
    """Layering: eoembed never imports UI libraries (only widgets/ does)."""
    import subprocess
    import sys
    code = ("import sys, eoembed, eoembed.data, eoembed.extract, eoembed.compress, eoembed.bench; "
            "print([m for m in ('ipywidgets', 'ipyleaflet', 'holoviews', 'panel', 'bokeh', 'widgets') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
