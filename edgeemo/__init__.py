"""edgeemo: edge-optimised facial emotion recognition on onnxruntime."""

from __future__ import annotations

__version__ = "0.1.0"

try:
    import onnxruntime as _ort  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "edgeemo needs onnxruntime, which is not installed. Install one of the two alternative extras: "
        "pip install 'edgeemo[cpu]' (onnxruntime) or pip install 'edgeemo[gpu]' (onnxruntime-gpu, CUDA/TensorRT; "
        "on NVIDIA Jetson, NVIDIA's onnxruntime-gpu wheel for your JetPack: docs/jetson.md)"
    ) from _exc

from edgeemo.annotate import annotate
from edgeemo.detectors import create_detector, list_detectors
from edgeemo.errors import (
    DecodeError,
    DeviceError,
    EdgeemoError,
    InputError,
    MissingDependencyError,
    ModelError,
)
from edgeemo.io.images import read_image
from edgeemo.model import EmotionModel
from edgeemo.pipeline import Pipeline
from edgeemo.results import Box, Face, FaceResult, FrameResult, Prediction
from edgeemo.session import SessionOptions
from edgeemo.spec import ModelSpec
from edgeemo.video_session import VideoSession

load_model = EmotionModel.load

__all__ = [
    "Box",
    "DecodeError",
    "DeviceError",
    "EdgeemoError",
    "EmotionModel",
    "Face",
    "FaceResult",
    "FrameResult",
    "InputError",
    "MissingDependencyError",
    "ModelError",
    "ModelSpec",
    "Pipeline",
    "Prediction",
    "SessionOptions",
    "VideoSession",
    "__version__",
    "annotate",
    "create_detector",
    "list_detectors",
    "load_model",
    "read_image",
]
