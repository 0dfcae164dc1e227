"""Faces/s of ``classify`` on this machine locally and on Ray, interleaved, and Ray's cost per batch.

Configurations, run in rotating order for ``--rounds`` rounds on the same folder (every run from scratch,
``fresh``): local with 1 worker thread (the CLI default) and with one per core, Ray with one actor per core and
with one actor. faces/s counts the batches (the figure the CLI prints): listing, resume planning and model load
are outside it; ``wall_s`` is the whole run, actor start included. Ray itself is started once, before the runs,
as a cluster would already be running; its start time is reported apart. The per-batch overhead is the
round trip of one batch through an actor minus the same batch classified in this process, medians of repeats.
With ``--ray-data`` (needs ``ray[data]``), the alternative edgeemo did not take is run in the same rotation:
Ray Data ``map_batches`` over an actor pool of the same workers, the driver reading the bytes as edgeemo's
does; it has no journal or progress, so only its ``wall_s`` compares (``faces_per_s`` is per wall second).

``python -m benchmarks.ray_throughput [FOLDER] [--rounds 3] [--ray-data] [--out ...ray_throughput.json]``
(default FOLDER: ../shared/data/fer2013-publictest, recursively).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeemo.batch import (
    BatchExecutor,
    ClassifyJob,
    ClassifyOptions,
    Input,
    LocalExecutor,
    classify_folder,
    classify_inputs,
    read_input,
)
from edgeemo.distributed import ClassifyWorker, RayExecutor
from edgeemo.io.images import list_images
from edgeemo.pipeline import PipelineOptions

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = ROOT.parent / "shared" / "data" / "fer2013-publictest"
BATCH = 64


def _configs(cores: int) -> dict[str, Callable[[], BatchExecutor]]:
    return {
        "local, 1 worker": lambda: LocalExecutor(1),
        f"local, {cores} workers": lambda: LocalExecutor(cores),
        f"ray, {cores} actors": lambda: RayExecutor(actors=cores),
        "ray, 1 actor": lambda: RayExecutor(actors=1),
    }


def _run(folder: Path, make: Callable[[], BatchExecutor], out: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    s = classify_folder(folder, out, ClassifyOptions(recursive=True, batch_size=BATCH, fresh=True), executor=make())
    wall = time.perf_counter() - t0
    return {"faces": s.computed, "elapsed_s": s.elapsed, "faces_per_s": s.faces_per_second or 0.0, "wall_s": wall}


class _DataWorker:
    """A Ray Data ``map_batches`` callable over the same worker (one session per actor)."""

    def __init__(self) -> None:
        self.worker = ClassifyWorker(ClassifyJob(PipelineOptions()))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        inputs = [Input(str(r), str(o), bytes(d)) for r, o, d in zip(batch["rel"], batch["origin"], batch["data"])]
        return {"row": [",".join(row) for row in self.worker.classify(inputs).rows]}


def _ray_data_run(folder: Path, cores: int) -> dict[str, float]:
    import ray.data

    t0 = time.perf_counter()
    items = [read_input(f.relative_to(folder).as_posix(), f, ClassifyJob(PipelineOptions()).max_pixels)
             for f in list_images(folder, recursive=True)]  # fmt: skip
    ds = ray.data.from_items([{"rel": i.rel, "origin": i.origin, "data": i.data} for i in items])
    rows = ds.map_batches(_DataWorker, batch_size=BATCH, concurrency=cores, num_cpus=1).take_all()
    wall = time.perf_counter() - t0
    return {"faces": len(rows), "elapsed_s": wall, "faces_per_s": len(rows) / wall, "wall_s": wall}


def _overhead(ray: Any, folder: Path, repeats: int) -> dict[str, float]:
    """Milliseconds: an empty batch's round trip, and a full batch's round trip minus its in-process time."""
    job = ClassifyJob(PipelineOptions())
    files = list_images(folder, recursive=True)[:BATCH]
    inputs = [read_input(f.name, f, job.max_pixels) for f in files]
    actor = ray.remote(ClassifyWorker).options(num_cpus=1).remote(job)
    ray.get(actor.facts.remote())
    here = ClassifyWorker(job)  # the same single-threaded session, in this process
    lock = threading.Lock()

    def timed(fn: Callable[[], Any]) -> float:
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1000

    empty = [timed(lambda: ray.get(actor.classify.remote([]))) for _ in range(repeats * 10)]
    remote = [timed(lambda: ray.get(actor.classify.remote(inputs))) for _ in range(repeats)]
    local = [timed(lambda: classify_inputs(here.pipe, inputs, job, here.key, lock)) for _ in range(repeats)]
    ray.kill(actor)
    return {
        "empty_batch_round_trip_ms": statistics.median(empty),
        "batch_round_trip_ms": statistics.median(remote),
        "batch_in_process_ms": statistics.median(local),
        "overhead_per_batch_ms": statistics.median(remote) - statistics.median(local),
        "batch_size": len(inputs),
        "batch_bytes": sum(len(i.data or b"") for i in inputs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ray-data", action="store_true", help="also run Ray Data map_batches (needs ray[data])")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray_throughput.json")
    args = parser.parse_args()
    import ray

    cores = os.cpu_count() or 1
    t0 = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, logging_level="WARNING")
    ray_start = time.perf_counter() - t0
    configs = _configs(cores)
    names = [*configs, *([f"ray data, {cores} actors"] if args.ray_data else [])]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    outputs: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order every round
                if name not in configs:
                    runs[name].append(_ray_data_run(args.folder, cores))
                    print(f"round {r + 1} {name}: {runs[name][-1]['faces_per_s']:.0f} faces/s (wall)", flush=True)
                    continue
                out = Path(tmp) / f"{len(outputs)}.csv"
                runs[name].append(_run(args.folder, configs[name], out))
                outputs[f"{name} {r}"] = out.read_bytes()
                print(f"round {r + 1} {name}: {runs[name][-1]['faces_per_s']:.0f} faces/s", flush=True)
    overhead = _overhead(ray, args.folder, repeats=20)
    ray.shutdown()
    median = {name: statistics.median(x["faces_per_s"] for x in v) for name, v in runs.items()}
    wall = {name: statistics.median(x["faces"] / x["wall_s"] for x in v) for name, v in runs.items()}
    local1, ray_n = median["local, 1 worker"], median[f"ray, {cores} actors"]
    result = {
        "folder": str(args.folder.relative_to(ROOT.parent)) if args.folder.is_relative_to(ROOT.parent) else "",
        "faces": runs[names[0]][0]["faces"],
        "batch_size": BATCH,
        "rounds": args.rounds,
        "cores": cores,
        "cpu": platform.processor() or platform.machine(),
        "load_average_1min_at_end": os.getloadavg()[0],
        "ray_version": ray.__version__,
        "ray_start_s": ray_start,
        "median_faces_per_s": median,
        "median_faces_per_wall_s": wall,
        "ratio_ray_to_local_1_worker": ray_n / local1,
        "ratio_ray_to_best_local": ray_n / max(median["local, 1 worker"], median[f"local, {cores} workers"]),
        "outputs_identical": len(set(outputs.values())) == 1,
        "overhead": overhead,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, v in median.items():
        print(f"{name}: median {v:.0f} faces/s, {wall[name]:.0f} faces per wall second")
    print(
        f"ray/local(1 worker) = {result['ratio_ray_to_local_1_worker']:.2f}; "
        f"ray/best local = {result['ratio_ray_to_best_local']:.2f}; Ray start {ray_start:.1f} s; "
        f"overhead per batch of {overhead['batch_size']}: {overhead['overhead_per_batch_ms']:.2f} ms "
        f"(empty round trip {overhead['empty_batch_round_trip_ms']:.2f} ms); identical: {result['outputs_identical']}"
    )


if __name__ == "__main__":
    main()
