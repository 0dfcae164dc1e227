"""Face detectors: one module each, one registry (:mod:`edgeemo.detectors.base`)."""

from __future__ import annotations

from edgeemo.detectors.base import (
    Detector,
    DetectorInfo,
    create_detector,
    detector_names,
    list_detectors,
    register,
)

DEFAULT_DETECTOR = "blazeface"

__all__ = [
    "DEFAULT_DETECTOR",
    "Detector",
    "DetectorInfo",
    "create_detector",
    "detector_names",
    "list_detectors",
    "register",
]
