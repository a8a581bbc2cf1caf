"""Plugins: other packages add commands and demo steps to eoembed without eoembed importing them.

A plugin is a module named by an entry point of the group ``eoembed.plugins`` (pyproject)::

    [project.entry-points."eoembed.plugins"]
    widgets = "widgets.plugin"

It may define ``register(app)`` (adds ``eoembed`` CLI commands) and ``HOOKS``, a dict of named callables that the
pipeline calls by name (``"report"``: write ``OUT/report.html``; ``"serve"``: serve the dashboard). This is how
the UI layer (``widgets``, the ``ui`` extra) plugs into ``eoembed demo`` and ``eoembed serve`` while eoembed itself
never imports a UI library: the dependency points one way, from the UI to eoembed.
"""
from __future__ import annotations

import sys
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Callable

GROUP = "eoembed.plugins"


class PluginMissing(ImportError):
    """No installed plugin provides a hook (message says which extra to install)."""


def plugins() -> list[ModuleType]:
    """The plugin modules that are installed and import; a broken one is reported on stderr, not dropped silently."""
    out = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            out.append(ep.load())
        except ImportError as e:  # e.g. the UI extra's libraries are not installed
            print(f"eoembed: plugin {ep.name!r} ({ep.value}) is installed but does not import ({e}); "
                  "install its extra, e.g. `pip install -e '.[ui]'`", file=sys.stderr)
    return out


def hook(name: str) -> Callable[..., Any]:
    """The callable ``name`` of the first plugin offering it, else :class:`PluginMissing`."""
    for mod in plugins():
        fn = getattr(mod, "HOOKS", {}).get(name)
        if fn is not None:
            return fn
    raise PluginMissing(f"no installed eoembed plugin provides {name!r} (it comes with the UI layer: "
                        "`pip install -e '.[ui]'` in the eoembed checkout, or `make install`)")


def register_all(app: Any) -> None:
    """Let every installed plugin add its CLI commands to ``app``."""
    for mod in plugins():
        reg = getattr(mod, "register", None)
        if reg is not None:
            reg(app)
