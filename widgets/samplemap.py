"""Sample locations on an ipyleaflet map linked to the shared Selection: :func:`sample_map` / :class:`SampleMap`."""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import traitlets

COLOR = "#1f77b4"
SELECTED_COLOR = "#ff7f0e"


def locations(source: Any, ids: Sequence[str] | None = None) -> pd.DataFrame:
    """``(lat, lon)`` per sample id (float, NaN where unknown) from any eoembed location source.

    source: a sample root (its meta.csv), an embedding store path, a saved cube (.zarr / .nc), a cube Dataset or
    embedding DataArray with ``lat``/``lon`` sample coordinates, a ``{model: DataArray}`` dict (open_embeddings) or a
    DataFrame with lat/lon columns (ids as index or an ``id`` column). ``ids`` picks and orders samples; ids the
    source does not know get NaN (they end up in :attr:`SampleMap.unplaced`).
    """
    import xarray as xr

    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        from eoembed.data.ssl4eo import read_meta
        from eoembed.extract.store import read_fingerprint
        meta_dir = p if (p / "meta.csv").is_file() else p.parent if (p.name == "data" and
                                                                    (p.parent / "meta.csv").is_file()) else None
        if meta_dir is not None:
            source = read_meta(meta_dir)
        elif p.is_dir() and read_fingerprint(p) is not None:
            from eoembed.extract import open_embeddings
            source = open_embeddings(p, allow_incomplete=True)
        else:
            from eoembed.extract import open_data
            source = open_data(p)[0]
    if isinstance(source, dict):
        if not source:
            raise ValueError("empty {model: DataArray} dict: no samples to place")
        source = next(iter(source.values()))
    if isinstance(source, (xr.Dataset, xr.DataArray)):
        if "sample" not in source.dims:
            raise ValueError(f"expected a 'sample' dimension, got dims {tuple(source.dims)}")
        sid = [str(i) for i in source["sample"].values]
        n = len(sid)
        col = {c: (np.asarray(source[c].values, np.float64) if c in source.coords else np.full(n, np.nan))
               for c in ("lat", "lon")}
        df = pd.DataFrame(col, index=pd.Index(sid, name="id"))
    elif isinstance(source, pd.DataFrame):
        df = source.set_index("id") if "id" in source.columns else source
        if not {"lat", "lon"} <= set(df.columns):
            raise ValueError(f"DataFrame has columns {list(df.columns)}; expected 'lat' and 'lon'")
        df = df[["lat", "lon"]].apply(pd.to_numeric, errors="coerce").astype(np.float64)
        df.index = pd.Index([str(i) for i in df.index], name="id")
    else:
        raise TypeError(f"cannot read sample locations from {type(source).__name__}; pass a sample root, store path, "
                        "cube, embedding DataArray or DataFrame with lat/lon")
    if ids is not None:
        df = df.reindex([str(i) for i in ids])
    return df


def _view(lat: np.ndarray, lon: np.ndarray) -> tuple[tuple[float, float], int]:
    """A map centre and a zoom level that roughly fits the points."""
    if lat.size == 0:
        return (0.0, 0.0), 2
    span = max(float(np.ptp(lon)), 2.0 * float(np.ptp(lat)), 1e-3)
    zoom = int(np.clip(math.floor(math.log2(360.0 / span)), 1, 14))
    return (float((lat.min() + lat.max()) / 2), float((lon.min() + lon.max()) / 2)), zoom


#: Tile server probed by ``tiles="auto"`` (override with the EOEMBED_TILES environment variable: a URL or "off").
OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
_TILE_PROBE: dict[str, bool] = {}


def tiles_available(url: str = OSM_TILES, timeout: float = 1.5) -> bool:
    """Whether a tile server answers (one tile fetched from Python, result cached per process)."""
    if url not in _TILE_PROBE:
        import urllib.request
        probe = url.replace("{s}", "a").replace("{z}", "1").replace("{x}", "1").replace("{y}", "1")
        try:
            req = urllib.request.Request(probe, headers={"User-Agent": "eoembed-widgets"})
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (tile URL given by the user)
                _TILE_PROBE[url] = r.status == 200
        except Exception:  # noqa: BLE001 (any failure means: no tiles)
            _TILE_PROBE[url] = False
    return _TILE_PROBE[url]


def inside(lat: np.ndarray, lon: np.ndarray, geometry: dict) -> np.ndarray:
    """Boolean mask of the points inside a GeoJSON Polygon / MultiPolygon (holes respected; lon = x, lat = y)."""
    from matplotlib.path import Path as MplPath

    t = geometry.get("type")
    polys = [geometry["coordinates"]] if t == "Polygon" else geometry["coordinates"] if t == "MultiPolygon" else None
    if polys is None:
        raise ValueError(f"can select inside a Polygon or MultiPolygon, not a {t!r} (draw a rectangle or polygon)")
    xy = np.column_stack([np.asarray(lon, np.float64), np.asarray(lat, np.float64)])
    out = np.zeros(len(xy), bool)
    for rings in polys:
        m = MplPath(np.asarray(rings[0], np.float64)[:, :2]).contains_points(xy)
        for hole in rings[1:]:
            m &= ~MplPath(np.asarray(hole, np.float64)[:, :2]).contains_points(xy)
        out |= m
    return out


class SampleMap(traitlets.HasTraits):
    """Samples on an ipyleaflet map, linked to a shared :class:`~widgets.Selection`.

    Select by clicking a marker (toggles it), drawing a rectangle or polygon (selects the samples inside), or the
    label filter under the map (``column`` = value / range). ``selection`` is the shared selection (a new one when
    None): the map writes it (``source=name``) and follows every change other views make. Overlapping markers stay
    clickable: they are clustered (click a cluster to zoom in / spiderfy it). Geography without a tile server:
    Natural Earth land and country outlines (``python -m widgets.assets`` caches them; without them the map still
    works, just blank). ``tiles``: "auto" (default: a tile layer only when the tile server answers), None/"off", or
    a tile URL. Callbacks given to :meth:`on_select` run inside :attr:`output`, an ``ipywidgets.Output`` under the
    map, so their prints appear there (not in JupyterLab's log console).

    Attributes: ``.map`` (ipyleaflet Map), ``.markers`` ``{id: CircleMarker}``, ``.selected`` (list of ids, a
    traitlets List mirroring ``selection.ids`` for this map's samples), ``.unplaced`` (ids without a finite lat/lon,
    named under the map, never dropped silently), ``.labels`` (DataFrame or None), ``.widget`` (the whole view).
    """

    selected = traitlets.List(traitlets.Unicode())

    def __init__(self, locs: pd.DataFrame, radius: int = 6, selection: Any = None, labels: pd.DataFrame | None = None,
                 tiles: str | None = "auto", outlines: bool = True, cluster: bool = True, name: str = "map",
                 **map_kwargs: Any):
        import ipyleaflet
        import ipywidgets

        from widgets.selection import Selection

        super().__init__()
        self.name = str(name)
        self.selection = selection if selection is not None else Selection()
        self.locations = locs
        ok = np.isfinite(locs["lat"].to_numpy()) & np.isfinite(locs["lon"].to_numpy())
        placed = locs[ok]
        self.unplaced: list[str] = [str(i) for i in locs.index[~ok]]
        center, zoom = _view(placed["lat"].to_numpy(), placed["lon"].to_numpy())
        self.map = ipyleaflet.Map(**{"center": center, "zoom": zoom, "scroll_wheel_zoom": True, "layers": (),
                                     "max_zoom": 18, "min_zoom": 1,
                                     "layout": ipywidgets.Layout(height="420px", min_width="300px"), **map_kwargs})
        self.tiles = self._add_basemap(tiles, outlines)
        self.markers: dict[str, Any] = {}
        for sid, (lat, lon) in placed[["lat", "lon"]].iterrows():
            mk = ipyleaflet.CircleMarker(location=(float(lat), float(lon)), radius=int(radius), color=COLOR,
                                         fill_color=COLOR, fill_opacity=0.7, weight=1, name=str(sid))
            mk.on_click(lambda sid=str(sid), **_: self.toggle(sid))
            self.markers[str(sid)] = mk
        if cluster:  # only markers closer than ~2 radii are grouped; a click on a group zooms in or spiderfies it
            self.layer = ipyleaflet.MarkerCluster(markers=tuple(self.markers.values()), name="samples",
                                                  max_cluster_radius=max(2 * int(radius), 10),
                                                  disable_clustering_at_zoom=16)
        else:
            self.layer = ipyleaflet.LayerGroup(layers=tuple(self.markers.values()), name="samples")
        self.map.add(self.layer)
        self.draw = ipyleaflet.DrawControl(
            polyline={}, circlemarker={}, circle={}, marker={},
            rectangle={"shapeOptions": {"color": SELECTED_COLOR, "fillOpacity": 0.1}},
            polygon={"shapeOptions": {"color": SELECTED_COLOR, "fillOpacity": 0.1}})
        self.draw.on_draw(self._on_draw)
        self.map.add(self.draw)
        self.labels = None if labels is None else self._check_labels(labels)
        self.status = ipywidgets.HTML()
        self.output = ipywidgets.Output(layout=ipywidgets.Layout(max_height="160px", overflow="auto"))
        self.filter_box = self._filter_widgets() if self.labels is not None else None
        parts = [self.map, self.status] + ([self.filter_box] if self.filter_box is not None else []) + [self.output]
        self.widget = ipywidgets.VBox(parts, layout=ipywidgets.Layout(width="100%"))
        self.widget.add_class("eoembed-samplemap")
        self.observe(self._restyle, names="selected")
        self.observe(self._write_selection, names="selected")
        self.selection.observe(self._follow, names="ids")
        self._restyle({"old": [], "new": []})
        if self.selection.ids:
            self.selected = [i for i in self.selection.ids if i in self.locations.index]

    # ------------------------------------------------------------------ basemap
    def _add_basemap(self, tiles: str | None, outlines: bool) -> str | None:
        import ipyleaflet

        if outlines:
            from widgets.assets import basemap
            land, countries = basemap("land"), basemap("countries")
            if land is not None:
                self.map.add(ipyleaflet.GeoJSON(data=land, name="land", style={
                    "color": "#b9b4a8", "weight": 0.5, "fillColor": "#efebe2", "fillOpacity": 1.0}))
            if countries is not None:
                self.map.add(ipyleaflet.GeoJSON(data=countries, name="countries", style={
                    "color": "#8f8a80", "weight": 0.7, "fill": False, "fillOpacity": 0.0}))
            self.map.style = {"cursor": "pointer"}
        env = os.environ.get("EOEMBED_TILES")
        if tiles == "auto" and env:
            tiles = None if env.lower() in ("off", "none", "0") else env
        url = None
        if tiles == "auto":
            url = OSM_TILES if tiles_available(OSM_TILES) else None
        elif tiles not in (None, "off"):
            url = tiles
        if url is not None:
            layer = ipyleaflet.TileLayer(url=url, name="tiles", base=True,
                                         attribution="&copy; OpenStreetMap contributors")
            self.map.add(layer)
            self.map.layers = (layer, *[x for x in self.map.layers if x is not layer])
        return url

    # ------------------------------------------------------------------ selection
    def _restyle(self, change: dict) -> None:
        for sid in set(change["old"]) ^ set(change["new"]):
            if sid in self.markers:
                c = SELECTED_COLOR if sid in change["new"] else COLOR
                self.markers[sid].color = self.markers[sid].fill_color = c
        sel = ", ".join(self.selected[:20]) + (" ..." if len(self.selected) > 20 else "")
        txt = f"<b>{len(self.selected)} selected</b>{': ' + sel if sel else ''}"
        if self.unplaced:
            more = " ..." if len(self.unplaced) > 10 else ""
            txt += f"<br>{len(self.unplaced)} without lat/lon (not on the map): {', '.join(self.unplaced[:10])}{more}"
        self.status.value = txt

    def _write_selection(self, change: dict) -> None:
        if tuple(change["new"]) != tuple(i for i in self.selection.ids if i in self.locations.index):
            self.selection.set(change["new"], source=self.name)

    def _follow(self, change: dict) -> None:
        if self.selection.source == self.name:
            return
        mine = [i for i in change["new"] if i in self.locations.index]
        if mine != list(self.selected):
            self.selected = mine

    def _check(self, ids: Iterable[str]) -> list[str]:
        ids = [str(i) for i in ids]
        unknown = [i for i in ids if i not in self.locations.index]
        if unknown:
            raise KeyError(f"unknown sample id(s) {unknown[:5]}; this map holds {len(self.locations)} samples")
        return ids

    def toggle(self, sid: str) -> None:
        """Add ``sid`` to the selection, or remove it when already selected (what a marker click does)."""
        (sid,) = self._check([sid])
        self.selected = [s for s in self.selected if s != sid] if sid in self.selected else [*self.selected, sid]

    def select(self, ids: Iterable[str]) -> None:
        """Replace the selection by ``ids`` (in that order, duplicates removed)."""
        self.selected = list(dict.fromkeys(self._check(ids)))

    def clear(self) -> None:
        """Empty the selection."""
        self.selected = []

    def select_inside(self, geometry: dict) -> list[str]:
        """Select the placed samples inside a GeoJSON (Multi)Polygon (or Feature); returns their ids."""
        if geometry.get("type") == "Feature":
            geometry = geometry["geometry"]
        placed = self.locations.loc[list(self.markers)]
        mask = inside(placed["lat"].to_numpy(), placed["lon"].to_numpy(), geometry)
        ids = [str(i) for i in placed.index[mask]]
        self.select(ids)
        return ids

    def _on_draw(self, _control: Any, action: str, geo_json: dict) -> None:
        if action != "created":
            return
        self._in_output(self.select_inside, geo_json)
        self.draw.clear()

    def _in_output(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn(*args)`` with its prints (and, in a kernel, displays and errors) shown under the map."""
        import contextlib
        import io

        buf = io.StringIO()
        try:
            with self.output, contextlib.redirect_stdout(buf):
                return fn(*args)
        finally:
            if buf.getvalue():
                self.output.append_stdout(buf.getvalue())

    def on_select(self, callback: Callable[[list[str]], Any]) -> None:
        """Call ``callback(selected_ids)`` after every change of the selection; its output shows under the map."""
        def run(change: dict) -> None:
            self._in_output(callback, list(change["new"]))
        self.observe(run, names="selected")

    # ------------------------------------------------------------------ label filter
    @staticmethod
    def _check_labels(labels: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(labels, pd.DataFrame):
            raise TypeError(f"labels must be a DataFrame (index: sample id, one column per label), got "
                            f"{type(labels).__name__}; use eoembed.data.read_labels(root / 'labels')")
        df = labels.set_index("id") if "id" in labels.columns else labels.copy()
        df.index = pd.Index([str(i) for i in df.index], name="id")
        return df

    def filter(self, column: str, value: Any = None, range: tuple[float, float] | None = None) -> list[str]:  # noqa: A002
        """Select the samples whose label ``column`` equals ``value`` (or lies in the closed ``range``)."""
        if self.labels is None:
            raise ValueError("this map has no labels; pass labels=read_labels(root / 'labels') to SampleMap")
        if column not in self.labels.columns:
            raise KeyError(f"no label column {column!r}; columns: {list(self.labels.columns)}")
        if (value is None) == (range is None):
            raise ValueError("give exactly one of value= or range=(lo, hi)")
        col = self.labels[column]
        if range is not None:
            v = pd.to_numeric(col, errors="coerce")
            mask = (v >= range[0]) & (v <= range[1])
        else:
            num, val = pd.to_numeric(col, errors="coerce"), pd.to_numeric(pd.Series([value]), errors="coerce")[0]
            mask = (num == val) if pd.notna(val) and num.notna().any() else (col.astype(str) == str(value))
        ids = [i for i in self.labels.index[mask.to_numpy()] if i in self.locations.index]
        self.select(ids)
        return ids

    def _filter_widgets(self):
        import ipywidgets

        cols = list(self.labels.columns)
        column = ipywidgets.Dropdown(options=cols, description="label", layout=ipywidgets.Layout(width="260px"))
        value = ipywidgets.Dropdown(description="=", layout=ipywidgets.Layout(width="200px"))
        rng = ipywidgets.FloatRangeSlider(description="in", layout=ipywidgets.Layout(width="360px"),
                                          continuous_update=False, readout_format=".3g")
        button = ipywidgets.Button(description="select matching", button_style="info")
        box = ipywidgets.HBox([column, value, rng, button])

        def numeric(c: str) -> bool:
            v = self.labels[c].dropna()
            return pd.api.types.is_numeric_dtype(v) and v.nunique() > 12

        def setup(_change: Any = None) -> None:
            c = column.value
            v = self.labels[c].dropna()
            if numeric(c):
                lo, hi = float(v.min()), float(v.max())
                if lo > rng.max:
                    rng.max, rng.min = hi, lo
                else:
                    rng.min, rng.max = lo, hi
                rng.step = (hi - lo) / 100 or 1.0
                rng.value = (lo, hi)
                value.layout.display, rng.layout.display = "none", None
            else:
                value.options = [f"{x:g}" if isinstance(x, float) else str(x) for x in sorted(v.unique(), key=str)]
                value.layout.display, rng.layout.display = None, "none"

        def apply(_b: Any) -> None:
            def go() -> None:
                c = column.value
                ids = self.filter(c, range=rng.value) if numeric(c) else self.filter(c, value=value.value)
                print(f"label filter {c}: {len(ids)} sample(s) selected")
            self._in_output(go)

        column.observe(setup, names="value")
        button.on_click(apply)
        setup()
        self._filter_controls = {"column": column, "value": value, "range": rng, "button": button}
        return box

    # ------------------------------------------------------------------ protocol
    @classmethod
    def from_results(cls, results_dir: str | os.PathLike, selection: Any = None, **kwargs: Any) -> SampleMap:
        """The map of ``<results_dir>/sample`` (as written by ``eoembed demo``), with its labels for the filter."""
        from eoembed.errors import DataFileNotFound
        p = Path(results_dir)
        root = next((c for c in (p / "sample", p) if (c / "meta.csv").is_file()), None)
        if root is None:
            raise DataFileNotFound(f"no sample locations under {str(p)!r} (looked for sample/meta.csv and "
                                   "meta.csv); pass a results folder of `eoembed demo` or a sample root.")
        labels = None
        if (root / "labels").is_dir():
            from eoembed.data import read_labels
            labels = read_labels(root / "labels")
        return cls(locations(root), selection=selection, labels=labels, **kwargs)

    def __panel__(self):
        """A Panel view (``pn.pane.IPyWidget``; ``panel serve`` needs ipywidgets_bokeh and the local leaflet bundle)."""
        import panel as pn
        return pn.pane.IPyWidget(self.widget, sizing_mode="stretch_width", min_width=420, min_height=470)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.widget._repr_mimebundle_(include=include, exclude=exclude)

    def __repr__(self) -> str:
        return (f"SampleMap({len(self.markers)} markers, {len(self.selected)} selected, "
                f"{len(self.unplaced)} unplaced)")


def sample_map(root_or_cube: Any, ids: Sequence[str] | None = None, **kwargs: Any) -> SampleMap:
    """A :class:`SampleMap` of the samples of a sample root, store, cube, embeddings or lat/lon DataFrame.

    ``ids`` picks samples (ids unknown to the source are listed in ``.unplaced``); other keyword arguments go to
    :class:`SampleMap` (``selection``, ``labels``, ``tiles``, ``radius`` ...) and ``ipyleaflet.Map`` (``layout`` ...).
    A sample root's ``labels/`` folder feeds the label filter unless ``labels`` is given.
    """
    if "labels" not in kwargs and isinstance(root_or_cube, (str, os.PathLike)) and \
            (Path(root_or_cube) / "labels").is_dir():
        from eoembed.data import read_labels
        kwargs["labels"] = read_labels(Path(root_or_cube) / "labels")
    return SampleMap(locations(root_or_cube, ids), **kwargs)
