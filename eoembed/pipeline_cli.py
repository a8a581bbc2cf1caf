"""CLI for :func:`eoembed.pipeline.demo`."""
from __future__ import annotations

from typing import List, Optional

import typer

from eoembed.pipeline import DEMO_MODELS, DEMO_PREFIXES, demo as _demo


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(out: str = typer.Argument("out/demo", help="Output folder (re-running resumes)."),
             n: int = typer.Option(200, help="Number of generated samples."),
             size: int = typer.Option(64, help="Image size in pixels."),
             seed: int = typer.Option(0, help="Seed of the generated sample."),
             models: List[str] = typer.Option(list(DEMO_MODELS), "--model", "-m", help="Models to extract."),
             model_size: str = typer.Option("tiny", help="'tiny' (random, CPU-friendly) or 'full'."),
             epochs: int = typer.Option(20, help="Compressor epochs."),
             eval_every: int = typer.Option(5, help="Evaluate MSE and Q-bar every N epochs."),
             folds: int = typer.Option(10, help="Probe folds per task."),
             out_dim: int = typer.Option(128, help="Compressed embedding size."),
             mode: str = typer.Option("ridge", help="Probe mode beside compat: 'ridge' or 'compat'."),
             device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda when present)."),
             progress: bool = typer.Option(True, help="Show progress bars."),
             prefixes: Optional[List[int]] = typer.Option(None, "--prefix", help=(
                 f"Matryoshka prefix size (repeat; default: those of {list(DEMO_PREFIXES)} below --out-dim).")),
             no_prefixes: bool = typer.Option(False, "--no-prefixes", help="Train the plain compressor."),
             layouts: bool = typer.Option(True, help="Precompute the 2-D UMAP layouts for the dashboard."),
             report: bool = typer.Option(True, help="Write the static report OUT/report.html."),
             serve: bool = typer.Option(True, help="End by serving the dashboard (--no-serve: stop after the "
                                                   "results folder and report.html)."),
             port: int = typer.Option(5006, help="Dashboard port."),
             address: str = typer.Option("127.0.0.1", help="Dashboard address (default: this machine only)."),
             show: bool = typer.Option(False, help="Open a browser tab on the dashboard.")) -> None:
        """Run the main job on the bundled generated sample: sample, extract, evaluate, compress (Matryoshka
        prefixes), evaluate, UMAP layouts, static report; then serve the dashboard and print its URL."""
        _demo(out, n=n, size=size, seed=seed, models=models, model_size=model_size, epochs=epochs,
              eval_every=eval_every, folds=folds, out_dim=out_dim, mode=mode, device=device, progress=progress,
              prefixes=None if no_prefixes else (prefixes or "auto"), layouts=layouts, report=report, serve=serve, port=port,
              address=address, show=show)
