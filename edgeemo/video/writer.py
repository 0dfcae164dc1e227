"""Video out: an mp4 (or mov/mkv/avi) writer.

:class:`VideoWriter` produces H.264 (yuv420p, ``+faststart``) through PyAV's bundled libx264, which browsers play;
where PyAV or libx264 is missing it falls back to OpenCV's MPEG-4 Part 2 (``mp4v``) and says so in
:attr:`VideoWriter.note`. The file is written under a fresh hidden temporary name beside the final one and moved
into place on :meth:`VideoWriter.close` (:mod:`edgeemo.io.sinks`), so a finished name is always a finalised,
playable file. Given ``audio_from`` (the source file), the source's first audio stream is copied into the finished
file (packets remuxed, not re-encoded) before the move; the OpenCV fallback cannot carry audio and says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from edgeemo.errors import EdgeemoError, InputError, MissingDependencyError, one_line
from edgeemo.io.sinks import commit_file, create_temp

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = ("", ".mp4", ".m4v", ".mov", ".mkv", ".avi")  # what VideoWriter writes ("": mp4)


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
            raise InputError(f"{self.path}: cannot create video file ({one_line(exc, 200)})") from exc
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
        commit_file(self._part, self.path)

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
            self.audio_note = f"the source's audio is not carried over ({one_line(exc, 200)})"
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
