"""`edgeemo classify DIR --out submission.csv`: the thesis's Kaggle submission generator, resumable.

Every image in DIR is taken as a face crop (``--detect`` finds the best face first). The output has the header
``image_path,emotion``, one row per image, ``image_path`` relative to DIR, rows in natural order (2.jpg before
10.jpg). Files are written atomically at the end; during the run each finished batch is appended to a journal
(``<out>.journal``, kept after the run), so a killed run loses at most the batches in flight. The journal
records what each row depends on (:mod:`edgeemo.resume`): a re-run reuses a row only when its file and the
model and options are unchanged, and re-runs the rest, saying why. Unreadable files are listed with their
reason in ``<out stem>.errors.csv`` and retried by the next run; they never stop the batch. ``<out>.lock``
keeps a second run from writing the same ``--out`` at the same time.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgeemo.cli.app import app
from edgeemo.cli.options import (
    DEFAULTS,
    MaxPixelsOpt,
    quiet_opencv,
    runtime_options,
)
from edgeemo.errors import InputError, OutputError, printable
from edgeemo.io.images import list_images, natural_key, read_image
from edgeemo.io.sinks import output_lock, prepare_outputs, write_csv_atomic
from edgeemo.pipeline import Pipeline, PipelineOptions
from edgeemo.resume import (
    NEW,
    SUBMISSION_HEADER,
    Record,
    describe_reruns,
    file_digest,
    journal_for,
    journal_row,
    load_records,
    plan_resume,
    run_key,
)

ERRORS_HEADER = ["image_path", "reason"]


@dataclass(frozen=True)
class BatchResult:
    rows: list[list[str]]  # journal rows: image_path, input digest, run key, emotion, *probabilities
    errors: list[tuple[str, str]]
    no_face: int


def side_paths(out: Path) -> tuple[Path, Path, Path]:
    """The errors report, the journal and the lock file of an output file."""
    name = out.name
    return out.with_name(f"{out.stem}.errors.csv"), out.with_name(f"{name}.journal"), out.with_name(f"{name}.lock")


def classify_batch(
    pipe: Pipeline,
    root: Path,
    files: Sequence[Path],
    detect: bool,
    max_pixels: int,
    detect_lock: threading.Lock,
    key: str,
) -> BatchResult:
    """Decode, (optionally detect,) classify one batch of files in one session call; bad files are reported."""
    crops: list[np.ndarray] = []
    names: list[str] = []
    digests: list[str] = []
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
        digests.append(file_digest(f) or "")
    rows = [
        journal_row(rel, digest, key, p.label, [f"{v:.6f}" for _, v in p.probabilities])
        for rel, digest, p in zip(names, digests, pipe.classify_crops(crops), strict=True)
    ]
    return BatchResult(rows, errors, no_face)


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
    *,
    runtime: PipelineOptions,
) -> None:
    """Classify every image of a folder as a face crop and write a Kaggle-style submission CSV."""
    quiet_opencv()
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = list_images(folder, recursive=recursive)
    if not files:
        raise InputError(f"{folder}: no image files{'' if recursive else ' (use --recursive for sub-folders)'}")
    errors_path, journal_path, lock_path = side_paths(out)
    named = [("--out", out), ("its errors report", errors_path), ("its journal", journal_path), ("its lock", lock_path)]
    prepare_outputs([*named, *([("--probs", probs)] if probs is not None else [])])
    # Workers share the cores: one intra-op thread per session call unless --threads says otherwise.
    session = runtime.session
    if session.intra_op_threads is None and workers > 1:
        session = replace(session, intra_op_threads=1)
    runtime = replace(runtime, session=session, derive_va=False, detector=runtime.detector if detect else None)
    framing = {"detector": runtime.detector, "detector_options": runtime.detector_options, "margin": runtime.margin,
               "margin_ratio": runtime.margin_ratio} if detect else {}  # fmt: skip
    with output_lock(lock_path, str(out)), Pipeline.from_options(runtime) as pipe:
        classes = list(pipe.classes)
        key = run_key(pipe.model.path, {"precision": runtime.precision, "detect": detect, **framing})
        journal = journal_for(journal_path, classes)
        if fresh:
            journal.remove()
        done = {} if fresh else load_records(out, probs, journal, classes)
        rels = [f.relative_to(folder).as_posix() for f in files]
        plan = plan_resume(files, rels, done, key, classes, out)
        for rel in plan.todo:  # an earlier row of a file being re-run is stale, even if the file now fails
            done.pop(rel, None)
        by_rel = dict(zip(rels, files))
        todo = [by_rel[r] for r in plan.todo]
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        errors: list[tuple[str, str]] = []
        no_face = 0
        t0 = time.perf_counter()
        try:
            for res in _run(pipe, folder, batches, detect, max_pixels, workers, len(plan.todo), plan.reused, key):
                journal.append(res.rows)
                for r in res.rows:
                    done[r[0]] = Record(r[3], tuple(r[4:]), r[1], r[2])
                errors.extend(res.errors)
                no_face += res.no_face
        except OutputError as exc:
            raise OutputError(f"{exc}; the rows journaled before are kept: re-run to go on", exc.errno) from exc
        finally:
            journal.close()
        elapsed = time.perf_counter() - t0
        order = sorted(done, key=natural_key)
        try:
            _write_outputs(out, probs, errors_path, order, done, errors, classes)
        except OutputError as exc:
            raise OutputError(
                f"{exc}; all {len(done)} results are kept in {printable(str(journal_path))}: re-run to write them",
                exc.errno,
            ) from exc
        journal.rewrite(journal_row(r, d.digest, d.key, d.label, d.probs or ()) for r in order for d in [done[r]])
    stale = len(set(done) - set(rels))
    computed = {row for row in done if row in plan.reasons}
    reruns = Counter(plan.reasons[r] for r in computed if plan.reasons[r] != NEW)
    new = len(computed) - sum(reruns.values())
    rate = f", {len(computed) / elapsed:.0f} faces/s" if elapsed > 0 and computed else ""
    rerun = f"{sum(reruns.values())} re-run, " if reruns else ""
    typer.echo(
        f"{printable(str(out))}: {len(done)} rows ({new} new, {rerun}{plan.reused} already done) in {elapsed:.2f} s"
        f"{rate}"
    )
    if reruns:
        typer.echo(f"edgeemo: note: {describe_reruns(reruns)}", err=True)
    if stale:
        typer.echo(
            f"edgeemo: note: kept {stale} earlier rows whose files are no longer in {printable(str(folder))}", err=True
        )
    if no_face:
        typer.echo(f"edgeemo: note: no face found in {no_face} images; they were classified whole", err=True)
    if errors:
        typer.echo(f"edgeemo: {len(errors)} files could not be read; see {printable(str(errors_path))}", err=True)


def _run(
    pipe: Pipeline,
    root: Path,
    batches: list[list[Path]],
    detect: bool,
    max_pixels: int,
    workers: int,
    total: int,
    resumed: int,
    key: str,
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
                    pending.add(pool.submit(classify_batch, pipe, root, batch, detect, max_pixels, lock, key))
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
    order: Sequence[str],
    done: dict[str, Record],
    errors: list[tuple[str, str]],
    classes: Sequence[str],
) -> None:
    write_csv_atomic(out, SUBMISSION_HEADER, ([r, done[r].label] for r in order))
    if probs is not None:
        write_csv_atomic(probs, ["image_path", *classes], ([r, *(done[r].probs or ())] for r in order))
    if errors:
        write_csv_atomic(errors_path, ERRORS_HEADER, sorted(errors, key=lambda e: natural_key(e[0])))
    else:
        errors_path.unlink(missing_ok=True)
