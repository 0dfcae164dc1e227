"""Latency statistics over properly sorted samples, and the two ways of collecting them.

``time_calls`` times one callable (warm-up, then repeated calls within a time budget);
``time_batches_in_passes`` does so for several batch sizes in passes and keeps each one's best pass;
``interleave`` times several callables in alternating blocks so that slow drifts of a shared machine (other
processes, frequency scaling, thermal state) fall on every contender alike, which makes their ratio trustworthy
even when the absolute figures are noisy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class TimingStats:
    """Per-call latency in milliseconds for calls of ``batch`` items each."""

    batch: int
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    mean_ms: float
    fast90_mean_ms: float  # mean of the fastest 90% of calls: robust to the slow tail of a shared machine
    items_per_s: float  # batch / fast90_mean
    pass_fast90_ms: tuple[float, ...] = ()  # fast-90% mean of each pass, when timed in passes (the best is kept)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TimingStats:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (0 <= q <= 100) of an already sorted, non-empty list."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_s: list[float], batch: int) -> TimingStats:
    """Statistics of per-call durations in seconds; the samples are sorted here, whatever their order."""
    if not samples_s:
        raise ValueError("no timing samples")
    ms = sorted(s * 1e3 for s in samples_s)
    keep = max(1, math.ceil(len(ms) * 0.9))
    fast = sum(ms[:keep]) / keep
    return TimingStats(
        batch=batch,
        runs=len(ms),
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        min_ms=ms[0],
        mean_ms=sum(ms) / len(ms),
        fast90_mean_ms=fast,
        items_per_s=batch * 1e3 / fast if fast > 0 else float("inf"),
    )


def time_calls(
    fn: Callable[[], object],
    *,
    warmup: int = 5,
    min_runs: int = 10,
    max_runs: int = 1000,
    budget_s: float = 1.0,
) -> list[float]:
    """Durations (s) of repeated ``fn()`` calls after ``warmup`` untimed ones.

    Runs at least ``min_runs`` and at most ``max_runs`` calls, stopping early once ``budget_s`` is spent.
    """
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    clock = time.perf_counter
    deadline = clock() + budget_s
    while len(samples) < max_runs:
        t0 = clock()
        fn()
        samples.append(clock() - t0)
        if len(samples) >= min_runs and clock() >= deadline:
            break
    return samples


def time_batches_in_passes(
    fns: Mapping[int, Callable[[], object]], *, passes: int = 1, budget_s: float = 1.0, **timing: Any
) -> dict[int, TimingStats]:
    """Time each batch size's callable in ``passes`` passes over all of them (each pass gets ``budget_s /
    passes`` per batch size) and keep, per batch size, the pass with the lowest fast-90% mean.

    On a shared or virtual machine, neighbours slow a process down for seconds at a time; spreading the calls
    over passes lets one quiet pass show the configuration's own speed. Every pass's fast-90% mean is kept in
    ``TimingStats.pass_fast90_ms`` so the spread stays visible.
    """
    passes = max(1, passes)
    per_pass: dict[int, list[TimingStats]] = {b: [] for b in fns}
    for k in range(passes):
        for b, fn in fns.items():
            extra = {} if k == 0 else {"warmup": min(2, int(timing.get("warmup", 5)))}
            samples = time_calls(fn, **{**timing, **extra, "budget_s": budget_s / passes})
            per_pass[b].append(summarize(samples, b))
    out = {}
    for b, stats in per_pass.items():
        best = min(stats, key=lambda t: t.fast90_mean_ms)
        out[b] = replace(best, pass_fast90_ms=tuple(round(t.fast90_mean_ms, 4) for t in stats))
    return out


def block_calls(per_round: int, batch: int) -> int:
    """Calls per interleaved block: ``per_round`` up to batch 8, fewer for larger batches (at least 3)."""
    return max(3, round(per_round * 8 / max(8, batch)))


def interleave(
    fns: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 10,
    per_round: int = 10,
    warmup: int = 5,
    gap_s: float = 0.02,
    rewarm: int | None = None,
) -> dict[str, list[float]]:
    """Durations (s) of each callable, timed in ``rounds`` alternating blocks of ``per_round`` calls.

    The order of the contenders is reversed every other round so that neither always runs first. Before each
    block the process sleeps ``gap_s`` and makes ``rewarm`` untimed calls (default: as many as it times):
    thread pools spin for a while after their last call, so without the pause the previous contender's threads
    would steal the cores from the next one, and a runtime whose threads were idle is slow for its first calls
    (TFLite's more than onnxruntime's: blocks of 10 batch-1 calls without either measure timed TFLite at 0.57 ms
    against 0.25-0.32 ms with them, on a machine where it runs 0.20 ms in a long loop).
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    out: dict[str, list[float]] = {n: [] for n in names}
    clock = time.perf_counter
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn = fns[name]
            time.sleep(gap_s)
            for _ in range(per_round if rewarm is None else rewarm):
                fn()
            for _ in range(per_round):
                t0 = clock()
                fn()
                out[name].append(clock() - t0)
    return out
