"""`edgeemo image PATH...`: detect and classify the faces of images; annotated copies and per-image JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from edgeemo.cli.app import app
from edgeemo.cli.options import (
    DEFAULTS,
    MaxPixelsOpt,
    VaBarsOpt,
    quiet_opencv,
    runtime_options,
)
from edgeemo.errors import InputError, OutputError, printable
from edgeemo.io.images import list_images, read_image
from edgeemo.io.sinks import prepare_folder, write_image_atomic, write_json_atomic
from edgeemo.pipeline import Pipeline, PipelineOptions
from edgeemo.render.annotate import annotate
from edgeemo.results import FrameResult

_WRITABLE = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def expand_inputs(paths: list[Path], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Files as given (decoded by content whatever their name); folders give their image files, naturally sorted.

    Returns the files and one problem message per folder without images.
    """
    out: list[Path] = []
    problems: list[str] = []
    for p in paths:
        if not p.is_dir():
            out.append(p)
            continue
        found = list_images(p, recursive=recursive)
        if not found:
            hint = "" if recursive else " (use --recursive for sub-folders)"
            problems.append(f"{p}: folder holds no image files{hint}")
        out.extend(found)
    return out, problems


def output_names(inputs: list[Path]) -> list[str]:
    """One distinct output stem per input (``photo``, ``photo-2`` when two inputs share a name)."""
    used: set[str] = set()
    names = []
    for p in inputs:
        stem, k = p.stem, 1
        while (stem if k == 1 else f"{stem}-{k}") in used:
            k += 1
        name = stem if k == 1 else f"{stem}-{k}"
        used.add(name)
        names.append(name)
    return names


def summary_line(path: Path, result: FrameResult, decode_ms: float, detect_ms: float, classify_ms: float) -> str:
    labels = ", ".join(  # numbered as on the annotated image (left to right)
        f"#{i} {f.prediction.label} {f.prediction.confidence:.2f}" for i, f in enumerate(result.faces, 1)
    )
    n = len(result.faces)
    skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
    return (
        f"{printable(str(path))}: {result.width}x{result.height}, {n} face{'s' if n != 1 else ''}{skipped}"
        f"{': ' + labels if labels else ''} | decode {decode_ms:.1f} ms, detect {detect_ms:.1f} ms, "
        f"classify {classify_ms:.1f} ms"
    )


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
    inputs, problems = expand_inputs(paths, recursive)
    if not inputs:
        raise InputError("; ".join(problems) or "no inputs")
    for problem in problems:
        typer.echo(f"edgeemo: error: {printable(problem)}", err=True)
    if out is not None:
        prepare_folder(out)
        clash = [p for p in inputs if p.parent.resolve() == out.resolve()]  # not p.resolve(): links may loop
        if clash:
            raise InputError(f"--out {out} is the folder of input {clash[0]}; choose another folder")
    failed = len(problems)
    with Pipeline.from_options(runtime) as pipe:
        for k, (path, name) in enumerate(zip(inputs, output_names(inputs))):
            try:
                t0 = time.perf_counter()
                image = read_image(path, max_pixels=max_pixels)
                t1 = time.perf_counter()
                faces = pipe.detect(image)
                t2 = time.perf_counter()
                result = pipe.classify_faces(image, faces, source=str(path))
                t3 = time.perf_counter()
                if out is not None:
                    suffix = path.suffix.lower() if path.suffix.lower() in _WRITABLE else ".png"
                    write_image_atomic(out / f"{name}{suffix}", annotate(image, result, va_bars=va_bars))
                    if json_out:
                        write_json_atomic(out / f"{name}.json", result.to_dict())
            except OutputError as exc:  # this input's outputs failed; go on unless the folder takes no more files
                failed += 1
                typer.echo(f"edgeemo: error: {printable(str(exc))}", err=True)
                rest = inputs[k + 1 :]
                if exc.folder_wide and rest:
                    failed += len(rest)
                    names = ", ".join(printable(str(p)) for p in rest[:5]) + (", …" if len(rest) > 5 else "")
                    typer.echo(f"edgeemo: error: stopped; {len(rest)} inputs not done: {names}", err=True)
                    break
                continue
            except InputError as exc:  # DecodeError included: report, go on with the next input
                failed += 1
                typer.echo(f"edgeemo: error: {printable(str(exc))}", err=True)
                continue
            line = summary_line(path, result, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
            if json_out and out is None:
                typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
                typer.echo(line, err=True)
            else:
                typer.echo(line)
    if failed:
        typer.echo(f"edgeemo: {failed} of {len(inputs) + len(problems)} inputs failed", err=True)
        raise typer.Exit(code=InputError.exit_code)
