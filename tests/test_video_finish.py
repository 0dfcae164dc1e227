"""The end of a video run: finishing steps reported, FPS figures that agree, the source's audio carried over."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeemo.pipeline import Pipeline
from edgeemo.render.annotate import annotate
from edgeemo.runtime.session import SessionOptions
from edgeemo.video.run import VideoOutputs, VideoRun
from edgeemo.video.writer import VideoWriter

av = pytest.importorskip("av")
data = pytest.importorskip("skimage.data")

FPS, FRAMES, RATE = 20, 40, 44100


def _audio_seconds(path: Path) -> tuple[str, float]:
    """(codec, seconds of decoded samples) of a file's first audio stream."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(stream))
        return stream.codec_context.name, samples / stream.codec_context.sample_rate


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of the scikit-image astronaut drifting right, with a 440 Hz AAC sine track."""
    path = tmp_path_factory.mktemp("clip") / "sine.mp4"
    face = cv2.cvtColor(cv2.resize(data.astronaut(), (320, 320)), cv2.COLOR_RGB2BGR)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 320, 320, "yuv420p"
        audio = out.add_stream("aac", rate=RATE)
        audio.layout = "mono"
        for k in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.roll(face, k, axis=1), format="bgr24")
            frame.pts = k
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        t = np.arange(FRAMES * RATE // FPS) / RATE
        pcm = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(pcm), 1024):
            chunk = av.AudioFrame.from_ndarray(pcm[None, start : start + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = RATE, start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return path


def test_run_reports_finishing_steps_and_carries_the_audio(clip_with_audio: Path, tmp_path: Path) -> None:
    one = SessionOptions(intra_op_threads=1)
    outs = VideoOutputs(video=tmp_path / "out.mp4", timeline=tmp_path / "t.png", circumplex=tmp_path / "c.png")
    steps: list[str] = []
    with Pipeline(session_options=one, detector="blazeface", detector_options={"session_options": one}) as pipe:
        summary = VideoRun(pipe, clip_with_audio, outs, annotate=annotate, step=steps.append).run()
    assert summary.frames == FRAMES and summary.faces == FRAMES
    assert steps[0] == "writing the last frames"
    assert {"finalising the video", "drawing the timeline", "drawing the circumplex"} <= set(steps)
    # The summary's FPS is the progress bar's: frames over the processing time, finalising counted apart.
    assert 0 < summary.finish_seconds < summary.seconds
    assert summary.fps == pytest.approx(FRAMES / (summary.seconds - summary.finish_seconds))
    codec_in, seconds_in = _audio_seconds(clip_with_audio)
    codec_out, seconds_out = _audio_seconds(outs.video)  # type: ignore[arg-type]
    assert codec_out == codec_in == "aac"
    assert seconds_out == pytest.approx(seconds_in, abs=0.1)
    with av.open(str(outs.video)) as c:
        assert c.streams.video[0].frames == FRAMES


def test_a_source_without_audio_gives_a_video_without_audio(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"
    image = np.zeros((64, 64, 3), np.uint8)
    with VideoWriter(tmp_path / "a.mp4", 25, (64, 64), audio_from=src) as w:
        w.write(image)
    with av.open(str(tmp_path / "a.mp4")) as c:
        assert not c.streams.audio and c.streams.video
    assert not w.audio_note


def test_the_opencv_writer_says_the_audio_is_dropped(clip_with_audio: Path, tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "b.mp4", 25, (64, 64), codec="mp4v", audio_from=clip_with_audio) as w:
        w.write(np.zeros((64, 64, 3), np.uint8))
    assert "audio" in w.note and "dropped" in w.note


def test_audio_the_container_cannot_hold_is_left_out_with_a_note(tmp_path: Path) -> None:
    src = tmp_path / "mulaw.avi"  # mu-law audio: AVI holds it, MP4 does not
    black = np.zeros((64, 64, 3), np.uint8)
    with av.open(str(src), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = out.add_stream("pcm_mulaw", rate=8000)
        audio.layout = "mono"
        for k in range(10):
            frame = av.VideoFrame.from_ndarray(black, format="bgr24")
            frame.pts = k
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        sound.sample_rate, sound.pts = 8000, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
    with VideoWriter(tmp_path / "out.mp4", 10, (64, 64), audio_from=src) as w:
        for _ in range(10):
            w.write(black)
    assert "audio is not carried over" in w.audio_note and "pcm_mulaw" in w.audio_note
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert not c.streams.audio and c.streams.video[0].frames == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mulaw.avi", "out.mp4"]  # no temporary file left
