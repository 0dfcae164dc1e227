"""The typer app and its edge: one place where library errors become one-line messages and exit codes.

Commands live in their own modules, listed in :data:`COMMANDS` and imported only when the command runs or shows
its help: ``edgeemo --version`` and ``edgeemo --help`` load no runtime (OpenCV, onnxruntime, numpy).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from edgeemo import __version__
from edgeemo.errors import EdgeemoError, one_line

# name -> (module that registers it on `app`, the line `edgeemo --help` shows for it)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": (
        "edgeemo.cli.models_cmd",
        "List shipped and user models (EDGEEMO_MODEL_PATH) with precision, size and classes.",
    ),
    "detectors": (
        "edgeemo.cli.detectors_cmd",
        "List face detectors: available ones, and for unavailable ones the reason and the pip extra to install.",
    ),
    "image": ("edgeemo.cli.image_cmd", "Detect and classify faces in images and folders of images."),
    "classify": (
        "edgeemo.cli.classify_cmd",
        "Classify every image of a folder as a face crop and write a Kaggle-style submission CSV.",
    ),
    "video": (
        "edgeemo.cli.video_cmd",
        "Emotions of the faces in a video, webcam or stream: tracked, smoothed, annotated, with a timeline.",
    ),
    "export": (
        "edgeemo.cli.export_cmd",
        "Export a Keras HDF5 model to ONNX (FP32/FP16/INT8) with its facts embedded, then check parity.",
    ),
    "parity": (
        "edgeemo.cli.export_cmd",
        "Compare an exported model's ONNX variants with the original Keras model on a face set.",
    ),
    "train": ("edgeemo.cli.train_cmd", "Train or fine-tune (--init, --qat) a model, then export it with its card."),
    "bench": (
        "edgeemo.cli.bench_cmd",
        "Benchmark classifiers, detectors and the pipeline; render or compare result files.",
    ),
}
# Words a user may write after a flag; digits are left out, since `video --show 0` means webcam 0.
_BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off"})


class _Listed(TyperCommand):
    """A command not imported yet: enough to be listed in ``edgeemo --help``."""


def _bare_flags(params: list[Any]) -> None:
    """Flags take no value, so their help shows no type (typer's rich help would print ``<bool>``)."""
    for param in params:
        if getattr(param, "is_flag", False):
            param.display_type_rich = lambda ctx=None: None


def _flag_names(cmd: Any) -> set[str]:
    """Every spelling of a command's flags (``--recursive``, ``-r``, ``--no-derive-va``)."""
    return {name for p in cmd.params if getattr(p, "is_flag", False) for name in (*p.opts, *p.secondary_opts)}


class _LazyGroup(TyperGroup):
    """The root command: imports a command's module on first use and lists the others from :data:`COMMANDS`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        loaded = dict(self.commands)  # commands whose module is already imported (tests, library users)
        self.commands = {name: loaded.pop(name, None) or _Listed(name) for name in COMMANDS}
        self.commands.update(loaded)
        for name in COMMANDS:
            self.commands[name].short_help = COMMANDS[name][1]
        self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = self.commands.get(cmd_name)
        if isinstance(cmd, _Listed) and not self._listing:
            importlib.import_module(COMMANDS[cmd_name][0])
            cmd = typer.main.get_command(app).commands[cmd_name]  # type: ignore[attr-defined]
            cmd.short_help = COMMANDS[cmd_name][1]
            self.commands[cmd_name] = cmd
        if cmd is not None and not self._listing and not getattr(cmd, "_edgeemo_ready", False):
            self._prepare(cmd, ctx)
        return cmd

    def _prepare(self, cmd: Any, ctx: Any) -> None:
        _bare_flags([*cmd.params, cmd.get_help_option(ctx)])
        for sub in getattr(cmd, "commands", {}).values():
            self._prepare(sub, ctx)
        cmd._edgeemo_ready = True

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None:
            flags = _flag_names(cmd)
            for flag, value in itertools.pairwise(rest):
                if flag in flags and value.lower() in _BOOL_WORDS and not Path(value).exists():
                    raise typer.BadParameter(
                        f"a flag takes no value, and {value!r} would be read as an input name; write {flag} alone",
                        ctx=ctx,
                        param_hint=flag,
                    )
        return name, cmd, rest

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _bare_flags(self.get_params(ctx))
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="edgeemo",
    cls=_LazyGroup,
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
        typer.echo(f"edgeemo: error: {one_line(exc)}", err=True)
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
