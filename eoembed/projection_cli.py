"""CLI for :func:`eoembed.projection.layouts` (``eoembed layouts RESULTS``)."""
from __future__ import annotations

from typing import List, Optional

import typer


def layouts(results: str = typer.Argument(..., help="Results folder written by `eoembed demo`."),
            n_neighbors: int = typer.Option(15, help="UMAP n_neighbors."),
            min_dist: float = typer.Option(0.1, help="UMAP min_dist."),
            seed: int = typer.Option(0, help="UMAP random_state."),
            names: Optional[List[str]] = typer.Option(None, "--name", "-n",
                                                      help="Embeddings to lay out (default: all)."),
            method: str = typer.Option("umap", help="'umap' or 'pca'."),
            prefixes: Optional[List[int]] = typer.Option(None, "--prefix", "-k",
                                                         help="Also lay out the first K coordinates (repeatable)."),
            progress: bool = typer.Option(True, help="Show progress bars.")) -> None:
    """Precompute a 2-D layout of every embedding in RESULTS into RESULTS/layouts/ (cached: re-runs are instant)."""
    from eoembed.projection import LAYOUTS_DIR, layouts as _layouts

    out = _layouts(results, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, names=names or None,
                   method=method, prefixes=prefixes or (), progress=progress)
    for name, lay in out.items():
        typer.echo(f"{name}: {lay.attrs['method']} layout of {lay.sizes['sample']} samples"
                   f"{' (cached)' if lay.attrs.get('cached') else ''}")
    typer.echo(f"wrote {len(out)} layouts to {results}/{LAYOUTS_DIR}")


def register(app: typer.Typer) -> None:
    """Add ``layouts`` to the eoembed CLI."""
    app.command("layouts")(layouts)
