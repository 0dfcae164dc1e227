"""`edgeemo classify DIR --out submission.csv`: the thesis's Kaggle submission generator, resumable.

A shell over :func:`edgeemo.batch.classify_folder` (outputs, journal, resume and errors are described there):
it chooses the executor (threads here, or a Ray cluster with ``--engine ray``), shows progress and prints the
summary.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgeemo.batch import BatchExecutor, BatchProgress, ClassifyOptions, ClassifySummary, LocalExecutor, classify_folder
from edgeemo.cli.app import app
from edgeemo.cli.options import DEFAULTS, ActorsOpt, AddressOpt, EngineOpt, MaxPixelsOpt, quiet_opencv, runtime_options
from edgeemo.errors import InputError, printable
from edgeemo.pipeline import PipelineOptions
from edgeemo.resume import describe_reruns


@app.command("classify")
@runtime_options(without=("va", "derive_va"))
def classify_command(
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", file_okay=False, help="Folder of face-crop images.", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", dir_okay=False, help="Submission CSV (image_path,emotion).")
    ] = Path("submission.csv"),
    probs: Annotated[
        Path | None, typer.Option("--probs", dir_okay=False, help="Also write per-class probabilities here.")
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include images in sub-folders.")] = False,
    detect: Annotated[
        bool, typer.Option("--detect", help="Detect the face in each image and classify its crop.")
    ] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per session call.")] = 64,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Worker threads (decode + inference); results equal 1 worker's. "
            "With more than one, each session call uses 1 thread unless --threads is given.",
        ),
    ] = 1,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore earlier results in --out and start over.")] = False,
    max_pixels: MaxPixelsOpt = DEFAULTS["max_pixels"],
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = None,
    *,
    runtime: PipelineOptions,
) -> None:
    """Classify every image of a folder as a face crop and write a Kaggle-style submission CSV."""
    quiet_opencv()
    options = ClassifyOptions(probs, recursive, detect, batch_size, fresh, max_pixels)
    with _ProgressBar() as bar:
        summary = classify_folder(folder, out, options, runtime, _executor(engine, workers, address, actors), bar)
    _print_summary(summary, folder)


def _executor(engine: str, workers: int, address: str | None, actors: int | None) -> BatchExecutor:
    if engine == "ray":
        if workers != 1:
            raise InputError("--workers is for --engine local; give --actors with --engine ray")
        from edgeemo.distributed import RayExecutor  # imports Ray: only when asked for

        return RayExecutor(address=address, actors=actors)
    if actors is not None or address is not None:
        raise InputError("--actors and --address are for --engine ray")
    return LocalExecutor(workers)


class _ProgressBar:
    """The progress bar on stderr, shown from the first progress report of :func:`classify_folder` (after the
    outputs were checked and the model loaded)."""

    def __init__(self) -> None:
        self.progress: Progress | None = None

    def __call__(self, p: BatchProgress) -> None:
        if self.progress is None:
            self.progress = Progress(
                TextColumn("classify"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.progress.start()
            self.progress.add_task("classify", total=p.total, rate="")
        rate = f"{p.faces / max(p.elapsed, 1e-9):,.0f} faces/s" if p.faces else f"{p.reused} resumed"
        self.progress.update(self.progress.task_ids[0], completed=p.done, total=p.total, rate=rate)

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _print_summary(s: ClassifySummary, folder: Path) -> None:
    rate = f", {s.faces_per_second:.0f} faces/s" if s.faces_per_second else ""
    rerun = f"{sum(s.reruns.values())} re-run, " if s.reruns else ""
    typer.echo(
        f"{printable(str(s.out))}: {s.rows} rows ({s.new} new, {rerun}{s.reused} already done) in {s.elapsed:.2f} s"
        f"{rate}"
    )
    if s.reruns:
        typer.echo(f"edgeemo: note: {describe_reruns(Counter(s.reruns))}", err=True)
    if s.stale:
        typer.echo(
            f"edgeemo: note: kept {s.stale} earlier rows whose files are no longer in {printable(str(folder))}",
            err=True,
        )
    if s.no_face:
        typer.echo(f"edgeemo: note: no face found in {s.no_face} images; they were classified whole", err=True)
    if s.errors:
        typer.echo(f"edgeemo: {s.errors} files could not be read; see {printable(str(s.errors_path))}", err=True)
