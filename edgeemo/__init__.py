"""edgeemo: edge-optimised facial emotion recognition on onnxruntime.

The public names below are imported on first use, so that ``import edgeemo`` (and with it ``edgeemo --version``
and ``--help``) loads neither onnxruntime, OpenCV nor numpy.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if importlib.util.find_spec("onnxruntime") is None:
    raise ImportError(
        "edgeemo needs onnxruntime, which is not installed. Install one of the two alternative extras: "
        "pip install 'edgeemo[cpu]' (onnxruntime) or pip install 'edgeemo[gpu]' (onnxruntime-gpu, CUDA/TensorRT; "
        "on NVIDIA Jetson, NVIDIA's onnxruntime-gpu wheel for your JetPack: docs/jetson.md)"
    )

_EXPORTS: dict[str, str] = {
    "annotate": "edgeemo.render.annotate",
    "create_detector": "edgeemo.detectors",
    "list_detectors": "edgeemo.detectors",
    "DecodeError": "edgeemo.errors",
    "DeviceError": "edgeemo.errors",
    "EdgeemoError": "edgeemo.errors",
    "InputError": "edgeemo.errors",
    "MissingDependencyError": "edgeemo.errors",
    "ModelError": "edgeemo.errors",
    "read_image": "edgeemo.io.images",
    "EmotionModel": "edgeemo.runtime.model",
    "Pipeline": "edgeemo.pipeline",
    "PipelineOptions": "edgeemo.pipeline",
    "Box": "edgeemo.results",
    "Face": "edgeemo.results",
    "FaceResult": "edgeemo.results",
    "FrameResult": "edgeemo.results",
    "Prediction": "edgeemo.results",
    "SessionOptions": "edgeemo.runtime.session",
    "Framing": "edgeemo.runtime.spec",
    "ModelSpec": "edgeemo.runtime.spec",
    "VideoOptions": "edgeemo.video.options",
    "VideoSession": "edgeemo.video.session",
}

if TYPE_CHECKING:
    from edgeemo.detectors import create_detector, list_detectors
    from edgeemo.errors import DecodeError, DeviceError, EdgeemoError, InputError, MissingDependencyError, ModelError
    from edgeemo.io.images import read_image
    from edgeemo.pipeline import Pipeline, PipelineOptions
    from edgeemo.render.annotate import annotate
    from edgeemo.results import Box, Face, FaceResult, FrameResult, Prediction
    from edgeemo.runtime.model import EmotionModel
    from edgeemo.runtime.session import SessionOptions
    from edgeemo.runtime.spec import Framing, ModelSpec
    from edgeemo.video.options import VideoOptions
    from edgeemo.video.session import VideoSession

    load_model = EmotionModel.load


def __getattr__(name: str) -> Any:
    if name == "load_model":
        value: Any = __getattr__("EmotionModel").load
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'edgeemo' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Box",
    "DecodeError",
    "DeviceError",
    "EdgeemoError",
    "EmotionModel",
    "Face",
    "FaceResult",
    "FrameResult",
    "Framing",
    "InputError",
    "MissingDependencyError",
    "ModelError",
    "ModelSpec",
    "Pipeline",
    "PipelineOptions",
    "Prediction",
    "SessionOptions",
    "VideoOptions",
    "VideoSession",
    "__version__",
    "annotate",
    "create_detector",
    "list_detectors",
    "load_model",
    "read_image",
]
