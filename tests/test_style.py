"""The one style module: colours follow the class vocabulary of :mod:`edgeemo.va`, every VA source has its wording."""

from __future__ import annotations

from typing import get_args

from edgeemo.render.style import (
    BLACK,
    EMOTION_COLOURS,
    VA_SOURCES,
    WHITE,
    emotion_bgr,
    emotion_colour,
    ink_on,
    line_thickness,
    scale_for,
)
from edgeemo.results import VASource
from edgeemo.va import AXIS_LIMIT, CENTROIDS


def test_every_palette_colour_belongs_to_a_known_class_and_synonyms_share_it() -> None:
    assert set(EMOTION_COLOURS) <= set(CENTROIDS)
    assert emotion_colour("angry", 0) == emotion_colour("Anger", 5) == EMOTION_COLOURS["anger"]
    assert emotion_colour("happiness", 0) == emotion_colour(" HAPPY ", 3) == "#ffbf00"
    assert emotion_bgr("happy", 0) == (0x00, 0xBF, 0xFF)
    # classes the palette does not know get distinct fallbacks by index, the same for the same index
    assert emotion_colour("boredom", 0) != emotion_colour("boredom", 1) == emotion_colour("awe", 1)
    assert emotion_colour("boredom", 0) not in EMOTION_COLOURS.values()


def test_every_va_source_has_an_axis_and_wording() -> None:
    assert set(VA_SOURCES) == set(get_args(VASource)) == set(AXIS_LIMIT)


def test_text_ink_reads_on_its_fill() -> None:
    assert ink_on(emotion_bgr("happy", 0)) == BLACK  # amber is light
    assert ink_on(emotion_bgr("sad", 0)) == WHITE


def test_scale_follows_the_shorter_side_with_a_floor() -> None:
    assert scale_for(960, 540) == 1.0 and line_thickness(960, 540) == 2
    assert scale_for(3840, 2160) == 4.0 and line_thickness(3840, 2160) == 8
    assert scale_for(64, 48) == 0.5 and line_thickness(64, 48) == 1


def test_the_cli_offers_exactly_the_va_bars_modes() -> None:
    from edgeemo.cli.options import VaBarsOpt
    from edgeemo.render.annotate import VaBars

    assert get_args(get_args(VaBarsOpt)[0]) == get_args(VaBars)
