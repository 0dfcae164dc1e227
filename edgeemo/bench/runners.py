"""Lean-install runners: onnxruntime classifiers, session comparisons, detectors, the image pipeline, import.

Each runner takes the JSON-able ``params`` of its :class:`~edgeemo.bench.plan.Config` and returns a JSON-able
dict; :class:`~edgeemo.bench.plan.Skip` says the configuration cannot run here and why.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeemo.bench.frames import DETECTOR_SIZES, PIPELINE_SIZES, DataDir, face_crops, frames_at
from edgeemo.bench.plan import Skip
from edgeemo.bench.stats import block_calls, interleave, summarize, time_batches_in_passes, time_calls
from edgeemo.errors import EdgeemoError, ModelError
from edgeemo.runtime.session import SessionOptions, create_session


def _timing(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in ("warmup", "min_runs", "max_runs", "budget_s") if k in params}


def time_batches(params: Mapping[str, Any], fns: Mapping[int, Callable[[], object]]) -> list[dict[str, Any]]:
    """Each batch size's stats, timed in ``params["passes"]`` passes (best pass kept), as dicts."""
    stats = time_batches_in_passes(fns, passes=int(params.get("passes", 1)), **_timing(params))
    return [stats[b].to_dict() for b in fns]


def load_model(name: str, precision: str = "fp32", options: SessionOptions | None = None) -> Any:
    """An :class:`EmotionModel`, or :class:`Skip` when that model or precision is not available here."""
    from edgeemo.runtime.model import EmotionModel

    try:
        return EmotionModel.load(name, precision, options)
    except ModelError as exc:
        raise Skip(str(exc)) from exc


def model_inputs(model: Any, batches: list[int], data: DataDir = None) -> tuple[dict[int, np.ndarray], str]:
    """One preprocessed input per batch size, from real face crops (of the ``data`` folder, else the sample clip)."""
    crops, source = face_crops(max(batches), data)
    return {b: model.preprocess(crops[:b]) for b in batches}, source


def portable_path(model: Any) -> Path:
    """The portable fp32 file behind ``model`` (itself unless it was loaded as a CPU-layout copy)."""
    from edgeemo.runtime.assets import LAYOUT_SUFFIX, PRECISION_SUFFIX

    p = Path(model.path)
    return p.with_name(PRECISION_SUFFIX["fp32"]) if p.name in LAYOUT_SUFFIX.values() else p


def classifier_ort(params: Mapping[str, Any]) -> dict[str, Any]:
    """edgeemo's default session (or ``params["session"]`` overrides) on one model, precision and device.

    ``{"session": {"cpu_layout": "portable"}}`` measures the portable graph where the default would load the
    model's AVX-512 layout copy (the before/after of :mod:`edgeemo_export.channel_pad`).
    """
    options = SessionOptions(device=params.get("device", "cpu"), strict_device=True, **params.get("session", {}))
    precision = params.get("precision", "fp32")
    if options.cpu_layout == "portable":
        from edgeemo.runtime.assets import resolve_model
        from edgeemo.runtime.session import choose_cpu_layout

        default = replace(options, cpu_layout="auto")
        try:
            same = resolve_model(params["model"], precision, choose_cpu_layout(default)) == resolve_model(
                params["model"], precision
            )
        except EdgeemoError as exc:
            raise Skip(str(exc)) from exc
        if same:
            raise Skip("the default session already loads the portable graph here (no AVX-512 layout copy in use)")
    return _classifier_ort(params, params["model"], precision, options)


def _mode_label(precision: str, providers: list[str], options: SessionOptions) -> str:
    label = f"ORT {precision.upper()}" + (" portable graph" if options.cpu_layout == "portable" else "")
    if options.intra_op_threads is not None:
        label += f", {options.intra_op_threads} thread" + ("s" if options.intra_op_threads > 1 else "")
    if providers and providers[0] == "TensorrtExecutionProvider":
        engine = "INT8" if options.trt_int8 else "FP16" if options.trt_fp16 else "FP32"
        label += f" (TensorRT {engine} engine)"
    return label


def _classifier_ort(params: Mapping[str, Any], name: str, precision: str, options: SessionOptions) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        model = load_model(name, precision, options)
    except EdgeemoError as exc:  # the provider is not in this onnxruntime build
        raise Skip(str(exc)) from exc
    load_ms = (time.perf_counter() - t0) * 1e3
    batches = list(params["batches"])
    inputs, source = model_inputs(model, batches, params.get("data"))
    stats = time_batches(params, {b: (lambda b=b: model.run_batch(inputs[b])) for b in batches})
    return {
        "model": params["model"],
        "engine": "onnxruntime",
        "mode": _mode_label(precision, model.providers, options),
        "file": model.path.name,
        "precision": precision,
        "providers": model.providers,
        "session_options": asdict(options),
        "load_ms": round(load_ms, 1),
        "macs_per_item": params.get("macs_per_item"),  # counted by the harness (edgeemo.bench.flops.model_macs)
        "input": source,
        "stats": stats,
    }


def _plain_session(path: str) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


REFERENCE = "edgeemo"
BEFORE = "edgeemo, portable graph, one call per batch"


def interleaved_batches(
    model: Any,
    params: Mapping[str, Any],
    others: Callable[[np.ndarray, dict[str, np.ndarray]], dict[str, Callable[[], Any]]],
) -> tuple[list[dict[str, Any]], str]:
    """Per batch size, timed in alternating blocks: edgeemo's default call (``model.run_batch``: the layout copy
    where the CPU takes one, batches sliced per :func:`edgeemo.runtime.session.resolve_batch_slice`), the contenders
    ``others(x, feed)`` returns, and the portable graph in one session call per batch (edgeemo before the layout
    copy and the slicing), where that differs."""
    portable = portable_path(model)
    before = None
    if portable != Path(model.path) or model.batch_slice:
        before = create_session(portable, SessionOptions(device="cpu"))
    name = model.spec.input.name
    inputs, source = model_inputs(model, list(params["batches"]), params.get("data"))
    per_batch = []
    for b, x in inputs.items():
        feed = {name: x}
        contenders = {REFERENCE: lambda x=x: model.run_batch(x), **others(x, feed)}
        if before is not None and (portable != Path(model.path) or len(x) > model.batch_slice):
            contenders[BEFORE] = lambda feed=feed: before.run(None, feed)
        samples = interleave(
            contenders,
            rounds=int(params.get("rounds", 10)),
            per_round=block_calls(int(params.get("per_round", 10)), b),
            warmup=int(params.get("warmup", 5)),
        )
        per_batch.append({"batch": b, "contenders": {k: summarize(v, b).to_dict() for k, v in samples.items()}})
    return per_batch, source


def compare_sessions(params: Mapping[str, Any]) -> dict[str, Any]:
    """Interleaved: edgeemo's default session against a plain ``onnxruntime.InferenceSession`` with its defaults,
    and against edgeemo's session on the portable graph where the default loads an AVX-512 layout copy."""
    model = load_model(params["model"], "fp32", SessionOptions(device="cpu"))
    plain = _plain_session(str(model.path))
    per_batch, source = interleaved_batches(
        model, params, lambda x, feed: {"onnxruntime defaults": lambda: plain.run(None, feed)}
    )
    return {
        "model": params["model"],
        "reference": REFERENCE,
        "session_options": asdict(SessionOptions(device="cpu")),
        "input": source,
        "batches": per_batch,
    }


SLOW_MS = 1000.0  # a detector slower than this per frame gets fewer timed calls, to keep the full run in budget


def _sizes(params: Mapping[str, Any], default: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(int(w), int(h)) for w, h in params.get("sizes", default)]


def _cycle(items: list[Any], fn: Callable[[Any], int], counts: list[int]) -> Callable[[], None]:
    """A no-argument call that feeds the next item (frame) to ``fn`` and records what it returned."""
    k = [0]

    def one() -> None:
        counts.append(fn(items[k[0] % len(items)]))
        k[0] += 1

    return one


def detector(params: Mapping[str, Any]) -> dict[str, Any]:
    """Milliseconds per frame of one detector at each benchmark size, on real frames."""
    from edgeemo.detectors import create_detector

    try:
        det = create_detector(params["detector"], **params.get("options", {}))
    except EdgeemoError as exc:
        raise Skip(str(exc)) from exc
    try:
        sizes, source = [], ""
        for w, h in _sizes(params, DETECTOR_SIZES):
            try:
                frames, source = frames_at(w, h, data=params.get("data"))
            except LookupError as exc:
                raise Skip(str(exc)) from exc
            counts: list[int] = []
            timing = _timing(params)
            t0 = time.perf_counter()
            det.detect(frames[0])  # warm-up, and a measure of how slow this detector is
            timing["warmup"] = max(0, int(timing.get("warmup", 1)) - 1)
            if time.perf_counter() - t0 > SLOW_MS / 1e3:
                timing["min_runs"] = min(2, int(timing.get("min_runs", 2)))
            samples = time_calls(_cycle(frames, lambda f: len(det.detect(f)), counts), **timing)
            stats = summarize(samples, 1).to_dict()
            sizes.append({"width": w, "height": h, "faces_per_frame": counts[: len(frames)], "stats": stats})
        options = dict(params.get("options", {}))
        return {"detector": params["detector"], "options": options, "frames": source, "sizes": sizes}
    finally:
        det.close()


def _pipeline_rounds(pipe: Any, frames: list[Any], timing: Mapping[str, Any]) -> dict[str, Any]:
    """Rounds for timing ``run_image`` and its stages interleaved within about ``budget_s``.

    A round times each of the five calls once per frame, so it costs about two ``run_image`` passes; a
    detector slower than :data:`SLOW_MS` per frame (dlib CNN on CPU) gets two rounds of one frame each.
    """
    t0 = time.perf_counter()
    pipe.run_image(frames[0])  # warm-up, and the estimate of one call
    one = time.perf_counter() - t0
    if one * 1e3 > SLOW_MS:
        return {"rounds": 2, "per_round": 1, "warmup": 0, "gap_s": 0.0, "rewarm": 0}
    budget = float(timing.get("budget_s", 1.0))
    rounds = int(budget / max(2 * one * len(frames), 1e-6))
    return {"rounds": max(3, min(50, rounds)), "per_round": len(frames), "warmup": 1, "gap_s": 0.0, "rewarm": 0}


def pipeline(params: Mapping[str, Any]) -> dict[str, Any]:
    """The image pipeline on real frames: the whole ``run_image`` and its stages (JPEG decode, detect, crop,
    classify), timed interleaved so that the stage times and the whole call see the same state of the machine.
    """
    import cv2

    from edgeemo.pipeline import Pipeline

    try:
        pipe = Pipeline(model=params["model"], detector=params["detector"])
    except EdgeemoError as exc:
        raise Skip(str(exc)) from exc
    timing = _timing(params)
    try:
        sizes, source = [], ""
        for w, h in _sizes(params, PIPELINE_SIZES):
            try:
                frames, source = frames_at(w, h, data=params.get("data"))
            except LookupError as exc:
                raise Skip(str(exc)) from exc
            faces = [pipe.detect(f) for f in frames]
            jpegs = [cv2.imencode(".jpg", f)[1] for f in frames]
            crops = [pipe.crops(f, fc).crops for f, fc in zip(frames, faces)]
            calls = {
                "run_image": _cycle(frames, lambda f: len(pipe.run_image(f).faces), []),
                "decode_jpeg": _cycle(jpegs, lambda j: len(cv2.imdecode(j, cv2.IMREAD_COLOR)), []),
                "detect": _cycle(frames, lambda f: len(pipe.detect(f)), []),
                "crop": _cycle(list(zip(frames, faces)), lambda ff: len(pipe.crops(*ff).crops), []),
                "classify": _cycle(crops, lambda c: len(pipe.classify_crops(c)), []),
            }
            samples = interleave(calls, **_pipeline_rounds(pipe, frames, timing))
            total = samples.pop("run_image")
            sizes.append(
                {
                    "width": w,
                    "height": h,
                    "faces_per_frame": [len(fc) for fc in faces],
                    "stats": summarize(total, 1).to_dict(),
                    "stages_p50_ms": {k: round(summarize(v, 1).p50_ms, 3) for k, v in samples.items()},
                }
            )
    finally:
        pipe.close()
    return {"detector": params["detector"], "model": params["model"], "frames": source, "sizes": sizes}


# Resident memory from VmRSS (kB) where /proc exists: ru_maxrss would carry over the parent's peak through
# fork+exec (it is the fallback elsewhere).
_IMPORT_PROBE = """
import time
t = time.perf_counter()
import edgeemo
d = time.perf_counter() - t
try:
    rss = int(next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmRSS:")))
except OSError:
    import resource, sys
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
print(d, rss)
"""


def import_time(params: Mapping[str, Any]) -> dict[str, Any]:
    """``import edgeemo`` in fresh interpreters: median seconds and the resident memory it leaves."""
    times, rss = [], []
    for _ in range(int(params.get("repeats", 5))):
        out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, check=True)
        t, r = out.stdout.split()
        times.append(float(t))
        rss.append(int(r) / 1024)
    return {
        "import_ms_median": round(statistics.median(times) * 1e3, 1),
        "import_ms_min": round(min(times) * 1e3, 1),
        "repeats": len(times),
        "rss_after_import_mib": round(statistics.median(rss), 1),
    }
