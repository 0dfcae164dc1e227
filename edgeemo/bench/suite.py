"""Run a plan, one fresh interpreter per configuration, and write one JSON result document.

Result document (schema 1)::

    {"schema": 1, "tool": "edgeemo-bench", "created_utc": "...", "mode": "quick" | "full",
     "command": [...], "budget": {...}, "machine": {...machine_facts()},
     "results": [{"id", "kind", "runner", "params", "status": "ok" | "skipped" | "error",
                  "data" | "reason" | "error", "wall_s", "peak_rss_mib", "baseline_rss_mib",
                  "core_probe"?: {cores, one_thread_ms, all_threads_ms, speedup}, "core_probe_after"?: {...}}]}

``core_probe`` and ``core_probe_after`` (:mod:`edgeemo.bench.probe`) are taken just before and just after
each configuration: whether all cores were really available to it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgeemo.bench.flops import model_macs
from edgeemo.bench.machine import machine_facts
from edgeemo.bench.plan import CLASSIFIER_ORT, Budget, Config
from edgeemo.bench.worker import MARKER
from edgeemo.io.sinks import write_text_atomic

log = logging.getLogger(__name__)
SCHEMA = 1


def run_isolated(config: Config, *, timeout_s: float = 600) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; a crash or timeout becomes an ``error`` result."""
    payload = json.dumps(config.to_dict())
    base = config.to_dict()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edgeemo.bench.worker"],
            input=payload,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {**base, "status": "error", "error": f"timed out after {timeout_s:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return {**base, **json.loads(line[len(MARKER) :])}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {**base, "status": "error", "error": f"worker exited {proc.returncode}: " + " | ".join(tail)}


def run_plan(
    plan: Sequence[Config],
    *,
    mode: str,
    budget: Budget,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Machine facts plus the result of every configuration, in plan order."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "tool": "edgeemo-bench",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": mode,
        "command": list(sys.argv),
        "budget": budget.to_dict(),
        "machine": machine_facts(),
        "results": [],
    }
    prober = _prober(calls=5 if mode == "quick" else 20)  # a quick run only flags contention, cheaply
    t0 = time.perf_counter()
    macs: dict[str, int | None] = {}
    for k, config in enumerate(plan):
        if config.runner == CLASSIFIER_ORT:
            name = config.params["model"]
            if name not in macs:
                macs[name] = model_macs(name)
            config = replace(config, params={**config.params, "macs_per_item": macs[name]})
        probe = prober.probe().to_dict() if prober is not None else None
        result = run_isolated(config)
        if prober is not None:
            result["core_probe"] = probe
            result["core_probe_after"] = prober.probe().to_dict()
        doc["results"].append(result)
        if result["status"] == "error":
            log.warning("%s: %s", config.id, result.get("error"))
        if progress is not None:
            progress(k + 1, len(plan), result)
    doc["total_wall_s"] = round(time.perf_counter() - t0, 1)
    with contextlib.suppress(OSError, AttributeError):  # no load average on this platform
        doc["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return doc


def _prober(calls: int) -> Any:
    """The core-availability probe, or None where it cannot run (no onnxruntime or no shipped model)."""
    from edgeemo.errors import EdgeemoError

    try:
        from edgeemo.bench.probe import Prober

        return Prober(calls)
    except (ImportError, EdgeemoError) as exc:
        log.warning("no core probe: %s", exc)
        return None


def write_results(doc: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(p, json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return p


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a result document, refusing files that are not edgeemo-bench results."""
    from edgeemo.errors import InputError

    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{p}: result file not found") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: not a readable JSON result file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("tool") != "edgeemo-bench" or doc.get("schema") != SCHEMA:
        raise InputError(f"{p}: not an edgeemo-bench result file (schema {SCHEMA})")
    return doc


def build_plan(
    *,
    quick: bool,
    models: Sequence[str] | None = None,
    tf_runners: str | os.PathLike[str] | None = None,
    detectors: Sequence[str] | None = None,
    pipeline: bool = True,
    data: str | os.PathLike[str] | None = None,
) -> tuple[list[Config], Budget]:
    """The plan and its budget.

    ``models`` defaults to every model edgeemo finds with an emotion head (classifiers and fused graphs;
    valence- or arousal-only models can be named explicitly); ``detectors`` to every registered one (dlib HOG at
    upsample 0 and 1); a quick run's to the default model and the default detector.
    ``tf_runners`` (a source checkout's ``benchmarks/tf_modes.py``) adds the TensorFlow / TFLite configurations.
    ``data`` is a folder of real inputs (:func:`edgeemo.bench.frames.check_data_dir`); default: the sample clip.
    """
    import onnxruntime as ort

    from edgeemo.bench.frames import check_data_dir
    from edgeemo.bench.plan import FULL, QUICK, available_devices, detector_configs, lean_plan, tf_plan
    from edgeemo.detectors import DEFAULT_DETECTOR, detector_names
    from edgeemo.errors import InputError
    from edgeemo.runtime.assets import DEFAULT_MODEL, list_models

    budget = QUICK if quick else FULL
    if models:
        names = list(models)
    elif quick:
        names = [DEFAULT_MODEL]
    else:
        names = [e.name for e in list_models() if _has_emotion_head(e.variants()["fp32"])]
    default_dets = [DEFAULT_DETECTOR] if quick else detector_names()
    dets = list(detectors) if detectors is not None else default_dets
    plan = lean_plan(
        names,
        devices=available_devices(ort.get_available_providers()),
        detectors=detector_configs(dets),
        pipeline_detectors=dets if pipeline else (),
        budget=budget,
    )
    if tf_runners is not None:
        if not Path(tf_runners).is_file():
            raise InputError(
                f"{tf_runners}: TensorFlow runners not found (they are a source checkout's benchmarks/tf_modes.py: "
                "run from the checkout's root or pass --tf-runners)"
            )
        plan += tf_plan(names, runners=tf_runners, budget=budget)
    if data is not None:
        folder = str(check_data_dir(data))
        plan = [replace(c, params={**c.params, "data": folder}) for c in plan]
    return plan, budget


def _has_emotion_head(path: Path) -> bool:
    from edgeemo.runtime.model import read_spec
    from edgeemo.runtime.session import SessionOptions, create_session
    from edgeemo.runtime.spec import EMOTION_HEAD

    return EMOTION_HEAD in read_spec(create_session(path, SessionOptions(device="cpu")), str(path)).head_names
