"""End-to-end video FPS per detector, with and without writing the annotated video.

    python -m benchmarks.video_fps                 # default detectors, 3 timed runs each, results/video_fps.json
    python -m benchmarks.video_fps --repeats 1 --detector blazeface:model=short --threads 1

A detector is ``name`` or ``name:key=value,key=value`` (detector options, as ``--detector-option``).
Defaults: ``blazeface`` (its default ``auto`` variant), ``blazeface:model=short`` and ``dlib-hog``.

The input is ../shared/data/videos/1zlab_face.mp4 (854x480, 383 frames) scaled to cover 640x480 (keeps the
aspect ratio; here a centre crop) and re-encoded once to H.264 in a temporary folder, so decoding is part of
what is measured. Each configuration runs the whole clip through :class:`edgeemo.video.run.VideoRun`
(threaded decode → detect/infer → output) once untimed (warm-up) and then ``--repeats`` times; the figure is
the median of the runs' overall FPS (frames / wall seconds from the first decoded frame to the last output
finalised). "write" runs also annotate every frame and encode it (H.264 through PyAV where available).

Goals (issue 4), without writing, 2 cores: >= 150 FPS with blazeface + FP32, >= 35 FPS with dlib-hog.
The machine's load average is recorded before every run and the harness's core probe
(:mod:`edgeemo.bench.probe`: were all cores really free?) before and after it; a run whose probes both read
under the contended threshold is marked † in the printed lines and ``contended`` in the JSON, and the entry's
``fps_median_free_cores`` is the median over the other runs only (None when every run was contended).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeemo.bench.frames import resize_cover
from edgeemo.bench.machine import machine_facts
from edgeemo.bench.probe import Prober, contended
from edgeemo.detectors import parse_detector_options
from edgeemo.pipeline import Pipeline
from edgeemo.render.annotate import annotate
from edgeemo.runtime.session import SessionOptions
from edgeemo.video.reader import FrameReader
from edgeemo.video.run import VideoOptions, VideoOutputs, VideoRun, detect_ahead_workers
from edgeemo.video.writer import VideoWriter

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "videos" / "1zlab_face.mp4"
RESULTS = ROOT / "benchmarks" / "results"
GOALS = {"blazeface": 150.0, "dlib-hog": 35.0}
DEFAULT_DETECTORS = ("blazeface", "blazeface:model=short", "dlib-hog")


def parse_detector(text: str) -> tuple[str, dict[str, Any]]:
    name, _, opts = text.partition(":")
    return name, parse_detector_options([o for o in opts.split(",") if o])


def scaled_clip(src: Path, dst: Path, width: int = 640, height: int = 480) -> int:
    """Write ``src`` covered to ``width`` x ``height`` as H.264 (crf 18); return the frame count."""
    with FrameReader(src) as r, VideoWriter(dst, r.info.fps or 30.0, (width, height), crf=18) as w:
        for f in r:
            w.write(resize_cover(f.image, width, height))
    return w.frames


def run_once(
    pipe: Pipeline,
    clip: Path,
    write: bool,
    detect_every: int,
    tmp: Path,
    ahead: int | None = None,
    prober: Prober | None = None,
) -> dict[str, Any]:
    probe = prober.probe() if prober is not None else None
    outputs = VideoOutputs(video=tmp / "annotated.mp4") if write else VideoOutputs()
    run = VideoRun(
        pipe,
        clip,
        outputs,
        VideoOptions(detect_every=detect_every, detect_ahead=ahead),
        annotate=(lambda img, res: annotate(img, res, copy=False)) if write else None,
    )
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    s = run.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = prober.probe() if prober is not None else None
    result: dict[str, Any] = {
        "frames": s.frames,
        "faces": s.faces,
        "tracks": s.tracks,
        "fps": round(s.frames / s.seconds, 2),  # whole run, finalising included (s.fps leaves it out)
        "wall_s": round(wall, 3),
        "cpu_ms_per_frame": round(cpu / max(1, s.frames) * 1e3, 3),
        "stage_fps": s.to_dict()["stage_fps"],
        "load_1min_before": round(load, 2),
        "core_probe": None if probe is None else probe.to_dict(),
        "core_probe_after": None if after is None else after.to_dict(),
        "detect_ahead": detect_ahead_workers(run.options, pipe, encoding=write),
        "notes": list(s.notes),
    }
    result["contended"] = contended(result)  # the harness's rule, on this run's probe
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=CLIP, help="source clip (default: the shared 1zlab clip)")
    ap.add_argument("--detector", action="append", help="detector[:key=value,...] (repeatable)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="onnxruntime intra-op threads of the model and blazeface sessions (default 1, as `edgeemo video`; "
        "0: onnxruntime's default, one per core)",
    )
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    ap.add_argument("--model", default="mini-xception")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per configuration (median reported)")
    ap.add_argument("--detect-every", type=int, action="append", help="also run with these --detect-every values")
    ap.add_argument(
        "--detect-ahead",
        type=int,
        action="append",
        help="also run with these detection-thread counts (0: detect on the calling thread, one frame at a "
        "time); the default count always runs",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "video_fps.json")
    args = ap.parse_args(argv)
    if not args.clip.is_file():
        print(f"video_fps: {args.clip} is absent (the evaluation data lives in ../shared/data)", file=sys.stderr)
        return 2
    detectors = args.detector or list(DEFAULT_DETECTORS)
    threads = args.threads or None
    session = SessionOptions(intra_op_threads=threads)
    every = sorted({1, *(args.detect_every or [])})
    aheads: list[int | None] = [None, *dict.fromkeys(args.detect_ahead or [])]
    doc: dict[str, Any] = {
        "benchmark": "video_fps",
        "command": "python -m benchmarks.video_fps " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_facts(),
        "clip": {"source": str(args.clip), "scaled_to": "640x480 (cover)"},
        "model": args.model,
        "precision": args.precision,
        "repeats": args.repeats,
        "threads": threads,
        "goals_fps_without_writing": GOALS,
        "results": [],
    }
    prober = Prober()
    with tempfile.TemporaryDirectory(prefix="edgeemo-video-fps-") as tmpdir:
        tmp = Path(tmpdir)
        clip = tmp / "clip640x480.mp4"
        doc["clip"]["frames"] = scaled_clip(args.clip, clip)
        for det in detectors:
            name, det_opts = parse_detector(det)
            if name == "blazeface":  # the same session options as `edgeemo video` gives it
                det_opts.setdefault("session_options", session)
            kwargs = {"detector": name, "detector_options": det_opts, "session_options": session}
            with Pipeline(model=args.model, precision=args.precision, **kwargs) as pipe:
                for n, ahead, write in itertools.product(every, aheads, (False, True)):
                    run_once(pipe, clip, write, n, tmp, ahead)  # warm-up: sessions, caches, encoder
                    runs = [run_once(pipe, clip, write, n, tmp, ahead, prober) for _ in range(args.repeats)]
                    fps = statistics.median(r["fps"] for r in runs)
                    free = [r["fps"] for r in runs if not r["contended"]]
                    entry = {
                        "detector": det,
                        "detect_every": n,
                        "detect_ahead": runs[0]["detect_ahead"],
                        "detect_ahead_default": ahead is None,
                        "write_video": write,
                        "fps_median": round(fps, 1),
                        "fps_median_free_cores": round(statistics.median(free), 1) if free else None,
                        "goal_fps": GOALS.get(name) if not write and n == 1 and ahead is None else None,
                        "runs": runs,
                    }
                    doc["results"].append(entry)
                    goal = entry["goal_fps"]
                    verdict = "" if goal is None else (" (goal met)" if fps >= goal else f" (goal {goal:.0f})")
                    probes = " ".join(
                        f"{r['core_probe']['speedup']:.2f}/{r['core_probe_after']['speedup']:.2f}"
                        + ("†" if r["contended"] else "")
                        for r in runs
                    )
                    print(
                        f"{det:22s} detect_every={n} ahead={runs[0]['detect_ahead']}"
                        f"{'' if ahead is None else ' (set)'} write={'yes' if write else 'no ':3s} "
                        f"{fps:7.1f} FPS{verdict}  cpu {runs[0]['cpu_ms_per_frame']:.2f} ms/frame  "
                        f"load {runs[0]['load_1min_before']}  core probe before/after {probes}",
                        file=sys.stderr,
                        flush=True,
                    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"results: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
