"""`edgeemo video SOURCE... --engine ray`: the shell over :func:`edgeemo.distributed.run_videos`.

Imported only when ``--engine ray`` is given. Each source writes what a local run writes: the output options
as given for a single source, else the default outputs per source in ``--out-dir``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgeemo.cli.video_feedback import print_summary
from edgeemo.distributed import VideoJob, VideoOutcome, expand_sources, run_videos
from edgeemo.errors import InputError, printable
from edgeemo.pipeline import PipelineOptions
from edgeemo.render.annotate import VaBars
from edgeemo.video.options import VideoOptions
from edgeemo.video.reader import parse_source
from edgeemo.video.run import VideoOutputs, default_source


def videos_on_ray(
    items: list[str],
    outputs: VideoOutputs,
    show: bool,
    out_dir: Path,
    runtime: PipelineOptions,
    options: VideoOptions,
    va_bars: VaBars,
    address: str | None,
) -> None:
    """Run every source as a Ray task, print each summary as it finishes and a table of all at the end; exit
    with the first failure's code when a source failed."""
    if show:
        raise InputError("--show needs a window on this machine: it cannot run with --engine ray")
    sources = expand_sources(items or [default_source()])
    if len(sources) > 1 and outputs.paths():
        raise InputError(f"{len(sources)} sources: their outputs go into --out-dir, without --out/--jsonl/--csv/…")
    work: list[tuple[str, VideoOutputs]] = []
    claimed: dict[Path, str] = {}
    for src in sources:
        kind, value = parse_source(src)  # a missing file fails here, before any output folder is made
        outs = outputs if outputs.paths() else VideoOutputs.defaults_for(src, out_dir)
        for path in outs.paths():
            if path in claimed:
                raise InputError(
                    f"{printable(src)} and {printable(claimed[path])} would both write {printable(str(path))}; "
                    "rename one or run them apart"
                )
            claimed[path] = src
        outs.prepare(str(value) if kind == "file" else None)
        work.append((src, outs))
    console = Console()

    def done(outcome: VideoOutcome) -> None:
        if outcome.summary is not None:
            print_summary(console, outcome.summary)
        else:
            typer.echo(f"edgeemo: error: {printable(outcome.error)}", err=True)

    outcomes = run_videos(work, VideoJob(runtime, options, va_bars), address, on_done=done)
    console.print(_table(outcomes))
    failed = [o for o in outcomes if o.summary is None]
    if failed:
        raise typer.Exit(code=failed[0].exit_code or 1)


def _table(outcomes: list[VideoOutcome]) -> Table:
    table = Table(title=f"{len(outcomes)} source(s) on Ray")
    for name, justify in (("source", "left"), ("frames", "right"), ("faces", "right"), ("tracks", "right"),
                          ("FPS", "right"), ("seconds", "right"), ("result", "left")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for o in outcomes:
        s = o.summary
        if s is None:
            table.add_row(escape(printable(o.source)), "", "", "", "", "", f"[red]{escape(printable(o.error))}[/]")
        else:
            row = (s.frames, s.faces, s.tracks, f"{s.fps:.1f}", f"{s.seconds:.1f}", s.end_reason)
            table.add_row(escape(printable(o.source)), *map(str, row))
    return table
