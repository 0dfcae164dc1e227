"""How every drawing looks: the emotion palette, the drawing scale, font, line widths and text, the colours of
drawn images and the valence/arousal wording, shared by drawn images (:mod:`.annotate`, :mod:`.va_bars`) and
plots (:mod:`.timeline`, :mod:`.circumplex`) so a glance reads both alike."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeemo.results import VASource
from edgeemo.va import canonical_class

BGR = tuple[int, int, int]

# ------------------------------------------------------------------------------------------------ palette
# Fixed colours per canonical emotion (synonyms such as "angry" map through :func:`edgeemo.va.canonical_class`),
# so plots of different runs and models compare at a glance.
EMOTION_COLOURS = {
    "anger": "#d62728",
    "contempt": "#8c564b",
    "disgust": "#2ca02c",
    "fear": "#9467bd",
    "happy": "#ffbf00",
    "neutral": "#7f7f7f",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "uncertain": "#e377c2",
}
_FALLBACK = ("#17becf", "#bcbd22", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2")


def emotion_colour(name: str, index: int) -> str:
    """``#rrggbb`` of emotion ``name``; a class unknown to the palette gets a fallback picked by its ``index``."""
    key = canonical_class(name) or name.strip().lower()
    return EMOTION_COLOURS.get(key, _FALLBACK[index % len(_FALLBACK)])


def emotion_bgr(name: str, index: int) -> BGR:
    """The same colour as an OpenCV BGR triple."""
    h = emotion_colour(name, index)
    return int(h[5:7], 16), int(h[3:5], 16), int(h[1:3], 16)


# Colours of drawn images (BGR).
WHITE: BGR = (255, 255, 255)
BLACK: BGR = (0, 0, 0)
GREY: BGR = (170, 170, 170)
NOTICE_COLOUR: BGR = (0, 0, 255)
SKIPPED_COLOUR: BGR = (128, 128, 128)  # faces found but not classified
NOTE_FILL: BGR = (40, 40, 40)
BAR_TRACK: BGR = (70, 70, 70)
POSITIVE_VALENCE: BGR = (60, 200, 60)
NEGATIVE_VALENCE: BGR = (60, 60, 230)
TENSE: BGR = (0, 140, 255)
CALM: BGR = (230, 170, 40)


def ink_on(fill: BGR) -> BGR:
    """Text colour that reads on ``fill``: dark on light colours (happy's amber), white on the rest."""
    luma = 0.114 * fill[0] + 0.587 * fill[1] + 0.299 * fill[2]
    return BLACK if luma > 150 else WHITE


# --------------------------------------------------------------------------------------------- scale, text
FONT = cv2.FONT_HERSHEY_SIMPLEX
REFERENCE_SIDE = 540.0  # an image whose shorter side is this long is drawn at unit scale (the thesis's 960x540)
MIN_SCALE = 0.5


def image_scale(width: int, height: int) -> float:
    """An image's size relative to the reference: its shorter side over :data:`REFERENCE_SIDE`."""
    return min(width, height) / REFERENCE_SIDE


def scale_for(width: int, height: int) -> float:
    """Drawing scale of an image: 1.0 for the thesis's 960x540, proportional to the shorter side."""
    return max(MIN_SCALE, image_scale(width, height))


def line_width(scale: float) -> int:
    """Pixels of a line (or text stroke) drawn at ``scale``: never thinner than one pixel."""
    return max(1, round(scale))


def line_thickness(width: int, height: int) -> int:
    """Box line width: the thesis's 2 px at 960x540, proportional to the shorter side."""
    return line_width(2 * scale_for(width, height))


def text_size(text: str, font_scale: float, thickness: int) -> tuple[tuple[int, int], int]:
    """``((width, height), baseline)`` of ``text`` in the drawing font."""
    return cv2.getTextSize(text, FONT, font_scale, thickness)


def put_text(
    image: np.ndarray, text: str, org: tuple[int, int], font_scale: float, colour: BGR, thickness: int
) -> None:
    """Draw ``text`` in the drawing font, anti-aliased, with its baseline starting at ``org`` (in place)."""
    cv2.putText(image, text, org, FONT, font_scale, colour, thickness, cv2.LINE_AA)


# ------------------------------------------------------------------------------------------------ wording
NO_FACES_TEXT = "No faces detected"  # on a drawn image and on an empty timeline
VALENCE_LABEL = "Valence (-unpleasant / +pleasant)"
AROUSAL_LABEL = "Arousal (-calm / +tense)"


@dataclass(frozen=True, slots=True)
class VaSourceLook:
    """How values of one ``va_source`` are named: the drawn panel's header and the circumplex panel's note."""

    header: str
    header_colour: BGR
    caption: str


VA_SOURCES: dict[VASource, VaSourceLook] = {
    "model": VaSourceLook("VA: model", WHITE, "model heads"),
    "derived": VaSourceLook("VA: derived estimate", (80, 220, 255), "derived estimate"),  # amber, to stand out
}
