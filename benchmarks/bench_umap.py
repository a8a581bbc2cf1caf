"""UMAP layouts and the UMAPExplorer at scale: first fit vs cached view, and 100k datashaded points.

1. Layout (each step in a fresh Python process, as a notebook or dashboard would run it):
   a. first ``umap_layout`` fit of --n embedding-like vectors (--dim) into an empty cache (includes umap-learn's
      numba compilation), then the same call again in that process (cache hit) and a fit with another seed
      (numba already compiled);
   b. a new process reading the cached layout (what opening the view costs once ``eoembed layouts`` has run).
2. UMAPExplorer with --points points (a PCA layout of clustered vectors; the layout method does not matter for
   drawing), datashaded: construction, first render (bokeh models, incl. datashader's numba compilation), a second
   explorer's render, zooms (re-aggregation; zoomed in to < 20k points in view: drawn as points), a shared-selection update of 1,000 ids (highlight layer), a box
   selection (ids inside the box -> Selection) and a colour change (redraw).
Writes benchmarks/results/bench_umap.json.

    .venv/bin/python benchmarks/bench_umap.py [--n 2000] [--dim 128] [--points 100000]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# both child scripts: imports timed from t0, then the same (n, d) embedding e
PRELUDE = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np, xarray as xr
from eoembed.projection import umap_layout
n, d, cache = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
x = (rng.normal(size=(n, 16)) @ rng.normal(size=(16, d)) + 0.5 * rng.normal(size=(n, d))).astype(np.float32)
e = xr.DataArray(x, dims=("sample", "feature"), coords={"sample": [f"s{i}" for i in range(n)]})
"""

FIT = PRELUDE + r"""
t1 = time.perf_counter(); a = umap_layout(e, cache_dir=cache, progress=False); t2 = time.perf_counter()
b = umap_layout(e, cache_dir=cache, progress=False); t3 = time.perf_counter()
c = umap_layout(e, cache_dir=cache, seed=1, progress=False); t4 = time.perf_counter()
assert b.attrs["cached"] and not a.attrs["cached"] and not c.attrs["cached"]
print(json.dumps({"import_s": t1 - t0, "first_fit_s": t2 - t1, "cached_same_process_s": t3 - t2,
                  "second_fit_warm_s": t4 - t3, "method": a.attrs["method"]}))
"""

READ = PRELUDE + r"""
t1 = time.perf_counter(); a = umap_layout(e, cache_dir=cache, progress=False); t2 = time.perf_counter()
assert a.attrs["cached"]
print(json.dumps({"import_s": t1 - t0, "cached_new_process_s": t2 - t1, "umap_imported": "umap" in sys.modules}))
"""


def _run(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def layout_bench(n: int, dim: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        first = _run(FIT, n, dim, tmp)
        second = _run(READ, n, dim, tmp)
    return {"n": n, "dim": dim, **{f"fit_process.{k}": v for k, v in first.items()},
            **{f"view_process.{k}": v for k, v in second.items()}}


def explorer_bench(points: int) -> dict:
    import numpy as np
    import pandas as pd
    import xarray as xr
    from holoviews.streams import RangeXY

    from eoembed.projection import umap_layout
    from widgets import Selection, UMAPExplorer

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6, size=(12, 32))
    cl = rng.integers(0, 12, size=points)
    x = (centres[cl] + rng.normal(size=(points, 32))).astype(np.float32)
    ids = np.asarray([f"p{i}" for i in range(points)], dtype=object)
    emb = xr.DataArray(x, dims=("sample", "feature"), coords={"sample": ids})
    lay = umap_layout(emb, method="pca", progress=False)
    labels = pd.DataFrame({"cluster": cl.astype(str), "value": x[:, 0]}, index=pd.Index(ids, name="id"))
    res: dict = {"points": points}
    import datashader  # noqa: F401  (imports paid before timing: they are not the explorer's cost)
    import holoviews  # noqa: F401
    import holoviews.operation.datashader  # noqa: F401
    import holoviews.plotting.bokeh  # noqa: F401
    import panel  # noqa: F401
    sel = Selection()
    t = time.perf_counter()
    v = UMAPExplorer({"pca": lay}, labels=labels, selection=sel, color="value")
    res["construct_s"] = time.perf_counter() - t
    assert v.shaded
    t = time.perf_counter()
    v.__panel__().get_root()
    res["first_render_s"] = time.perf_counter() - t
    t = time.perf_counter()
    v2 = UMAPExplorer({"pca": lay}, labels=labels, selection=sel, color="value")
    v2.__panel__().get_root()
    res["second_explorer_construct_render_s"] = time.perf_counter() - t
    xs, ys = lay.values[:, 0], lay.values[:, 1]
    def streams(dm):  # the zoom streams of the rasterize / dynspread operations, nested in the DynamicMap
        own = list(getattr(dm, "streams", []))
        return own + [s for i in getattr(getattr(dm, "callback", None), "inputs", []) for s in streams(i)]

    rng_streams = [s for s in streams(v._base) if isinstance(s, RangeXY)]
    if rng_streams:
        t = time.perf_counter()
        rng_streams[0].event(x_range=(float(np.quantile(xs, 0.25)), float(np.quantile(xs, 0.75))),
                             y_range=(float(np.quantile(ys, 0.25)), float(np.quantile(ys, 0.75))))
        res["zoom_update_s"] = time.perf_counter() - t
        t = time.perf_counter()
        rng_streams[0].event(x_range=(float(xs.min()), float(xs.max())), y_range=(float(ys.min()), float(ys.max())))
        res["zoom_out_update_s"] = time.perf_counter() - t
        t = time.perf_counter()  # few points in view: drawn as points (hover per point), not rasterized
        rng_streams[0].event(x_range=(float(np.quantile(xs, 0.49)), float(np.quantile(xs, 0.51))),
                             y_range=(float(np.quantile(ys, 0.49)), float(np.quantile(ys, 0.51))))
        res["zoom_in_to_points_mode_s"] = time.perf_counter() - t
        rng_streams[0].event(x_range=(float(xs.min()), float(xs.max())), y_range=(float(ys.min()), float(ys.max())))
    pick = list(ids[rng.choice(points, 1000, replace=False)])
    t = time.perf_counter()
    sel.set(pick, source="map")  # both explorers redraw their highlight layer
    res["selection_1000_update_both_views_s"] = time.perf_counter() - t
    assert len(v.highlighted_ids) == 1000
    t = time.perf_counter()
    v.streams["bounds"].event(bounds=(float(np.quantile(xs, 0.4)), float(np.quantile(ys, 0.4)),
                                      float(np.quantile(xs, 0.6)), float(np.quantile(ys, 0.6))))
    res["box_select_s"] = time.perf_counter() - t
    res["box_selected"] = len(sel.ids)
    t = time.perf_counter()
    v.color_select.value = "cluster"
    res["colour_change_categorical_s"] = time.perf_counter() - t
    t = time.perf_counter()
    v.color_select.value = "value"
    res["colour_change_back_numeric_s"] = time.perf_counter() - t
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--skip-layout", action="store_true", help="keep the layout part of an earlier run's JSON")
    a = ap.parse_args()
    p = ROOT / "benchmarks" / "results" / "bench_umap.json"
    old = json.loads(p.read_text()) if p.is_file() else {}
    out = {**old, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU",
           "python": platform.python_version(), "load_avg_start": os.getloadavg()}
    if not a.skip_layout:
        out["layout"] = {"load_avg_1min_at_start": os.getloadavg()[0], **layout_bench(a.n, a.dim)}
        print(json.dumps(out["layout"], indent=1), flush=True)
    out["explorer"] = {"load_avg_1min_at_start": os.getloadavg()[0], **explorer_bench(a.points)}
    print(json.dumps(out["explorer"], indent=1))
    out["load_avg_end"] = os.getloadavg()
    p.write_text(json.dumps(out, indent=1))
    print(f"wrote {p}")


if __name__ == "__main__":
    main()
