"""Sample locations on an ipyleaflet map with click selection: :func:`sample_map` / :class:`SampleMap`."""
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


class SampleMap(traitlets.HasTraits):
    """An ipyleaflet map with one CircleMarker per sample; clicking a marker toggles its id in :attr:`selected`.

    ``.map`` is the ipyleaflet Map, ``.markers`` ``{id: CircleMarker}``, ``.selected`` the selected ids (a
    traitlets List: observe it, or use :meth:`on_select`), ``.unplaced`` the ids without a finite lat/lon (never
    dropped silently: they are also named under the map). Offline the basemap tiles stay blank; markers, zoom and
    clicks still work.
    """

    selected = traitlets.List(traitlets.Unicode())

    def __init__(self, locs: pd.DataFrame, radius: int = 6, **map_kwargs: Any):
        import ipyleaflet
        import ipywidgets

        super().__init__()
        self.locations = locs
        ok = np.isfinite(locs["lat"].to_numpy()) & np.isfinite(locs["lon"].to_numpy())
        placed = locs[ok]
        self.unplaced: list[str] = [str(i) for i in locs.index[~ok]]
        center, zoom = _view(placed["lat"].to_numpy(), placed["lon"].to_numpy())
        self.map = ipyleaflet.Map(**{"center": center, "zoom": zoom, "scroll_wheel_zoom": True, **map_kwargs})
        self.markers: dict[str, Any] = {}
        for sid, (lat, lon) in placed[["lat", "lon"]].iterrows():
            mk = ipyleaflet.CircleMarker(location=(float(lat), float(lon)), radius=int(radius), color=COLOR,
                                         fill_color=COLOR, fill_opacity=0.7, weight=1, name=str(sid))
            mk.on_click(lambda sid=str(sid), **_: self.toggle(sid))
            self.markers[str(sid)] = mk
        self.layer = ipyleaflet.LayerGroup(layers=tuple(self.markers.values()), name="samples")
        self.map.add(self.layer)
        self.status = ipywidgets.HTML()
        self.widget = ipywidgets.VBox([self.map, self.status])
        self.observe(self._restyle, names="selected")
        self._restyle({"old": [], "new": []})

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

    def on_select(self, callback: Callable[[list[str]], Any]) -> None:
        """Call ``callback(selected_ids)`` after every change of the selection."""
        self.observe(lambda change: callback(list(change["new"])), names="selected")

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.widget._repr_mimebundle_(include=include, exclude=exclude)

    def __repr__(self) -> str:
        return (f"SampleMap({len(self.markers)} markers, {len(self.selected)} selected, "
                f"{len(self.unplaced)} unplaced)")


def sample_map(root_or_cube: Any, ids: Sequence[str] | None = None, **kwargs: Any) -> SampleMap:
    """A :class:`SampleMap` of the samples of a sample root, store, cube, embeddings or lat/lon DataFrame.

    ``ids`` picks samples (ids unknown to the source are listed in ``.unplaced``); other keyword arguments go to
    :class:`SampleMap` (``radius``) and ``ipyleaflet.Map`` (``basemap``, ``layout`` ...).
    """
    return SampleMap(locations(root_or_cube, ids), **kwargs)
