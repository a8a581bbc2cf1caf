"""Interactive widgets for eoembed (UI layer; may import eoembed, never the other way round).

- :class:`LiveHistory`: live Q-bar / validation-MSE curves, a ``train_compressor`` callback.
- :class:`Selection`: the shared selection of sample ids that every view follows and writes.
- :func:`sample_map` / :class:`SampleMap`: sample locations on an ipyleaflet map with click selection.
- :class:`SampleViewer`: the four seasons (S2 RGB, S1 VV/VH) of the selected sample.
- ``python -m widgets.assets``: caches the offline basemap (Natural Earth land and country outlines).
- :class:`UMAPExplorer`: 2-D layouts (eoembed.projection, cached UMAP) linked to the shared Selection.
- :class:`PrefixExplorer`: a slider over Matryoshka prefixes -> scores, storage vs score, 2-D view.
- :class:`AblationView`: ablation table and per-task heatmap; a row's history and UMAP on click.

Offline notebooks: run ``hv.extension('bokeh', inline=True)`` before displaying HoloViews-based widgets.
"""
import importlib
from typing import TYPE_CHECKING

#: public name -> module; imported on first use so `import widgets` (and the eoembed CLI plugin) stays light
_LAZY = {
    'AblationView': 'widgets.ablation',
    'LiveHistory': 'widgets.history',
    'PrefixExplorer': 'widgets.prefix',
    'SampleMap': 'widgets.samplemap',
    'locations': 'widgets.samplemap',
    'sample_map': 'widgets.samplemap',
    'Selection': 'widgets.selection',
    'UMAPExplorer': 'widgets.umap',
    'SampleViewer': 'widgets.viewer',
}

if TYPE_CHECKING:  # pragma: no cover
    from widgets.ablation import AblationView  # noqa: F401
    from widgets.history import LiveHistory  # noqa: F401
    from widgets.prefix import PrefixExplorer  # noqa: F401
    from widgets.samplemap import SampleMap  # noqa: F401
    from widgets.samplemap import locations  # noqa: F401
    from widgets.samplemap import sample_map  # noqa: F401
    from widgets.selection import Selection  # noqa: F401
    from widgets.umap import UMAPExplorer  # noqa: F401
    from widgets.viewer import SampleViewer  # noqa: F401


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'widgets' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["AblationView", "LiveHistory", "PrefixExplorer", "SampleMap", "SampleViewer", "Selection",
           "UMAPExplorer", "locations", "sample_map"]
