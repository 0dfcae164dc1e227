"""``dlib-hog``: dlib's HOG + linear SVM frontal face detector, the thesis's CPU detector.

Finds upright, roughly frontal faces of about 80 px and larger (40 px with ``upsample=1``, at about four
times the cost). Scores are the SVM margins dlib reports (0 is its default threshold), not probabilities.

dlib's detector keeps the image pyramid of its last call inside the object, so one object must not serve two
threads at once; dlib does release the GIL while it scans. Each call therefore borrows a dlib detector from a
small pool (made when none is free; making one is slow, so a pool outlives the threads and runs that use it),
which makes this detector thread-safe: video runs detect frames ahead on every core with it, as they do with
BlazeFace.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from edgeemo.detectors._frames import clipped_box, to_rgb
from edgeemo.detectors.common import DetectorBase
from edgeemo.errors import EdgeemoError, InputError
from edgeemo.results import Face


class DlibHogDetector(DetectorBase):
    """``dlib.get_frontal_face_detector()`` on RGB (or gray) frames, boxes clipped to the frame."""

    name = "dlib-hog"
    thread_safe = True  # each call borrows its own dlib detector from a pool
    cpu_heavy = True  # tens of ms per frame: worth every core even while a video is encoded

    def __init__(self, upsample: int = 0, threshold: float = 0.0) -> None:
        if int(upsample) < 0:
            raise InputError(f"detector 'dlib-hog': upsample must be >= 0, got {upsample}")
        import dlib

        self.upsample = int(upsample)
        self.threshold = float(threshold)
        self._make: Any = dlib.get_frontal_face_detector
        self._lock = threading.Lock()
        self._idle: list[Any] = [self._make()]  # made now so that a broken dlib fails here, not mid-run

    def _borrow(self) -> Any:
        with self._lock:
            if self._closed:
                raise EdgeemoError("detector 'dlib-hog' was closed")
            if self._idle:
                return self._idle.pop()
        return self._make()  # every pooled one is busy on another thread

    def _give_back(self, detector: Any) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(detector)

    def _detect(self, frame: np.ndarray) -> list[Face]:
        image = frame if frame.ndim == 2 else to_rgb(frame)
        detector = self._borrow()
        try:
            rects, scores, _ = detector.run(image, self.upsample, self.threshold)
        finally:
            self._give_back(detector)
        h, w = frame.shape[:2]
        faces = []
        for r, s in zip(rects, scores):
            box = clipped_box(r.left(), r.top(), r.right() + 1, r.bottom() + 1, w, h)
            if box is not None:
                faces.append(Face(box, float(s)))
        return faces

    def _release(self) -> None:
        with self._lock:  # a call that ends now gives its dlib detector back to no one (see _give_back)
            self._idle.clear()
