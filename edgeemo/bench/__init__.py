"""Benchmark harness: timing statistics, machine facts, isolated runs per configuration, reports.

Only the lean install is needed here (onnxruntime, OpenCV, numpy); the TensorFlow / TFLite comparisons live in
the repository's ``benchmarks/`` folder and plug in through :data:`edgeemo.bench.plan.Config.runner`.
"""

from __future__ import annotations

from edgeemo.bench.stats import TimingStats, interleave, summarize, time_calls

__all__ = ["TimingStats", "interleave", "summarize", "time_calls"]
