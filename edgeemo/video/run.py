"""Video runs: decode → detect/infer → output, as threaded stages joined by bounded queues.

* decode: :class:`~edgeemo.video.reader.FrameReader` on its own thread (files: every frame, in order; live
  sources: stale frames dropped and counted);
* detect: the :class:`~edgeemo.video.session.VideoSession` decides which frames are detected and detects them a
  few frames ahead on worker threads: several at once when the detector is thread-safe (BlazeFace, dlib HOG),
  else one, which still overlaps detection with the rest (:attr:`VideoOptions.detect_ahead`);
* infer: the calling thread hands frames to the session in order (tracking, one classifier call for all faces
  of the frame, smoothing per track);
* output: one thread annotates frames and feeds the sinks (video writer, JSON lines, CSV, timeline).

The run itself only moves frames between these threads. :meth:`VideoRun.from_options` is what ``edgeemo video``
calls: it picks the source and output defaults, builds the pipeline and owns it.

Decoding (PyAV/FFmpeg), inference (onnxruntime) and encoding (libx264) release the GIL, so the stages
overlap. :meth:`VideoRun.stop` (wired to Ctrl-C/SIGTERM by the CLI) ends the run after the frames already
being detected; every output written so far is then finalised: the mp4 is closed (playable), JSON lines/CSV are
complete line by line, the timeline is written, and the summary says that they cover only the frames processed.

Every output is written under a temporary name beside its final one and moved into place when complete
(:mod:`edgeemo.io.sinks`), so an earlier file of the same name stays whole until then; an output whose writing
failed is dropped (the earlier file is kept) and the error says which outputs were kept.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeemo.errors import DecodeError, EdgeemoError, InputError, printable
from edgeemo.io.sinks import prepare_outputs
from edgeemo.pipeline import Pipeline, PipelineOptions
from edgeemo.render.annotate import VaBars, VideoAnnotator
from edgeemo.render.figure import plot_format
from edgeemo.render.timeline import Timeline
from edgeemo.results import FrameResult
from edgeemo.runtime.assets import SAMPLE_CLIP, sample_clip
from edgeemo.runtime.session import usable_cores
from edgeemo.video.options import VideoOptions
from edgeemo.video.reader import FrameReader, SourceInfo, VideoFrame, parse_source
from edgeemo.video.session import PendingFrame, VideoSession
from edgeemo.video.sinks import CsvSink, JsonlSink, live_window
from edgeemo.video.writer import VIDEO_SUFFIXES, VideoWriter

log = logging.getLogger(__name__)

Annotator = Callable[[np.ndarray, FrameResult], np.ndarray]
STAGES = ("decode", "detect", "infer", "output")
DEFAULT_OUT_DIR = Path("edgeemo-out")
# Decode, inference and output run in parallel threads: one intra-op thread per onnxruntime session is much
# faster here than onnxruntime's default of one per core, whose spinning workers starve the other stages.
VIDEO_THREADS = 1
SESSION_DETECTORS = ("blazeface",)  # detectors on onnxruntime that take the pipeline's session options


def detect_ahead_workers(options: VideoOptions, pipeline: Pipeline, encoding: bool = False) -> int:
    """How many detection threads a run uses (see :attr:`VideoOptions.detect_ahead`).

    With ``encoding`` (an output video or live window is drawn and encoded) one core is left to the encoder,
    unless the detector is CPU-heavy, whose detection gains more from the core than the encoder loses
    (``python -m benchmarks.video_fps``; figures in docs/benchmarks.md).
    """
    if options.detect_ahead is not None:
        return options.detect_ahead
    if not pipeline.concurrent_detect:
        return 1
    cpus = usable_cores()
    spare_encoder_core = encoding and not pipeline.heavy_detect
    return max(1, min(4, cpus - 1 if spare_encoder_core else cpus))


def video_runtime(runtime: PipelineOptions) -> PipelineOptions:
    """The pipeline options of a video run: :data:`VIDEO_THREADS` intra-op threads unless set, and the same session
    options for a detector on onnxruntime (:data:`SESSION_DETECTORS`)."""
    if runtime.session.intra_op_threads is None:
        runtime = replace(runtime, session=replace(runtime.session, intra_op_threads=VIDEO_THREADS))
    if runtime.detector in SESSION_DETECTORS:
        runtime = replace(runtime, detector_options={"session_options": runtime.session, **runtime.detector_options})
    return runtime


def default_source() -> str:
    """The shipped sample clip, or a one-line error where the install lacks it."""
    clip = sample_clip()
    if clip is None:
        raise InputError(f"the sample clip {SAMPLE_CLIP} is not installed; pass a video file, webcam index or URL")
    return str(clip)


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

    @classmethod
    def defaults_for(cls, source: str | int | os.PathLike[str], out_dir: Path = DEFAULT_OUT_DIR) -> VideoOutputs:
        """The outputs of a run given none, in ``out_dir``, named after the source: annotated mp4, JSON lines, the
        timeline (PNG and CSV) and the valence-arousal trajectory."""
        kind, value = parse_source(source)
        stem = Path(str(value)).stem if kind == "file" else (f"camera{value}" if kind == "camera" else "stream")
        return cls(
            video=out_dir / f"{stem}.annotated.mp4",
            jsonl=out_dir / f"{stem}.jsonl",
            timeline=out_dir / f"{stem}.timeline.png",
            circumplex=out_dir / f"{stem}.circumplex.png",
        )

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

    def lines(self) -> list[str]:
        """The summary in words: one line of counts and speeds, then one per output and per note."""
        stage = ", ".join(
            f"{k} {v:.0f}" if v != float("inf") else f"{k} -"
            for k, v in self.stage_fps.items()
            if self.stage_seconds[k] > 0
        )
        head = (
            f"{printable(self.source)}: {self.frames} frames, {self.faces} faces, {self.tracks} track(s), "
            f"{self.dropped} dropped, {self.corrupt} corrupt packet(s) skipped; {self.fps:.1f} FPS processing "
            f"({self.processing_seconds:.2f} s, as the progress bar) + {self.finish_seconds:.2f} s finalising "
            f"outputs; per stage FPS (frames per busy second): {stage}; ended: {self.end_reason}"
        )
        outputs = [f"  {name}: {printable(path)}" for name, path in self.outputs.items()]
        return [head, *outputs, *(f"  note: {printable(n)}" for n in self.notes)]

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

    @classmethod
    def from_options(
        cls,
        source: str | int | os.PathLike[str] | None,
        outputs: VideoOutputs,
        options: VideoOptions,
        runtime: PipelineOptions,
        *,
        out_dir: Path = DEFAULT_OUT_DIR,
        show: bool = False,
        va_bars: VaBars = "auto",
        progress: Callable[[int, float], None] | None = None,
        step: Callable[[str], None] | None = None,
    ) -> VideoRun:
        """The run ``edgeemo video`` makes, owning its pipeline (closed by :meth:`close`, or on leaving a ``with``).

        ``source`` None is the shipped sample clip; ``outputs`` without any path (and no ``show`` window) become
        :meth:`VideoOutputs.defaults_for` in ``out_dir``. Source and outputs are checked before the models load.
        """
        src = default_source() if source is None else source
        kind, value = parse_source(src)  # a missing file fails here, before any output folder is made
        if not outputs.paths() and not show:
            outputs = VideoOutputs.defaults_for(src, out_dir)
        outputs.prepare(str(value) if kind == "file" else None)  # formats, clashes, folders: before any work
        window = live_window() if show else None
        pipeline = Pipeline.from_options(video_runtime(runtime))
        try:
            run = cls(pipeline, src, outputs, options, annotate=VideoAnnotator(va_bars), show=window,
                      progress=progress, step=step)  # fmt: skip
        except BaseException:
            pipeline.close()
            raise
        run._owned = pipeline
        return run

    def __init__(
        self,
        pipeline: Pipeline,
        source: str | int | os.PathLike[str],
        outputs: VideoOutputs | None = None,
        options: VideoOptions | None = None,
        *,
        annotate: Annotator | None = None,
        show: Callable[[np.ndarray], bool] | None = None,
        progress: Callable[[int, float], None] | None = None,
        step: Callable[[str], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.outputs = outputs or VideoOutputs()
        self.options = options or VideoOptions()
        kind, value = parse_source(source)
        self.outputs.prepare(str(value) if kind == "file" else None)
        encoding = self.outputs.video is not None or show is not None
        if encoding and annotate is None:
            raise InputError("an output video or live window needs an annotate function")
        self._ahead = detect_ahead_workers(self.options, pipeline, encoding)
        pool = ThreadPoolExecutor(self._ahead, thread_name_prefix="edgeemo-detect") if self._ahead else None
        self.session = pipeline.video_session(self.options, executor=pool)
        self._pool = pool
        self.reader = FrameReader(
            source,
            queue_size=self.options.queue_size,
            live=self.options.live,
            stream_timeout=self.options.stream_timeout,
        )
        self.info: SourceInfo = self.reader.info
        self.annotate = annotate
        self.show = show
        self._progress = progress
        self._step_callback = step
        self._owned: Pipeline | None = None
        self._stop = threading.Event()
        self._busy = dict.fromkeys(STAGES, 0.0)
        self._out_queue: queue.Queue[Any] = queue.Queue(maxsize=self.options.queue_size)
        self._out_error: BaseException | None = None
        self._latest: np.ndarray | None = None
        self._latest_lock = threading.Lock()
        self._writer: VideoWriter | None = None
        self._jsonl: JsonlSink | None = None
        self._csv: CsvSink | None = None
        o = self.outputs
        self._timeline = Timeline() if o.timeline or o.timeline_csv or o.circumplex else None
        self._written: dict[str, Path] = {}
        self.notes: list[str] = []

    def stop(self) -> None:
        """End the run after the current frame (safe from a signal handler or another thread)."""
        self._stop.set()
        self.reader.stop()

    def close(self) -> None:
        """Release the source, and the pipeline when the run built it (:meth:`from_options`)."""
        self.reader.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> VideoRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- output stage -------------------------------------------------------------------------------------
    def _open_sinks(self) -> None:
        o = self.outputs
        if o.jsonl is not None:
            self._jsonl = JsonlSink(o.jsonl)
        if o.csv is not None:
            self._csv = CsvSink(o.csv, self.pipeline.classes)

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
        session, ahead = self.session, self._ahead
        src = self.info.source
        interrupted = False
        t_start = time.perf_counter()
        out_thread = threading.Thread(target=self._output_loop, name="edgeemo-output", daemon=True)
        out_thread.start()
        pending: deque[tuple[VideoFrame, PendingFrame]] = deque()  # submitted, detection maybe under way
        done = [0, 0]  # frames, faces

        def finish_oldest() -> None:
            done[1] += self._finish(session, *pending.popleft())
            done[0] += 1
            if self._progress is not None:
                self._progress(done[0], time.perf_counter() - t_start)

        try:
            self._open_sinks()
            for frame in self.reader:
                if self._stop.is_set() or self._out_error is not None:
                    break
                pending.append((frame, session.submit(frame.image)))
                while len(pending) > ahead and self._out_error is None:
                    finish_oldest()
            while pending and self._out_error is None:  # frames already being detected are not dropped
                finish_oldest()
        except KeyboardInterrupt:
            interrupted = True
            self.stop()
            raise
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
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
        if self._step_callback is not None:
            self._step_callback(what)

    def _finish(self, session: VideoSession, frame: VideoFrame, pending: PendingFrame) -> int:
        """Have the session finish one frame and hand it to the outputs (in frame order); returns its face count."""
        result = session.finish(pending, frame.timestamp, frame.index)
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
