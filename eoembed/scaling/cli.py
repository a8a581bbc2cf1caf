"""``eoembed sweep | scaling-laws`` (mirror eoembed.scaling.sweep and eoembed.scaling.scaling_laws)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from eoembed.checks import check_choice, check_int, check_out_path


def _grid(grid: str) -> object:
    """GRID: a JSON file (dict of axes or list of configs) or the JSON text itself."""
    p = Path(grid)
    text = p.read_text() if p.is_file() else grid
    if not p.is_file() and not text.lstrip().startswith(("{", "[")):
        raise typer.BadParameter(f"GRID {grid!r} is neither a file nor JSON; give e.g. "
                                 "'{\"n_enc\": [1e4, 1e5], \"n_pixels\": [1e5, 1e6]}' or a .json file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise typer.BadParameter(f"GRID {grid!r} is not valid JSON: {err}") from None


def sweep(
    grid: str = typer.Argument(..., help="JSON file or text: {axis: [values]} (cartesian product) or [config, ...]"),
    out: str = typer.Option(..., "--out", help="folder of the sweep table (sweep.parquet)"),
    run_fn: Optional[str] = typer.Option(None, help="run function 'module:function' "
                                         "(default eoembed.pixel:pretrain_and_score)"),
    scheduler: Optional[str] = typer.Option(None, help="'local' (dask LocalCluster, 2 workers) or a dask scheduler "
                                            "address; default: runs in this process"),
    resume: bool = typer.Option(True, help="skip runs already finished in OUT (--no-resume: OUT must be new)"),
    progress: bool = typer.Option(True, help="progress bar"),
    on_error: str = typer.Option("raise", help="raise | record (go on after a failed run)"),
) -> None:
    """Run one pretraining run per config of GRID; rows are appended to OUT/sweep.parquet (resumable)."""
    from eoembed.scaling.runner import ON_ERROR, SweepError, sweep as run
    check_choice("--on-error", on_error, ON_ERROR)
    check_out_path(out, option="--out")
    try:
        table = run(_grid(grid), out, run_fn=run_fn, scheduler=scheduler, resume=resume, progress=progress,
                    on_error=on_error)
    except SweepError as err:  # a run failed: its own error, not eoembed's; exit 1
        typer.echo(f"eoembed sweep: {err}".replace("on_error='record'", "--on-error record"), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{len(table)} finished runs in {Path(out) / 'sweep.parquet'}")


def scaling_laws(
    table: str = typer.Argument(..., help="sweep folder (or its sweep.parquet)"),
    y: str = typer.Option("final_loss", help="column to optimise: final_loss (min) or score (max)"),
    x: str = typer.Option("n_params_enc", help="size axis of the quadratics: n_params_enc or n_pixels"),
    goal: Optional[str] = typer.Option(None, help="min | max (default from the name of y)"),
    width: float = typer.Option(0.25, help="iso-FLOP bucket width in decades of compute"),
    budget: Optional[str] = typer.Option(None, help="column with each run's planned budget (e.g. cfg_flops)"),
    min_points: int = typer.Option(3, help="sizes needed in a bucket for a vertex"),
    window: Optional[float] = typer.Option(1.0, help="fit only runs within this many decades of the best run"),
    n_boot: int = typer.Option(200, help="bootstrap draws"),
    ci: float = typer.Option(0.95, help="bootstrap interval level"),
    seed: int = typer.Option(0, help="bootstrap seed"),
    nan_policy: str = typer.Option("raise", help="raise | omit (runs with NaN loss/score)"),
) -> None:
    """Iso-FLOP fits and power laws N_opt ~ C^a, D_opt ~ C^b with bootstrap and leave-one-bucket-out intervals."""
    import pandas as pd

    from eoembed.scaling.fit import NAN_POLICIES, loss_score_correlation, scaling_laws as run
    from eoembed.scaling.runner import read_sweep
    check_choice("--nan-policy", nan_policy, NAN_POLICIES)
    check_int("--n-boot", n_boot, 0)
    df = read_sweep(table)
    fit = run(df, y=y, x=x, goal=goal, width=width, budget=budget, min_points=min_points, window=window,
              n_boot=n_boot, ci=ci, seed=seed, nan_policy=nan_policy)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        typer.echo("Iso-FLOP buckets (vertex of a quadratic in log10 " + x + "):")
        typer.echo(fit.curves[["flops", "n_runs", "n_sizes", "x_opt", "y_opt", "n_opt", "d_opt", "valid",
                               "reason"]].to_string(float_format=lambda v: f"{v:.4g}"))
        typer.echo(f"\nPower laws through the vertices ({ci:.0%} bootstrap, leave-one-bucket-out range):")
        typer.echo(fit.exponents.to_string(float_format=lambda v: f"{v:.4g}"))
        if "score" in df and "final_loss" in df:
            typer.echo("\nPretraining loss vs downstream score:")
            typer.echo(loss_score_correlation(df, width=width, nan_policy=nan_policy)
                       .to_string(float_format=lambda v: f"{v:.3g}"))


def register(app: typer.Typer) -> None:
    """Add ``sweep`` and ``scaling-laws`` to the eoembed CLI."""
    app.command("sweep")(sweep)
    app.command("scaling-laws")(scaling_laws)
