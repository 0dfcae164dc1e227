"""The Python API's video mode: frames with timestamps → stable track ids, smoothing, detection every N frames."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgeemo import InputError, Pipeline, VideoSession
from edgeemo.video.options import VideoOptions


def _frames(astronaut_bgr: np.ndarray, n: int) -> list[np.ndarray]:
    """A 320x240 camera window sliding over the astronaut photo: the face moves a few pixels per frame."""
    return [np.ascontiguousarray(astronaut_bgr[10 + 2 * k : 250 + 2 * k, 60 + 3 * k : 380 + 3 * k]) for k in range(n)]


@pytest.fixture(scope="module")
def pipeline():
    with Pipeline(detector="blazeface") as pipe:
        yield pipe


def test_one_face_keeps_one_track_id(pipeline: Pipeline, astronaut_bgr: np.ndarray) -> None:
    session = pipeline.video_session()
    results = [session.process(f, k / 25) for k, f in enumerate(_frames(astronaut_bgr, 12))]
    assert all(len(r.faces) == 1 for r in results)
    assert {r.faces[0].track_id for r in results} == {1}
    assert [r.index for r in results] == list(range(12))
    assert results[-1].timestamp == pytest.approx(11 / 25)
    assert all(r.faces[0].prediction.label == "happy" for r in results)


def test_detect_every_coasts_tracked_boxes_between_detections(pipeline: Pipeline, astronaut_bgr: np.ndarray) -> None:
    session = pipeline.video_session(detect_every=3)
    results = [session.process(f, k / 25) for k, f in enumerate(_frames(astronaut_bgr, 7))]
    scores = [r.faces[0].face.score for r in results]
    assert [s > 0 for s in scores] == [True, False, False, True, False, False, True]
    assert {r.faces[0].track_id for r in results} == {1}
    detected, coasted = results[3].faces[0].face.box, results[2].faces[0].face.box
    assert detected.iou(coasted) > 0.7  # the tracker's prediction stays on the face


def test_smoothing_damps_a_change_and_zero_is_raw(pipeline: Pipeline, astronaut_bgr: np.ndarray) -> None:
    frames = _frames(astronaut_bgr, 2)
    raw = pipeline.video_session(smoothing=0.0)
    smooth = pipeline.video_session(smoothing=0.9)
    for k, f in enumerate(frames):
        r_raw, r_smooth = raw.process(f, k), smooth.process(f, k)
    p_raw = r_raw.faces[0].prediction.probability("happy")
    single = pipeline.run_image(frames[1]).faces[0].prediction.probability("happy")
    assert p_raw == pytest.approx(single, abs=1e-6)
    assert r_smooth.faces[0].prediction.probability("happy") != pytest.approx(p_raw, abs=1e-9)


def test_timestamps_must_not_go_back(pipeline: Pipeline, astronaut_bgr: np.ndarray) -> None:
    session = pipeline.video_session()
    frame = _frames(astronaut_bgr, 1)[0]
    session.process(frame, 1.0)
    with pytest.raises(InputError, match="must not decrease"):
        session.process(frame, 0.5)
    with pytest.raises(InputError, match="detect_every"):
        pipeline.video_session(detect_every=0)


def test_frames_detected_ahead_on_an_executor_give_the_results_of_process(
    pipeline: Pipeline, astronaut_bgr: np.ndarray
) -> None:
    """The session owns the schedule: submitted frames start their detection on the executor at once (only the
    scheduled ones), and finishing them in order gives exactly what one-at-a-time processing gives."""
    frames = _frames(astronaut_bgr, 6)
    serial = pipeline.video_session(detect_every=2)
    expected = [serial.process(f, k / 25) for k, f in enumerate(frames)]
    with ThreadPoolExecutor(2) as pool:
        ahead = VideoSession(pipeline, VideoOptions(detect_every=2), executor=pool)
        pending = [ahead.submit(f) for f in frames]  # every detection is under way before a frame is finished
        got = [ahead.finish(p, k / 25) for k, p in enumerate(pending)]
    assert [p.detection is not None for p in pending] == [True, False] * 3
    assert [r.to_dict() for r in got] == [r.to_dict() for r in expected]
    session = pipeline.video_session()
    first, second = session.submit(frames[0]), session.submit(frames[1])
    with pytest.raises(InputError, match="out of order"):
        session.finish(second, 0.0)
    assert session.finish(first, 0.0).faces[0].track_id == 1


def test_a_bad_frame_is_refused_at_the_session_entry(pipeline: Pipeline) -> None:
    session = pipeline.video_session()
    with pytest.raises(InputError, match="image is None"):
        session.process(None, 0.0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="uint8"):
        session.process(np.zeros((8, 8, 3), np.float32), 0.0)
    assert session.frames == 0
