"""Resumable classification of a folder of face crops: the engine behind ``edgeemo classify``.

Every image of the folder is taken as a face crop (``detect`` finds the best face first). The outputs are a
submission CSV (``image_path,emotion``), optionally a probabilities CSV, and an errors CSV listing unreadable
files with their reason; rows are in natural order (2.jpg before 10.jpg), ``image_path`` relative to the folder,
and every file is written atomically at the end. During the run each finished batch is appended to a journal
(``<out>.journal``, kept after the run), so a killed run loses at most the batches in flight; the journal records
what each row depends on (:mod:`edgeemo.resume`), and a re-run reuses a row only when its file, the model and the
options are unchanged. ``<out>.lock`` keeps a second run from writing the same output at the same time.

The driver (:func:`classify_folder`) lists the inputs, plans the resume, journals and writes the outputs; a
:class:`BatchExecutor` runs the batches: :class:`LocalExecutor` on threads here, or the Ray actor pool of
:mod:`edgeemo.distributed`. Both decode with :func:`edgeemo.io.images.decode_image` and classify with one
:class:`Pipeline` per session, so their outputs are byte-identical.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeemo.errors import InputError, OutputError, printable
from edgeemo.io.images import (
    DEFAULT_MAX_PIXELS,
    decode_image,
    list_images,
    max_file_bytes,
    natural_key,
    read_regular_file,
)
from edgeemo.io.sinks import output_lock, prepare_outputs, write_csv_atomic
from edgeemo.pipeline import Pipeline, PipelineOptions
from edgeemo.resume import (
    NEW,
    SUBMISSION_HEADER,
    Record,
    bytes_digest,
    journal_for,
    journal_row,
    load_records,
    plan_resume,
    run_key,
)

ERRORS_HEADER = ["image_path", "reason"]
Batch = Sequence[tuple[str, Path]]  # (image_path relative to the folder, file) per input


@dataclass(frozen=True)
class ClassifyOptions:
    """What to classify and where the side outputs go (the ``classify`` options of the same names)."""

    probs: Path | None = None  # also write per-class probabilities here
    recursive: bool = False
    detect: bool = False  # detect the face in each image and classify its crop
    batch_size: int = 64  # images per session call
    fresh: bool = False  # ignore earlier results and start over
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ClassifyJob:
    """What a worker needs to classify a batch; picklable, it travels to Ray actors."""

    runtime: PipelineOptions
    detect: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    def pipeline_options(self) -> PipelineOptions:
        """No derived valence/arousal (not written), no detector unless asked to detect."""
        return replace(self.runtime, derive_va=False, detector=self.runtime.detector if self.detect else None)

    def key(self, pipe: Pipeline) -> str:
        """The run key (:func:`edgeemo.resume.run_key`) of the model file ``pipe`` loaded and the answer options."""
        rt = self.runtime
        framing = (
            {"detector": rt.detector, "detector_options": rt.detector_options, "margin": rt.margin,
             "margin_ratio": rt.margin_ratio}
            if self.detect else {}
        )  # fmt: skip
        flip = {"flip": True} if rt.flip else {}  # absent without flip: earlier journals' keys stay valid
        return run_key(pipe.model.path, {"precision": rt.precision, "detect": self.detect, **framing, **flip})


@dataclass(frozen=True)
class Input:
    """One input file's bytes as read (``data``), or why it could not be read (``error``)."""

    rel: str
    origin: str  # the path as error messages name it
    data: bytes | None = None
    error: str = ""


@dataclass(frozen=True)
class ModelFacts:
    """What the driver needs from the workers' model: the classes (CSV columns) and the run key."""

    classes: tuple[str, ...]
    key: str


@dataclass(frozen=True)
class BatchResult:
    rows: list[list[str]]  # journal rows: image_path, input digest, run key, emotion, *probabilities
    errors: list[tuple[str, str]]
    no_face: int


@dataclass(frozen=True)
class BatchProgress:
    done: int  # inputs finished in this run (rows and errors)
    total: int  # inputs to run in this run
    faces: int  # rows computed in this run
    reused: int  # earlier rows reused without running
    elapsed: float


@dataclass(frozen=True)
class ClassifySummary:
    out: Path
    errors_path: Path
    journal_path: Path
    rows: int  # rows in the output
    new: int
    reruns: dict[str, int] = field(default_factory=dict)  # reason -> rows re-run for it
    reused: int = 0
    stale: int = 0  # earlier rows kept whose files are gone from the folder
    no_face: int = 0
    errors: int = 0
    elapsed: float = 0.0

    @property
    def computed(self) -> int:
        return self.new + sum(self.reruns.values())

    @property
    def faces_per_second(self) -> float | None:
        return self.computed / self.elapsed if self.elapsed > 0 and self.computed else None


class BatchExecutor(Protocol):
    """Runs batches of a :class:`ClassifyJob`: :meth:`open` loads the model(s), :meth:`run` yields one
    :class:`BatchResult` per batch, in any order, each batch exactly once."""

    def open(self, job: ClassifyJob) -> ModelFacts: ...

    def run(self, batches: Sequence[Batch]) -> Iterator[BatchResult]: ...

    def close(self) -> None: ...


def side_paths(out: Path) -> tuple[Path, Path, Path]:
    """The errors report, the journal and the lock file of an output file."""
    name = out.name
    return out.with_name(f"{out.stem}.errors.csv"), out.with_name(f"{name}.journal"), out.with_name(f"{name}.lock")


def read_input(rel: str, path: Path, max_pixels: int) -> Input:
    """The bytes of one input (bounded by the pixel limit as :func:`edgeemo.read_image` bounds them)."""
    try:
        return Input(rel, str(path), read_regular_file(path, max_file_bytes(max_pixels)))
    except InputError as exc:
        return Input(rel, str(path), error=str(exc).removeprefix(f"{path}: "))


def classify_inputs(
    pipe: Pipeline, inputs: Sequence[Input], job: ClassifyJob, key: str, detect_lock: threading.Lock
) -> BatchResult:
    """Decode, (optionally detect,) classify one batch in one session call; bad inputs are reported, not raised."""
    crops: list[np.ndarray] = []
    kept: list[Input] = []
    errors: list[tuple[str, str]] = []
    no_face = 0
    for item in inputs:
        if item.data is None:
            errors.append((item.rel, item.error))
            continue
        try:
            image = decode_image(item.data, item.origin, max_pixels=job.max_pixels)
            if job.detect:
                with detect_lock:
                    faces = pipe.detect(image)
                cropped = pipe.crops(image, faces[:1]) if faces else None
                if cropped is not None and len(cropped):
                    image = cropped.crops[0]
                else:
                    no_face += 1  # classified as a whole: the folder is meant to hold face crops
        except InputError as exc:  # DecodeError included: listed in the errors report, the batch goes on
            errors.append((item.rel, str(exc).removeprefix(f"{item.origin}: ")))
            continue
        crops.append(image)
        kept.append(item)
    rows = [
        journal_row(item.rel, bytes_digest(item.data or b""), key, p.label, [f"{v:.6f}" for _, v in p.probabilities])
        for item, p in zip(kept, pipe.classify_crops(crops), strict=True)
    ]
    return BatchResult(rows, errors, no_face)


class LocalExecutor:
    """Batches on ``workers`` threads sharing one pipeline (onnxruntime sessions are thread-safe); each thread
    reads its files, so reading overlaps inference."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pipe: Pipeline | None = None
        self._job: ClassifyJob | None = None
        self._key = ""
        self._lock = threading.Lock()

    def open(self, job: ClassifyJob) -> ModelFacts:
        options = job.pipeline_options()
        if options.session.intra_op_threads is None and self.workers > 1:  # workers share the cores
            options = replace(options, session=replace(options.session, intra_op_threads=1))
        self._pipe = Pipeline.from_options(options)
        self._job, self._key = job, job.key(self._pipe)
        return ModelFacts(self._pipe.classes, self._key)

    def _one(self, batch: Batch) -> BatchResult:
        assert self._pipe is not None and self._job is not None  # open() came first
        inputs = [read_input(rel, path, self._job.max_pixels) for rel, path in batch]
        return classify_inputs(self._pipe, inputs, self._job, self._key, self._lock)

    def run(self, batches: Sequence[Batch]) -> Iterator[BatchResult]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            pending: set[Future[BatchResult]] = set()
            queue = iter(batches)
            try:
                while True:
                    while len(pending) < 2 * self.workers and (batch := next(queue, None)) is not None:
                        pending.add(pool.submit(self._one, batch))
                    if not pending:
                        return
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        yield fut.result()
            finally:
                for fut in pending:
                    fut.cancel()

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
        self._pipe = None


def classify_folder(
    folder: Path,
    out: Path,
    options: ClassifyOptions | None = None,
    runtime: PipelineOptions | None = None,
    executor: BatchExecutor | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
) -> ClassifySummary:
    """Classify every image of ``folder`` into ``out`` (see the module docstring), resuming earlier results.

    ``executor`` runs the batches (default: :class:`LocalExecutor` with one thread); ``on_progress`` is called
    on this thread after each batch. A failed output write raises :class:`OutputError` saying what was kept.
    """
    opt = options or ClassifyOptions()
    executor = executor or LocalExecutor()
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = list_images(folder, recursive=opt.recursive)
    if not files:
        raise InputError(f"{folder}: no image files{'' if opt.recursive else ' (use --recursive for sub-folders)'}")
    errors_path, journal_path, lock_path = side_paths(out)
    named = [("--out", out), ("its errors report", errors_path), ("its journal", journal_path), ("its lock", lock_path)]
    prepare_outputs([*named, *([("--probs", opt.probs)] if opt.probs is not None else [])])
    job = ClassifyJob(runtime or PipelineOptions(), opt.detect, opt.max_pixels)
    with output_lock(lock_path, str(out)):
        try:
            facts = executor.open(job)
            classes = list(facts.classes)
            journal = journal_for(journal_path, classes)
            if opt.fresh:
                journal.remove()
            done = {} if opt.fresh else load_records(out, opt.probs, journal, classes)
            rels = [f.relative_to(folder).as_posix() for f in files]
            plan = plan_resume(files, rels, done, facts.key, classes, out)
            for rel in plan.todo:  # an earlier row of a file being re-run is stale, even if the file now fails
                done.pop(rel, None)
            by_rel = dict(zip(rels, files))
            todo = [(r, by_rel[r]) for r in plan.todo]
            batches = [todo[i : i + opt.batch_size] for i in range(0, len(todo), opt.batch_size)]
            errors: list[tuple[str, str]] = []
            no_face = finished = faces = 0
            t0 = time.perf_counter()
            if on_progress is not None:
                on_progress(BatchProgress(0, len(todo), 0, plan.reused, 0.0))
            try:
                for res in executor.run(batches):
                    journal.append(res.rows)
                    for r in res.rows:
                        done[r[0]] = Record(r[3], tuple(r[4:]), r[1], r[2])
                    errors.extend(res.errors)
                    no_face += res.no_face
                    faces += len(res.rows)
                    finished += len(res.rows) + len(res.errors)
                    if on_progress is not None:
                        on_progress(BatchProgress(finished, len(todo), faces, plan.reused, time.perf_counter() - t0))
            except OutputError as exc:
                raise OutputError(f"{exc}; the rows journaled before are kept: re-run to go on", exc.errno) from exc
            finally:
                journal.close()
            elapsed = time.perf_counter() - t0
        finally:
            executor.close()
        order = sorted(done, key=natural_key)
        try:
            _write_outputs(out, opt.probs, errors_path, order, done, errors, classes)
        except OutputError as exc:
            raise OutputError(
                f"{exc}; all {len(done)} results are kept in {printable(str(journal_path))}: re-run to write them",
                exc.errno,
            ) from exc
        journal.rewrite(journal_row(r, d.digest, d.key, d.label, d.probs or ()) for r in order for d in [done[r]])
    computed = [row for row in done if row in plan.reasons]
    reruns = Counter(plan.reasons[r] for r in computed if plan.reasons[r] != NEW)
    return ClassifySummary(
        out=out,
        errors_path=errors_path,
        journal_path=journal_path,
        rows=len(done),
        new=len(computed) - sum(reruns.values()),
        reruns=dict(reruns),
        reused=plan.reused,
        stale=len(set(done) - set(rels)),
        no_face=no_face,
        errors=len(errors),
        elapsed=elapsed,
    )


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
