"""edgeemo: edge-optimised facial emotion recognition on onnxruntime."""

from __future__ import annotations

__version__ = "0.1.0"

try:
    import onnxruntime as _ort  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "edgeemo needs onnxruntime, which is not installed. Install one of the two alternative extras: "
        "pip install 'edgeemo[cpu]' (onnxruntime) or pip install 'edgeemo[gpu]' (onnxruntime-gpu, CUDA/TensorRT)"
    ) from _exc

from edgeemo.errors import (
    DecodeError,
    DeviceError,
    EdgeemoError,
    InputError,
    MissingDependencyError,
    ModelError,
)
from edgeemo.model import EmotionModel
from edgeemo.session import SessionOptions
from edgeemo.spec import ModelSpec

load_model = EmotionModel.load

__all__ = [
    "DecodeError",
    "DeviceError",
    "EdgeemoError",
    "EmotionModel",
    "InputError",
    "MissingDependencyError",
    "ModelError",
    "ModelSpec",
    "SessionOptions",
    "__version__",
    "load_model",
]
