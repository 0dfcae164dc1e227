"""Scale-out on Ray: ``classify`` batches on an actor pool, and one video per task (``--engine ray``).

Ray is an optional dependency (``pip install 'edgeemo[ray]'``), imported only when one of these runs.

classify (:class:`RayExecutor`, a :class:`edgeemo.batch.BatchExecutor`): the driver keeps listing, resume
planning, journaling and writing the outputs (:func:`edgeemo.batch.classify_folder`); it reads each input's
bytes and sends batches of them to a pool of actors, each holding one :class:`Pipeline` (one model session),
which decode with edgeemo's own decoder and classify as a local run does, so the outputs are byte-identical.
Plain actors rather than Ray Data: every batch result comes back to the driver as one object, which the
driver journals before the next (resume stays exact), and the per-batch cost is one actor call
(docs/scale-out.md has the measurements). A worker process that dies is restarted and its batches are
retried by Ray; a batch whose actor is gone for good is sent to another actor, so every input gives exactly
one row.

video (:func:`run_videos`): one Ray task per source, retried when its worker is lost; the task runs
:class:`edgeemo.video.run.VideoRun` as the local ``video`` command does and writes the same outputs (so on a
cluster, sources and output folder are paths every node sees, or stream URLs).
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeemo.batch import Batch, BatchResult, ClassifyJob, Input, ModelFacts, classify_inputs, read_input
from edgeemo.errors import EdgeemoError, InputError, MissingDependencyError, ModelError, printable
from edgeemo.io.images import natural_key
from edgeemo.pipeline import Pipeline, PipelineOptions
from edgeemo.video.reader import parse_source
from edgeemo.video.run import VideoOptions, VideoOutputs, VideoSummary

if TYPE_CHECKING:
    from edgeemo.render.annotate import VaBars

GPU_DEVICES = ("cuda", "tensorrt")
BATCHES_PER_ACTOR = 2  # in flight per actor: one running, one queued, so an actor never waits for the driver
MAX_RESTARTS = 3  # per actor (and per video task): a worker lost more often than this fails the run
LIST_SUFFIXES = (".txt", ".list")
VIDEO_FILE_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts")


class WorkerError(EdgeemoError):
    """An error raised on a Ray worker whose own type could not travel back; keeps its message and exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def ray_module() -> Any:
    """The ``ray`` module, or :class:`MissingDependencyError` naming the extra."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("--engine ray", "ray", str(exc)) from exc
    return ray


def connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` (``auto``, ``ray://HOST:PORT``; None: ``RAY_ADDRESS`` or a Ray started
    for this process). Uses a Ray already initialised in this process. True when this call initialised Ray here
    (then the caller shuts it down: a private Ray stops, a cluster stays)."""
    ray = ray_module()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs["include_dashboard"] = False  # a private Ray for this run: no dashboard to serve
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(f"--address {address}: cannot join a Ray cluster ({_first_line(exc)})") from exc
    return True


def actor_resources(device: str) -> dict[str, float]:
    """Ray resources per actor or task: one CPU, plus one GPU for ``--device cuda/tensorrt``."""
    return {"num_cpus": 1, "num_gpus": 1} if device in GPU_DEVICES else {"num_cpus": 1}


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _portable(exc: EdgeemoError) -> EdgeemoError:
    """``exc`` itself when it survives pickling (Ray sends it back that way), else a :class:`WorkerError`."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return WorkerError(str(exc), exc.exit_code)
    return exc


def _absolute(path: str) -> str:
    """A relative path that exists here, made absolute: workers do not run in the driver's folder."""
    return str(Path(path).absolute()) if path and Path(path).exists() else path


def worker_paths(runtime: PipelineOptions) -> PipelineOptions:
    """``runtime`` with the model, VA model and TensorRT cache paths absolute (names are left alone)."""
    session = runtime.session
    if session.trt_cache_dir is not None:
        session = replace(session, trt_cache_dir=str(Path(session.trt_cache_dir).absolute()))
    return replace(
        runtime,
        model=_absolute(runtime.model),
        va_models=tuple(_absolute(v) for v in runtime.va_models),
        session=session,
    )


def _single_threaded(runtime: PipelineOptions) -> PipelineOptions:
    """Actors share a node's cores: one intra-op thread per session unless ``--threads`` says otherwise."""
    if runtime.session.intra_op_threads is not None:
        return runtime
    return replace(runtime, session=replace(runtime.session, intra_op_threads=1))


# ------------------------------------------------------------------------------------------------ classify
class ClassifyWorker:
    """The body of one classify actor: one pipeline (one model session) for all its batches."""

    def __init__(self, job: ClassifyJob) -> None:
        self.job = job
        self.error: EdgeemoError | None = None
        self.lock = threading.Lock()
        try:
            self.pipe: Pipeline | None = Pipeline.from_options(_single_threaded(job.pipeline_options()))
            self.key = job.key(self.pipe)
        except EdgeemoError as exc:  # reported by facts(): an actor that failed to start would only say "died"
            self.pipe, self.key, self.error = None, "", _portable(exc)

    def facts(self) -> ModelFacts:
        if self.error is not None or self.pipe is None:
            raise self.error or ModelError("the model did not load")
        return ModelFacts(self.pipe.classes, self.key)

    def classify(self, inputs: Sequence[Input]) -> BatchResult:
        if self.pipe is None:
            raise self.error or ModelError("the model did not load")
        try:
            return classify_inputs(self.pipe, inputs, self.job, self.key, self.lock)
        except EdgeemoError as exc:
            raise _portable(exc) from None


def _raise_cause(exc: BaseException) -> None:
    """Raise the edgeemo error inside a Ray task error, as it was raised on the worker."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, EdgeemoError):
        raise cause from None


class RayExecutor:
    """Runs classify batches on ``actors`` Ray actors (default: one per cluster CPU, or per GPU with a GPU
    ``--device``), joining the cluster at ``address`` (see :func:`connect`)."""

    def __init__(self, address: str | None = None, actors: int | None = None) -> None:
        self.address = address
        self.actors = actors
        self._pool: list[Any] = []
        self._job: ClassifyJob | None = None
        self._started = False

    def open(self, job: ClassifyJob) -> ModelFacts:
        ray = ray_module()
        self._started = connect(self.address)
        job = replace(job, runtime=worker_paths(job.runtime))
        self._job = job
        resources = actor_resources(job.runtime.session.device)
        count = self.actors or self._default_actors(ray, resources)
        actor = ray.remote(ClassifyWorker).options(
            **resources, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS, scheduling_strategy="SPREAD"
        )
        self._pool = [actor.remote(job) for _ in range(count)]
        facts = self._get([a.facts.remote() for a in self._pool])
        if len(set(facts)) > 1:  # e.g. AVX-512 and AVX2 nodes loading different files of an fp32 model
            raise ModelError(
                "the Ray actors loaded different model files (run keys "
                f"{sorted({f.key for f in facts})}); give --cpu-layout portable so every node loads the same file"
            )
        return facts[0]

    @staticmethod
    def _default_actors(ray: Any, resources: dict[str, float]) -> int:
        kind = "GPU" if resources.get("num_gpus") else "CPU"
        have = int(ray.cluster_resources().get(kind, 0))
        if have < 1:
            raise InputError(f"the Ray cluster has no {kind}; add a {kind} node or choose another --device")
        return have

    def _get(self, refs: Any) -> Any:
        ray = ray_module()
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            _raise_cause(exc)
            raise

    def run(self, batches: Sequence[Batch]) -> Iterator[BatchResult]:
        ray = ray_module()
        job = self._job
        assert job is not None, "open() comes first"
        lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError)
        todo: deque[tuple[int, int]] = deque((i, 0) for i in range(len(batches)))  # (batch, times lost)
        pending: dict[Any, tuple[int, int, int]] = {}  # ref -> (actor, batch, times lost)
        load = [0] * len(self._pool)
        alive = set(range(len(self._pool)))
        while todo or pending:
            for a in sorted(alive, key=lambda k: load[k]):
                while todo and load[a] < BATCHES_PER_ACTOR:
                    b, tries = todo.popleft()
                    inputs = [read_input(rel, path, job.max_pixels) for rel, path in batches[b]]
                    pending[self._pool[a].classify.remote(inputs)] = (a, b, tries)
                    load[a] += 1
            if not pending:
                raise EdgeemoError(f"every Ray actor was lost; {len(todo)} batches did not run: re-run to go on")
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            a, b, tries = pending.pop(ref)
            load[a] -= 1
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                _raise_cause(exc)
                raise
            except lost as exc:  # Ray's own retries are spent: this actor is gone, the batch goes elsewhere
                alive.discard(a)
                if tries >= MAX_RESTARTS:
                    first = batches[b][0][0] if batches[b] else "?"
                    raise EdgeemoError(
                        f"the batch starting at {printable(first)} was lost with its Ray worker {tries + 1} "
                        f"times ({_first_line(exc)}); the rows journaled before are kept: re-run to go on"
                    ) from exc
                todo.appendleft((b, tries + 1))
                continue
            yield result

    def close(self) -> None:
        ray = ray_module()
        for actor in self._pool:
            ray.kill(actor)
        self._pool = []
        if self._started:
            ray.shutdown()
            self._started = False


# --------------------------------------------------------------------------------------------------- video
@dataclass(frozen=True)
class VideoJob:
    """What every video task runs with: the pipeline, the video options and how frames are drawn."""

    runtime: PipelineOptions
    options: VideoOptions
    va_bars: VaBars = "auto"


@dataclass(frozen=True)
class VideoOutcome:
    """One source's result: its summary, or the one-line error and exit code it failed with."""

    source: str
    summary: VideoSummary | None = None
    error: str = ""
    exit_code: int = 0


def expand_sources(items: Sequence[str]) -> list[str]:
    """Video sources from arguments: a folder gives its video files (natural order), a ``.txt``/``.list`` file
    one source per line (blank lines and ``#`` comments skipped; relative paths from the list's folder); anything
    else (file, webcam index, stream URL) is a source itself."""
    sources: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                (f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_FILE_SUFFIXES),
                key=lambda f: natural_key(f.name),
            )
            if not found:
                raise InputError(f"{printable(item)}: no video files ({', '.join(VIDEO_FILE_SUFFIXES)})")
            sources += [str(f) for f in found]
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            lines = [s.strip() for s in p.read_text(encoding="utf-8").splitlines()]
            entries = [s for s in lines if s and not s.startswith("#")]
            if not entries:
                raise InputError(f"{printable(item)}: the list of sources is empty")
            sources += [e if "://" in e or e.isdigit() or Path(e).is_absolute() else str(p.parent / e) for e in entries]
        else:
            sources.append(item)
    return sources


def run_video(job: VideoJob, source: str, outputs: VideoOutputs) -> VideoOutcome:
    """One source as the local ``video`` command runs it (no window, no progress bar); errors become the outcome."""
    from edgeemo.video.run import VideoRun

    try:
        with VideoRun.from_options(source, outputs, job.options, job.runtime, va_bars=job.va_bars) as run:
            return VideoOutcome(source, run.run())
    except EdgeemoError as exc:
        return VideoOutcome(source, error=" ".join(str(exc).split()), exit_code=exc.exit_code)


def _absolute_source(source: str) -> str:
    return _absolute(source) if parse_source(source)[0] == "file" else source


def _absolute_outputs(outputs: VideoOutputs) -> VideoOutputs:
    paths = {f.name: getattr(outputs, f.name) for f in fields(outputs)}
    return VideoOutputs(**{k: None if p is None else p.absolute() for k, p in paths.items()})


def run_videos(
    work: Sequence[tuple[str, VideoOutputs]],
    job: VideoJob,
    address: str | None = None,
    on_done: Callable[[VideoOutcome], None] | None = None,
) -> list[VideoOutcome]:
    """Each (source, outputs) as one Ray task (retried when its worker is lost); outcomes in the order given.
    ``on_done`` is called on this thread as each finishes (any order)."""
    ray = ray_module()
    started = connect(address)
    try:
        task = ray.remote(run_video).options(
            **actor_resources(job.runtime.session.device), max_retries=MAX_RESTARTS, retry_exceptions=False
        )
        job = replace(job, runtime=worker_paths(job.runtime))
        refs = {
            task.remote(job, _absolute_source(src), _absolute_outputs(outs)): k for k, (src, outs) in enumerate(work)
        }
        outcomes: list[VideoOutcome | None] = [None] * len(work)
        waiting = list(refs)
        while waiting:
            (ref,), waiting = ray.wait(waiting, num_returns=1)
            k = refs[ref]
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as exc:  # lost more often than the retries allow, or a crash
                outcome = VideoOutcome(work[k][0], error=f"the Ray task failed: {_first_line(exc)}", exit_code=1)
            outcome = outcomes[k] = replace(outcome, source=work[k][0])  # as the caller named it
            if on_done is not None:
                on_done(outcome)
        return [o for o in outcomes if o is not None]
    finally:
        if started:
            ray.shutdown()
