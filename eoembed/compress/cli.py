"""``eoembed fuse | train | ablate`` (mirror eoembed.compress.fuse, train_compressor, ablate; train --export
writes the selected embeddings like export_embeddings)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from eoembed.errors import EOEmbedError

_ERRORS = (EOEmbedError, ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError)


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(1) from err


def _weights(values: list[str] | None) -> object:
    """``--weights embed2scale`` or ``--weights croma=0.5 --weights dofa=1``."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    out = {}
    for v in values:
        k, sep, w = v.partition("=")
        if not sep:
            raise typer.BadParameter(f"--weights {v!r}: use MODEL_OR_FAMILY=WEIGHT or a preset name")
        out[k] = float(w)
    return out


def fuse(
    store: str = typer.Argument(..., help="embedding store (emb.zarr)"),
    out: str = typer.Argument(..., help="Zarr path to write the fused (sample, feature) array to"),
    models: Optional[list[str]] = typer.Option(None, "--model", "-m", help="models in fusion order (repeat)"),
    overwrite: bool = typer.Option(False, help="replace OUT if it exists"),
) -> None:
    """Concatenate the models of STORE (sorted names or --model order) into one vector per sample."""
    from eoembed.compress.fusion import fuse as run
    try:
        if Path(out).exists() and not overwrite:
            raise FileExistsError(f"{out!r} exists; pass --overwrite or another path")
        fused = run(store, models or None)
        ds = fused.drop_vars("model").to_dataset(name="fused")
        ds.attrs = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in fused.attrs.items()}
        ds["sample"] = ds["sample"].astype(str)
        ds.to_zarr(out, mode="w", consolidated=False)
    except _ERRORS as err:
        _fail(err)
    typer.echo(f"wrote {out}: {fused.sizes['sample']} samples x {fused.sizes['feature']} features; "
               f"slices {fused.attrs['slices']}")


def train(
    store: str = typer.Argument(..., help="embedding store (emb.zarr)"),
    labels: Optional[str] = typer.Option(None, help="NeuCo labels folder (none: select by val MSE)"),
    out: Optional[str] = typer.Option("compress_out", help="folder for checkpoints/, history.csv/json, exports"),
    models: Optional[list[str]] = typer.Option(None, "--model", "-m", help="models in fusion order (repeat)"),
    epochs: Optional[int] = typer.Option(None, help="epochs (default 160)"),
    eval_every: int = typer.Option(5, help="evaluate + checkpoint every N epochs"),
    val_fraction: float = typer.Option(0.2, help="held-out fraction for the validation MSE"),
    select_fraction: float = typer.Option(0.5, help="fraction of the labelled samples that selects the epoch "
                                                    "(the rest reports)"),
    select_task: Optional[list[str]] = typer.Option(None, help="select the epoch on this task, report the others "
                                                              "(repeat; replaces --select-fraction)"),
    select_seed: int = typer.Option(0, help="seed of the selection/report sample split"),
    seed: Optional[int] = typer.Option(None, help="seed (default 1337)"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda ... (default: cuda when available)"),
    preset: Optional[str] = typer.Option(None, help="'embed2scale' = winners' recipe incl. per-model weights"),
    hidden: Optional[int] = typer.Option(None, help="hidden width (default 2048)"),
    out_dim: Optional[int] = typer.Option(None, help="embedding size (default 1024)"),
    batch_size: Optional[int] = typer.Option(None, help="batch size (default 32)"),
    lr: Optional[float] = typer.Option(None, help="AdamW learning rate (default 1e-4)"),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay (default 0.05)"),
    weights: Optional[list[str]] = typer.Option(None, help="preset name or MODEL_OR_FAMILY=W (repeat)"),
    q_folds: Optional[int] = typer.Option(None, help="in-loop evaluation folds (default 40)"),
    q_mode: str = typer.Option("compat", help="evaluation mode of eoembed.bench.evaluate"),
    q_on: str = typer.Option("all", help="in-loop Q on 'all' samples or the 'val' split"),
    resume: bool = typer.Option(True, help="continue from the last checkpoint in OUT"),
    overwrite: bool = typer.Option(False, help="with --no-resume: delete OUT's checkpoints first"),
    threads: Optional[int] = typer.Option(None, help="CPU threads while training (default: 1 for small models)"),
    precision: str = typer.Option("float32", help="float32 (default, same on any machine) | bf16 (CUDA opt-in)"),
    export: Optional[str] = typer.Option(None, help="also write the selected embeddings (*.csv or *.zarr)"),
    dtype: str = typer.Option("float16", help="export dtype: float16 | float32"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train the compressor on STORE; prints the epoch selected on the selection labels, its held-out (report)
    Q-bar and the best-MSE epoch."""
    from eoembed.compress.train import IN_LOOP_Q_FOLDS, train_compressor
    try:
        res = train_compressor(store, labels, models=models or None, epochs=epochs, eval_every=eval_every, out=out,
                               val_fraction=val_fraction, select_fraction=select_fraction,
                               select_tasks=select_task or None, select_seed=select_seed, seed=seed, device=device, preset=preset, hidden=hidden,
                               out_dim=out_dim, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                               weights=_weights(weights), q_folds=q_folds or IN_LOOP_Q_FOLDS, q_mode=q_mode,
                               q_on=q_on, resume=resume, overwrite=overwrite, threads=threads, progress=progress,
                               precision=precision)
        if export:
            res.export(export, dtype=dtype)
    except _ERRORS as err:
        _fail(err)
    typer.echo(f"selected epoch {res.selected_epoch} by {res.selection} (selection Q-bar {res.q_select:.3f}; "
               f"held-out report Q-bar {res.q_report:.3f}); best val MSE {res.best_mse:.4g} at epoch "
               f"{res.best_mse_epoch}; checkpoint {res.checkpoint}")
    if export:
        typer.echo(f"wrote {export}")


def ablate(
    store: str = typer.Argument(..., help="embedding store (emb.zarr)"),
    labels: str = typer.Option(..., help="NeuCo labels folder"),
    out: Optional[str] = typer.Option("ablation_out", help="folder for per-run outputs and the tables"),
    combo: Optional[list[str]] = typer.Option(None, help="a combination as MODEL,MODEL,... (repeat)"),
    baselines: list[str] = typer.Option(["pca", "rcf"], "--baseline", help="pca | rcf (repeat)"),
    cube: Optional[str] = typer.Option(None, help="cube / sample root for the RCF baseline"),
    epochs: Optional[int] = typer.Option(None, help="epochs per run (default 160)"),
    preset: Optional[str] = typer.Option(None, help="compressor preset"),
    out_dim: Optional[int] = typer.Option(None, help="embedding size (default 1024)"),
    eval_folds: int = typer.Option(40, help="folds of the held-out (report) and null-control evaluations"),
    q_folds: Optional[int] = typer.Option(None, help="folds of every selection score (default 40)"),
    select_fraction: float = typer.Option(0.5, help="fraction of the labelled samples used for selection"),
    select_task: Optional[list[str]] = typer.Option(None, help="select on this task, report the others (repeat)"),
    select_seed: int = typer.Option(0, help="seed of the selection/report sample split"),
    null_draws: int = typer.Option(5, help="label permutations of the null control (>= 2)"),
    baseline_dim: Optional[list[int]] = typer.Option(None, help="candidate PCA/RCF size (repeat; default "
                                                               "out_dim/8, /4, /2, out_dim)"),
    q_mode: str = typer.Option("compat", help="evaluation mode"),
    seed: Optional[int] = typer.Option(None, help="seed"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda ..."),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train + score every model combination and the baselines on held-out labels beside a null control; writes
    table.csv, per_task.csv, per_task_null.csv and selection.csv to OUT (columns: see eoembed.compress.ablate)."""
    from eoembed.compress.ablation import ablate as run
    from eoembed.compress.train import IN_LOOP_Q_FOLDS
    try:
        res = run(store, labels, combos=[c.split(",") for c in combo] if combo else None, baselines=baselines,
                  cube=cube, epochs=epochs, preset=preset, out_dim=out_dim, out=out, eval_folds=eval_folds,
                  q_folds=q_folds or IN_LOOP_Q_FOLDS, select_fraction=select_fraction,
                  select_tasks=select_task or None, select_seed=select_seed, null_draws=null_draws,
                  baseline_dims=baseline_dim or None, q_mode=q_mode, seed=seed, device=device, progress=progress)
    except _ERRORS as err:
        _fail(err)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        res.table.to_csv(Path(out) / "table.csv")
        res.per_task.to_csv(Path(out) / "per_task.csv")
        res.per_task_null.to_csv(Path(out) / "per_task_null.csv")
        res.selection.to_csv(Path(out) / "selection.csv", index=False)
    typer.echo(f"{res.split!r}")
    typer.echo(res.table[["method", "out_dim", "selected_epoch", "q_report", "q_null", "q_null_std", "q_gap", "z",
                          "mse"]].to_string())
    if res.table.attrs.get("note"):
        typer.echo(res.table.attrs["note"])


def register(app: typer.Typer) -> None:
    """Add ``fuse``, ``train`` and ``ablate`` to the eoembed CLI."""
    app.command("fuse")(fuse)
    app.command("train")(train)
    app.command("ablate")(ablate)
