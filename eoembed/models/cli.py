"""``eoembed models``: the model zoo with dims, modes, licences and whether weights are found locally."""
from __future__ import annotations

import json

import typer


def models(
    json_out: bool = typer.Option(False, "--json", help="print JSON records instead of a table"),
    local_only: bool = typer.Option(False, "--local-only", help="only models whose weights are found locally"),
) -> None:
    """List registered models (mirrors eoembed.models.list_models)."""
    from eoembed.models import list_models
    from eoembed.models.weights import ENV_VAR, hub_checkpoint_dir

    df = list_models()
    if local_only:
        df = df[df["weights_found_locally"]]
    if json_out:
        typer.echo(json.dumps(df.to_dict(orient="records"), indent=1))
        return
    cols = ["name", "family", "modalities", "dims", "temporal", "input_size", "resize", "pooling", "licence",
            "presets", "weights_found_locally"]
    view = df[cols].copy()
    view["pooling"] = view["pooling"].str.slice(0, 40)
    view["weights_found_locally"] = view["weights_found_locally"].map({True: "yes", False: "no"})
    typer.echo(view.to_string(index=False))
    typer.echo(f"\nweights are searched in ${ENV_VAR} and {hub_checkpoint_dir()} (file names: "
               "`eoembed models --json`, column weights_file); weights='auto' downloads when online.")


def register(app: typer.Typer) -> None:
    app.command("models")(models)
