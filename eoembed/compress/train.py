"""Training of the compressor with in-loop NeuCo Q-bar, honest checkpoint selection, resume and export.

Protocol (see :func:`train_compressor`)
- The fused vector is split once (seeded) into train / validation samples (``val_fraction``). The autoencoder is
  trained on the train split only (it never sees labels); ``val_mse`` is the plain (unweighted) reconstruction MSE
  on the validation split, ``val_loss`` the weighted training loss on it.
- The labels are split once into a *selection* part and a *report* part (:func:`eoembed.compress.split_labels`):
  by samples (``select_fraction``, default half of the labelled samples, seeded by ``select_seed``) or by tasks
  (``select_tasks``, the others are reported), over all samples (``q_on="all"``) or the validation split
  (``q_on="val"``).
- Every ``eval_every`` epochs (and after the last epoch) the encoder embeds the samples and
  :func:`eoembed.bench.evaluate` scores them on each part with the same protocol: ``q_select``/``q_select/<task>``
  and ``q_report``/``q_report/<task>``.
- Selection: the epoch with the best ``q_select`` (earliest on ties) is selected; ``q_report`` is never used to
  choose, so the selected epoch's ``q_report`` is an unbiased score of the exported embeddings (its
  ``q_select``, a maximum over epochs, is optimistic). The best-``val_mse`` checkpoint is kept beside it. Without
  labels, selection falls back to ``val_mse``. Compare ``q_report`` with :meth:`TrainResult.null_control`.
- In-loop evaluation uses ``q_folds=IN_LOOP_Q_FOLDS`` = 40 folds, the full NeuCo-Bench protocol. Measured with
  benchmarks/bench_compress.py on the 2-core CPU machine (2,000 samples, 13,824 fused features, 11 tasks, default
  compressor): one epoch 26 s, one 40-fold evaluation of all samples 4.1 s, i.e. 3% of training time at
  eval_every=5 (the two halves of the split cost about as much as that one evaluation). Not measured on a GPU,
  where epochs are much faster: there raise ``eval_every`` or lower ``q_folds`` to stay under ~20%.
- Matryoshka compressor (``prefixes=(16, 32, ...)``): the loss is the mean over prefixes k of the weighted loss
  of the shared decoder fed the code with coordinates ``k:`` zeroed (:func:`eoembed.compress.model.matryoshka_loss`);
  every evaluation row also holds ``val_mse/k<k>``, ``val_loss/k<k>`` and, on the same selection/report split,
  ``q_select/k<k>`` and ``q_report/k<k>`` (the Q-bar of the first k coordinates), one curve per prefix. Selection
  stays on the full-size ``q_select`` unless ``select_prefix=k``. In-loop Q costs one more evaluation per
  smaller prefix (the full size is scored once). Measured with benchmarks/bench_matryoshka_compressor.py on the
  2-core CPU machine (demo store: 200 samples, 1,696 features, 11 tasks; hidden 2048, out_dim 128, prefixes
  16/32/64/128, ridge probe, 10 folds): per evaluation 2.4 s full size + 3.7 s for the 3 smaller prefixes
  (2.5x the plain compressor's in-loop Q time); training 0.45 s/epoch vs 0.30-0.44 s for a plain one (the shared
  decoder runs once per prefix). Budget about one extra full-size evaluation per prefix in the worst case
  (7 prefixes: up to ~7x); keep the overhead small with a larger ``eval_every`` or fewer ``q_folds``.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from eoembed import runtime
from eoembed.checks import check_choice, check_finite_matrix
from eoembed.compress.fusion import fuse, fused_slices, select_models
from eoembed.compress.model import (PRESETS, Compressor, CompressorConfig, check_prefixes, feature_weights,
                                    matryoshka_loss, prefix_masks, resolve_config, resolve_weights, weighted_mse)
from eoembed.compress.selection import SelectionSplit, _read_labels, score_split, split_labels
from eoembed.errors import DataError, DataFileNotFound, StoreError

__all__ = ["IN_LOOP_Q_FOLDS", "TrainResult", "train_compressor", "select_checkpoint", "encode",
           "export_embeddings", "load_checkpoint", "as_fused"]

#: In-loop folds for Q-bar: NeuCo's 40 (measured: ~3% of CPU training time at eval_every=5; see module doc).
IN_LOOP_Q_FOLDS = 40
CHECKPOINT_FORMAT = "eoembed.compressor/2"


def as_fused(store: Any, models: Sequence[str] | None = None) -> xr.DataArray:
    """A fused (sample, feature) array from a store path / dict (via :func:`fuse`) or an already fused array."""
    if isinstance(store, xr.DataArray) and "slices" in store.attrs:
        return select_models(store, models) if models is not None else store
    return fuse(store, models)


_device = runtime.resolve_device


def _fork_devices(dev: torch.device) -> list[int]:
    return [dev.index or 0] if dev.type == "cuda" else []


@torch.no_grad()
def encode(model: Compressor, x: np.ndarray | torch.Tensor, device: Any = None, batch_size: int = 1024,
           precision: str = "float32") -> np.ndarray:
    """Encoder output (n, out_dim) float32 of a (n, in_dim) array, in eval mode, batched, computed at
    ``precision`` (eoembed.runtime: "float32" default, "bf16" CUDA opt-in)."""
    dev = _device(device)
    was_training = model.training
    model.eval().to(dev)
    xt = torch.as_tensor(x, dtype=torch.float32)
    out = []
    for s in range(0, xt.shape[0], batch_size):
        xb = xt[s:s + batch_size]
        if dev.type == "cuda":
            xb = xb.pin_memory().to(dev, non_blocking=True)
        with runtime.compute(precision, dev):
            z = model.encode(xb)
        out.append(z.float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.out_dim), np.float32)


def _embedding_array(z: np.ndarray, fused: xr.DataArray, attrs: dict[str, Any]) -> xr.DataArray:
    coords = {"sample": fused["sample"].values, "feature": np.arange(z.shape[1])}
    for c in ("lat", "lon"):
        if c in fused.coords:
            coords[c] = ("sample", np.asarray(fused[c].values, dtype=np.float64))
    return xr.DataArray(z.astype(np.float32), dims=("sample", "feature"), coords=coords, name="embedding",
                        attrs=attrs)


def _column(h: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(h[name], errors="coerce") if name in h else pd.Series(np.nan, index=h.index)


def select_checkpoint(history: pd.DataFrame | Sequence[dict], prefix: int | None = None) -> dict[str, Any]:
    """Choose the epoch of a history on the selection curve only.

    prefix: choose on the Matryoshka prefix curve ``q_select/k<prefix>`` (its ``q_report/k<prefix>`` is returned
    as "q_report") instead of the full-size ``q_select``.

    Returns {"selected_epoch", "selection" ("q_select" | "val_mse" | "last"), "q_select" (the selected epoch's
    selection Q-bar), "q_report" (its reported Q-bar, never used to choose), "best_mse_epoch", "best_mse"}. The
    selected epoch has the best finite ``q_select`` (max, earliest on ties); without one the best ``val_mse``
    (min); without either the last epoch.
    """
    h = pd.DataFrame(list(history)) if not isinstance(history, pd.DataFrame) else history
    if h.empty or "epoch" not in h:
        raise ValueError("history is empty (no evaluation row); train for at least eval_every epochs")
    h = h.sort_values("epoch", kind="stable").reset_index(drop=True)
    sfx = "" if prefix is None else f"/k{int(prefix)}"
    if prefix is not None and f"q_select{sfx}" not in h:
        raise ValueError(f"history has no column 'q_select{sfx}'; prefix must be one of the trained prefixes")
    q, rep, mse = _column(h, f"q_select{sfx}"), _column(h, f"q_report{sfx}"), _column(h, "val_mse")
    res: dict[str, Any] = {"best_mse_epoch": None, "best_mse": float("nan")}
    if np.isfinite(mse).any():
        i = mse.where(np.isfinite(mse)).idxmin()
        res.update(best_mse_epoch=int(h.loc[i, "epoch"]), best_mse=float(mse[i]))
    if np.isfinite(q).any():
        i, how = q.where(np.isfinite(q)).idxmax(), "q_select"
    elif res["best_mse_epoch"] is not None:
        i, how = mse.where(np.isfinite(mse)).idxmin(), "val_mse"
    else:
        i, how = len(h) - 1, "last"
    res.update(selected_epoch=int(h.loc[i, "epoch"]), selection=how, q_select=float(q[i]), q_report=float(rep[i]))
    return res


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`train_compressor`. ``model``/``embeddings`` come from the selected epoch.

    q_select: the selected epoch's Q-bar on the selection part (it chose the epoch, so it is optimistic);
    q_report: its Q-bar on the report part (never used to choose): the number to report, beside
    :meth:`null_control`. split: the :class:`~eoembed.compress.SelectionSplit` (None without labels);
    q_kwargs: the :func:`eoembed.bench.evaluate` arguments of both curves.
    prefixes: the Matryoshka prefixes (None: plain compressor); :meth:`prefix_embeddings` gives the first k
    coordinates (= ``embeddings.isel(feature=slice(0, k))``), :meth:`prefix_scores` one row per prefix.
    select_prefix: the prefix whose ``q_select/k<k>`` chose the epoch (None: the full-size ``q_select``).
    """

    history: pd.DataFrame
    selected_epoch: int
    selection: str
    q_select: float
    q_report: float
    best_mse_epoch: int | None
    best_mse: float
    model: Compressor
    embeddings: xr.DataArray
    config: dict[str, Any]
    weights: dict[str, float]
    slices: dict[str, tuple[int, int]]
    val_ids: list[str]
    split: SelectionSplit | None = None
    q_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    precision: str = "float32"
    out: Path | None = None
    checkpoint: Path | None = None
    mse_checkpoint: Path | None = None
    prefixes: tuple[int, ...] | None = None
    select_prefix: int | None = None
    _mse_state: dict[str, Any] | None = dataclasses.field(default=None, repr=False)

    @property
    def models(self) -> list[str]:
        return list(self.slices)

    def prefix_embeddings(self, k: int) -> xr.DataArray:
        """The k-prefix embeddings ``embeddings.isel(feature=slice(0, k))`` (a usable code when k is one of the
        trained ``prefixes``; any 1 <= k <= out_dim is allowed, e.g. for a plain compressor's truncation)."""
        d = int(self.embeddings.sizes["feature"])
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
            raise ValueError(f"k={k!r} must be an integer in [1, {d}] (the embedding size)")
        out = self.embeddings.isel(feature=slice(0, int(k)))
        out.attrs = {**self.embeddings.attrs, "prefix": int(k)}
        return out

    def prefix_scores(self) -> pd.DataFrame:
        """One row per prefix k at the selected epoch: k, val_mse, q_select, q_report (from the history)."""
        if not self.prefixes:
            raise ValueError("this compressor was trained without prefixes; pass prefixes=(...) to train_compressor")
        row = self.history.loc[self.history["epoch"] == self.selected_epoch].iloc[-1]
        return pd.DataFrame([{"k": k, **{c: float(row.get(f"{c}/k{k}", np.nan))
                                         for c in ("val_mse", "q_select", "q_report")}} for k in self.prefixes])

    def load(self, which: str = "q") -> Compressor:
        """The compressor of the selected (``"q"``) or best-MSE (``"mse"``) checkpoint."""
        if which == "q":
            return self.model
        if which != "mse":
            raise ValueError(f"which must be 'q' or 'mse', got {which!r}")
        if self.mse_checkpoint is not None:
            return load_checkpoint(self.mse_checkpoint)[0]
        m = Compressor(self.model.in_dim, self.model.hidden, self.model.out_dim, self.model.dropout)
        m.load_state_dict(self._mse_state if self._mse_state is not None else self.model.state_dict())
        return m.eval()

    def encode(self, store: Any, which: str = "q", device: Any = None) -> xr.DataArray:
        """Embed a store / fused array (same models and feature layout as training) with the chosen checkpoint."""
        fused = as_fused(store, self.models)
        if fused_slices(fused) != {k: tuple(v) for k, v in self.slices.items()}:
            raise StoreError(f"the store's fused layout {fused_slices(fused)} differs from the trained layout "
                             f"{self.slices}; embed a store with the same models and embedding sizes")
        model = self.load(which)
        z = encode(model, fused.values, device, precision=self.precision)
        epoch = self.selected_epoch if which == "q" else self.best_mse_epoch
        return _embedding_array(z, fused, {"method": "autoencoder", "models": self.models, "epoch": epoch})

    def export(self, path: str | os.PathLike, dtype: str = "float16", overwrite: bool = False) -> Path:
        """Write the selected embeddings (see :func:`export_embeddings`)."""
        return export_embeddings(self.embeddings, path, dtype=dtype, overwrite=overwrite)

    def null_control(self, draws: int = 5, null_seed: int = 0, **evaluate_kwargs: Any) -> Any:
        """:func:`eoembed.bench.null_control` of the selected embeddings on the report part (labels permuted within
        each task), with the protocol of ``q_report`` (``q_kwargs``) unless overridden."""
        if self.split is None:
            raise ValueError("this run was trained without labels: there is no report set to control")
        from eoembed.bench.nulls import null_control

        return null_control(self.embeddings, self.split.report, draws=draws, null_seed=null_seed,
                            **{**self.q_kwargs, **evaluate_kwargs})


def _ids_hash(ids: Iterable[str]) -> str:
    return hashlib.sha1("\n".join(map(str, ids)).encode()).hexdigest()


def load_checkpoint(path: str | os.PathLike) -> tuple[Compressor, dict[str, Any]]:
    """(model in eval mode, checkpoint dict) of a checkpoint written by :func:`train_compressor`."""
    path = Path(path)
    if not path.exists():
        raise DataFileNotFound(f"checkpoint {str(path)!r} does not exist; list out/checkpoints/ for the kept ones")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or ck.get("format") not in (CHECKPOINT_FORMAT, "eoembed.compressor/1"):
        raise StoreError(f"{str(path)!r} is not an eoembed compressor checkpoint (format {CHECKPOINT_FORMAT})")
    a = ck["arch"]
    m = Compressor(a["in_dim"], a["hidden"], a["out_dim"], a["dropout"])
    m.load_state_dict(ck["model"])
    return m.eval(), ck


def _json_rows(rows: list[dict]) -> list[dict]:
    def clean(v: Any) -> Any:
        if isinstance(v, (float, np.floating)):
            return None if not np.isfinite(v) else float(v)
        if isinstance(v, np.integer):
            return int(v)
        return v
    return [{k: clean(v) for k, v in r.items()} for r in rows]


def _write_history(out: Path, rows: list[dict]) -> None:
    pd.DataFrame(rows).to_csv(out / "history.csv", index=False)
    tmp = out / "history.json.tmp"
    tmp.write_text(json.dumps(_json_rows(rows), indent=1))
    os.replace(tmp, out / "history.json")


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif json.dumps(va, sort_keys=True, default=str) != json.dumps(vb, sort_keys=True, default=str):
            out.append(f"{prefix}{k}: checkpoint={va!r} now={vb!r}")
    return out


@dataclasses.dataclass
class _Opts:
    """The options of :func:`train_compressor` (besides store and labels)."""

    models: Sequence[str] | None
    epochs: int | None
    eval_every: int
    callbacks: Sequence[Callable[[dict], Any]]
    out: str | os.PathLike | None
    val_fraction: float
    select_fraction: float
    select_tasks: Sequence[str] | None
    select_seed: int
    seed: int | None
    device: Any
    preset: str | None
    hidden: int | None
    out_dim: int | None
    dropout: float | None
    lr: float | None
    weight_decay: float | None
    batch_size: int | None
    weights: Any
    q_folds: int
    q_mode: str
    q_epochs: int | None
    q_on: str
    q_tasks: Sequence[str] | None
    resume: bool
    overwrite: bool
    keep_checkpoints: str
    progress: bool
    precision: str = "float32"
    prefixes: Sequence[int] | None = None
    select_prefix: int | None = None


def train_compressor(store: Any, labels: Any = None, *, models: Sequence[str] | None = None,
                     epochs: int | None = None, eval_every: int = 5, callbacks: Sequence[Callable[[dict], Any]] = (),
                     out: str | os.PathLike | None = None, val_fraction: float = 0.2, select_fraction: float = 0.5,
                     select_tasks: Sequence[str] | None = None, select_seed: int = 0, seed: int | None = None,
                     device: Any = None, preset: str | None = None, hidden: int | None = None,
                     out_dim: int | None = None, dropout: float | None = None, lr: float | None = None,
                     weight_decay: float | None = None, batch_size: int | None = None, weights: Any = None,
                     q_folds: int = IN_LOOP_Q_FOLDS, q_mode: str = "compat", q_epochs: int | None = None,
                     q_on: str = "all", q_tasks: Sequence[str] | None = None, resume: bool = True,
                     overwrite: bool = False, keep_checkpoints: str = "best", threads: int | None = None,
                     progress: bool = True, precision: str = "float32", prefixes: Sequence[int] | None = None,
                     select_prefix: int | None = None) -> TrainResult:
    """Train the fused-embedding compressor; evaluate, checkpoint, select on one part of the labels, report on
    the other (see the module doc for the protocol).

    store: emb.zarr path, {model: DataArray} or a fused array from :func:`fuse`; ``models`` picks/orders models.
    labels: labels folder / DataFrame (None: no Q-bar, selection by ``val_mse``).
    select_fraction / select_tasks / select_seed: the selection/report split of the labels
    (:func:`eoembed.compress.split_labels`; ``select_tasks`` selects on those tasks and reports the others).
    Hyper-parameters: library defaults = the "embed2scale" recipe with uniform loss weights and seed 1337;
    ``preset="embed2scale"`` adds the winners' per-model weights; explicit arguments override both.
    Every ``eval_every`` epochs and after the last: a history row {"epoch", "step", "lr", "train_loss",
    "val_mse", "val_loss", "mse/<model>", "q_select", "q_select/<task>", "q_report", "q_report/<task>",
    "time/..."} is appended, passed to each callback, written to ``out``/history.csv and history.json, and
    ``out``/checkpoints/epoch_NNNN.pt is saved.
    keep_checkpoints: "best" keeps the latest (for resume), selected and best-MSE checkpoints; "all" keeps every one.
    resume: continue from the latest checkpoint in ``out`` (its settings, data and split must match); with
    resume=False existing checkpoints are an error unless overwrite=True.
    threads: CPU intra-op threads while training (restored afterwards); None = 1 for small compressors
    (< 4M parameters, where OpenMP synchronisation costs more than it gains, 20x on a loaded 2-core machine),
    torch's current setting otherwise.
    precision: "float32" (default: full IEEE fp32 on any machine) or "bf16" (CUDA autocast opt-in); part of the
    resume fingerprint and recorded in the config, the embeddings' attrs and ``TrainResult.precision``.
    prefixes: None (default: the plain compressor, unchanged) or sorted unique code sizes <= out_dim, e.g.
    (16, 32, 64, 128, 256, 512, 1024): the Matryoshka compressor (module doc); out_dim is appended when missing.
    History rows gain ``val_mse/k<k>``, ``val_loss/k<k>``, ``q_select/k<k>``, ``q_report/k<k>``. Part of the resume
    fingerprint (resuming with other prefixes is refused). Each prefix adds one in-loop evaluation: raise
    ``eval_every`` (or lower ``q_folds``) to keep evaluation cheap.
    select_prefix: choose the epoch on ``q_select/k<select_prefix>`` (one of the prefixes) instead of the
    full-size ``q_select``.
    """
    dev = _device(device)
    runtime.check_precision(precision, dev)
    od = out_dim or (PRESETS[preset]["out_dim"] if preset in PRESETS else CompressorConfig.out_dim)
    _check_prefix_args(prefixes, select_prefix, int(od))
    if threads is None and dev.type == "cpu":
        fused = as_fused(store, models)
        store, models = fused, None
        d = fused.shape[1]
        h = hidden or (PRESETS[preset]["hidden"] if preset in PRESETS else CompressorConfig.hidden)
        o = out_dim or (PRESETS[preset]["out_dim"] if preset in PRESETS else CompressorConfig.out_dim)
        threads = 1 if d * h + h * o + o * d < 4_000_000 else None
    opts = _Opts(models=models, epochs=epochs, eval_every=eval_every, callbacks=callbacks, out=out,
                 val_fraction=val_fraction, select_fraction=select_fraction, select_tasks=select_tasks,
                 select_seed=select_seed, seed=seed, device=device, preset=preset, hidden=hidden, out_dim=out_dim,
                 dropout=dropout, lr=lr, weight_decay=weight_decay, batch_size=batch_size, weights=weights,
                 q_folds=q_folds, q_mode=q_mode, q_epochs=q_epochs, q_on=q_on, q_tasks=q_tasks, resume=resume,
                 overwrite=overwrite, keep_checkpoints=keep_checkpoints, progress=progress, precision=precision,
                 prefixes=prefixes, select_prefix=select_prefix)
    with runtime.compute(precision, dev, threads=threads):
        return _train(store, labels, opts)


@dataclasses.dataclass
class _Run:
    """State of one training run (built by :func:`_setup`)."""

    o: _Opts
    cfg: CompressorConfig
    cfg_d: dict[str, Any]
    fused: xr.DataArray
    slices: dict[str, tuple[int, int]]
    wts: dict[str, float]
    dev: torch.device
    train_idx: np.ndarray
    val_idx: np.ndarray
    split: SelectionSplit | None
    q_kwargs: dict[str, Any]
    fingerprint: dict[str, Any]
    model: Compressor
    opt: torch.optim.Optimizer
    sched: Any
    spe: int
    x_cpu: torch.Tensor
    x_dev: torch.Tensor
    fw: torch.Tensor
    out_p: Path | None
    ck_dir: Path | None
    mem_states: dict[int, dict] = dataclasses.field(default_factory=dict)
    prefixes: tuple[int, ...] | None = None
    masks: torch.Tensor | None = None

    @property
    def val_ids(self) -> list[str]:
        return [str(self.fused["sample"].values[i]) for i in self.val_idx]


def _check_prefix_args(prefixes: Any, select_prefix: Any, out_dim: int) -> tuple[int, ...] | None:
    """Validated prefixes (:func:`check_prefixes`); select_prefix must be one of them."""
    ks = check_prefixes(prefixes, out_dim)
    if select_prefix is not None and (ks is None or select_prefix not in ks):
        raise DataError(f"select_prefix={select_prefix!r} is not one of the trained prefixes {ks}; "
                        "pick one of them or leave it None (select on the full-size Q-bar)")
    return ks


def _check_options(o: _Opts) -> None:
    if o.eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {o.eval_every}")
    if not 0.0 < o.val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {o.val_fraction}")
    if o.select_tasks is None and not 0.0 < o.select_fraction < 1.0:
        raise ValueError(f"select_fraction must be in (0, 1), got {o.select_fraction}")
    if o.q_on not in ("all", "val"):
        raise ValueError(f"q_on must be 'all' or 'val', got {o.q_on!r}")
    if o.keep_checkpoints not in ("best", "all"):
        raise ValueError(f"keep_checkpoints must be 'best' or 'all', got {o.keep_checkpoints!r}")
    if o.q_folds < 2:
        raise ValueError(f"q_folds must be >= 2 (Q needs a spread over folds), got {o.q_folds}")
    check_choice("q_mode", o.q_mode, ("compat", "ridge"))


def _val_split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(val_idx, train_idx), sorted, of ``n`` samples (seeded permutation)."""
    n_val = int(round(val_fraction * n))
    if n < 2 or n_val < 1 or n_val > n - 1:
        raise StoreError(f"{n} samples cannot be split with val_fraction={val_fraction}; "
                         "use more samples or another val_fraction")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_val]), np.sort(perm[n_val:])


def _q_kwargs(o: _Opts) -> dict[str, Any]:
    """:func:`eoembed.bench.evaluate` arguments of the in-loop curves."""
    kw: dict[str, Any] = {"folds": int(o.q_folds), "mode": o.q_mode, "seed": 42, "progress": False}
    if o.q_epochs is not None:
        kw["epochs"] = int(o.q_epochs)
    if o.device is not None:
        kw["device"] = str(o.device)
    return kw


def _build(cfg: CompressorConfig, in_dim: int, n_train: int, dev: torch.device) -> tuple[Any, ...]:
    """(model, optimizer, scheduler, steps per epoch) of a fresh run."""
    with torch.random.fork_rng(devices=_fork_devices(dev)):
        torch.manual_seed(cfg.seed)
        model = Compressor(in_dim, cfg.hidden, cfg.out_dim, cfg.dropout)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    spe = math.ceil(n_train / cfg.batch_size)
    total = cfg.epochs * spe
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=sorted({max(1, int(round(f * total))) for f in cfg.milestones}), gamma=cfg.gamma)
    return model, opt, sched, spe


def _setup(store: Any, labels: Any, o: _Opts) -> _Run:
    """Resolve the config, fuse, split (train/val samples; selection/report labels), build model and tensors."""
    cfg = resolve_config(o.preset, hidden=o.hidden, out_dim=o.out_dim, dropout=o.dropout, lr=o.lr,
                         weight_decay=o.weight_decay, batch_size=o.batch_size, epochs=o.epochs, seed=o.seed,
                         weights=o.weights)
    prefixes = _check_prefix_args(o.prefixes, o.select_prefix, cfg.out_dim)
    fused = as_fused(store, o.models)
    check_finite_matrix(np.asarray(fused.values), fused["sample"].values, "train_compressor: fused embeddings")
    slices = fused_slices(fused)
    wts = resolve_weights(list(slices), cfg.weights, cfg.default_weight)
    ids = [str(s) for s in fused["sample"].values]
    val_idx, train_idx = _val_split(len(ids), o.val_fraction, cfg.seed)
    labels = _read_labels(labels)
    split = None
    if labels is not None:
        pool = [ids[i] for i in val_idx] if o.q_on == "val" else ids
        split = split_labels(labels, pool, select_fraction=o.select_fraction, select_tasks=o.select_tasks,
                             tasks=o.q_tasks, seed=o.select_seed)
    cfg_d = cfg.to_dict()
    cfg_d["weights"] = wts
    fingerprint = {"config": cfg_d, "in_dim": int(fused.shape[1]), "models": list(slices),
                   "ids_sha1": _ids_hash(ids), "val_ids_sha1": _ids_hash(ids[i] for i in val_idx),
                   "eval_every": o.eval_every, "val_fraction": o.val_fraction, "q_folds": o.q_folds,
                   "q_mode": o.q_mode, "q_epochs": o.q_epochs, "q_on": o.q_on,
                   "q_tasks": list(o.q_tasks) if o.q_tasks else None,
                   "selection": split.to_dict() if split is not None else None, "precision": o.precision}
    if prefixes is not None:  # absent for the plain compressor, so its older checkpoints still resume
        fingerprint.update(prefixes=list(prefixes), select_prefix=o.select_prefix)
    dev = _device(o.device)
    model, opt, sched, spe = _build(cfg, fused.shape[1], len(train_idx), dev)
    x_cpu = torch.from_numpy(np.ascontiguousarray(fused.values, dtype=np.float32))
    out_p = Path(o.out) if o.out is not None else None
    return _Run(o=o, cfg=cfg, cfg_d=cfg_d, fused=fused, slices=slices, wts=wts, dev=dev, train_idx=train_idx,
                val_idx=val_idx, split=split, q_kwargs=_q_kwargs(o), fingerprint=fingerprint, model=model, opt=opt,
                sched=sched, spe=spe, x_cpu=x_cpu,
                x_dev=x_cpu.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else x_cpu,
                fw=feature_weights(slices, wts, fused.shape[1]).to(dev), out_p=out_p,
                ck_dir=out_p / "checkpoints" if out_p is not None else None, prefixes=prefixes,
                masks=prefix_masks(prefixes, cfg.out_dim, dev) if prefixes is not None else None)


def _restore(run: _Run) -> tuple[list[dict], int]:
    """(history rows, first epoch to train): resume from the latest checkpoint in ``out`` when there is one."""
    o, ck_dir = run.o, run.ck_dir
    if ck_dir is None:
        return [], 1
    rows: list[dict] = []
    start = 1
    existing = sorted(ck_dir.glob("epoch_*.pt")) if ck_dir.exists() else []
    if existing and not o.resume:
        if not o.overwrite:
            raise FileExistsError(f"{str(ck_dir)!r} already holds checkpoints; pass resume=True to continue, "
                                  "overwrite=True to start again, or another out folder")
        for p in existing:
            p.unlink()
        existing = []
    if existing:
        last = max(existing, key=lambda p: int(p.stem.split("_")[1]))
        ck = torch.load(last, map_location="cpu", weights_only=False)
        diffs = _diff(ck.get("fingerprint", {}), run.fingerprint)
        if diffs:
            raise ValueError(f"cannot resume from {str(last)!r}: settings or data differ ({'; '.join(diffs)}). "
                             "Use the same settings, another out folder, or resume=False, overwrite=True.")
        run.model.load_state_dict(ck["model"])
        run.opt.load_state_dict(ck["optimizer"])
        run.sched.load_state_dict(ck["scheduler"])
        rows = list(ck["history"])
        start = int(ck["epoch"]) + 1
    ck_dir.mkdir(parents=True, exist_ok=True)
    (run.out_p / "config.json").write_text(json.dumps(run.fingerprint, indent=1, default=str))
    return rows, start


def _fit_epoch(run: _Run, epoch: int) -> tuple[float, int]:
    """One epoch over the train split (seeded order and dropout); (sum of sample losses, samples seen)."""
    cfg, dev = run.cfg, run.dev
    train_t = torch.from_numpy(run.train_idx).to(dev)
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    order = train_t[torch.randperm(len(run.train_idx), generator=g).to(dev)]
    loss_sum, loss_n = 0.0, 0
    with torch.random.fork_rng(devices=_fork_devices(dev)):
        torch.manual_seed(cfg.seed + 7919 * epoch)
        for b in range(run.spe):
            xb = run.x_dev[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
            if run.masks is None:
                _, rec = run.model(xb)   # at run.o.precision: train_compressor runs inside runtime.compute
                loss = weighted_mse(rec, xb, run.fw)
            else:  # Matryoshka: mean over prefixes of the weighted loss from the masked code
                loss, _ = matryoshka_loss(run.model, xb, run.fw, run.masks)
            run.opt.zero_grad(set_to_none=True)
            loss.backward()
            run.opt.step()
            run.sched.step()
            loss_sum += float(loss.detach()) * xb.shape[0]
            loss_n += xb.shape[0]
    return loss_sum, loss_n


@torch.no_grad()
def _val_mse(run: _Run) -> dict[str, float]:
    """{"val_mse", "val_loss", "mse/<model>"} of the current model on the validation split."""
    in_dim, n_val = run.fused.shape[1], len(run.val_idx)
    xv = run.x_dev[torch.from_numpy(run.val_idx).to(run.dev)]
    sq, wl = torch.zeros(in_dim, device=run.dev), torch.zeros((), device=run.dev)
    for s in range(0, xv.shape[0], 1024):
        xb = xv[s:s + 1024]
        _, rec = run.model(xb)
        d = (rec.float() - xb).pow(2)
        sq += d.sum(0)
        wl += (d * run.fw).sum()
    row = {"val_mse": float(sq.sum() / (n_val * in_dim)), "val_loss": float(wl / n_val)}
    for m, (s, e) in run.slices.items():
        row[f"mse/{m}"] = float(sq[s:e].sum() / (n_val * (e - s)))
    if run.prefixes is not None:
        sq_k = torch.zeros(len(run.prefixes), in_dim, device=run.dev)   # per prefix, summed squared errors
        for s in range(0, xv.shape[0], 1024):
            xb = xv[s:s + 1024]
            rec = run.model.decoder(run.model.encode(xb).unsqueeze(0) * run.masks.unsqueeze(1))
            sq_k += (rec.float() - xb.unsqueeze(0)).pow(2).sum(1)
        for i, k in enumerate(run.prefixes):
            row[f"val_mse/k{k}"] = float(sq_k[i].sum() / (n_val * in_dim))
            row[f"val_loss/k{k}"] = float((sq_k[i] * run.fw).sum() / n_val)
    return row


def _evaluate_row(run: _Run, epoch: int, train_loss: float, t_train: float) -> dict[str, Any]:
    """The history row of ``epoch``: losses, validation MSE, selection and report Q-bar, timings."""
    run.model.eval()
    t0 = time.perf_counter()
    row: dict[str, Any] = {"epoch": epoch, "step": epoch * run.spe, "lr": float(run.opt.param_groups[0]["lr"]),
                           "train_loss": train_loss, **_val_mse(run)}
    t1 = time.perf_counter()
    if run.split is not None:
        z = encode(run.model, run.x_cpu, run.dev, precision=run.o.precision)
        emb = _embedding_array(z, run.fused, {})
        row.update(score_split(emb, run.split, **run.q_kwargs))
        t2 = time.perf_counter()
        for k in run.prefixes or ():
            q = row if k == z.shape[1] else score_split(emb.isel(feature=slice(0, k)), run.split, **run.q_kwargs)
            row.update({f"q_select/k{k}": q["q_select"], f"q_report/k{k}": q["q_report"]})
    else:
        row.update(q_select=float("nan"), q_report=float("nan"))
        t2 = time.perf_counter()
        for k in run.prefixes or ():
            row.update({f"q_select/k{k}": float("nan"), f"q_report/k{k}": float("nan")})
    t3 = time.perf_counter()
    row.update({"time/train_s": t_train, "time/val_mse_s": t1 - t0, "time/q_s": t2 - t1})
    if run.prefixes is not None:
        row["time/q_prefix_s"] = t3 - t2
    run.model.train()
    return row


def _keep(run: _Run, rows: list[dict], epoch: int) -> None:
    """Checkpoint ``epoch`` (with ``out``: to disk, pruning to latest/selected/best-MSE unless keep "all"; without:
    in-memory copies of the selected and best-MSE states)."""
    sel = select_checkpoint(rows, run.o.select_prefix)
    best = {sel["selected_epoch"], sel["best_mse_epoch"]}
    if run.ck_dir is None:
        if epoch in best:
            run.mem_states[epoch] = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
        for e in list(run.mem_states):
            if e not in best:
                del run.mem_states[e]
        return
    cfg = run.cfg
    ck = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model": run.model.state_dict(),
          "optimizer": run.opt.state_dict(), "scheduler": run.sched.state_dict(), "history": rows,
          "fingerprint": run.fingerprint, "slices": {k: list(v) for k, v in run.slices.items()},
          "weights": run.wts, "val_ids": run.val_ids,
          "selection": {"select_ids": run.split.select_ids, "report_ids": run.split.report_ids,
                        "select_tasks": run.split.select_tasks, "report_tasks": run.split.report_tasks}
          if run.split is not None else None,
          "arch": {"in_dim": int(run.fused.shape[1]), "hidden": cfg.hidden, "out_dim": cfg.out_dim,
                   "dropout": cfg.dropout},
          "prefixes": list(run.prefixes) if run.prefixes is not None else None}
    path = run.ck_dir / f"epoch_{epoch:04d}.pt"
    torch.save(ck, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)
    _write_history(run.out_p, rows)
    if run.o.keep_checkpoints == "best":
        for p in run.ck_dir.glob("epoch_*.pt"):
            if int(p.stem.split("_")[1]) not in best | {epoch}:
                p.unlink()


def _loop(run: _Run, rows: list[dict], start: int) -> None:
    """Train epochs ``start..epochs``; evaluate, checkpoint and call back every ``eval_every`` and at the end."""
    o, epochs = run.o, run.cfg.epochs
    callbacks = [o.callbacks] if callable(o.callbacks) else list(o.callbacks)
    bar = None
    if o.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=start - 1, desc="train compressor", unit="epoch")
    run.model.train()
    t_train, loss_sum, loss_n = 0.0, 0.0, 0
    for epoch in range(start, epochs + 1):
        t0 = time.perf_counter()
        s, k = _fit_epoch(run, epoch)
        loss_sum, loss_n, t_train = loss_sum + s, loss_n + k, t_train + time.perf_counter() - t0
        if epoch % o.eval_every == 0 or epoch == epochs:
            since = epoch - (rows[-1]["epoch"] if rows else 0)
            row = _evaluate_row(run, epoch, loss_sum / max(loss_n, 1), t_train / max(1, since))
            rows.append(row)
            t_train, loss_sum, loss_n = 0.0, 0.0, 0
            _keep(run, rows, epoch)
            for cb in callbacks:
                cb(dict(row))
            if bar is not None:
                bar.set_postfix(loss=f"{row['train_loss']:.4g}", val_mse=f"{row['val_mse']:.4g}",
                                q_select=f"{row['q_select']:.3g}", q_report=f"{row['q_report']:.3g}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


def _state_of(run: _Run, epoch: int | None) -> tuple[dict | None, Path | None]:
    if epoch is None:
        return None, None
    if run.ck_dir is not None:
        p = run.ck_dir / f"epoch_{epoch:04d}.pt"
        return torch.load(p, map_location="cpu", weights_only=False)["model"], p
    return run.mem_states.get(epoch), None


def _result(run: _Run, rows: list[dict]) -> TrainResult:
    """The TrainResult of the selected epoch: its model, its embeddings of every sample, both Q-bars."""
    if not rows:
        raise ValueError("no evaluation row was made (epochs < 1)")
    sel = select_checkpoint(rows, run.o.select_prefix)
    best_state, best_path = _state_of(run, sel["selected_epoch"])
    mse_state, mse_path = _state_of(run, sel["best_mse_epoch"])
    cfg = run.cfg
    final = Compressor(run.fused.shape[1], cfg.hidden, cfg.out_dim, cfg.dropout)
    final.load_state_dict(best_state if best_state is not None else run.model.state_dict())
    final.eval()
    z = encode(final, run.x_cpu, run.dev, precision=run.o.precision)
    final.cpu()
    emb = _embedding_array(z, run.fused, {"method": "autoencoder", "models": list(run.slices),
                                          "epoch": sel["selected_epoch"], "selection": sel["selection"],
                                          "precision": run.o.precision,
                                          **({"prefixes": list(run.prefixes)} if run.prefixes else {})})
    return TrainResult(history=pd.DataFrame(rows), selected_epoch=sel["selected_epoch"],
                       selection=sel["selection"], q_select=sel["q_select"], q_report=sel["q_report"],
                       best_mse_epoch=sel["best_mse_epoch"], best_mse=sel["best_mse"], model=final, embeddings=emb,
                       config=run.cfg_d, weights=run.wts, slices=run.slices, val_ids=run.val_ids, split=run.split,
                       q_kwargs=dict(run.q_kwargs), precision=run.o.precision, out=run.out_p,
                       checkpoint=best_path, mse_checkpoint=mse_path,
                       _mse_state=copy.deepcopy(mse_state) if run.ck_dir is None else None,
                       prefixes=run.prefixes, select_prefix=run.o.select_prefix)


def _train(store: Any, labels: Any, o: _Opts) -> TrainResult:
    """The steps of :func:`train_compressor`: check, set up, restore, train + evaluate, pick the result."""
    _check_options(o)
    run = _setup(store, labels, o)
    rows, start = _restore(run)
    _loop(run, rows, start)
    return _result(run, rows)


def export_embeddings(embeddings: Any, path: str | os.PathLike, *, fmt: str | None = None, dtype: str = "float16",
                      overwrite: bool = False) -> Path:
    """Write (sample, feature) embeddings as a NeuCo-Bench CSV (``id,0..D-1``) or a Zarr store.

    embeddings: xr.DataArray (sample, feature) or a TrainResult. fmt: "csv" | "zarr" (default: from the suffix,
    ".csv" or ".zarr"). dtype: "float16" (as the challenge winners; CSV values are the float16 numbers) or
    "float32". The Zarr store holds variable "embedding" (sample, feature) with coords lat/lon and the attrs.
    """
    if isinstance(embeddings, TrainResult):
        embeddings = embeddings.embeddings
    if not isinstance(embeddings, xr.DataArray) or tuple(embeddings.dims) != ("sample", "feature"):
        raise ValueError("embeddings must be an xr.DataArray with dims ('sample', 'feature'), got "
                         f"{getattr(embeddings, 'dims', type(embeddings).__name__)}")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    path = Path(path)
    fmt = fmt or ("csv" if path.suffix == ".csv" else "zarr" if path.suffix == ".zarr" else None)
    if fmt not in ("csv", "zarr"):
        raise ValueError(f"cannot tell the format of {str(path)!r}; name it *.csv or *.zarr or pass fmt=")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True or another path")
    arr = np.asarray(embeddings.values)
    if not np.isfinite(arr).all():
        bad = np.where(~np.isfinite(arr).all(axis=1))[0]
        raise StoreError(f"embeddings of {bad.size} samples are not finite: "
                         f"{[str(embeddings['sample'].values[i]) for i in bad[:5]]}; nothing written")
    arr = arr.astype(dtype)
    if dtype == "float16" and not np.isfinite(arr).all():
        raise StoreError("values overflow float16 (|x| > 65504); export with dtype='float32'")
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = [str(s) for s in embeddings["sample"].values]
    if fmt == "csv":
        df = pd.DataFrame(arr, columns=[str(i) for i in range(arr.shape[1])])
        df.insert(0, "id", ids)
        tmp = path.with_name(path.name + ".tmp")
        df.to_csv(tmp, index=False)
        os.replace(tmp, path)
        return path
    coords: dict[str, Any] = {"sample": np.asarray(ids, dtype=str), "feature": np.arange(arr.shape[1])}
    for c in ("lat", "lon"):
        vals = embeddings[c].values if c in embeddings.coords else np.full(len(ids), np.nan)
        coords[c] = ("sample", np.asarray(vals, dtype=np.float64))
    attrs = {k: (v if isinstance(v, (str, int, float, bool, list)) or v is None else json.dumps(v, default=str))
             for k, v in embeddings.attrs.items()}
    ds = xr.Dataset({"embedding": (("sample", "feature"), arr)}, coords=coords, attrs=attrs)
    if path.exists():
        import shutil
        shutil.rmtree(path)
    ds.to_zarr(str(path), mode="w-", consolidated=False)
    return path
