"""`edgeemo video [SOURCE]`: a video file, webcam or stream → annotated mp4, JSON lines, CSV, emotion timeline.

Without SOURCE it runs on the shipped sample clip; without any output option it writes the annotated video,
JSON lines, the timeline (PNG + CSV) and the valence-arousal trajectory into ``--out-dir`` (``./edgeemo-out``).
"""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from edgeemo.cli.app import app
from edgeemo.cli.options import (
    DEFAULTS,
    AddressOpt,
    EngineOpt,
    StreamTimeoutOpt,
    VaBarsOpt,
    quiet_opencv,
    runtime_options,
)
from edgeemo.errors import InputError, printable
from edgeemo.pipeline import Pipeline, PipelineOptions
from edgeemo.render.annotate import VideoAnnotator
from edgeemo.runtime.assets import SAMPLE_CLIP, sample_clip
from edgeemo.video.reader import parse_source
from edgeemo.video.run import VideoOptions, VideoOutputs, VideoRun, VideoSummary

_OUT = "Outputs"
_VIDEO = "Video"
DEFAULT_OUT_DIR = Path("edgeemo-out")
VIDEO_THREADS = 1
SESSION_DETECTORS = ("blazeface",)  # detectors on onnxruntime that take the same session options
VideoThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help=f"onnxruntime intra-op threads per session (video default: {VIDEO_THREADS}; stages run in parallel).",
        rich_help_panel="Runtime",
    ),
]


def default_clip() -> Path:
    """The shipped sample clip, or a one-line error where the install lacks it."""
    clip = sample_clip()
    if clip is None:
        raise InputError(f"the sample clip {SAMPLE_CLIP} is not installed; pass a video file, webcam index or URL")
    return clip


def default_outputs(source: str, out_dir: Path) -> VideoOutputs:
    """The outputs of a run without output options, in ``out_dir``: annotated mp4, JSON lines, the timeline (PNG
    and CSV) and the valence-arousal trajectory."""
    kind, value = parse_source(source)
    stem = Path(str(value)).stem if kind == "file" else (f"camera{value}" if kind == "camera" else "stream")
    return VideoOutputs(
        video=out_dir / f"{stem}.annotated.mp4",
        jsonl=out_dir / f"{stem}.jsonl",
        timeline=out_dir / f"{stem}.timeline.png",
        circumplex=out_dir / f"{stem}.circumplex.png",
    )


def _window() -> Any:
    """A live-window callback (q or Esc closes it), or InputError when this OpenCV has no GUI."""
    import cv2

    name = "edgeemo"
    try:
        cv2.namedWindow(name, cv2.WINDOW_NORMAL)
    except cv2.error as exc:
        raise InputError(
            "--show needs an OpenCV build with GUI support; this one is headless "
            "(pip install opencv-python instead of opencv-python-headless)"
        ) from exc

    def show(image: np.ndarray) -> bool:
        cv2.imshow(name, image)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) >= 1

    return show


def print_summary(console: Console, s: VideoSummary) -> None:
    stage = ", ".join(
        f"{k} {v:.0f}" if v != float("inf") else f"{k} -" for k, v in s.stage_fps.items() if s.stage_seconds[k] > 0
    )
    console.print(
        f"[bold]{escape(printable(s.source))}[/]: {s.frames} frames, {s.faces} faces, {s.tracks} track(s), "
        f"{s.dropped} dropped, {s.corrupt} corrupt packet(s) skipped; {s.fps:.1f} FPS processing "
        f"({s.processing_seconds:.2f} s, as the progress bar) + {s.finish_seconds:.2f} s finalising outputs; "
        f"per stage FPS (frames per busy second): {stage}; ended: {s.end_reason}"
    )
    for name, path in s.outputs.items():
        console.print(f"  {name}: {escape(printable(path))}")
    for note in s.notes:
        console.print(f"  [yellow]note[/]: {escape(printable(note))}")


@app.command("video")
@runtime_options(threads=VideoThreadsOpt)
def video_command(
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[SOURCE]...",
            help="Video file, webcam index (0) or stream URL (rtsp://, http://). Default: the shipped sample clip. "
            "With --engine ray: several, a folder of videos or a .txt list of sources.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Annotated video (.mp4).", rich_help_panel=_OUT)
    ] = None,
    show: Annotated[bool, typer.Option("--show", help="Live window (q or Esc stops).", rich_help_panel=_OUT)] = False,
    jsonl: Annotated[
        Path | None, typer.Option("--jsonl", help="One JSON object per frame.", rich_help_panel=_OUT)
    ] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="One row per face per frame.", rich_help_panel=_OUT)] = None,
    timeline: Annotated[
        Path | None,
        typer.Option(
            "--timeline", help="Emotion timeline plot (.png); its CSV is written beside it.", rich_help_panel=_OUT
        ),
    ] = None,
    circumplex: Annotated[
        Path | None,
        typer.Option(
            "--circumplex", help="Valence-arousal trajectory per track (.png), when VA is known.", rich_help_panel=_OUT
        ),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out-dir",
            file_okay=False,
            help="Where outputs go when no output option is given (annotated mp4, JSON lines, timeline PNG+CSV, "
            "valence-arousal trajectory).",
            rich_help_panel=_OUT,
        ),
    ] = DEFAULT_OUT_DIR,
    detect_every: Annotated[
        int,
        typer.Option(
            "--detect-every", min=1, help="Run the detector every N frames; track in between.", rich_help_panel=_VIDEO
        ),
    ] = 1,
    detect_ahead: Annotated[
        int | None,
        typer.Option(
            "--detect-ahead",
            min=0,
            help="Frames detected ahead on worker threads (default: one per CPU, at most 4, for a thread-safe "
            "detector such as blazeface or dlib-hog, one fewer for blazeface while a video is written; 1 otherwise; "
            "0: detect on the main thread).",
            rich_help_panel=_VIDEO,
        ),
    ] = None,
    smoothing: Annotated[
        float,
        typer.Option(
            "--smoothing",
            min=0.0,
            max=0.99,
            help="Per-track moving-average weight of past probabilities (0 = raw).",
            rich_help_panel=_VIDEO,
        ),
    ] = 0.6,
    max_misses: Annotated[
        int,
        typer.Option(
            "--max-misses", min=0, help="A track ends after this many detections without it.", rich_help_panel=_VIDEO
        ),
    ] = 10,
    stream_timeout: StreamTimeoutOpt = DEFAULTS["stream_timeout"],
    va_bars: VaBarsOpt = DEFAULTS["va_bars"],
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    *,
    runtime: PipelineOptions,
) -> None:
    """Emotions of the faces in a video, webcam or stream: tracked, smoothed, annotated, with a timeline.

    Files are processed frame by frame in order; live sources drop stale frames to keep up (counted in the
    summary). Ctrl-C or SIGTERM stops the run and finalises every output written so far.
    """
    quiet_opencv()
    # Decode, inference and output run in parallel threads: one intra-op thread per session is much faster
    # here than onnxruntime's default of one per core, whose spinning workers starve the other stages.
    if runtime.session.intra_op_threads is None:
        runtime = replace(runtime, session=replace(runtime.session, intra_op_threads=VIDEO_THREADS))
    if runtime.detector in SESSION_DETECTORS:
        runtime = replace(runtime, detector_options={"session_options": runtime.session, **runtime.detector_options})
    options = VideoOptions(
        detect_every=detect_every,
        smoothing=smoothing,
        max_misses=max_misses,
        detect_ahead=detect_ahead,
        stream_timeout=stream_timeout,
    )
    if engine == "ray":
        from edgeemo.cli.scaleout import videos_on_ray

        outputs = VideoOutputs(video=out, jsonl=jsonl, csv=csv, timeline=timeline, circumplex=circumplex)
        videos_on_ray(sources or [str(default_clip())], outputs, show, out_dir, runtime, options, va_bars, address)
        return
    if sources and len(sources) > 1:
        raise InputError(f"{len(sources)} sources: give one, or run them all with --engine ray")
    src = sources[0] if sources else str(default_clip())
    kind, value = parse_source(src)  # a missing file fails here, before any output folder is made
    outputs = VideoOutputs(video=out, jsonl=jsonl, csv=csv, timeline=timeline, circumplex=circumplex)
    if not outputs.paths() and not show:
        outputs = default_outputs(src, out_dir)
    outputs.prepare(str(value) if kind == "file" else None)  # formats, clashes, folders: before any work
    console = Console(stderr=True)
    with Pipeline.from_options(runtime) as pipe:
        run = VideoRun(pipe, src, outputs, options, annotate=VideoAnnotator(va_bars), show=_window() if show else None)
        total = run.info.frame_count if not run.info.live else None
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:>6.1f} FPS"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as bar:
            name = Path(str(value)).name if kind == "file" else str(value)
            task = bar.add_task(name, total=total, fps=0.0)

            def progress(done: int, elapsed: float) -> None:
                if done % 5 == 0 or done == total:
                    bar.update(task, completed=done, fps=done / elapsed if elapsed > 0 else 0.0)

            def step(what: str) -> None:  # finishing steps after the last frame, shown in place of the name
                bar.update(task, description=f"{escape(name)}: {what}…")

            run.progress = progress
            run.step = step
            received: list[int] = []
            with _SignalStop(run, received):
                summary = run.run()
    print_summary(Console(), summary)
    if received:
        raise typer.Exit(code=128 + received[0])


class _SignalStop:
    """While active, SIGINT/SIGTERM stop the run gracefully (outputs finalised); a second signal kills."""

    def __init__(self, run: VideoRun, received: list[int]) -> None:
        self.run = run
        self.received = received
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.received:  # second signal: give up on graceful shutdown
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.received.append(signum)
        print(f"edgeemo: {signal.Signals(signum).name}: finishing outputs…", file=sys.stderr)
        self.run.stop()

    def __enter__(self) -> _SignalStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
