"""``dlib-cnn``: dlib's MMOD CNN face detector with the shipped ``mmod_human_face_detector.dat`` (CC0).

More robust than HOG to pose and lighting, but made for a CUDA build of dlib: on a CPU it takes seconds per
frame, so creating it without CUDA logs a warning once per process. Scores are
dlib's detection confidences (MMOD margins), not probabilities.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeemo.detectors._frames import clipped_box, to_rgb
from edgeemo.detectors.common import DetectorBase
from edgeemo.errors import InputError, ModelError
from edgeemo.results import Face
from edgeemo.runtime.assets import asset_path

log = logging.getLogger(__name__)

WEIGHTS = ("detectors", "dlib", "mmod_human_face_detector.dat")
_warned_no_cuda: list[bool] = []


class DlibCnnDetector(DetectorBase):
    """``dlib.cnn_face_detection_model_v1`` on RGB frames, boxes clipped to the frame, best first."""

    name = "dlib-cnn"

    def __init__(self, upsample: int = 0, weights: str | os.PathLike[str] | None = None) -> None:
        if int(upsample) < 0:
            raise InputError(f"detector 'dlib-cnn': upsample must be >= 0, got {upsample}")
        import dlib

        path = Path(weights) if weights is not None else asset_path(*WEIGHTS)
        if not path.is_file():
            raise ModelError(f"{path}: dlib CNN weights not found")
        try:
            self._net: Any = dlib.cnn_face_detection_model_v1(str(path))
        except RuntimeError as exc:
            raise ModelError(f"{path}: dlib cannot load it ({exc})") from exc
        self.upsample = int(upsample)
        self.cuda = bool(getattr(dlib, "DLIB_USE_CUDA", False))
        if not self.cuda and not _warned_no_cuda:
            _warned_no_cuda.append(True)
            log.warning(
                "detector 'dlib-cnn': this dlib build has no CUDA, so the CNN runs on the CPU at seconds per "
                "frame; use 'blazeface' or 'dlib-hog' for speed, or a CUDA build of dlib"
            )

    def _detect(self, frame: np.ndarray) -> list[Face]:
        h, w = frame.shape[:2]
        faces = []
        for d in self._net(to_rgb(frame), self.upsample):
            r = d.rect
            box = clipped_box(r.left(), r.top(), r.right() + 1, r.bottom() + 1, w, h)
            if box is not None:
                faces.append(Face(box, float(d.confidence)))
        return faces

    def _release(self) -> None:
        self._net = None
