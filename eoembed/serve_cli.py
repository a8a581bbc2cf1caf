"""CLI ``eoembed serve``: the dashboard (``widgets.dashboard.serve``) over a results folder of ``eoembed demo``.

eoembed never imports the UI layer at import time: the widgets are imported inside the command only.
"""
from __future__ import annotations

from typing import List, Optional

import typer


def _dashboard_serve():
    """``widgets.dashboard.serve``, or an ImportError saying how to install the UI extra."""
    try:
        from widgets.dashboard import serve
    except ImportError as e:  # panel / ipyleaflet / ipywidgets_bokeh missing, or widgets not on the path
        raise ImportError(f"the dashboard needs eoembed's UI extra ({e}); install it with "
                          "`pip install -e '.[ui]'` in the eoembed checkout (or `make install`).") from e
    return serve


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(results: str = typer.Argument(..., help="Results folder written by `eoembed demo`."),
              port: int = typer.Option(5006, help="Port to listen on."),
              address: str = typer.Option("127.0.0.1", help="Address to bind (default: this machine only)."),
              show: bool = typer.Option(True, help="Open a browser tab."),
              allow_websocket_origin: Optional[List[str]] = typer.Option(
                  None, help="Extra allowed origins, e.g. '*' behind jupyter-server-proxy.")) -> None:
        """Serve the dashboard (map, sample viewer, UMAP, prefixes, training monitor, ablation) of RESULTS."""
        _dashboard_serve()(results, port=port, address=address, show=show,
                           allow_websocket_origin=list(allow_websocket_origin or []))
