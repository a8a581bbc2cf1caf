"""CLI: ``eoembed pretrain`` and ``eoembed encode`` (mirror :func:`eoembed.pixel.pretrain` / :func:`encode`).

PIXELS is a series store (.zarr folder from ``save_series``), a WorldCereal .parquet (labelled pixels) or .nc
(monthly cube), or ``sample:N`` (N generated dense d-pixels). Multi-GPU:
``torchrun --nproc_per_node 4 -m eoembed.cli pretrain sample:200000 --out run --size S --precision bf16``.
"""
from __future__ import annotations

from typing import Optional

import typer

from eoembed.checks import check_choice, check_device, check_in_path, check_int, check_out_path

_PIXELS_HELP = "pixels: series store (.zarr), WorldCereal .parquet / .nc, or sample:N (generated dense d-pixels)"


def _check_pixels(pixels: str) -> None:
    if not pixels.startswith("sample"):
        check_in_path(pixels, option="PIXELS")


def pretrain(
    pixels: str = typer.Argument(..., help=_PIXELS_HELP),
    out: str = typer.Option(..., help="run folder: checkpoint.pt, encoder.pt, history.csv, settings.json"),
    size: str = typer.Option("tiny", help="encoder size: tiny | N | S | M | L"),
    steps: int = typer.Option(200, help="optimizer steps (a resumed run may be given more)"),
    batch_size: int = typer.Option(256, help="d-pixels per step"),
    lr: float = typer.Option(1e-3, help="AdamW learning rate"),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay"),
    lambd: float = typer.Option(5e-3, help="Barlow Twins off-diagonal weight (and mix-up weight)"),
    mix_weight: float = typer.Option(1.0, help="weight of the mix-up regulariser (0 = off)"),
    modality_dropout: float = typer.Option(0.1, help="probability of dropping a whole modality in a view"),
    view_min: int = typer.Option(8, help="shortest view length (L ~ U{view_min..view_max})"),
    view_max: int = typer.Option(16, help="longest view length"),
    grad_clip: float = typer.Option(2.0, help="gradient-norm clipping"),
    seed: int = typer.Option(0, help="seed (init, batches, views)"),
    resume: bool = typer.Option(True, help="continue from OUT/checkpoint.pt"),
    overwrite: bool = typer.Option(False, help="with --no-resume: start again, replacing the checkpoint"),
    checkpoint_every: int = typer.Option(50, help="steps between checkpoints"),
    chunk_size: int = typer.Option(8192, help="pixels read into memory at a time"),
    empty: str = typer.Option("error", help="pixels without any valid observation: error | drop"),
    precision: str = typer.Option("float32", help="float32 (default) | bf16 (CUDA opt-in, recorded)"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda ... (default: cuda when available)"),
    threads: Optional[int] = typer.Option(None, help="CPU threads while training"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Pretrain a pixel encoder with Barlow Twins on PIXELS (eoembed.pixel.pretrain); resumable."""
    from eoembed.pixel.training import pretrain as run

    _check_pixels(pixels)
    check_out_path(out, option="--out")
    check_device(device)
    check_choice("--precision", precision, ("float32", "bf16"))
    check_choice("--empty", empty, ("error", "drop"))
    check_int("--threads", threads, 1, allow_none=True)
    res = run(pixels, size, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, lambd=lambd,
              mix_weight=mix_weight, modality_dropout=modality_dropout, view_length=(view_min, view_max),
              grad_clip=grad_clip, seed=seed, out=out, resume=resume, overwrite=overwrite,
              checkpoint_every=checkpoint_every, chunk_size=chunk_size, empty=empty, precision=precision,
              device=device, threads=threads, progress=progress)
    last = res.history.iloc[-1] if len(res.history) else None
    typer.echo(f"pretrained {res.settings['size']} encoder ({res.n_params:,} parameters, projector "
               f"{res.n_params_proj:,}) on {res.n_pixels} pixels for {len(res.history)} steps at {res.precision}; "
               f"final loss {float(last['loss']) if last is not None else float('nan'):.4g}; wrote {out}")


def encode(
    encoder: str = typer.Argument(..., help="pretrain run folder (or its encoder.pt)"),
    pixels: str = typer.Argument(..., help=_PIXELS_HELP),
    out: Optional[str] = typer.Option(None, help="embedding store (.zarr) to write (resumable by chunk)"),
    model: str = typer.Option("pixel_encoder", help="group name in the store"),
    product: Optional[str] = typer.Option(None, help="gridded int8 product to write (cube pixels only)"),
    batch_size: int = typer.Option(1024, help="pixels per batch"),
    mode: str = typer.Option("bucket", help="bucket (adaptive buckets) | pad (fixed-length padding baseline)"),
    fill: str = typer.Option("resample", help="bucket fill: resample (midpoint, TESSERA) | mask"),
    chunk_size: int = typer.Option(65536, help="pixels per committed store chunk"),
    resume: bool = typer.Option(True, help="keep committed chunks of OUT"),
    overwrite: bool = typer.Option(False, help="replace an existing --product"),
    precision: str = typer.Option("float32", help="float32 (default) | bf16 (CUDA opt-in)"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda ..."),
    threads: Optional[int] = typer.Option(None, help="CPU threads"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Embed PIXELS with a pretrained pixel encoder using adaptive buckets (eoembed.pixel.encode)."""
    from eoembed.pixel.buckets import encode as run

    check_in_path(encoder, option="ENCODER")
    _check_pixels(pixels)
    if out is None and product is None:
        raise typer.BadParameter("give --out (embedding store) and/or --product (gridded int8 product)")
    if out is not None:
        check_out_path(out, option="--out")
    check_device(device)
    check_choice("--mode", mode, ("bucket", "pad"))
    check_choice("--fill", fill, ("resample", "mask"))
    check_choice("--precision", precision, ("float32", "bf16"))
    da = run(encoder, pixels, out=out, model=model, product=product, batch_size=batch_size, mode=mode, fill=fill,
             chunk_size=chunk_size, resume=resume, overwrite=overwrite, device=device, precision=precision,
             threads=threads, progress=progress)
    wrote = ", ".join(str(p) for p in (out, product) if p is not None)
    typer.echo(f"encoded {da.sizes['sample']} pixels -> {da.sizes['feature']}-d in {da.attrs['encode_seconds']} s "
               f"({da.attrs['pixels_per_second']} px/s); {da.attrs['n_no_obs']} without any observation (NaN, "
               f"flagged no_obs); wrote {wrote}")


def register(app: typer.Typer) -> None:
    """Add ``pretrain`` and ``encode`` to the eoembed CLI."""
    app.command("pretrain")(pretrain)
    app.command("encode")(encode)
