"""Video runs end to end on real faces: outputs, tracking, --detect-every, stop/finalise, faults, the 1zlab clip."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edgeemo.errors import DecodeError, EdgeemoError, InputError
from edgeemo.pipeline import Pipeline
from edgeemo.render.annotate import annotate
from edgeemo.results import Face, FrameResult
from edgeemo.runtime.session import SessionOptions
from edgeemo.video.run import VideoOptions, VideoOutputs, VideoRun, detect_ahead_workers

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"
SAMPLE_FRAMES = 150


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    one = SessionOptions(intra_op_threads=1)  # as `edgeemo video` runs it
    with Pipeline(session_options=one, detector="blazeface", detector_options={"session_options": one}) as p:
        yield p


def _outputs(tmp_path: Path) -> VideoOutputs:
    return VideoOutputs(
        video=tmp_path / "a.mp4",
        jsonl=tmp_path / "f.jsonl",
        csv=tmp_path / "faces.csv",
        timeline=tmp_path / "timeline.png",
        circumplex=tmp_path / "va.png",
    )


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _video_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


class _CountingDetector:
    """The module pipeline's BlazeFace, counting its calls; it says nothing of thread safety (one call at a time)."""

    name = "blazeface"

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Face]:
        self.calls += 1
        return self.inner.detect(frame)  # type: ignore[attr-defined]

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def counting(pipe: Pipeline) -> Pipeline:
    with Pipeline(session_options=SessionOptions(intra_op_threads=1), detector=_CountingDetector(pipe.detector)) as p:
        yield p


def test_sample_clip_gives_every_output_with_one_stable_track(pipe: Pipeline, tmp_path: Path) -> None:
    out = _outputs(tmp_path)
    s = VideoRun(pipe, SAMPLE, out, annotate=annotate).run()
    assert (s.frames, s.decoded, s.dropped, s.corrupt, s.interrupted) == (SAMPLE_FRAMES, SAMPLE_FRAMES, 0, 0, False)
    assert s.faces == SAMPLE_FRAMES and s.tracks == 1
    assert set(s.outputs) == {"video", "jsonl", "csv", "timeline", "timeline_csv", "circumplex"}
    assert all(v > 0 for v in s.stage_seconds.values()) and s.fps > 0
    lines = _jsonl(out.jsonl)  # type: ignore[arg-type]
    assert [d["index"] for d in lines] == list(range(SAMPLE_FRAMES))
    assert all(len(d["faces"]) == 1 and d["faces"][0]["track_id"] == 1 for d in lines)
    labels = [d["faces"][0]["label"] for d in lines]
    assert labels.count("happy") / len(labels) > 0.9  # a smiling astronaut
    assert lines[30]["timestamp"] == pytest.approx(30 / 25)
    assert _video_frames(out.video) == SAMPLE_FRAMES  # type: ignore[arg-type]
    faces_csv = list(csv.DictReader(out.csv.open()))  # type: ignore[union-attr]
    assert len(faces_csv) == SAMPLE_FRAMES and set(pipe.classes) <= set(faces_csv[0])
    tl = list(csv.DictReader((tmp_path / "timeline.csv").open()))
    assert len(tl) == SAMPLE_FRAMES and {r["track"] for r in tl} == {"1"}
    assert out.timeline.stat().st_size > 10_000  # type: ignore[union-attr]
    assert out.circumplex.stat().st_size > 10_000  # type: ignore[union-attr]
    assert tl[0]["va_source"] == "derived" and float(tl[0]["valence"]) > 0  # happy: pleasant


def test_circumplex_without_valence_arousal_is_skipped_with_a_note(tmp_path: Path) -> None:
    with Pipeline(derive_va=False) as plain:
        out = VideoOutputs(circumplex=tmp_path / "va.png", timeline_csv=tmp_path / "t.csv")
        run = VideoRun(plain, SAMPLE, out, VideoOptions(detect_every=10))
        s = run.run()
    assert not (tmp_path / "va.png").exists() and "circumplex" not in s.outputs
    assert any("no valence/arousal" in n for n in s.notes)
    assert "valence" not in (tmp_path / "t.csv").read_text().splitlines()[0]


def test_detect_every_runs_the_detector_on_every_nth_frame_and_tracks_between(
    counting: Pipeline, tmp_path: Path
) -> None:
    detector = counting.detector
    assert isinstance(detector, _CountingDetector)
    calls = detector.calls
    jsonl = tmp_path / "f.jsonl"
    s = VideoRun(counting, SAMPLE, VideoOutputs(jsonl=jsonl), VideoOptions(detect_every=5)).run()
    assert detector.calls - calls == SAMPLE_FRAMES // 5
    assert s.frames == SAMPLE_FRAMES and s.tracks == 1
    lines = _jsonl(jsonl)
    assert all(len(d["faces"]) == 1 and d["faces"][0]["track_id"] == 1 for d in lines)
    # Between detections the box moves with the face (the camera zooms in): widths keep growing overall.
    widths = [d["faces"][0]["box"]["x2"] - d["faces"][0]["box"]["x1"] for d in lines]
    assert widths[-1] > widths[0] * 1.2


def test_smoothing_off_keeps_raw_probabilities(pipe: Pipeline, tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    VideoRun(pipe, SAMPLE, VideoOutputs(jsonl=raw), VideoOptions(smoothing=0.0, detect_every=3)).run()
    first = _jsonl(raw)[3]
    frame = _nth_frame(3)
    direct = pipe.run_image(frame)
    assert first["faces"][0]["probabilities"] == pytest.approx(direct.faces[0].to_dict()["probabilities"], abs=1e-5)


def _nth_frame(n: int) -> np.ndarray:
    from edgeemo.video.reader import FrameReader

    with FrameReader(SAMPLE) as r:
        for f in r:
            if f.index == n:
                return f.image
    raise AssertionError("frame not found")


def test_stop_mid_run_finalises_every_output(pipe: Pipeline, tmp_path: Path) -> None:
    out = _outputs(tmp_path)
    run = VideoRun(pipe, SAMPLE, out, annotate=annotate, progress=lambda done, _t: run.stop() if done == 20 else None)
    s = run.run()
    assert s.interrupted and s.end_reason == "stopped"
    assert 20 <= s.frames < SAMPLE_FRAMES
    lines = _jsonl(out.jsonl)  # type: ignore[arg-type]
    assert len(lines) == s.frames
    assert _video_frames(out.video) == s.frames  # type: ignore[arg-type]  # closed: playable
    assert len(list(csv.DictReader((tmp_path / "timeline.csv").open()))) == s.frames
    assert not list(tmp_path.glob("*.part*"))


def test_corrupt_packets_are_counted_and_the_run_goes_on(pipe: Pipeline, tmp_path: Path) -> None:
    data = bytearray(SAMPLE.read_bytes())
    rng = np.random.default_rng(0)
    for frac in (0.4, 0.6):
        off = int(len(data) * frac)
        data[off : off + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    s = VideoRun(pipe, bad, VideoOutputs(jsonl=tmp_path / "f.jsonl")).run()
    assert s.corrupt > 0 and s.frames == s.decoded > SAMPLE_FRAMES // 2


def test_a_file_without_decodable_frames_is_a_decode_error(pipe: Pipeline, tmp_path: Path) -> None:
    data = bytearray(SAMPLE.read_bytes())
    start = data.find(b"mdat") + 4
    data[start:] = np.random.default_rng(1).integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(bytes(data))
    jsonl = tmp_path / "f.jsonl"
    with pytest.raises(DecodeError, match=r"garbage\.mp4: no video frames could be decoded"):
        VideoRun(pipe, bad, VideoOutputs(jsonl=jsonl)).run()
    assert list(tmp_path.iterdir()) == [bad]  # no output without a frame, and no temporary left behind


def test_missing_source_and_bad_options_fail_before_any_work(pipe: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="video file not found"):
        VideoRun(pipe, tmp_path / "nope.mp4")
    with pytest.raises(InputError, match="are the same file"):
        VideoRun(pipe, SAMPLE, VideoOutputs(jsonl=tmp_path / "f.jsonl", csv=tmp_path / "f.jsonl"))
    with pytest.raises(InputError, match=r"cannot write a video as '\.txt'"):
        VideoRun(pipe, SAMPLE, VideoOutputs(video=tmp_path / "o.txt"))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="detect_every"):
        VideoOptions(detect_every=0)


def test_an_output_failure_stops_the_run_with_an_error(pipe: Pipeline, tmp_path: Path) -> None:
    def broken(image: np.ndarray, result: FrameResult) -> np.ndarray:
        raise RuntimeError("disk on fire")

    run = VideoRun(pipe, SAMPLE, VideoOutputs(video=tmp_path / "a.mp4"), annotate=broken)
    with pytest.raises(EdgeemoError, match="disk on fire"):
        run.run()


@pytest.mark.slow
def test_1zlab_clip_one_track_and_the_happy_to_neutral_change(
    pipe: Pipeline, shared_video: Path, tmp_path: Path
) -> None:
    """The evaluation clip: one woman, a broad smile in the first seconds, then talking with a neutral face.

    (The data card says "neutral to smiling"; the footage smiles from about 0.5 s to 2.6 s and is neutral and
    talking afterwards — checked by eye on frames 0, 40, 70, 150, 250 and 380.)
    """
    out = VideoOutputs(jsonl=tmp_path / "f.jsonl", timeline=tmp_path / "timeline.png")
    s = VideoRun(pipe, shared_video, out).run()
    assert s.frames == 383 and s.tracks == 1
    lines = _jsonl(out.jsonl)  # type: ignore[arg-type]
    with_face = [d for d in lines if d["faces"]]
    assert len(with_face) >= 0.98 * len(lines)
    assert {f["track_id"] for d in with_face for f in d["faces"]} == {1}
    t = np.array([d["timestamp"] for d in with_face])
    happy = np.array([d["faces"][0]["probabilities"]["happy"] for d in with_face])
    label = np.array([d["faces"][0]["label"] for d in with_face])
    smile, later = (t >= 1.0) & (t < 2.6), t >= 4.0
    assert (label[smile] == "happy").mean() > 0.6
    assert (label[later] == "happy").mean() < 0.3
    assert happy[smile].mean() > 2 * happy[later].mean()
    assert (label[later] == "neutral").mean() > (label[later] == "happy").mean()


def test_six_faces_of_a_group_photo_keep_six_ids_under_a_pan(
    pipe: Pipeline, shared_photos: Path, tmp_path: Path
) -> None:
    """Real faces: a 40-frame pan over a 6-person photo; every face keeps its own id from first to last frame."""
    import cv2

    from edgeemo.video.writer import VideoWriter

    photo = cv2.imread(str(shared_photos / "facenet-pytorch_multiface.jpg"))
    clip = tmp_path / "pan.mp4"
    with VideoWriter(clip, 25, (1040, 584)) as w:
        for i in range(40):
            x, y = 4 * i, i
            w.write(photo[y : y + 584, x : x + 1040])
    jsonl = tmp_path / "f.jsonl"
    s = VideoRun(pipe, clip, VideoOutputs(jsonl=jsonl)).run()
    assert s.frames == 40 and s.tracks == 6
    lines = _jsonl(jsonl)
    assert sum(len(d["faces"]) == 6 for d in lines) >= 38
    first = {f["track_id"]: f["box"]["x1"] for f in lines[0]["faces"]}
    last = {f["track_id"]: f["box"]["x1"] for f in lines[-1]["faces"]}
    assert set(first) == set(last) == set(range(1, 7))
    # The camera pans right by 156 px: each id's face moved left by about that much (no ids swapped).
    assert all(abs((first[k] - last[k]) - 156) < 20 for k in first)


def test_an_unwritable_output_is_a_clear_error(pipe: Pipeline, tmp_path: Path) -> None:
    (tmp_path / "f.jsonl").mkdir()
    with pytest.raises(InputError, match=r"f\.jsonl: cannot write"):
        VideoRun(pipe, SAMPLE, VideoOutputs(jsonl=tmp_path / "f.jsonl")).run()


@pytest.mark.parametrize("detect_every", [1, 2])
def test_detecting_ahead_on_threads_gives_the_serial_results(pipe: Pipeline, tmp_path: Path, detect_every: int) -> None:
    """Frames detected ahead on three threads come out in order with the very results of one-at-a-time runs."""
    runs = {}
    for ahead in (0, 3):
        jsonl = tmp_path / f"ahead{ahead}.jsonl"
        s = VideoRun(pipe, SAMPLE, VideoOutputs(jsonl=jsonl), VideoOptions(detect_every, detect_ahead=ahead)).run()
        assert s.frames == SAMPLE_FRAMES and s.stage_seconds["detect"] > 0
        runs[ahead] = [{k: v for k, v in d.items() if k != "timing"} for d in _jsonl(jsonl)]
    assert runs[3] == runs[0]


def test_detection_threads_follow_the_detector(pipe: Pipeline, counting: Pipeline) -> None:
    import os

    assert pipe.concurrent_detect and not pipe.heavy_detect  # blazeface: thread-safe and light
    cpus = len(os.sched_getaffinity(0))
    assert detect_ahead_workers(VideoOptions(), pipe) == max(1, min(4, cpus))
    assert detect_ahead_workers(VideoOptions(), pipe, encoding=True) == max(1, min(4, cpus - 1))
    assert detect_ahead_workers(VideoOptions(), counting) == 1  # unknown: one call at a time
    assert detect_ahead_workers(VideoOptions(detect_ahead=0), pipe) == 0
    with pytest.raises(InputError, match="detect_ahead"):
        VideoOptions(detect_ahead=-1)


def test_detections_for_a_coasting_frame_are_refused(pipe: Pipeline, astronaut_bgr: np.ndarray) -> None:
    session = pipe.video_session(detect_every=2)
    faces = pipe.detect(astronaut_bgr)
    session.process(astronaut_bgr, 0.0, detected=faces)
    with pytest.raises(InputError, match="not a detection frame"):
        session.process(astronaut_bgr, 0.04, detected=faces)


@pytest.mark.slow  # dlib HOG on 2 x 150 frames
def test_dlib_hog_detects_ahead_on_threads_with_the_serial_results(tmp_path: Path) -> None:
    """dlib HOG is thread-safe (each call borrows its own dlib detector), so video runs give it every core;
    the results are those of detecting on the main thread."""
    pytest.importorskip("dlib")
    import os

    with Pipeline(detector="dlib-hog") as hog_pipe:
        assert hog_pipe.concurrent_detect and hog_pipe.heavy_detect
        cpus = len(os.sched_getaffinity(0))  # CPU-heavy: no core is left idle for the encoder
        assert detect_ahead_workers(VideoOptions(), hog_pipe, encoding=True) == max(1, min(4, cpus))
        runs = {}
        for ahead in (0, 3):
            jsonl = tmp_path / f"hog{ahead}.jsonl"
            VideoRun(hog_pipe, SAMPLE, VideoOutputs(jsonl=jsonl), VideoOptions(detect_ahead=ahead)).run()
            runs[ahead] = [{k: v for k, v in d.items() if k != "timing"} for d in _jsonl(jsonl)]
    assert len(runs[0]) == SAMPLE_FRAMES and sum(len(d["faces"]) for d in runs[0]) > SAMPLE_FRAMES // 2
    assert runs[3] == runs[0]
