"""jupyter-server-proxy entry (``jupyter_serverproxy_servers`` in pyproject.toml): the dashboard inside JupyterLab.

JupyterLab's launcher gets an "eoembed dashboard" tile; the dashboard answers at ``<jupyter>/eoembed-dashboard/
dashboard`` (the proxy starts ``eoembed serve`` on a free port on first visit). Every URL of the app is relative, so
it works under the proxy's prefix. The results folder is ``$EOEMBED_RESULTS`` (default ``out/demo``, what
``make demo`` / Binder's postBuild write).
"""
from __future__ import annotations

import os
import sys


def setup_dashboard() -> dict:
    """The jupyter-server-proxy server spec of ``eoembed serve`` (its ``{port}`` is filled in by the proxy)."""
    results = os.environ.get("EOEMBED_RESULTS", "out/demo")
    return {
        "command": [sys.executable, "-m", "eoembed.cli", "serve", results, "--port", "{port}", "--address",
                    "127.0.0.1", "--no-show", "--allow-websocket-origin", "*"],
        "absolute_url": False,  # the app sees /dashboard; its pages use relative URLs
        "timeout": 180,  # the first start imports torch and Panel
        "launcher_entry": {"title": "eoembed dashboard", "path_info": "eoembed-dashboard/dashboard"},
    }
