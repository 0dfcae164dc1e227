"""Images and folders of images through one pipeline: decode, detect, classify, annotate, write; one outcome each.

:func:`run_images` is what ``edgeemo image`` runs. A bad input becomes an :class:`ImageFailed` and the rest go
on; an output error that will hit every later file too (full disk, read-only folder) stops the run, naming
the inputs not done.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeemo.errors import InputError, OutputError, printable
from edgeemo.io.images import DEFAULT_MAX_PIXELS, list_images, read_image
from edgeemo.io.sinks import prepare_folder, write_image_atomic, write_json_atomic
from edgeemo.pipeline import Pipeline, PipelineOptions
from edgeemo.render.annotate import VaBars, annotate
from edgeemo.results import FrameResult

# Suffixes an annotated copy keeps; other inputs (e.g. GIF, AVIF) get a PNG copy.
WRITABLE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class ImageOutputs:
    """What :func:`run_images` writes: annotated copies (and ``<name>.json`` with ``json``) in ``folder``;
    nothing when ``folder`` is None."""

    folder: Path | None = None
    json: bool = False
    va_bars: VaBars = "auto"


@dataclass(frozen=True)
class ImageDone:
    """One input classified (and its outputs written); times in seconds."""

    path: Path
    result: FrameResult
    decode_s: float
    detect_s: float
    classify_s: float

    def summary(self) -> str:
        """One line: size, faces numbered as on the annotated image (left to right), stage times."""
        r = self.result
        labels = ", ".join(f"#{i} {f.prediction.label} {f.prediction.confidence:.2f}" for i, f in enumerate(r.faces, 1))
        n = len(r.faces)
        skipped = f", {len(r.skipped)} skipped" if r.skipped else ""
        return (
            f"{printable(str(self.path))}: {r.width}x{r.height}, {n} face{'s' if n != 1 else ''}{skipped}"
            f"{': ' + labels if labels else ''} | decode {self.decode_s * 1e3:.1f} ms, "
            f"detect {self.detect_s * 1e3:.1f} ms, classify {self.classify_s * 1e3:.1f} ms"
        )


@dataclass(frozen=True)
class ImageFailed:
    """One input (or a folder without images) that failed; ``not_done``: the inputs abandoned after it, when
    its output error holds for the whole folder."""

    path: Path
    error: InputError
    not_done: tuple[Path, ...] = ()

    @property
    def count(self) -> int:
        """Inputs this outcome accounts for as failed."""
        return 1 + len(self.not_done)


ImageOutcome = ImageDone | ImageFailed


def expand_inputs(paths: Sequence[Path], recursive: bool = False) -> tuple[list[Path], list[ImageFailed]]:
    """Files as given (decoded by content whatever their name); folders give their image files, naturally sorted.

    Returns the files and one failure per folder without images.
    """
    out: list[Path] = []
    problems: list[ImageFailed] = []
    for p in paths:
        if not p.is_dir():
            out.append(p)
            continue
        found = list_images(p, recursive=recursive)
        if not found:
            hint = "" if recursive else " (use --recursive for sub-folders)"
            problems.append(ImageFailed(p, InputError(f"{p}: folder holds no image files{hint}")))
        out.extend(found)
    return out, problems


def output_names(inputs: Sequence[Path]) -> list[str]:
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


def run_images(
    paths: Sequence[str | os.PathLike[str]],
    runtime: PipelineOptions | Pipeline,
    outputs: ImageOutputs = ImageOutputs(),
    *,
    recursive: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Iterator[ImageOutcome]:
    """One outcome per input, in order: folders without images first, then each image file (files with more
    than ``max_pixels`` pixels are refused from their header).

    Raises :class:`InputError` before any work when there is no input at all, or when the output folder is
    the folder of an input (its annotated copies would replace the originals). A pipeline given as ``runtime``
    stays open; one built from options is closed at the end.
    """
    inputs, problems = expand_inputs([Path(p) for p in paths], recursive)
    if not inputs:
        raise InputError("; ".join(str(p.error) for p in problems) or "no inputs")
    yield from problems
    out = outputs.folder
    if out is not None:
        prepare_folder(out)
        clash = [p for p in inputs if p.parent.resolve() == out.resolve()]  # not p.resolve(): links may loop
        if clash:
            raise InputError(f"--out {out} is the folder of input {clash[0]}; choose another folder")
    if isinstance(runtime, Pipeline):
        yield from _run(runtime, inputs, outputs, max_pixels)
    else:
        with Pipeline.from_options(runtime) as pipe:
            yield from _run(pipe, inputs, outputs, max_pixels)


def _run(pipe: Pipeline, inputs: list[Path], outputs: ImageOutputs, max_pixels: int | None) -> Iterator[ImageOutcome]:
    out = outputs.folder
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
                suffix = path.suffix.lower() if path.suffix.lower() in WRITABLE_SUFFIXES else ".png"
                write_image_atomic(out / f"{name}{suffix}", annotate(image, result, va_bars=outputs.va_bars))
                if outputs.json:
                    write_json_atomic(out / f"{name}.json", result.to_dict())
        except OutputError as exc:  # this input's outputs failed; go on unless the folder takes no more files
            rest = tuple(inputs[k + 1 :]) if exc.folder_wide else ()
            yield ImageFailed(path, exc, rest)
            if rest:
                return
            continue
        except InputError as exc:  # DecodeError included: report, go on with the next input
            yield ImageFailed(path, exc)
            continue
        yield ImageDone(path, result, t1 - t0, t2 - t1, t3 - t2)
