"""VA bars on real images: drawn beside the face, scaled with the image, labelled by source, safe at the edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeemo.errors import InputError, ModelError
from edgeemo.render.va_bars import PanelLayout, draw_va_bars, panel_layout
from edgeemo.results import Box

FACE = Box(179, 83, 267, 171)  # dlib-hog's box for the astronaut's face (512x512)

GREEN = (60, 200, 60)
RED = (60, 60, 230)
TENSE = (0, 140, 255)
CALM = (230, 170, 40)


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.any(before != after, axis=2)


def extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def colour_mask(img: np.ndarray, bgr: tuple[int, int, int]) -> np.ndarray:
    return np.all(img == np.array(bgr, dtype=np.uint8), axis=2)


def has_colour(img: np.ndarray, bgr: tuple[int, int, int]) -> bool:
    return bool(colour_mask(img, bgr).any())


def inside_panel_only(before: np.ndarray, after: np.ndarray, lay: PanelLayout) -> bool:
    """Something was drawn, and only inside the panel's rectangle (clipped to the image)."""
    diff = changed(before, after)
    inside = np.zeros_like(diff)
    inside[max(lay.y1, 0) : max(lay.y2, 0), max(lay.x1, 0) : max(lay.x2, 0)] = True
    return bool(diff.any() and not (diff & ~inside).any())


def test_bars_are_drawn_beside_the_face_and_leave_it_untouched(astronaut_bgr: np.ndarray) -> None:
    img = astronaut_bgr.copy()
    draw_va_bars(img, FACE, 1.3, -0.7, "model")
    diff = changed(astronaut_bgr, img)
    lay = panel_layout(512, 512, FACE)
    assert diff.sum() > 0.5 * lay.width * lay.height  # the panel is darkened as a whole
    assert extent(diff) == (lay.x1, lay.y1, lay.x2, lay.y2)
    assert lay.x1 >= FACE.x2 and lay.y1 == FACE.y1  # right of the face, level with its top
    assert not diff[83:171, 179:267].any()
    assert has_colour(img, GREEN)  # positive valence fill
    assert not has_colour(img, RED)


def test_fill_direction_follows_the_sign(astronaut_bgr: np.ndarray) -> None:
    lay = panel_layout(512, 512, FACE)
    pos, neg = astronaut_bgr.copy(), astronaut_bgr.copy()
    draw_va_bars(pos, FACE, 4.5, 0.0, "model")
    draw_va_bars(neg, FACE, -4.5, 0.0, "model")
    green = np.nonzero(np.all(pos == np.array(GREEN, np.uint8), axis=2))[1]
    red = np.nonzero(np.all(neg == np.array(RED, np.uint8), axis=2))[1]
    mid = (green.min() + red.max()) / 2  # the zero line lies between the two fills
    assert green.min() >= mid - 1 and red.max() <= mid + 1
    assert green.max() - green.min() >= 0.45 * lay.bar and red.max() - red.min() >= 0.45 * lay.bar


def test_the_panel_says_model_or_derived(astronaut_bgr: np.ndarray) -> None:
    model, derived = astronaut_bgr.copy(), astronaut_bgr.copy()
    # Same fraction of the axis (0.5 of +-4.5 and of +-1): bars identical, header and labels differ.
    draw_va_bars(model, FACE, 2.25, 2.25, "model")
    draw_va_bars(derived, FACE, 0.5, 0.5, "derived")
    assert changed(model, derived).any()
    lay = panel_layout(512, 512, FACE)
    header = slice(lay.y1, lay.y1 + (lay.height // 10))
    assert changed(model[header], derived[header]).any()


def test_panel_scales_with_the_image(astronaut_bgr: np.ndarray) -> None:
    small = panel_layout(512, 512, FACE)
    box = Box(FACE.x1 * 4, FACE.y1 * 4, FACE.x2 * 4, FACE.y2 * 4)
    big = panel_layout(2048, 2048, box)
    assert big.width == pytest.approx(4 * small.width, rel=0.15)
    assert big.height == pytest.approx(4 * small.height, rel=0.15)
    before = cv2.resize(astronaut_bgr, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    img = before.copy()
    draw_va_bars(img, box, -0.3, 0.8, "derived")
    assert inside_panel_only(before, img, big)
    assert has_colour(img, RED) and has_colour(img, TENSE)  # negative valence, positive arousal


@pytest.mark.parametrize(
    "box",
    [
        Box(440, 200, 511, 280),  # right edge: no room on the right
        Box(0, 0, 90, 90),  # top-left corner
        Box(200, 440, 290, 512),  # bottom edge
        Box(-40, -30, 60, 70),  # partly outside the image
        Box(0, 0, 512, 512),  # fills the image
    ],
    ids=["right-edge", "corner", "bottom", "outside", "full-frame"],
)
def test_faces_at_the_edge_do_not_crash_and_stay_in_view(astronaut_bgr: np.ndarray, box: Box) -> None:
    img = astronaut_bgr.copy()
    draw_va_bars(img, box, -2.0, 3.0, "model")
    lay = panel_layout(512, 512, box)
    assert lay.x1 >= 0 and lay.x2 <= 512 and lay.y1 >= 0 and lay.y2 <= 512
    assert changed(astronaut_bgr, img).any()


def test_right_edge_face_gets_the_panel_on_its_left() -> None:
    box = Box(440, 200, 511, 280)
    lay = panel_layout(512, 512, box)
    assert lay.x2 <= box.x1


def test_a_tiny_image_gets_a_panel_clipped_to_it(astronaut_bgr: np.ndarray) -> None:
    before = cv2.resize(astronaut_bgr, (40, 30), interpolation=cv2.INTER_AREA)
    img = before.copy()
    box = Box(14, 5, 21, 12)  # the astronaut's face, scaled down with the image
    draw_va_bars(img, box, 0.4, -0.2, "derived")
    lay = panel_layout(40, 30, box)
    assert lay.width > 40 or lay.height > 30  # the readable minimum is larger than the image
    assert inside_panel_only(before, img, lay)


def test_values_that_are_not_numbers_draw_no_bar(astronaut_bgr: np.ndarray) -> None:
    img = astronaut_bgr.copy()
    draw_va_bars(img, FACE, float("nan"), float("inf"), "model")
    lay = panel_layout(512, 512, FACE)
    assert inside_panel_only(astronaut_bgr, img, lay)
    panel = img[lay.y1 : lay.y2, lay.x1 : lay.x2]
    assert not any(has_colour(panel, c) for c in (GREEN, RED, TENSE, CALM))  # tracks only, no fill


def test_values_beyond_the_axis_are_pinned_to_its_end(astronaut_bgr: np.ndarray) -> None:
    far, end = astronaut_bgr.copy(), astronaut_bgr.copy()
    draw_va_bars(far, FACE, 99.0, -99.0, "model")
    draw_va_bars(end, FACE, 4.5, -4.5, "model")  # the axis limit
    lay = panel_layout(512, 512, FACE)
    assert inside_panel_only(astronaut_bgr, far, lay)
    for colour in (GREEN, CALM):  # valence fills right, arousal fills down, as far as at the limit and no further
        assert np.array_equal(colour_mask(far, colour), colour_mask(end, colour))
        assert colour_mask(far, colour).any()
    green = np.nonzero(colour_mask(far, GREEN))[1]
    assert green.max() - green.min() + 1 >= lay.bar // 2 - 2  # half the bar, less the zero line and the border
    assert changed(far, end).any()  # the value text differs ("> +99.00" against "+4.50")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InputError, match="BGR uint8"):
        draw_va_bars(np.zeros((50, 50), np.uint8), FACE, 0, 0, "model")
    with pytest.raises(InputError, match="BGR uint8"):
        draw_va_bars(np.zeros((50, 50, 3), np.float32), FACE, 0, 0, "model")
    with pytest.raises(InputError, match="non-finite"):
        draw_va_bars(np.zeros((50, 50, 3), np.uint8), Box(float("nan"), 0, 10, 10), 0, 0, "model")
    with pytest.raises(ModelError, match="unknown va_source"):
        draw_va_bars(np.zeros((50, 50, 3), np.uint8), Box(0, 0, 10, 10), 0, 0, "guess")
