"""Scene cuts end every track: an id never jumps from one shot's face to the next shot's, even where boxes overlap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import scene_cuts
from edgeemo.pipeline import Pipeline
from edgeemo.results import iou_matrix
from edgeemo.runtime.session import SessionOptions
from edgeemo.video.reader import FrameReader
from edgeemo.video.session import VideoSession
from edgeemo.video.tracking import SceneCuts

pytest.importorskip("skimage", reason="the two-shot clip is made of scikit-image photos")

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"
SHOT = scene_cuts.SHOT  # frames per shot; the cut is at frame SHOT


@pytest.fixture(scope="module")
def two_shots() -> list[np.ndarray]:
    """Shot A: the astronaut drifting right; shot B: her face mirrored on the coffee photo, where shot A ends."""
    return scene_cuts.two_shots()


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    one = SessionOptions(intra_op_threads=1)
    with Pipeline(session_options=one, detector="blazeface", detector_options={"session_options": one}) as p:
        yield p


def _ids(pipe: Pipeline, frames: list[np.ndarray], **kw: object) -> tuple[list[list[int]], VideoSession, list]:
    session = VideoSession(pipe, **kw)  # type: ignore[arg-type]
    results = [session.process(f, k / 25) for k, f in enumerate(frames)]
    return [[f.track_id for f in r.faces] for r in results], session, results


def _cuts(frames: list[np.ndarray]) -> list[int]:
    test = SceneCuts()
    return [k for k, f in enumerate(frames) if test(f)]


def test_a_cut_between_overlapping_faces_starts_a_new_track(pipe: Pipeline, two_shots: list[np.ndarray]) -> None:
    ids, session, results = _ids(pipe, two_shots)
    assert all(len(i) == 1 for i in ids)  # one face per frame in both shots
    a, b = ids[0][0], ids[SHOT][0]
    assert [i[0] for i in ids[:SHOT]] == [a] * SHOT and [i[0] for i in ids[SHOT:]] == [b] * SHOT and a != b
    assert session.cuts == 1
    # The boxes overlap across the cut: without the cut test the tracker carries the id over (the old bug).
    before, after = results[SHOT - 1].faces[0].face.box, results[SHOT].faces[0].face.box
    assert iou_matrix([before], [after])[0, 0] > session.tracker.iou_threshold
    carried, _, _ = _ids(pipe, two_shots, scene_cuts=False)
    assert {i[0] for i in carried} == {carried[0][0]}


def test_a_cut_on_a_frame_without_detection_is_detected_there(pipe: Pipeline, two_shots: list[np.ndarray]) -> None:
    assert SHOT % 4 != 0  # the cut frame is not one of the every-4th detection frames
    ids, session, _ = _ids(pipe, two_shots, detect_every=4)
    assert session.cuts == 1
    assert {i[0] for i in ids[:SHOT]} == {ids[0][0]} and {i[0] for i in ids[SHOT:]} == {ids[SHOT][0]}
    assert ids[SHOT][0] != ids[0][0]


def _frames(path: Path) -> list[np.ndarray]:
    with FrameReader(path) as r:
        return [f.image for f in r]


def test_cut_frames_are_found_and_motion_is_not_a_cut(two_shots: list[np.ndarray]) -> None:
    assert _cuts(two_shots) == [SHOT]
    assert _cuts(_frames(SAMPLE)) == []  # the sample clip zooms in on one face: no cut


def test_the_interview_clip_has_no_cut(shared_video: Path) -> None:
    assert _cuts(_frames(shared_video)) == []
