"""CLI for :func:`eoembed.pipeline.demo`."""
from __future__ import annotations

from typing import List, Optional

import typer

from eoembed.pipeline import DEMO_MODELS, demo as _demo


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
             progress: bool = typer.Option(True, help="Show progress bars.")) -> None:
        """Run the main job on the bundled generated sample: sample, extract, evaluate, compress, evaluate."""
        _demo(out, n=n, size=size, seed=seed, models=models, model_size=model_size, epochs=epochs,
              eval_every=eval_every, folds=folds, out_dim=out_dim, mode=mode, device=device, progress=progress)
