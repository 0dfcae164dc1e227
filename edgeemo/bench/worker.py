"""Subprocess entry point: run one :class:`~edgeemo.bench.plan.Config` read as JSON from stdin.

Prints one line ``EDGEEMO-BENCH-RESULT <json>`` on stdout with the runner's data, the status
(``ok`` | ``skipped`` | ``error``) and the process's peak resident memory, which is why every configuration
runs in a fresh interpreter: the peak belongs to that configuration alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "EDGEEMO-BENCH-RESULT "


def peak_rss_mib() -> float | None:
    """This process's own peak resident memory.

    On Linux from ``VmHWM`` in /proc/self/status: ``ru_maxrss`` survives fork+exec, so a child would report at
    least its parent's peak (the harness process holds onnxruntime sessions of its own).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def load_runner(runner: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``module:function``, or ``path/to/file.py:function`` for runners kept outside the package (a checkout's
    TensorFlow comparisons), loaded from that file, the import path left as it is."""
    target, _, func_name = runner.rpartition(":")
    if not target.endswith(".py"):
        return getattr(importlib.import_module(target), func_name)
    spec = importlib.util.spec_from_file_location(Path(target).stem, target)
    if spec is None or spec.loader is None:
        from edgeemo.errors import InputError

        raise InputError(f"{target}: cannot load benchmark runners from it")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look their module up here
    spec.loader.exec_module(module)
    return getattr(module, func_name)


def run_config(config: dict[str, Any]) -> dict[str, Any]:
    from edgeemo.bench.plan import Skip

    baseline = peak_rss_mib()
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    try:
        func = load_runner(config["runner"])
        out = {"status": "ok", "data": func(config.get("params", {}))}
    except Skip as exc:
        out = {"status": "skipped", "reason": str(exc)}
    except ImportError as exc:
        out = {"status": "skipped", "reason": f"missing dependency: {exc}"}
    except Exception as exc:  # a broken configuration is reported in the results, not lost
        out = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    out["wall_s"] = round(time.perf_counter() - t0, 3)
    out["peak_rss_mib"] = peak_rss_mib()
    out["baseline_rss_mib"] = baseline  # the worker itself with edgeemo (onnxruntime, OpenCV, numpy) imported
    return out


def main() -> None:
    config = json.loads(sys.stdin.read())
    result = run_config(config)
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
