"""Interactive widgets for eoembed (UI layer; may import eoembed, never the other way round).

- :class:`LiveHistory`: live Q-bar / validation-MSE curves, a ``train_compressor`` callback.
- :class:`Selection`: the shared selection of sample ids that every view follows and writes.
- :func:`sample_map` / :class:`SampleMap`: sample locations on an ipyleaflet map with click selection.
- :class:`SampleViewer`: the four seasons (S2 RGB, S1 VV/VH) of the selected sample.
- ``python -m widgets.assets``: caches the offline basemap (Natural Earth land and country outlines).

Offline notebooks: run ``hv.extension('bokeh', inline=True)`` before displaying HoloViews-based widgets.
"""
from widgets.history import LiveHistory
from widgets.samplemap import SampleMap, locations, sample_map
from widgets.selection import Selection
from widgets.viewer import SampleViewer

__all__ = ["LiveHistory", "SampleMap", "SampleViewer", "Selection", "locations", "sample_map"]
