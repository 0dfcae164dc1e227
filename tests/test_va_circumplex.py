"""Circumplex trajectory PNG: written, one panel per track and source, bad rows refused, matplotlib optional."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeemo.errors import InputError, MissingDependencyError, ModelError

pytest.importorskip("matplotlib")

from edgeemo.render.circumplex import _group, plot_circumplex

FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def rows_for(track: int, source: str, n: int = 40, scale: float = 1.0) -> list[tuple]:
    t = np.arange(n) / 10.0
    return [(float(ti), track, scale * np.sin(ti), scale * np.cos(ti) * 0.5, source) for ti in t]


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(path))
    assert img is not None
    return img


def test_writes_a_png_with_a_panel_per_track(tmp_path: Path) -> None:
    one = read_png(plot_circumplex(rows_for(1, "derived"), tmp_path / "one.png", classes=FER7))
    rows = rows_for(1, "derived") + rows_for(2, "derived") + rows_for(3, "model", scale=3.0)
    three = read_png(plot_circumplex(rows, tmp_path / "sub" / "three.png", classes=FER7))
    assert three.shape[1] > 2 * one.shape[1]  # three panels side by side
    # Time is drawn in colour: many distinct hues, not only the greys of axes and centroids.
    hsv = cv2.cvtColor(three, cv2.COLOR_BGR2HSV)
    saturated = hsv[..., 1] > 120
    assert saturated.sum() > 500
    assert len(np.unique(hsv[..., 0][saturated] // 8)) >= 4


def test_a_track_with_both_sources_gets_two_panels(tmp_path: Path) -> None:
    single = read_png(plot_circumplex(rows_for(7, "model", scale=3.0), tmp_path / "a.png"))
    mixed = read_png(plot_circumplex(rows_for(7, "model", scale=3.0) + rows_for(7, "derived"), tmp_path / "b.png"))
    assert mixed.shape[1] > 1.6 * single.shape[1]


def test_rows_without_va_are_skipped_and_tracks_are_time_ordered(tmp_path: Path) -> None:
    rows = [*rows_for(1, "derived")[::-1], (0.5, 2, None, None, None), (None, None, 0.2, 0.1, "derived")]
    groups, timed = _group(rows)
    assert set(groups) == {(1, "derived"), (None, "derived")} and not timed
    times = [t for t, _, _ in groups[(1, "derived")]]
    assert times == sorted(times) and len(times) == 40
    assert plot_circumplex(rows, tmp_path / "c.png").is_file()


def test_nothing_to_plot_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no rows"):
        plot_circumplex([(0.0, 1, None, None, None)], tmp_path / "d.png")
    assert not (tmp_path / "d.png").exists()


def test_malformed_rows_and_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="row 0"):
        plot_circumplex([(0.0, 1, 0.2)], tmp_path / "e.png")  # type: ignore[list-item]
    with pytest.raises(ModelError, match="unknown va_source"):
        plot_circumplex([(0.0, 1, 0.2, 0.3, "guess")], tmp_path / "e.png")
    with pytest.raises(ModelError, match="boredom"):
        plot_circumplex(rows_for(1, "derived"), tmp_path / "e.png", classes=["happy", "boredom"])


def test_unwritable_destination_is_an_input_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write"):
        plot_circumplex(rows_for(1, "derived"), blocker / "plot.png")


def test_missing_matplotlib_names_the_plot_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(MissingDependencyError, match=r"edgeemo\[plot\]") as info:
        plot_circumplex(rows_for(1, "derived"), tmp_path / "f.png")
    assert info.value.extra == "plot"
