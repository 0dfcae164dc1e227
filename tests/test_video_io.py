"""Video reading and writing: sources, every frame in order, live dropping, corrupt/truncated/empty files, H.264."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from edgeemo.errors import DecodeError, InputError
from edgeemo.video import reader as video
from edgeemo.video import writer
from edgeemo.video.reader import FrameReader, parse_source
from edgeemo.video.writer import VideoWriter

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"
SAMPLE_FRAMES = 150


def _codec_and_count(path: Path) -> tuple[str, int]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, sum(1 for _ in c.decode(s))


def _corrupt_copy(tmp_path: Path) -> Path:
    """The sample with three 2 KB runs of random bytes in the middle of its frame data."""
    data = bytearray(SAMPLE.read_bytes())
    rng = np.random.default_rng(0)
    for frac in (0.3, 0.5, 0.7):
        off = int(len(data) * frac)
        data[off : off + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    p = tmp_path / "corrupt.mp4"
    p.write_bytes(bytes(data))
    return p


def test_parse_source_kinds(tmp_path: Path) -> None:
    assert parse_source(0) == ("camera", 0)
    assert parse_source("2") == ("camera", 2)
    assert parse_source("rtsp://cam.local/stream") == ("stream", "rtsp://cam.local/stream")
    assert parse_source("HTTPS://x/y.m3u8")[0] == "stream"
    assert parse_source(SAMPLE) == ("file", str(SAMPLE))
    with pytest.raises(InputError, match=r"missing\.mp4: video file not found"):
        parse_source(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="is a folder"):
        parse_source(tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        parse_source(tmp_path / "empty.mp4")


@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_every_frame_of_a_file_in_order(backend: str) -> None:
    with FrameReader(SAMPLE, queue_size=2, backend=backend) as r:  # type: ignore[arg-type]
        assert (r.info.width, r.info.height, r.info.kind, r.info.live) == (640, 480, "file", False)
        assert r.info.fps == pytest.approx(25.0)
        frames = []
        for f in r:
            frames.append(f)
            if len(frames) % 40 == 0:
                time.sleep(0.05)  # a slow consumer must not lose frames of a file
    assert [f.index for f in frames] == list(range(SAMPLE_FRAMES))
    assert frames[0].timestamp == 0.0
    assert frames[-1].timestamp == pytest.approx((SAMPLE_FRAMES - 1) / 25, abs=0.05)
    assert all(b.timestamp > a.timestamp for a, b in itertools.pairwise(frames))
    assert frames[0].image.shape == (480, 640, 3) and frames[0].image.dtype == np.uint8
    assert r.stats.dropped == 0 and r.stats.decoded == SAMPLE_FRAMES and r.stats.end_reason == "end of file"


def test_live_source_drops_stale_frames_and_counts_them() -> None:
    """A file read as if live: a consumer slower than decoding gets fresh frames; the others are dropped."""
    with FrameReader(SAMPLE, queue_size=2, live=True) as r:
        got = []
        for f in r:
            got.append(f.index)
            time.sleep(0.1 if len(got) < 5 else 0)
    assert r.stats.dropped > 0
    assert len(got) + r.stats.dropped == r.stats.decoded == SAMPLE_FRAMES
    assert got == sorted(got) and any(b - a > 1 for a, b in itertools.pairwise(got))


def test_corrupt_packets_are_skipped_and_counted(tmp_path: Path) -> None:
    with FrameReader(_corrupt_copy(tmp_path)) as r:
        n = sum(1 for _ in r)
    assert r.stats.corrupt > 0
    assert SAMPLE_FRAMES // 2 < n < SAMPLE_FRAMES


def test_truncated_file_gives_the_frames_before_the_cut(tmp_path: Path) -> None:
    p = tmp_path / "cut.mp4"
    data = SAMPLE.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with FrameReader(p) as r:
        n = sum(1 for _ in r)
    assert 20 < n < SAMPLE_FRAMES
    assert "truncated" in r.stats.end_reason


def test_files_that_are_not_videos_raise_decode_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(DecodeError, match=r"notes\.mp4: cannot open as a video"):
        FrameReader(text)
    head = tmp_path / "head.mp4"  # the first 300 bytes: header only, no frames (no moov either)
    head.write_bytes(SAMPLE.read_bytes()[:300])
    with pytest.raises(DecodeError, match=r"head\.mp4"):
        FrameReader(head)


def test_missing_camera_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="camera 97: cannot open"):
        FrameReader(97)


def test_writer_makes_browser_playable_h264(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with FrameReader(SAMPLE) as r, VideoWriter(out, r.info.fps or 25, (r.info.width, r.info.height)) as w:
        for f in r:
            w.write(f.image)
    assert w.codec == "h264" and w.note == ""
    assert _codec_and_count(out) == ("h264", SAMPLE_FRAMES)
    assert b"moov" in out.read_bytes()[:4096]  # +faststart: the index comes first, so browsers can stream it
    assert not list(tmp_path.glob("*.part*"))


def test_writer_falls_back_to_mp4v_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "_h264_available", lambda: False)
    out = tmp_path / "fallback.mp4"
    frame = np.full((121, 161, 3), 128, np.uint8)  # odd sizes are trimmed to even
    with VideoWriter(out, 10, (161, 121)) as w:
        for _ in range(5):
            w.write(frame)
    assert w.codec == "mp4v" and "browsers" in w.note and w.size == (160, 120)
    assert _codec_and_count(out) == ("mpeg4", 5)


def test_writer_without_frames_leaves_no_file(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "none.mp4", 25, (64, 48)):
        pass
    assert not list(tmp_path.iterdir())
    with pytest.raises(InputError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "such.mp4", 25, (64, 48))


class _FakeCamera:
    """Stands in for ``cv2.VideoCapture(index)``: delivers ``frames`` frames, then fails as if unplugged."""

    def __init__(self, frames: int) -> None:
        self.left = frames
        self.image = np.full((48, 64, 3), 90, np.uint8)

    def isOpened(self) -> bool:  # OpenCV's method name
        return True

    def get(self, prop: int) -> float:
        cv2 = video.cv2
        return {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48, cv2.CAP_PROP_FPS: 30}.get(prop, 0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left <= 0:
            return False, None
        self.left -= 1
        time.sleep(0.002)
        return True, self.image.copy()

    def release(self) -> None:
        pass


def test_webcam_unplugged_mid_run_ends_the_reader_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video.cv2, "VideoCapture", lambda index: _FakeCamera(25))
    monkeypatch.setattr(video, "_CAMERA_FAILS", 3)
    with FrameReader(0, queue_size=4) as r:
        assert (r.info.kind, r.info.live, r.info.backend, r.info.width) == ("camera", True, "opencv", 64)
        got = [f.index for f in r]
    assert "unplugged" in r.stats.end_reason
    assert len(got) + r.stats.dropped == r.stats.decoded == 25


def test_http_stream_is_read_through_the_stream_path() -> None:
    """A local HTTP server stands in for a network stream (no outside network needed)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=SAMPLE.parent))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{SAMPLE.name}"
        with FrameReader(url, live=False) as r:
            assert (r.info.kind, r.info.backend, r.info.width) == ("stream", "pyav", 640)
            n = sum(1 for _ in r)
        assert n == SAMPLE_FRAMES and r.stats.end_reason == "end of stream"
        with pytest.raises(DecodeError, match="cannot open as a video"):
            FrameReader(f"http://127.0.0.1:{server.server_address[1]}/missing.mp4")
    finally:
        server.shutdown()


def test_unknown_codec_is_named_as_unsupported(tmp_path: Path) -> None:
    data = bytearray(SAMPLE.read_bytes())
    entry = data.find(b"avc1", data.find(b"stsd"))  # the track's sample entry: H.264 -> an unknown four-cc
    data[entry : entry + 4] = b"zzzz"
    odd = tmp_path / "odd.mp4"
    odd.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match=r"odd\.mp4: unsupported video codec"):
        FrameReader(odd)
