"""Draw results on an image: box, label and probability, valence/arousal bars, or a "no faces" notice.

Looks follow the thesis (green box RGB 30,220,30 of thickness 2 at 960x540, white label text on a green band
under the box, a red notice when no face was found); line width and font scale grow with the image so labels
stay readable from thumbnails to 4K frames.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np

from edgeemo.results import Box, FaceResult, FrameResult

log = logging.getLogger(__name__)

BOX_COLOUR = (30, 220, 30)  # BGR of the thesis's RGB (30, 220, 30)
TEXT_COLOUR = (255, 255, 255)
NOTICE_COLOUR = (0, 0, 255)
SKIPPED_COLOUR = (128, 128, 128)
NO_FACES_TEXT = "No faces detected"
VA_BARS_AUTO_MAX_FACES = 2
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_REFERENCE_SIDE = 540.0  # the thesis drew thickness 2 on 960x540 frames


def scale_for(width: int, height: int) -> float:
    """Drawing scale of an image: 1.0 for the thesis's 960x540, proportional to the shorter side."""
    return max(0.5, min(width, height) / _REFERENCE_SIDE)


def annotate(
    image: np.ndarray,
    result: FrameResult,
    *,
    copy: bool = True,
    va_bars: Literal["auto", "always", "never"] = "auto",
) -> np.ndarray:
    """Return ``image`` (BGR or gray uint8) with ``result`` drawn on it; ``copy=False`` draws in place (BGR only).

    Valence/arousal bars are drawn for faces whose prediction has them: ``auto`` does so only for frames with
    at most :data:`VA_BARS_AUTO_MAX_FACES` faces, where the panels beside each face do not cover the others.
    Bars are drawn first and boxes and labels on top, so a panel never hides a label.
    """
    if image.ndim == 2 or image.shape[2] == 1:
        out = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    else:
        out = image.copy() if copy else image
    h, w = out.shape[:2]
    s = scale_for(w, h)
    thickness = max(1, round(2 * s))
    for face, _reason in result.skipped:
        b = face.box
        cv2.rectangle(out, _pt(b.x1, b.y1), _pt(b.x2 - 1, b.y2 - 1), SKIPPED_COLOUR, thickness)
    if not result.faces:
        _notice(out, NO_FACES_TEXT, s)
        return out
    bars = va_bars == "always" or (va_bars == "auto" and len(result.faces) <= VA_BARS_AUTO_MAX_FACES)
    draw_va = _va_drawer() if bars else None
    if draw_va is not None:
        for fr in result.faces:
            p = fr.prediction
            if p.valence is not None and p.arousal is not None:
                draw_va(out, fr.face.box, p.valence, p.arousal, p.va_source or "model")
    for fr in result.faces:
        _face(out, fr, s, thickness)
    return out


def label_text(fr: FaceResult) -> str:
    p = fr.prediction
    text = f"{p.label} {p.confidence:.0%}"
    if fr.track_id is not None:
        text = f"#{fr.track_id} {text}"
    return text


def _face(out: np.ndarray, fr: FaceResult, s: float, thickness: int) -> None:
    h, w = out.shape[:2]
    b = fr.face.box
    x1, y1, x2, y2 = _pt(b.x1, b.y1) + _pt(b.x2 - 1, b.y2 - 1)
    cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOUR, thickness, cv2.LINE_AA)
    text = label_text(fr)
    font_scale = 0.7 * s
    text_thick = max(1, round(1.4 * s))
    (tw, th), base = cv2.getTextSize(text, _FONT, font_scale, text_thick)
    pad = max(2, round(4 * s))
    band_h = th + base + 2 * pad
    band_w = max(x2 - x1 + 1, tw + 2 * pad)
    top = y2 + 1 if y2 + 1 + band_h <= h else max(0, y1 - band_h)  # under the box, else above it
    left = min(max(0, x1 - thickness // 2), max(0, w - band_w))
    cv2.rectangle(out, (left, top), (left + band_w - 1, top + band_h - 1), BOX_COLOUR, cv2.FILLED)
    cv2.putText(out, text, (left + pad, top + pad + th), _FONT, font_scale, TEXT_COLOUR, text_thick, cv2.LINE_AA)


def _notice(out: np.ndarray, text: str, s: float) -> None:
    font_scale = 0.8 * s
    thick = max(1, round(2 * s))
    (_tw, th), _ = cv2.getTextSize(text, _FONT, font_scale, thick)
    org = (round(10 * s), round(10 * s) + th)
    cv2.putText(out, text, org, _FONT, font_scale, (0, 0, 0), thick + max(2, round(2 * s)), cv2.LINE_AA)
    cv2.putText(out, text, org, _FONT, font_scale, NOTICE_COLOUR, thick, cv2.LINE_AA)


def _pt(x: float, y: float) -> tuple[int, int]:
    return (math.floor(x + 0.5), math.floor(y + 0.5))


def _va_drawer() -> Callable[[np.ndarray, Box, float, float, str], None] | None:
    """edgeemo.va_display.draw_va_bars when installed, else None (bars are then not drawn)."""
    try:
        from edgeemo.va_display import draw_va_bars
    except ImportError:
        log.debug("edgeemo.va_display is not available; valence/arousal bars are not drawn")
        return None
    return draw_va_bars
