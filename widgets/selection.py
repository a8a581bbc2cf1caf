"""One shared selection of sample ids that every view follows and writes: :class:`Selection`.

>>> sel = Selection()
>>> seen = []
>>> sel.observe(lambda change: seen.append(change["new"]), names="ids")
>>> sel.set(["s1", "s2"], source="map")
>>> sel.ids, sel.source, seen
(('s1', 's2'), 'map', [('s1', 's2')])
"""
from __future__ import annotations

from collections.abc import Iterable

import traitlets


class Selection(traitlets.HasTraits):
    """Selected sample ids (strings, in the order given, no duplicates) and which view set them last.

    Views write with :meth:`set` and follow with ``selection.observe(callback, names="ids")``; a view should ignore
    changes whose :attr:`source` is itself, so that linked views never echo each other.
    """

    ids = traitlets.Tuple()
    source = traitlets.Unicode(allow_none=True, default_value=None)

    def set(self, ids: Iterable, source: str | None = None) -> None:
        """Replace the selection by ``ids`` (duplicates dropped, order kept); ``source`` names the writing view."""
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"Selection.set expects a list of sample ids, got the single string {ids!r}; "
                            f"wrap it in a list: [{ids!r}].")
        new = tuple(dict.fromkeys(str(i) for i in ids))
        with self.hold_trait_notifications():
            self.source = source
            self.ids = new

    def clear(self, source: str | None = None) -> None:
        """Select nothing."""
        self.set((), source=source)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, sample_id: object) -> bool:
        return str(sample_id) in self.ids

    def __repr__(self) -> str:
        shown = ", ".join(self.ids[:5]) + (", ..." if len(self.ids) > 5 else "")
        return f"Selection({len(self.ids)} ids: [{shown}], source={self.source!r})"
