"""Notebook display of the Panel-based views, offline: BokehJS and panel's stylesheets inline, no CDN."""
from __future__ import annotations

from typing import Any


def mimebundle(view: Any, include: Any = None, exclude: Any = None) -> Any:
    """``view.__panel__()``'s mime bundle with inline resources. Loads Panel's extension inline when no cell did,
    so a view displays in a notebook by itself (the views use only bokeh's own models: no extra JS)."""
    import holoviews as hv
    import panel as pn
    from panel.config import panel_extension

    with pn.config.set(inline=True):
        loaded = panel_extension._loaded or getattr(hv.extension, "_loaded", False)
        if not loaded:
            pn.extension(inline=True)
        if not getattr(hv.extension, "_loaded", False):
            hv.renderer("bokeh")  # registers HoloViews' bokeh backend for the HoloViews panes
        return view.__panel__()._repr_mimebundle_(include, exclude)
