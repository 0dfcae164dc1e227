"""Where a frame's annotations go: a pure function from face boxes and label texts to rectangles.

:func:`layout_frame` decides everything :func:`edgeemo.render.annotate.annotate` draws: each face's box, its label tab
(sized from the face, not the image) and its valence/arousal panel. Tabs and panels are placed where they cover
no face box (other than their own face's) and no other tab or panel: tabs first, below or above the box, shrunk
when crowded; then panels beside, below or above the face, shrunk, or skipped and counted when nothing is free.
Preferred sides per face (from the previous video frame of the same track) are tried first, so annotations do
not jump around between frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

import numpy as np

from edgeemo.errors import InputError
from edgeemo.render.geometry import Rect
from edgeemo.render.style import image_scale, line_thickness, line_width, scale_for, text_size
from edgeemo.render.va_bars import PanelLayout, moved, panel_gap, panel_size
from edgeemo.results import Box

TabSide = Literal["below", "above", "below-right", "above-right", "inside"]
PanelSide = Literal["right", "left", "below", "above"]
TAB_SIDES: tuple[TabSide, ...] = get_args(TabSide)  # in the order tried
PANEL_SIDES: tuple[PanelSide, ...] = get_args(PanelSide)
_TAB_TEXT_OF_FACE = 0.16  # text height as a share of the face height: readable, yet small beside the face
_MIN_FONT = 0.35  # about 8 px high text: the smallest that still reads
_MAX_FONT_PER_SCALE = 0.7  # at most the thesis's label size for the image
_SHRINK = (1.0, 0.8, 0.64, 0.5)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Tab:
    """A filled label band with its text; ``origin`` is where cv2.putText starts the text."""

    rect: Rect
    text: str
    font_scale: float
    thickness: int
    origin: tuple[int, int]
    side: TabSide | Literal["corner"]


@dataclass(frozen=True, slots=True)
class FaceLayout:
    box: Rect
    tab: Tab
    panel: PanelLayout | None = None
    panel_side: PanelSide | None = None


@dataclass(frozen=True, slots=True)
class FrameLayout:
    """Everything drawn on a frame; ``panels_skipped`` counts faces whose panel found no free place."""

    width: int
    height: int
    faces: tuple[FaceLayout, ...]
    line_thickness: int
    panels_skipped: int = 0
    note: Tab | None = None  # says how many panels were skipped, where it covers nothing


def box_rect(box: Box) -> Rect:
    """The pixels a face box covers (rounded to the nearest pixel edge)."""
    return Rect(*(math.floor(v + 0.5) for v in (box.x1, box.y1, box.x2, box.y2)))


def layout_frame(
    width: int,
    height: int,
    boxes: Sequence[Box],
    texts: Sequence[str],
    *,
    panels: Sequence[bool] = (),
    obstacles: Sequence[Box] = (),
    prefer_tab: Sequence[TabSide | None] = (),
    prefer_panel: Sequence[PanelSide | None] = (),
) -> FrameLayout:
    """Place a tab per face (``texts[i]`` for ``boxes[i]``) and a panel for faces with ``panels[i]`` true.

    ``obstacles`` are further boxes (faces that were not classified) nothing may cover; ``prefer_*[i]`` names
    the side tried first for face ``i``.
    """
    if len(texts) != len(boxes):
        raise InputError(f"{len(texts)} label texts for {len(boxes)} faces")
    rects = [box_rect(b) for b in boxes]
    others = [box_rect(b) for b in obstacles]
    thick = line_thickness(width, height)
    placed: list[Rect] = []
    tabs = []
    for i, (r, text) in enumerate(zip(rects, texts)):
        blocked = _array([o for j, o in enumerate(rects) if j != i] + others + placed)
        tab = _place_tab(width, height, r, text, thick, blocked, _at(prefer_tab, i))
        placed.append(tab.rect)
        tabs.append(tab)
    faces = []
    skipped = 0
    for i, (b, r, tab) in enumerate(zip(boxes, rects, tabs)):
        panel, side = None, None
        if _at(panels, i):
            blocked = _array(rects + others + placed)
            found = _place_panel(width, height, b, r, tab.rect, blocked, _at(prefer_panel, i))
            if found is None:
                skipped += 1
            else:
                panel, side = found
                placed.append(Rect(panel.x1, panel.y1, panel.x2, panel.y2))
        faces.append(FaceLayout(r, tab, panel, side))
    note = None
    if skipped:
        note = _place_note(width, height, f"VA bars: {skipped} hidden (no room)", _array(rects + others + placed))
    return FrameLayout(width, height, tuple(faces), thick, skipped, note)


def _at(seq: Sequence[T], i: int) -> T | None:
    return seq[i] if i < len(seq) else None


def _array(rects: list[Rect]) -> np.ndarray:
    """Rectangles as an (N, 4) array, so a candidate is checked against all of them at once."""
    return np.array([(r.x1, r.y1, r.x2, r.y2) for r in rects], dtype=np.int64).reshape(-1, 4)


def _cover(r: Rect, blocked: np.ndarray) -> int:
    """Pixels of ``r`` covered by the ``blocked`` rectangles (shared areas counted once per rectangle)."""
    w = np.minimum(blocked[:, 2], r.x2) - np.maximum(blocked[:, 0], r.x1)
    h = np.minimum(blocked[:, 3], r.y2) - np.maximum(blocked[:, 1], r.y1)
    return int((np.maximum(w, 0) * np.maximum(h, 0)).sum())


def _ordered(sides: tuple[T, ...], first: T | None) -> tuple[T, ...]:
    return (first, *(s for s in sides if s != first)) if first in sides else sides


def _tab_font(width: int, height: int, face: Rect) -> float:
    """Font scale whose text is a fixed share of the face height, within readable and image-based bounds."""
    text_h = text_size("Ag", 1.0, 1)[0][1]
    cap = _MAX_FONT_PER_SCALE * scale_for(width, height)
    return max(_MIN_FONT, min(cap, _TAB_TEXT_OF_FACE * face.height / text_h))


def _place_tab(
    width: int, height: int, face: Rect, text: str, thick: int, blocked: np.ndarray, prefer: TabSide | None
) -> Tab:
    base_font = _tab_font(width, height, face)
    best: tuple[int, Tab] | None = None
    for shrink in _SHRINK:
        font = max(_MIN_FONT, base_font * shrink)
        for side in _ordered(TAB_SIDES, prefer):
            tab = _tab_at(width, height, face, text, font, thick, side)
            if not tab.rect.within(width, height) or (side == "inside" and tab.rect.y1 < face.y1):
                continue
            cover = _cover(tab.rect, blocked)
            if cover == 0:
                return tab
            if best is None or cover < best[0]:
                best = (cover, tab)
        if font == _MIN_FONT:
            break
    if best is None:  # an image too small for any tab: under the box, cut by the image edge
        return _tab_at(width, height, face, text, _MIN_FONT, thick, "below")
    return best[1]


def _tab_at(width: int, height: int, face: Rect, text: str, font: float, thick: int, side: TabSide) -> Tab:
    """The tab on ``side`` of ``face``, shifted sideways into the image (it may still cross the top or bottom)."""
    text_thick = line_width(2 * font)
    (tw, th), base = text_size(text, font, text_thick)
    pad = max(2, round(5 * font))
    tab_w, tab_h = tw + 2 * pad, th + base + 2 * pad
    left = face.x1 - thick // 2 if not side.endswith("right") else face.x2 + thick // 2 - tab_w
    if side == "inside":
        left = face.x1 + (thick + 1) // 2
    if side.startswith("below"):
        top = face.y2 + (thick + 1) // 2
    elif side.startswith("above"):
        top = face.y1 - thick // 2 - tab_h
    else:  # inside the box, at its bottom: covers only this face's chin
        top = face.y2 - thick - tab_h
    left = max(0, min(left, width - tab_w))
    rect = Rect(left, top, left + tab_w, top + tab_h)
    return Tab(rect, text, font, text_thick, (left + pad, top + pad + th), side)


def _place_note(width: int, height: int, text: str, blocked: np.ndarray) -> Tab | None:
    """A small tab in the first image corner where it covers nothing, else None."""
    font = max(_MIN_FONT, 0.35 * image_scale(width, height))
    corner = _tab_at(width, height, Rect(0, 0, 0, 0), text, font, 0, "below")
    w, h = corner.rect.width, corner.rect.height
    dx, dy = corner.origin[0] - corner.rect.x1, corner.origin[1] - corner.rect.y1
    for x, y in ((0, 0), (width - w, 0), (0, height - h), (width - w, height - h)):
        r = Rect(x, y, x + w, y + h)
        if r.within(width, height) and _cover(r, blocked) == 0:
            return Tab(r, text, font, corner.thickness, (x + dx, y + dy), "corner")
    return None


def _place_panel(
    width: int, height: int, box: Box, face: Rect, tab: Rect, blocked: np.ndarray, prefer: PanelSide | None
) -> tuple[PanelLayout, PanelSide] | None:
    # below/above go past the face's own tab, so a tab under the face does not rule out a panel under it
    with_tab = Rect(min(face.x1, tab.x1), min(face.y1, tab.y1), max(face.x2, tab.x2), max(face.y2, tab.y2))
    for shrink in _SHRINK:
        size = panel_size(width, height, box, shrink)
        gap = panel_gap(size.unit)
        for side in _ordered(PANEL_SIDES, prefer):
            x, y = _panel_origin(side, face if side in ("right", "left") else with_tab, size, gap, width, height)
            lay = moved(size, x, y)
            r = Rect(lay.x1, lay.y1, lay.x2, lay.y2)
            if r.within(width, height) and _cover(r, blocked) == 0:
                return lay, side
    return None


def _panel_origin(side: PanelSide, face: Rect, size: PanelLayout, gap: int, width: int, height: int) -> tuple[int, int]:
    if side in ("right", "left"):
        x = face.x2 + gap if side == "right" else face.x1 - gap - size.width
        y = min(max(face.y1, 0), max(0, height - size.height))
    else:
        x = min(max(face.x1, 0), max(0, width - size.width))
        y = face.y2 + gap if side == "below" else face.y1 - gap - size.height
    return x, y
