"""Emotion timeline: CSV rows and columns, gaps, the plot (per track lanes + stacked areas), missing matplotlib."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeemo.errors import InputError, MissingDependencyError
from edgeemo.render.timeline import Timeline, _runs, _segments
from edgeemo.results import Box, Face, FaceResult, FrameResult, Prediction

CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise", "uncertain")


def _face(track: int, label: str, p: float = 0.8, va: tuple[float, float] | None = None) -> FaceResult:
    rest = (1 - p) / (len(CLASSES) - 1)
    probs = tuple((c, p if c == label else rest) for c in CLASSES)
    pred = Prediction(label, probs, *(va or (None, None)), "derived" if va else None)
    return FaceResult(Face(Box(0, 0, 10, 10), 1.0), pred, track)


def _frame(i: int, fps: float, *faces: FaceResult) -> FrameResult:
    return FrameResult(faces=faces, width=64, height=48, index=i, timestamp=i / fps)


def _neutral_then_happy(tl: Timeline, n: int = 60, fps: float = 10.0, va: bool = False) -> None:
    for i in range(n):
        label = "neutral" if i < n // 2 else "happy"
        tl.add(_frame(i, fps, _face(1, label, va=(0.5, 0.1) if va else None)))


def test_csv_has_one_row_per_face_with_every_class(tmp_path: Path) -> None:
    tl = Timeline()
    _neutral_then_happy(tl, 20)
    tl.add(_frame(20, 10.0, _face(1, "happy"), _face(2, "sad")))
    out = tl.write_csv(tmp_path / "t.csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 22
    assert list(rows[0]) == ["frame", "timestamp", "track", "label", *CLASSES]  # no VA columns without VA
    assert rows[0]["label"] == "neutral" and float(rows[0]["neutral"]) == pytest.approx(0.8)
    assert {r["track"] for r in rows} == {"1", "2"}
    assert rows[-1]["timestamp"] == "2.0000"
    assert not (tmp_path / "t.csv.part").exists()


def test_csv_has_valence_arousal_columns_when_present(tmp_path: Path) -> None:
    tl = Timeline()
    _neutral_then_happy(tl, 4, va=True)
    rows = list(csv.DictReader(tl.write_csv(tmp_path / "t.csv").open()))
    assert rows[0]["valence"] == "0.500000" and rows[0]["arousal"] == "0.100000"
    assert rows[0]["va_source"] == "derived"


def test_faces_of_another_class_set_are_refused() -> None:
    tl = Timeline()
    tl.add(_frame(0, 10, _face(1, "happy")))
    other = FaceResult(Face(Box(0, 0, 1, 1), 1.0), Prediction("a", (("a", 1.0),)), 1)
    with pytest.raises(InputError, match="classes"):
        tl.add(_frame(1, 10, other))


def test_track_data_and_runs_follow_the_dominant_label() -> None:
    tl = Timeline()
    _neutral_then_happy(tl, 40, fps=10)
    t, p, k = tl.track_data(1)
    assert t.shape == (40,) and p.shape == (40, len(CLASSES))
    happy = CLASSES.index("happy")
    spans = _runs(t, k == happy, 0.1)
    assert spans == [pytest.approx((2.0, 2.0))]  # 2.0 s .. 3.9 s plus one frame interval


def test_gaps_split_segments_and_runs() -> None:
    t = np.array([0.0, 0.1, 0.2, 5.0, 5.1])
    assert _segments(t, 0.1) == [(0, 3), (3, 5)]
    spans = _runs(t, np.ones(5, dtype=bool), 0.1)
    assert spans == [pytest.approx((0.0, 0.3)), pytest.approx((5.0, 0.2))]


def test_plot_draws_a_png_per_track_panels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.image as mpimg

    tl = Timeline()
    for i in range(300):  # 30 s at 10 fps: grid lines at 0:00, 0:15, 0:30
        faces = [_face(1, "neutral" if i < 150 else "happy")]
        if 100 <= i < 200:
            faces.append(_face(2, "surprise"))
        tl.add(_frame(i, 10.0, *faces))
    out = tl.plot(tmp_path / "timeline.png")
    img = mpimg.imread(out)
    h, w = img.shape[:2]
    assert w > 1000 and h > 700  # two tracks: four panels
    # The happy colour (#ffbf00) is drawn (lane and area), and so is the surprise colour of track 2.
    rgb = (img[:, :, :3] * 255).round().astype(int).reshape(-1, 3)
    assert (np.abs(rgb - [255, 191, 0]).sum(axis=1) < 10).sum() > 1000
    assert (np.abs(rgb - [255, 127, 14]).sum(axis=1) < 10).sum() > 500


def test_plot_without_faces_says_so(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    tl = Timeline()
    tl.add(
        _frame(
            0,
            10,
        )
    )
    assert tl.plot(tmp_path / "empty.png").stat().st_size > 1000


def test_missing_matplotlib_names_the_plot_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    tl = Timeline()
    _neutral_then_happy(tl, 4)
    with pytest.raises(MissingDependencyError, match=r"edgeemo\[plot\]"):
        tl.plot(tmp_path / "t.png")
