"""`edgeemo video [SOURCE]`: a video file, webcam or stream → annotated mp4, JSON lines, CSV, emotion timeline.

The run is :meth:`edgeemo.video.run.VideoRun.from_options`; this module declares the options, shows the progress
bar and turns Ctrl-C / SIGTERM into a graceful stop.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich import progress as rp
from rich.console import Console
from rich.markup import escape

from edgeemo.cli.app import app
from edgeemo.cli.options import DEFAULTS, StreamTimeoutOpt, VaBarsOpt, quiet_opencv, runtime_options
from edgeemo.pipeline import PipelineOptions
from edgeemo.video.options import VideoOptions
from edgeemo.video.reader import SourceInfo
from edgeemo.video.run import DEFAULT_OUT_DIR, VIDEO_THREADS, VideoOutputs, VideoRun

_OUT = "Outputs"
_VIDEO = "Video"
_DEFAULTS = VideoOptions()
VideoThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help=f"onnxruntime intra-op threads per session (video default: {VIDEO_THREADS}; stages run in parallel).",
        rich_help_panel="Runtime",
    ),
]


@app.command("video")
@runtime_options(threads=VideoThreadsOpt)
def video_command(
    source: Annotated[
        str | None,
        typer.Argument(
            help="Video file, webcam index (0) or stream URL (rtsp://, http://). Default: the shipped sample clip.",
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
    ] = _DEFAULTS.detect_every,
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
    ] = _DEFAULTS.detect_ahead,
    smoothing: Annotated[
        float,
        typer.Option(
            "--smoothing",
            min=0.0,
            max=0.99,
            help="Per-track moving-average weight of past probabilities (0 = raw).",
            rich_help_panel=_VIDEO,
        ),
    ] = _DEFAULTS.smoothing,
    max_misses: Annotated[
        int,
        typer.Option(
            "--max-misses", min=0, help="A track ends after this many detections without it.", rich_help_panel=_VIDEO
        ),
    ] = _DEFAULTS.max_misses,
    stream_timeout: StreamTimeoutOpt = _DEFAULTS.stream_timeout,
    va_bars: VaBarsOpt = DEFAULTS["va_bars"],
    *,
    runtime: PipelineOptions,
) -> None:
    """Emotions of the faces in a video, webcam or stream: tracked, smoothed, annotated, with a timeline.

    Files are processed frame by frame in order; live sources drop stale frames to keep up (counted in the
    summary). Ctrl-C or SIGTERM stops the run and finalises every output written so far.
    """
    quiet_opencv()
    outputs = VideoOutputs(video=out, jsonl=jsonl, csv=csv, timeline=timeline, circumplex=circumplex)
    options = VideoOptions(detect_every=detect_every, smoothing=smoothing, max_misses=max_misses,
                           detect_ahead=detect_ahead, stream_timeout=stream_timeout)  # fmt: skip
    bar = _Bar(Console(stderr=True))
    run = VideoRun.from_options(source, outputs, options, runtime, out_dir=out_dir, show=show, va_bars=va_bars,
                                progress=bar.progress, step=bar.step)  # fmt: skip
    with run, bar.shown(run.info), _SignalStop(run) as stop:
        summary = run.run()
    console = Console()
    for line in summary.lines():
        console.print(escape(line), highlight=False)
    if stop.received:
        raise typer.Exit(code=128 + stop.received[0])


class _Bar:
    """The progress bar of a run: frames done, FPS, then the finishing steps in place of the source's name."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._bar: rp.Progress | None = None
        self._task: Any = None
        self._name = ""
        self._total: int | None = None

    @contextmanager
    def shown(self, info: SourceInfo) -> Iterator[None]:
        self._name = Path(info.source).name if info.kind == "file" else info.source
        self._total = None if info.live else info.frame_count
        columns = (rp.SpinnerColumn(), rp.TextColumn("[bold]{task.description}"), rp.BarColumn(),
                   rp.MofNCompleteColumn(), rp.TextColumn("{task.fields[fps]:>6.1f} FPS"), rp.TimeElapsedColumn(),
                   rp.TextColumn("ETA"), rp.TimeRemainingColumn())  # fmt: skip
        with rp.Progress(*columns, console=self.console, transient=True, disable=not self.console.is_terminal) as bar:
            self._bar, self._task = bar, bar.add_task(escape(self._name), total=self._total, fps=0.0)
            yield
        self._bar = None

    def progress(self, done: int, elapsed: float) -> None:
        if self._bar is not None and (done % 5 == 0 or done == self._total):  # redrawing every frame costs FPS
            self._bar.update(self._task, completed=done, fps=done / elapsed if elapsed > 0 else 0.0)

    def step(self, what: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=f"{escape(self._name)}: {what}…")


class _SignalStop:
    """While active, SIGINT/SIGTERM stop the run gracefully (outputs finalised); a second signal kills."""

    def __init__(self, run: VideoRun) -> None:
        self.run = run
        self.received: list[int] = []
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
