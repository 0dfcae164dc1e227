"""Subprocess entry point: run one :class:`~edgeemo.bench.plan.Config` read as JSON from stdin.

Prints one line ``EDGEEMO-BENCH-RESULT <json>`` on stdout with the runner's data, the status
(``ok`` | ``skipped`` | ``error``) and the process's peak resident memory, which is why every configuration
runs in a fresh interpreter: the peak belongs to that configuration alone.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
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


def run_config(config: dict[str, Any]) -> dict[str, Any]:
    from edgeemo.bench.plan import Skip

    module_name, _, func_name = config["runner"].partition(":")
    baseline = peak_rss_mib()
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    try:
        func = getattr(importlib.import_module(module_name), func_name)
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
    for p in config.get("sys_path", []):
        if p not in sys.path:
            sys.path.insert(0, p)
    result = run_config(config)
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
