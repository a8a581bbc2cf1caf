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
from widgets.ablation import AblationView
from widgets.history import LiveHistory
from widgets.prefix import PrefixExplorer
from widgets.samplemap import SampleMap, locations, sample_map
from widgets.selection import Selection
from widgets.umap import UMAPExplorer
from widgets.viewer import SampleViewer

__all__ = ["AblationView", "LiveHistory", "PrefixExplorer", "SampleMap", "SampleViewer", "Selection",
           "UMAPExplorer", "locations", "sample_map"]
