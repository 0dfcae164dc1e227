"""Valence/arousal bars beside a face, drawn in place on a BGR uint8 image (the thesis's display).

A dark panel next to the face box holds a header naming where the values come from ("VA: model" or
"VA: derived estimate"), a horizontal valence bar "Valence (-unpleasant / +pleasant)" and a vertical arousal
bar "Arousal (-calm / +tense)", each on a fixed symmetric axis with a zero line, its end labels and the value in
numbers. Model heads use the thesis's +-4.5 axes, derived estimates the centroid scale +-1
(:data:`edgeemo.va.AXIS_LIMIT`); values beyond the axis are drawn to the end of the bar and flagged with ">".

Everything is sized from the image's shorter side, so the panel is as readable on a 4K frame as on a 640x480
one. :func:`panel_layout` places a panel for one face alone; :mod:`edgeemo.render.layout` places the panels of a
frame so they cover no face and no other panel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from edgeemo.errors import InputError
from edgeemo.render.geometry import Rect
from edgeemo.render.style import (
    AROUSAL_LABEL,
    BAR_TRACK,
    BGR,
    CALM,
    GREY,
    NEGATIVE_VALENCE,
    POSITIVE_VALENCE,
    TENSE,
    VA_SOURCES,
    VALENCE_LABEL,
    WHITE,
    image_scale,
    line_width,
    put_text,
    text_size,
)
from edgeemo.results import Box
from edgeemo.va import AXIS_LIMIT, axis_limit

MIN_UNIT = 0.8  # below this the text is unreadable


@dataclass(frozen=True, slots=True)
class PanelLayout(Rect):
    """Where the panel goes (``x1, y1, x2, y2`` in image pixels, may extend past a tiny image) and its scale."""

    unit: float
    bar: int  # bar length in pixels


@dataclass(frozen=True, slots=True)
class _Metrics:
    font: float
    thick: int
    pad: int
    line: int  # height of one text line incl. spacing
    bar_thick: int
    text_w: int
    label_w: int  # the widest axis end label ("+4.5")
    value_w: int  # the widest value text


@lru_cache(maxsize=64)  # a video asks for the same few units every frame
def _metrics(unit: float) -> _Metrics:
    font = 0.42 * unit
    thick = line_width(unit)
    (tw, th), base = text_size(VALENCE_LABEL, font, thick)
    hw = max(text_size(look.header, font, thick)[0][0] for look in VA_SOURCES.values())
    pad = max(2, round(6 * unit))
    line = th + base + max(2, round(5 * unit))
    label_w = max(text_size(f"+{limit:g}", font * 0.85, thick)[0][0] for limit in AXIS_LIMIT.values())
    value_w = text_size("> +00.00", font, thick)[0][0]
    return _Metrics(font, thick, pad, line, max(3, round(9 * unit)), max(tw, hw), label_w, value_w)


def panel_size(width: int, height: int, box: Box, shrink: float = 1.0) -> PanelLayout:
    """The VA panel for a face ``box`` in a ``width`` x ``height`` image, at the origin; ``shrink`` < 1 makes it
    smaller (never below the readable minimum). :mod:`edgeemo.render.layout` moves it to a free place."""
    if width <= 0 or height <= 0:
        raise InputError(f"cannot draw valence/arousal bars on an empty {width}x{height} image")
    if not all(math.isfinite(v) for v in (box.x1, box.y1, box.x2, box.y2)):
        raise InputError(f"cannot place valence/arousal bars beside a non-finite face box {box}")
    unit = max(MIN_UNIT, shrink * image_scale(width, height))
    m = _metrics(unit)
    bar = round(min(max(1.2 * shrink * box.height, 70 * unit), 130 * unit))
    panel_w = 2 * m.pad + max(m.text_w, 2 * m.label_w + bar + 2 * m.pad + m.value_w)
    panel_h = 2 * m.pad + 5 * m.line + m.bar_thick + bar
    return PanelLayout(0, 0, panel_w, panel_h, unit, bar)


def panel_gap(unit: float) -> int:
    """Pixels between a face box and its panel."""
    return max(2, round(4 * unit))


def panel_layout(width: int, height: int, box: Box) -> PanelLayout:
    """Place the VA panel for a face ``box`` alone: right of the face, else left of it, else wherever it overlaps
    the image most (other faces are not considered; :func:`edgeemo.render.layout.layout_frame` does that)."""
    size = panel_size(width, height, box)
    panel_w, panel_h = size.width, size.height
    gap = panel_gap(size.unit)
    right = math.ceil(box.x2) + gap
    left = math.floor(box.x1) - gap - panel_w
    if right + panel_w <= width:
        x = right
    elif left >= 0:
        x = left
    else:  # no room on either side: keep as much of the panel inside the image as possible
        x = min(max(right if width - box.x2 >= box.x1 else left, 0), max(0, width - panel_w))
    y = min(max(math.floor(box.y1), 0), max(0, height - panel_h))
    return moved(size, x, y)


def moved(lay: PanelLayout, x: int, y: int) -> PanelLayout:
    """``lay`` with its top-left corner at ``(x, y)``."""
    return PanelLayout(x, y, x + lay.width, y + lay.height, lay.unit, lay.bar)


def draw_va_bars(image: np.ndarray, box: Box, valence: float, arousal: float, source: str) -> None:
    """Draw valence/arousal bars for one face beside ``box`` on ``image`` (BGR uint8, modified in place).

    ``source`` is "model" or "derived" and is written on the panel; it also picks the axis (+-4.5 or +-1).
    """
    _check_image(image)
    h, w = image.shape[:2]
    draw_va_panel(image, panel_layout(w, h, box), valence, arousal, source)


def draw_va_panel(image: np.ndarray, lay: PanelLayout, valence: float, arousal: float, source: str) -> None:
    """Draw the valence/arousal panel ``lay`` on ``image`` (BGR uint8, modified in place)."""
    _check_image(image)
    limit = axis_limit(source)
    h, w = image.shape[:2]
    m = _metrics(lay.unit)

    # Darken the panel's visible part so the text stays readable on any background.
    cx1, cy1, cx2, cy2 = max(lay.x1, 0), max(lay.y1, 0), min(lay.x2, w), min(lay.y2, h)
    if cx2 > cx1 and cy2 > cy1:
        roi = image[cy1:cy2, cx1:cx2]
        roi[:] = (roi.astype(np.uint16) * 3 // 10).astype(np.uint8)
        cv2.rectangle(image, (lay.x1, lay.y1), (lay.x2 - 1, lay.y2 - 1), GREY, 1)

    x0 = lay.x1 + m.pad
    y = lay.y1 + m.pad + m.line - m.pad // 2
    look = VA_SOURCES[source]  # type: ignore[index]
    _text(image, look.header, (x0, y), m, look.header_colour)
    y += m.line
    _text(image, VALENCE_LABEL, (x0, y), m, WHITE)

    # Valence: horizontal bar with "-L" and "+L" at its ends and the value on the right.
    small = m.font * 0.85
    ends = (f"-{limit:g}", f"+{limit:g}")
    end_w = text_size(ends[1], small, m.thick)[0][0]
    bx1 = x0 + end_w + m.pad // 2
    bx2 = bx1 + lay.bar
    by1 = y + m.pad
    by2 = by1 + m.bar_thick
    mid_y = (by1 + by2) // 2
    _text(image, ends[0], (x0, mid_y + m.line // 4), m, GREY, small)
    _text(image, ends[1], (bx2 + m.pad // 2, mid_y + m.line // 4), m, GREY, small)
    _bar(image, (bx1, by1, bx2, by2), valence, limit, horizontal=True, colours=(POSITIVE_VALENCE, NEGATIVE_VALENCE))
    _text(image, _value_text(valence, limit), (bx2 + end_w + m.pad, mid_y + m.line // 4), m, WHITE)

    y = by2 + m.line
    _text(image, AROUSAL_LABEL, (x0, y), m, WHITE)

    # Arousal: vertical bar, "+L" above, "-L" below, value to its right at the zero line.
    ax1 = x0 + end_w // 2
    ax2 = ax1 + m.bar_thick
    ay1 = y + m.line
    ay2 = ay1 + lay.bar
    _text(image, ends[1], (x0, ay1 - m.pad // 2), m, GREY, small)
    _text(image, ends[0], (x0, ay2 + m.line - m.pad // 2), m, GREY, small)
    _bar(image, (ax1, ay1, ax2, ay2), arousal, limit, horizontal=False, colours=(TENSE, CALM))
    _text(image, _value_text(arousal, limit), (ax2 + m.pad, (ay1 + ay2) // 2 + m.line // 4), m, WHITE)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"valence/arousal bars need a BGR uint8 image of shape (H, W, 3), got {got}")


def _bar(
    image: np.ndarray,
    rect: tuple[int, int, int, int],
    value: float,
    limit: float,
    horizontal: bool,
    colours: tuple[BGR, BGR],
) -> None:
    """A track with a zero line; filled from zero towards ``value`` (clipped to the axis)."""
    x1, y1, x2, y2 = rect
    cv2.rectangle(image, (x1, y1), (x2, y2), BAR_TRACK, -1)
    if math.isfinite(value) and value != 0:
        frac = max(-1.0, min(1.0, value / limit))
        colour = colours[0] if frac > 0 else colours[1]
        if horizontal:
            zero = (x1 + x2) // 2
            end = zero + round(frac * (x2 - x1) / 2)
            cv2.rectangle(image, (min(zero, end), y1), (max(zero, end), y2), colour, -1)
        else:  # positive values grow upwards
            zero = (y1 + y2) // 2
            end = zero - round(frac * (y2 - y1) / 2)
            cv2.rectangle(image, (x1, min(zero, end)), (x2, max(zero, end)), colour, -1)
    cv2.rectangle(image, (x1, y1), (x2, y2), GREY, 1)
    if horizontal:
        zero = (x1 + x2) // 2
        cv2.line(image, (zero, y1 - 2), (zero, y2 + 2), WHITE, 1)
    else:
        zero = (y1 + y2) // 2
        cv2.line(image, (x1 - 2, zero), (x2 + 2, zero), WHITE, 1)


def _value_text(value: float, limit: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{'> ' if abs(value) > limit else ''}{value:+.2f}"


def _text(
    image: np.ndarray,
    text: str,
    org: tuple[int, int],
    m: _Metrics,
    colour: BGR,
    font: float | None = None,
) -> None:
    put_text(image, text, org, m.font if font is None else font, colour, m.thick)
