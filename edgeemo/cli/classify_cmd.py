"""`edgeemo classify DIR --out submission.csv`: the thesis's Kaggle submission generator, resumable.

Every image in DIR is taken as a face crop (``--detect`` finds the best face first). The output has the header
``image_path,emotion``, one row per image, ``image_path`` relative to DIR, rows in natural order (2.jpg before
10.jpg). Files are written atomically at the end; during the run each finished batch is appended to a journal
(``<out>.partial``), so a killed run loses at most the batches in flight and a re-run skips what is done
(rows already in the output, the probabilities file or the journal). Unreadable files are listed with their
reason in ``<out stem>.errors.csv`` and retried by the next run; they never stop the batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgeemo.cli.app import app
from edgeemo.cli.options import (
    DEFAULTS,
    BatchSliceOpt,
    CpuLayoutOpt,
    DetectorOpt,
    DetectorOptionOpt,
    DeviceOpt,
    GraphOptOpt,
    MarginOpt,
    MarginRatioOpt,
    MaxPixelsOpt,
    ModelOpt,
    PrecisionOpt,
    StrictDeviceOpt,
    ThreadsOpt,
    TrtCacheOpt,
    pipeline_kwargs,
    quiet_opencv,
)
from edgeemo.errors import InputError
from edgeemo.io.images import list_images, natural_key, read_image
from edgeemo.io.sinks import Journal, read_csv_rows, write_csv_atomic
from edgeemo.pipeline import Pipeline

SUBMISSION_HEADER = ["image_path", "emotion"]
ERRORS_HEADER = ["image_path", "reason"]
_WORKERS_HELP = (
    "Worker threads (decode + inference); results equal 1 worker's. "
    "With more than one, each session call uses 1 thread unless --threads is given."
)


@dataclass
class Done:
    label: str
    probs: list[str] | None  # formatted probabilities in class order, None when not known


@dataclass(frozen=True)
class BatchResult:
    rows: list[list[str]]  # image_path, emotion, *probabilities
    errors: list[tuple[str, str]]
    no_face: int


def side_paths(out: Path) -> tuple[Path, Path]:
    """The errors report and the journal of an output file."""
    return out.with_name(f"{out.stem}.errors.csv"), out.with_name(f"{out.name}.partial")


def load_done(out: Path, probs_out: Path | None, journal: Journal, classes: Sequence[str]) -> dict[str, Done]:
    """Rows finished by earlier runs: from the output, the probabilities file and the journal."""
    done: dict[str, Done] = {}
    known = set(classes)
    if out.is_file():
        header, rows = read_csv_rows(out)
        if header and header != SUBMISSION_HEADER:
            raise InputError(f"{out}: exists but its header is {header}, not {SUBMISSION_HEADER}; use --fresh")
        for r in rows:
            if len(r) == 2:
                done[r[0]] = Done(r[1], None)
    if probs_out is not None and probs_out.is_file():
        header, rows = read_csv_rows(probs_out)
        if header and header != ["image_path", *classes]:
            raise InputError(f"{probs_out}: its header {header} does not match this model's classes; use --fresh")
        for r in rows:
            if r and r[0] in done and len(r) == len(classes) + 1:
                done[r[0]].probs = r[1:]
    for r in journal.read():
        done[r[0]] = Done(r[1], r[2:])
    strange = sorted({d.label for d in done.values()} - known)
    if strange:
        raise InputError(
            f"{out}: earlier results hold labels {strange} that this model does not have (classes {list(classes)}); "
            "use --fresh or another --out"
        )
    return done


def classify_batch(
    pipe: Pipeline,
    root: Path,
    files: Sequence[Path],
    detect: bool,
    max_pixels: int,
    detect_lock: threading.Lock,
) -> BatchResult:
    """Decode, (optionally detect,) classify one batch of files in one session call; bad files are reported."""
    crops: list[np.ndarray] = []
    names: list[str] = []
    errors: list[tuple[str, str]] = []
    no_face = 0
    for f in files:
        rel = f.relative_to(root).as_posix()
        try:
            image = read_image(f, max_pixels=max_pixels)
            if detect:
                with detect_lock:
                    faces = pipe.detect(image)
                cropped = pipe.crops(image, faces[:1]) if faces else None
                if cropped is not None and len(cropped):
                    image = cropped.crops[0]
                else:
                    no_face += 1  # classified as a whole: the folder is meant to hold face crops
        except InputError as exc:  # DecodeError included: listed in the errors report, the batch goes on
            errors.append((rel, str(exc).removeprefix(f"{f}: ")))
            continue
        crops.append(image)
        names.append(rel)
    rows = [
        [rel, p.label, *(f"{v:.6f}" for _, v in p.probabilities)]
        for rel, p in zip(names, pipe.classify_crops(crops), strict=True)
    ]
    return BatchResult(rows, errors, no_face)


@app.command("classify")
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
    model: ModelOpt = DEFAULTS["model"],
    precision: PrecisionOpt = DEFAULTS["precision"],
    device: DeviceOpt = DEFAULTS["device"],
    strict_device: StrictDeviceOpt = False,
    threads: ThreadsOpt = None,
    graph_opt: GraphOptOpt = DEFAULTS["graph_opt"],
    cpu_layout: CpuLayoutOpt = DEFAULTS["cpu_layout"],
    batch_slice: BatchSliceOpt = None,
    trt_cache: TrtCacheOpt = None,
    detector: DetectorOpt = DEFAULTS["detector"],
    detector_option: DetectorOptionOpt = None,
    margin: MarginOpt = DEFAULTS["margin"],
    margin_ratio: MarginRatioOpt = None,
    max_pixels: MaxPixelsOpt = DEFAULTS["max_pixels"],
) -> None:
    """Classify every image of a folder as a face crop and write a Kaggle-style submission CSV."""
    quiet_opencv()
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = list_images(folder, recursive=recursive)
    if not files:
        raise InputError(f"{folder}: no image files{'' if recursive else ' (use --recursive for sub-folders)'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if probs is not None:
        probs.parent.mkdir(parents=True, exist_ok=True)
    errors_path, journal_path = side_paths(out)
    if threads is None and workers > 1:
        threads = 1
    kwargs = pipeline_kwargs(
        model=model, precision=precision, device=device, strict_device=strict_device, threads=threads,
        graph_opt=graph_opt, trt_cache=trt_cache, cpu_layout=cpu_layout,
        batch_slice=batch_slice, detector=detector if detect else None,
        detector_option=detector_option, margin=margin, margin_ratio=margin_ratio, va=None, derive_va=False,
    )  # fmt: skip
    with Pipeline(**kwargs) as pipe:
        classes = list(pipe.classes)
        journal = Journal(journal_path, [*SUBMISSION_HEADER, *classes])
        if fresh:
            journal.remove()
        done = {} if fresh else load_done(out, probs, journal, classes)
        rels = [f.relative_to(folder).as_posix() for f in files]
        todo = [f for f, r in zip(files, rels) if r not in done or (probs is not None and done[r].probs is None)]
        resumed = len(files) - len(todo)
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        errors: list[tuple[str, str]] = []
        no_face = 0
        t0 = time.perf_counter()
        try:
            for res in _run(pipe, folder, batches, detect, max_pixels, workers, len(todo), resumed):
                journal.append(res.rows)
                for r in res.rows:
                    done[r[0]] = Done(r[1], r[2:])
                errors.extend(res.errors)
                no_face += res.no_face
        finally:
            journal.close()
        elapsed = time.perf_counter() - t0
        _write_outputs(out, probs, errors_path, done, errors, classes)
        journal.remove()
    stale = len(set(done) - set(rels))
    new = len(todo) - len(errors)
    rate = f", {new / elapsed:.0f} faces/s" if elapsed > 0 and new else ""
    typer.echo(f"{out}: {len(done)} rows ({new} new, {resumed} already done) in {elapsed:.2f} s{rate}")
    if stale:
        typer.echo(f"edgeemo: note: kept {stale} earlier rows whose files are no longer in {folder}", err=True)
    if no_face:
        typer.echo(f"edgeemo: note: no face found in {no_face} images; they were classified whole", err=True)
    if errors:
        typer.echo(f"edgeemo: {len(errors)} files could not be read; see {errors_path}", err=True)


def _run(
    pipe: Pipeline,
    root: Path,
    batches: list[list[Path]],
    detect: bool,
    max_pixels: int,
    workers: int,
    total: int,
    resumed: int,
):  # type: ignore[no-untyped-def]  # generator of BatchResult
    """Batch results as they finish (any order), with a progress bar on stderr showing faces per second."""
    lock = threading.Lock()
    progress = Progress(
        TextColumn("classify"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    start = time.perf_counter()
    faces = 0
    with progress, ThreadPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task("classify", total=total, rate=f"{resumed} resumed")
        pending: set[Future[BatchResult]] = set()
        queue = iter(batches)
        try:
            while True:
                while len(pending) < 2 * workers:
                    batch = next(queue, None)
                    if batch is None:
                        break
                    pending.add(pool.submit(classify_batch, pipe, root, batch, detect, max_pixels, lock))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    res = fut.result()
                    faces += len(res.rows)
                    n = len(res.rows) + len(res.errors)
                    rate = faces / max(time.perf_counter() - start, 1e-9)
                    progress.update(task, advance=n, rate=f"{rate:,.0f} faces/s")
                    yield res
        finally:
            for fut in pending:
                fut.cancel()


def _write_outputs(
    out: Path,
    probs: Path | None,
    errors_path: Path,
    done: dict[str, Done],
    errors: list[tuple[str, str]],
    classes: Sequence[str],
) -> None:
    order = sorted(done, key=natural_key)
    write_csv_atomic(out, SUBMISSION_HEADER, ([r, done[r].label] for r in order))
    if probs is not None:
        write_csv_atomic(probs, ["image_path", *classes], ([r, *(done[r].probs or [])] for r in order))
    if errors:
        write_csv_atomic(errors_path, ERRORS_HEADER, sorted(errors, key=lambda e: natural_key(e[0])))
    else:
        errors_path.unlink(missing_ok=True)
