"""Whether this machine's cores are really free right now: the same small model on one thread and on all.

On the first 2-core development VM (AMD), neighbours on the host took a core's worth of vector throughput away
for minutes at a time, invisibly to ``top``, the load average and the steal counter: a 2-thread session then ran
no faster than a 1-thread one (and at batch 1, slower). The harness runs this probe before every configuration and
records it, so a row measured while the cores were contended is marked instead of taken at face value.

The probe is taken again just after the configuration (``core_probe_after``), and a row is marked only when
both probes read contended. On the 2-core Intel VM of 2026-11-29 the speed-up changed within a second:
``edgeemo bench probe --seconds 120`` (187 probes, 0.5 s apart) gave it an autocorrelation of 0.22
from one probe to the next and none two probes apart, and the all-core time's median was 2.26-2.58 ms in the
speed-up bands with no order to it; the speed-up followed the single-thread time instead (3.00 ms below
1.3x, 4.34 ms above 1.7x). One probe before a run of several seconds therefore said little about the run.
Requiring the state before and after keeps the mark for the minutes-long contention it was made for (the AMD
VM) and drops the coin flips; the report counts how often the two probes disagreed.

The probe is the shipped mini-Xception (the portable ``model.onnx``) at batch 8 on a 1-thread and an all-core
session with onnxruntime's default (spinning) threads, as the measured sessions run. On free cores the
all-core session is nearly ``cores`` times faster; a ratio near 1 means about one core was available. (With
spinning off the ratio is ~1.3 even on free cores, so it would not tell the two states apart.)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeemo.runtime.session import usable_cores

CONTENDED_BELOW = 1.5  # all-core speed-up under which a row is marked as measured on contended cores


@dataclass(frozen=True)
class CoreProbe:
    cores: int
    one_thread_ms: float
    all_threads_ms: float

    @property
    def speedup(self) -> float:
        return self.one_thread_ms / self.all_threads_ms if self.all_threads_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": round(self.speedup, 2)}


class Prober:
    """Two sessions made once; :meth:`probe` takes ~0.1 s."""

    def __init__(self, calls: int = 20) -> None:
        import onnxruntime as ort

        from edgeemo.runtime.assets import resolve_model

        self.cores = usable_cores()
        self.calls = calls
        path = str(resolve_model("mini-xception"))

        def session(threads: int) -> Any:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.log_severity_level = 3
            return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

        self._one, self._all = session(1), session(self.cores)
        inp = self._one.get_inputs()[0]
        self._feed = {inp.name: np.random.default_rng(0).random([8, *inp.shape[1:]]).astype(np.float32)}

    def _median_ms(self, session: Any) -> float:
        for _ in range(3):
            session.run(None, self._feed)
        times = []
        for _ in range(self.calls):
            t0 = time.perf_counter()
            session.run(None, self._feed)
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1e3)

    def probe(self) -> CoreProbe:
        one = self._median_ms(self._one)
        every = self._median_ms(self._all)
        return CoreProbe(self.cores, round(one, 3), round(every, 3))


def probe_contended(probe: dict[str, Any] | None) -> bool:
    """Whether one recorded probe (:meth:`CoreProbe.to_dict`) read contended cores."""
    return bool(probe) and probe["cores"] > 1 and probe["speedup"] < CONTENDED_BELOW  # type: ignore[index]


def contended(result: dict[str, Any]) -> bool:
    """Whether a harness result was measured on contended cores: its probes before and after both say so.

    Results written before the after-probe existed carry only ``core_probe`` and are judged by it alone.
    """
    before = result.get("core_probe")
    if not probe_contended(before):
        return False
    return "core_probe_after" not in result or probe_contended(result["core_probe_after"])


def probes_disagree(result: dict[str, Any]) -> bool:
    """Whether the state of the cores changed during a result's run (one probe contended, the other not)."""
    if not result.get("core_probe") or not result.get("core_probe_after"):
        return False
    return probe_contended(result["core_probe"]) != probe_contended(result["core_probe_after"])


def stability(probes: list[CoreProbe], lags: tuple[int, ...] = (1, 2, 5)) -> dict[str, Any]:
    """How long the cores' state lasts: autocorrelation of the probe readings at ``lags`` (in probes), and the
    all-core time per speed-up band (does a low speed-up mean slow multi-threaded runs?)."""
    one = np.array([p.one_thread_ms for p in probes])
    every = np.array([p.all_threads_ms for p in probes])
    ratio = one / every

    def autocorr(x: np.ndarray, k: int) -> float | None:
        if len(x) <= k + 2 or x[:-k].std() == 0 or x[k:].std() == 0:
            return None
        return round(float(np.corrcoef(x[:-k], x[k:])[0, 1]), 2)

    bands = []
    for lo, hi in ((0.0, 1.3), (1.3, CONTENDED_BELOW), (CONTENDED_BELOW, 1.7), (1.7, float("inf"))):
        sel = (ratio >= lo) & (ratio < hi)
        if sel.any():
            bands.append(
                {
                    "speedup": f"{lo:g}-{hi:g}",
                    "probes": int(sel.sum()),
                    "one_thread_ms_median": round(float(np.median(one[sel])), 3),
                    "all_threads_ms_median": round(float(np.median(every[sel])), 3),
                }
            )
    return {
        "probes": len(probes),
        "autocorrelation": {
            name: {str(k): autocorr(x, k) for k in lags}
            for name, x in (("speedup", ratio), ("one_thread_ms", one), ("all_threads_ms", every))
        },
        "bands": bands,
    }


def watch(seconds: float, interval: float = 0.5) -> list[CoreProbe]:
    """Probe every ``interval`` seconds for ``seconds`` (at least once)."""
    prober = Prober()
    probes = [prober.probe()]
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        time.sleep(interval)
        probes.append(prober.probe())
    return probes
