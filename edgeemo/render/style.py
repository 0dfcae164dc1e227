"""One colour per emotion, shared by the timeline plots and the boxes drawn on images, so a glance reads both."""

from __future__ import annotations

# Fixed colours per emotion name so plots of different runs and models compare at a glance.
EMOTION_COLOURS = {
    "anger": "#d62728",
    "angry": "#d62728",
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
    return EMOTION_COLOURS.get(name.lower(), _FALLBACK[index % len(_FALLBACK)])


def emotion_bgr(name: str, index: int) -> tuple[int, int, int]:
    """The same colour as an OpenCV BGR triple."""
    h = emotion_colour(name, index)
    return int(h[5:7], 16), int(h[3:5], 16), int(h[1:3], 16)
