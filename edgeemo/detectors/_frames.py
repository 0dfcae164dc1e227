"""The frame check (one for the whole library) and box helpers shared by the built-in detectors."""

from __future__ import annotations

import numpy as np

from edgeemo.errors import InputError
from edgeemo.results import Box


def check_frame(frame: object, detector: str | None = None) -> np.ndarray:
    """``frame`` if it is a BGR (H, W, 3) or gray (H, W) / (H, W, 1) uint8 image (the last as (H, W)), else
    :class:`InputError`; the one check of an image handed to the library, named after ``detector`` when given."""
    who = f"detector {detector!r}: " if detector else ""
    if frame is None:
        raise InputError(
            f"{who}image is None (cv2.imread returns None when it cannot read a file); pass the path instead, "
            "e.g. run_image('photo.jpg'), to get the reason"
        )
    if not isinstance(frame, np.ndarray):
        raise InputError(f"{who}expected a numpy array (an image), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"{who}expected a uint8 image, got dtype {frame.dtype} (decode files with edgeemo.read_image)")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise InputError(f"{who}expected a BGR (H, W, 3) or gray (H, W) image, got shape {frame.shape}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InputError(f"{who}empty image of shape {frame.shape}")
    return frame


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """A contiguous RGB copy of a checked BGR or gray frame."""
    if frame.ndim == 2:
        return np.ascontiguousarray(np.repeat(frame[:, :, None], 3, axis=2))
    return np.ascontiguousarray(frame[:, :, ::-1])


def clipped_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box | None:
    """The box clipped to a ``width`` x ``height`` frame, or None when nothing of it is inside."""
    cx1, cy1 = min(max(float(x1), 0.0), float(width)), min(max(float(y1), 0.0), float(height))
    cx2, cy2 = min(max(float(x2), 0.0), float(width)), min(max(float(y2), 0.0), float(height))
    if cx2 <= cx1 or cy2 <= cy1:
        return None
    return Box(cx1, cy1, cx2, cy2)
