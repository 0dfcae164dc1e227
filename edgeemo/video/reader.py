"""Video in and out: a threaded frame reader and an mp4 writer.

Reading: a file, a webcam index or a stream URL (rtsp/rtmp/http/https/udp/tcp) becomes a sequence of
:class:`VideoFrame` delivered from a background thread through a bounded queue. For files every frame is
delivered, in order (the reader waits for the consumer); for live sources (webcam, stream) the queue keeps
only the freshest frames and the stale ones are dropped and counted, so a slow consumer stays in real time.
Files and streams are decoded with PyAV (the ``video`` extra) packet by packet, so a corrupt packet is
skipped and counted instead of ending the run; without PyAV, and for webcams, OpenCV's ``VideoCapture``
is used.

Writing: :class:`VideoWriter` produces H.264 (yuv420p, ``+faststart``) through PyAV's bundled libx264,
which browsers play; where PyAV or libx264 is missing it falls back to OpenCV's MPEG-4 Part 2 (``mp4v``)
and says so in :attr:`VideoWriter.note`. The file is written under a fresh hidden ``.part`` name beside the
final one and renamed on :meth:`VideoWriter.close`, so a finished name is always a finalised, playable file.
Given ``audio_from`` (the source file), the source's first audio stream is copied into the finished file
(packets remuxed, not re-encoded) before the rename; the OpenCV fallback cannot carry audio and says so.
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
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from edgeemo.errors import DecodeError, EdgeemoError, InputError, one_line
from edgeemo.io.sinks import create_temp, output_error

log = logging.getLogger(__name__)

SourceKind = Literal["file", "camera", "stream"]
VIDEO_SUFFIXES = ("", ".mp4", ".m4v", ".mov", ".mkv", ".avi")  # what VideoWriter writes ("": mp4)
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
            raise DecodeError(f"{source}: cannot open as a video ({_av_reason(exc)})") from exc
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
                log.warning("%s: container unreadable past this point (%s); stopping", self.source, _av_reason(exc))
                return
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                self.corrupt += 1
                log.debug("%s: skipped a corrupt packet (%s)", self.source, _av_reason(exc))
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


def _av_reason(exc: BaseException) -> str:
    return one_line(exc, 200)


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
            from edgeemo.errors import MissingDependencyError

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
        self.stop()
        if self._started:
            self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self._decoder.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------- writer
class VideoWriter:
    """Writes BGR frames of one size to a video file at a constant frame rate.

    ``codec="auto"`` picks H.264 through PyAV where available, else OpenCV ``mp4v`` (with a warning and
    :attr:`note`); ``"h264"`` insists on H.264 and raises :class:`MissingDependencyError` without it.
    Frames of another size are resized; odd sizes are trimmed by one pixel (yuv420p needs even sizes).
    ``audio_from``: a source file whose first audio stream is copied into the output on :meth:`close` (H.264
    path only); :attr:`audio_note` says why it was not, where that failed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: tuple[int, int],
        *,
        codec: Literal["auto", "h264", "mp4v"] = "auto",
        crf: int = 23,
        preset: str = "veryfast",
        audio_from: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.audio_from = None if audio_from is None else str(audio_from)
        if not self.path.parent.exists():
            raise InputError(f"{self.path}: output folder {self.path.parent} does not exist")
        if not fps or fps <= 0:
            fps = 30.0
        w, h = int(size[0]), int(size[1])
        if w < 2 or h < 2:
            raise InputError(f"{self.path}: cannot write frames of size {w}x{h}")
        self.size = (w - w % 2, h - h % 2)
        self.fps = float(fps)
        self.frames = 0
        fd, self._part = create_temp(self.path, f".part{self.path.suffix or '.mp4'}")  # a fresh name, never a link
        os.close(fd)
        self._closed = False
        self.note = ""
        self.audio_note = ""  # set by close() when the source's audio could not be carried over
        self._container: Any = None
        self._stream: Any = None
        self._cv: Any = None
        try:
            self._open(codec, crf, preset)
        except BaseException:
            self._part.unlink(missing_ok=True)
            raise

    def _open(self, codec: str, crf: int, preset: str) -> None:
        want_h264 = codec in ("auto", "h264")
        if want_h264 and _h264_available():
            self._open_pyav(crf, preset)
            self.codec = "h264"
        elif codec == "h264":
            from edgeemo.errors import MissingDependencyError

            raise MissingDependencyError("H.264 video output", "video", "PyAV with libx264 not found")
        else:
            self._open_opencv()
            self.codec = "mp4v"
            if codec == "auto":
                self.note = (
                    "H.264 encoder unavailable (pip install 'edgeemo[video]' for PyAV/libx264); wrote MPEG-4 "
                    "Part 2 (mp4v), which plays in VLC/ffplay but not in most browsers"
                )
                log.warning("%s: %s", self.path, self.note)
            if self.audio_from is not None:
                dropped = "the source's audio (if any) is dropped: the OpenCV writer cannot carry it (PyAV can)"
                self.note = f"{self.note}; {dropped}" if self.note else dropped

    def _open_pyav(self, crf: int, preset: str) -> None:
        import av

        fmt = "mp4" if self.path.suffix.lower() in ("", ".mp4", ".m4v") else None
        try:
            self._container = av.open(
                str(self._part),
                mode="w",
                format=fmt,
                container_options={"movflags": "+faststart"} if fmt == "mp4" else {},
            )
        except av.error.FFmpegError as exc:
            raise InputError(f"{self.path}: cannot create video file ({_av_reason(exc)})") from exc
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        self._stream = stream

    def _open_opencv(self) -> None:
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        self._cv = cv2.VideoWriter(str(self._part), fourcc, self.fps, self.size)
        if not self._cv.isOpened():
            raise InputError(f"{self.path}: cannot create video file (OpenCV mp4v writer failed)")

    def write(self, image: np.ndarray) -> None:
        if self._closed:
            raise EdgeemoError(f"{self.path}: writer is closed")
        if (image.shape[1], image.shape[0]) != self.size:
            if image.shape[1] - self.size[0] in (0, 1) and image.shape[0] - self.size[1] in (0, 1):
                image = image[: self.size[1], : self.size[0]]
            else:
                image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        if self._stream is not None:
            import av

            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = self.frames
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        else:
            self._cv.write(image)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder, finalise the container and move the file to its final name."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._stream is not None:
                try:
                    for packet in self._stream.encode(None):
                        self._container.mux(packet)
                finally:
                    self._container.close()
                if self.audio_from is not None and self.frames:
                    self._add_audio(self.audio_from)
            elif self._cv is not None:
                self._cv.release()
        except BaseException:
            self._part.unlink(missing_ok=True)
            raise
        if self.frames == 0:
            self._part.unlink(missing_ok=True)
            log.warning("%s: no frames were written; no video file created", self.path)
            return
        try:
            os.replace(self._part, self.path)
        except OSError as exc:
            self._part.unlink(missing_ok=True)
            raise output_error(self.path, exc) from exc

    def _add_audio(self, source: str) -> None:
        """Remux the written video and ``source``'s first audio stream (from the source's first video frame,
        cut at the video's end) into a new temporary file that replaces the ``.part`` file. An audio stream
        this container cannot hold is left out with a note; the video is kept either way."""
        import av

        if not os.path.isfile(source):  # a pipe or device: reading it again would wait for data that never comes
            return
        try:
            with av.open(source) as src:
                if not src.streams.audio:
                    return
                fd, merged = create_temp(self.path, f".part{self.path.suffix or '.mp4'}")
                os.close(fd)
                try:
                    _remux_with_audio(self._part, src, merged, self.frames / self.fps)
                except BaseException:
                    merged.unlink(missing_ok=True)
                    raise
        except (av.error.FFmpegError, ValueError) as exc:
            self.audio_note = f"the source's audio is not carried over ({_av_reason(exc)})"
            log.warning("%s: %s", self.path, self.audio_note)
            return
        os.replace(merged, self._part)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remux_with_audio(video_path: Path, src: Any, out_path: Path, duration: float) -> None:
    """Write ``video_path``'s video and ``src``'s first audio stream (shifted so the source's first video frame is
    at 0, packets past ``duration`` dropped) to ``out_path``, interleaved in time order."""
    import heapq

    import av

    audio_in = src.streams.audio[0]
    v0 = src.streams.video[0].start_time if src.streams.video else None
    v0_s = float(v0 * src.streams.video[0].time_base) if v0 is not None else 0.0
    with av.open(str(video_path)) as vid, av.open(str(out_path), mode="w", format="mp4" if _is_mp4(out_path) else None,
                                                  container_options=_mp4_options(out_path)) as out:  # fmt: skip
        video_in = vid.streams.video[0]
        video_out = _from_template(out, video_in)
        audio_out = _from_template(out, audio_in)
        shift = round(v0_s / audio_in.time_base) if audio_in.time_base else 0

        def timed(packets: Iterator[Any], stream: Any, offset: int) -> Iterator[tuple[float, int, Any]]:
            for k, pkt in enumerate(packets):
                if pkt.dts is None and pkt.pts is None:
                    continue  # the demuxer's empty flush packet
                if offset:
                    pkt.pts = None if pkt.pts is None else pkt.pts - offset
                    pkt.dts = None if pkt.dts is None else pkt.dts - offset
                t = float(((pkt.dts if pkt.dts is not None else pkt.pts) or 0) * pkt.time_base)
                yield t, k, pkt

        videos = ((t, 0, k, p) for t, k, p in timed(vid.demux(video_in), video_in, 0))
        audios = ((t, 1, k, p) for t, k, p in timed(src.demux(audio_in), audio_in, shift) if -0.5 < t < duration)
        for _t, which, _k, pkt in heapq.merge(videos, audios, key=lambda x: (x[0], x[1], x[2])):
            pkt.stream = audio_out if which else video_out
            out.mux(pkt)


def _is_mp4(path: Path) -> bool:
    return path.suffix.lower() in ("", ".mp4", ".m4v")


def _mp4_options(path: Path) -> dict[str, str]:
    return {"movflags": "+faststart"} if _is_mp4(path) else {}


def _from_template(container: Any, stream: Any) -> Any:
    """An output stream copying ``stream``'s codec parameters (PyAV 13+ and 12 spell it differently)."""
    add = getattr(container, "add_stream_from_template", None)
    return add(stream) if add is not None else container.add_stream(template=stream)


def _h264_available() -> bool:
    try:
        import av

        av.Codec("libx264", "w")
    except Exception:  # ImportError, or av.codec.codec.UnknownCodecError in builds without libx264
        return False
    return True
