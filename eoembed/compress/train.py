"""Training of the compressor with in-loop NeuCo Q-bar, checkpoint selection, resume and export.

Protocol (see :func:`train_compressor`)
- The fused vector is split once (seeded) into train / validation samples (``val_fraction``). The autoencoder is
  trained on the train split only; ``val_mse`` is the plain (unweighted) reconstruction MSE on the validation
  split, ``val_loss`` the weighted training loss on it.
- Every ``eval_every`` epochs (and after the last epoch) the encoder embeds ALL samples (``q_on="all"``, default,
  as NeuCo-Bench scores every labelled sample with its own random splits) or only the validation samples
  (``q_on="val"``), and :func:`eoembed.bench.evaluate` scores them: ``q_bar`` plus ``q/<task>``.
- In-loop evaluation uses ``q_folds=IN_LOOP_Q_FOLDS`` = 40 folds, the full NeuCo-Bench protocol, so the in-loop
  Q-bar of the selected epoch is the score of the exported embeddings. Measured with
  benchmarks/bench_compress.py on the 2-core CPU machine (2,000 samples, 13,824 fused features, 11 tasks, default
  compressor): one epoch 26 s, one 40-fold evaluation 4.1 s, i.e. 3% of training time at eval_every=5 (16% even
  at eval_every=1). Not measured on a GPU, where epochs are much faster: there raise ``eval_every`` or lower
  ``q_folds`` (10 folds cost ~1/4 of 40) to stay under ~20%.
- Selection: the checkpoint with the best Q-bar (earliest on ties) is selected; the best-``val_mse`` checkpoint is
  kept beside it. Without labels, selection falls back to ``val_mse``.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
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

from eoembed.compress.fusion import fuse, fused_slices, select_models
from eoembed.compress.model import (PRESETS, Compressor, CompressorConfig, feature_weights, resolve_config,
                                    resolve_weights, weighted_mse)
from eoembed.errors import DataFileNotFound, LabelError, StoreError

__all__ = ["IN_LOOP_Q_FOLDS", "TrainResult", "train_compressor", "select_checkpoint", "encode",
           "export_embeddings", "load_checkpoint", "as_fused"]

#: In-loop folds for Q-bar: NeuCo's 40 (measured: ~3% of CPU training time at eval_every=5; see module doc).
IN_LOOP_Q_FOLDS = 40
CHECKPOINT_FORMAT = "eoembed.compressor/1"


def as_fused(store: Any, models: Sequence[str] | None = None) -> xr.DataArray:
    """A fused (sample, feature) array from a store path / dict (via :func:`fuse`) or an already fused array."""
    if isinstance(store, xr.DataArray) and "slices" in store.attrs:
        return select_models(store, models) if models is not None else store
    return fuse(store, models)


def _device(device: Any) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _fork_devices(dev: torch.device) -> list[int]:
    return [dev.index or 0] if dev.type == "cuda" else []


@torch.no_grad()
def encode(model: Compressor, x: np.ndarray | torch.Tensor, device: Any = None, batch_size: int = 1024) -> np.ndarray:
    """Encoder output (n, out_dim) float32 of a (n, in_dim) array, in eval mode, batched."""
    dev = _device(device)
    was_training = model.training
    model.eval().to(dev)
    xt = torch.as_tensor(x, dtype=torch.float32)
    out = []
    for s in range(0, xt.shape[0], batch_size):
        xb = xt[s:s + batch_size]
        if dev.type == "cuda":
            xb = xb.pin_memory().to(dev, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                z = model.encode(xb)
        else:
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


def select_checkpoint(history: pd.DataFrame | Sequence[dict]) -> dict[str, Any]:
    """Pick checkpoints from a history: best ``q_bar`` (max, earliest on ties) and best ``val_mse`` (min).

    Returns {"selected_epoch", "selection" ("q_bar" | "val_mse"), "best_q_epoch", "best_q", "best_mse_epoch",
    "best_mse"}; the selected epoch is the best-Q one, or the best-MSE one when no row has a finite Q-bar.
    """
    h = pd.DataFrame(list(history)) if not isinstance(history, pd.DataFrame) else history
    if h.empty or "epoch" not in h:
        raise ValueError("history is empty (no evaluation row); train for at least eval_every epochs")
    h = h.sort_values("epoch", kind="stable")
    q = pd.to_numeric(h.get("q_bar", pd.Series(np.nan, index=h.index)), errors="coerce")
    mse = pd.to_numeric(h.get("val_mse", pd.Series(np.nan, index=h.index)), errors="coerce")
    res: dict[str, Any] = {"best_q_epoch": None, "best_q": float("nan"), "best_mse_epoch": None,
                           "best_mse": float("nan")}
    if np.isfinite(q).any():
        i = q.where(np.isfinite(q)).idxmax()
        res.update(best_q_epoch=int(h.loc[i, "epoch"]), best_q=float(q[i]))
    if np.isfinite(mse).any():
        i = mse.where(np.isfinite(mse)).idxmin()
        res.update(best_mse_epoch=int(h.loc[i, "epoch"]), best_mse=float(mse[i]))
    if res["best_q_epoch"] is not None:
        res.update(selected_epoch=res["best_q_epoch"], selection="q_bar")
    elif res["best_mse_epoch"] is not None:
        res.update(selected_epoch=res["best_mse_epoch"], selection="val_mse")
    else:
        res.update(selected_epoch=int(h["epoch"].iloc[-1]), selection="last")
    return res


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`train_compressor`. ``model``/``embeddings`` come from the selected (best Q-bar) epoch."""

    history: pd.DataFrame
    selected_epoch: int
    selection: str
    best_q_epoch: int | None
    best_q: float
    best_mse_epoch: int | None
    best_mse: float
    model: Compressor
    embeddings: xr.DataArray
    config: dict[str, Any]
    weights: dict[str, float]
    slices: dict[str, tuple[int, int]]
    val_ids: list[str]
    out: Path | None = None
    checkpoint: Path | None = None
    mse_checkpoint: Path | None = None
    _mse_state: dict[str, Any] | None = dataclasses.field(default=None, repr=False)

    @property
    def models(self) -> list[str]:
        return list(self.slices)

    def load(self, which: str = "q") -> Compressor:
        """The compressor of the best-Q (``"q"``, selected) or best-MSE (``"mse"``) checkpoint."""
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
        z = encode(model, fused.values, device)
        epoch = self.selected_epoch if which == "q" else self.best_mse_epoch
        return _embedding_array(z, fused, {"method": "autoencoder", "models": self.models, "epoch": epoch})

    def export(self, path: str | os.PathLike, dtype: str = "float16", overwrite: bool = False) -> Path:
        """Write the selected embeddings (see :func:`export_embeddings`)."""
        return export_embeddings(self.embeddings, path, dtype=dtype, overwrite=overwrite)


def _ids_hash(ids: Iterable[str]) -> str:
    return hashlib.sha1("\n".join(map(str, ids)).encode()).hexdigest()


def load_checkpoint(path: str | os.PathLike) -> tuple[Compressor, dict[str, Any]]:
    """(model in eval mode, checkpoint dict) of a checkpoint written by :func:`train_compressor`."""
    path = Path(path)
    if not path.exists():
        raise DataFileNotFound(f"checkpoint {str(path)!r} does not exist; list out/checkpoints/ for the kept ones")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
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


def _read_labels(labels: Any) -> Any:
    if labels is None or isinstance(labels, pd.DataFrame):
        return labels
    if isinstance(labels, (str, os.PathLike)):
        p = Path(labels)
        if not p.exists():
            raise DataFileNotFound(f"labels folder {str(p)!r} does not exist; pass a NeuCo-Bench labels folder "
                                   "(<task>__<type>.csv files) or a labels DataFrame")
        try:
            from eoembed.data import read_labels  # type: ignore[attr-defined]
        except ImportError:
            return labels  # eoembed.bench.evaluate reads folders itself
        return read_labels(p)
    raise LabelError(f"labels must be a folder path or a labels DataFrame, got {type(labels).__name__}")


def _q_evaluator(labels: Any, q_folds: int, q_mode: str, q_epochs: int | None, q_tasks: Any,
                 device: Any) -> Callable[[xr.DataArray], tuple[float, dict[str, float]]] | None:
    if labels is None:
        return None
    try:
        from eoembed.bench import evaluate  # type: ignore[attr-defined]
    except ImportError as e:
        raise ImportError("in-loop Q-bar needs eoembed.bench.evaluate, which is not importable; "
                          "pass labels=None to train on reconstruction only") from e
    params = inspect.signature(evaluate).parameters
    kw: dict[str, Any] = {"folds": int(q_folds), "mode": q_mode, "seed": 42, "progress": False}
    if q_epochs is not None:
        kw["epochs"] = int(q_epochs)
    if q_tasks is not None:
        kw["tasks"] = list(q_tasks)
    if device is not None and "device" in params:
        kw["device"] = str(device)
    kw = {k: v for k, v in kw.items() if k in params}

    def run(emb: xr.DataArray) -> tuple[float, dict[str, float]]:
        res = evaluate(emb, labels, **kw)
        per = {f"q/{t}": float(v) for t, v in res.per_task["q_stat"].items()}
        return float(res.overall_q), per
    return run


def _config_fingerprint(cfg: dict, fused: xr.DataArray, val_ids: list[str], extra: dict) -> dict[str, Any]:
    return {"config": cfg, "in_dim": int(fused.shape[1]), "models": list(fused_slices(fused)),
            "ids_sha1": _ids_hash(fused["sample"].values), "val_ids_sha1": _ids_hash(val_ids), **extra}


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


def train_compressor(store: Any, labels: Any = None, *, models: Sequence[str] | None = None,
                     epochs: int | None = None, eval_every: int = 5, callbacks: Sequence[Callable[[dict], Any]] = (),
                     out: str | os.PathLike | None = None, val_fraction: float = 0.2, seed: int | None = None,
                     device: Any = None, preset: str | None = None, hidden: int | None = None,
                     out_dim: int | None = None, dropout: float | None = None, lr: float | None = None,
                     weight_decay: float | None = None, batch_size: int | None = None, weights: Any = None,
                     q_folds: int = IN_LOOP_Q_FOLDS, q_mode: str = "compat", q_epochs: int | None = None,
                     q_on: str = "all", q_tasks: Sequence[str] | None = None, resume: bool = True,
                     overwrite: bool = False, keep_checkpoints: str = "best", threads: int | None = None,
                     progress: bool = True) -> TrainResult:
    """Train the fused-embedding compressor; evaluate, checkpoint and select by Q-bar.

    store: emb.zarr path, {model: DataArray} or a fused array from :func:`fuse`; ``models`` picks/orders models.
    labels: labels folder / DataFrame (None: no Q-bar, selection by ``val_mse``).
    Hyper-parameters: library defaults = the "embed2scale" recipe with uniform loss weights and seed 1337;
    ``preset="embed2scale"`` adds the winners' per-model weights; explicit arguments override both.
    Every ``eval_every`` epochs and after the last: a history row {"epoch", "step", "lr", "train_loss",
    "val_mse", "val_loss", "mse/<model>", "q_bar", "q/<task>", "time/..."} is appended, passed to each callback,
    written to ``out``/history.csv and history.json, and ``out``/checkpoints/epoch_NNNN.pt is saved.
    keep_checkpoints: "best" keeps the latest (for resume), best-Q and best-MSE checkpoints; "all" keeps every one.
    resume: continue from the latest checkpoint in ``out`` (its settings and data must match); with
    resume=False existing checkpoints are an error unless overwrite=True.
    threads: CPU intra-op threads while training (restored afterwards); None = 1 for small compressors
    (< 4M parameters, where OpenMP synchronisation costs more than it gains, 20x on a loaded 2-core machine),
    torch's current setting otherwise.
    """
    dev = _device(device)
    before = torch.get_num_threads()
    if threads is None and dev.type == "cpu":
        fused = as_fused(store, models)
        store, models = fused, None
        d = fused.shape[1]
        h = hidden or (PRESETS[preset]["hidden"] if preset in PRESETS else CompressorConfig.hidden)
        o = out_dim or (PRESETS[preset]["out_dim"] if preset in PRESETS else CompressorConfig.out_dim)
        threads = 1 if d * h + h * o + o * d < 4_000_000 else None
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _train(store, labels, models=models, epochs=epochs, eval_every=eval_every, callbacks=callbacks,
                      out=out, val_fraction=val_fraction, seed=seed, device=device, preset=preset, hidden=hidden,
                      out_dim=out_dim, dropout=dropout, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                      weights=weights, q_folds=q_folds, q_mode=q_mode, q_epochs=q_epochs, q_on=q_on,
                      q_tasks=q_tasks, resume=resume, overwrite=overwrite, keep_checkpoints=keep_checkpoints,
                      progress=progress)
    finally:
        torch.set_num_threads(before)


def _train(store: Any, labels: Any, *, models: Sequence[str] | None, epochs: int | None, eval_every: int,
           callbacks: Sequence[Callable[[dict], Any]], out: str | os.PathLike | None, val_fraction: float,
           seed: int | None, device: Any, preset: str | None, hidden: int | None, out_dim: int | None,
           dropout: float | None, lr: float | None, weight_decay: float | None, batch_size: int | None,
           weights: Any, q_folds: int, q_mode: str, q_epochs: int | None, q_on: str, q_tasks: Sequence[str] | None,
           resume: bool, overwrite: bool, keep_checkpoints: str, progress: bool) -> TrainResult:
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if q_on not in ("all", "val"):
        raise ValueError(f"q_on must be 'all' or 'val', got {q_on!r}")
    if keep_checkpoints not in ("best", "all"):
        raise ValueError(f"keep_checkpoints must be 'best' or 'all', got {keep_checkpoints!r}")
    if q_folds < 2:
        raise ValueError(f"q_folds must be >= 2 (Q needs a spread over folds), got {q_folds}")
    callbacks = [callbacks] if callable(callbacks) else list(callbacks)
    cfg = resolve_config(preset, hidden=hidden, out_dim=out_dim, dropout=dropout, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size, epochs=epochs, seed=seed, weights=weights)
    from eoembed.checks import check_choice, check_finite_matrix
    check_choice("q_mode", q_mode, ("compat", "ridge"))
    fused = as_fused(store, models)
    check_finite_matrix(np.asarray(fused.values), fused["sample"].values, "train_compressor: fused embeddings")
    slices = fused_slices(fused)
    mnames = list(slices)
    wts = resolve_weights(mnames, cfg.weights, cfg.default_weight)
    ids = [str(s) for s in fused["sample"].values]
    n, in_dim = fused.shape
    n_val = int(round(val_fraction * n))
    if n < 2 or n_val < 1 or n_val > n - 1:
        raise StoreError(f"{n} samples cannot be split with val_fraction={val_fraction}; "
                         "use more samples or another val_fraction")
    perm = np.random.default_rng(cfg.seed).permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    val_ids = [ids[i] for i in val_idx]
    dev = _device(device)
    qeval = _q_evaluator(_read_labels(labels), q_folds, q_mode, q_epochs, q_tasks, device)

    cfg_d = cfg.to_dict()
    cfg_d["weights"] = wts
    fingerprint = _config_fingerprint(cfg_d, fused, val_ids, {
        "eval_every": eval_every, "val_fraction": val_fraction, "q_folds": q_folds, "q_mode": q_mode,
        "q_epochs": q_epochs, "q_on": q_on, "q_tasks": list(q_tasks) if q_tasks else None,
        "labels": qeval is not None})

    # model / optimiser / schedule
    with torch.random.fork_rng(devices=_fork_devices(dev)):
        torch.manual_seed(cfg.seed)
        model = Compressor(in_dim, cfg.hidden, cfg.out_dim, cfg.dropout)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    spe = math.ceil(len(train_idx) / cfg.batch_size)
    total = cfg.epochs * spe
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=sorted({max(1, int(round(f * total))) for f in cfg.milestones}), gamma=cfg.gamma)

    out_p = Path(out) if out is not None else None
    ck_dir = out_p / "checkpoints" if out_p is not None else None
    rows: list[dict] = []
    start = 1
    if ck_dir is not None:
        existing = sorted(ck_dir.glob("epoch_*.pt")) if ck_dir.exists() else []
        if existing and not resume:
            if not overwrite:
                raise FileExistsError(f"{str(ck_dir)!r} already holds checkpoints; pass resume=True to continue, "
                                      "overwrite=True to start again, or another out folder")
            for p in existing:
                p.unlink()
            existing = []
        if existing:
            last = max(existing, key=lambda p: int(p.stem.split("_")[1]))
            ck = torch.load(last, map_location="cpu", weights_only=False)
            diffs = _diff(ck.get("fingerprint", {}), fingerprint)
            if diffs:
                raise ValueError(f"cannot resume from {str(last)!r}: settings or data differ ({'; '.join(diffs)}). "
                                 "Use the same settings, another out folder, or resume=False, overwrite=True.")
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            rows = list(ck["history"])
            start = int(ck["epoch"]) + 1
        ck_dir.mkdir(parents=True, exist_ok=True)
        (out_p / "config.json").write_text(json.dumps(fingerprint, indent=1, default=str))

    x_cpu = torch.from_numpy(np.ascontiguousarray(fused.values, dtype=np.float32))
    x_dev = x_cpu.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else x_cpu
    fw = feature_weights(slices, wts, in_dim).to(dev)
    train_t = torch.from_numpy(train_idx).to(dev)
    val_t = torch.from_numpy(val_idx).to(dev)
    mem_states: dict[int, dict] = {}

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast(
            "cpu", enabled=False)

    @torch.no_grad()
    def evaluate_now(epoch: int, train_loss: float, t_train: float) -> dict:
        t0 = time.perf_counter()
        model.eval()
        xv = x_dev[val_t]
        sq, wl = torch.zeros(in_dim, device=dev), torch.zeros((), device=dev)
        for s in range(0, xv.shape[0], 1024):
            xb = xv[s:s + 1024]
            with autocast():
                _, rec = model(xb)
            d = (rec.float() - xb).pow(2)
            sq += d.sum(0)
            wl += (d * fw).sum()
        row: dict[str, Any] = {"epoch": epoch, "step": epoch * spe, "lr": float(opt.param_groups[0]["lr"]),
                               "train_loss": train_loss, "val_mse": float(sq.sum() / (n_val * in_dim)),
                               "val_loss": float(wl / n_val)}
        for m, (s, e) in slices.items():
            row[f"mse/{m}"] = float(sq[s:e].sum() / (n_val * (e - s)))
        t_mse = time.perf_counter() - t0
        q_bar, per = float("nan"), {}
        t1 = time.perf_counter()
        if qeval is not None:
            sel = val_idx if q_on == "val" else np.arange(n)
            xs = x_cpu if q_on == "all" else x_cpu[torch.from_numpy(sel)]
            z = encode(model, xs, dev)
            q_bar, per = qeval(_embedding_array(z, fused if q_on == "all" else fused.isel(sample=sel), {}))
        row["q_bar"] = q_bar
        row.update(per)
        row.update({"time/train_s": t_train, "time/val_mse_s": t_mse, "time/q_s": time.perf_counter() - t1})
        model.train()
        return row

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.epochs, initial=start - 1, desc="train compressor", unit="epoch")
    model.train()
    t_train, loss_sum, loss_n = 0.0, 0.0, 0
    for epoch in range(start, cfg.epochs + 1):
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        order = train_t[torch.randperm(len(train_idx), generator=g).to(dev)]
        with torch.random.fork_rng(devices=_fork_devices(dev)):
            torch.manual_seed(cfg.seed + 7919 * epoch)
            for b in range(spe):
                xb = x_dev[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
                with autocast():
                    _, rec = model(xb)
                loss = weighted_mse(rec, xb, fw)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * xb.shape[0]
                loss_n += xb.shape[0]
        t_train += time.perf_counter() - t0
        if epoch % eval_every == 0 or epoch == cfg.epochs:
            row = evaluate_now(epoch, loss_sum / max(loss_n, 1), t_train / max(1, epoch - (rows[-1]["epoch"]
                                                                                          if rows else 0)))
            rows.append(row)
            t_train, loss_sum, loss_n = 0.0, 0.0, 0
            sel = select_checkpoint(rows)
            keep = {epoch, sel["best_q_epoch"], sel["best_mse_epoch"]}
            if ck_dir is not None:
                ck = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model": model.state_dict(),
                      "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "history": rows,
                      "fingerprint": fingerprint, "slices": {k: list(v) for k, v in slices.items()},
                      "weights": wts, "val_ids": val_ids,
                      "arch": {"in_dim": in_dim, "hidden": cfg.hidden, "out_dim": cfg.out_dim, "dropout": cfg.dropout}}
                path = ck_dir / f"epoch_{epoch:04d}.pt"
                torch.save(ck, str(path) + ".tmp")
                os.replace(str(path) + ".tmp", path)
                _write_history(out_p, rows)
                if keep_checkpoints == "best":
                    for p in ck_dir.glob("epoch_*.pt"):
                        if int(p.stem.split("_")[1]) not in keep:
                            p.unlink()
            else:
                best = {sel["best_q_epoch"], sel["best_mse_epoch"]}
                if epoch in best:
                    mem_states[epoch] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                for e in list(mem_states):
                    if e not in best:
                        del mem_states[e]
            for cb in callbacks:
                cb(dict(row))
            if bar is not None:
                bar.set_postfix(loss=f"{row['train_loss']:.4g}", val_mse=f"{row['val_mse']:.4g}",
                                q_bar=f"{row['q_bar']:.3g}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if not rows:
        raise ValueError("no evaluation row was made (epochs < 1)")

    sel = select_checkpoint(rows)

    def state_of(epoch: int | None) -> tuple[dict | None, Path | None]:
        if epoch is None:
            return None, None
        if ck_dir is not None:
            p = ck_dir / f"epoch_{epoch:04d}.pt"
            return torch.load(p, map_location="cpu", weights_only=False)["model"], p
        return mem_states.get(epoch), None

    best_state, best_path = state_of(sel["selected_epoch"])
    mse_state, mse_path = state_of(sel["best_mse_epoch"])
    final = Compressor(in_dim, cfg.hidden, cfg.out_dim, cfg.dropout)
    final.load_state_dict(best_state if best_state is not None else model.state_dict())
    final.eval()
    z = encode(final, x_cpu, dev)
    final.cpu()
    emb = _embedding_array(z, fused, {"method": "autoencoder", "models": mnames, "epoch": sel["selected_epoch"],
                                      "selection": sel["selection"]})
    history = pd.DataFrame(rows)
    return TrainResult(history=history, selected_epoch=sel["selected_epoch"], selection=sel["selection"],
                       best_q_epoch=sel["best_q_epoch"], best_q=sel["best_q"], best_mse_epoch=sel["best_mse_epoch"],
                       best_mse=sel["best_mse"], model=final, embeddings=emb, config=cfg_d, weights=wts,
                       slices=slices, val_ids=val_ids, out=out_p, checkpoint=best_path, mse_checkpoint=mse_path,
                       _mse_state=copy.deepcopy(mse_state) if ck_dir is None else None)


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
