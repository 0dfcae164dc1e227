"""IoU tracker and per-track smoothing: stable ids, track ends, coasting, EMA maths; real faces from the sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeemo.errors import InputError
from edgeemo.results import Box, Prediction, iou_matrix
from edgeemo.video.reader import FrameReader
from edgeemo.video.tracking import IoUTracker, ProbabilitySmoother

CLASSES = ("angry", "happy", "neutral")
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"


@pytest.fixture(scope="module")
def sample_clip_frames() -> list[np.ndarray]:
    with FrameReader(SAMPLE) as reader:
        return [f.image for f in reader]


def _pred(*probs: float) -> Prediction:
    k = int(np.argmax(probs))
    return Prediction(CLASSES[k], tuple(zip(CLASSES, probs)))


def test_iou_matrix_matches_box_iou() -> None:
    a = [Box(0, 0, 10, 10), Box(5, 5, 15, 15), Box(100, 100, 101, 101)]
    b = [Box(0, 0, 10, 10), Box(8, 0, 18, 10), Box(0, 0, 0, 0)]
    m = iou_matrix(a, b)
    assert m.shape == (3, 3)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            assert m[i, j] == pytest.approx(x.iou(y))
    assert iou_matrix([], b).shape == (0, 3)
    # BlazeFace's suppression passes float32 corner arrays: the same overlaps, computed in float32.
    as_array = np.array([(x.x1, x.y1, x.x2, x.y2) for x in a], np.float32)
    m32 = iou_matrix(as_array, as_array[:2])
    assert m32.dtype == np.float32
    np.testing.assert_allclose(m32, iou_matrix(a, a[:2]), rtol=1e-6)
    assert m32[0, 1] == pytest.approx(25 / 175)  # 5x5 shared of 100 + 100 - 25


def test_two_moving_faces_keep_their_ids_and_a_new_face_gets_a_new_one() -> None:
    tr = IoUTracker(iou_threshold=0.3, max_misses=2)
    assert tr.update(0, [Box(0, 0, 50, 50), Box(200, 0, 250, 50)]) == [1, 2]
    # Moved a little, and listed in the other order: ids follow the boxes, not the order.
    assert tr.update(1, [Box(205, 2, 255, 52), Box(4, 1, 54, 51)]) == [2, 1]
    assert tr.update(2, [Box(8, 2, 58, 52), Box(210, 4, 260, 54), Box(400, 400, 450, 450)]) == [1, 2, 3]


def test_track_ends_after_max_misses_and_its_id_is_never_reused() -> None:
    tr = IoUTracker(max_misses=2)
    tr.update(0, [Box(0, 0, 50, 50)])
    for f in (1, 2):
        assert tr.update(f, []) == []
        assert tr.ended == [] and tr.live_ids == [1]
    tr.update(3, [])
    assert tr.ended == [1] and tr.live_ids == []
    assert tr.update(4, [Box(0, 0, 50, 50)]) == [2]


def test_a_face_back_within_max_misses_keeps_its_id() -> None:
    tr = IoUTracker(max_misses=3)
    tr.update(0, [Box(0, 0, 50, 50)])
    tr.update(1, [])
    tr.update(2, [])
    assert tr.update(3, [Box(2, 0, 52, 50)]) == [1]


def test_coast_moves_boxes_along_the_track_velocity() -> None:
    tr = IoUTracker(velocity_smoothing=0.0)
    tr.update(0, [Box(0, 0, 40, 40)])
    tr.update(1, [Box(10, 0, 50, 40)])  # 10 px per frame to the right
    (tb,) = tr.coast(3)
    assert tb.track_id == 1
    assert (tb.box.x1, tb.box.x2) == pytest.approx((30, 70))
    # Far from the last detection (IoU 0.14) but where the motion predicts it: still the same track.
    assert Box(10, 0, 50, 40).iou(Box(40, 0, 80, 40)) < 0.3
    assert tr.update(4, [Box(40, 0, 80, 40)]) == [1]


def test_coast_hides_tracks_that_missed_their_last_detection() -> None:
    tr = IoUTracker(max_misses=5)
    tr.update(0, [Box(0, 0, 40, 40)])
    tr.update(1, [])
    assert tr.coast(2) == []
    assert tr.live_ids == [1]


def test_tracker_rejects_bad_settings() -> None:
    with pytest.raises(InputError, match="iou_threshold"):
        IoUTracker(iou_threshold=0)
    with pytest.raises(InputError, match="max_misses"):
        IoUTracker(max_misses=-1)


def test_smoothing_zero_returns_raw_predictions() -> None:
    sm = ProbabilitySmoother(0.0)
    p = _pred(0.1, 0.2, 0.7)
    assert sm(1, p) is p
    assert sm(1, _pred(0.8, 0.1, 0.1)).label == "angry"


def test_ema_suppresses_a_one_frame_flicker_and_follows_a_lasting_change() -> None:
    sm = ProbabilitySmoother(0.6)
    for _ in range(10):
        out = sm(1, _pred(0.05, 0.9, 0.05))
    assert out.label == "happy"
    blip = sm(1, _pred(0.9, 0.05, 0.05))  # one angry frame
    assert blip.label == "happy"
    assert blip.probability("angry") == pytest.approx(0.6 * 0.05 + 0.4 * 0.9, abs=1e-3)
    labels = [sm(1, _pred(0.9, 0.05, 0.05)).label for _ in range(5)]
    assert labels[-1] == "angry"
    assert sum(p for _, p in blip.probabilities) == pytest.approx(1.0)


def test_ema_state_is_per_track_and_forgotten_when_a_track_ends() -> None:
    sm = ProbabilitySmoother(0.9)
    sm(1, _pred(0.0, 1.0, 0.0))
    assert sm(2, _pred(1.0, 0.0, 0.0)).label == "angry"  # track 2 starts fresh
    assert sm(1, _pred(1.0, 0.0, 0.0)).label == "happy"  # track 1 remembers
    sm.forget([1])
    assert sm(1, _pred(1.0, 0.0, 0.0)).label == "angry"


def test_valence_arousal_are_smoothed_with_the_probabilities() -> None:
    sm = ProbabilitySmoother(0.5)
    a = Prediction("happy", tuple(zip(CLASSES, (0.0, 1.0, 0.0))), 1.0, 0.0, "model")
    b = Prediction("angry", tuple(zip(CLASSES, (1.0, 0.0, 0.0))), -1.0, 1.0, "model")
    sm(7, a)
    out = sm(7, b)
    assert out.valence == pytest.approx(0.0) and out.arousal == pytest.approx(0.5)
    assert out.va_source == "model"


def test_smoothing_out_of_range_is_refused() -> None:
    for bad in (-0.1, 1.0):
        with pytest.raises(InputError, match="smoothing"):
            ProbabilitySmoother(bad)


def test_one_stable_id_on_the_sample_clip_with_a_real_detector(sample_clip_frames: list[np.ndarray]) -> None:
    """Real faces: dlib-hog on every 10th frame of the shipped clip (moving camera, zoom) keeps track 1."""
    from edgeemo.detectors import create_detector

    det = create_detector("dlib-hog")
    tr = IoUTracker(max_misses=2)
    ids = []
    for i, frame in enumerate(sample_clip_frames[::10]):
        faces = det.detect(frame)
        ids += tr.update(i * 10, [f.box for f in faces])
    assert len(ids) >= 14 and set(ids) == {1}
