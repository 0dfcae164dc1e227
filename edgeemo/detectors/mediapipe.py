"""``mediapipe``: MediaPipe Tasks' FaceDetector with the shipped short-range BlazeFace ``.tflite``.

The reference implementation of what ``blazeface`` reproduces on onnxruntime; needs ``mediapipe`` (the
``mediapipe`` extra), which brings its own TFLite runtime and ``opencv-contrib-python``. MediaPipe's face
detector graph is built for the short-range model (128x128 anchors), so this detector finds faces that fill
a good part of the frame; use ``blazeface`` for group photos and distant faces.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeemo.detectors._frames import clipped_box, to_rgb
from edgeemo.detectors.common import DetectorBase
from edgeemo.errors import InputError, ModelError
from edgeemo.results import Face
from edgeemo.runtime.assets import asset_path

SHORT_RANGE_TFLITE = ("detectors", "blazeface", "face_detection_short_range.tflite")


class MediaPipeDetector(DetectorBase):
    """MediaPipe Tasks FaceDetector in IMAGE mode; boxes in frame pixels, 6 keypoints, best first."""

    name = "mediapipe"

    def __init__(
        self,
        min_score: float = 0.5,
        min_suppression: float = 0.3,
        model_path: str | os.PathLike[str] | None = None,
    ) -> None:
        for label, value in (("min_score", min_score), ("min_suppression", min_suppression)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"detector 'mediapipe': {label} must be within [0, 1], got {value}")
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        path = Path(model_path) if model_path is not None else asset_path(*SHORT_RANGE_TFLITE)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=path.read_bytes()),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=float(min_score),
            min_suppression_threshold=float(min_suppression),
        )
        try:
            self._detector: Any = vision.FaceDetector.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{path}: mediapipe cannot load it ({exc})") from exc
        self._mp = mp

    def _detect(self, frame: np.ndarray) -> list[Face]:
        h, w = frame.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=to_rgb(frame))
        faces = []
        for det in self._detector.detect(image).detections:
            bb = det.bounding_box
            box = clipped_box(bb.origin_x, bb.origin_y, bb.origin_x + bb.width, bb.origin_y + bb.height, w, h)
            if box is None:
                continue
            score = float(det.categories[0].score) if det.categories else 0.0
            landmarks = tuple((float(k.x) * w, float(k.y) * h) for k in det.keypoints) if det.keypoints else None
            faces.append(Face(box, score, landmarks))
        return faces

    def _release(self) -> None:
        self._detector.close()
        self._detector = None
