"""The typer app and its edge: one place where library errors become one-line messages and exit codes."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from edgeemo import __version__
from edgeemo.errors import EdgeemoError

app = typer.Typer(
    name="edgeemo",
    help="Edge-optimised facial emotion recognition: images, folders, video and webcam on onnxruntime.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"verbose": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeemo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging and full tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main() -> None:
    """Console entry point: run the app, turning :class:`EdgeemoError` into a message and its exit code."""
    try:
        # In non-standalone mode click returns (not raises) the code of a `typer.Exit` raised by a command.
        rc = app(standalone_mode=False)
    except EdgeemoError as exc:
        if _state["verbose"]:
            raise
        one_line = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        typer.echo(f"edgeemo: error: {one_line}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("edgeemo: interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort as exc:  # click turns Ctrl-C inside a command into Abort
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            typer.echo("edgeemo: interrupted", err=True)
            sys.exit(130)
        sys.exit(1)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        # Duck-typed: typer < 0.20 raises click.ClickException, newer typer its vendored copy (no `click` module).
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise
    if rc == 130:  # typer turns Ctrl-C inside a command into a returned 130
        typer.echo("edgeemo: interrupted", err=True)
    if isinstance(rc, int) and rc != 0:
        sys.exit(rc)
