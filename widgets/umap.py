"""A 2-D embedding scatter linked to the shared :class:`~widgets.Selection`: :class:`UMAPExplorer`.

Layouts come from :func:`eoembed.projection.umap_layout` / :func:`eoembed.projection.layouts` (cached on disk, so
opening a view never fits UMAP). Box and lasso selections write the shared selection; selections made elsewhere
(e.g. on a :class:`~widgets.SampleMap`) are drawn on top in orange. Above ``max_points`` points the cloud is
rasterized with datashader (100k points stay interactive) while more than ``max_points`` are in view; zoomed in
further, the points themselves are drawn (with hover). Selection then works on the box/lasso geometry.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from widgets.selection import Selection

SELECTED_COLOR = "#ff7f0e"
NO_COLOR = "(none)"
#: Above this many points the scatter is rasterized (datashader) instead of drawn point by point.
MAX_POINTS = 20_000
_ids = itertools.count()


def _categorical(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) or (
        pd.api.types.is_integer_dtype(s) and s.nunique() <= 12)


def _in_polygon(x: np.ndarray, y: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Points (x, y) inside the polygon ``poly`` ((m, 2) vertices), by ray casting."""
    inside = np.zeros(x.shape, bool)
    px, py = poly[:, 0], poly[:, 1]
    j = len(poly) - 1
    for i in range(len(poly)):
        cross = (py[i] > y) != (py[j] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = (px[j] - px[i]) * (y - py[i]) / (py[j] - py[i]) + px[i]
        inside ^= cross & (x < xint)
        j = i
    return inside


class UMAPExplorer:
    """Scatter of a 2-D layout (one of several embeddings), coloured by any label column, linked to a Selection.

    layouts: a (sample, component) layout DataArray or ``{name: layout}`` (a menu picks the embedding).
    labels: DataFrame indexed by sample id (tasks, ``split``, ``model`` or any other column to colour by and to
    show on hover). selection: the shared :class:`~widgets.Selection` (a new one when None). color: initial
    colour column. datashade: True / False / None (= when a layout has more than ``max_points`` points).
    name: the view's name, used as ``Selection.source`` when it writes.

    ``select_ids(ids)`` / box or lasso in the plot write the selection; :attr:`highlighted_ids` are the ids drawn
    as selected. Display it in a notebook (after ``hv.extension('bokeh', inline=True)``) or via :meth:`__panel__`.
    """

    def __init__(self, layouts: Any, labels: pd.DataFrame | None = None, selection: Selection | None = None,
                 color: str | None = None, model: str | None = None, datashade: bool | None = None,
                 max_points: int = MAX_POINTS, width: int = 520, height: int = 440, name: str | None = None,
                 title: str | None = None):
        import panel as pn
        from holoviews.streams import Pipe

        from eoembed.projection import _as_layout_dict

        self.layouts = self._check_layouts(_as_layout_dict(layouts))
        self.labels = self._check_labels(labels)
        self.selection = selection if selection is not None else Selection()
        self.name = name or f"umap-{next(_ids)}"
        self.datashade, self.max_points = datashade, int(max_points)
        self.width, self.height, self.title = int(width), int(height), title
        names = list(self.layouts)
        if model is not None and model not in self.layouts:
            raise KeyError(f"no layout named {model!r}; choose from {names}")
        self.model_select = pn.widgets.Select(label="embedding", options=names, value=model or names[0],
                                              css_classes=["eoembed-umap-embedding"], width=220)
        cols = [NO_COLOR, *([] if self.labels is None else list(self.labels.columns))]
        if color is not None and color not in cols:
            raise KeyError(f"cannot colour by {color!r}: the labels have {cols[1:]}")
        self.color_select = pn.widgets.Select(label="colour by", options=cols, value=color or NO_COLOR,
                                              css_classes=["eoembed-umap-color"], width=220)
        self.status = pn.pane.Markdown("", css_classes=["eoembed-umap-status"])
        self._pipe = Pipe(data=self._empty())
        self.streams: dict[str, Any] = {}
        self.pane = pn.pane.HoloViews(self.plot(), backend="bokeh", css_classes=["eoembed-umap-plot"])
        self.model_select.param.watch(self._redraw, "value")
        self.color_select.param.watch(self._redraw, "value")
        self.selection.observe(self._on_selection, names="ids")
        self._on_selection({"new": self.selection.ids})

    # ------------------------------------------------------------------------------------------------ inputs
    @staticmethod
    def _check_layouts(d: dict[str, xr.DataArray]) -> dict[str, xr.DataArray]:
        if not d:
            raise ValueError("no layouts given; compute them with eoembed.projection.layouts(RESULTS) or "
                             "umap_layout(embeddings)")
        for k, v in d.items():
            if not isinstance(v, xr.DataArray) or v.dims != ("sample", "component") or v.sizes["component"] != 2:
                raise ValueError(f"layout {k!r} must be a (sample, component=2) DataArray as umap_layout returns, "
                                 f"got {getattr(v, 'dims', type(v).__name__)}")
        return d

    @staticmethod
    def _check_labels(labels: pd.DataFrame | None) -> pd.DataFrame | None:
        if labels is None:
            return None
        if not isinstance(labels, pd.DataFrame):
            raise TypeError(f"labels must be a DataFrame indexed by sample id, got {type(labels).__name__}")
        lab = labels.copy()
        lab.index = lab.index.astype(str)
        bad = [c for c in lab.columns if c in ("x", "y", "id")]
        if bad:
            raise ValueError(f"label columns {bad} clash with the plot's own columns; rename them")
        return lab

    # ------------------------------------------------------------------------------------------------ data
    @property
    def model(self) -> str:
        return self.model_select.value

    @property
    def color(self) -> str | None:
        return None if self.color_select.value == NO_COLOR else self.color_select.value

    @property
    def frame(self) -> pd.DataFrame:
        """The plotted points: id, x, y and the label columns (NaN for samples without a label)."""
        lay = self.layouts[self.model]
        ids = [str(i) for i in lay["sample"].values]
        df = pd.DataFrame({"id": ids, "x": lay.values[:, 0], "y": lay.values[:, 1]})
        if self.labels is not None:
            lab = self.labels.reindex(ids)
            for c in lab.columns:
                df[c] = lab[c].to_numpy()
        return df

    def _empty(self) -> pd.DataFrame:
        return pd.DataFrame({"id": pd.Series([], dtype=object), "x": np.zeros(0, np.float32),
                             "y": np.zeros(0, np.float32)})

    @property
    def shaded(self) -> bool:
        """Whether the current layout is rasterized (datashader) rather than drawn point by point."""
        n = self.layouts[self.model].sizes["sample"]
        return bool(self.datashade) if self.datashade is not None else n > self.max_points

    # ------------------------------------------------------------------------------------------------ plot
    def plot(self):
        """The HoloViews overlay: all points (or their rasterization) and the selected points on top."""
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh backend without notebook output)
        from holoviews.streams import BoundsXY, Lasso, Selection1D

        df = self._df = self.frame
        self._xy = (df["x"].to_numpy(np.float64), df["y"].to_numpy(np.float64))
        vdims = [c for c in df.columns if c not in ("x", "y")]
        col = self.color
        if col is not None and self.shaded and _categorical(df[col]):
            df = df.assign(**{col: df[col].astype(str).astype("category")})  # datashader's count_cat needs it
        pts = hv.Points(df, ["x", "y"], vdims, label=self.model)
        tools = ["box_select", "lasso_select"]
        # The native bokeh selection is not dimmed: the orange layer on top is the one truth of what is selected,
        # whichever view selected it.
        opts: dict[str, Any] = {"size": 5, "alpha": 0.8, "tools": [*tools, "hover", "tap"],
                                "nonselection_alpha": 0.8, "selection_alpha": 0.8}
        if col is not None:
            cat = _categorical(df[col])
            opts.update(color=col, cmap="Category10" if cat else "viridis", colorbar=not cat, show_legend=cat)
        pts = pts.opts(**opts, backend="bokeh")
        if self.shaded:
            from holoviews.operation import apply_when

            # rasterized while more than max_points are in view; zoomed in, the points themselves (with hover)
            cat = col is not None and _categorical(df[col])
            base = apply_when(pts, operation=lambda el: self._shade(el, col, cat),
                              predicate=lambda sel: len(sel) > self.max_points)
            self.streams = {"bounds": BoundsXY(source=base), "lasso": Lasso(source=base)}
            self.streams["bounds"].add_subscriber(lambda bounds=None, **_: self._on_bounds(bounds))
            self.streams["lasso"].add_subscriber(lambda geometry=None, **_: self._on_lasso(geometry))
        else:
            base = pts
            self.streams = {"index": Selection1D(source=base)}
            self.streams["index"].add_subscriber(lambda index=None, **_: self._on_index(index))
        hi = hv.DynamicMap(lambda data: hv.Points(data, ["x", "y"], ["id"], label="selected").opts(
            color=SELECTED_COLOR, size=8, line_color="black", tools=["hover"], backend="bokeh"),
            streams=[self._pipe])
        self._base = base  # the points or their rasterization (benchmarks drive its zoom streams)
        title = self.title or f"{self.model}" + (f", colour: {col}" if col else "")
        return (base * hi).opts(width=self.width, height=self.height, title=title, show_legend=True,
                                backend="bokeh")

    @staticmethod
    def _shade(pts, col: str | None, categorical: bool):
        import datashader as ds
        from holoviews.operation.datashader import datashade, dynspread, rasterize

        tools = ["box_select", "lasso_select", "hover"]
        if col is None:
            return dynspread(rasterize(pts, aggregator=ds.count()).opts(cmap="Blues", cnorm="eq_hist", tools=tools,
                                                                        backend="bokeh"))
        if categorical:
            return dynspread(datashade(pts, aggregator=ds.count_cat(col)).opts(tools=tools, backend="bokeh"))
        return dynspread(rasterize(pts, aggregator=ds.mean(col)).opts(cmap="viridis", colorbar=True, tools=tools,
                                                                      backend="bokeh"))

    def _redraw(self, *_: Any) -> None:
        self.pane.object = self.plot()
        self._on_selection({"new": self.selection.ids})

    # ------------------------------------------------------------------------------------------------ linking
    def _on_index(self, index: Sequence[int] | None) -> None:
        ids = self._df["id"].to_numpy()[np.asarray(list(index or []), dtype=int)]
        self.select_ids(list(ids))

    def _on_bounds(self, bounds: Sequence[float] | None) -> None:
        if bounds is None:
            return
        x0, y0, x1, y1 = bounds
        x, y = self._xy
        mask = (x >= min(x0, x1)) & (x <= max(x0, x1)) & (y >= min(y0, y1)) & (y <= max(y0, y1))
        self.select_ids(list(self._df["id"].to_numpy()[mask]))

    def _on_lasso(self, geometry: Any) -> None:
        if geometry is None or len(geometry) < 3:
            return
        mask = _in_polygon(*self._xy, np.asarray(geometry, np.float64))
        self.select_ids(list(self._df["id"].to_numpy()[mask]))

    def select_ids(self, ids: Sequence[str]) -> None:
        """Write ``ids`` to the shared selection (what a box or lasso selection in the plot does)."""
        self.selection.set(ids, source=self.name)

    def _on_selection(self, change: dict) -> None:
        # Only draws: never writes back, so linked views cannot echo. Ids of other layouts are simply absent.
        want = set(change["new"])
        df = self._df
        self._pipe.send(df.loc[df["id"].isin(want), ["id", "x", "y"]].reset_index(drop=True))
        n = int(df["id"].isin(want).sum())
        extra = len(want) - n
        self.status.object = (f"**{n} selected** of {len(df)} in {self.model}" +
                              (f" ({extra} selected samples are not in this layout)" if extra else ""))

    @property
    def highlighted_ids(self) -> tuple[str, ...]:
        """Ids currently drawn as selected."""
        return tuple(str(i) for i in self._pipe.data["id"])

    def set_layout(self, layout: Any, name: str | None = None) -> None:
        """Replace the layouts (a DataArray or ``{name: layout}``) and redraw (used by :class:`PrefixExplorer`)."""
        from eoembed.projection import _as_layout_dict

        d = _as_layout_dict(layout) if name is None else {name: layout}
        self.layouts = self._check_layouts(d)
        keep = self.model_select.value if self.model_select.value in d else next(iter(d))
        import param

        with param.discard_events(self.model_select):
            self.model_select.options = list(d)
            self.model_select.value = keep
        self._redraw()

    # ------------------------------------------------------------------------------------------------ results
    @classmethod
    def from_results(cls, results_dir: str | os.PathLike, selection: Selection | None = None,
                     compute: bool = False, **kwargs: Any) -> "UMAPExplorer":
        """The view over a results folder: its precomputed layouts (``eoembed layouts RESULTS``; with
        ``compute=True`` missing layouts are computed now) and its labels with the compressor's split."""
        from eoembed.errors import DataFileNotFound
        from eoembed.projection import layouts as compute_layouts
        from eoembed.projection import open_layouts
        from widgets import _results

        lay = open_layouts(results_dir)
        if not lay:
            if not compute:
                raise DataFileNotFound(f"no layouts in {os.fspath(results_dir)!r}/layouts; run `eoembed layouts "
                                       f"{os.fspath(results_dir)}` (or pass compute=True)")
            lay = compute_layouts(results_dir)
        kwargs.setdefault("labels", _results.labels(results_dir))
        kwargs.setdefault("model", "fused_ae" if "fused_ae" in lay else None)
        return cls(lay, selection=selection, **kwargs)

    # ------------------------------------------------------------------------------------------------ display
    def __panel__(self):
        import panel as pn
        return pn.Column(pn.Row(self.model_select, self.color_select), self.pane, self.status,
                         name="UMAP", css_classes=["eoembed-umap"])

    def _repr_mimebundle_(self, include=None, exclude=None):
        from widgets._display import mimebundle
        return mimebundle(self, include, exclude)

    def __repr__(self) -> str:
        return (f"UMAPExplorer({len(self.layouts)} layouts, showing {self.model!r}, "
                f"{len(self.highlighted_ids)} highlighted)")


__all__ = ["UMAPExplorer"]
