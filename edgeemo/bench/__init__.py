"""Benchmark harness: timing statistics, machine facts, isolated runs per configuration, reports.

Only the lean install is needed here (onnxruntime, OpenCV, numpy); the TensorFlow / TFLite comparisons live in
a source checkout's ``benchmarks/tf_modes.py`` and plug in as a runner file (``edgeemo bench --tf``).
"""

from __future__ import annotations

from edgeemo.bench.stats import TimingStats, interleave, summarize, time_calls

__all__ = ["TimingStats", "interleave", "summarize", "time_calls"]
