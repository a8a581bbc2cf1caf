"""The ablation at a glance: :class:`AblationView` (table, per-task heatmap, a row's history and UMAP).

Input is plain eoembed output: :func:`eoembed.compress.ablate`'s :class:`~eoembed.compress.AblationResult`
(:meth:`AblationView.from_ablation`), or a results folder (:meth:`AblationView.from_results`: the finished rows of
``RESULTS/ablation`` when an ablation was run there, else every method scored in ``RESULTS/bench/<mode>``: single
models, the fused compressor and the baselines). Clicking a table row (or a heatmap cell) shows that row's training
history (Q-bar on the selection and report parts, validation MSE, against epoch) and its 2-D layout.
"""
from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np
import pandas as pd

from widgets.selection import Selection

#: Table columns shown when present, in order.
SHOWN = ["kind", "method", "n_models", "out_dim", "selected_epoch", "q_report", "q_bar", "q_null", "q_null_std", "q_gap",
         "z", "mse"]
_ids = itertools.count()


class AblationView:
    """Ablation table + per-task heatmap; selecting a row shows its history and its layout.

    table: DataFrame indexed by row name (``combination``) with q_report (held out) or q_bar, and any of
    :data:`SHOWN`. per_task: Q per
    task (rows as ``table``, one column per task). histories: ``{row name: history DataFrame}`` (train_compressor
    histories: epoch, q_select, q_report, val_mse). layouts: ``{row name: layout}`` (eoembed.projection).
    labels / selection: passed to the embedded :class:`~widgets.UMAPExplorer` (shared selection).
    """

    def __init__(self, table: pd.DataFrame, per_task: pd.DataFrame | None = None,
                 histories: dict[str, pd.DataFrame] | None = None, layouts: dict[str, Any] | None = None,
                 labels: pd.DataFrame | None = None, selection: Selection | None = None, name: str | None = None):
        import panel as pn

        if not isinstance(table, pd.DataFrame) or table.empty or not {"q_report", "q_bar"} & set(table.columns):
            raise ValueError("table must be a non-empty DataFrame indexed by row name with a 'q_report' (held-out) "
                             "or 'q_bar' column (AblationResult.table or widgets._results.bench_scores)")
        self.table = table.copy()
        self.table.index = self.table.index.astype(str)
        self.rows = list(self.table.index)
        self.per_task = per_task.reindex(self.rows) if per_task is not None else None
        self.histories = {str(k): v for k, v in (histories or {}).items()}
        self.layouts = {str(k): v for k, v in (layouts or {}).items()}
        self.selection = selection if selection is not None else Selection()
        self.name = name or f"ablation-{next(_ids)}"
        shown = self.table[[c for c in SHOWN if c in self.table.columns]].reset_index()
        # bokeh's own DataTable (pn.widgets.DataFrame): no extra JS to fetch, so it renders offline
        self.table_widget = pn.widgets.DataFrame(shown, disabled=True, show_index=False, autosize_mode="force_fit",
                                                 css_classes=["eoembed-ablation-table"], sizing_mode="stretch_width")
        self.heatmap_pane = pn.pane.HoloViews(self.heatmap(), backend="bokeh",
                                              css_classes=["eoembed-ablation-heatmap"])
        self.score_col = "q_report" if "q_report" in self.table.columns else "q_bar"
        self.note = pn.pane.Markdown(str(self.table.attrs.get("note", "")), css_classes=["eoembed-ablation-note"])
        self.title = pn.pane.Markdown("Click a row to see its history and UMAP.",
                                      css_classes=["eoembed-ablation-current"])
        self.history_pane = pn.pane.HoloViews(None, backend="bokeh", css_classes=["eoembed-ablation-history"])
        self.umap = None
        if self.layouts:
            from widgets.umap import UMAPExplorer
            self.umap = UMAPExplorer(self.layouts, labels=labels, selection=self.selection,
                                     name=f"{self.name}-umap", width=420, height=380)
        self.umap_note = pn.pane.Markdown("", css_classes=["eoembed-ablation-umap-note"])
        self.current: str | None = None
        self.table_widget.param.watch(self._on_table, "selection")

    # ------------------------------------------------------------------------------------------------ plots
    def heatmap(self):
        """Per-task Q of every row (rows in table order: singles, fused, baselines), or None without per_task."""
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401
        from holoviews.streams import Tap

        if self.per_task is None:
            return None
        long = self.per_task.rename_axis("row").reset_index().melt("row", var_name="task", value_name="Q")
        hm = hv.HeatMap(long, ["task", "row"], "Q").opts(
            cmap="RdBu_r", colorbar=True, tools=["hover", "tap"], xrotation=45, width=620,
            height=max(220, 28 * len(self.rows) + 120), invert_yaxis=True, title="Q per task",
            symmetric=True, backend="bokeh")
        self.tap = Tap(source=hm)
        self.tap.add_subscriber(lambda x=None, y=None, **_: self.show(y) if y in self.rows else None)
        return hm

    def history_frame(self, row: str | None = None) -> pd.DataFrame | None:
        """The history shown for ``row`` (default the current row); None when the row has no training history."""
        row = self.current if row is None else row
        h = self.histories.get(row) if row is not None else None
        if h is None:
            return None
        cols = [c for c in ("epoch", "q_select", "q_report", "val_mse") if c in h.columns]
        return h[cols].sort_values("epoch").reset_index(drop=True)

    def history_plot(self, row: str):
        """Q-bar (selection / report) and validation MSE against epoch for ``row``; None without a history."""
        import holoviews as hv

        h = self.history_frame(row)
        if h is None:
            return None
        sel_epoch = self.table.loc[row].get("selected_epoch", np.nan) if row in self.table.index else np.nan
        qs = [hv.Curve(h, "epoch", c, label=c).opts(tools=["hover"], backend="bokeh") *
              hv.Scatter(h, "epoch", c, label=c).opts(size=5, backend="bokeh")
              for c in ("q_select", "q_report") if c in h]
        plots = []
        if qs:
            q = hv.Overlay(qs)
            if np.isfinite(sel_epoch):
                q = q * hv.VLine(float(sel_epoch)).opts(color="grey", line_dash="dashed", backend="bokeh")
            plots.append(q.opts(ylabel="Q-bar", title=f"{row}: Q-bar", width=420, height=230,
                                legend_position="bottom_right", backend="bokeh"))
        if "val_mse" in h:
            plots.append(hv.Curve(h, "epoch", "val_mse").opts(title=f"{row}: validation MSE", width=420, height=200,
                                                               tools=["hover"], backend="bokeh"))
        return hv.Layout(plots).cols(1) if plots else None

    # ------------------------------------------------------------------------------------------------ interaction
    def _on_table(self, event: Any) -> None:
        if event.new:
            self.show(self.rows[int(event.new[0])])

    def show(self, row: str) -> None:
        """Show ``row``'s history and layout (what clicking its table row or heatmap cell does)."""
        import param

        row = str(row)
        if row not in self.table.index:
            raise KeyError(f"no row {row!r}; the table has {self.rows}")
        self.current = row
        i = self.rows.index(row)
        if self.table_widget.selection != [i]:
            with param.discard_events(self.table_widget):
                self.table_widget.selection = [i]
        r = self.table.loc[row]
        label = "Q-bar (report)" if self.score_col == "q_report" else "Q-bar"
        self.title.object = f"**{row}**: {label} {float(r[self.score_col]):.2f}" + (
            f", gap to null {float(r['q_gap']):.2f}" if "q_gap" in r and np.isfinite(r["q_gap"]) else "")
        plot = self.history_plot(row)
        self.history_pane.object = plot
        if plot is None:
            self.title.object += " (no training history: not a trained compressor)"
        if self.umap is not None and row in self.layouts:
            self.umap.model_select.value = row
            self.umap_note.object = ""
        else:
            self.umap_note.object = (f"no layout for {row!r}" + ("" if self.layouts else
                                     "; run `eoembed layouts RESULTS`"))

    # ------------------------------------------------------------------------------------------------ sources
    @classmethod
    def from_ablation(cls, result: Any, layouts: dict[str, Any] | None = None, labels: pd.DataFrame | None = None,
                      selection: Selection | None = None, **kwargs: Any) -> "AblationView":
        """The view of an :class:`~eoembed.compress.AblationResult` (histories from its trained runs)."""
        hist = {}
        for name, run in result.runs.items():
            h = getattr(run, "history", None)
            if isinstance(h, pd.DataFrame):
                hist[name] = h
            elif isinstance(run, (str, os.PathLike)) and os.path.isfile(os.path.join(run, "history.csv")):
                hist[name] = pd.read_csv(os.path.join(run, "history.csv"))
        return cls(result.table, result.per_task, hist, layouts, labels, selection, **kwargs)

    @classmethod
    def from_results(cls, results_dir: str | os.PathLike, selection: Selection | None = None,
                     mode: str | None = None, **kwargs: Any) -> "AblationView":
        """The view over a results folder: its ablation (``RESULTS/ablation``) when present, else the methods
        scored in ``RESULTS/bench/<mode>``; histories, layouts (``eoembed layouts``) and labels from the folder."""
        from eoembed.projection import open_layouts
        from widgets import _results

        scored = _results.ablation_scores(results_dir) or _results.bench_scores(results_dir, mode)
        kwargs.setdefault("labels", _results.labels(results_dir))
        return cls(scored[0], scored[1], _results.histories(results_dir), open_layouts(results_dir),
                   selection=selection, **kwargs)

    # ------------------------------------------------------------------------------------------------ display
    def __panel__(self):
        import panel as pn
        right = [self.umap.__panel__()] if self.umap is not None else []
        return pn.Column(self.table_widget, self.note, self.heatmap_pane, self.title,
                         pn.Row(self.history_pane, pn.Column(self.umap_note, *right)), name="Ablation",
                         css_classes=["eoembed-ablation"])

    def _repr_mimebundle_(self, include=None, exclude=None):
        from widgets._display import mimebundle
        return mimebundle(self, include, exclude)

    def __repr__(self) -> str:
        return f"AblationView({len(self.rows)} rows, current={self.current!r})"


__all__ = ["AblationView"]
