"""``eoembed sample``, ``worldcereal-cube`` and ``validate`` commands (same names and arguments as the Python functions)."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the data commands to the ``eoembed`` app."""

    @app.command("sample")
    def sample_cmd(out: Path = typer.Argument(..., help="output folder (created; resumed if it holds the same sample)"),
                   n: int = typer.Option(300, help="number of locations"),
                   seed: int = typer.Option(0, help="random seed (files are bit-identical for a seed)"),
                   size: int = typer.Option(264, help="image size in pixels"),
                   part_size: int = typer.Option(1000, help="files per part-NNNNNN folder"),
                   progress: bool = typer.Option(True, help="show a progress bar")) -> None:
        """Write the synthetic SSL4EO-S12-downstream sample dataset (11 tasks) to OUT."""
        from eoembed.data.synthetic import sample
        root = sample(out, n=n, seed=seed, size=size, part_size=part_size, progress=progress)
        typer.echo(f"wrote {n} samples ({size}x{size} px) to {root}")

    @app.command("worldcereal-cube")
    def worldcereal_cube_cmd(path: Path = typer.Argument(..., help="WorldCereal preprocessed-inputs .nc file"),
                             out: Path = typer.Option(..., help="output cube store (.zarr folder, must not exist)"),
                             tile: int = typer.Option(50, help="tile size in px (the grid must divide by it)")) -> None:
        """Convert a WorldCereal monthly cube to the 4-season cube form (eoembed.data.worldcereal_cube), saved as Zarr."""
        import shutil

        from eoembed.checks import check_in_path, check_int, check_out_path
        from eoembed.data.worldcereal import worldcereal_cube
        check_in_path(path, option="PATH", kind="file")
        check_out_path(out, option="--out", exist_ok=False)
        check_int("--tile", tile, 1)
        cube = worldcereal_cube(path, tile=tile)
        tmp = out.with_name(out.name + ".eoembed-tmp")  # renamed into place when complete: no half-written cube
        if tmp.exists():
            shutil.rmtree(tmp)
        cube.to_zarr(tmp, mode="w-")
        tmp.rename(out)
        typer.echo(f"wrote {cube.sizes['sample']} samples x {cube.sizes['band']} bands ({tile} px) to {out}; "
                   f"missing bands: {len(cube.attrs.get('missing_bands', []))}")

    @app.command("validate")
    def validate_cmd(ctx: typer.Context, root: Path = typer.Argument(..., help="dataset root (holds data/ and labels/)"),
                     nodata: str = typer.Option("error", help="NaN policy: error | mask | allow"),
                     missing_seasons: str = typer.Option("error", help="whole-season gaps: error | allow"),
                     check_values: bool = typer.Option(True, help="read every file to check values"),
                     progress: bool = typer.Option(True, help="show a progress bar")) -> None:
        """Validate a dataset folder and print a report; exit code 2 with the reason when invalid."""
        from eoembed.data.validation import validate
        from eoembed.errors import EOEmbedError
        try:
            rep = validate(root, nodata=nodata, missing_seasons=missing_seasons, check_values=check_values,
                           progress=progress)
        except EOEmbedError as e:
            from eoembed.cli import cli_hints
            typer.echo(f"INVALID {root}: {cli_hints(str(e), ctx.command)}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"OK {root}")
        typer.echo(f"  samples      {rep['n_samples']}  shape {rep['shape']}")
        mods = {}
        for b in rep["bands"]:
            mods.setdefault(b.partition('/')[0], []).append(b.partition('/')[2])
        for m, bs in mods.items():
            rng = rep.get("value_range", {}).get(m)
            r = f"  range {rng[0]:.4g}..{rng[1]:.4g}" if rng else ""
            typer.echo(f"  {m:<12} {len(bs)} bands{r}")
        if rep["missing_bands"]:
            typer.echo(f"  missing      {len(rep['missing_bands'])} bands: {', '.join(rep['missing_bands'])}")
        if "nan_fraction" in rep:
            typer.echo(f"  NaN fraction {rep['nan_fraction']:.4g}")
        typer.echo(f"  lat/lon      known for {rep['lat_lon_known']} samples")
        for t, d in rep["tasks"].items():
            typer.echo(f"  task {t:<24} {d['type']:<15} {d['n_labelled']} labelled")
