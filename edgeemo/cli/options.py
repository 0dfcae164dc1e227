"""Options shared by every command, declared once with ``Annotated`` so that names, help and checks agree.

:func:`session_options` is the one place where CLI options become :class:`~edgeemo.runtime.session.SessionOptions`;
:func:`pipeline_kwargs` the one place where they become :class:`~edgeemo.pipeline.Pipeline` arguments.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from edgeemo.detectors import DEFAULT_DETECTOR
from edgeemo.errors import InputError
from edgeemo.io.images import DEFAULT_MAX_PIXELS
from edgeemo.runtime.assets import DEFAULT_MODEL
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

DEFAULTS: dict[str, Any] = {
    "model": DEFAULT_MODEL,
    "precision": "fp32",
    "device": "auto",
    "graph_opt": "all",
    "cpu_layout": "auto",
    "detector": DEFAULT_DETECTOR,
    "margin": None,  # the model's framing
    "max_pixels": DEFAULT_MAX_PIXELS,
    "stream_timeout": DEFAULT_STREAM_TIMEOUT,
    "va_bars": "auto",
}


def session_options(
    device: str = "auto",
    strict_device: bool = False,
    threads: int | None = None,
    graph_opt: str = "all",
    trt_cache: Path | None = None,
    precision: str = "fp32",
    cpu_layout: str = "auto",
    batch_slice: int | None = None,
) -> SessionOptions:
    """CLI runtime options → :class:`SessionOptions` (TensorRT INT8 follows ``--precision int8``)."""
    return SessionOptions(
        device=device,  # type: ignore[arg-type]  # checked by the option's Literal
        strict_device=strict_device,
        intra_op_threads=threads,
        graph_optimization=graph_opt,
        trt_int8=precision == "int8",
        trt_cache_dir=None if trt_cache is None else str(trt_cache),
        cpu_layout=cpu_layout,
        batch_slice=batch_slice,
    )


def parse_detector_options(items: list[str] | None) -> dict[str, Any]:
    """``["upsample=1", "threshold=0.5"]`` → ``{"upsample": 1, "threshold": 0.5}`` (literals, else strings)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise InputError(f"--detector-option expects KEY=VALUE, got {item!r}")
        try:
            value: Any = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        out[key.strip()] = value
    return out


def pipeline_kwargs(
    *,
    model: str,
    precision: str,
    device: str,
    strict_device: bool,
    threads: int | None,
    graph_opt: str,
    trt_cache: Path | None,
    cpu_layout: str,
    batch_slice: int | None,
    detector: str | None,
    detector_option: list[str] | None,
    margin: float | None,
    margin_ratio: float | None,
    va: list[Path] | None,
    derive_va: bool,
) -> dict[str, Any]:
    """Keyword arguments of :class:`~edgeemo.pipeline.Pipeline` from the shared CLI options."""
    return {
        "model": model,
        "precision": precision,
        "detector": detector,
        "detector_options": parse_detector_options(detector_option) if detector is not None else None,
        "session_options": session_options(
            device, strict_device, threads, graph_opt, trt_cache, precision, cpu_layout, batch_slice
        ),
        "margin": margin,
        "margin_ratio": margin_ratio,
        "va_models": tuple(va or ()),
        "derive_va": derive_va,
    }


def quiet_opencv() -> None:
    """Silence OpenCV's own stderr logging at the CLI edge: decode failures are reported as DecodeError."""
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
