"""The four seasons of one sample, optical and radar: :class:`SampleViewer`, following the shared Selection."""
from __future__ import annotations

import io
import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

#: Optical true colour, first modality found wins (L2A surface reflectance, then L1C top of atmosphere).
RGB = (("s2l2a/B04", "s2l2a/B03", "s2l2a/B02"), ("s2l1c/B04", "s2l1c/B03", "s2l1c/B02"))
#: Radar false colour: R = VV, G = VH, B = VV - VH (dB) (the usual Sentinel-1 dual-pol composite).
SAR = ("s1/VV", "s1/VH")


def _stretch(a: np.ndarray, lo: float = 2.0, hi: float = 98.0) -> np.ndarray:
    """Percentile stretch of each channel (last axis) to [0, 1] over all seasons (so seasons stay comparable)."""
    out = np.zeros(a.shape, np.float32)
    for c in range(a.shape[-1]):
        v = a[..., c]
        fin = v[np.isfinite(v)]
        if fin.size == 0:
            continue
        p0, p1 = np.percentile(fin, [lo, hi])
        out[..., c] = np.clip((v - p0) / ((p1 - p0) or 1.0), 0, 1)
    return np.nan_to_num(out, nan=0.0)


def sample_images(cube: Any, sample_id: str) -> dict[str, np.ndarray]:
    """``{'rgb': (season, y, x, 3), 'sar': (season, y, x, 3)}`` float arrays in [0, 1] for one sample of a cube
    (:func:`eoembed.data.open_cube`); a modality the cube lacks is absent from the dict."""
    from eoembed.errors import DataError

    if "bands" not in getattr(cube, "data_vars", {}):
        raise DataError("SampleViewer needs a cube Dataset with a 'bands' variable (eoembed.data.open_cube(root))")
    ids = [str(i) for i in cube["sample"].values]
    if str(sample_id) not in ids:
        raise KeyError(f"sample {sample_id!r} is not in this cube ({len(ids)} samples)")
    bands = set(map(str, cube["band"].values))
    rgb = next((b for b in RGB if set(b) <= bands), None)
    want = [*(rgb or ()), *(SAR if set(SAR) <= bands else ())]
    out: dict[str, np.ndarray] = {}
    if not want:
        return out
    v = np.asarray(cube["bands"].isel(sample=ids.index(str(sample_id))).sel(band=want).values, np.float32)
    if rgb is not None:  # (season, band, y, x)
        out["rgb"] = _stretch(np.moveaxis(v[:, :3], 1, -1))
    if set(SAR) <= bands:
        vv, vh = v[:, -2], v[:, -1]  # dB
        out["sar"] = _stretch(np.stack([vv, vh, vv - vh], axis=-1))
    return out


class SampleViewer:
    """Shows the four seasons (RGB from Sentinel-2, VV/VH false colour from Sentinel-1) of the selected sample.

    cube: ``eoembed.data.open_cube(root)`` (lazy; only the shown sample is read). selection: the shared
    :class:`~widgets.Selection` (new when None); the viewer follows it and shows its *last* id (the last clicked),
    never writes it. ``.sample`` is the sample shown (None: nothing selected), ``.png`` the rendered image.
    """

    def __init__(self, cube: Any, selection: Any = None, name: str = "viewer", size: float = 2.0):
        from widgets.selection import Selection

        self.cube = cube
        self.ids = [str(i) for i in cube["sample"].values]
        self._known = set(self.ids)
        self.selection = selection if selection is not None else Selection()
        self.name, self.size = name, float(size)
        self.seasons = [str(s) for s in cube["season"].values] if "season" in cube.dims else []
        self.sample: str | None = None
        self.png: bytes | None = None
        self._widget = None
        self._panes: weakref.WeakSet = weakref.WeakSet()
        self.selection.observe(self._follow, names="ids")
        self._follow({"new": self.selection.ids})

    def _follow(self, change: dict) -> None:
        mine = [i for i in change["new"] if i in self._known]
        self.show(mine[-1] if mine else None)

    def show(self, sample_id: str | None) -> None:
        """Show ``sample_id`` (None: show nothing) without changing the selection."""
        if sample_id is not None and str(sample_id) not in self._known:
            raise KeyError(f"sample {sample_id!r} is not in this viewer's cube ({len(self.ids)} samples)")
        self.sample = None if sample_id is None else str(sample_id)
        self.png = None if self.sample is None else self.render(self.sample)
        self._refresh()

    def render(self, sample_id: str) -> bytes:
        """PNG bytes of a mosaic: one row per modality (S2 RGB, then S1 VV/VH), one column per season."""
        from PIL import Image

        imgs = sample_images(self.cube, sample_id)
        rows = [imgs[k] for k in ("rgb", "sar") if k in imgs]
        if not rows:
            raise KeyError(f"the cube has neither S2 RGB bands {RGB[0]} nor S1 {SAR}; nothing to show")
        self.rows = [label for k, label in (("rgb", "S2 RGB"), ("sar", "S1 VV/VH")) if k in imgs]
        n, h, w, _ = rows[0].shape
        gap = 4
        mosaic = np.full((len(rows) * (h + gap) - gap, n * (w + gap) - gap, 3), 255, np.uint8)
        for r, arr in enumerate(rows):
            for s in range(n):
                mosaic[r * (h + gap):r * (h + gap) + h, s * (w + gap):s * (w + gap) + w] = (arr[s] * 255).astype(np.uint8)
        img = Image.fromarray(mosaic)
        scale = max(1, int(self.size * 64 // max(h, 1)))
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    def _caption(self) -> str:
        if self.sample is None:
            return "<i>select a sample (e.g. click one on the map) to see its four seasons</i>"
        seasons = " | ".join(self.seasons) or "time steps"
        return (f"<b>{self.sample}</b> ({len(self.selection.ids)} selected; showing the last)<br>"
                f"columns: {seasons}; rows: {', '.join(getattr(self, 'rows', []))}")

    def _refresh(self) -> None:
        if self._widget is not None:
            cap, img = self._widget.children
            cap.value = self._caption()
            img.value = self.png or b""
            img.layout.display = None if self.png else "none"
        for pane in list(self._panes):
            pane.objects = self._panel_objects()

    @property
    def widget(self):
        """The ipywidgets view (caption + image)."""
        if self._widget is None:
            import ipywidgets
            self._widget = ipywidgets.VBox([ipywidgets.HTML(), ipywidgets.Image(format="png")])
            self._widget.add_class("eoembed-viewer")
            self._refresh()
        return self._widget

    def _panel_objects(self) -> list:
        import panel as pn
        objs = [pn.pane.HTML(self._caption())]
        if self.png:
            objs.append(pn.pane.PNG(self.png, sizing_mode="scale_width", max_width=900))
        return objs

    def __panel__(self):
        """A Panel view (``pn.Column``) that follows the selection."""
        import panel as pn
        col = pn.Column(*self._panel_objects(), sizing_mode="stretch_width", css_classes=["eoembed-viewer"])
        self._panes.add(col)
        return col

    @classmethod
    def from_results(cls, results_dir: str | os.PathLike, selection: Any = None, **kwargs: Any) -> SampleViewer:
        """The viewer of ``<results_dir>/sample`` (as written by ``eoembed demo``) or of a sample root itself."""
        from eoembed.data import open_cube
        from eoembed.errors import DataFileNotFound
        p = Path(results_dir)
        root = next((c for c in (p / "sample", p) if (c / "data").is_dir() or (c / "meta.csv").is_file()), None)
        if root is None:
            raise DataFileNotFound(f"no sample dataset under {str(p)!r} (looked for sample/ and {p}); pass a "
                                   "results folder of `eoembed demo` or a sample root.")
        return cls(open_cube(root), selection=selection, **kwargs)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.widget._repr_mimebundle_(include=include, exclude=exclude)

    def __repr__(self) -> str:
        return f"SampleViewer({len(self.ids)} samples, showing {self.sample!r})"
