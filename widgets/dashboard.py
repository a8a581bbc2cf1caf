"""The eoembed dashboard: every view over one results folder, linked by one shared :class:`~widgets.Selection`.

    eoembed serve RESULTS                                  # = widgets.dashboard.serve(RESULTS)
    panel serve widgets/dashboard.py --args RESULTS        # the same app under Panel's own server

Views follow one protocol: ``View.from_results(results_dir, selection=None)`` and ``__panel__()``. The views of
:data:`VIEWS` are imported by name; one that cannot be imported or built is shown as "not available: <why>"
(never dropped silently). The map and the training monitor have adapters here while their classes lack
``from_results``.

Offline: BokehJS is inline, the jupyter-leaflet AMD bundle is copied from the ipyleaflet wheel into
``widgets/_static/`` (generated at start, git-ignored) and served by Panel's component route through a RELATIVE
URL (so the app also works behind jupyter-server-proxy), and the font-awesome stylesheet Panel adds for ipywidgets
is served from Panel's own files instead of its CDN.

A training can be started from the dashboard: it runs in a thread; its history rows go through a thread-safe
queue that a periodic callback of the session drains in order, so every epoch reaches the plot and the status
line only reports epochs that are plotted.
"""
from __future__ import annotations

import importlib
import json
import os
import queue
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from eoembed.errors import DataFileNotFound
from widgets.selection import Selection

#: (title, module, class) of every view, in page order; missing ones are shown as "not available".
VIEWS: tuple[tuple[str, str, str], ...] = (
    ("Map", "widgets.samplemap", "SampleMap"),
    ("Sample viewer", "widgets.viewer", "SampleViewer"),
    ("UMAP", "widgets.umap", "UMAPExplorer"),
    ("Prefixes", "widgets.prefix", "PrefixExplorer"),
    ("Training monitor", "widgets.history", "LiveHistory"),
    ("Ablation", "widgets.ablation", "AblationView"),
)

#: Default epochs of a training started from the dashboard (Q-bar every epoch).
TRAIN_EPOCHS = 8

#: Folder (inside the widgets package, git-ignored) that holds the generated JS bundles served by Panel.
STATIC = Path(__file__).resolve().parent / "_static"


class MissingResults(DataFileNotFound):
    """The results folder lacks what the dashboard needs (message names the file and the command that makes it)."""


def check_results(results: str | os.PathLike) -> Path:
    """The results folder as a Path; an error naming what is missing when it is not an ``eoembed demo`` folder."""
    p = Path(results)
    if not p.is_dir():
        raise MissingResults(f"results folder {p} does not exist; make one with `eoembed demo {p} --no-serve`.")
    if not (p / "sample" / "meta.csv").is_file() and not (p / "demo_summary.json").is_file():
        raise MissingResults(f"{p} holds neither sample/meta.csv nor demo_summary.json: not a results folder of "
                             f"`eoembed demo` (run `eoembed demo {p} --no-serve` first).")
    return p


# --------------------------------------------------------------------------------------------- offline assets
def _generated() -> list[str]:
    """The files under :data:`STATIC`/npm (paths relative to the widgets package), as Panel's route lists them."""
    root = STATIC / "npm"
    return sorted(f.relative_to(STATIC.parent).as_posix() for f in root.rglob("*") if f.is_file()) if root.is_dir() else []


class OfflineAssets:
    """Files Panel may serve from ``widgets/_static`` through its component route (listed, never the whole folder)."""

    __javascript__: list[str] = _generated()


def leaflet_source() -> Path:
    """The jupyter-leaflet nbextension folder shipped in the ipyleaflet wheel (index.js and its images)."""
    from jupyter_core.paths import jupyter_path

    for d in jupyter_path("nbextensions"):
        src = Path(d) / "jupyter-leaflet"
        if (src / "index.js").is_file():
            return src
    raise FileNotFoundError("jupyter-leaflet's index.js was not found in any nbextensions folder "
                            f"({jupyter_path('nbextensions')}); reinstall ipyleaflet (`pip install -e '.[ui]'`).")


def prepare_static(static: str | os.PathLike | None = None) -> dict[str, str]:
    """Copy the jupyter-leaflet AMD bundle to ``static`` (default :data:`STATIC`) under the path ipywidgets_bokeh
    asks for (``jupyter-leaflet@<declared version>/dist/index``); idempotent. Returns ``{"leaflet": rel_path}``.

    Registers the files in :class:`OfflineAssets` so Panel's ``/components/`` route serves them (and nothing else).
    """
    import ipyleaflet

    static = Path(static) if static is not None else STATIC
    version = ipyleaflet.Map._view_module_version.default_value  # e.g. "^0.20"
    src = leaflet_source()
    dist = static / "npm" / f"jupyter-leaflet@{version}" / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    files = {"index": src / "index.js", **{p.name: p for p in src.glob("*.png")}}
    for name, f in files.items():
        dst = dist / name
        if not dst.is_file() or dst.stat().st_size != f.stat().st_size:
            shutil.copyfile(f, dst)
    (static / ".gitignore").write_text("*\n")
    if static == STATIC:
        OfflineAssets.__javascript__ = _generated()
    return {"leaflet": f"jupyter-leaflet@{version}"}


#: The relative URL (from the app page) of the npm-like folder holding the bundles (Panel's component route).
CDN_PATH = "./components/widgets.dashboard/OfflineAssets/__javascript__/_static/npm"


def localize(doc: Any) -> int:
    """Point every ipywidgets_bokeh model of ``doc`` at the local bundle folder (:data:`CDN_PATH`); returns how many."""
    try:
        from ipywidgets_bokeh.widget import IPyWidget
    except ImportError:
        return 0
    n = 0
    for m in list(doc.models):
        if isinstance(m, IPyWidget) and m.cdn != CDN_PATH:
            m.cdn = CDN_PATH
            n += 1
    return n


def _offline_extension() -> None:
    """``pn.extension('ipywidgets')`` with BokehJS inline and the font-awesome CSS from Panel's local files."""
    import panel as pn
    from panel.io.resources import CDN_DIST, CSS_URLS

    pn.extension("ipywidgets", "tabulator")  # Panel serves both bundles itself (no CDN in server mode)
    # panel.io.ipywidget points IPyWidget.__css__ at font-awesome 4.5 on cdnjs; ipywidgets_bokeh's bundle already
    # carries font-awesome (CSS and fonts), so nothing is lost by dropping the CDN link.
    from ipywidgets_bokeh.widget import IPyWidget
    IPyWidget.__css__ = [c for c in getattr(IPyWidget, "__css__", []) if not str(c).startswith("http")]
    fa = CSS_URLS.get("font-awesome")
    if fa:
        pn.config.css_files = [c for c in pn.config.css_files if c != fa]
    local = [c for c in pn.config.css_files if isinstance(c, str) and c.startswith(CDN_DIST)]
    if local:  # any other CDN stylesheet: drop it rather than reach the internet
        pn.config.css_files = [c for c in pn.config.css_files if c not in local]


# --------------------------------------------------------------------------------------------- adapters
def _samplemap_from_results(cls: type, results: Path, selection: Selection) -> Any:
    """A SampleMap of ``results/sample`` linked both ways with ``selection`` (adapter for maps lacking the protocol)."""
    import panel as pn
    from widgets.samplemap import sample_map

    smap = sample_map(results / "sample")

    def to_sel(change: dict) -> None:
        if tuple(change["new"]) != selection.ids:
            selection.set(change["new"], source="map")

    def from_sel(change: dict) -> None:
        if selection.source != "map":
            smap.select([i for i in change["new"] if i in smap.locations.index])

    if not tiles_reachable():  # offline: no tile requests leave the machine (markers, zoom and clicks still work)
        import ipyleaflet
        for layer in [la for la in smap.map.layers if isinstance(la, ipyleaflet.TileLayer)]:
            smap.map.remove(layer)
    smap.observe(to_sel, names="selected")
    selection.observe(from_sel, names="ids")
    smap.map.layout.min_width = "400px"
    smap.map.layout.height = "420px"
    return pn.Column(pn.pane.IPyWidget(smap.widget, sizing_mode="stretch_width", min_width=420, height=470),
                     sizing_mode="stretch_width", min_width=420)


_TILES: dict[str, bool] = {}


def tiles_reachable(host: str = "tile.openstreetmap.org", timeout: float = 1.5) -> bool:
    """Whether the map's tile server answers (checked once per process); ``EOEMBED_TILES=0/1`` forces it."""
    env = os.environ.get("EOEMBED_TILES")
    if env in ("0", "1"):
        return env == "1"
    if host not in _TILES:
        import socket
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _TILES[host] = True
        except OSError:
            _TILES[host] = False
    return _TILES[host]


def history_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of a compressor history.csv (NaN kept), sorted by epoch."""
    h = pd.read_csv(path).sort_values("epoch", kind="stable")
    return h.to_dict("records")


def _history_from_results(cls: type, results: Path, selection: Selection) -> Any:
    """A LiveHistory filled with ``results/compress/history.csv`` (adapter for monitors lacking the protocol)."""
    import panel as pn

    live = cls()
    f = results / "compress" / "history.csv"
    if not f.is_file():
        return pn.pane.Markdown(f"no stored training history ({f} is missing); start a training below.")
    for row in history_rows(f):
        live(row)
    return _as_panel(live)


ADAPTERS: dict[str, Callable[[type, Path, Selection], Any]] = {
    "SampleMap": _samplemap_from_results, "LiveHistory": _history_from_results}


def _as_panel(view: Any) -> Any:
    import panel as pn

    if hasattr(view, "__panel__"):
        return view.__panel__()
    if hasattr(view, "panel") and callable(view.panel):
        return view.panel()
    return pn.panel(view)


def load_view(module: str, name: str, results: Path, selection: Selection) -> tuple[Any, str | None]:
    """``(panel viewable, None)`` of one view, or ``(None, why)`` when it cannot be imported or built."""
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception as e:  # noqa: BLE001 - any failure becomes a visible note
        return None, f"{module}.{name} cannot be imported ({type(e).__name__}: {e})"
    try:
        if hasattr(cls, "from_results"):
            return _as_panel(cls.from_results(results, selection=selection)), None
        if name in ADAPTERS:
            return ADAPTERS[name](cls, results, selection), None
        return None, f"{module}.{name} has no from_results(results_dir, selection=None)"
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        return None, f"{module}.{name}.from_results({results}) failed ({type(e).__name__}: {e})"


# --------------------------------------------------------------------------------------------- training
class TrainingRun:
    """A ``train_compressor`` run in a thread whose history rows reach the session in order, none lost.

    The thread only puts rows in a :class:`queue.Queue`; :meth:`drain` (called on the session's thread by a
    periodic callback) hands them to ``on_row`` in arrival order. ``done`` is set after the thread ended AND every
    row was drained, so a status built from :attr:`rows` never runs ahead of the plot.
    """

    def __init__(self, results: Path, on_row: Callable[[dict], Any], epochs: int = 8, eval_every: int = 1,
                 **kwargs: Any):
        self.results, self.on_row = Path(results), on_row
        self.epochs, self.eval_every, self.kwargs = int(epochs), int(eval_every), kwargs
        self.rows: list[dict] = []
        self.error: str | None = None
        self.out = self.results / "dashboard_runs" / time.strftime("run_%Y%m%d_%H%M%S")
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="eoembed-dashboard-train", daemon=True)
        self.finished = threading.Event()  # the thread ended
        self.done = False  # thread ended and every row drained

    def start(self) -> "TrainingRun":
        self._thread.start()
        return self

    def _run(self) -> None:
        from eoembed.compress import train_compressor
        from eoembed.data import read_labels

        try:
            n = 0
            while self.out.exists():  # two clicks in the same second: never reuse a folder
                n += 1
                self.out = self.out.with_name(f"{self.out.name.split('-')[0]}-{n}")
            labels = read_labels(self.results / "sample" / "labels")
            opts = {"q_mode": "ridge", "q_folds": 5, "out_dim": 128, **self.kwargs}
            train_compressor(self.results / "emb.zarr", labels, epochs=self.epochs, eval_every=self.eval_every,
                             callbacks=[self._q.put], out=self.out, progress=False, **opts)
        except Exception as e:  # noqa: BLE001 - shown in the dashboard
            traceback.print_exc()
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.finished.set()

    def drain(self) -> int:
        """Hand queued rows to ``on_row`` (in order); returns how many. Sets :attr:`done` once all are handed."""
        finished = self.finished.is_set()  # read BEFORE draining: rows put before the end are all in the queue
        n = 0
        while True:
            try:
                row = self._q.get_nowait()
            except queue.Empty:
                break
            row = {k: (None if isinstance(v, float) and v != v else v) for k, v in dict(row).items()}
            self.rows.append(row)
            self.on_row(row)
            n += 1
        if finished and self._q.empty():
            self.done = True
        return n


def training_panel(results: Path, monitor_cls: Any = None) -> Any:
    """A card with epochs / Q-every inputs, a "Train" button and a live monitor fed by :class:`TrainingRun`."""
    import panel as pn

    epochs = pn.widgets.IntInput(name="epochs", value=TRAIN_EPOCHS, start=1, end=500, width=100)
    every = pn.widgets.IntInput(name="Q-bar every (epochs)", value=1, start=1, end=100, width=140)
    button = pn.widgets.Button(name="Train compressor", button_type="primary", width=160)
    status = pn.pane.Markdown("no training started in this session", name="train-status",
                              css_classes=["eoembed-train-status"])
    holder = pn.Column(sizing_mode="stretch_width", css_classes=["eoembed-training-monitor"])
    state: dict[str, Any] = {"run": None, "cb": None}
    if not (results / "emb.zarr").is_dir():
        button.disabled = True
        status.object = f"training needs {results / 'emb.zarr'} (made by `eoembed demo`)"

    def tick() -> None:
        run: TrainingRun = state["run"]
        if run is None:
            return
        run.drain()
        ep = [int(r["epoch"]) for r in run.rows]
        if run.done:
            state["cb"].stop()
            button.disabled = False
            if run.error:
                status.object = f"**training failed** after epochs {ep}: {run.error}"
            else:
                status.object = f"**done**: {len(ep)} evaluations plotted, epochs {ep} -> `{run.out}`"
        else:
            status.object = f"training... {len(ep)} evaluations plotted, epochs {ep}"

    def start(_event: Any = None) -> None:
        if state["run"] is not None and not state["run"].done:
            return
        from widgets.history import LiveHistory
        live = (monitor_cls or LiveHistory)()
        holder[:] = [_as_panel(live)]
        button.disabled = True
        status.object = "training... (first epoch running)"
        state["run"] = TrainingRun(results, live, epochs=epochs.value, eval_every=every.value).start()
        state["cb"] = pn.state.add_periodic_callback(tick, period=200)

    button.on_click(start)
    return pn.Column(pn.Row(epochs, every, button), status, holder, sizing_mode="stretch_width",
                     name="training")


# --------------------------------------------------------------------------------------------- the app
def _selection_pane(selection: Selection) -> Any:
    import panel as pn

    pane = pn.pane.Markdown("**selection**: none", css_classes=["eoembed-selection"], sizing_mode="stretch_width")

    def show(_change: Any = None) -> None:
        ids = selection.ids
        txt = ", ".join(ids[:15]) + (" ..." if len(ids) > 15 else "")
        pane.object = (f"**selection**: {len(ids)} sample(s){': ' + txt if txt else ''}"
                       f"{' (from ' + selection.source + ')' if selection.source else ''}")

    selection.observe(show, names="ids")
    return pane


def dashboard(results: str | os.PathLike, selection: Selection | None = None) -> Any:
    """The dashboard (a Panel Column) over a results folder: every view of :data:`VIEWS`, one shared selection."""
    import panel as pn

    results = check_results(results)
    _offline_extension()
    selection = selection if selection is not None else Selection()
    cards, notes = [], []
    monitor_cls = None
    for title, module, name in VIEWS:
        view, why = load_view(module, name, results, selection)
        if view is None:
            notes.append(f"- **{title}** not available: {why}")
            cards.append(_card(title, pn.pane.Alert(f"{title} not available: {why}", alert_type="warning"),
                               css_classes=["eoembed-missing"]))
            continue
        body = [view]
        if name == "LiveHistory":
            monitor_cls = getattr(importlib.import_module(module), name)
            body = [pn.pane.Markdown("Stored history (`compress/history.csv`):"), view,
                    pn.pane.Markdown("### New training run"), training_panel(results, monitor_cls)]
        cards.append(_card(title, *body, css_classes=["eoembed-view", "eoembed-view-" + name.lower()]))
    summary = ""
    if (results / "demo_summary.json").is_file():
        s = json.loads((results / "demo_summary.json").read_text())
        summary = (f" &middot; {s.get('n_samples')} samples, models {', '.join(s.get('models', []))}; selected "
                   f"epoch {s.get('selected_epoch')} (report Q-bar {s.get('fused_ae_q_report', float('nan')):.2f})")
    header = pn.pane.Markdown(f"## eoembed dashboard\n`{results.resolve()}`{summary}", sizing_mode="stretch_width")
    # Rows of two cards (not a GridBox: Bokeh's DataTable, used by the ablation view, failed to find its stylesheet
    # inside a GridBox: "SlickGrid Cannot find stylesheet", blank page)
    grid = pn.Column(*[pn.Row(*cards[i:i + 2], sizing_mode="stretch_width") for i in range(0, len(cards), 2)],
                     sizing_mode="stretch_width")
    notes_pane = pn.pane.Markdown("\n".join(notes), css_classes=["eoembed-notes"]) if notes else None
    items = [header, _selection_pane(selection)] + ([notes_pane] if notes_pane else []) + [grid]
    col = pn.Column(*items, sizing_mode="stretch_width")
    col.selection = selection  # for scripts and tests
    return col


def _card(title: str, *body: Any, css_classes: list[str]) -> Any:
    """A titled, framed column. Not ``pn.Card``: Bokeh 3.9's DataTable (prefix and ablation views) inside a Card
    throws "SlickGrid Cannot find stylesheet" in Chromium and blanks the whole page (checked with a one-table app)."""
    import panel as pn

    return pn.Column(pn.pane.Markdown(f"### {title}", margin=(0, 10)), *body, sizing_mode="stretch_width",
                     min_width=440, css_classes=css_classes,
                     styles={"border": "1px solid #e0e0e0", "border-radius": "4px", "padding": "4px"})


def app(results: str | os.PathLike) -> None:
    """Build the dashboard into the current Bokeh document (a ``panel serve`` / ``pn.serve`` session)."""
    import panel as pn

    prepare_static()
    view = dashboard(results)
    view.servable(title="eoembed dashboard")
    localize(pn.state.curdoc)


def serve(results: str | os.PathLike, port: int = 5006, address: str = "127.0.0.1", show: bool = True,
          allow_websocket_origin: list[str] | None = None, start: bool = True) -> Any:
    """Serve the dashboard of ``results`` at ``http://{address}:{port}/dashboard`` (Panel/Bokeh server).

    Binds ``address`` (127.0.0.1 by default: this machine only). ``allow_websocket_origin`` adds origins (e.g.
    ``["*"]`` behind jupyter-server-proxy). With ``start=False`` returns the (not started) server.
    """
    import panel as pn

    results = check_results(results)
    prepare_static()
    origins = [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}", *(allow_websocket_origin or [])]
    url = f"http://{address}:{port}/dashboard"
    if start:
        print(f"eoembed dashboard of {results} at {url}  (Ctrl-C stops it)", flush=True)
    return pn.serve({"dashboard": lambda: app(results)}, port=int(port), address=address, show=show,
                    websocket_origin=origins, title="eoembed dashboard", start=start, verbose=False)


if __name__.startswith("bokeh_app"):  # `panel serve widgets/dashboard.py --args RESULTS`
    if len(sys.argv) < 2:
        raise SystemExit("usage: panel serve widgets/dashboard.py --args RESULTS")
    app(sys.argv[1])
elif __name__ == "__main__":  # `python -m widgets.dashboard --prepare-static` (set-up, Binder's postBuild)
    import argparse

    ap = argparse.ArgumentParser(description="eoembed dashboard set-up; serve with `eoembed serve RESULTS`.")
    ap.add_argument("--prepare-static", action="store_true", help="copy the jupyter-leaflet bundle to "
                    f"{STATIC} (done at every start anyway)")
    if ap.parse_args().prepare_static:
        prepare_static()
        print(f"jupyter-leaflet bundle ready in {STATIC / 'npm'}")
