"""Options of more than one command, declared once with ``Annotated`` so that names, help and checks agree.

:func:`runtime_options` adds the runtime options every pipeline command shares (:mod:`edgeemo.cli.shared_options`)
to a command, with the library's defaults, and hands them to it as one :class:`~edgeemo.pipeline.PipelineOptions`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from typing import Annotated, Any, Literal

import typer

from edgeemo.cli.shared_options import FACES_PANEL, SHARED, pipeline_options
from edgeemo.io.images import DEFAULT_MAX_PIXELS
from edgeemo.render.annotate import VaBars

MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        "--max-pixels",
        min=1,
        help="Refuse images with more pixels than this (checked from the header); files larger than 8 bytes "
        "per pixel of it (plus 1 MiB) are not read.",
        rich_help_panel=FACES_PANEL,
    ),
]
StreamTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--stream-timeout",
        min=0.1,
        help="Seconds a stream URL may send nothing (while opening, or between frames) before it counts as "
        "timed out; raise it for slow networks.",
        rich_help_panel="Video",
    ),
]
VaBarsOpt = Annotated[
    VaBars,
    typer.Option(
        "--va-bars",
        help="Valence/arousal panels beside faces, only where they cover no face or other panel (auto: images "
        "with at most 2 faces, every video frame; the values stay in the data either way).",
        rich_help_panel="Drawing",
    ),
]

EngineOpt = Annotated[
    Literal["local", "ray"],
    typer.Option(
        "--engine",
        help="Where the work runs: local (this process) or ray (a Ray cluster: pip install 'edgeemo[ray]'; "
        "see docs/scale-out.md).",
        rich_help_panel="Scale-out",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster to join with --engine ray: auto (the one `ray start` runs here) or ray://HOST:PORT "
        "(default: the RAY_ADDRESS variable, else a Ray started for this run on this machine).",
        rich_help_panel="Scale-out",
    ),
]
ActorsOpt = Annotated[
    int | None,
    typer.Option(
        "--actors",
        min=1,
        help="Ray actors (one model session each) with --engine ray (default: one per cluster CPU, or per GPU "
        "with --device cuda/tensorrt).",
        rich_help_panel="Scale-out",
    ),
]

DEFAULTS: dict[str, Any] = {
    "max_pixels": DEFAULT_MAX_PIXELS,
    "va_bars": "auto",
}


def runtime_options(
    *, without: Collection[str] = (), **declarations: Any
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Gives a command the shared runtime options (less ``without``; ``declarations`` replace a declaration),
    declared once here; the command receives them as one ``runtime: PipelineOptions`` argument."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "runtime"]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=declarations.get(name, decl), default=d)
            for name, (decl, d) in SHARED.items()
            if name not in without
        ]

        def run(**kwargs: Any) -> None:
            given = {name: kwargs.pop(name) for name in SHARED if name in kwargs}
            command(runtime=pipeline_options(**given), **kwargs)

        params = [*own, *shared]
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # what typer reads
        run.__annotations__ = {p.name: p.annotation for p in params}
        run.__name__, run.__qualname__, run.__doc__ = command.__name__, command.__qualname__, command.__doc__
        run.__module__ = command.__module__
        return run

    return decorate


def quiet_opencv() -> None:
    """Silence OpenCV's own stderr logging at the CLI edge: decode failures are reported as DecodeError."""
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
