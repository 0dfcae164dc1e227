"""Face crops: framing, clipping and border replicate, for all faces of a frame at once.

How much of the face and its surroundings a crop holds is a fact of the model (:class:`~edgeemo.runtime.spec.Framing`
in its metadata: where its training faces sat around a detector's box); the thesis cut each face with a 30 px margin per
side. The part of a crop outside the frame is filled by replicating the border (``cv2.copyMakeBorder(...,
cv2.BORDER_REPLICATE)``), as the thesis did. A box that cannot be cropped (non-finite, empty, or entirely outside
the frame) is *reported* in :attr:`CropBatch.skipped` with its index; :attr:`CropBatch.kept` holds the index of the
face each crop came from, so results are always attached to their own face. (The thesis zipped labels with all boxes
instead of the valid ones: one skipped crop moved every later label onto the wrong face.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgeemo.errors import InputError
from edgeemo.results import Box, Face
from edgeemo.runtime.spec import THESIS_FRAMING, Framing


@dataclass(frozen=True)
class CropBatch:
    """Crops of one frame: ``crops[k]`` is the crop of face ``kept[k]``; ``skipped`` lists (index, reason)."""

    crops: tuple[np.ndarray, ...]
    kept: tuple[int, ...]
    skipped: tuple[tuple[int, str], ...] = ()

    def __len__(self) -> int:
        return len(self.crops)


def framing_override(margin: float | None, margin_ratio: float | None) -> Framing | None:
    """The user's framing from ``--margin`` (pixels) / ``--margin-ratio`` (which wins), or None for the model's.

    Negative or non-finite values are refused with :class:`InputError` (a ValueError would reach users as a
    traceback).
    """
    if margin_ratio is not None:
        if not math.isfinite(margin_ratio) or margin_ratio < 0:
            raise InputError(f"margin ratio must be a finite number >= 0, got {margin_ratio}")
        return Framing.ratio(margin_ratio)
    if margin is not None:
        if not math.isfinite(margin) or margin < 0:
            raise InputError(f"margin must be a finite number of pixels >= 0, got {margin}")
        return Framing.pixels(margin)
    return None


def expand_box(box: Box, framing: Framing = THESIS_FRAMING) -> tuple[int, int, int, int]:
    """Integer crop rectangle ``(x1, y1, x2, y2)`` (``x2``/``y2`` exclusive) around ``box``; may leave the frame."""
    if framing.unit == "box":
        sx, sy = box.width, box.height
    else:
        sx = sy = 1.0
    x1, x2 = box.x1 - framing.left * sx, box.x2 + framing.right * sx
    y1, y2 = box.y1 - framing.top * sy, box.y2 + framing.bottom * sy
    if framing.square:
        grow_x, grow_y = max(0.0, (y2 - y1) - (x2 - x1)) / 2, max(0.0, (x2 - x1) - (y2 - y1)) / 2
        x1, x2, y1, y2 = x1 - grow_x, x2 + grow_x, y1 - grow_y, y2 + grow_y
    return math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)


def degenerate_reason(box: Box, width: int, height: int) -> str | None:
    """Why ``box`` cannot be cropped from a ``width`` x ``height`` frame, or None when it can."""
    coords = (box.x1, box.y1, box.x2, box.y2)
    if not all(math.isfinite(c) for c in coords):
        return f"box has non-finite coordinates {coords}"
    if box.x2 - box.x1 < 1 or box.y2 - box.y1 < 1:
        return f"box is empty or inverted ({box.x2 - box.x1:.1f}x{box.y2 - box.y1:.1f} px)"
    if box.x2 <= 0 or box.y2 <= 0 or box.x1 >= width or box.y1 >= height:
        return f"box ({box.x1:.0f},{box.y1:.0f})-({box.x2:.0f},{box.y2:.0f}) lies outside the {width}x{height} frame"
    return None


Eyes = tuple[tuple[float, float], tuple[float, float]]  # the subject's right eye, then left (image left, right)


def crop_box(frame: np.ndarray, box: Box, framing: Framing = THESIS_FRAMING, eyes: Eyes | None = None) -> np.ndarray:
    """One framed crop; the part outside the frame is filled by replicating the border.

    With ``framing.align`` and ``eyes``, the crop is turned about the box's centre so the eyes are level.
    Returns a view of ``frame`` when the rectangle lies inside it (no copy), else a new array. Raises
    :class:`InputError` for a degenerate box.
    """
    h, w = frame.shape[:2]
    reason = degenerate_reason(box, w, h)
    if reason is not None:
        raise InputError(reason)
    x1, y1, x2, y2 = expand_box(box, framing)
    if framing.align and eyes is not None:
        (rx, ry), (lx, ly) = eyes
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
        m = cv2.getRotationMatrix2D(((box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2), angle, 1.0)
        m[:, 2] -= (x1, y1)
        return cv2.warpAffine(frame, m, (x2 - x1, y2 - y1), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if cx2 <= cx1 or cy2 <= cy1:
        raise InputError(f"the crop ({framing.describe()}) of box {box.to_dict()} lies outside the {w}x{h} frame")
    roi = frame[cy1:cy2, cx1:cx2]
    top, bottom, left, right = cy1 - y1, y2 - cy2, cx1 - x1, x2 - cx2
    if top or bottom or left or right:
        return cv2.copyMakeBorder(roi, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return roi


def crop_faces(
    frame: np.ndarray,
    boxes: Sequence[Box],
    framing: Framing = THESIS_FRAMING,
    eyes: Sequence[Eyes | None] | None = None,
) -> CropBatch:
    """Crops of all ``boxes``; degenerate boxes are skipped *and reported* with their index and reason."""
    crops: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[tuple[int, str]] = []
    for i, box in enumerate(boxes):
        try:
            crops.append(crop_box(frame, box, framing, None if eyes is None else eyes[i]))
        except InputError as exc:
            skipped.append((i, str(exc)))
            continue
        kept.append(i)
    return CropBatch(tuple(crops), tuple(kept), tuple(skipped))


def face_eyes(face: Face) -> Eyes | None:
    """The eyes of a detection whose landmarks start with them (BlazeFace, MediaPipe), else None."""
    if face.landmarks is None or len(face.landmarks) < 2:
        return None
    return face.landmarks[0], face.landmarks[1]
