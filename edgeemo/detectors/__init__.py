"""Face detectors: one module each, one registry (:mod:`edgeemo.detectors.base`).

Built-in detectors are registered here by a lazy factory, so that importing :mod:`edgeemo.detectors` never
imports dlib, mediapipe or onnxruntime; a detector's module is imported when the detector is created.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from edgeemo.detectors.base import (
    Detector,
    DetectorInfo,
    create_detector,
    detector_names,
    list_detectors,
    register,
)
from edgeemo.errors import InputError

DEFAULT_DETECTOR = "blazeface"


def parse_detector_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``["upsample=1", "threshold=0.5"]`` → ``{"upsample": 1, "threshold": 0.5}`` (literals, else strings)."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise InputError(f"--detector-option expects KEY=VALUE, got {item!r}")
        try:
            value: Any = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        out[key.strip()] = value
    return out


def _lazy(module: str, cls: str) -> Callable[..., Detector]:
    def factory(**options: Any) -> Detector:
        return getattr(importlib.import_module(f"edgeemo.detectors.{module}"), cls)(**options)

    return factory


register(
    "blazeface",
    _lazy("blazeface", "BlazeFaceDetector"),
    "BlazeFace (MediaPipe) as ONNX on onnxruntime, 6 landmarks; model=auto|full|short",
    extra="cpu",
    requires=("onnxruntime",),
    distributions=("onnxruntime", "onnxruntime-gpu"),
)
register(
    "dlib-hog",
    _lazy("dlib_hog", "DlibHogDetector"),
    "dlib HOG + SVM, frontal faces >= ~80 px (upsample=1: ~40 px)",
    extra="dlib",
    requires=("dlib",),
    distributions=("dlib", "dlib-bin"),
)
register(
    "dlib-cnn",
    _lazy("dlib_cnn", "DlibCnnDetector"),
    "dlib MMOD CNN, robust to pose; seconds per frame without CUDA",
    extra="dlib",
    requires=("dlib",),
    distributions=("dlib", "dlib-bin"),
)
register(
    "mediapipe",
    _lazy("mediapipe", "MediaPipeDetector"),
    "MediaPipe Tasks FaceDetector, short-range model, 6 landmarks; close-ups",
    extra="mediapipe",
    requires=("mediapipe",),
)

__all__ = [
    "DEFAULT_DETECTOR",
    "Detector",
    "DetectorInfo",
    "create_detector",
    "detector_names",
    "list_detectors",
    "register",
]
