"""Matryoshka distillation: a student whose every prefix s[:k] is a usable embedding, and prefix evaluation.

Distillation (:func:`distill`, TESSERA's recipe, ``../shared/docs/tessera.md``)
- Teacher t in R^{d_T}: a (sample, feature) array, one model of an embedding store, an exported Zarr/NeuCo CSV.
  Its vectors are read once (cached in memory per file; with ``out`` also on disk as ``teacher.npz``) and
  centred over the samples (cosine is not shift-invariant: a common offset would dominate every target).
- Student: an MLP over ``inputs`` (per-feature standardisation -> Linear(in, hidden) -> GELU -> Linear(hidden,
  out_dim)). ``inputs`` is any (sample, feature) array aligned by sample id with the teacher (fused FM embeddings,
  flattened per-pixel series, raw-band features); default: the teacher vectors themselves (a Matryoshka
  compression of the teacher). No pixel encoder yet: per-pixel series go in flattened.
- For each prefix k a linear head h_k: R^k -> R^{d_T}; loss = sum_k (1 - cos(h_k(s[:k]), t)). The heads exist only
  during training: the returned :class:`Student` has none, its output is the out_dim code.
- AdamW at a constant learning rate, a fixed number of epochs, no labels: nothing is selected (the last epoch is
  returned). Seeded (init, batch order); resumable from ``out``/checkpoints; computed inside
  :func:`eoembed.runtime.compute` at ``precision`` (float32 default).
- Options (label-free): ``target="standardized"`` (z-scored teacher features), ``prefix_weights``, ``relational``
  (pairwise-cosine term per prefix), ``loss="mse"``; see :func:`distill`.
- :func:`distill_unordered` is the control: the same student with only the full-size head (prefixes=(out_dim,)).

Prefix evaluation (:func:`prefix_scores`): Q-bar and the mean probe score of s[:k] for every k, relative to the full
student, beside PCA truncation of the teacher, a seeded Gaussian random projection of the teacher and the first k
coordinates of the unordered student, at the same k; plus bytes per sample at float32 / float16 / int8.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from eoembed import runtime
from eoembed.errors import DataError, DataFileNotFound, StoreError

__all__ = ["Student", "DistillResult", "distill", "distill_unordered", "load_teacher", "load_student",
           "prefix_scores", "storage_bytes"]

CHECKPOINT_FORMAT = "eoembed.matryoshka/1"
_TEACHER_CACHE: dict[tuple, xr.DataArray] = {}
_FEW = 5


def _few(ids: Sequence[Any]) -> str:
    ids = [str(i) for i in ids]
    return ", ".join(repr(i) for i in ids[:_FEW]) + (f" ... ({len(ids)} in all)" if len(ids) > _FEW else "")


# ------------------------------------------------------------------------------------------------ models
class Student(nn.Module):
    """The exported student: standardise (buffers ``mean``/``std``) -> Linear -> GELU -> Linear(hidden, out_dim).
    Any prefix ``student(x)[:, :k]`` is the k-dimensional embedding."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.out_dim = int(in_dim), int(hidden), int(out_dim)
        self.register_buffer("mean", torch.zeros(self.in_dim))
        self.register_buffer("std", torch.ones(self.in_dim))
        self.net = nn.Sequential(nn.Linear(self.in_dim, self.hidden), nn.GELU(), nn.Linear(self.hidden, self.out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def _cos_matrix(a: torch.Tensor) -> torch.Tensor:
    a = nn.functional.normalize(a.float(), dim=1)
    return a @ a.T


class _Distiller(nn.Module):
    """Student + one linear head per prefix (training only).

    loss = sum_k w_k [(1 - cos(h_k(s[:k]), t)) + relational * mean_ij (cos(s_i[:k], s_j[:k]) - cos(t_i, t_j))^2]
    (the relational term compares the batch's pairwise cosine matrices of the prefix itself and of the target)."""

    def __init__(self, student: Student, prefixes: Sequence[int], teacher_dim: int,
                 weights: Sequence[float] | None = None, relational: float = 0.0, loss: str = "cosine") -> None:
        super().__init__()
        self.student, self.prefixes = student, tuple(int(k) for k in prefixes)
        self.heads = nn.ModuleList(nn.Linear(k, teacher_dim) for k in self.prefixes)
        w = [1.0] * len(self.prefixes) if weights is None else [float(v) for v in weights]
        self.register_buffer("weights", torch.tensor(w, dtype=torch.float32), persistent=False)
        self.relational = float(relational)
        self.loss = loss

    def forward(self, x: torch.Tensor, t: torch.Tensor, relational: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted loss summed over prefixes, per-prefix mean cosine); ``relational=False`` leaves out the
        pairwise term (its matrices grow with the square of the rows: used for the whole-data cosine report)."""
        s = self.student(x)
        cos = torch.stack([nn.functional.cosine_similarity(h(s[:, :k]).float(), t, dim=1).mean()
                           for k, h in zip(self.prefixes, self.heads)])
        if self.loss == "mse":  # squared error relative to the target's mean squared norm (scale-free)
            den = (t ** 2).sum(1).mean().clamp(min=1e-12)
            per_k = torch.stack([((h(s[:, :k]).float() - t) ** 2).sum(1).mean() / den
                                 for k, h in zip(self.prefixes, self.heads)])
        else:
            per_k = 1.0 - cos
        if self.relational > 0 and relational:
            ct = _cos_matrix(t)
            rel = torch.stack([((_cos_matrix(s[:, :k]) - ct) ** 2).mean() for k in self.prefixes])
            per_k = per_k + self.relational * rel
        return (self.weights * per_k).sum(), cos


# ------------------------------------------------------------------------------------------------ inputs
def _as_2d(da: xr.DataArray, what: str) -> xr.DataArray:
    if "sample" not in da.dims:
        raise DataError(f"{what} has dims {da.dims}; it needs a 'sample' dimension with the sample ids.")
    other = [d for d in da.dims if d != "sample"]
    da = da.transpose("sample", *other)
    vals = np.asarray(da.values, dtype=np.float32).reshape(da.sizes["sample"], -1)
    ids = np.asarray([str(i) for i in da["sample"].values], dtype=object)
    uniq, counts = np.unique(ids.astype(str), return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{what}: sample ids repeat ({_few(uniq[counts > 1])}); keep one row per sample.")
    coords: dict[str, Any] = {"sample": ids, "feature": np.arange(vals.shape[1])}
    for c in ("lat", "lon"):
        if c in da.coords and da[c].dims == ("sample",):
            coords[c] = ("sample", np.asarray(da[c].values, dtype=np.float64))
    return xr.DataArray(vals, dims=("sample", "feature"), coords=coords, attrs=dict(da.attrs))


def _read_path(path: Path, model: str | None, what: str) -> xr.DataArray:
    if not path.exists():
        raise DataFileNotFound(f"{what} {str(path)!r} does not exist; give a NeuCo CSV (id,0..D-1), an exported "
                               "embeddings .zarr or an embedding store (emb.zarr) with a model name.")
    if path.is_file():
        from eoembed.bench.io import read_embeddings

        vals, ids, _ = read_embeddings(path)
        return xr.DataArray(vals.astype(np.float32), dims=("sample", "feature"),
                            coords={"sample": ids.astype(object), "feature": np.arange(vals.shape[1])})
    try:  # an exported (sample, feature) Zarr (export_embeddings / eoembed fuse) holds one variable at the root
        ds = xr.open_zarr(str(path), consolidated=False)
        var = "embedding" if "embedding" in ds else "fused" if "fused" in ds else None
        if var is not None and model is None:
            return ds[var].load()
    except Exception:  # noqa: BLE001 - not a flat Zarr: read it as an embedding store below
        pass
    from eoembed.compress.fusion import load_store

    return _pick_model(load_store(path), model, f"{what} {str(path)!r}")


def _pick_model(data: dict[str, xr.DataArray], model: str | None, what: str) -> xr.DataArray:
    if model is None:
        if len(data) != 1:
            raise StoreError(f"{what} holds {len(data)} models {sorted(data)}; name one with teacher_model=.")
        model = next(iter(data))
    if model not in data:
        raise StoreError(f"model {model!r} is not in {what} (it holds {sorted(data)}); pick one of those.")
    return data[model]


def _source_key(src: Any, model: str | None) -> tuple | None:
    if isinstance(src, (str, os.PathLike)):
        p = Path(src).absolute()
        try:
            mtime = p.stat().st_mtime_ns
        except OSError:
            return None
        return (str(p), model, mtime)
    return None


def load_teacher(teacher: Any, model: str | None = None) -> xr.DataArray:
    """Teacher vectors as a float32 (sample, feature) array, read once per file and cached in memory.

    teacher: (sample, feature) or (sample, season, feature) DataArray (flattened season-major) | {model: DataArray}
    store dict or emb.zarr path (with ``model``; optional when the store holds one model) | exported embeddings
    (.zarr from export_embeddings / fuse) | NeuCo CSV (id,0..D-1) | a :class:`DistillResult` (its student
    embeddings). Rows with NaN/inf are an error naming the samples.
    """
    if isinstance(teacher, tuple) and len(teacher) == 2 and model is None:
        teacher, model = teacher
    key = _source_key(teacher, model)
    if key is not None and key in _TEACHER_CACHE:
        return _TEACHER_CACHE[key]
    if isinstance(teacher, DistillResult):
        da = teacher.embeddings
    elif isinstance(teacher, xr.DataArray):
        da = teacher
    elif isinstance(teacher, (str, os.PathLike)):
        da = _read_path(Path(teacher), model, "teacher")
    elif isinstance(teacher, dict):
        from eoembed.compress.fusion import load_store

        da = _pick_model(load_store(teacher), model, "the teacher store")
    else:
        raise DataError(f"cannot read a teacher from {type(teacher).__name__}; pass a (sample, feature) DataArray, "
                        "an embedding store path or dict with teacher_model=, an exported .zarr or a NeuCo CSV.")
    out = _as_2d(da, "teacher")
    _check_rows(out, "teacher", "re-extract those samples or drop them from the teacher")
    out.attrs = {"source": str(teacher) if key else type(teacher).__name__, "model": model}
    if key is not None:
        _TEACHER_CACHE[key] = out
    return out


def _check_rows(da: xr.DataArray, what: str, fix: str) -> None:
    bad = ~np.isfinite(da.values).all(axis=1)
    if bad.any():
        raise DataError(f"{what}: {int(bad.sum())} sample(s) have NaN/inf values (ids "
                        f"{_few(da['sample'].values[bad])}); {fix}.")


def _load_inputs(inputs: Any, teacher: xr.DataArray) -> xr.DataArray:
    """Student inputs aligned to the teacher's sample order; id mismatches and NaN rows are errors."""
    if inputs is None:
        return teacher
    if isinstance(inputs, xr.DataArray):
        da = _as_2d(inputs, "inputs")
    elif isinstance(inputs, (str, os.PathLike)):
        p = Path(inputs)
        if p.is_dir():
            try:
                da = _as_2d(_read_path(p, None, "inputs"), "inputs")
            except StoreError:  # a multi-model store: the fused vector of all its models
                from eoembed.compress.fusion import fuse

                da = _as_2d(fuse(p), "inputs")
        else:
            da = _as_2d(_read_path(p, None, "inputs"), "inputs")
    elif isinstance(inputs, dict):
        from eoembed.compress.fusion import fuse

        da = _as_2d(fuse(inputs), "inputs")
    else:
        raise DataError(f"cannot read inputs from {type(inputs).__name__}; pass a (sample, feature) DataArray, "
                        "a store path/dict (fused) or a NeuCo CSV.")
    t_ids, i_ids = [str(s) for s in teacher["sample"].values], [str(s) for s in da["sample"].values]
    if t_ids != i_ids:
        missing, extra = sorted(set(t_ids) - set(i_ids)), sorted(set(i_ids) - set(t_ids))
        if missing or extra:
            parts = ([f"{len(missing)} teacher sample(s) have no input row ({_few(missing)})"] if missing else []) + \
                    ([f"{len(extra)} input sample(s) are not in the teacher ({_few(extra)})"] if extra else [])
            raise DataError("teacher and inputs ids differ: " + "; ".join(parts)
                            + ". Give both for the same samples (subset one with .sel(sample=...)).")
        da = da.sel(sample=teacher["sample"].values)
    _check_rows(da, "inputs", "fix or drop those samples in both teacher and inputs")
    return da


# ------------------------------------------------------------------------------------------------ checks
def _check_prefixes(prefixes: Sequence[int], out_dim: int) -> tuple[int, ...]:
    if isinstance(prefixes, (int, np.integer)):
        prefixes = (int(prefixes),)
    ks = list(prefixes)
    if not ks:
        raise DataError("prefixes=() is empty; give increasing sizes such as (16, 32, 64, 128).")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DataError(f"prefix {k!r} is not a positive integer; prefixes are embedding sizes like 16, 32.")
    if ks != sorted(ks) or len(set(ks)) != len(ks):
        raise DataError(f"prefixes={tuple(ks)} must be strictly increasing with no repeats, e.g. "
                        f"{tuple(sorted(set(ks)))}.")
    if isinstance(out_dim, bool) or not isinstance(out_dim, (int, np.integer)) or out_dim < 1:
        raise DataError(f"out_dim={out_dim!r} must be a positive integer.")
    if ks[-1] > out_dim:
        raise DataError(f"prefix {ks[-1]} is larger than the student dimension out_dim={out_dim}; use prefixes <= "
                        f"{out_dim} or a larger out_dim.")
    return tuple(int(k) for k in ks)


TARGETS = ("centred", "standardized")
LOSSES = ("cosine", "mse")


def _check_loss(ks: tuple[int, ...], target: str, prefix_weights: Sequence[float] | None,
                relational: float, loss: str = "cosine") -> list[float]:
    """The per-prefix weights (validated) for the loss options of :func:`distill`."""
    if loss not in LOSSES:
        raise DataError(f"loss={loss!r} is not valid; use one of {list(LOSSES)}.")
    if target not in TARGETS:
        raise DataError(f"target={target!r} is not valid; use one of {list(TARGETS)}.")
    if isinstance(relational, bool) or not isinstance(relational, (int, float)) or not relational >= 0:
        raise DataError(f"relational={relational!r} must be a number >= 0 (0 = no relational term).")
    if prefix_weights is None:
        return [1.0] * len(ks)
    w = list(prefix_weights)
    if len(w) != len(ks):
        raise DataError(f"prefix_weights has {len(w)} value(s) for {len(ks)} prefixes {ks}; give one weight per "
                        "prefix.")
    if any(isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not v >= 0
           for v in w) or not sum(w) > 0:
        raise DataError(f"prefix_weights={tuple(w)} must be numbers >= 0, not all 0.")
    return [float(v) for v in w]


def _check_hparams(epochs: int, hidden: int, batch_size: int, lr: float, weight_decay: float, seed: int) -> None:
    from eoembed.checks import check_int

    check_int("epochs", epochs, 1)
    check_int("hidden", hidden, 1)
    check_int("batch_size", batch_size, 1)
    check_int("seed", seed, 0)
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise DataError(f"lr={lr!r} must be a number > 0.")
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise DataError(f"weight_decay={weight_decay!r} must be a number >= 0.")


# ------------------------------------------------------------------------------------------------ result
@dataclasses.dataclass
class DistillResult:
    """Outcome of :func:`distill`: ``student`` (no heads), ``embeddings`` (sample, feature) of every sample (attrs
    prefixes, teacher, precision), ``history`` (epoch, loss (the weighted total), loss/<k> (1 - cos of head k on
    the training batches), cos/<k>: after the epoch, mean cosine of h_k(s[:k]) to the target over all samples),
    the cached ``teacher`` and ``inputs``."""

    student: Student
    embeddings: xr.DataArray
    history: pd.DataFrame
    prefixes: tuple[int, ...]
    teacher: xr.DataArray
    inputs: xr.DataArray
    config: dict[str, Any]
    precision: str = "float32"
    out: Path | None = None

    def prefix(self, k: int) -> xr.DataArray:
        """The k-dimensional embedding: the first k coordinates."""
        return self.embeddings.isel(feature=slice(0, int(k)))

    def encode(self, inputs: Any, device: Any = None) -> xr.DataArray:
        """Embed new inputs (same features as training) with the student."""
        da = _as_2d(inputs, "inputs") if isinstance(inputs, xr.DataArray) else _load_inputs(inputs, self.inputs)
        if da.sizes["feature"] != self.student.in_dim:
            raise DataError(f"inputs have {da.sizes['feature']} features; the student was trained on "
                            f"{self.student.in_dim}.")
        z = _encode(self.student, da.values, runtime.resolve_device(device), self.precision)
        return _embedding_array(z, da, dict(self.embeddings.attrs))


@torch.no_grad()
def _encode(student: Student, x: np.ndarray, dev: torch.device, precision: str, batch: int = 4096) -> np.ndarray:
    was = student.training
    student.eval().to(dev)
    out = []
    with runtime.compute(precision, dev):
        for s in range(0, x.shape[0], batch):
            out.append(student(torch.as_tensor(x[s:s + batch], dtype=torch.float32, device=dev)).float().cpu())
    student.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, student.out_dim), np.float32)


def _embedding_array(z: np.ndarray, like: xr.DataArray, attrs: dict[str, Any]) -> xr.DataArray:
    coords: dict[str, Any] = {"sample": like["sample"].values, "feature": np.arange(z.shape[1])}
    for c in ("lat", "lon"):
        if c in like.coords:
            coords[c] = ("sample", np.asarray(like[c].values, dtype=np.float64))
    return xr.DataArray(z.astype(np.float32), dims=("sample", "feature"), coords=coords, name="embedding",
                        attrs=attrs)


def load_student(path: str | os.PathLike) -> Student:
    """The student (eval mode) of a checkpoint or student.pt written by :func:`distill`."""
    p = Path(path)
    if not p.exists():
        raise DataFileNotFound(f"student file {str(p)!r} does not exist; it is written by distill(out=...).")
    ck = torch.load(p, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise StoreError(f"{str(p)!r} is not an eoembed Matryoshka student (format {CHECKPOINT_FORMAT}).")
    a = ck["arch"]
    st = Student(a["in_dim"], a["hidden"], a["out_dim"])
    st.load_state_dict(ck["student"])
    return st.eval()


# ------------------------------------------------------------------------------------------------ training
def _sha1(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


def _cache_teacher(out: Path, teacher: xr.DataArray) -> None:
    p = out / "teacher.npz"
    if p.exists():
        return
    tmp = out / "teacher.tmp.npz"
    np.savez(tmp, values=teacher.values, ids=np.asarray([str(s) for s in teacher["sample"].values]))
    os.replace(tmp, p)


def _teacher_from_disk(out: Path, source: str) -> xr.DataArray | None:
    """The teacher cached in ``out`` by an earlier run on the same source file (unchanged since)."""
    p, meta = out / "teacher.npz", out / "config.json"
    if not (p.exists() and meta.exists()):
        return None
    try:
        cfg = json.loads(meta.read_text())
    except ValueError:
        return None
    if cfg.get("teacher_source") != source:
        return None
    with np.load(p, allow_pickle=False) as z:
        return xr.DataArray(z["values"], dims=("sample", "feature"),
                            coords={"sample": z["ids"].astype(object), "feature": np.arange(z["values"].shape[1])},
                            attrs={"source": source})


def distill(teacher: Any, inputs: Any = None, prefixes: Sequence[int] = (16, 32, 64, 128), out_dim: int = 128, *,
            teacher_model: str | None = None, hidden: int = 512, epochs: int = 50, batch_size: int = 64,
            lr: float = 1e-3, weight_decay: float = 0.01, seed: int = 0, out: str | os.PathLike | None = None,
            resume: bool = True, overwrite: bool = False, device: Any = None, precision: str = "float32",
            threads: int | None = None, progress: bool = True, target: str = "centred",
            prefix_weights: Sequence[float] | None = None, relational: float = 0.0,
            loss: str = "cosine") -> DistillResult:
    """Distil a Matryoshka student of size ``out_dim`` from ``teacher`` (see the module doc).

    teacher: see :func:`load_teacher` (``teacher_model`` names the model of a store). inputs: the student's
    input, any (sample, feature) array / NeuCo CSV / store (fused) aligned by sample id with the teacher (fused FM
    embeddings, flattened per-pixel series...); None = the teacher vectors. prefixes: strictly increasing sizes
    <= out_dim, one training head each. out: folder for teacher.npz (the cached teacher), config.json,
    history.csv, checkpoints/epoch_NNNN.pt (latest kept, for resume) and student.pt; resume continues from the
    latest checkpoint when the settings and data match (resume=False with checkpoints present needs
    overwrite=True); the learning rate is constant, so a run may be resumed with more epochs. threads: CPU
    threads while training (restored afterwards; None = 1 on CPU for small students). precision: "float32"
    (default) or "bf16" (CUDA opt-in), recorded in the embeddings' attrs. Nothing is selected: the last epoch is
    returned.

    Loss options (label-free): target "centred" (default: teacher minus its mean) or "standardized" (each teacher
    feature also divided by its standard deviation, so low-variance features count as much as the dominant ones);
    prefix_weights: one weight w_k per prefix (default all 1); relational >= 0: weight of a per-prefix term
    matching the batch's pairwise cosine matrix of s[:k] to that of the target (what a random projection
    preserves), see :class:`_Distiller`; loss "cosine" (default, 1 - cos) or "mse" (squared error of h_k(s[:k])
    relative to the target's mean squared norm).
    """
    ks = _check_prefixes(prefixes, out_dim)
    _check_hparams(epochs, hidden, batch_size, lr, weight_decay, seed)
    pw = _check_loss(ks, target, prefix_weights, relational, loss)
    dev = runtime.resolve_device(device)
    runtime.check_precision(precision, dev)
    out_p = Path(out) if out is not None else None
    if out_p is not None:
        from eoembed.checks import check_out_path

        check_out_path(out_p, option="out")
    src_key = _source_key(teacher if not isinstance(teacher, tuple) else teacher[0], teacher_model)
    t_da = None
    if out_p is not None and src_key is not None and src_key not in _TEACHER_CACHE:
        t_da = _teacher_from_disk(out_p, json.dumps(list(src_key)))
    if t_da is None:
        t_da = load_teacher(teacher, teacher_model)
    x_da = _load_inputs(inputs, t_da)
    if threads is None and dev.type == "cpu":
        n_par = x_da.sizes["feature"] * hidden + hidden * out_dim + sum(ks) * t_da.sizes["feature"]
        threads = 1 if n_par < 4_000_000 else None
    cfg = {"prefixes": list(ks), "out_dim": int(out_dim), "hidden": int(hidden), "epochs": int(epochs),
           "batch_size": int(batch_size), "lr": float(lr), "weight_decay": float(weight_decay), "seed": int(seed),
           "precision": precision, "target": target, "prefix_weights": pw, "relational": float(relational),
           "loss": loss}
    with runtime.compute(precision, dev, threads=threads):
        return _run(t_da, x_da, ks, cfg, out_p, resume, overwrite, dev, progress,
                    json.dumps(list(src_key)) if src_key is not None else None)


def distill_unordered(teacher: Any, inputs: Any = None, out_dim: int = 128, **kwargs: Any) -> DistillResult:
    """The control of :func:`distill`: the same student trained with only the full-size head
    (prefixes=(out_dim,)), so its coordinates carry no order; compare its first k coordinates at each k."""
    kwargs.pop("prefixes", None)
    kwargs.pop("prefix_weights", None)
    return distill(teacher, inputs, prefixes=(out_dim,), out_dim=out_dim, **kwargs)


def _fit_epoch(model: Any, opt: Any, xt: torch.Tensor, tt: torch.Tensor, ks: tuple[int, ...], cfg: dict,
               epoch: int, dev: torch.device) -> dict[str, Any]:
    """One seeded epoch over all samples; the history row (loss per prefix, cosine per prefix on all samples)."""
    t0 = time.perf_counter()
    n = xt.shape[0]
    g = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).to(dev)
    loss_sum, per_k = 0.0, np.zeros(len(ks))
    for b in range(0, n, cfg["batch_size"]):
        idx = order[b:b + cfg["batch_size"]]
        loss, cos = model(xt[idx], tt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(loss.detach()) * len(idx)
        per_k += (1.0 - cos.detach().cpu().numpy()) * len(idx)
    row: dict[str, Any] = {"epoch": epoch, "loss": loss_sum / n}
    row.update({f"loss/{k}": float(v / n) for k, v in zip(ks, per_k)})
    with torch.no_grad():
        model.eval()
        _, cos = model(xt, tt, relational=False)
        model.train()
    row.update({f"cos/{k}": float(c) for k, c in zip(ks, cos.cpu().numpy())})
    row["time_s"] = time.perf_counter() - t0
    return row


def _run(t_da: xr.DataArray, x_da: xr.DataArray, ks: tuple[int, ...], cfg: dict, out_p: Path | None, resume: bool,
         overwrite: bool, dev: torch.device, progress: bool, source: str | None) -> DistillResult:
    x = np.asarray(x_da.values, dtype=np.float32)
    t = np.asarray(t_da.values, dtype=np.float32)
    t_c = t - t.mean(axis=0, keepdims=True)
    if cfg.get("target", "centred") == "standardized":
        t_sd = t_c.std(axis=0, keepdims=True)
        t_c = t_c / np.where(t_sd > 0, t_sd, 1.0).astype(np.float32)
    n = x.shape[0]
    if n < 2:
        raise DataError(f"{n} sample(s): distillation needs at least 2.")
    zero = ~(np.abs(t_c) > 0).any(axis=1)
    if zero.any():
        raise DataError(f"teacher: {int(zero.sum())} sample(s) equal the teacher mean (ids "
                        f"{_few(t_da['sample'].values[zero])}), so their cosine target is undefined; drop them or "
                        "check that the teacher is not constant.")
    fingerprint = {**{k: v for k, v in cfg.items() if k != "epochs"}, "n": n, "in_dim": int(x.shape[1]),
                   "teacher_dim": int(t.shape[1]),
                   "ids_sha1": hashlib.sha1("\n".join(map(str, t_da["sample"].values)).encode()).hexdigest(),
                   "teacher_sha1": _sha1(t), "inputs_sha1": _sha1(x), "format": CHECKPOINT_FORMAT}
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(cfg["seed"])
        student = Student(x.shape[1], cfg["hidden"], cfg["out_dim"])
        model = _Distiller(student, ks, t.shape[1], cfg.get("prefix_weights"), cfg.get("relational", 0.0),
                           cfg.get("loss", "cosine"))
    sd = x.std(axis=0)
    student.mean.copy_(torch.from_numpy(x.mean(axis=0)))
    student.std.copy_(torch.from_numpy(np.where(sd > 0, sd, 1.0).astype(np.float32)))
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    rows: list[dict] = []
    start = 1
    ck_dir = out_p / "checkpoints" if out_p is not None else None
    if ck_dir is not None:
        rows, start = _restore(ck_dir, model, opt, fingerprint, resume, overwrite)
        if start - 1 > cfg["epochs"]:
            raise ValueError(f"{str(ck_dir)!r} already holds {start - 1} epochs, more than epochs={cfg['epochs']}; "
                             "pass epochs >= that, another out folder, or resume=False, overwrite=True.")
        out_p.mkdir(parents=True, exist_ok=True)
        (out_p / "config.json").write_text(json.dumps({**fingerprint, "teacher_source": source}, indent=1))
        _cache_teacher(out_p, t_da)
    xt = torch.from_numpy(x).to(dev)
    tt = torch.from_numpy(t_c).to(dev)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg["epochs"], initial=start - 1, desc="distill", unit="epoch")
    model.train()
    for epoch in range(start, cfg["epochs"] + 1):
        row = _fit_epoch(model, opt, xt, tt, ks, cfg, epoch, dev)
        rows.append(row)
        if ck_dir is not None:
            _save(ck_dir, model, opt, rows, epoch, fingerprint)
        if bar is not None:
            bar.set_postfix(loss=f"{row['loss']:.4g}")
            bar.update(1)
    if bar is not None:
        bar.close()
    student = model.student
    z = _encode(student, x, dev, cfg["precision"])
    student.cpu().eval()
    attrs = {"method": "matryoshka" if len(ks) > 1 else "unordered", "prefixes": list(ks),
             "teacher": t_da.attrs.get("source", "DataArray"), "teacher_model": t_da.attrs.get("model"),
             "precision": cfg["precision"], "epochs": cfg["epochs"]}
    emb = _embedding_array(z, x_da, attrs)  # x_da is in the teacher's sample order
    hist = pd.DataFrame(rows)
    if out_p is not None:
        hist.to_csv(out_p / "history.csv", index=False)
        torch.save({"format": CHECKPOINT_FORMAT, "student": student.state_dict(), "arch": _arch(student),
                    "prefixes": list(ks), "config": cfg}, out_p / "student.pt")
    return DistillResult(student=student, embeddings=emb, history=hist, prefixes=ks, teacher=t_da, inputs=x_da,
                         config=cfg, precision=cfg["precision"], out=out_p)


def _arch(st: Student) -> dict[str, int]:
    return {"in_dim": st.in_dim, "hidden": st.hidden, "out_dim": st.out_dim}


def _save(ck_dir: Path, model: _Distiller, opt: torch.optim.Optimizer, rows: list[dict], epoch: int,
          fingerprint: dict) -> None:
    ck = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
          "history": rows, "fingerprint": fingerprint, "arch": _arch(model.student),
          "student": model.student.state_dict()}
    path = ck_dir / f"epoch_{epoch:04d}.pt"
    torch.save(ck, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)
    for p in ck_dir.glob("epoch_*.pt"):
        if p != path:
            p.unlink()


def _restore(ck_dir: Path, model: _Distiller, opt: torch.optim.Optimizer, fingerprint: dict, resume: bool,
             overwrite: bool) -> tuple[list[dict], int]:
    """(history rows, first epoch to train): continue from the latest checkpoint in ``ck_dir`` when there is one."""
    existing = sorted(ck_dir.glob("epoch_*.pt")) if ck_dir.exists() else []
    if existing and not resume:
        if not overwrite:
            raise FileExistsError(f"{str(ck_dir)!r} already holds checkpoints; pass resume=True to continue, "
                                  "overwrite=True to start again, or another out folder")
        for p in existing:
            p.unlink()
        existing = []
    ck_dir.mkdir(parents=True, exist_ok=True)
    if not existing:
        return [], 1
    from eoembed.compress.train import _diff

    last = max(existing, key=lambda p: int(p.stem.split("_")[1]))
    ck = torch.load(last, map_location="cpu", weights_only=False)
    diffs = _diff(ck.get("fingerprint", {}), fingerprint)
    if diffs:
        raise ValueError(f"cannot resume from {str(last)!r}: settings or data differ ({'; '.join(diffs)}). Use the "
                         "same settings, another out folder, or resume=False, overwrite=True.")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    return list(ck["history"]), int(ck["epoch"]) + 1


# ------------------------------------------------------------------------------------------------ evaluation
def storage_bytes(k: int) -> dict[str, int]:
    """Bytes per sample of a k-dimensional embedding: float32 4k, float16 2k, int8 k + 4 (one float32 scale)."""
    return {"bytes_float32": 4 * int(k), "bytes_float16": 2 * int(k), "bytes_int8": int(k) + 4}


def _pca(t: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=k, random_state=seed).fit_transform(t).astype(np.float32)


def _pca_spherical(tc: np.ndarray, k: int) -> np.ndarray:
    """Rows of the centred ``tc`` scaled to unit length, projected on their top ``k`` right singular vectors (no
    re-centring): the k-d span that keeps the most squared cosine to the samples."""
    nrm = np.linalg.norm(tc, axis=1, keepdims=True)
    u = np.asarray(tc, np.float64) / np.where(nrm > 0, nrm, 1.0)
    vt = np.linalg.svd(u, full_matrices=False)[2][:k]
    return (u @ vt.T).astype(np.float32)


def prefix_scores(embeddings: Any, labels: Any, prefixes: Sequence[int] | None = None,
                  baselines: Sequence[str] = ("pca", "random", "unordered"), *, teacher: Any = None,
                  unordered: Any = None, mode: str = "ridge", metric: str = "tessera", folds: int = 10,
                  seed: int = 0, eval_seed: int = 42, device: Any = None, progress: bool = False) -> pd.DataFrame:
    """Score every prefix k of a Matryoshka embedding and the baselines at the same k.

    embeddings: a :class:`DistillResult` (its teacher, and its settings for the unordered control, are used) or a
    (sample, feature) array (then pass ``teacher`` for "pca"/"random" and ``unordered`` for "unordered").
    prefixes: default the result's prefixes (else 16/32/64/128 capped at the width). baselines: "pca" (PCA of the
    centred teacher, fitted once with max(prefixes) components, first k kept), "pca_standardized" (the same on the
    teacher with every feature scaled to unit variance: the linear counterpart of target="standardized"),
    "pca_spherical" (the centred teacher with every sample scaled to unit length, projected on its top right
    singular vectors without re-centring: the k-d span a cosine loss on linear heads is best served by),
    "random" (a seeded Gaussian
    projection of the centred teacher; first k of one (d_T, max k) draw), "unordered" (first k coordinates of
    :func:`distill_unordered`, trained with the same settings unless given), "teacher" (the full teacher, once).
    Each embedding is scored with :func:`eoembed.bench.evaluate` (``mode``, ``metric``: default ridge probes with
    TESSERA's chance-adjusted metric; ``folds``, ``eval_seed``).

    Returns a tidy DataFrame: method, k, q (Q-bar), score (mean over tasks of the metric), rel_q / rel_score
    (relative to the Matryoshka student at its full width), bytes_float32 / bytes_float16 / bytes_int8. Nothing
    is selected here (sizes and epochs are fixed beforehand), so all rows are scored on the same labels.
    """
    from eoembed.bench import evaluate

    allowed = ("pca", "pca_standardized", "pca_spherical", "random", "unordered", "teacher")
    for b in baselines:
        if b not in allowed:
            raise DataError(f"baseline {b!r} is unknown; use any of {allowed}.")
    res = embeddings if isinstance(embeddings, DistillResult) else None
    emb = res.embeddings if res is not None else _as_2d(embeddings, "embeddings")
    width = int(emb.sizes["feature"])
    if prefixes is None:
        prefixes = res.prefixes if res is not None else tuple(k for k in (16, 32, 64, 128) if k <= width) or (width,)
    ks = _check_prefixes(prefixes, width)
    t_da = res.teacher if res is not None and teacher is None else (load_teacher(teacher) if teacher is not None
                                                                     else None)
    if t_da is not None:
        t_da = t_da.sel(sample=emb["sample"].values) if list(t_da["sample"].values) != list(emb["sample"].values) \
            else t_da
    needs_t = [b for b in baselines if b in ("pca", "pca_standardized", "pca_spherical", "random", "teacher")]
    if needs_t and t_da is None:
        raise DataError(f"baselines {needs_t} need the teacher; pass teacher= or a DistillResult.")
    kw = {"mode": mode, "metric": metric, "folds": folds, "seed": eval_seed, "device": device, "progress": False}
    cands: list[tuple[str, int, xr.DataArray]] = [("matryoshka", k, emb.isel(feature=slice(0, k))) for k in ks]
    if ks[-1] != width:
        cands.append(("matryoshka", width, emb))
    if t_da is not None:
        tc = np.asarray(t_da.values, np.float32)
        tc = tc - tc.mean(axis=0, keepdims=True)
        like = emb
        if "pca" in baselines:
            m = min(ks[-1], tc.shape[0], tc.shape[1])
            pcs = _pca(tc, m, seed)
            cands += [("pca", k, _embedding_array(pcs[:, :k], like, {"method": "pca"})) for k in ks if k <= m]
        if "pca_standardized" in baselines:
            m = min(ks[-1], tc.shape[0], tc.shape[1])
            sd = tc.std(axis=0)
            pcs = _pca(tc / np.where(sd > 0, sd, 1.0), m, seed)
            cands += [("pca_standardized", k, _embedding_array(pcs[:, :k], like, {"method": "pca_standardized"}))
                      for k in ks if k <= m]
        if "pca_spherical" in baselines:
            m = min(ks[-1], tc.shape[0], tc.shape[1])
            pcs = _pca_spherical(tc, m)
            cands += [("pca_spherical", k, _embedding_array(pcs[:, :k], like, {"method": "pca_spherical"}))
                      for k in ks if k <= m]
        if "random" in baselines:
            w = np.random.default_rng(seed).normal(size=(tc.shape[1], ks[-1])).astype(np.float32)
            rp = tc @ w / np.sqrt(ks[-1])
            cands += [("random", k, _embedding_array(rp[:, :k], like, {"method": "random"})) for k in ks]
        if "teacher" in baselines:
            cands.append(("teacher", tc.shape[1], _embedding_array(tc, like, {"method": "teacher"})))
    if "unordered" in baselines:
        if unordered is None:
            if res is None:
                raise DataError("baseline 'unordered' needs unordered= (first k coordinates of an unordered "
                                "student) or a DistillResult to train one with the same settings.")
            c = {k: v for k, v in res.config.items() if k not in ("prefixes", "out_dim", "prefix_weights")}
            unordered = distill_unordered(res.teacher, res.inputs, out_dim=width, device=device, progress=progress,
                                          **c)
        u = unordered.embeddings if isinstance(unordered, DistillResult) else _as_2d(unordered, "unordered")
        cands += [("unordered", k, u.isel(feature=slice(0, k))) for k in ks if k <= u.sizes["feature"]]
    rows = []
    it = cands
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(cands, desc="prefix scores", unit="embedding")
    for method, k, e in it:
        r = evaluate(e, labels, **kw)
        rows.append({"method": method, "k": int(k), "q": float(r.overall_q), "score": float(r.overall_acc),
                     **storage_bytes(k)})
    df = pd.DataFrame(rows)
    full = df[(df.method == "matryoshka") & (df.k == width)].iloc[0]
    df.insert(4, "rel_q", df["q"] / full["q"])
    df.insert(5, "rel_score", df["score"] / full["score"])
    df.attrs.update({"mode": mode, "metric": metric, "folds": folds, "eval_seed": eval_seed, "seed": seed,
                     "selection": "none: no size or epoch is chosen on these labels"})
    return df
