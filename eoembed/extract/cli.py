"""``eoembed extract`` command (mirrors eoembed.extract.extract)."""
from __future__ import annotations

from typing import Any, Optional

import typer


def per_model_option(values: list[str] | None, models: list[str], default: Any) -> Any:
    """CLI ``--weights random --weights presto=/path.pt`` -> ``{"*": "random", "presto": "/path.pt"}``."""
    if not values:
        return default
    mapping: dict[str, Any] = {}
    for v in values:
        name, sep, val = v.partition("=")
        if sep and name in models:
            mapping[name] = val
        else:
            mapping["*"] = v
    if set(mapping) == {"*"}:
        return mapping["*"]
    mapping.setdefault("*", default)
    return mapping


def extract(
    data: str = typer.Argument(..., help="sample root (data/ + labels/) or a saved cube (.zarr/.nc)"),
    model: list[str] = typer.Option(..., "--model", "-m", help="registered model name or module:attr (repeat)"),
    out: str = typer.Option("emb.zarr", help="embedding store to write (Zarr directory)"),
    batch_size: int = typer.Option(16, help="samples per model call"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: cuda when available)"),
    weights: Optional[list[str]] = typer.Option(None, help="auto | random | PATH, or MODEL=VALUE (repeat)"),
    size: Optional[list[str]] = typer.Option(None, help="full | tiny, or MODEL=VALUE (repeat)"),
    preset: Optional[list[str]] = typer.Option(None, help="model preset, or MODEL=VALUE (repeat)"),
    chunk_size: Optional[int] = typer.Option(None, help="samples per committed chunk (default 8 x batch size)"),
    num_workers: int = typer.Option(0, help="extra loader threads (read + prepare)"),
    dask_address: Optional[str] = typer.Option(None, help="'local' or a dask scheduler address"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    resume: bool = typer.Option(True, help="resume an unfinished store (--no-resume overwrites it)"),
    missing_bands: str = typer.Option("error", help="error | fill-mean"),
    on_error: str = typer.Option("raise", help="raise | skip (failed rows stay NaN, ids recorded)"),
    precision: str = typer.Option("float32", help="float32 (default, same on any machine) | bf16 (CUDA opt-in)"),
) -> None:
    """Embed every sample of DATA with each --model into the store --out (resumable)."""
    from eoembed.extract.core import extract as run
    res = run(data, models=model, out=out, batch_size=batch_size, device=device,
              weights=per_model_option(weights, model, "auto"), size=per_model_option(size, model, "full"),
              preset=per_model_option(preset, model, None), chunk_size=chunk_size, num_workers=num_workers,
              dask_address=dask_address, progress=progress, resume=resume, missing_bands=missing_bands,
              on_error=on_error, precision=precision)
    typer.echo(f"wrote {res.path}: models {res.models}, {res.n_samples} samples, {res.chunks_computed} chunks "
               f"computed, {res.chunks_skipped} already done, {res.samples_per_s:.1f} samples/s")
    for m, ids in res.failed.items():
        if ids:
            typer.echo(f"{m}: {len(ids)} failed sample(s) left NaN: {ids[:10]}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``extract`` to the eoembed CLI."""
    app.command("extract")(extract)
