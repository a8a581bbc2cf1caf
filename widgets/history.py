"""Live training curves: :class:`LiveHistory`, a ``train_compressor`` callback that plots metrics as they arrive."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Axis labels of the usual history columns (others are shown by their column name).
LABELS = {"val_mse": "validation MSE", "q_select": "Q-bar (selection set)", "q_report": "Q-bar (report set)",
          "q_bar": "Q-bar", "train_loss": "train loss", "val_loss": "validation loss"}


def _num(v: Any) -> float:
    """A float of a history value; NaN for missing, None or non-numeric values."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


class LiveHistory:
    """A live plot of training metrics against epoch, usable as a ``train_compressor`` callback.

    >>> live = LiveHistory()                      # doctest: +SKIP
    >>> live                                      # display it (a notebook cell), then:  # doctest: +SKIP
    >>> train_compressor(store, labels, callbacks=[live])  # doctest: +SKIP

    Each call ``live(row)`` appends the history row and streams ``(epoch, metric)`` into one HoloViews
    ``Buffer`` per metric; every displayed copy of the plot (one linked panel per metric, shared epoch axis)
    updates in place (one Buffer per metric: DynamicMaps sharing one Buffer were seen to leave all but the first
    plot empty). Rows without a metric (``q_select`` of ``labels=None`` runs) give NaN (a gap), never an error.
    In notebooks run ``hv.extension('bokeh', inline=True)`` first so BokehJS is loaded without a CDN.
    """

    def __init__(self, metrics: Sequence[str] = ("val_mse", "q_select", "q_report"), height: int = 200,
                 width: int = 500, length: int = 100_000):
        from holoviews.streams import Buffer

        if isinstance(metrics, str):
            metrics = [metrics]
        if not metrics:
            raise ValueError("metrics must name at least one history column, e.g. ('val_mse', 'q_report')")
        self.metrics = list(metrics)
        self.height, self.width = int(height), int(width)
        self._rows: list[dict] = []
        self.buffers = {m: Buffer(self._frame(m, [], []), length=int(length), index=False) for m in self.metrics}

    @staticmethod
    def _frame(metric: str, epochs: Sequence[float], values: Sequence[float]) -> pd.DataFrame:
        return pd.DataFrame({"epoch": np.asarray(epochs, np.float64), metric: np.asarray(values, np.float64)})

    def __call__(self, row: dict) -> None:
        """Append one history row (a dict with ``epoch`` and any of the metrics) and update the plot."""
        row = dict(row)
        if "epoch" not in row:
            raise KeyError(f"history row has no 'epoch' (keys: {sorted(row)}); pass train_compressor's rows")
        self._rows.append(row)
        epoch = _num(row["epoch"])
        for m, buf in self.buffers.items():
            buf.send(self._frame(m, [epoch], [_num(row.get(m))]))

    def clear(self) -> None:
        """Forget all rows (e.g. before reusing the widget for another run)."""
        self._rows.clear()
        for buf in self.buffers.values():
            buf.clear()

    @property
    def history(self) -> pd.DataFrame:
        """The rows received so far as a DataFrame (the metrics always present as columns, NaN where missing)."""
        h = pd.DataFrame(self._rows)
        for m in ["epoch", *self.metrics]:
            if m not in h:
                h[m] = np.nan
        return h

    def plot(self):
        """The HoloViews layout: one DynamicMap (curve + points) per metric, stacked, x axes linked by ``epoch``."""
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh backend; no notebook output)

        def panel(metric: str):
            vdim = hv.Dimension(metric, label=LABELS.get(metric, metric))
            kdim = hv.Dimension("epoch", label="epoch")

            def draw(data: pd.DataFrame):
                curve = hv.Curve(data, kdim, vdim).opts(framewise=True, height=self.height, width=self.width,
                                                        title=vdim.label, tools=["hover"], backend="bokeh")
                return curve * hv.Scatter(data, kdim, vdim).opts(size=6, tools=["hover"], backend="bokeh")

            return hv.DynamicMap(draw, streams=[self.buffers[metric]])

        return hv.Layout([panel(m) for m in self.metrics]).cols(1)

    def panel(self):
        """A Panel pane of :meth:`plot` (for dashboards / ``panel serve``; in notebooks just display ``self``)."""
        import panel as pn
        return pn.pane.HoloViews(self.plot(), backend="bokeh", linked_axes=True)

    def _repr_mimebundle_(self, include=None, exclude=None):
        import panel as pn
        with pn.config.set(inline=True):  # inline panel's stylesheets too: nothing is fetched from a CDN
            return self.panel()._repr_mimebundle_(include, exclude)

    def __repr__(self) -> str:
        return f"LiveHistory(metrics={self.metrics}, rows={len(self._rows)})"
