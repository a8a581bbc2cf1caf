"""A static HTML report of a results folder (``eoembed demo --no-serve``): plots embedded, BokehJS inline.

>>> from widgets.report import report            # doctest: +SKIP
>>> report("out/demo")                           # -> out/demo/report.html, opens from disk with no server  # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from widgets.history import LABELS


def _overall(summary: dict) -> pd.DataFrame:
    cols = {"Q-bar compat": summary.get("overall_q_compat", {}), f"Q-bar {summary.get('mode', 'ridge')}":
            summary.get("overall_q", {}), "Z": summary.get("z", {})}
    nulls = summary.get("null_control", {})
    if nulls:
        cols["null"] = {k: v.get("q_mean") for k, v in nulls.items()}
    return pd.DataFrame(cols).round(2)


def history_plots(history: pd.DataFrame, width: int = 420, height: int = 220) -> Any:
    """HoloViews layout: validation MSE and Q-bar (selection / report; one curve per Matryoshka prefix) vs epoch."""
    import holoviews as hv

    h = history.sort_values("epoch")
    panels = []
    for base in ("val_mse", "q_select", "q_report"):
        cols = [c for c in h.columns if c == base or (c.startswith(base + "/k") and c[len(base) + 2:].isdigit())]
        if not cols or h[cols].isna().all().all():
            continue
        curves = [hv.Curve((h["epoch"], h[c]), "epoch", LABELS.get(base, base), label=c).opts(tools=["hover"])
                  for c in cols]
        panels.append(hv.Overlay(curves).opts(title=LABELS.get(base, base), width=width, height=height,
                                              show_legend=len(cols) > 1, legend_position="right"))
    return hv.Layout(panels).cols(3) if panels else None


def _map(results: Path) -> Any:
    import holoviews as hv

    meta = results / "sample" / "meta.csv"
    if not meta.is_file():
        return None
    from widgets.samplemap import locations
    loc = locations(results / "sample").reset_index()
    loc = loc[np.isfinite(loc["lat"]) & np.isfinite(loc["lon"])]
    return hv.Points(loc, ["lon", "lat"], ["id"]).opts(tools=["hover"], size=7, width=520, height=360,
                                                        title=f"{len(loc)} sample locations (lon/lat)")


def _layouts(results: Path) -> list:
    """Scatter plots of the 2-D layouts cached in ``results/layouts`` (``eoembed.projection.open_layouts``)."""
    import holoviews as hv

    try:
        from eoembed.projection import open_layouts
    except ImportError:  # the projection module is not there: no layouts to show
        return []
    out = []
    for name, lay in open_layouts(results).items():
        df = pd.DataFrame(np.asarray(lay.values), columns=["x", "y"])
        df["id"] = [str(i) for i in lay["sample"].values]
        out.append(hv.Points(df, ["x", "y"], ["id"]).opts(tools=["hover"], size=4, width=420, height=360,
                                                          title=f"2-D layout: {name}"))
    return out


def report(results: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``results/report.html`` (or ``out``): summary tables, training curves, sample map, cached layouts.

    Everything is embedded (BokehJS and Panel's CSS inline): the file opens from disk with no server or network.
    """
    import holoviews as hv
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import Div
    from bokeh.resources import INLINE
    import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh backend without notebook output)

    results = Path(results)
    out = Path(out) if out is not None else results / "report.html"

    def md(html: str) -> Div:
        return Div(text=html, width=1000)

    items: list[Any] = [md(f"<h1>eoembed report</h1><code>{results.resolve()}</code>")]
    sfile = results / "demo_summary.json"
    if sfile.is_file():
        s = json.loads(sfile.read_text())
        items.append(md(
            f"<p>{s.get('n_samples')} samples of {s.get('size')} px; models: {', '.join(s.get('models', []))} "
            f"({s.get('model_size')}); selected epoch {s.get('selected_epoch')} (selection Q-bar "
            f"{s.get('fused_ae_q_select', float('nan')):.2f}, held-out report Q-bar "
            f"{s.get('fused_ae_q_report', float('nan')):.2f}); best-MSE epoch {s.get('best_mse_epoch')}.</p>"))
        items.append(md("<h2>Overall quality per method</h2>" + _overall(s).to_html(border=0)))
    hfile = results / "compress" / "history.csv"
    if hfile.is_file():
        plots = history_plots(pd.read_csv(hfile))
        if plots is not None:
            items += [md("<h2>Compressor training (validation MSE, in-loop Q-bar)</h2>"),
                      hv.render(plots, backend="bokeh")]
    m = _map(results)
    if m is not None:
        items += [md("<h2>Samples</h2>"), hv.render(m, backend="bokeh")]
    lay = _layouts(results)
    if lay:
        items += [md("<h2>Embedding layouts</h2>"), hv.render(hv.Layout(lay).cols(2), backend="bokeh")]
    html = file_html(column(*items), INLINE, title="eoembed report")
    # Panel (imported by HoloViews) registers its ES-module shim as a server-relative script; no model of this
    # page needs it and from disk it is a missing file: drop such relative <script src="static/..."> tags.
    html = re.sub(r'<script src="static/[^"]*"></script>\s*', "", html)
    out.write_text(html, encoding="utf-8")
    return out
