"""Video faults: corrupt packets and truncation through the CLI, a file with zero frames, variable frame rate,
a rotated phone video, a source that stalls (a FIFO), and Ctrl-C / SIGTERM finalising every output.

Complements tests/test_video_io.py and tests/test_video_run.py (reader- and run-level corrupt/truncated cases,
SIGTERM mid-run with dlib-hog); here the faults go through `edgeemo video` as a user meets them.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeemo.errors import DecodeError
from edgeemo.pipeline import Pipeline
from edgeemo.video.reader import FrameReader
from edgeemo.video.run import VideoOutputs, VideoRun

av = pytest.importorskip("av")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "astronaut.mp4"
SAMPLE_FRAMES = 150
CLI = [sys.executable, "-c", "from edgeemo.cli import main; main()"]
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes (os.mkfifo)")


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    with Pipeline() as p:
        yield p


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def jsonl_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "last JSON line is incomplete"
    return [json.loads(line) for line in text.splitlines()]


def csv_rows(path: Path) -> list[list[str]]:
    text = path.read_text()
    assert text.endswith("\n"), "last CSV line is incomplete"
    rows = list(csv.reader(text.splitlines()))
    assert all(len(r) == len(rows[0]) for r in rows), "a CSV row has missing fields"
    return rows


def looped(dest: Path, loops: int) -> Path:
    """The sample clip repeated ``loops`` times by remuxing packets (no re-encoding)."""
    with av.open(str(dest), "w", format="mp4") as out:
        out_stream, offset = None, 0
        for _ in range(loops):
            with av.open(str(SAMPLE)) as src:
                stream = src.streams.video[0]
                out_stream = out_stream or out.add_stream_from_template(stream)
                last = offset
                for packet in src.demux(stream):
                    if packet.dts is None or not packet.size:
                        continue
                    packet.pts += offset
                    packet.dts += offset
                    last = max(last, packet.pts + (packet.duration or 0))
                    packet.stream = out_stream
                    out.mux(packet)
                offset = last
    return dest


def encode(path: Path, frames: list[np.ndarray], pts_ms: list[int] | None = None, rotation: int = 0) -> Path:
    """H.264 mp4 of BGR frames; ``pts_ms`` gives each frame's time (variable frame rate), ``rotation`` a display
    rotation in degrees counter-clockwise (what phones write for portrait video)."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = pts_ms[i] if pts_ms is not None else i
            if pts_ms is not None:
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def sample_frames(n: int) -> list[np.ndarray]:
    with FrameReader(SAMPLE) as r:
        return [f.image for f, _ in zip(r, range(n))]


# ------------------------------------------------------------------------------------ broken files via CLI
@pytest.mark.slow  # two CLI runs in fresh interpreters
def test_corrupt_and_truncated_files_finish_with_complete_outputs(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    corrupt = bytearray(data)
    for frac in (0.35, 0.55, 0.75):  # flipped bytes in the middle of the packets
        off = int(len(corrupt) * frac)
        corrupt[off : off + 1500] = bytes(b ^ 0xFF for b in corrupt[off : off + 1500])
    cases = {"corrupt.mp4": bytes(corrupt), "truncated.mp4": data[: int(len(data) * 0.6)]}
    for name, content in cases.items():
        src = tmp_path / name
        src.write_bytes(content)
        out, jsonl, table = tmp_path / f"{name}.out.mp4", tmp_path / f"{name}.jsonl", tmp_path / f"{name}.csv"
        args = [*CLI, "video", str(src), "--out", str(out), "--jsonl", str(jsonl), "--csv", str(table)]
        r = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        lines = jsonl_lines(jsonl)
        assert SAMPLE_FRAMES // 3 < len(lines) < SAMPLE_FRAMES + 1, (name, len(lines))
        assert decoded_frames(out) == len(lines)
        assert len(csv_rows(table)) - 1 == sum(len(d["faces"]) for d in lines)
        assert [d["index"] for d in lines] == sorted(d["index"] for d in lines)
    assert "truncated or corrupt" in " ".join(r.stdout.split() + r.stderr.split())  # the truncated run says so


@pytest.mark.slow  # a CLI run in a fresh interpreter
def test_zero_frame_file_is_a_clear_error(pipe: Pipeline, tmp_path: Path) -> None:
    empty = tmp_path / "zero_frames.mp4"
    with av.open(str(empty), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()  # header and trailer, no frame
    assert empty.stat().st_size > 0
    with pytest.raises(DecodeError, match=r"zero_frames\.mp4: "):
        VideoRun(pipe, empty, VideoOutputs(jsonl=tmp_path / "f.jsonl")).run()
    r = subprocess.run(
        [*CLI, "video", str(empty), "--jsonl", str(tmp_path / "g.jsonl")], capture_output=True, text=True
    )
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgeemo: error:")]
    assert len(errors) == 1 and str(empty) in errors[0] and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------- odd but valid files
def test_variable_frame_rate_keeps_every_frame_and_its_time(pipe: Pipeline, tmp_path: Path) -> None:
    frames = sample_frames(30)
    gaps = [40, 20, 100, 33, 67, 10, 200]
    pts = np.cumsum([0] + [gaps[i % len(gaps)] for i in range(len(frames) - 1)]).tolist()
    src = encode(tmp_path / "vfr.mp4", frames, pts_ms=pts)
    jsonl = tmp_path / "f.jsonl"
    s = VideoRun(pipe, src, VideoOutputs(jsonl=jsonl)).run()
    lines = jsonl_lines(jsonl)
    assert s.frames == len(lines) == len(frames)
    times = [d["timestamp"] for d in lines]
    assert times == pytest.approx([p / 1000 for p in pts], abs=2e-3)  # real times, not index / fps
    assert all(len(d["faces"]) == 1 for d in lines)


def test_rotated_phone_video_is_processed_upright(pipe: Pipeline, tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    portrait = np.ascontiguousarray(astronaut_bgr[0:480, 60:380])  # 320 wide, 480 high, face upright
    stored = cv2.rotate(portrait, cv2.ROTATE_90_CLOCKWISE)  # how the phone stores it: sideways
    src = encode(tmp_path / "phone.mp4", [stored] * 12, rotation=90)
    with FrameReader(src) as r:
        assert (r.info.width, r.info.height) == (320, 480)
        first = next(iter(r)).image
    assert first.shape == portrait.shape
    assert np.abs(first.astype(int) - portrait).mean() < 8  # upright, equal up to compression
    out, jsonl = tmp_path / "annotated.mp4", tmp_path / "f.jsonl"
    from edgeemo.render.annotate import annotate

    s = VideoRun(pipe, src, VideoOutputs(video=out, jsonl=jsonl), annotate=annotate).run()
    assert s.frames == 12
    lines = jsonl_lines(jsonl)
    assert all(len(d["faces"]) == 1 and (d["width"], d["height"]) == (320, 480) for d in lines)
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (320, 480)  # portrait, not squashed


# ------------------------------------------------------------------------------------------ stalls, signals
class FifoFeeder:
    """Writes a video into a FIFO: the first ``split`` bytes, then stalls until :meth:`resume`."""

    def __init__(self, fifo: Path, data: bytes, split: int) -> None:
        self.fifo, self.data, self.split = fifo, data, split
        self._resume = threading.Event()
        self.stalled = threading.Event()  # set once the first part is in the pipe and the feeder waits
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with open(self.fifo, "wb") as f:
                f.write(self.data[: self.split])
                f.flush()
                self.stalled.set()
                self._resume.wait(120)
                f.write(self.data[self.split :])
        except BrokenPipeError:  # the reader went away during the stall: expected when it was stopped
            pass

    def resume(self) -> None:
        self._resume.set()


@needs_fifo
def test_a_stalled_source_is_waited_for_and_nothing_is_lost(pipe: Pipeline, tmp_path: Path) -> None:
    fifo = tmp_path / "camera.pipe"
    os.mkfifo(fifo)
    data = SAMPLE.read_bytes()
    feeder = FifoFeeder(fifo, data, len(data) // 2)
    jsonl = tmp_path / "f.jsonl"
    run = VideoRun(pipe, fifo, VideoOutputs(jsonl=jsonl))
    threading.Timer(2.0, feeder.resume).start()  # a two-second stall mid-file
    s = run.run()
    assert s.frames == SAMPLE_FRAMES and not s.interrupted
    assert len(jsonl_lines(jsonl)) == SAMPLE_FRAMES


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the output in progress (under its temporary name beside ``path`` until the run ends) has n lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        partial = list(path.parent.glob(f".{path.name}.*.tmp"))
        if partial and partial[0].read_text().count("\n") >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} lines: {proc.poll()} {proc.stderr and proc.stderr.read()}")


def _check_finalised(out: Path, jsonl: Path, table: Path) -> int:
    lines = jsonl_lines(jsonl)
    assert decoded_frames(out) == len(lines)  # the mp4 is closed: decodable, every processed frame in it
    assert len(csv_rows(table)) - 1 == sum(len(d["faces"]) for d in lines)
    header = csv_rows(table)[0]
    assert header[:3] == ["frame", "timestamp", "track"] and header[-3:] == ["valence", "arousal", "va_source"]
    assert not list(out.parent.glob("*.part*"))
    return len(lines)


@pytest.mark.slow
@needs_fifo
@pytest.mark.slow  # a CLI run in a fresh interpreter per signal
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_during_a_stall_ends_with_outputs_finalised(tmp_path: Path, sig: signal.Signals) -> None:
    """The source stalls (the feeder holds back the second half until the test ends): the signal still ends the
    run, so it cannot wait for more data."""
    fifo = tmp_path / "live.pipe"
    os.mkfifo(fifo)
    data = SAMPLE.read_bytes()
    feeder = FifoFeeder(fifo, data, len(data) // 2)
    out, jsonl, table = tmp_path / "a.mp4", tmp_path / "f.jsonl", tmp_path / "f.csv"
    args = [*CLI, "video", str(fifo), "--out", str(out), "--jsonl", str(jsonl), "--csv", str(table)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lines(jsonl, 10, proc)
        assert feeder.stalled.wait(60), "the feeder never got the first half into the pipe"
        proc.send_signal(sig)
        try:
            _, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("the run did not end while its source stalled")
        assert feeder.thread.is_alive(), "the source resumed before the run ended"
    finally:
        feeder.resume()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, stderr
    assert f"{sig.name}: finishing outputs" in stderr
    assert 10 <= _check_finalised(out, jsonl, table) < SAMPLE_FRAMES


@pytest.mark.slow  # a CLI run in a fresh interpreter
def test_ctrl_c_mid_run_finalises_video_jsonl_and_csv(tmp_path: Path) -> None:
    src = looped(tmp_path / "long.mp4", 8)  # 1200 frames: long enough to interrupt mid-run
    out, jsonl, table = tmp_path / "a.mp4", tmp_path / "f.jsonl", tmp_path / "f.csv"
    args = [*CLI, "video", str(src), "--out", str(out), "--jsonl", str(jsonl), "--csv", str(table)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lines(jsonl, 30, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert 30 <= _check_finalised(out, jsonl, table) < 8 * SAMPLE_FRAMES
