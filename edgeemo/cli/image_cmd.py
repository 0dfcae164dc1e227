"""`edgeemo image PATH...`: detect and classify the faces of images; annotated copies and per-image JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeemo.cli.app import app
from edgeemo.cli.options import DEFAULTS, MaxPixelsOpt, VaBarsOpt, quiet_opencv, runtime_options
from edgeemo.errors import InputError, printable
from edgeemo.image_run import ImageFailed, ImageOutputs, run_images
from edgeemo.pipeline import PipelineOptions


@app.command("image")
@runtime_options()
def image_command(
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATH", help="Image files or folders of images.", show_default=False)
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            "--out-dir",  # the name video uses for its output folder (docs/cli.md)
            file_okay=False,
            help="Folder for annotated images (and JSON).",
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Per-image JSON: <name>.json in --out, else JSON lines on stdout.")
    ] = False,
    max_pixels: MaxPixelsOpt = DEFAULTS["max_pixels"],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include images in sub-folders.")] = False,
    va_bars: VaBarsOpt = DEFAULTS["va_bars"],
    *,
    runtime: PipelineOptions,
) -> None:
    """Detect and classify faces in images. A bad file gets a one-line error and the rest go on; the exit code
    is 2 when any input failed (an image without faces is not a failure)."""
    quiet_opencv()
    failed = total = 0
    outputs = ImageOutputs(out, json_out, va_bars)
    for outcome in run_images(paths, runtime, outputs, recursive=recursive, max_pixels=max_pixels):
        if isinstance(outcome, ImageFailed):
            failed, total = failed + outcome.count, total + outcome.count
            typer.echo(f"edgeemo: error: {printable(str(outcome.error))}", err=True)
            if outcome.not_done:
                rest = outcome.not_done
                names = ", ".join(printable(str(p)) for p in rest[:5]) + (", …" if len(rest) > 5 else "")
                typer.echo(f"edgeemo: error: stopped; {len(rest)} inputs not done: {names}", err=True)
            continue
        total += 1
        if json_out and out is None:
            typer.echo(json.dumps(outcome.result.to_dict(), ensure_ascii=False))
            typer.echo(outcome.summary(), err=True)
        else:
            typer.echo(outcome.summary())
    if failed:
        typer.echo(f"edgeemo: {failed} of {total} inputs failed", err=True)
        raise typer.Exit(code=InputError.exit_code)
