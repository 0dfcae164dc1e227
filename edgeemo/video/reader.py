"""Video in: a file, a webcam or a stream decoded on a background thread.

A file, a webcam index or a stream URL (rtsp/rtmp/http/https/udp/tcp) becomes a sequence of
:class:`VideoFrame` delivered from a background thread through a bounded queue. For files every frame is
delivered, in order (the reader waits for the consumer); for live sources (webcam, stream) the queue keeps
only the freshest frames and the stale ones are dropped and counted, so a slow consumer stays in real time.
Files and streams are decoded with PyAV (the ``video`` extra) packet by packet, so a corrupt packet is
skipped and counted instead of ending the run; without PyAV, and for webcams, OpenCV's ``VideoCapture``
is used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from edgeemo.errors import DecodeError, EdgeemoError, InputError, MissingDependencyError, one_line

log = logging.getLogger(__name__)

SourceKind = Literal["file", "camera", "stream"]
_URL = re.compile(r"^(rtsp|rtsps|rtmp|rtmps|http|https|udp|tcp|srt)://", re.IGNORECASE)
_CAMERA_FAILS = 30  # consecutive failed webcam reads (about a second) before it counts as unplugged
DEFAULT_STREAM_TIMEOUT = 10.0  # seconds a stream may stay silent, while opening or between packets


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One decoded frame: ``index`` counts source frames from 0 (gaps are dropped frames), ``timestamp`` is
    seconds from the first frame (never decreasing), ``image`` is BGR uint8 (H, W, 3)."""

    index: int
    timestamp: float
    image: np.ndarray


@dataclass(frozen=True)
class SourceInfo:
    """What is known about a source once it is open; ``fps``/``frame_count`` are None where unknown."""

    source: str
    kind: SourceKind
    backend: Literal["pyav", "opencv"]
    width: int
    height: int
    fps: float | None
    frame_count: int | None
    codec: str | None

    @property
    def live(self) -> bool:
        return self.kind != "file"


@dataclass
class ReaderStats:
    """Counters of one reader; ``end_reason`` says why reading stopped ("end of file", "stopped", …)."""

    decoded: int = 0
    dropped: int = 0
    corrupt: int = 0
    decode_seconds: float = 0.0
    end_reason: str = ""


def parse_source(source: str | int | os.PathLike[str]) -> tuple[SourceKind, str | int]:
    """Classify a SOURCE argument: an integer (or digit string) is a webcam index, a URL is a stream,
    anything else a file path (which must exist)."""
    if isinstance(source, int):
        return "camera", source
    text = str(source)
    if text.isdigit():
        return "camera", int(text)
    if _URL.match(text):
        return "stream", text
    p = Path(text)
    if not p.exists():
        raise InputError(f"{text}: video file not found")
    if p.is_dir():
        raise InputError(f"{text}: is a folder, not a video file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{text}: video file is not readable (permissions)")
    if p.is_file() and p.stat().st_size == 0:  # a FIFO or device has no size: not refused here
        raise DecodeError(f"{text}: video file is empty (0 bytes)")
    return "file", str(p)


def timeout_message(source: str, seconds: float) -> str:
    """The one wording of a stream that sent nothing in time."""
    return (
        f"{source}: timed out after {seconds:g} s: the stream sent no video (wrong address or path, or a slow "
        "network: allow more time with --stream-timeout)"
    )


def _silent_for(started: float, seconds: float) -> bool:
    # FFmpeg reports an interrupted RTSP open as "Invalid data", so the elapsed time is what tells a timeout.
    return time.monotonic() - started >= 0.95 * seconds


def pyav_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------- decoders
class _PyAVDecoder:
    """Packet-level decoding with PyAV: corrupt packets are skipped and counted."""

    def __init__(self, source: str, kind: SourceKind, timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        import av

        self._av = av
        self.kind = kind
        self.timeout = timeout
        self.timed_out = False
        live = kind == "stream"
        started = time.monotonic()
        try:
            self.container = av.open(
                source, options={"rtsp_transport": "tcp"} if live else {}, timeout=(timeout, timeout) if live else None
            )
        except av.error.FileNotFoundError as exc:
            raise InputError(f"{source}: video file not found") from exc
        except av.error.FFmpegError as exc:
            if self._timed_out(exc, started):
                raise InputError(timeout_message(source, timeout)) from exc
            raise DecodeError(f"{source}: cannot open as a video ({one_line(exc, 200)})") from exc
        if not self.container.streams.video:
            self.container.close()
            raise DecodeError(f"{source}: no video stream in this file (or one without frames)")
        self.stream = self.container.streams.video[0]
        ctx = self.stream.codec_context
        if ctx is None:
            self.container.close()
            raise DecodeError(f"{source}: unsupported video codec (no decoder in this PyAV/FFmpeg build)")
        self.stream.thread_type = "AUTO" if kind == "file" else "SLICE"
        self.codec = ctx.name
        self.width = int(ctx.width or 0)
        self.height = int(ctx.height or 0)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.frame_count = int(self.stream.frames) or None
        self.corrupt = 0
        self.source = source
        # Phone videos are stored sideways with a display rotation; frames are delivered upright.
        self.rotation = _first_rotation(source) if os.path.isfile(source) else 0
        if self.rotation % 180 == 90:
            self.width, self.height = self.height, self.width

    def _timed_out(self, exc: BaseException, started: float) -> bool:
        silent = isinstance(exc, self._av.error.ExitError) or _silent_for(started, self.timeout)
        return self.kind == "stream" and silent

    def frames(self) -> Iterator[tuple[float | None, np.ndarray]]:
        av = self._av
        demux = self.container.demux(self.stream)
        while True:
            started = time.monotonic()
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.error.EOFError:
                return
            except av.error.FFmpegError as exc:
                if self._timed_out(exc, started):
                    self.timed_out = True
                    return
                # The container itself is broken past this point (e.g. a truncated file): end cleanly.
                self.corrupt += 1
                log.warning("%s: container unreadable past this point (%s); stopping", self.source, one_line(exc, 200))
                return
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                self.corrupt += 1
                log.debug("%s: skipped a corrupt packet (%s)", self.source, one_line(exc, 200))
                continue
            for frame in decoded:
                try:
                    image = frame.to_ndarray(format="bgr24")
                except (av.error.FFmpegError, ValueError) as exc:
                    self.corrupt += 1
                    log.debug("%s: skipped an unconvertible frame (%s)", self.source, exc)
                    continue
                yield frame.time, _upright(image, frame.rotation)

    def close(self) -> None:
        self.container.close()


def _first_rotation(source: str) -> int:
    """Display rotation of a file's first frame (0 when none, or when the file cannot tell)."""
    import av

    try:
        with av.open(source) as container:
            for frame in container.decode(video=0):
                return round(frame.rotation) % 360
    except (av.error.FFmpegError, ValueError, IndexError):
        pass
    return 0


def _upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, from the container's display matrix)."""
    turn = round(rotation) % 360
    if turn == 90:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if turn == 180:
        return cv2.rotate(image, cv2.ROTATE_180)
    if turn == 270:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


class _OpenCVDecoder:
    """``cv2.VideoCapture`` for webcams, and for files/streams where PyAV is not installed."""

    def __init__(self, source: str | int, kind: SourceKind, timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        self.kind = kind
        self.source = source
        self.timeout = timeout
        self.timed_out = False
        started = time.monotonic()
        if kind == "stream":
            ms = int(timeout * 1000)
            limits = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            self.cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, limits)
        else:
            self.cap = cv2.VideoCapture(source)
        if not self.cap.isOpened():
            self.cap.release()
            if kind == "camera":
                raise InputError(f"camera {source}: cannot open (no such webcam, or it is in use)")
            if kind == "stream" and _silent_for(started, timeout):
                raise InputError(timeout_message(str(source), timeout))
            raise DecodeError(f"{source}: cannot open as a video (unsupported container or codec)")
        fourcc = int(self.cap.get(cv2.CAP_PROP_FOURCC))
        self.codec = "".join(chr((fourcc >> 8 * i) & 0xFF) for i in range(4)).strip("\0 ") or None
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(self.cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if 0 < fps < 1000 else None
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if kind == "file" and count > 0 else None
        self.corrupt = 0
        self.unplugged = False

    def frames(self) -> Iterator[tuple[float | None, np.ndarray]]:
        fails = 0
        while True:
            started = time.monotonic()
            ok, image = self.cap.read()
            if not ok or image is None:
                if self.kind != "camera":
                    self.timed_out = self.kind == "stream" and _silent_for(started, self.timeout)
                    return
                fails += 1
                if fails >= _CAMERA_FAILS:
                    self.unplugged = True
                    return
                time.sleep(0.03)
                continue
            fails = 0
            if self.kind == "file":
                ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
                yield (ms / 1000.0 if ms >= 0 else None), image
            else:
                yield None, image

    def close(self) -> None:
        self.cap.release()




# ----------------------------------------------------------------------------------------------- reader
_END = object()


class FrameReader:
    """Opens a source (synchronously, so open errors raise here) and decodes it on a background thread.

    Iterate it to get :class:`VideoFrame` objects; iteration ends at the end of the source, after
    :meth:`stop`, or when a live source fails (``stats.end_reason`` says which). Use as a context manager
    or call :meth:`close`.
    """

    def __init__(
        self,
        source: str | int | os.PathLike[str],
        *,
        queue_size: int = 8,
        live: bool | None = None,
        backend: Literal["auto", "pyav", "opencv"] = "auto",
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
    ) -> None:
        if queue_size < 1:
            raise InputError(f"queue_size must be >= 1, got {queue_size}")
        if not stream_timeout > 0:
            raise InputError(f"stream_timeout must be > 0 seconds, got {stream_timeout}")
        kind, value = parse_source(source)
        use_pyav = kind != "camera" and backend != "opencv" and (backend == "pyav" or pyav_available())
        if backend == "pyav" and not pyav_available():
            raise MissingDependencyError("PyAV video decoding", "video")
        self._decoder: _PyAVDecoder | _OpenCVDecoder = (
            _PyAVDecoder(str(value), kind, stream_timeout) if use_pyav else _OpenCVDecoder(value, kind, stream_timeout)
        )
        d = self._decoder
        self.info = SourceInfo(
            source=str(source),
            kind=kind,
            backend="pyav" if use_pyav else "opencv",
            width=d.width,
            height=d.height,
            fps=d.fps,
            frame_count=d.frame_count,
            codec=d.codec,
        )
        self.live = kind != "file" if live is None else live
        self.stats = ReaderStats()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="edgeemo-decode", daemon=True)
        self._started = False
        self._closed = False
        self._lock = threading.Lock()

    # -- producer
    def _run(self) -> None:
        d = self._decoder
        fps = self.info.fps or 30.0
        t_start = time.monotonic()
        first_ts: float | None = None
        last_ts = 0.0
        index = 0
        reason = "end of file" if self.info.kind == "file" else "end of stream"
        try:
            gen = d.frames()
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    ts, image = next(gen)
                except StopIteration:
                    break
                self.stats.decode_seconds += time.perf_counter() - t0
                if self.info.kind == "camera":
                    ts = time.monotonic() - t_start
                elif ts is None:
                    ts = index / fps
                if first_ts is None:
                    first_ts = ts
                # broken files can carry out-of-order timestamps; downstream relies on time never going back
                last_ts = max(last_ts, ts - first_ts)
                frame = VideoFrame(index, last_ts, image)
                index += 1
                self.stats.decoded += 1
                self._put(frame)
            expected = self.info.frame_count
            if self._stop.is_set():
                reason = "stopped"
            elif self.info.kind == "file" and expected and self.stats.decoded + d.corrupt < expected:
                reason = f"file ended after {self.stats.decoded} of {expected} frames (truncated or corrupt)"
                log.warning("%s: %s", self.info.source, reason)
            elif isinstance(d, _OpenCVDecoder) and d.unplugged:
                reason = "camera stopped delivering frames (unplugged?)"
                log.warning("camera %s: %s", self.info.source, reason)
            elif d.timed_out:
                reason = f"stream timed out: no data for {d.timeout:g} s"
                log.warning("%s: %s", self.info.source, reason)
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            self._error = exc
            reason = f"decoder failed: {exc}"
        finally:
            self.stats.corrupt = d.corrupt
            self.stats.end_reason = reason
            self._put_end()

    def _put(self, frame: VideoFrame) -> None:
        if self.live:
            while True:
                try:
                    self._queue.put_nowait(frame)
                    return
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        with self._lock:
                            self.stats.dropped += 1
                    except queue.Empty:
                        pass
        while not self._stop.is_set():
            try:
                self._queue.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue

    def _put_end(self) -> None:
        while True:
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if not (self.live or self._stop.is_set()):
                    continue  # a file's frames are never dropped: wait for the consumer
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    continue
                if not self._stop.is_set():
                    with self._lock:
                        self.stats.dropped += 1

    # -- consumer
    def start(self) -> FrameReader:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def __iter__(self) -> Iterator[VideoFrame]:
        self.start()
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():  # the decoder may be blocked on a stalled source: do not wait for it
                    return
                continue
            if item is _END:
                if self._error is not None:
                    err = self._error
                    if isinstance(err, EdgeemoError):
                        raise err
                    raise DecodeError(f"{self.info.source}: decoding failed ({err})") from err
                return
            yield item

    def stop(self) -> None:
        """Ask the decoder to stop; iteration ends at once (frames already queued are dropped), even while the
        source stalls."""
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                break
        # Wake a consumer blocked on a source that stalls (a pipe, a stream): it must not wait for data.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_END)

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        if self._started:
            self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self._decoder.close()
            self._closed = True

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
