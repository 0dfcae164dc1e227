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
    "MediaPipe BlazeFace as ONNX on onnxruntime, 6 landmarks; model=short|full|auto (default auto); CPU or GPU",
    extra="cpu",
    requires=("onnxruntime",),
)
register(
    "dlib-hog",
    _lazy("dlib_hog", "DlibHogDetector"),
    "dlib HOG + SVM, frontal faces >= ~80 px (upsample=1: >= ~40 px); CPU",
    extra="dlib",
    requires=("dlib",),
)
register(
    "mediapipe",
    _lazy("mediapipe", "MediaPipeDetector"),
    "MediaPipe Tasks FaceDetector, short-range BlazeFace .tflite, 6 landmarks; close-up faces; CPU",
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
