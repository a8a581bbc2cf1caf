"""The training monitor: :class:`LiveHistory`, a ``train_compressor`` callback drawing Q-bar and validation MSE live.

Why not HoloViews/Bokeh streams in a notebook: a Bokeh plot in JupyterLab talks to the kernel through a pyviz comm
that the *front-end* completes with a shell-channel request (``comm_info_request`` / ``comm_open``); a kernel busy
executing the training cell answers shell requests only when the cell ends, and the Python side holds its pushes
until then. Measured here (JupyterLab 4.6, Chromium, websocket frames): zero comm messages while an 8-row loop ran,
then ``comm_open`` and ~90 ``comm_msg`` in the 0.8 s after ``execute_reply`` -- the "plot empty, all points at the end"
bug. ipywidgets open their comm from the kernel and send state on IOPub, which a busy kernel flushes at once (the
same path tqdm's notebook bars use); measured: one ``comm_msg`` per update, 0.5 s apart, during the cell.
So the monitor draws a small self-contained SVG (points carry ``data-epoch`` / ``data-series``; hover shows the
value and the per-task Q) into an ``ipywidgets.HTML`` (notebooks) or a ``panel.pane.HTML`` (``panel serve``);
every update re-draws from the whole history sorted by epoch, so no point is lost, out of order or off-axis.
"""
from __future__ import annotations

import html
import math
import os
import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Axis labels of the usual history columns (others are shown by their column name).
LABELS = {"val_mse": "validation MSE", "q_select": "Q-bar (selection set)", "q_report": "Q-bar (report set)",
          "q_bar": "Q-bar", "train_loss": "train loss", "val_loss": "validation loss"}
#: Curve colours: the full-size curve first, then one per Matryoshka prefix (smallest k first).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
_PREFIX = re.compile(r"^(?P<base>.+)/k(?P<k>\d+)$")


def _num(v: Any) -> float:
    """A float of a history value; NaN for missing, None or non-numeric values."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (whole numbers only when ``integer``)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in ((1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)) if m * mag >= raw)
    step = max(step, 1.0) if integer else step
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _col(h: pd.DataFrame, c: str) -> np.ndarray:
    """Column ``c`` as float64 (NaN for missing / non-numeric values)."""
    return pd.to_numeric(h[c], errors="coerce").to_numpy(np.float64)


def _fmt(v: float) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.4g}"


class LiveHistory:
    """A live plot of training metrics against epoch, usable as a ``train_compressor`` callback.

    >>> live = LiveHistory()                      # doctest: +SKIP
    >>> live                                      # display it (a notebook cell), then:  # doctest: +SKIP
    >>> train_compressor(store, labels, callbacks=[live])  # doctest: +SKIP

    Two panels: validation MSE (``val_mse`` and every ``val_mse/k<k>`` Matryoshka prefix) and Q-bar (``q_select``
    solid, ``q_report`` dashed, one colour per prefix ``q_select/k<k>``). Vertical marks: the MSE-best epoch (lowest
    ``val_mse``) and the Q-best epoch (highest ``q_select``, the selection set: never the report set). Hovering a
    point shows its value and the per-task Q (``q_select/<task>``) of that epoch. Rows arrive in any order; the
    curves are always drawn sorted by epoch with axes covering every point. Missing metrics (``labels=None`` runs)
    are NaN gaps, never errors. Thread-safe: a training thread may call it while a server renders it.

    metrics: the history columns to draw (their ``/k<k>`` prefix columns follow automatically).
    """

    def __init__(self, metrics: Sequence[str] = ("val_mse", "q_select", "q_report"), height: int = 240,
                 width: int = 580, selection: Any = None, title: str | None = None):
        if isinstance(metrics, str):
            metrics = [metrics]
        if not metrics:
            raise ValueError("metrics must name at least one history column, e.g. ('val_mse', 'q_report')")
        self.metrics = list(metrics)
        self.height, self.width = int(height), int(width)
        self.selection, self.title = selection, title
        self._rows: list[dict] = []
        self._lock = threading.RLock()
        self._widget = None
        self._panes: weakref.WeakSet = weakref.WeakSet()

    # ------------------------------------------------------------------ data
    def __call__(self, row: dict) -> None:
        """Append one history row (a dict with ``epoch`` and any of the metrics) and redraw every view."""
        row = dict(row)
        if "epoch" not in row:
            raise KeyError(f"history row has no 'epoch' (keys: {sorted(row)}); pass train_compressor's rows")
        if not math.isfinite(_num(row["epoch"])):
            raise ValueError(f"history row has a non-numeric epoch {row['epoch']!r}")
        with self._lock:
            self._rows.append(row)
        self._refresh()

    def extend(self, rows: Iterable[dict] | pd.DataFrame) -> LiveHistory:
        """Append many rows (a list of dicts or a history DataFrame) and redraw once."""
        if isinstance(rows, pd.DataFrame):
            rows = rows.to_dict("records")
        rows = [dict(r) for r in rows]
        bad = [i for i, r in enumerate(rows) if "epoch" not in r]
        if bad:
            raise KeyError(f"history rows {bad[:5]} have no 'epoch'; pass train_compressor's history")
        with self._lock:
            self._rows.extend(rows)
        self._refresh()
        return self

    def clear(self) -> None:
        """Forget all rows (e.g. before reusing the widget for another run)."""
        with self._lock:
            self._rows.clear()
        self._refresh()

    @property
    def history(self) -> pd.DataFrame:
        """The rows received so far, sorted by epoch (stable), metrics always present as columns (NaN if missing)."""
        with self._lock:
            h = pd.DataFrame(self._rows)
        for m in ["epoch", *self.metrics]:
            if m not in h:
                h[m] = np.nan
        return h.sort_values("epoch", kind="stable").reset_index(drop=True)

    @property
    def prefixes(self) -> list[int]:
        """The Matryoshka prefix sizes k present as ``<metric>/k<k>`` columns, ascending."""
        return self._prefixes(self.history)

    def _prefixes(self, h: pd.DataFrame) -> list[int]:
        return sorted({int(m["k"]) for c in h.columns if (m := _PREFIX.match(str(c))) and m["base"] in self.metrics})

    def series(self) -> dict[str, pd.DataFrame]:
        """``{column: DataFrame(epoch, value)}`` of every drawn curve, sorted by epoch (NaN values kept)."""
        h = self.history
        cols = [m for m in self.metrics] + [f"{m}/k{k}" for k in self._prefixes(h) for m in self.metrics]
        return {c: pd.DataFrame({"epoch": _col(h, "epoch"), "value": _col(h, c)}) for c in cols if c in h}

    @property
    def best(self) -> dict[str, float | None]:
        """``{'mse': epoch of the lowest val_mse, 'q': epoch of the highest q_select}`` (None when unknown)."""
        return self._best(self.history)

    @staticmethod
    def _best(h: pd.DataFrame) -> dict[str, float | None]:
        out: dict[str, float | None] = {"mse": None, "q": None}
        for key, col, fn in (("mse", "val_mse", np.nanargmin), ("q", "q_select", np.nanargmax)):
            if col in h:
                v = _col(h, col)
                if np.isfinite(v).any():
                    out[key] = float(h["epoch"].iloc[int(fn(v))])
        return out

    # ------------------------------------------------------------------ drawing
    @staticmethod
    def _tasks(h: pd.DataFrame, base: str) -> list[str]:
        """Per row: the per-task Q of ``base`` (``q_select`` / ``q_report``), one ``task = value`` per line."""
        cols = [c for c in h.columns if str(c).startswith(base + "/") and not _PREFIX.match(str(c))]
        if not cols:
            return [""] * len(h)
        m = np.column_stack([_col(h, c) for c in cols])
        names = [c.split("/", 1)[1] for c in cols]
        return ["\n".join(f"  {t} = {_fmt(v)}" for t, v in zip(names, row) if math.isfinite(v)) for row in m]

    def _panel_svg(self, h: pd.DataFrame, cols: list[str], label: str, x0: float, x1: float, y_off: int,
                   marks: list[tuple[str, float, str]]) -> list[str]:
        W, H = self.width, self.height
        L, R, T, B = 58, 118, 22, 34
        ep = _col(h, "epoch")
        vals = {c: _col(h, c) for c in cols if c in h}
        finite = np.concatenate([v[np.isfinite(v)] for v in vals.values()] + [np.array([])])
        if finite.size:
            y0, y1 = float(finite.min()), float(finite.max())
            pad = (y1 - y0) * 0.08 or max(abs(y0) * 0.1, 1e-3)
            y0, y1 = y0 - pad, y1 + pad
        else:
            y0, y1 = 0.0, 1.0

        def sx(x: float) -> float:
            return L + (x - x0) / (x1 - x0) * (W - L - R)

        def sy(y: float) -> float:
            return y_off + T + (y1 - y) / (y1 - y0) * (H - T - B)

        out = [f'<g class="panel" data-panel="{html.escape(label)}">',
               f'<rect x="{L}" y="{y_off + T}" width="{W - L - R}" height="{H - T - B}" fill="white" '
               f'stroke="#bbb"/>',
               f'<text x="{L}" y="{y_off + 15}" font-size="12" font-weight="bold">{html.escape(label)}</text>']
        for t in _ticks(y0, y1):
            if y0 <= t <= y1:
                out.append(f'<line x1="{L}" x2="{W - R}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>'
                           f'<text x="{L - 4}" y="{sy(t) + 3:.1f}" font-size="10" text-anchor="end">{t:g}</text>')
        for t in _ticks(x0, x1, 8, integer=True):
            if x0 <= t <= x1:
                out.append(f'<text x="{sx(t):.1f}" y="{y_off + H - B + 13}" font-size="10" '
                           f'text-anchor="middle">{t:g}</text>')
        out.append(f'<text x="{(L + W - R) / 2}" y="{y_off + H - 6}" font-size="10" text-anchor="middle">'
                   f'epoch</text>')
        for name, x, colour in marks:
            out.append(f'<line class="best" data-best="{name}" data-epoch="{x:g}" x1="{sx(x):.1f}" '
                       f'x2="{sx(x):.1f}" y1="{y_off + T}" y2="{y_off + H - B}" stroke="{colour}" '
                       f'stroke-dasharray="4,3"><title>{name} epoch {x:g}</title></line>')
        ks = self._prefixes(h)
        tasks = {b: self._tasks(h, b) for b in {c for c in vals if not _PREFIX.match(c) and c.startswith("q_")}}
        for c, v in vals.items():
            m = _PREFIX.match(c)
            base, k = (m["base"], int(m["k"])) if m else (c, None)
            colour = PALETTE[0] if k is None else PALETTE[1 + ks.index(k) % (len(PALETTE) - 1)]
            dash = ' stroke-dasharray="5,3"' if base == "q_report" else ""
            ok = np.isfinite(v) & np.isfinite(ep)
            pts = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(ep[ok], v[ok]))
            if pts:
                out.append(f'<polyline data-series="{html.escape(c)}" points="{pts}" fill="none" '
                           f'stroke="{colour}" stroke-width="1.6"{dash}/>')
            if k is not None and len(h) > 40:  # many rows: prefix curves as lines only (keeps updates small)
                continue
            for i in np.flatnonzero(ok):
                tip = f"{c}  epoch {ep[i]:g}: {_fmt(v[i])}"
                if c in tasks and tasks[c][i]:
                    tip += f"\nper task:\n{tasks[c][i]}"
                fill = "white" if base == "q_report" else colour
                out.append(f'<circle data-series="{html.escape(c)}" data-epoch="{ep[i]:g}" '
                           f'data-value="{v[i]:.6g}" cx="{sx(ep[i]):.1f}" cy="{sy(v[i]):.1f}" r="3.2" '
                           f'fill="{fill}" stroke="{colour}"><title>{html.escape(tip)}</title></circle>')
        # legend
        lx = W - R + 6
        for j, (name, x, colour) in enumerate(marks):
            yy = y_off + T + 12 + 12 * (len(vals) + j) + 4
            out.append(f'<text x="{lx}" y="{yy}" font-size="10" fill="{colour}">{name}: {x:g}</text>')
        for j, c in enumerate(vals):
            m = _PREFIX.match(c)
            k = int(m["k"]) if m else None
            colour = PALETTE[0] if k is None else PALETTE[1 + ks.index(k) % (len(PALETTE) - 1)]
            name = LABELS.get(c, c) if k is None else c
            yy = y_off + T + 12 + 12 * j
            out.append(f'<text x="{lx}" y="{yy}" font-size="10" '
                       f'fill="{colour}">{html.escape(name)}</text>')
        out.append("</g>")
        return out

    def svg(self) -> str:
        """The monitor as a standalone SVG string (what every view shows)."""
        h = self.history
        ep = _col(h, "epoch")
        ep = ep[np.isfinite(ep)]
        x0, x1 = (float(ep.min()), float(ep.max())) if ep.size else (0.0, 1.0)
        pad = max((x1 - x0) * 0.04, 0.5)
        x0, x1 = x0 - pad, x1 + pad
        best, ks = self._best(h), self._prefixes(h)
        groups = [("validation MSE / loss", [m for m in self.metrics if not m.startswith("q")]),
                  ("Q-bar (solid: selection, dashed: report)", [m for m in self.metrics if m.startswith("q")])]
        groups = [(lab, ms + [f"{m}/k{k}" for k in ks for m in ms]) for lab, ms in groups if ms]
        marks = [(n, e, col) for n, e, col in (("MSE-best", best["mse"], "#2ca02c"), ("Q-best", best["q"], "#d62728"))
                 if e is not None]
        n_rows = len(h)
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="eoembed-history" width="{self.width}" '
                 f'height="{self.height * len(groups)}" data-n="{n_rows}" '
                 f'data-epochs="{",".join(f"{e:g}" for e in ep)}" font-family="sans-serif">']
        for j, (lab, cols) in enumerate(groups):
            parts += self._panel_svg(h, cols, lab, x0, x1, j * self.height, marks)
        parts.append("</svg>")
        return "".join(parts)

    def status(self) -> str:
        """One line: how many evaluations, which epochs, the best epochs."""
        h = self.history
        b = self._best(h)
        if h.empty:
            return "no evaluation yet"
        ep = [f"{e:g}" for e in _col(h, "epoch")]
        txt = f"{len(ep)} evaluation(s), epochs {ep[0]}..{ep[-1]}" if len(ep) > 1 else f"1 evaluation (epoch {ep[0]})"
        if b["mse"] is not None:
            txt += f"; MSE-best epoch {b['mse']:g}"
        if b["q"] is not None:
            txt += f"; Q-best (selection) epoch {b['q']:g}"
        return txt

    def _html(self) -> str:
        title = f"<b>{html.escape(self.title)}</b><br>" if self.title else ""
        return (f'<div class="eoembed-monitor">{title}{self.svg()}<div class="eoembed-monitor-status" '
                f'style="font-size:12px">{html.escape(self.status())}</div></div>')

    def _refresh(self) -> None:
        if self._widget is None and not self._panes:
            return
        doc = self._html()
        if self._widget is not None:
            self._widget.value = doc
        for pane in list(self._panes):
            pane.object = doc

    # ------------------------------------------------------------------ views
    @property
    def widget(self):
        """The ipywidgets view (an ``ipywidgets.HTML``); it streams while a notebook cell is still running."""
        if self._widget is None:
            import ipywidgets
            self._widget = ipywidgets.HTML(value=self._html())
            self._widget.add_class("eoembed-monitor-widget")
        return self._widget

    def __panel__(self):
        """A Panel view (``pn.pane.HTML``) that follows every new row, also when rows come from another thread."""
        import panel as pn
        pane = pn.pane.HTML(self._html(), sizing_mode="stretch_width", min_height=self.height,
                            css_classes=["eoembed-monitor"])
        self._panes.add(pane)
        return pane

    def panel(self):
        """Alias of :meth:`__panel__` (older name)."""
        return self.__panel__()

    @classmethod
    def from_results(cls, results_dir: str | os.PathLike, selection: Any = None, **kwargs: Any) -> LiveHistory:
        """A monitor filled with ``<results_dir>/compress/history.csv`` (as written by ``eoembed demo`` /
        ``train_compressor(out=...)``); ``results_dir`` may also be the ``compress`` folder or the csv itself."""
        from eoembed.errors import DataFileNotFound
        p = Path(results_dir)
        cands = [p, p / "history.csv", p / "compress" / "history.csv"]
        f = next((c for c in cands if c.is_file()), None)
        if f is None:
            raise DataFileNotFound(f"no training history under {str(p)!r} (looked for {[str(c) for c in cands[1:]]});"
                                   " run `eoembed demo OUT` or train_compressor(..., out=OUT/compress) first.")
        live = cls(selection=selection, **kwargs)
        return live.extend(pd.read_csv(f))

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.widget._repr_mimebundle_(include=include, exclude=exclude)

    def __repr__(self) -> str:
        return f"LiveHistory(metrics={self.metrics}, rows={len(self._rows)}, prefixes={self.prefixes})"
