"""Matryoshka prefixes at a glance: :class:`PrefixExplorer` (slider over k -> scores, storage, 2-D view).

Input is plain eoembed output: a (sample, feature) embedding whose first k coordinates are usable on their own
(a Matryoshka student or compressor; any embedding works, truncation is then simply worse), task labels, and
optionally a precomputed :func:`eoembed.compress.prefix_scores` table. Scores missing from that table (any k the
slider or the "any k" box asks for) are computed on demand with fast ridge probes (``mode="ridge"``; NOT
NeuCo-Bench) and kept, so each k is scored once.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from widgets.selection import Selection

STORAGE = ("bytes_float32", "bytes_float16", "bytes_int8")
TABLE_COLUMNS = ["method", "k", "q", "rel_q", *STORAGE]
_ids = itertools.count()


def _pca2(x: np.ndarray, seed: int = 0) -> np.ndarray:
    from eoembed.projection import REDUCERS
    return REDUCERS["pca"](x, 15, 0.1, seed)


class PrefixExplorer:
    """A slider over the prefixes k of an embedding updating a score table, a storage-vs-score figure and a 2-D
    view of ``embeddings[:, :k]``.

    embeddings: (sample, feature) DataArray. labels: labels DataFrame (index id, one column per task) or folder;
    needed unless ``scores`` covers every k asked for. scores: a :func:`~eoembed.compress.prefix_scores` table
    (columns method, k, q[, ...]); its "matryoshka" rows are the prefix curve, other methods (pca, random,
    unordered) are shown beside it at the same k. prefixes: the slider's stops (default: the table's k, else
    16/32/64/128 up to the width; the full width is always added). mode / folds: probes of on-demand scores.
    layout_cache: folder of cached layouts (:func:`eoembed.projection.umap_layout`); the 2-D view uses a cached
    UMAP of the prefix when there is one, else PCA of ``embeddings[:, :k]`` (fast). color_labels: extra columns
    (e.g. ``split``) to colour the 2-D view by. selection: the shared :class:`~widgets.Selection`.
    precompute: score every prefix now (progress bar) rather than as the slider reaches it (the storage-vs-score
    curve shows the prefixes scored so far). On-demand scoring of 200 samples x 11 tasks (ridge, 5 folds) took
    10-15 s per k on the busy 2-core test machine: precompute (or pass ``scores``) for a snappy dashboard.
    """

    def __init__(self, embeddings: xr.DataArray, labels: Any = None, scores: pd.DataFrame | None = None,
                 prefixes: Sequence[int] | None = None, k: int | None = None, mode: str = "ridge", folds: int = 5,
                 layout_cache: str | os.PathLike | None = None, color_labels: pd.DataFrame | None = None,
                 selection: Selection | None = None, name: str | None = None, precompute: bool = False,
                 progress: bool = True):
        import panel as pn

        from widgets.umap import UMAPExplorer

        if not isinstance(embeddings, xr.DataArray) or embeddings.dims != ("sample", "feature"):
            raise ValueError("embeddings must be a (sample, feature) DataArray, got "
                             f"{getattr(embeddings, 'dims', type(embeddings).__name__)}")
        self.embeddings = embeddings
        self.width = int(embeddings.sizes["feature"])
        self.labels = self._read_labels(labels)
        self.mode, self.folds, self.progress = mode, int(folds), progress
        self.layout_cache = layout_cache
        self.name = name or f"prefix-{next(_ids)}"
        self.scores = self._check_scores(scores)
        if prefixes is None:
            ks = sorted(set(self.scores.loc[self.scores.method == "matryoshka", "k"].astype(int))) if len(
                self.scores) else [k for k in (16, 32, 64, 128) if k < self.width]
        else:
            ks = sorted({int(k) for k in prefixes})
        bad = [k for k in ks if not 1 <= k <= self.width]
        if bad:
            raise ValueError(f"prefixes {bad} are outside 1..{self.width} (the embedding's width)")
        self.prefixes = sorted(set(ks) | {self.width})
        k0 = int(k) if k is not None else self.prefixes[0]
        self._check_k(k0)
        self.slider = pn.widgets.DiscreteSlider(label="prefix k", options=self.prefixes,
                                                value=k0 if k0 in self.prefixes else self.prefixes[0],
                                                css_classes=["eoembed-prefix-slider"], width=300)
        self.k_input = pn.widgets.IntInput(label="any k", start=1, end=self.width, value=k0,
                                           css_classes=["eoembed-prefix-k"], width=120)
        self.table = pn.widgets.DataFrame(pd.DataFrame(columns=TABLE_COLUMNS),  # bokeh DataTable: offline
                                          disabled=True, show_index=False, autosize_mode="force_fit",
                                          css_classes=["eoembed-prefix-table"],
                                          width=560)
        self.storage_pane = pn.pane.HoloViews(None, backend="bokeh", css_classes=["eoembed-prefix-storage"])
        todo: Any = self.prefixes if precompute else [k0, self.width]
        if precompute and progress:
            from tqdm.auto import tqdm
            todo = tqdm(todo, desc="prefix scores", unit="k")
        for kk in todo:
            self.score(kk)
        lay0 = self._layout(k0)
        self.view2d = UMAPExplorer({f"k={k0} ({lay0.attrs['method']})": lay0}, labels=color_labels, selection=selection,
                                   name=f"{self.name}-2d", width=420, height=380)
        self.selection = self.view2d.selection
        self.k = k0
        self._update()
        self.slider.param.watch(lambda e: self.set_k(e.new), "value")
        self.k_input.param.watch(lambda e: self.set_k(e.new), "value")

    # ------------------------------------------------------------------------------------------------ inputs
    @staticmethod
    def _read_labels(labels: Any) -> pd.DataFrame | None:
        if labels is None or isinstance(labels, pd.DataFrame):
            return labels
        from eoembed.data import read_labels
        return read_labels(labels)

    @staticmethod
    def _check_scores(scores: pd.DataFrame | None) -> pd.DataFrame:
        if scores is None:
            return pd.DataFrame(columns=["method", "k", "q"])
        missing = [c for c in ("method", "k", "q") if c not in scores.columns]
        if missing:
            raise ValueError(f"scores lack columns {missing}; pass eoembed.compress.prefix_scores(...) output")
        return scores.copy()

    def _check_k(self, k: int) -> None:
        if not 1 <= int(k) <= self.width:
            raise ValueError(f"k={k} is outside 1..{self.width} (the embedding's width)")

    # ------------------------------------------------------------------------------------------------ compute
    def prefix(self, k: int) -> xr.DataArray:
        """The first ``k`` coordinates of the embedding."""
        self._check_k(k)
        return self.embeddings.isel(feature=slice(0, int(k)))

    def score(self, k: int) -> float:
        """Q-bar of the k-prefix: from ``scores`` when there, else evaluated now (ridge probes) and kept."""
        k = int(k)
        self._check_k(k)
        hit = self.scores[(self.scores.method == "matryoshka") & (self.scores.k == k)]
        if len(hit):
            return float(hit["q"].iloc[0])
        if self.labels is None:
            raise ValueError(f"no score for k={k} in the scores table and no labels to compute it; pass labels=")
        from eoembed.bench import evaluate

        r = evaluate(self.prefix(k), self.labels, mode=self.mode, folds=self.folds, progress=False)
        row = pd.DataFrame([{"method": "matryoshka", "k": k, "q": float(r.overall_q),
                             "score": float(r.overall_acc), "source": f"{self.mode}, {self.folds} folds"}])
        self.scores = pd.concat([self.scores, row], ignore_index=True) if len(self.scores) else row
        return float(r.overall_q)

    def _layout(self, k: int) -> xr.DataArray:
        e = self.prefix(k)
        if self.layout_cache is not None:
            from eoembed.projection import cached_layout
            hit = cached_layout(e, cache_dir=self.layout_cache)
            if hit is not None:
                return hit
        ids = np.asarray([str(i) for i in e["sample"].values], dtype=object)
        return xr.DataArray(_pca2(np.asarray(e.values, np.float32)), dims=("sample", "component"),
                            coords={"sample": ids, "component": ["x", "y"]}, attrs={"method": "pca"})

    def score_table(self, k: int | None = None) -> pd.DataFrame:
        """Rows at prefix ``k`` (default the current one): the Matryoshka prefix, the baselines of ``scores`` at
        that k, and the full width for reference; q, rel_q (q / full-width q) and bytes per sample."""
        from eoembed.compress import storage_bytes

        k = self.k if k is None else int(k)
        self.score(k)
        full = self.score(self.width)
        s = self.scores
        rows = s[(s.k == k) | ((s.method == "matryoshka") & (s.k == self.width))]
        rows = rows.drop_duplicates(["method", "k"]).copy()
        rows["k"] = rows["k"].astype(int)
        rows["rel_q"] = rows["q"] / full
        for c in STORAGE:
            rows[c] = [storage_bytes(int(kk))[c] for kk in rows["k"]]
        order = {"matryoshka": 0}
        rows = rows.sort_values(["k", "method"], key=lambda c: c.map(order).fillna(1) if c.name == "method" else c,
                                kind="stable")
        return rows[TABLE_COLUMNS].reset_index(drop=True)

    def storage_frame(self) -> pd.DataFrame:
        """Bytes per sample (float32/float16/int8) against Q-bar for every scored Matryoshka prefix."""
        from eoembed.compress import storage_bytes

        m = self.scores[self.scores.method == "matryoshka"].drop_duplicates("k").sort_values("k")
        recs = [{"k": int(r.k), "q": float(r.q), "dtype": c.split("_")[1], "bytes": storage_bytes(int(r.k))[c]}
                for r in m.itertuples() for c in STORAGE]
        return pd.DataFrame(recs, columns=["k", "q", "dtype", "bytes"])

    # ------------------------------------------------------------------------------------------------ views
    def storage_plot(self):
        """Q-bar against bytes per sample, one curve per dtype; the current k marked."""
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401

        df = self.storage_frame()
        curves = [hv.Curve(g, "bytes", ["q", "k"], label=dt).opts(tools=["hover"], backend="bokeh")
                  for dt, g in df.groupby("dtype", sort=False)]
        cur = df[df.k == self.k]
        marks = hv.Scatter(cur, "bytes", ["q", "k", "dtype"], label=f"k={self.k}").opts(
            size=11, color="#ff7f0e", line_color="black", tools=["hover"], backend="bokeh")
        return hv.Overlay([*curves, marks]).opts(logx=True, width=420, height=300, xlabel="bytes per sample",
                                                 ylabel="Q-bar", title="storage vs score",
                                                 legend_position="bottom_right",
                                                 backend="bokeh")

    def set_k(self, k: int) -> None:
        """Show prefix ``k`` (what the slider and the "any k" box do)."""
        k = int(k)
        self._check_k(k)
        if k == getattr(self, "k", None):
            return
        self.k = k
        self._update()

    def _update(self) -> None:
        k = self.k
        self.table.value = self.score_table(k)
        self.storage_pane.object = self.storage_plot()
        lay = self._layout(k)
        self.view2d.set_layout(lay, name=f"k={k} ({lay.attrs['method']})")
        import param

        with param.discard_events(self.slider), param.discard_events(self.k_input):
            if k in self.prefixes:
                self.slider.value = k
            self.k_input.value = k

    # ------------------------------------------------------------------------------------------------ results
    @classmethod
    def from_results(cls, results_dir: str | os.PathLike, selection: Selection | None = None,
                     **kwargs: Any) -> "PrefixExplorer":
        """The compressor's embeddings (``embeddings.csv``) of a results folder with its labels; prefixes from the
        compressor's config when it was trained with Matryoshka prefixes; ``prefix_scores.csv`` when present."""
        from eoembed.projection import LAYOUTS_DIR, results_embeddings
        from widgets import _results

        root = os.fspath(results_dir)
        emb = results_embeddings(root, names=["fused_ae"])["fused_ae"]
        lab = _results.labels(root)
        tasks = lab.drop(columns=["split"]) if lab is not None and "split" in lab else lab
        if tasks is not None:
            tasks.attrs = dict(lab.attrs)
        sc_p = os.path.join(root, "prefix_scores.csv")
        kwargs.setdefault("scores", pd.read_csv(sc_p) if os.path.isfile(sc_p) else None)
        pref = _results.compressor_config(root).get("prefixes")
        if pref:
            kwargs.setdefault("prefixes", pref)
        kwargs.setdefault("layout_cache", os.path.join(root, LAYOUTS_DIR))
        kwargs.setdefault("color_labels", lab)
        return cls(emb, tasks, selection=selection, **kwargs)

    # ------------------------------------------------------------------------------------------------ display
    def __panel__(self):
        import panel as pn
        return pn.Column(pn.Row(self.slider, self.k_input), self.table,
                         pn.Row(self.storage_pane, self.view2d.__panel__()), name="Prefixes",
                         css_classes=["eoembed-prefix"])

    def _repr_mimebundle_(self, include=None, exclude=None):
        from widgets._display import mimebundle
        return mimebundle(self, include, exclude)

    def __repr__(self) -> str:
        return f"PrefixExplorer(width={self.width}, prefixes={self.prefixes}, k={self.k})"


__all__ = ["PrefixExplorer"]
