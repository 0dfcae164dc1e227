"""Face detectors: one module each, one registry (:mod:`edgeemo.detectors.base`).

Built-in detectors are registered here by a lazy factory, so that importing :mod:`edgeemo.detectors` never
imports dlib, mediapipe or onnxruntime; a detector's module is imported when the detector is created.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from edgeemo.detectors.base import (
    Detector,
    DetectorInfo,
    create_detector,
    detector_names,
    list_detectors,
    register,
)

DEFAULT_DETECTOR = "blazeface"


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
