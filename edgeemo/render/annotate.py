"""Draw results on an image: boxes coloured by emotion, numbered label tabs, valence/arousal panels, or a
"no faces" notice.

Where things go is decided by :func:`edgeemo.render.layout.layout_frame` (tabs sized from each face, nothing covering
another face's box, a tab or a panel); this module only renders that layout. Box and tab colours are the
timeline's (:mod:`edgeemo.render.style`), so the picture and the plots read alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edgeemo.render.layout import FrameLayout, PanelSide, Tab, TabSide, layout_frame
from edgeemo.render.style import (
    BGR,
    BLACK,
    NO_FACES_TEXT,
    NOTE_FILL,
    NOTICE_COLOUR,
    SKIPPED_COLOUR,
    emotion_bgr,
    ink_on,
    line_width,
    put_text,
    scale_for,
    text_size,
)
from edgeemo.render.va_bars import draw_va_panel
from edgeemo.results import FaceResult, FrameResult

VaBars = Literal["auto", "always", "never"]  # the --va-bars choices
VA_BARS_AUTO_MAX_FACES = 2
# How long the sides of a missed track are kept: far longer than the tracker keeps a missed track by default.
SIDE_MEMORY_FRAMES = 300


def annotate(image: np.ndarray, result: FrameResult, *, copy: bool = True, va_bars: VaBars = "auto") -> np.ndarray:
    """Return ``image`` (BGR or gray uint8) with ``result`` drawn on it; ``copy=False`` draws in place (BGR only).

    Valence/arousal panels are drawn for faces whose prediction has them, where a free place is found
    (``always``), or so only in images with at most :data:`VA_BARS_AUTO_MAX_FACES` faces (``auto``).
    """
    out = _canvas(image, copy)
    h, w = out.shape[:2]
    render(out, result, frame_layout(w, h, result, va_bars))
    return out


class VideoAnnotator:
    """Draws the frames of one video run so annotations stay put: ``auto`` is decided once for the run (a panel
    wherever one fits, never by the frame's face count), and each track keeps the sides its tab and panel had,
    also after frames where it was missed (for up to :data:`SIDE_MEMORY_FRAMES` frames)."""

    def __init__(self, va_bars: VaBars = "auto") -> None:
        self.va_bars: VaBars = "always" if va_bars == "auto" else va_bars
        self._sides: dict[int, _Sides] = {}
        self._frames = 0

    def __call__(self, image: np.ndarray, result: FrameResult) -> np.ndarray:
        """Draw ``result`` on ``image`` in place (the decoded frame is not used after inference)."""
        out = _canvas(image, copy=False)
        h, w = out.shape[:2]
        render(out, result, self.layout(w, h, result))
        return out

    def layout(self, width: int, height: int, result: FrameResult) -> FrameLayout:
        """The layout of the run's next frame ``result``; each track's sides are remembered for the frames after."""
        prev = [self._sides.get(f.track_id) if f.track_id is not None else None for f in result.faces]
        lay = frame_layout(
            width, height, result, self.va_bars,
            prefer_tab=[p.tab if p else None for p in prev], prefer_panel=[p.panel if p else None for p in prev],
        )  # fmt: skip
        for f, fl, p in zip(result.faces, lay.faces, prev):
            if f.track_id is not None:
                panel = fl.panel_side or (p.panel if p else None)  # a panel skipped for room keeps its side
                self._sides[f.track_id] = _Sides(fl.tab.side, panel, self._frames)  # type: ignore[arg-type]
        self._frames += 1
        if len(self._sides) > len(result.faces):
            self._sides = {t: s for t, s in self._sides.items() if self._frames - s.seen <= SIDE_MEMORY_FRAMES}
        return lay


@dataclass(frozen=True, slots=True)
class _Sides:
    tab: TabSide
    panel: PanelSide | None
    seen: int  # the run's frame number where the track was last drawn


def frame_layout(
    width: int,
    height: int,
    result: FrameResult,
    va_bars: VaBars = "auto",
    prefer_tab: list[TabSide | None] | None = None,
    prefer_panel: list[PanelSide | None] | None = None,
) -> FrameLayout:
    """The layout :func:`annotate` draws for ``result`` on a ``width`` x ``height`` image."""
    faces = result.faces
    bars = va_bars == "always" or (va_bars == "auto" and len(faces) <= VA_BARS_AUTO_MAX_FACES)
    return layout_frame(
        width,
        height,
        [f.face.box for f in faces],
        [label_text(f, i + 1) for i, f in enumerate(faces)],
        panels=[bars and f.prediction.valence is not None and f.prediction.arousal is not None for f in faces],
        obstacles=[face.box for face, _reason in result.skipped],
        prefer_tab=prefer_tab or (),
        prefer_panel=prefer_panel or (),
    )


def render(out: np.ndarray, result: FrameResult, lay: FrameLayout) -> None:
    """Draw ``lay`` (from :func:`frame_layout` for ``result``) on the BGR image ``out`` in place."""
    h, w = out.shape[:2]
    s = scale_for(w, h)
    thick = lay.line_thickness
    for face, _reason in result.skipped:
        b = face.box
        cv2.rectangle(out, _pt(b.x1, b.y1), _pt(b.x2 - 1, b.y2 - 1), SKIPPED_COLOUR, thick)
    if not result.faces:
        _notice(out, NO_FACES_TEXT, s)
        return
    for fr, fl in zip(result.faces, lay.faces):  # panels first: a box or tab is never hidden by one
        p = fr.prediction
        if fl.panel is not None and p.valence is not None and p.arousal is not None:
            draw_va_panel(out, fl.panel, p.valence, p.arousal, p.va_source or "model")
    for fr, fl in zip(result.faces, lay.faces):
        colour = face_colour(fr)
        r = fl.box
        cv2.rectangle(out, (r.x1, r.y1), (r.x2 - 1, r.y2 - 1), colour, thick)  # axis-aligned: crisp, no AA
        _tab(out, fl.tab, colour)
    if lay.note is not None:
        _tab(out, lay.note, NOTE_FILL)


def face_colour(fr: FaceResult) -> BGR:
    """BGR colour of a face's predicted emotion (the timeline's colour for it)."""
    names = [n for n, _ in fr.prediction.probabilities]
    label = fr.prediction.label
    return emotion_bgr(label, names.index(label) if label in names else 0)


def label_text(fr: FaceResult, number: int) -> str:
    """``#n label 87%``: ``n`` is the track id in video, else the face's place (left to right) in the image."""
    p = fr.prediction
    return f"#{fr.track_id if fr.track_id is not None else number} {p.label} {p.confidence:.0%}"


def _tab(out: np.ndarray, tab: Tab, fill: BGR) -> None:
    r = tab.rect
    cv2.rectangle(out, (r.x1, r.y1), (r.x2 - 1, r.y2 - 1), fill, cv2.FILLED)
    put_text(out, tab.text, tab.origin, tab.font_scale, ink_on(fill), tab.thickness)


def _canvas(image: np.ndarray, copy: bool) -> np.ndarray:
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    return image.copy() if copy else image


def _notice(out: np.ndarray, text: str, s: float) -> None:
    font_scale = 0.8 * s
    thick = line_width(2 * s)
    (_tw, th), _ = text_size(text, font_scale, thick)
    org = (round(10 * s), round(10 * s) + th)
    put_text(out, text, org, font_scale, BLACK, thick + max(2, round(2 * s)))  # outline: reads on any background
    put_text(out, text, org, font_scale, NOTICE_COLOUR, thick)


def _pt(x: float, y: float) -> tuple[int, int]:
    return (math.floor(x + 0.5), math.floor(y + 0.5))
