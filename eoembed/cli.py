"""The ``eoembed`` command line. Each command mirrors a Python function with the same name and arguments.

Every area registers its commands from ``eoembed/<area>/cli.py`` through a ``register(app)`` function,
listed in ``COMMAND_MODULES``.
"""
from __future__ import annotations

import importlib

import typer

app = typer.Typer(help="eoembed: Earth-observation embeddings (data, models, evaluation, compression).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

COMMAND_MODULES: tuple[str, ...] = (
    "eoembed.data.cli",
    "eoembed.extract.cli",
    "eoembed.models.cli",
    "eoembed.compress.cli",
    "eoembed.bench.cli",
    "eoembed.pipeline_cli",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
