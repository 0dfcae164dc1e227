"""A stream that accepts the connection and then sends nothing ends with a timeout that says so and after how
long, while opening and while reading; the limit is an option of the reader, of VideoOptions and of the CLI."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from edgeemo.cli import main
from edgeemo.errors import InputError
from edgeemo.video.reader import FrameReader, pyav_available

LIFETIME = 30.0  # the servers stop by themselves after this long, whatever the test does


@dataclass
class Server:
    port: int
    payload: bytes = b""  # sent once after the request arrives; then the connection stays open and silent
    connections: list[socket.socket] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def serve(srv: socket.socket, server: Server) -> None:
    deadline = time.monotonic() + LIFETIME
    srv.settimeout(0.1)
    try:
        while not server.stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            server.connections.append(conn)
            if server.payload:
                conn.settimeout(2.0)
                try:
                    conn.recv(4096)  # the request
                    conn.sendall(server.payload)
                except OSError:
                    pass
    finally:
        for conn in server.connections:
            conn.close()
        srv.close()


@pytest.fixture
def silent_server() -> Iterator[Server]:
    """Accepts every connection on 127.0.0.1 and never sends a byte."""
    yield from _running(b"")


def _running(payload: bytes) -> Iterator[Server]:
    srv = socket.create_server(("127.0.0.1", 0))
    server = Server(srv.getsockname()[1], payload)
    thread = threading.Thread(target=serve, args=(srv, server), daemon=True)
    thread.start()
    yield server
    server.stop.set()
    thread.join(timeout=5)


BACKENDS = [
    pytest.param("pyav", marks=pytest.mark.skipif(not pyav_available(), reason="PyAV (the video extra) absent")),
    "opencv",
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_silent_server_times_out_while_opening(silent_server: Server, scheme: str, backend: str) -> None:
    url = f"{scheme}://127.0.0.1:{silent_server.port}/live"
    with pytest.raises(InputError) as err:
        FrameReader(url, stream_timeout=1.0, backend=backend)  # type: ignore[arg-type]
    assert str(err.value).startswith(f"{url}: timed out after 1 s: the stream sent no video")
    assert "--stream-timeout" in str(err.value)
    assert silent_server.connections, "the reader never connected"


def _ts_clip(frames: int) -> bytes:
    av = pytest.importorskip("av")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mpegts") as out:
        stream = out.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.full((48, 64, 3), (i * 5) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.skipif(not pyav_available(), reason="PyAV (the video extra) absent")
def test_stream_that_stalls_after_frames_ends_with_a_timeout_reason() -> None:
    # 6 s of video, more than FFmpeg's 5 s probe, so opening never waits for the stall.
    header = b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\n\r\n"
    for server in _running(header + _ts_clip(150)):
        with FrameReader(f"http://127.0.0.1:{server.port}/live.ts", stream_timeout=1.0, live=False) as reader:
            frames = sum(1 for _ in reader)
        assert frames >= 140
        assert reader.stats.end_reason == "stream timed out: no data for 1 s"


def test_video_command_has_the_option(
    silent_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"rtsp://127.0.0.1:{silent_server.port}/cam"
    argv = ["edgeemo", "video", url, "--stream-timeout", "1", "--jsonl", str(tmp_path / "o.jsonl")]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"edgeemo: error: {url}: timed out after 1 s") and "\n" not in err


def test_timeout_must_be_positive() -> None:
    with pytest.raises(InputError, match="stream_timeout"):
        FrameReader("rtsp://127.0.0.1:9/x", stream_timeout=0)
