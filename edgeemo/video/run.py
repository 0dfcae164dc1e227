"""Video runs: decode → detect/infer → output, as threaded stages joined by bounded queues.

* decode: :class:`~edgeemo.video.reader.FrameReader` on its own thread (files: every frame, in order; live
  sources: stale frames dropped and counted);
* detect: worker threads detect faces a few frames ahead (every ``detect_every`` frames; the tracker carries
  boxes in between): several at once when the detector is thread-safe (BlazeFace, dlib HOG), else one,
  which still overlaps detection with the rest (:attr:`VideoOptions.detect_ahead`);
* infer: the calling thread takes frames in order, tracks faces, classifies all faces of the frame in one
  session call and smooths each track's probabilities;
* output: one thread annotates frames and feeds the sinks (video writer, JSON lines, CSV, timeline).

Decoding (PyAV/FFmpeg), inference (onnxruntime) and encoding (libx264) release the GIL, so the stages
overlap. :meth:`VideoRun.stop` (wired to Ctrl-C/SIGTERM by the CLI) ends the run after the frames already
being detected;
every output written so far is then finalised: the mp4 is closed (playable), JSON lines/CSV are complete
line by line, the timeline is written, and the summary says that they cover only the frames processed.

Every output is written under a temporary name beside its final one and moved into place when complete
(:mod:`edgeemo.io.sinks`), so an earlier file of the same name stays whole until then; an output whose writing
failed is dropped (the earlier file is kept) and the error says which outputs were kept.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeemo.errors import DecodeError, EdgeemoError, InputError, printable
from edgeemo.io.sinks import AtomicFile, output_error, prepare_outputs
from edgeemo.render.figure import plot_format
from edgeemo.render.timeline import Timeline
from edgeemo.results import Face, FrameResult
from edgeemo.runtime.session import usable_cores
from edgeemo.video.reader import (
    DEFAULT_STREAM_TIMEOUT,
    VIDEO_SUFFIXES,
    FrameReader,
    SourceInfo,
    VideoFrame,
    VideoWriter,
    parse_source,
)
from edgeemo.video.session import FrameEngine, VideoSession

log = logging.getLogger(__name__)

Annotator = Callable[[np.ndarray, FrameResult], np.ndarray]
STAGES = ("decode", "detect", "infer", "output")


@dataclass(frozen=True)
class VideoOptions:
    """How a video is processed (the CLI options of the same names)."""

    detect_every: int = 1
    smoothing: float = 0.6
    max_misses: int = 10
    iou_threshold: float = 0.3
    queue_size: int = 8
    live: bool | None = None  # None: live for webcams and streams, not for files
    # Frames whose detection runs ahead on worker threads while the calling thread tracks, classifies and
    # outputs earlier ones. None: one per CPU (at most 4; one CPU fewer when a video is encoded, unless the
    # detector is CPU-heavy) for a thread-safe detector, else 1 (detection still overlaps the rest).
    # 0: detect on the calling thread.
    detect_ahead: int | None = None
    stream_timeout: float = DEFAULT_STREAM_TIMEOUT  # seconds a stream may send nothing before it has timed out
    scene_cuts: bool = True  # end every track at a scene cut (see VideoSession)

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise InputError(f"detect_every must be >= 1, got {self.detect_every}")
        if self.queue_size < 1:
            raise InputError(f"queue_size must be >= 1, got {self.queue_size}")
        if self.detect_ahead is not None and self.detect_ahead < 0:
            raise InputError(f"detect_ahead must be >= 0, got {self.detect_ahead}")


def detect_ahead_workers(options: VideoOptions, engine: FrameEngine, encoding: bool = False) -> int:
    """How many detection threads a run uses (see :attr:`VideoOptions.detect_ahead`).

    With ``encoding`` (an output video or live window is drawn and encoded) one core is left to the encoder,
    unless the detector is CPU-heavy: on 2 cores with H.264 encoding, BlazeFace's short-range model ran at 154
    FPS with two detection threads and 165 with one (AMD EPYC), while dlib HOG ran at 30.3 FPS with two and
    20.0 on the main thread (Intel Xeon; ``python -m benchmarks.video_fps --detect-ahead 0``).
    """
    if options.detect_ahead is not None:
        return options.detect_ahead
    if not getattr(engine, "concurrent_detect", False):
        return 1
    cpus = usable_cores()
    spare_encoder_core = encoding and not getattr(engine, "heavy_detect", False)
    return max(1, min(4, cpus - 1 if spare_encoder_core else cpus))


@dataclass(frozen=True)
class VideoOutputs:
    """Where results go; each is optional. ``timeline_csv`` defaults to the PNG's name with ``.csv``."""

    video: Path | None = None
    jsonl: Path | None = None
    csv: Path | None = None
    timeline: Path | None = None
    timeline_csv: Path | None = None
    circumplex: Path | None = None  # valence-arousal trajectory per track (when the results carry VA)

    def resolved_timeline_csv(self) -> Path | None:
        if self.timeline_csv is not None:
            return self.timeline_csv
        return self.timeline.with_suffix(".csv") if self.timeline is not None else None

    def paths(self) -> list[Path]:
        return [p for _, p in self.named()]

    def named(self) -> list[tuple[str, Path]]:
        """(what it is, path) of every output given."""
        candidates = (
            ("the video output", self.video),
            ("the JSON lines", self.jsonl),
            ("the CSV", self.csv),
            ("the timeline", self.timeline),
            ("the timeline CSV (beside the timeline plot)", self.resolved_timeline_csv()),
            ("the circumplex", self.circumplex),
        )
        return [(what, p) for what, p in candidates if p]

    def prepare(self, source: str | os.PathLike[str] | None = None) -> None:
        """Before a run: refuse formats that cannot be written and outputs that are one file (or the input
        video ``source``), and create missing output folders."""
        if self.video is not None and self.video.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(
                f"{printable(str(self.video))}: cannot write a video as {self.video.suffix!r} "
                f"(use {', '.join(s for s in VIDEO_SUFFIXES if s)})"
            )
        for plot in (self.timeline, self.circumplex):
            if plot is not None:
                plot_format(plot)
        prepare_outputs(self.named(), [("the input video", Path(source))] if source is not None else [])


@dataclass(frozen=True)
class VideoSummary:
    """What a run did; ``stage_seconds`` is busy time per stage, ``stage_fps`` frames per busy second.

    ``seconds`` is the whole run; ``finish_seconds`` the part of it spent finalising the outputs after the last
    frame (closing the video, drawing the plots). :attr:`fps` counts the rest, the time frames were processed,
    which is what the CLI's progress bar shows.
    """

    source: str
    frames: int
    faces: int
    tracks: int
    decoded: int
    dropped: int
    corrupt: int
    seconds: float
    stage_seconds: dict[str, float]
    end_reason: str
    interrupted: bool
    outputs: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    finish_seconds: float = 0.0

    @property
    def processing_seconds(self) -> float:
        return max(0.0, self.seconds - self.finish_seconds)

    @property
    def fps(self) -> float:
        """Frames per second of processing (decode to output), finalising excluded: the progress bar's figure."""
        return self.frames / self.processing_seconds if self.processing_seconds > 0 else 0.0

    @property
    def stage_fps(self) -> dict[str, float]:
        return {k: (self.frames / v if v > 0 else float("inf")) for k, v in self.stage_seconds.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "frames": self.frames,
            "faces": self.faces,
            "tracks": self.tracks,
            "decoded": self.decoded,
            "dropped": self.dropped,
            "corrupt_packets": self.corrupt,
            "seconds": round(self.seconds, 4),
            "processing_seconds": round(self.processing_seconds, 4),
            "finish_seconds": round(self.finish_seconds, 4),
            "fps": round(self.fps, 2),
            "stage_seconds": {k: round(v, 4) for k, v in self.stage_seconds.items()},
            "stage_fps": {k: (round(v, 1) if v != float("inf") else None) for k, v in self.stage_fps.items()},
            "end_reason": self.end_reason,
            "interrupted": self.interrupted,
            "outputs": self.outputs,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------------- sinks
class _TextSink:
    """A text output written under a temporary name and moved into place by :meth:`close` (``commit``) or
    dropped by :meth:`discard`; a write error marks it failed and names the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failed = False
        self._out = AtomicFile(path)
        self._fh = self._out.file

    def _flush(self, text: str) -> None:
        try:
            self._fh.write(text)
            self._fh.flush()
        except OSError as exc:
            self.failed = True
            raise output_error(self.path, exc) from exc

    def close(self) -> Path:
        return self._out.commit()

    def discard(self) -> None:
        self._out.discard()


class _JsonlSink(_TextSink):
    """One JSON object per frame (``FrameResult.to_dict()``), flushed per line so a stopped run loses nothing."""

    def write(self, result: FrameResult) -> None:
        self._flush(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")


class _CsvSink(_TextSink):
    """One row per face per frame: frame, timestamp, track, box, score, label, confidence, probabilities, VA."""

    def __init__(self, path: Path, classes: Sequence[str]) -> None:
        super().__init__(path)
        self.classes = tuple(classes)
        self._buf = io.StringIO()
        self._w = csv.writer(self._buf)
        self._w.writerow(
            [
                "frame",
                "timestamp",
                "track",
                "x1",
                "y1",
                "x2",
                "y2",
                "score",
                "label",
                "confidence",
                *self.classes,
                "valence",
                "arousal",
                "va_source",
            ]
        )
        self._drain()

    def _drain(self) -> None:
        text = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        self._flush(text)

    def write(self, result: FrameResult) -> None:
        ts = "" if result.timestamp is None else f"{result.timestamp:.4f}"
        for f in result.faces:
            p, b = f.prediction, f.face.box
            probs = dict(p.probabilities)
            self._w.writerow(
                [
                    result.index,
                    ts,
                    "" if f.track_id is None else f.track_id,
                    f"{b.x1:.1f}",
                    f"{b.y1:.1f}",
                    f"{b.x2:.1f}",
                    f"{b.y2:.1f}",
                    f"{f.face.score:.4f}",
                    p.label,
                    f"{p.confidence:.6f}",
                    *(f"{probs.get(c, 0.0):.6f}" for c in self.classes),
                    "" if p.valence is None else f"{p.valence:.6f}",
                    "" if p.arousal is None else f"{p.arousal:.6f}",
                    p.va_source or "",
                ]
            )
        self._drain()


# ------------------------------------------------------------------------------------------------------ run
_DONE = object()


class VideoRun:
    """One video run: open the source here (errors raise at construction), then :meth:`run`.

    ``annotate`` draws a :class:`FrameResult` onto a copy of the frame for the output video and the live
    window; ``show`` is called from the calling thread with each annotated frame and returns False to stop.
    ``progress`` is called from the calling thread after every frame with (frames done, seconds elapsed);
    ``step`` with a short description of each finishing step after the last frame ("drawing the timeline", …).
    With ``detect_every > 1`` the faces of frames without detection are the tracker's boxes, with score 0.0.
    """

    def __init__(
        self,
        engine: FrameEngine,
        source: str | int | os.PathLike[str],
        outputs: VideoOutputs | None = None,
        options: VideoOptions | None = None,
        *,
        annotate: Annotator | None = None,
        show: Callable[[np.ndarray], bool] | None = None,
        progress: Callable[[int, float], None] | None = None,
        step: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.outputs = outputs or VideoOutputs()
        self.options = options or VideoOptions()
        kind, value = parse_source(source)
        self.outputs.prepare(str(value) if kind == "file" else None)
        if (self.outputs.video is not None or show is not None) and annotate is None:
            raise InputError("an output video or live window needs an annotate function")
        self.reader = FrameReader(
            source,
            queue_size=self.options.queue_size,
            live=self.options.live,
            stream_timeout=self.options.stream_timeout,
        )
        self.info: SourceInfo = self.reader.info
        self.annotate = annotate
        self.show = show
        self.progress = progress
        self.step = step
        self._stop = threading.Event()
        self._busy = dict.fromkeys(STAGES, 0.0)
        self._out_queue: queue.Queue[Any] = queue.Queue(maxsize=self.options.queue_size)
        self._out_error: BaseException | None = None
        self._latest: np.ndarray | None = None
        self._latest_lock = threading.Lock()
        self._writer: VideoWriter | None = None
        self._jsonl: _JsonlSink | None = None
        self._csv: _CsvSink | None = None
        o = self.outputs
        self._timeline = Timeline() if o.timeline or o.timeline_csv or o.circumplex else None
        self._written: dict[str, Path] = {}
        self.notes: list[str] = []

    def stop(self) -> None:
        """End the run after the current frame (safe from a signal handler or another thread)."""
        self._stop.set()
        self.reader.stop()

    # -- output stage -------------------------------------------------------------------------------------
    def _open_sinks(self) -> None:
        o = self.outputs
        if o.jsonl is not None:
            self._jsonl = _JsonlSink(o.jsonl)
        if o.csv is not None:
            self._csv = _CsvSink(o.csv, self.engine.classes)

    def _output_loop(self) -> None:
        while True:
            item = self._out_queue.get()
            if item is _DONE:
                return
            if self._out_error is not None:
                continue  # keep draining so the producer never blocks
            frame, result = item
            t0 = time.perf_counter()
            try:
                self._emit(frame, result)
            except BaseException as exc:  # raised again in the calling thread by run()
                self._out_error = exc
                self.stop()
            self._busy["output"] += time.perf_counter() - t0

    def _emit(self, frame: VideoFrame, result: FrameResult) -> None:
        annotate = self.annotate
        if annotate is not None and (self.outputs.video is not None or self.show is not None):
            drawn = annotate(frame.image, result)
            if self.outputs.video is not None:
                if self._writer is None:  # sized from the first frame (rotated phone videos differ from info)
                    h, w = drawn.shape[:2]
                    audio = self.info.source if self.info.kind == "file" else None  # carried into the mp4
                    self._writer = VideoWriter(self.outputs.video, self.info.fps or 30.0, (w, h), audio_from=audio)
                    if self._writer.note:
                        self.notes.append(self._writer.note)
                self._writer.write(drawn)
            if self.show is not None:
                with self._latest_lock:
                    self._latest = drawn
        if self._jsonl is not None:
            self._jsonl.write(result)
        if self._csv is not None:
            self._csv.write(result)
        if self._timeline is not None:
            self._timeline.add(result)

    # -- the run ------------------------------------------------------------------------------------------
    def run(self) -> VideoSummary:
        """Process the source to its end or until :meth:`stop`; finalise every output; return the summary.

        A KeyboardInterrupt is finalised the same way and then re-raised. A source that yields no frame at all
        raises :class:`DecodeError` (no output is written: earlier files of the same names are kept).
        """
        opt = self.options
        session = VideoSession(
            self.engine, opt.detect_every, opt.smoothing, opt.max_misses, opt.iou_threshold, opt.scene_cuts
        )
        src = self.info.source
        interrupted = False
        t_start = time.perf_counter()
        out_thread = threading.Thread(target=self._output_loop, name="edgeemo-output", daemon=True)
        out_thread.start()
        encoding = self.outputs.video is not None or self.show is not None
        workers = detect_ahead_workers(opt, self.engine, encoding)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="edgeemo-detect") if workers else None
        pending: deque[tuple[VideoFrame, Future[tuple[list[Face], float]] | None]] = deque()
        done = [0, 0]  # frames, faces

        def finish_oldest() -> None:
            done[1] += self._finish(session, *pending.popleft())
            done[0] += 1
            if self.progress is not None:
                self.progress(done[0], time.perf_counter() - t_start)

        try:
            self._open_sinks()
            for k, frame in enumerate(self.reader):
                if self._stop.is_set() or self._out_error is not None:
                    break
                ahead = pool.submit(self._timed_detect, frame.image) if pool and session.detects(k) else None
                pending.append((frame, ahead))
                while len(pending) > workers and self._out_error is None:
                    finish_oldest()
            while pending and self._out_error is None:  # frames already being detected are not dropped
                finish_oldest()
        except KeyboardInterrupt:
            interrupted = True
            self.stop()
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if self._stop.is_set():
                interrupted = True
            t_frames = time.perf_counter()
            self.reader.stop()
            self._step("writing the last frames")
            self._out_queue.put(_DONE)
            out_thread.join()
            self.reader.close()
            self._close_sinks(done[0], interrupted or self._stop.is_set())
        if self._out_error is not None:
            raise self._out_error
        t_end = time.perf_counter()
        seconds = t_end - t_start
        frames, faces = done
        if session.cuts:
            self.notes.append(f"{session.cuts} scene cut(s): tracks were restarted at each (new ids)")
        stats = self.reader.stats
        self._busy["decode"] = stats.decode_seconds
        summary = VideoSummary(
            source=src,
            frames=frames,
            faces=faces,
            tracks=len(session.track_ids),
            decoded=stats.decoded,
            dropped=stats.dropped,
            corrupt=stats.corrupt,
            seconds=seconds,
            stage_seconds=dict(self._busy),
            end_reason="stopped" if interrupted else stats.end_reason,
            interrupted=interrupted,
            outputs={k: str(v) for k, v in self._written.items()},
            notes=tuple(self.notes),
            finish_seconds=t_end - t_frames,
        )
        if stats.corrupt:
            log.warning("%s: skipped %d corrupt packet(s)", src, stats.corrupt)
        if frames == 0 and not interrupted:
            raise DecodeError(f"{src}: no video frames could be decoded ({stats.end_reason})")
        return summary

    def _step(self, what: str) -> None:
        if self.step is not None:
            self.step(what)

    def _timed_detect(self, image: np.ndarray) -> tuple[list[Face], float]:
        t0 = time.perf_counter()
        found = self.engine.detect(image)
        return found, time.perf_counter() - t0

    def _finish(self, session: VideoSession, frame: VideoFrame, ahead: Future[tuple[list[Face], float]] | None) -> int:
        """Track, classify and hand one frame to the outputs (in frame order); returns its face count."""
        detected = None
        if ahead is not None:
            detected, seconds = ahead.result()
            self._busy["detect"] += seconds
        result = session.process(frame.image, frame.timestamp, frame.index, detected)
        self._busy["detect"] += session.last_detect_s
        self._busy["infer"] += session.last_infer_s
        self._put_output((frame, result))
        if self.show is not None:
            with self._latest_lock:
                drawn, self._latest = self._latest, None
            if drawn is not None and not self.show(drawn):
                self.stop()
        return len(result.faces)

    def _put_output(self, item: tuple[VideoFrame, FrameResult]) -> None:
        while True:
            try:
                self._out_queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._out_error is not None:
                    return

    def _close_sinks(self, frames: int, stopped: bool) -> None:
        """Finalise every output, even when one fails: each is moved into place whole, or dropped (an earlier
        file of its name kept) when its writing failed. The first failure is raised after all are closed, naming
        what was kept; a run stopped early notes that its outputs cover only the frames processed."""
        errors: list[BaseException] = []
        dropped: list[str] = []
        if frames == 0:  # nothing to keep: earlier files of the same names stay as they were
            for sink in (self._jsonl, self._csv):
                if sink is not None:
                    sink.discard()
            if self._writer is not None:
                self._writer.close()  # no frame: removes its temporary file
            self.notes.append("no frame was processed: no output written")
            return

        def attempt(name: str, fn: Callable[[], Path | None], what: str) -> None:
            self._step(what)
            try:
                p = fn()
                if p is not None:
                    self._written[name] = p
            except BaseException as exc:
                errors.append(exc)
                dropped.append(name)
                log.error("finalising %s failed: %s", name, exc)

        if self._writer is not None:
            w = self._writer

            def close_video() -> Path | None:
                w.close()
                if w.audio_note:
                    self.notes.append(w.audio_note)
                return w.path if w.frames else None

            attempt("video", close_video, "finalising the video")
        for name, sink in (("jsonl", self._jsonl), ("csv", self._csv)):
            if sink is None:
                continue
            if sink.failed:
                sink.discard()
                dropped.append(name)
            else:
                attempt(name, sink.close, f"closing the {name.upper()}")
        tl = self._timeline
        if tl is not None:
            tl_csv = self.outputs.resolved_timeline_csv()
            if tl_csv is not None:
                attempt("timeline_csv", lambda: tl.write_csv(tl_csv), "writing the timeline CSV")
            png = self.outputs.timeline
            if png is not None:
                attempt("timeline", lambda: tl.plot(png), "drawing the timeline")
            circ = self.outputs.circumplex
            if circ is not None:
                if tl.has_va:
                    attempt("circumplex", lambda: _plot_circumplex(tl, circ), "drawing the circumplex")
                else:
                    self.notes.append(f"{printable(str(circ))} not written: the results carry no valence/arousal")
        kept = ", ".join(printable(str(p)) for p in self._written.values())
        if self._out_error is not None or errors:
            if self._out_error is None:
                self._out_error = errors[0]
            what = f"kept (partial: {frames} frames processed): {kept}" if kept else "no output was written"
            lost = f"; not written (an earlier file of the same name is kept): {', '.join(dropped)}" if dropped else ""
            self._out_error = _with_context(self._out_error, f"{what}{lost}")
        elif stopped and kept:
            self.notes.append(f"stopped early: the outputs cover the first {frames} frames only (partial): {kept}")


def _with_context(err: BaseException, context: str) -> EdgeemoError:
    """The error of a failed run as an :class:`EdgeemoError` (its own family kept) that also says what was kept."""
    if isinstance(err, EdgeemoError):
        err.args = (f"{err}; {context}",)
        return err
    wrapped = EdgeemoError(f"writing outputs failed: {err}; {context}")
    wrapped.__cause__ = err
    return wrapped


def _plot_circumplex(tl: Timeline, path: Path) -> Path:
    from edgeemo.render.circumplex import plot_circumplex

    rows = ((r.timestamp, r.track_id, r.valence, r.arousal, r.va_source) for r in tl.rows)
    return plot_circumplex(rows, path, classes=tl.classes)
