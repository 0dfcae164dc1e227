"""Face crops: margin, clipping and border replicate, for all faces of a frame at once.

The thesis cut each face with a 30 px margin per side and filled the part outside the frame by replicating the
border (``cv2.copyMakeBorder(..., cv2.BORDER_REPLICATE)``); this module does the same, or scales the margin
with the box (``margin_ratio``). A box that cannot be cropped (non-finite, empty, or entirely outside the
frame) is *reported* in :attr:`CropBatch.skipped` with its index; :attr:`CropBatch.kept` holds the index of
the face each crop came from, so results are always attached to their own face. (The thesis zipped labels
with all boxes instead of the valid ones: one skipped crop moved every later label onto the wrong face.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgeemo.errors import InputError
from edgeemo.results import Box

DEFAULT_MARGIN = 30


@dataclass(frozen=True)
class CropBatch:
    """Crops of one frame: ``crops[k]`` is the crop of face ``kept[k]``; ``skipped`` lists (index, reason)."""

    crops: tuple[np.ndarray, ...]
    kept: tuple[int, ...]
    skipped: tuple[tuple[int, str], ...] = ()

    def __len__(self) -> int:
        return len(self.crops)


def check_margin(margin: float, margin_ratio: float | None) -> None:
    """Refuse negative or non-finite margins (ValueError would reach users as a traceback, InputError does not)."""
    if not math.isfinite(margin) or margin < 0:
        raise InputError(f"margin must be a finite number of pixels >= 0, got {margin}")
    if margin_ratio is not None and (not math.isfinite(margin_ratio) or margin_ratio < 0):
        raise InputError(f"margin ratio must be a finite number >= 0, got {margin_ratio}")


def expand_box(
    box: Box, margin: float = DEFAULT_MARGIN, margin_ratio: float | None = None
) -> tuple[int, int, int, int]:
    """Integer crop rectangle ``(x1, y1, x2, y2)`` (``x2``/``y2`` exclusive) around ``box``; may leave the frame.

    ``margin_ratio`` (fraction of the box's width for left/right and of its height for top/bottom) replaces the
    fixed ``margin`` in pixels when given.
    """
    if margin_ratio is not None:
        mx, my = box.width * margin_ratio, box.height * margin_ratio
    else:
        mx = my = margin
    return (
        math.floor(box.x1 - mx),
        math.floor(box.y1 - my),
        math.ceil(box.x2 + mx),
        math.ceil(box.y2 + my),
    )


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


def crop_box(
    frame: np.ndarray, box: Box, margin: float = DEFAULT_MARGIN, margin_ratio: float | None = None
) -> np.ndarray:
    """One crop with margin; the part outside the frame is filled by replicating the border.

    Returns a view of ``frame`` when the rectangle lies inside it (no copy), else a new array. Raises
    :class:`InputError` for a degenerate box.
    """
    h, w = frame.shape[:2]
    reason = degenerate_reason(box, w, h)
    if reason is not None:
        raise InputError(reason)
    x1, y1, x2, y2 = expand_box(box, margin, margin_ratio)
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    roi = frame[cy1:cy2, cx1:cx2]
    top, bottom, left, right = cy1 - y1, y2 - cy2, cx1 - x1, x2 - cx2
    if top or bottom or left or right:
        return cv2.copyMakeBorder(roi, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return roi


def crop_faces(
    frame: np.ndarray,
    boxes: Sequence[Box],
    margin: float = DEFAULT_MARGIN,
    margin_ratio: float | None = None,
) -> CropBatch:
    """Crops of all ``boxes``; degenerate boxes are skipped *and reported* with their index and reason."""
    h, w = frame.shape[:2]
    crops: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[tuple[int, str]] = []
    for i, box in enumerate(boxes):
        reason = degenerate_reason(box, w, h)
        if reason is not None:
            skipped.append((i, reason))
            continue
        crops.append(crop_box(frame, box, margin, margin_ratio))
        kept.append(i)
    return CropBatch(tuple(crops), tuple(kept), tuple(skipped))
