"""One rule for which tracks get a panel (timeline and circumplex): short tracks dropped, panel count capped."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeemo.render.timeline import MAX_PLOTTED_TRACKS, MIN_TRACK_FRAMES, plotted_tracks


def test_short_tracks_are_dropped_and_the_longest_kept_in_order() -> None:
    lengths = {1: 300, 2: 2, 3: 40, 4: MIN_TRACK_FRAMES, 5: MIN_TRACK_FRAMES - 1}
    assert plotted_tracks(lengths) == [1, 3, 4]
    assert plotted_tracks(lengths, max_tracks=2) == [1, 3]
    # Only short tracks: the longest alone, so a short clip still gets a plot.
    assert plotted_tracks({7: 1, 8: 3, 9: 2}) == [8]
    assert plotted_tracks({}) == []


def _rows(track: int, n: int, t0: float = 0.0) -> list[tuple]:
    t = t0 + np.arange(n) / 25.0
    return [(float(ti), track, float(np.sin(ti)), float(np.cos(ti)) * 0.5, "derived") for ti in t]


def test_circumplex_leaves_out_short_tracks_and_caps_panels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from edgeemo.render.circumplex import plot_circumplex

    one = cv2.imread(str(plot_circumplex(_rows(1, 100), tmp_path / "one.png")))
    # A 2-frame flicker beside the real track adds no panel.
    flicker = cv2.imread(str(plot_circumplex(_rows(1, 100) + _rows(2, 2, 1.0), tmp_path / "flicker.png")))
    assert flicker.shape == one.shape
    # 27 tracks, long and short: at most MAX_PLOTTED_TRACKS panels (3 per row), not 27.
    rows = [r for k in range(1, 28) for r in _rows(k, 200 - 7 * k if k < 10 else 1 + k % 3, k * 0.3)]
    many = cv2.imread(str(plot_circumplex(rows, tmp_path / "many.png")))
    max_rows = -(-MAX_PLOTTED_TRACKS // 3)
    assert many.shape[0] < (max_rows + 0.5) * one.shape[0]
    assert many.shape[1] < 3.5 * one.shape[1]
