"""eoembed.projection (cached 2-D layouts, `eoembed layouts`) and the explorer views: UMAPExplorer, PrefixExplorer,
AblationView. No UMAP fit here (its first fit compiles numba for ~50 s): a counting fake reducer stands in."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

N, D = 60, 16


def _emb(n=N, d=D, seed=0, name="emb"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return xr.DataArray(x, dims=("sample", "feature"), name=name,
                        coords={"sample": np.asarray([f"s{i:03d}" for i in range(n)], dtype=object),
                                "feature": np.arange(d)})


def _labels(emb):
    rng = np.random.default_rng(1)
    x = emb.values
    lab = pd.DataFrame({"t_signal": x[:, 0] + 0.1 * rng.normal(size=len(x)),
                        "t_cls": (x[:, 1] > 0).astype(int)}, index=pd.Index(list(emb["sample"].values), name="id"))
    lab.attrs["task_types"] = {"t_signal": "regression", "t_cls": "classification"}
    return lab


@pytest.fixture()
def fake_umap(monkeypatch):
    """Replace the UMAP reducer by a cheap deterministic projection that counts its calls."""
    from eoembed import projection

    calls = []

    def fake(x, n_neighbors, min_dist, seed):
        calls.append((x.shape, n_neighbors, min_dist, seed))
        return x[:, :2] * (1.0 + min_dist) + seed

    monkeypatch.setitem(projection.REDUCERS, "umap", fake)
    return calls


# ------------------------------------------------------------------------------------------------ projection
def test_layout_cache_hit_does_not_refit(tmp_path, fake_umap):
    from eoembed.projection import layout_key, umap_layout

    e = _emb()
    a = umap_layout(e, cache_dir=tmp_path, progress=False)
    assert len(fake_umap) == 1 and a.dims == ("sample", "component") and not a.attrs["cached"]
    assert list(a["sample"].values) == list(e["sample"].values)
    b = umap_layout(e, cache_dir=tmp_path, progress=False)
    assert len(fake_umap) == 1, "second call refitted instead of reading the cache"
    assert b.attrs["cached"] and b.attrs["key"] == a.attrs["key"] == layout_key(e)
    np.testing.assert_array_equal(a.values, b.values)
    umap_layout(e, cache_dir=tmp_path, min_dist=0.3, progress=False)  # other parameters: another key
    e2 = e.copy(data=e.values.copy())
    e2.values[3, 5] += 1.0  # other content: another key
    umap_layout(e2, cache_dir=tmp_path, progress=False)
    umap_layout(e, progress=False)  # no cache folder: always fits
    assert len(fake_umap) == 4
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_layout_bad_inputs_and_small_n(tmp_path, fake_umap):
    from eoembed.errors import DataError
    from eoembed.projection import umap_layout

    e = _emb()
    bad = e.copy(data=e.values.copy())
    bad.values[7, 0] = np.nan
    with pytest.raises(DataError, match="s007"):
        umap_layout(bad, progress=False)
    with pytest.raises(DataError, match="sample ids"):
        umap_layout(e.values, progress=False)
    with pytest.raises(DataError, match="method"):
        umap_layout(e, method="tsne", progress=False)
    with pytest.warns(UserWarning, match="PCA"):
        small = umap_layout(_emb(n=8), n_neighbors=15, progress=False)
    assert small.attrs["method"] == "pca" and small.shape == (8, 2) and not fake_umap


@pytest.fixture()
def results(tmp_path):
    """A small results folder in the layout `eoembed demo` writes (no emb.zarr: embeddings.csv only)."""
    from eoembed.compress import export_embeddings, split_labels
    from eoembed.data import write_labels

    root = tmp_path / "res"
    e = _emb()
    lab = _labels(e)
    write_labels(lab, root / "sample" / "labels")
    export_embeddings(e, root / "embeddings.csv")
    sp = split_labels(lab, select_fraction=0.5, seed=0)
    (root / "compress").mkdir(parents=True)
    (root / "compress" / "config.json").write_text(json.dumps({"selection": sp.to_dict()}))
    hist = pd.DataFrame({"epoch": [5, 10, 15], "val_mse": [0.9, 0.5, 0.4], "q_select": [1.0, 3.0, 2.0],
                         "q_report": [1.5, 2.5, 2.4]})
    hist.to_csv(root / "compress" / "history.csv", index=False)
    for name, q in (("fused_ae", 3.0), ("m1", 5.0), ("raw_bands", 4.0)):
        d = root / "bench" / "ridge" / name
        d.mkdir(parents=True)
        (d / "results_summary.json").write_text(json.dumps(
            {"overall_q_score": q, "task_q_scores": {"t_signal": q + 1, "t_cls": q - 1}}))
    (root / "demo_summary.json").write_text(json.dumps(
        {"mode": "ridge", "models": ["m1"], "null_control": {"m1": {"q_mean": -1.0, "q_std": 0.2}}}))
    return root


def test_layouts_cli_writes_and_reuses(results, fake_umap):
    from typer.testing import CliRunner

    from eoembed.cli import app
    from eoembed.projection import open_layouts

    assert open_layouts(results) == {}
    r = CliRunner().invoke(app, ["layouts", str(results), "--n-neighbors", "5", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "fused_ae: umap layout of 60 samples" in r.output and len(fake_umap) == 1
    lay = open_layouts(results)
    assert list(lay) == ["fused_ae"] and lay["fused_ae"].shape == (N, 2)
    assert fake_umap[0][1] == 5
    r = CliRunner().invoke(app, ["layouts", str(results), "--n-neighbors", "5", "--no-progress"])
    assert r.exit_code == 0 and "(cached)" in r.output and len(fake_umap) == 1
    r = CliRunner().invoke(app, ["layouts", str(results), "--name", "nope"])
    assert r.exit_code == 2 and "nope" in r.output and "fused_ae" in r.output


# ------------------------------------------------------------------------------------------------ UMAPExplorer
def _layout(e, seed=0):
    from eoembed.projection import umap_layout
    return umap_layout(e, method="pca", progress=False, seed=seed)


def _sources_with_ids(root_model):
    from bokeh.models import ColumnDataSource
    return [s for s in root_model.references() if isinstance(s, ColumnDataSource) and "id" in s.data]


def test_umap_plot_selection_writes_shared_selection():
    from widgets import Selection, UMAPExplorer

    e = _emb()
    sel = Selection()
    v = UMAPExplorer({"emb": _layout(e)}, labels=_labels(e), selection=sel, color="t_cls", name="umap")
    v.__panel__().get_root()
    v.streams["index"].event(index=[2, 0, 5])  # a box/lasso selection in the plot (bokeh -> Selection1D)
    ids = tuple(v.frame["id"].iloc[[2, 0, 5]])
    assert sel.ids == ids and sel.source == "umap"
    assert set(v.highlighted_ids) == set(ids)
    hover_cols = {c for s in _sources_with_ids(v.pane.get_root()) for c in s.data}
    assert {"t_signal", "t_cls", "id"} <= hover_cols  # hover shows id and labels


def test_umap_follows_selection_from_another_view():
    from widgets import Selection, UMAPExplorer

    e = _emb()
    sel = Selection()
    a = UMAPExplorer(_layout(e), selection=sel, name="a")
    b = UMAPExplorer(_layout(e), selection=sel, name="b")
    root = b.__panel__().get_root()
    sel.set(["s010", "s003", "unknown"], source="map")  # e.g. the SampleMap
    assert set(a.highlighted_ids) == set(b.highlighted_ids) == {"s010", "s003"}
    assert "1 selected samples are not in this layout" in b.status.object
    shown = [set(s.data["id"]) for s in _sources_with_ids(root)]
    assert {"s010", "s003"} in shown  # the rendered highlight layer holds exactly the selected ids
    a.streams["index"].event(index=[1])  # a -> b, without echo
    assert sel.ids == (a.frame["id"].iloc[1],) and sel.source == "a"
    assert b.highlighted_ids == sel.ids
    sel.clear(source="map")
    assert a.highlighted_ids == b.highlighted_ids == ()


def test_umap_datashaded_box_and_lasso():
    from widgets import Selection, UMAPExplorer

    e = _emb()
    lay = _layout(e)
    sel = Selection()
    v = UMAPExplorer({"emb": lay}, labels=_labels(e), selection=sel, datashade=True, color="t_signal")
    assert v.shaded and set(v.streams) == {"bounds", "lasso"}  # not rendered here: datashader's numba compile
    # costs ~30 s on this machine; benchmarks/bench_umap.py renders 100k datashaded points
    x, y = lay.values[:, 0], lay.values[:, 1]
    x0, x1, y0, y1 = np.quantile(x, 0.2), np.quantile(x, 0.8), np.quantile(y, 0.2), np.quantile(y, 0.8)
    inside = {str(i) for i, a, b in zip(lay["sample"].values, x, y) if x0 <= a <= x1 and y0 <= b <= y1}
    v.streams["bounds"].event(bounds=(x0, y0, x1, y1))
    assert set(sel.ids) == inside and 0 < len(inside) < N
    v.streams["lasso"].event(geometry=np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    assert set(sel.ids) == inside
    v.color_select.value = "t_cls"  # categorical colouring redraws with new streams
    v.streams["bounds"].event(bounds=(x.min() - 1, y.min() - 1, x.max() + 1, y.max() + 1))
    assert len(sel.ids) == N
    assert UMAPExplorer(lay, max_points=N - 1).shaded and not UMAPExplorer(lay).shaded


def test_umap_from_results(results):
    from eoembed.projection import layouts
    from widgets import Selection, UMAPExplorer

    from eoembed.errors import DataFileNotFound
    with pytest.raises(DataFileNotFound, match="eoembed layouts"):
        UMAPExplorer.from_results(results)
    layouts(results, method="pca", progress=False)
    sel = Selection()
    v = UMAPExplorer.from_results(results, selection=sel, color="split")
    assert v.model == "fused_ae" and v.selection is sel
    split = v.frame.set_index("id")["split"]
    assert set(split) == {"select", "report"} and (split == "select").sum() == N // 2


# ------------------------------------------------------------------------------------------------ PrefixExplorer
def _scores(ks=(4, 8, 16)):
    rows = [{"method": "matryoshka", "k": k, "q": 10.0 * k / 16} for k in ks]
    rows += [{"method": "pca", "k": k, "q": 8.0 * k / 16} for k in ks if k < 16]
    return pd.DataFrame(rows)


def test_prefix_slider_updates_table_storage_and_view():
    from eoembed.compress import storage_bytes
    from widgets import PrefixExplorer, Selection

    e = _emb()
    sel = Selection()
    p = PrefixExplorer(e, scores=_scores(), selection=sel)
    p.__panel__().get_root()
    assert p.prefixes == [4, 8, 16] and p.k == 4
    t4 = p.table.value.copy()
    assert list(t4["method"]) == ["matryoshka", "pca", "matryoshka"] and list(t4["k"]) == [4, 4, 16]
    p.slider.value = 8
    t8 = p.table.value
    assert p.k == 8 and list(t8["k"]) == [8, 8, 16] and not t8["q"].equals(t4["q"])
    assert t8.loc[0, "rel_q"] == pytest.approx(0.5)
    for r in t8.itertuples():
        assert {c: getattr(r, c) for c in ("bytes_float32", "bytes_float16", "bytes_int8")} == storage_bytes(r.k)
    sf = p.storage_frame()
    for r in sf.itertuples():
        assert r.bytes == storage_bytes(r.k)[f"bytes_{r.dtype}"]
    # the 2-D view is PCA of the first k coordinates, and it stays linked to the shared selection
    from eoembed.projection import REDUCERS
    lay = p.view2d.layouts[p.view2d.model]
    assert p.view2d.model == "k=8 (pca)"
    np.testing.assert_allclose(lay.values, REDUCERS["pca"](e.values[:, :8], 15, 0.1, 0), atol=1e-5)
    sel.set(["s001"], source="map")
    assert p.view2d.highlighted_ids == ("s001",)
    with pytest.raises(ValueError, match="outside 1..16"):
        p.set_k(17)


def test_prefix_any_k_scored_on_demand():
    from eoembed.bench import evaluate
    from widgets import PrefixExplorer

    e = _emb()
    lab = _labels(e)
    p = PrefixExplorer(e, lab, scores=_scores(), folds=3)
    p.k_input.value = 2  # not in the table: scored now with ridge probes, once
    want = evaluate(e[:, :2], lab, mode="ridge", folds=3, progress=False).overall_q
    row = p.table.value[p.table.value.k == 2]
    assert row["q"].iloc[0] == pytest.approx(want) and p.k == 2 and p.slider.value == 4
    assert 2 in set(p.storage_frame()["k"])
    n = len(p.scores)
    p.set_k(4)
    p.set_k(2)
    assert len(p.scores) == n


def test_prefix_from_results_uses_cached_prefix_umap(results, fake_umap):
    from eoembed.projection import layouts, open_layouts
    from widgets import PrefixExplorer

    layouts(results, prefixes=(4, 99), progress=False)  # 99 > width: nothing to lay out
    assert set(open_layouts(results)) == {"fused_ae", "fused_ae[:4]"} and len(fake_umap) == 2
    p = PrefixExplorer.from_results(results, prefixes=(4, 8), folds=3)
    assert p.prefixes == [4, 8, 16] and set(p.scores["k"]) == {4, 16}  # scored: the shown k and the full width
    assert "split" in p.view2d.labels.columns and "split" not in p.labels.columns
    assert p.view2d.model == "k=4 (umap)"  # the precomputed UMAP of the prefix, not PCA
    np.testing.assert_array_equal(p.view2d.layouts["k=4 (umap)"].values,
                                  open_layouts(results, ["fused_ae[:4]"])["fused_ae[:4]"].values)
    p.slider.value = 8
    assert p.view2d.model == "k=8 (pca)" and set(p.scores["k"]) == {4, 8, 16} and len(fake_umap) == 2


# ------------------------------------------------------------------------------------------------ AblationView
def _ablation():
    e = _emb()
    table = pd.DataFrame({"method": ["autoencoder", "autoencoder", "pca"], "q_report": [3.0, 4.0, 2.0],
                          "q_gap": [3.5, 4.6, 2.1], "selected_epoch": [10, 5, np.nan]},
                         index=pd.Index(["a", "a + b", "PCA (all models)"], name="combination"))
    per_task = pd.DataFrame({"t1": [1.0, 2.0, 3.0], "t2": [0.5, 0.1, -1.0]}, index=table.index)
    hist = {"a": pd.DataFrame({"epoch": [10, 5], "q_select": [2.0, 1.0], "q_report": [3.0, 1.5],
                               "val_mse": [0.3, 0.6]}),
            "a + b": pd.DataFrame({"epoch": [5, 10], "q_select": [4.0, 3.0], "q_report": [4.0, 3.9],
                                   "val_mse": [0.5, 0.2]})}
    layouts = {"a": _layout(e), "a + b": _layout(e.copy(data=e.values[:, ::-1].copy()))}
    return table, per_task, hist, layouts


def test_ablation_click_shows_history_and_umap():
    from widgets import AblationView, Selection

    table, per_task, hist, layouts = _ablation()
    sel = Selection()
    v = AblationView(table, per_task, hist, layouts, selection=sel)
    v.__panel__().get_root()
    v.table_widget.selection = [1]  # click row "a + b"
    assert v.current == "a + b"
    pd.testing.assert_frame_equal(v.history_frame(), hist["a + b"][["epoch", "q_select", "q_report", "val_mse"]])
    assert v.history_pane.object is not None and v.umap.model == "a + b"
    v.table_widget.selection = [0]
    assert v.current == "a" and list(v.history_frame()["epoch"]) == [5, 10] and v.umap.model == "a"
    v.tap.event(x="t2", y="PCA (all models)")  # a heatmap cell
    assert v.current == "PCA (all models)" and v.table_widget.selection == [2]
    assert v.history_pane.object is None and "no training history" in v.title.object
    assert "no layout" in v.umap_note.object
    sel.set(["s004"], source="map")
    assert v.umap.highlighted_ids == ("s004",)
    with pytest.raises(KeyError, match="no row"):
        v.show("nope")


def test_ablation_from_results(results):
    from widgets import AblationView

    v = AblationView.from_results(results)
    assert v.rows == ["m1", "fused_ae", "raw_bands"]  # singles, fused, baselines
    assert list(v.table["kind"]) == ["single", "fused", "baseline"]
    assert v.table.loc["m1", "q_gap"] == pytest.approx(6.0) and v.score_col == "q_bar"
    assert v.per_task.loc["m1", "t_signal"] == 6.0
    v.table_widget.selection = [1]
    assert v.current == "fused_ae" and list(v.history_frame()["epoch"]) == [5, 10, 15]
    assert v.umap is None and "eoembed layouts" in v.umap_note.object


# ------------------------------------------------------------------------------------------------ notebook
@pytest.mark.slow
def test_views_display_in_a_notebook_by_themselves_offline(monkeypatch):
    """Each view is a cell's last expression in a fresh kernel with no extension call: it renders (BokehJS loaded
    inline by the view) and its output names no CDN."""
    import os
    import re

    import nbformat
    from nbclient import NotebookClient

    setup = """
import numpy as np, pandas as pd, xarray as xr
from eoembed.projection import umap_layout
from widgets import AblationView, PrefixExplorer, Selection, UMAPExplorer
e = xr.DataArray(np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32), dims=("sample", "feature"),
                 coords={"sample": [f"s{i}" for i in range(40)]})
sel, lay = Selection(), umap_layout(e, method="pca", progress=False)
"""
    views = ["UMAPExplorer(lay, selection=sel)",
             "PrefixExplorer(e, scores=pd.DataFrame({'method': ['matryoshka'] * 2, 'k': [4, 8], 'q': [1.0, 2.0]}))",
             "AblationView(pd.DataFrame({'q_report': [1.0, 2.0]}, index=['a', 'b']), layouts={'a': lay})"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in [setup, *views]])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env_path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", root + (os.pathsep + env_path if env_path else ""))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": root}}).execute()
    texts = [v for c in nb.cells for o in c.outputs for v in o.get("data", {}).values() if isinstance(v, str)]
    for cell in nb.cells[1:]:
        results = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert results and "application/vnd.holoviews_exec.v0+json" in results[0]["data"], cell.source
    for t in texts:  # nothing loaded from a URL: no <script src>/<link href> to http(s), empty loader URL lists
        assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']https?://", t)
        for m in re.finditer(r"\b(js_urls|css_urls)\s*=\s*\[([^\]]*)\]", t):
            assert "http" not in m.group(2), m.group(0)[:200]
    assert any("BEGIN bokeh.min.js" in t for t in texts)  # BokehJS shipped inline by the first view


@pytest.mark.slow
def test_real_umap_fit_then_cache(tmp_path):
    """umap-learn itself (first fit in a process: ~50 s of numba compilation on a 2-core CPU)."""
    from eoembed.projection import umap_layout

    e = _emb(n=80)
    a = umap_layout(e, n_neighbors=10, cache_dir=tmp_path, progress=False)
    assert a.attrs["method"] == "umap" and a.shape == (80, 2) and np.isfinite(a.values).all()
    b = umap_layout(e, n_neighbors=10, cache_dir=tmp_path, progress=False)
    assert b.attrs["cached"] and np.array_equal(a.values, b.values)
