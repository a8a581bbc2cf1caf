"""Barlow Twins pretraining of the pixel encoder (TESSERA recipe), resumable, single process or torchrun / DDP.

Per step a batch of d-pixels is drawn and two VIEWS are made of each pixel: for each modality a random subset of
its VALID observations (cloud-masked steps never enter), of length L ~ Uniform{l_min..l_max} (default 8..16; one
L per modality per step, shared by both views so that the mix-up below is defined). A pixel with fewer than L
valid observations contributes all of them (fewer than L; the remaining slots are masked and get zero attention),
so the 4-season sample and the 12-month WorldCereal series give views of <= 4 / <= 12 observations.

Loss (``docs/tessera.md``): projector outputs standardised over the batch, C = z1^T z2 / B,
L_BT = sum_i (C_ii - 1)^2 + lambda * sum_{i != j} C_ij^2 (lambda = 5e-3), plus the mix-up regulariser: alpha ~
Beta(1, 1), the input tokens of view 1 mixed with those of view 2 of a permuted batch, and
(lambda / 2) * (||C(z_m, z1) - alpha C(z1, z1) - (1 - alpha) C(z2[perm], z1)||^2 + the same against z2).
Whole-modality dropout: with probability ``modality_dropout`` a pixel that has both modalities loses one of them
in a view (replaced by the learned missing vector). AdamW, gradient-norm clipping (2.0), constant learning rate.

Every random draw of step s comes from generators seeded by (seed, s), so the state after step s depends only on
the state before it: a run killed after a checkpoint and resumed gives the same final model as an uninterrupted
run (tested). Checkpoints (``out/checkpoint.pt``: model, projector, optimizer, step, history, settings) are
written atomically every ``checkpoint_every`` steps and at the end.

Precision: "float32" (default; full IEEE fp32 via :func:`eoembed.runtime.compute`) or "bf16" (CUDA only, bf16
autocast; asked for explicitly), recorded in the checkpoint, the settings and the result; a run is never resumed
at another precision.

Multi-GPU / multi-node: launch the same call under torchrun, e.g.
``torchrun --nproc_per_node 4 -m eoembed.cli pretrain sample:200000 --out run --size S --precision bf16``
(or several nodes with ``--nnodes``/``--rdzv-endpoint``). When ``WORLD_SIZE`` > 1 is set, ``pretrain`` joins the
process group (NCCL on CUDA, gloo on CPU), wraps encoder + projector in DistributedDataParallel (projector
BatchNorm -> SyncBatchNorm on CUDA; per-rank BatchNorm on CPU), and each rank takes every world_size-th pixel
of the step's batch (the Barlow Twins cross-correlation is computed on each rank's part; gradients are
averaged). Rank 0 writes the files. Tested with two CPU processes (gloo); not run on GPUs here.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from eoembed import runtime
from eoembed.errors import DataError, OutputError
from eoembed.pixel.data import MODALITIES, as_series, has_observations, modality_arrays
from eoembed.pixel.encoder import EncoderConfig, PixelEncoder, count_params, projector, resolve_config

LAMBDA = 5e-3
CHECKPOINT = "checkpoint.pt"
ENCODER = "encoder.pt"


# ----------------------------------------------------------------------------------------------------- losses
def cross_correlation(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """C = za^T zb / B with za, zb standardised per dimension over the batch (biased std)."""
    za = (a - a.mean(0)) / (a.std(0, unbiased=False) + eps)
    zb = (b - b.mean(0)) / (b.std(0, unbiased=False) + eps)
    return za.T @ zb / a.shape[0]


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = LAMBDA) -> torch.Tensor:
    """sum_i (C_ii - 1)^2 + lambd * sum_{i != j} C_ij^2 of the batch cross-correlation of z1, z2 (B, D)."""
    c = cross_correlation(z1.float(), z2.float())
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on + lambd * off


def mixup_loss(zm: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, perm: torch.Tensor, alpha: float,
               lambd: float = LAMBDA) -> torch.Tensor:
    """Mix-up regulariser: C(z_m, z_k) should be alpha C(z1, z_k) + (1 - alpha) C(z2[perm], z_k), k = 1, 2."""
    zm, z1, z2 = zm.float(), z1.float(), z2.float()
    out = zm.new_zeros(())
    for zk in (z1, z2):
        target = alpha * cross_correlation(z1, zk) + (1 - alpha) * cross_correlation(z2[perm], zk)
        out = out + (cross_correlation(zm, zk) - target).pow(2).sum()
    return lambd / 2 * out


class BarlowTwins(nn.Module):
    """Encoder + projector; ``forward`` returns (loss, bt, mix) of one step (one module, so DDP syncs it)."""

    def __init__(self, encoder: PixelEncoder, proj: nn.Module, lambd: float = LAMBDA, mix_weight: float = 1.0):
        super().__init__()
        self.encoder, self.projector, self.lambd, self.mix_weight = encoder, proj, lambd, mix_weight

    def forward(self, v1: dict, v2: dict, p1: dict, p2: dict, alpha: float, perm: torch.Tensor):
        enc = self.encoder
        n = perm.shape[0]
        t1, t2 = enc.modality_tokens(v1), enc.modality_tokens(v2)
        z1 = self.projector(enc.from_tokens(t1, n, p1))
        z2 = self.projector(enc.from_tokens(t2, n, p2))
        bt = barlow_twins_loss(z1, z2, self.lambd)
        if self.mix_weight == 0:
            return bt, bt.detach(), torch.zeros((), device=bt.device)
        tm = {m: (alpha * t1[m][0] + (1 - alpha) * t2[m][0][perm], t1[m][1] | t2[m][1][perm]) for m in t1}
        pm = {m: p1[m] | p2[m][perm] for m in p1}
        zm = self.projector(enc.from_tokens(tm, n, pm))
        mix = mixup_loss(zm, z1, z2, perm, alpha, self.lambd)
        return bt + self.mix_weight * mix, bt.detach(), mix.detach()


# ------------------------------------------------------------------------------------------------------ views
def draw_view(arr: dict[str, np.ndarray], length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random subset of min(length, n_valid) valid observations per pixel, in time order, padded (masked) to
    ``length``: {values (P, L, B), doy (P, L), mask (P, L), orbit (P, L)}. Invalid steps are never chosen."""
    valid = arr["valid"]
    p, t = valid.shape
    key = rng.random((p, t))
    key[~valid] = np.inf
    take = min(length, t)
    chosen = np.argsort(key, axis=1, kind="stable")[:, :take]
    mask = np.take_along_axis(valid, chosen, 1)
    chosen = np.sort(np.where(mask, chosen, t), axis=1)  # time order, padding last
    mask = chosen < t
    chosen = np.where(mask, chosen, 0)
    out = {"values": np.take_along_axis(arr["values"], chosen[..., None], 1),
           "doy": np.where(mask, np.take_along_axis(arr["doy"], chosen, 1), 0),
           "orbit": np.where(mask, np.take_along_axis(arr["orbit"], chosen, 1), 0), "mask": mask}
    if take < length:
        pad = length - take
        out = {k: np.concatenate([v, np.zeros((p, pad) + v.shape[2:], v.dtype)], 1) for k, v in out.items()}
    out["values"] = np.where(out["mask"][..., None], out["values"], 0).astype(np.float32)
    return out


def _tensors(view: dict[str, np.ndarray], dev: torch.device) -> dict[str, torch.Tensor]:
    return {"values": torch.as_tensor(view["values"], device=dev), "doy": torch.as_tensor(view["doy"], device=dev),
            "mask": torch.as_tensor(view["mask"], device=dev), "orbit": torch.as_tensor(view["orbit"], device=dev)}


def band_stats(ds: xr.Dataset, max_pixels: int = 65536) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-band mean / std of the valid observations of each modality (first ``max_pixels`` pixels)."""
    sub = ds.isel(pixel=slice(0, max_pixels))
    out = {}
    for m in MODALITIES:
        if m not in sub:
            continue
        v = np.asarray(sub[m].values, np.float64)
        ok = np.asarray(sub[f"{m}_valid"].values, bool)
        x = v[ok]
        if x.size == 0:
            out[m] = (np.zeros(v.shape[-1]), np.ones(v.shape[-1]))
        else:
            out[m] = (x.mean(0), x.std(0))
    return out


# ----------------------------------------------------------------------------------------------------- result
@dataclass
class PretrainResult:
    """Result of :func:`pretrain`: the trained encoder (eval mode, no projector), ``history`` (one row per step:
    step, loss, loss_bt, loss_mix, step_seconds), parameter counts, precision, settings and file paths."""

    encoder: PixelEncoder
    history: pd.DataFrame
    n_params: int
    n_params_proj: int
    precision: str
    settings: dict
    n_pixels: int
    paths: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def pixels_seen(self) -> int:
        """d-pixels processed (steps x batch size): the D of the scaling study's compute."""
        return int(len(self.history) * self.settings["batch_size"])

    def __repr__(self) -> str:
        last = float(self.history["loss"].iloc[-1]) if len(self.history) else float("nan")
        return (f"PretrainResult(size={self.settings['size']!r}, n_params={self.n_params:,}, "
                f"steps={len(self.history)}, final_loss={last:.4g}, precision={self.precision!r})")


def _fingerprint(ids: np.ndarray) -> str:
    from eoembed.extract.store import ids_digest
    return ids_digest(ids)


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_encoder(path: str | os.PathLike, device: Any = "cpu") -> PixelEncoder:
    """A trained encoder from a run folder (encoder.pt, else checkpoint.pt) or either file (eval mode)."""
    from eoembed.errors import DataFileNotFound

    p = Path(path)
    if p.is_dir():
        p = p / ENCODER if (p / ENCODER).exists() else p / CHECKPOINT
    if not p.exists():
        raise DataFileNotFound(f"no pixel encoder at {str(path)!r}; pass a pretrain run folder (with {ENCODER} or "
                               f"{CHECKPOINT}) or one of those files.")
    obj = torch.load(p, map_location="cpu", weights_only=False)
    if not isinstance(obj, dict) or "encoder_config" not in obj:
        raise DataError(f"{str(p)!r} is not an eoembed pixel-encoder file (no 'encoder_config').")
    with runtime.preserve_global_state():
        enc = PixelEncoder(resolve_config(obj["encoder_config"]))
    state = obj["encoder"] if "encoder" in obj else obj["model"]
    if "encoder" not in obj:  # checkpoint: BarlowTwins state, keep the encoder part
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    enc.load_state_dict(state, strict=True)
    enc.source = str(p)
    enc.settings = obj.get("settings", {})
    return enc.to(runtime.resolve_device(device)).eval()


def _dist() -> tuple[int, int, int, bool]:
    """(rank, world size, local rank, initialised here) from torchrun's environment; joins the group once."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return 0, 1, 0, False
    import torch.distributed as dist
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        created = True
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), created


def _check_settings(old: dict, new: dict, path: Path) -> None:
    diff = {k: (old.get(k), new.get(k)) for k in set(old) | set(new) if k != "steps" and old.get(k) != new.get(k)}
    if diff:
        raise DataError(f"pretrain run {str(path)!r} was made with other settings (checkpoint, requested): {diff}; "
                        "resume with the same settings, use a new out, or pass resume=False, overwrite=True.")


def pretrain(pixels: Any, size: str | dict | EncoderConfig = "tiny", *, steps: int = 200, batch_size: int = 256,
             lr: float = 1e-3, weight_decay: float = 0.01, lambd: float = LAMBDA, mix_weight: float = 1.0,
             modality_dropout: float = 0.1, view_length: Sequence[int] = (8, 16), grad_clip: float = 2.0,
             seed: int = 0, out: str | os.PathLike | None = None, resume: bool = True, overwrite: bool = False,
             checkpoint_every: int = 50, chunk_size: int = 8192, empty: str = "error",
             precision: str = "float32", device: Any = None, threads: int | None = None, progress: bool = True,
             callbacks: Sequence[Callable[[dict], Any]] = ()) -> PretrainResult:
    """Pretrain a pixel encoder with Barlow Twins (module doc) and return a :class:`PretrainResult`.

    pixels: series Dataset (lazy ok), series store path, d-pixel Dataset, WorldCereal .parquet / .nc, or
    "sample[:N]". size: "tiny" | "N" | "S" | "M" | "L" | dict of :class:`EncoderConfig` fields. steps: optimizer
    steps (a resumed run may be given more). view_length: (l_min, l_max) of L ~ U{l_min..l_max}. empty: "error"
    (a pixel without any valid observation is a DataError naming it) or "drop" (left out; counted in
    ``settings["n_dropped_empty"]``). out: run folder (checkpoint.pt, encoder.pt, history.csv, settings.json);
    None keeps everything in memory (not resumable). resume: continue from out/checkpoint.pt when the settings
    match; resume=False with a checkpoint present needs overwrite=True. callbacks: called with each history row
    after the step (and its checkpoint) is done.
    """
    from tqdm.auto import tqdm

    from eoembed.checks import check_int

    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 2)
    check_int("checkpoint_every", checkpoint_every, 1)
    check_int("chunk_size", chunk_size, 2)
    check_int("seed", seed, 0)
    if empty not in ("error", "drop"):
        raise DataError(f"empty={empty!r}; use 'error' or 'drop'.")
    lmin, lmax = (int(v) for v in view_length)
    if not 1 <= lmin <= lmax:
        raise DataError(f"view_length={tuple(view_length)}; give (l_min, l_max) with 1 <= l_min <= l_max.")
    if not 0 <= modality_dropout < 1:
        raise DataError(f"modality_dropout={modality_dropout!r}; use a probability in [0, 1).")
    rank, world, local_rank, created = _dist()
    dev = runtime.resolve_device(device)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
    runtime.check_precision(precision, dev)
    out_p = Path(out) if out is not None else None
    if out_p is not None:
        from eoembed.checks import check_out_path
        check_out_path(out_p, option="out")
        if (out_p / CHECKPOINT).exists() and not resume and not overwrite:
            raise OutputError(f"out {str(out_p)!r} holds a pretrain checkpoint; pass resume=True to continue it or "
                              "overwrite=True to start again (it is replaced).")
    ds = as_series(pixels, empty="keep")
    mods = [m for m in MODALITIES if m in ds]
    keep = has_observations(ds)
    n_empty = int((~keep).sum())
    if n_empty and empty == "error":
        bad = [str(i) for i in np.asarray(ds["id"].values)[~keep][:5]]
        raise DataError(f"{n_empty} pixel(s) have no valid S2 or S1 observation (all masked), e.g. {bad}"
                        f"{' (file ' + repr(ds.attrs['source']) + ')' if ds.attrs.get('source') else ''}; "
                        "pretraining needs observations: pass empty='drop' to leave them out (counted).")
    idx_all = np.flatnonzero(keep)
    if idx_all.size < batch_size:
        raise DataError(f"{idx_all.size} pixels with observations but batch_size={batch_size}; use a smaller "
                        "batch_size or more pixels.")
    bands = {m: [str(b) for b in ds[f"{m}_band"].values] for m in mods}
    cfg = resolve_config(size, **{f"{m}_bands": bands[m] for m in mods})
    ids = np.asarray(ds["id"].values)[idx_all]
    settings = {"size": size if isinstance(size, str) else "custom", "encoder_config": cfg.to_dict(),
                "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "lambd": lambd,
                "mix_weight": mix_weight, "modality_dropout": modality_dropout, "view_length": [lmin, lmax],
                "grad_clip": grad_clip, "seed": seed, "chunk_size": chunk_size, "precision": precision,
                "world_size": world, "n_pixels": int(idx_all.size), "n_dropped_empty": n_empty,
                "ids_sha256": _fingerprint(ids), "source": str(ds.attrs.get("source", "")), "modalities": mods}

    # chunks of pixel indices; steps are mapped onto chunks deterministically (module doc)
    chunks = [idx_all[a:a + chunk_size] for a in range(0, idx_all.size, chunk_size)]
    spc = [max(1, len(c) // batch_size) for c in chunks]
    round_len = sum(spc)

    def chunk_of(step: int) -> int:
        r, off = divmod(step, round_len)
        order = np.random.default_rng([seed, 7, r]).permutation(len(chunks))
        acc = 0
        for c in order:
            acc += spc[c]
            if off < acc:
                return int(c)
        return int(order[-1])

    cache: dict[int, dict] = {}

    def chunk_arrays(c: int) -> dict:
        if c not in cache:
            cache.clear()
            idx = chunks[c]
            sub = ds.isel(pixel=idx).load()
            cache[c] = {m: modality_arrays(sub, m) for m in mods}
        return cache[c]

    # model, optimizer, checkpoint
    with runtime.preserve_global_state(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = PixelEncoder(cfg)
        proj = projector(cfg.out_dim, cfg.proj_dim)
    enc.set_normalisation(band_stats(ds.isel(pixel=idx_all[:65536])))
    model = BarlowTwins(enc, proj, lambd, mix_weight).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    start, history = 0, []
    ck = out_p / CHECKPOINT if out_p is not None else None
    if ck is not None and ck.exists() and resume:
        state = torch.load(ck, map_location="cpu", weights_only=False)
        _check_settings(state["settings"], settings, out_p)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["step"]), list(state["history"])
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        if dev.type == "cuda":  # SyncBatchNorm is CUDA-only; CPU (gloo) ranks keep per-rank BatchNorm statistics
            model.projector = nn.SyncBatchNorm.convert_sync_batchnorm(model.projector)
        net = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if out_p is not None and rank == 0:
        out_p.mkdir(parents=True, exist_ok=True)
        (out_p / "settings.json").write_text(json.dumps({**settings, "steps": steps}, indent=1, default=str))

    def save(step: int) -> None:
        if ck is None or rank != 0:
            return
        _save_atomic({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(), "history": history,
                      "settings": settings, "encoder_config": cfg.to_dict(),
                      "precision": runtime.describe(precision)}, ck)

    t_all = time.perf_counter()
    bar = tqdm(total=steps, initial=min(start, steps), desc=f"eoembed pretrain {settings['size']}",
               disable=not progress or rank != 0)
    try:
        with runtime.compute(precision, dev, threads):
            model.train()
            for step in range(start, steps):
                t0 = time.perf_counter()
                arrs = chunk_arrays(chunk_of(step))
                rng = np.random.default_rng([seed, step])
                npx = len(next(iter(arrs.values()))["valid"])
                sel = np.sort(rng.choice(npx, min(batch_size, npx), replace=False))
                sel = sel[rank::world]
                views, present = [{}, {}], [{}, {}]
                for m in mods:
                    a = {k: v[sel] for k, v in arrs[m].items()}
                    length = int(rng.integers(lmin, lmax + 1))
                    for k in range(2):
                        views[k][m] = draw_view(a, length, rng)
                for k in range(2):
                    have = {m: views[k][m]["mask"].any(1) for m in mods}
                    both = np.all([have[m] for m in mods], axis=0) if len(mods) == 2 else np.zeros(len(sel), bool)
                    drop = both & (rng.random(len(sel)) < modality_dropout)
                    which = rng.integers(0, len(mods), len(sel))
                    for j, m in enumerate(mods):
                        present[k][m] = torch.as_tensor(have[m] & ~(drop & (which == j)), device=dev)
                alpha = float(rng.beta(1.0, 1.0))
                perm = torch.as_tensor(rng.permutation(len(sel)), device=dev)
                v1 = {m: _tensors(views[0][m], dev) for m in mods}
                v2 = {m: _tensors(views[1][m], dev) for m in mods}
                loss, bt, mix = net(v1, v2, present[0], present[1], alpha, perm)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
                row = {"step": step + 1, "loss": float(loss.detach()), "loss_bt": float(bt), "loss_mix": float(mix),
                       "step_seconds": time.perf_counter() - t0}
                if not np.isfinite(row["loss"]):
                    raise DataError(f"pretraining loss is {row['loss']} at step {step + 1}; lower lr (now {lr}) or "
                                    "check the inputs for extreme values.")
                history.append(row)
                if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
                    save(step + 1)
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                for cb in callbacks:
                    cb(row)
    finally:
        bar.close()
        if created:
            import torch.distributed as dist
            dist.destroy_process_group()
    enc = model.encoder.eval()
    enc.settings = settings
    paths: dict[str, str] = {}
    hist = pd.DataFrame(history, columns=["step", "loss", "loss_bt", "loss_mix", "step_seconds"])
    if out_p is not None and rank == 0:
        _save_atomic({"encoder": enc.state_dict(), "encoder_config": cfg.to_dict(), "settings": settings,
                      "precision": runtime.describe(precision), "steps": int(len(history))}, out_p / ENCODER)
        hist.to_csv(out_p / "history.csv", index=False)
        paths = {"out": str(out_p), "checkpoint": str(ck), "encoder": str(out_p / ENCODER),
                 "history": str(out_p / "history.csv"), "settings": str(out_p / "settings.json")}
    return PretrainResult(encoder=enc, history=hist, n_params=enc.n_params, n_params_proj=count_params(proj),
                          precision=precision, settings=settings, n_pixels=int(idx_all.size), paths=paths,
                          seconds=time.perf_counter() - t_all)
