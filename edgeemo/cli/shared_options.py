"""The runtime options every pipeline command shares, declared once with ``Annotated`` so that names, help and
checks agree, with the library's defaults (:data:`SHARED`), and how their values become one
:class:`~edgeemo.pipeline.PipelineOptions` (:func:`pipeline_options`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeemo.detectors import parse_detector_options
from edgeemo.pipeline import PipelineOptions
from edgeemo.runtime.session import CpuLayout, Device, GraphOptLevel, SessionOptions
from edgeemo.runtime.spec import Precision

_RUNTIME = "Runtime"
FACES_PANEL = "Faces"

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Model name (see `edgeemo models`), model folder or .onnx file.",
        rich_help_panel=_RUNTIME,
    ),
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option("--precision", help="Which exported file of the model to run.", rich_help_panel=_RUNTIME),
]
DeviceOpt = Annotated[
    Device,
    typer.Option(
        "--device",
        help="Execution provider; auto picks TensorRT > CUDA > CPU as available.",
        rich_help_panel=_RUNTIME,
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
    GraphOptLevel,
    typer.Option("--graph-opt", help="onnxruntime graph optimisation level.", rich_help_panel=_RUNTIME),
]
CpuLayoutOpt = Annotated[
    CpuLayout,
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
    typer.Option("--detector", "-d", help="Face detector (see `edgeemo detectors`).", rich_help_panel=FACES_PANEL),
]
DetectorOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--detector-option",
        metavar="KEY=VALUE",
        help="Detector keyword option, e.g. upsample=1 (repeatable).",
        rich_help_panel=FACES_PANEL,
    ),
]
MarginOpt = Annotated[
    float | None,
    typer.Option(
        "--margin",
        min=0,
        help="Crop margin per side in pixels, replacing the model's framing (default: the framing in the model's "
        "metadata; 30 px, the thesis's, for models without one).",
        rich_help_panel=FACES_PANEL,
    ),
]
MarginRatioOpt = Annotated[
    float | None,
    typer.Option(
        "--margin-ratio",
        min=0,
        help="Crop margin per side as a fraction of the box size, replacing the model's framing (and --margin).",
        rich_help_panel=FACES_PANEL,
    ),
]
FlipOpt = Annotated[
    bool,
    typer.Option(
        "--flip",
        help="Also classify each face's mirror image and average the two (horizontal-flip test-time "
        "augmentation): a little more accurate at twice the classifier's compute (docs/default-model.md).",
        rich_help_panel=_RUNTIME,
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
    "flip": (FlipOpt, _PIPELINE.flip),
    "detector": (DetectorOpt, _PIPELINE.detector),
    "detector_option": (DetectorOptionOpt, None),
    "margin": (MarginOpt, _PIPELINE.margin),
    "margin_ratio": (MarginRatioOpt, _PIPELINE.margin_ratio),
}


def pipeline_options(
    *,
    model: str = _PIPELINE.model,
    precision: Precision = _PIPELINE.precision,
    device: Device = _SESSION.device,
    strict_device: bool = _SESSION.strict_device,
    threads: int | None = _SESSION.intra_op_threads,
    graph_opt: GraphOptLevel = _SESSION.graph_optimization,
    cpu_layout: CpuLayout = _SESSION.cpu_layout,
    batch_slice: int | None = _SESSION.batch_slice,
    trt_cache: Path | None = None,
    va: list[Path] | None = None,
    derive_va: bool = _PIPELINE.derive_va,
    flip: bool = _PIPELINE.flip,
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
            device=device,
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
        flip=flip,
    )
