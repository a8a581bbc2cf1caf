"""eoembed's UI plugin (entry point ``eoembed.plugins: widgets = "widgets.plugin"``).

Adds ``eoembed serve`` to the CLI and the ``report`` / ``serve`` steps that ``eoembed demo`` ends with, so the core
package never imports the UI layer (see :mod:`eoembed.plugins`).
"""
from __future__ import annotations

from typing import List, Optional


def report(out) -> str:
    """Write ``OUT/report.html`` (:func:`widgets.report.report`)."""
    from widgets.report import report as write_report
    return str(write_report(out))


def serve(results, port: int = 5006, address: str = "127.0.0.1", show: bool = True, **kwargs) -> None:
    """Serve the dashboard over ``results`` (:func:`widgets.dashboard.serve`)."""
    from widgets.dashboard import serve as serve_dashboard
    serve_dashboard(results, port=port, address=address, show=show, **kwargs)


HOOKS = {"report": report, "serve": serve}


def register(app) -> None:
    """Add ``eoembed serve`` to the eoembed CLI."""
    import typer

    @app.command("serve")
    def serve_cmd(results: str = typer.Argument(..., help="Results folder written by `eoembed demo`."),
                  port: int = typer.Option(5006, help="Port to listen on."),
                  address: str = typer.Option("127.0.0.1", help="Address to bind (default: this machine only)."),
                  show: bool = typer.Option(True, help="Open a browser tab."),
                  allow_websocket_origin: Optional[List[str]] = typer.Option(
                      None, help="Extra allowed origins, e.g. '*' behind jupyter-server-proxy.")) -> None:
        """Serve the dashboard (map, sample viewer, UMAP, prefixes, training monitor, ablation) of RESULTS."""
        serve(results, port=port, address=address, show=show,
              allow_websocket_origin=list(allow_websocket_origin or []))
