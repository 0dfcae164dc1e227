"""`edgeemo video [SOURCE]`: a video file, webcam or stream → annotated mp4, JSON lines, CSV, emotion timeline.

The run is :meth:`edgeemo.video.run.VideoRun.from_options`; this module declares the options, shows the progress
bar and turns Ctrl-C / SIGTERM into a graceful stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
from edgeemo.cli.video_feedback import ProgressBar, SignalStop, print_summary
from edgeemo.errors import InputError
from edgeemo.pipeline import PipelineOptions
from edgeemo.video.options import VideoOptions
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
    outputs = VideoOutputs(video=out, jsonl=jsonl, csv=csv, timeline=timeline, circumplex=circumplex)
    options = VideoOptions(detect_every=detect_every, smoothing=smoothing, max_misses=max_misses,
                           detect_ahead=detect_ahead, stream_timeout=stream_timeout)  # fmt: skip
    if engine == "ray":
        from edgeemo.cli.scaleout import videos_on_ray

        videos_on_ray(sources or [], outputs, show, out_dir, runtime, options, va_bars, address)
        return
    if address is not None:
        raise InputError("--address is for --engine ray")
    if sources and len(sources) > 1:
        raise InputError(f"{len(sources)} sources: give one, or run them all with --engine ray")
    bar = ProgressBar(Console(stderr=True))
    run = VideoRun.from_options(sources[0] if sources else None, outputs, options, runtime, out_dir=out_dir,
                                show=show, va_bars=va_bars, progress=bar.progress, step=bar.step)  # fmt: skip
    with run, bar.shown(run.info), SignalStop(run) as stop:
        summary = run.run()
    print_summary(Console(), summary)
    if stop.received:
        raise typer.Exit(code=128 + stop.received[0])
