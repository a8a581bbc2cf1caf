"""widgets/: LiveHistory monitor, SampleMap + shared Selection, SampleViewer, offline basemap (no browser)."""
from __future__ import annotations


import numpy as np
import pytest

ROWS = [{"epoch": 6, "train_loss": 0.4, "val_mse": 0.5, "q_select": 9.0, "q_report": 11.0},
        {"epoch": 2, "train_loss": 1.0, "val_mse": 0.9, "q_select": 10.0, "q_report": 10.0, "q_select/a": 1.0,
         "q_select/b": 2.5},
        {"epoch": 4, "train_loss": 0.5, "val_mse": 0.6, "q_select": 8.0, "q_report": 12.5}]


@pytest.fixture(autouse=True)
def _no_tiles(monkeypatch):
    """No tile-server probe from tests (the map must work without one)."""
    monkeypatch.setenv("EOEMBED_TILES", "off")


def _points(svg: str) -> dict[str, list[tuple[float, float]]]:
    """``{series: [(epoch, value), ...]}`` of the drawn points, in drawing order."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(svg)
    out: dict[str, list] = {}
    for c in root.iter("{http://www.w3.org/2000/svg}circle"):
        out.setdefault(c.get("data-series"), []).append((float(c.get("data-epoch")), float(c.get("data-value"))))
    return out


def test_live_history_streams_sorted_rows_into_the_widget():
    from widgets import LiveHistory
    live = LiveHistory()
    w = live.widget  # the displayed ipywidget: its value is what the browser gets, row by row
    seen = []
    w.observe(lambda ch: seen.append(ch["new"]), names="value")
    for r in ROWS:  # out of order, as observed in the notebook bug
        live(r)
    assert len(seen) == 3  # one update per row, while the "training" runs
    assert len(_points(seen[0])["val_mse"]) == 1 and len(_points(seen[1])["val_mse"]) == 2
    pts = _points(w.value)
    assert pts["val_mse"] == [(2, 0.9), (4, 0.6), (6, 0.5)]  # sorted by epoch
    assert [e for e, _ in pts["q_report"]] == [2, 4, 6]
    assert list(live.history["epoch"]) == [2, 4, 6] and live.history.loc[0, "q_select/a"] == 1.0
    assert live.best == {"mse": 6.0, "q": 2.0}  # lowest val_mse, highest q_select (never q_report)
    assert 'data-best="MSE-best" data-epoch="6"' in w.value and 'data-best="Q-best" data-epoch="2"' in w.value
    assert "a = 1" in w.value and "b = 2.5" in w.value  # per-task Q on hover (<title>) of epoch 2
    assert "rows=3" in repr(live) and "MSE-best epoch 6" in live.status()


def test_live_history_x_range_covers_every_point():
    import re
    from widgets import LiveHistory
    live = LiveHistory(metrics=("val_mse",), width=400)
    for r in ROWS:
        live(r)
    xs = [float(x) for x in re.findall(r'<circle[^>]*cx="([\d.]+)"', live.svg())]
    assert len(xs) == 3 and all(58 <= x <= 400 - 118 for x in xs)
    assert xs == sorted(xs)


def test_live_history_prefix_curves_and_missing_metrics():
    from widgets import LiveHistory
    live = LiveHistory()
    for e in (3, 1, 2):
        row = {"epoch": e, "val_mse": 1.0 / e}  # labels=None run: no q_* at all
        for k in (16, 4):
            row.update({f"val_mse/k{k}": 1.0 / e + 1.0 / k, f"q_select/k{k}": float(e * k), f"q_report/k{k}": None})
        live(row)
    assert live.prefixes == [4, 16]
    pts = _points(live.svg())
    assert set(pts) == {"val_mse", "val_mse/k4", "val_mse/k16", "q_select/k4", "q_select/k16"}  # NaN: no points
    assert pts["val_mse/k4"] == [(1, 1.25), (2, 0.75), (3, pytest.approx(1 / 3 + 0.25, rel=1e-5))]
    assert [e for e, _ in pts["q_select/k16"]] == [1, 2, 3]
    assert live.best["q"] is None and live.best["mse"] == 3.0
    assert live.history["q_report"].isna().all()
    with pytest.raises(KeyError, match="epoch"):
        live({"val_mse": 1.0})
    live.clear()
    assert len(live.history) == 0 and _points(live.svg()) == {}


def test_live_history_panel_and_from_results(tmp_path):
    import pandas as pd
    from widgets import LiveHistory
    (tmp_path / "compress").mkdir()
    pd.DataFrame(ROWS).to_csv(tmp_path / "compress" / "history.csv", index=False)
    live = LiveHistory.from_results(tmp_path)
    pane = live.__panel__()
    assert [e for e, _ in _points(pane.object[pane.object.index("<svg"):pane.object.index("</svg>") + 6])["val_mse"]
            ] == [2, 4, 6]
    live({"epoch": 8, "val_mse": 0.1})  # e.g. from a training thread in `panel serve`: the pane follows
    assert 'data-epoch="8"' in pane.object
    with pytest.raises(FileNotFoundError, match="history"):
        LiveHistory.from_results(tmp_path / "nothing")


def test_live_history_as_train_callback():
    """A real (tiny) train_compressor run without labels: one row per evaluation, Q-bar curves NaN."""
    import xarray as xr
    from eoembed.compress import train_compressor
    from widgets import LiveHistory
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 24)).astype(np.float32)
    fused = xr.DataArray(x, dims=("sample", "feature"), coords={"sample": [f"s{i}" for i in range(40)]},
                         attrs={"slices": {"a": (0, 12), "b": (12, 24)}})
    live = LiveHistory()
    w = live.widget
    res = train_compressor(fused, None, epochs=4, eval_every=2, hidden=16, out_dim=4, batch_size=8,
                           callbacks=[live], progress=False)
    assert list(live.history["epoch"]) == list(res.history["epoch"]) == [2, 4]
    assert np.allclose([v for _, v in _points(w.value)["val_mse"]], res.history["val_mse"], rtol=1e-5)
    for m in ("q_select", "q_report"):  # train_compressor's selection / report curves, NaN without labels
        assert live.history[m].isna().all()


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
    assert sm.labels is not None and sm.filter_box is not None  # the root's labels feed the label filter
    assert len(sm.layer.markers) == 12 and sm.layer in sm.map.layers  # clustered: overlapping stay clickable
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


def test_eoembed_source_never_names_the_ui_layer():
    """Layering: no module of eoembed imports ``widgets``; the UI plugs in through eoembed.plugins entry points."""
    import re
    from pathlib import Path
    import eoembed
    pat = re.compile(r"^\s*(from\s+widgets[\s.]|import\s+widgets\b)", re.M)
    bad = [str(p) for p in Path(eoembed.__file__).parent.rglob("*.py") if pat.search(p.read_text())]
    assert bad == []


def test_ui_plugin_adds_serve_and_demo_hooks_without_ui_libraries():
    """The installed plugin gives the CLI `serve` and the demo its report/serve hooks; loading it (every CLI call)
    imports no UI library, and a missing hook is a clear PluginMissing."""
    import subprocess
    import sys
    code = ("import sys, eoembed.cli as c, eoembed.plugins as p; "
            "names = [cmd.name or cmd.callback.__name__ for cmd in c.app.registered_commands]; "
            "print('serve' in names, [sorted(getattr(m, 'HOOKS', {})) for m in p.plugins()], "
            "[m for m in ('ipywidgets', 'ipyleaflet', 'holoviews', 'panel', 'bokeh') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True [['report', 'serve']] []", out.stdout + out.stderr
    from eoembed.plugins import PluginMissing, hook
    with pytest.raises(PluginMissing, match="no installed eoembed plugin provides 'nope'"):
        hook("nope")


# ---------------------------------------------------------------------------------- selection, filter, draw, viewer
def test_map_and_viewer_follow_one_selection(small_root):
    from eoembed.data import open_cube
    from eoembed.data.ssl4eo import read_meta
    from widgets import SampleMap, SampleViewer, Selection, locations
    ids = list(read_meta(small_root).index)
    sel = Selection()
    smap = SampleMap(locations(small_root), selection=sel)
    viewer = SampleViewer(open_cube(small_root), selection=sel)
    assert viewer.sample is None and viewer.png is None
    printed = []
    smap.on_select(lambda got: print("selected:", got) or printed.append(got))
    _click(smap.markers[ids[2]])
    _click(smap.markers[ids[7]])
    assert sel.ids == (ids[2], ids[7]) and sel.source == "map"
    assert viewer.sample == ids[7] and viewer.png[:8] == b"\x89PNG\r\n\x1a\n"  # the last clicked sample
    assert "selected:" in "".join(o.get("text", "") for o in smap.output.outputs)  # printed under the map
    sel.set([ids[4], "not_on_map"], source="umap")  # another view writes: map and viewer follow
    assert smap.selected == [ids[4]] and smap.markers[ids[4]].fill_color != smap.markers[ids[2]].fill_color
    assert viewer.sample == ids[4] and sel.ids == (ids[4], "not_on_map")  # map did not echo or trim it
    sel.clear(source="umap")
    assert smap.selected == [] and viewer.sample is None
    SampleViewer(open_cube(small_root), selection=sel).widget  # displays with nothing selected


def test_viewer_images_are_four_seasons_rgb_and_sar(small_root):
    from eoembed.data import open_cube
    from widgets.viewer import sample_images
    cube = open_cube(small_root)
    sid = str(cube["sample"].values[0])
    im = sample_images(cube, sid)
    assert set(im) == {"rgb", "sar"}
    for a in im.values():
        assert a.shape == (4, 16, 16, 3) and 0.0 <= a.min() and a.max() <= 1.0 and a.std() > 0
    with pytest.raises(KeyError, match="nope"):
        sample_images(cube, "nope")


def test_rectangle_selects_exactly_the_points_inside():
    import pandas as pd
    from widgets import SampleMap
    locs = pd.DataFrame({"lat": [10.0, 10.0, 12.5, 20.0, 14.9, 15.1], "lon": [0.0, 5.0, 2.0, 2.0, 4.9, 4.9]},
                        index=pd.Index(list("abcdef"), name="id"))
    sm = SampleMap(locs, outlines=False)
    rect = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[-1.0, 9.0], [4.95, 9.0], [4.95, 15.0], [-1.0, 15.0], [-1.0, 9.0]]]}}
    sm._on_draw(sm.draw, action="created", geo_json=rect)  # what leaflet.draw sends for a drawn rectangle
    assert sm.selected == ["a", "c", "e"] and sm.selection.ids == ("a", "c", "e")
    tri = {"type": "MultiPolygon", "coordinates": [[[[1.0, 9.0], [6.0, 9.0], [6.0, 21.0], [1.0, 9.0]]]]}
    assert sm.select_inside(tri) == ["b", "e", "f"]  # d (lon 2, lat 20) lies left of the slanted edge
    holed = {"type": "Polygon", "coordinates": [[[-1, 9], [6, 9], [6, 21], [-1, 21], [-1, 9]],
                                               [[1, 11], [3, 11], [3, 14], [1, 14], [1, 11]]]}
    assert sm.select_inside(holed) == ["a", "b", "d", "e", "f"]  # c sits in the hole
    with pytest.raises(ValueError, match="Polygon"):
        sm.select_inside({"type": "LineString", "coordinates": [[0, 0], [1, 1]]})


def test_label_filter(small_root):
    from eoembed.data import read_labels
    from widgets import SampleMap, locations
    labels = read_labels(small_root / "labels")
    sm = SampleMap(locations(small_root), labels=labels)
    cls_col = next(c for c in labels.columns if labels[c].nunique() <= 5)
    v = labels[cls_col].dropna().iloc[0]
    got = sm.filter(cls_col, value=v)
    assert got and set(got) == set(labels.index[labels[cls_col] == v]) and sm.selected == got
    reg = next(c for c in labels.columns if labels[c].nunique() > 5)
    lo, hi = labels[reg].quantile([0.25, 0.75])
    got = sm.filter(reg, range=(lo, hi))
    assert set(got) == set(labels.index[(labels[reg] >= lo) & (labels[reg] <= hi)])
    ctl = sm._filter_controls  # the widgets under the map do the same
    ctl["column"].value = cls_col
    ctl["value"].value = ctl["value"].options[0]
    ctl["button"].click()
    assert sm.selected and all(str(labels.loc[i, cls_col]) in (ctl["value"].value, f"{float(ctl['value'].value)}")
                               for i in sm.selected)
    assert "label filter" in "".join(o.get("text", "") for o in sm.output.outputs)
    with pytest.raises(KeyError, match="no label column"):
        sm.filter("nope", value=1)


def test_map_from_results_and_panel(small_root, tmp_path):
    import shutil
    from widgets import SampleMap, Selection
    res = tmp_path / "res"
    shutil.copytree(small_root, res / "sample")
    sel = Selection()
    sm = SampleMap.from_results(res, selection=sel)
    assert len(sm.markers) == 12 and sm.labels is not None and sm.selection is sel
    assert type(sm.__panel__()).__name__ == "IPyWidget"
    assert SampleMap(sm.locations, tiles="http://127.0.0.1:1/{z}/{x}/{y}.png").map.layers[0].url.startswith("http")
    assert not any(type(x).__name__ == "TileLayer" for x in sm.map.layers)  # EOEMBED_TILES=off: no tile server


# ---------------------------------------------------------------------------------- offline basemap
TOPO = {"type": "Topology", "transform": {"scale": [0.5, 0.25], "translate": [-10.0, 40.0]},
        "arcs": [[[0, 0], [4, 0], [0, 8]],            # arc 0: (-10,40) -> (-8,40) -> (-8,42)
                 [[4, 8], [-4, 0], [0, -8]],          # arc 1: (-8,42) -> (-10,42) -> (-10,40)
                 [[10, 10], [2, 0], [0, 2], [-2, -2]]],  # arc 2: closed triangle
        "objects": {
            "countries": {"type": "GeometryCollection", "geometries": [
                {"type": "Polygon", "arcs": [[0, 1]], "id": "001", "properties": {"name": "Square"}},
                {"type": "MultiPolygon", "arcs": [[[~1, ~0]], [[2]]], "id": "002", "properties": {"name": "Two"}},
                {"type": "LineString", "arcs": [0]},
                {"type": "Point", "coordinates": [2, 4]},
                {"type": None}]},
            "land": {"type": "Polygon", "arcs": [[0, 1]]}}}


def test_topojson_decoder_on_a_hand_written_topology():
    from widgets.assets import topo_to_geojson
    fc = topo_to_geojson(TOPO, "countries")
    f = fc["features"]
    assert [x.get("id") for x in f] == ["001", "002", None, None, None] and f[0]["properties"] == {"name": "Square"}
    sq = [[-10.0, 40.0], [-8.0, 40.0], [-8.0, 42.0], [-10.0, 42.0], [-10.0, 40.0]]
    assert f[0]["geometry"] == {"type": "Polygon", "coordinates": [sq]}
    assert f[1]["geometry"]["type"] == "MultiPolygon"
    assert f[1]["geometry"]["coordinates"][0] == [sq[::-1]]  # ~i: arcs reversed, order reversed
    assert f[1]["geometry"]["coordinates"][1] == [[[-5.0, 42.5], [-4.0, 42.5], [-4.0, 43.0], [-5.0, 42.5]]]
    assert f[2]["geometry"]["coordinates"] == sq[:3]
    assert f[3]["geometry"] == {"type": "Point", "coordinates": [-9.0, 41.0]}
    assert f[4]["geometry"] is None
    assert topo_to_geojson(TOPO, "land")["features"][0]["geometry"]["coordinates"] == [sq]
    with pytest.raises(KeyError, match="oceans"):
        topo_to_geojson(TOPO, "oceans")


def test_basemap_cache_offline_and_layers(tmp_path, monkeypatch):
    import json
    import pandas as pd
    import widgets.assets as assets
    from widgets import SampleMap
    from widgets.assets import topo_to_geojson
    monkeypatch.setenv("EOEMBED_CACHE", str(tmp_path / "cache"))
    assert assets.basemap("land") is None

    def offline(url, timeout):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(assets, "_download", offline)
    with pytest.raises(ConnectionError, match="python -m widgets.assets"):
        assets.fetch_basemap()
    assert assets.main([]) == 1 and assets.main(["--check"]) == 1
    locs = pd.DataFrame({"lat": [41.0], "lon": [-9.0]}, index=pd.Index(["a"], name="id"))
    plain = SampleMap(locs)  # offline and never fetched: the map works, without outlines
    assert [type(x).__name__ for x in plain.map.layers] == ["MarkerCluster", "DrawControl"] or \
        [type(x).__name__ for x in plain.map.layers] == ["MarkerCluster"]
    folder = assets.cache_dir()
    folder.mkdir(parents=True)
    for kind in assets.KINDS:
        (folder / f"{kind}-110m.geojson").write_text(json.dumps(topo_to_geojson(TOPO, kind)))
    sm = SampleMap(locs)
    names = [getattr(x, "name", "") for x in sm.map.layers]
    assert names.index("land") < names.index("countries") < names.index("samples")  # outlines under the markers
    assert sm.map.layers[names.index("countries")].data["features"][0]["properties"]["name"] == "Square"
