"""``eoembed bench``: evaluate a NeuCo embedding CSV against a label folder."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command to the eoembed CLI."""

    @app.command("bench")
    def bench(
        embeddings: Path = typer.Argument(..., help="NeuCo embedding CSV (id,0..D-1)."),
        labels: Path = typer.Option(..., "--labels", help="Folder of <task>__<type>.csv label files."),
        out: Path = typer.Option(..., "--out", help="Output folder (results_summary.json, per-task JSON, CSV)."),
        folds: int = typer.Option(40, "--folds", help="Number of 90/10 ShuffleSplit folds (NeuCo default 40)."),
        mode: str = typer.Option("compat", "--mode", help="compat (NeuCo-Bench protocol) | ridge (NOT NeuCo-Bench)."),
        tasks: Optional[list[str]] = typer.Option(None, "--tasks", help="Tasks to run (repeat or comma-separate)."),
        epochs: int = typer.Option(10, "--epochs", help="Probe epochs (compat mode)."),
        seed: int = typer.Option(42, "--seed", help="Seed of probe initialisation and batch order."),
        metric: str = typer.Option("neuco", "--metric", help="neuco (R2/F1) | tessera (chance-adjusted)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda (default: cuda if available)."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Evaluate embeddings with NeuCo-Bench linear probes and print Q per task."""
        from eoembed.checks import check_choice, check_device, check_in_path, check_out_path

        check_in_path(embeddings, option="EMBEDDINGS", kind="file")
        check_in_path(labels, option="--labels", kind="dir")
        check_out_path(out, option="--out")
        check_choice("--mode", mode, ("compat", "ridge"))
        check_choice("--metric", metric, ("neuco", "tessera"))
        check_device(device)
        from eoembed.bench import evaluate

        task_list = [t for item in tasks for t in item.split(",") if t] if tasks else None
        res = evaluate(embeddings, labels, folds=folds, mode=mode, seed=seed, epochs=epochs, tasks=task_list,
                       out=out, device=device, progress=progress, metric=metric)
        typer.echo(res.per_task.to_string(float_format=lambda v: f"{v:.4f}"))
        rep = res.report
        typer.echo(f"overall_q_score={res.overall_q:.4f} overall_acc_score={res.overall_acc:.4f} "
                   f"dropped_no_label={rep['dropped_no_label']['count']} nan_filled_rows={rep['nan_filled']['rows']}")
        typer.echo(f"written to {out}")
