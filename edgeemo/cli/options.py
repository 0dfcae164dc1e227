"""Options shared by every command, declared once with ``Annotated`` so that names, help and checks agree.

:func:`runtime_options` adds the options every pipeline command shares to a command, with the library's defaults,
and hands them to it as one :class:`~edgeemo.pipeline.PipelineOptions` (built by :func:`pipeline_options`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from edgeemo.detectors import parse_detector_options
from edgeemo.io.images import DEFAULT_MAX_PIXELS
from edgeemo.pipeline import PipelineOptions
from edgeemo.runtime.session import SessionOptions
from edgeemo.video.reader import DEFAULT_STREAM_TIMEOUT

_RUNTIME = "Runtime"
_FACES = "Faces"

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Model name (see `edgeemo models`), model folder or .onnx file.", rich_help_panel=_RUNTIME
    ),
]
PrecisionOpt = Annotated[
    Literal["fp32", "fp16", "int8"],
    typer.Option("--precision", help="Which exported file of the model to run.", rich_help_panel=_RUNTIME),
]
DeviceOpt = Annotated[
    Literal["auto", "cpu", "cuda", "tensorrt"],
    typer.Option(
        "--device", help="Execution provider; auto picks TensorRT > CUDA > CPU as available.", rich_help_panel=_RUNTIME
    ),
]
StrictDeviceOpt = Annotated[
    bool,
    typer.Option(
        "--strict-device",
        help="Fail when the requested device is unavailable instead of falling back.",
        rich_help_panel=_RUNTIME,
    ),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="onnxruntime intra-op threads (default: one per physical core).",
        rich_help_panel=_RUNTIME,
    ),
]
GraphOptOpt = Annotated[
    Literal["disable", "basic", "extended", "all"],
    typer.Option("--graph-opt", help="onnxruntime graph optimisation level.", rich_help_panel=_RUNTIME),
]
CpuLayoutOpt = Annotated[
    Literal["auto", "portable", "avx512"],
    typer.Option(
        "--cpu-layout",
        help="Which FP32 file the CPU runs: auto takes the AVX-512 layout copy (narrow layers padded to "
        "onnxruntime's 16-channel block) on AVX-512 CPUs; portable always loads model.onnx.",
        rich_help_panel=_RUNTIME,
    ),
]
BatchSliceOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-slice",
        min=0,
        help="Largest batch per session call; more faces run in slices (default: 8 on the CPU, no limit on "
        "CUDA/TensorRT; 0: never slice).",
        rich_help_panel=_RUNTIME,
    ),
]
TrtCacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--trt-cache",
        file_okay=False,
        help="Folder for cached TensorRT engines (TensorRT only).",
        rich_help_panel=_RUNTIME,
    ),
]
VaOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--va",
        help="Separate valence/arousal ONNX model (repeat for each), run on the same crops.",
        rich_help_panel=_RUNTIME,
    ),
]
DeriveVaOpt = Annotated[
    bool,
    typer.Option(
        "--derive-va/--no-derive-va",
        help="Without a VA model, estimate valence/arousal from the class probabilities.",
        rich_help_panel=_RUNTIME,
    ),
]
DetectorOpt = Annotated[
    str,
    typer.Option("--detector", "-d", help="Face detector (see `edgeemo detectors`).", rich_help_panel=_FACES),
]
DetectorOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--detector-option",
        metavar="KEY=VALUE",
        help="Detector keyword option, e.g. upsample=1 (repeatable).",
        rich_help_panel=_FACES,
    ),
]
MarginOpt = Annotated[
    float | None,
    typer.Option(
        "--margin",
        min=0,
        help="Crop margin per side in pixels, replacing the model's framing (default: the framing in the model's "
        "metadata; 30 px, the thesis's, for models without one).",
        rich_help_panel=_FACES,
    ),
]
MarginRatioOpt = Annotated[
    float | None,
    typer.Option(
        "--margin-ratio",
        min=0,
        help="Crop margin per side as a fraction of the box size, replacing the model's framing (and --margin).",
        rich_help_panel=_FACES,
    ),
]
MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        "--max-pixels",
        min=1,
        help="Refuse images with more pixels than this (checked from the header); files larger than 8 bytes "
        "per pixel of it (plus 1 MiB) are not read.",
        rich_help_panel=_FACES,
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
    Literal["auto", "always", "never"],
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

_PIPELINE = PipelineOptions()
_SESSION = SessionOptions()
# The runtime options every pipeline command takes: parameter -> (declaration, default from the library).
SHARED: dict[str, tuple[Any, Any]] = {
    "model": (ModelOpt, _PIPELINE.model),
    "precision": (PrecisionOpt, _PIPELINE.precision),
    "device": (DeviceOpt, _SESSION.device),
    "strict_device": (StrictDeviceOpt, _SESSION.strict_device),
    "threads": (ThreadsOpt, _SESSION.intra_op_threads),
    "graph_opt": (GraphOptOpt, _SESSION.graph_optimization),
    "cpu_layout": (CpuLayoutOpt, _SESSION.cpu_layout),
    "batch_slice": (BatchSliceOpt, _SESSION.batch_slice),
    "trt_cache": (TrtCacheOpt, _SESSION.trt_cache_dir),
    "va": (VaOpt, None),
    "derive_va": (DeriveVaOpt, _PIPELINE.derive_va),
    "detector": (DetectorOpt, _PIPELINE.detector),
    "detector_option": (DetectorOptionOpt, None),
    "margin": (MarginOpt, _PIPELINE.margin),
    "margin_ratio": (MarginRatioOpt, _PIPELINE.margin_ratio),
}
DEFAULTS: dict[str, Any] = {
    "max_pixels": DEFAULT_MAX_PIXELS,
    "stream_timeout": DEFAULT_STREAM_TIMEOUT,
    "va_bars": "auto",
}


def pipeline_options(
    *,
    model: str = _PIPELINE.model,
    precision: str = _PIPELINE.precision,
    device: str = _SESSION.device,
    strict_device: bool = _SESSION.strict_device,
    threads: int | None = _SESSION.intra_op_threads,
    graph_opt: str = _SESSION.graph_optimization,
    cpu_layout: str = _SESSION.cpu_layout,
    batch_slice: int | None = _SESSION.batch_slice,
    trt_cache: Path | None = None,
    va: list[Path] | None = None,
    derive_va: bool = _PIPELINE.derive_va,
    detector: str | None = _PIPELINE.detector,
    detector_option: list[str] | None = None,
    margin: float | None = _PIPELINE.margin,
    margin_ratio: float | None = _PIPELINE.margin_ratio,
) -> PipelineOptions:
    """The shared CLI options as one :class:`PipelineOptions` (TensorRT INT8 follows ``--precision int8``)."""
    return PipelineOptions(
        model=model,
        precision=precision,
        detector=detector,
        detector_options=parse_detector_options(detector_option),
        session=SessionOptions(
            device=device,  # type: ignore[arg-type]  # checked by the option's Literal
            strict_device=strict_device,
            intra_op_threads=threads,
            graph_optimization=graph_opt,
            trt_int8=precision == "int8",
            trt_cache_dir=None if trt_cache is None else str(trt_cache),
            cpu_layout=cpu_layout,
            batch_slice=batch_slice,
        ),
        margin=margin,
        margin_ratio=margin_ratio,
        va_models=tuple(str(p) for p in va or ()),
        derive_va=derive_va,
    )


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
