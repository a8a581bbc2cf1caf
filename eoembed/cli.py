"""The ``eoembed`` command line. Each command mirrors a Python function with the same name and arguments.

Every area registers its commands from ``eoembed/<area>/cli.py`` through a ``register(app)`` function,
listed in ``COMMAND_MODULES``.

Errors: one handler (:class:`_Group`) turns eoembed's errors and bad-input errors of any command into one message
on stderr and exit code 2 (Ctrl-C: exit 130), without a traceback; ``eoembed --debug ...`` or
``EOEMBED_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
import traceback

from typing import Any

import typer

from eoembed import plugins as _plugins
from typer.core import TyperGroup

try:  # typer >= 0.2x vendors its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import ClickException

#: Exit codes: a bad input (argument, file, data, labels), an interruption (128 + SIGINT), an internal error.
EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_INTERNAL = 2, 130, 1
#: Commands whose work is kept when interrupted, so re-running the same command continues it.
RESUMABLE = {"sample": "existing sample files are kept", "extract": "committed chunks are kept",
             "train": "checkpoints are kept", "ablate": "finished runs are kept",
             "demo": "finished steps are kept", "sweep": "finished runs are kept",
             "pretrain": "checkpoints are kept", "encode": "committed chunks are kept"}
_BAD_INPUT = (ValueError, KeyError, FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError,
              IsADirectoryError, ImportError)  # ImportError: an optional dependency to install (named in the message)
_HINT = re.compile(r"\b([a-z][a-z_]*)=('[^']*'|\"[^\"]*\"|True|False|[-\w.]*\w|(?=[.,;]?(?:\s|$)))")


def _debug(ctx: Any) -> bool:
    env = os.environ.get("EOEMBED_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    return bool(ctx.params.get("debug")) or env


def _message(err: BaseException) -> str:
    """The text of an error: KeyError without its repr quotes; OS errors with their file name."""
    if isinstance(err, KeyError) and len(err.args) == 1:
        return str(err.args[0])
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.strerror}: {str(err.filename)!r}"
    return str(err) or type(err).__name__


def cli_hints(text: str, command: Any) -> str:
    """Rewrite Python-argument hints (``overwrite=True``, ``nodata='mask'``) as the flags of ``command`` where it
    has them; hints naming arguments the command does not have are left as they are."""
    if command is None:
        return text
    params = {p.name: p for p in getattr(command, "params", []) if getattr(p, "param_type_name", "") == "option"}

    def flag(m: re.Match) -> str:
        p = params.get(m.group(1))
        if p is None:
            return m.group(0)
        if not m.group(2):  # "leave the task out with tasks=." -> "... with --tasks."
            return p.opts[0]
        value = m.group(2).strip("'\"")
        if p.is_flag:
            if value == "True" and p.opts:
                return p.opts[0]
            if value == "False" and p.secondary_opts:
                return p.secondary_opts[0]
            return m.group(0)
        return f"{p.opts[0]} {value}"

    out = _HINT.sub(flag, text)
    return re.sub(r"(--[\w-]+(?: [\w.-]+)?) \(\1\)", r"\1", out)  # "--no-resume (--no-resume)" -> once


def _report(ctx: Any, err: BaseException) -> int:
    """Print one message for ``err`` on stderr; return the exit code."""
    name = ctx.invoked_subcommand or ""
    sub = ctx.command.get_command(ctx, name) if name and hasattr(ctx.command, "get_command") else None
    where = f"eoembed {name}: " if name else "eoembed: "
    if isinstance(err, KeyboardInterrupt):
        kept = RESUMABLE.get(name)
        tail = (f"{kept}; re-run the same command to resume." if kept else
                "nothing was kept; re-run the command to start again.")
        typer.echo(f"\n{where}interrupted (Ctrl-C); {tail}", err=True)
        return EXIT_INTERRUPTED
    if isinstance(err, _BAD_INPUT):
        typer.echo(f"{where}error: {cli_hints(_message(err), sub)}", err=True)
        return EXIT_BAD_INPUT
    typer.echo(f"{where}internal error ({type(err).__name__}: {_message(err)}); not recognised as a bad input. "
               "Re-run with `eoembed --debug ...` for the traceback and report it if it is a bug.", err=True)
    return EXIT_INTERNAL


class _Group(TyperGroup):
    """The eoembed command group: runs a command and maps its exceptions to one message and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (ClickException, typer.Exit, typer.Abort, SystemExit):
            raise
        except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - this is the one error handler
            if _debug(ctx):
                traceback.print_exc(file=sys.stderr)
                if isinstance(err, KeyboardInterrupt):
                    ctx.exit(EXIT_INTERRUPTED)
            ctx.exit(_report(ctx, err))


app = typer.Typer(help="eoembed: Earth-observation embeddings (data, models, evaluation, compression).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=_Group)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", envvar="EOEMBED_DEBUG",
                                     help="show Python tracebacks of errors (also EOEMBED_DEBUG=1)")) -> None:
    """eoembed: Earth-observation embeddings (data, models, evaluation, compression)."""


COMMAND_MODULES: tuple[str, ...] = (
    "eoembed.data.cli",
    "eoembed.extract.cli",
    "eoembed.models.cli",
    "eoembed.compress.cli",
    "eoembed.bench.cli",
    "eoembed.pipeline_cli",
    "eoembed.product.cli",
    "eoembed.scaling.cli",
    "eoembed.projection_cli",
    "eoembed.pixel.cli",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)

# commands of installed plugins (the UI layer adds `eoembed serve`; see eoembed.plugins)
_plugins.register_all(app)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
