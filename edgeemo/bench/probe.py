"""Whether this machine's cores are really free right now: the same small model on one thread and on all.

On the 2-core development VM, neighbours on the host took a core's worth of vector throughput away for minutes
at a time, invisibly to ``top``, the load average and the steal counter: a 2-thread session then ran no faster
than a 1-thread one (and at batch 1, slower). The harness runs this probe before every configuration and
records it, so a row measured while the cores were contended is marked instead of taken at face value.

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

from edgeemo.session import usable_cores

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

        from edgeemo.assets import resolve_model

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


def contended(result: dict[str, Any]) -> bool:
    """Whether a harness result was measured on contended cores (by the probe taken just before it)."""
    p = result.get("core_probe")
    return bool(p) and p["cores"] > 1 and p["speedup"] < CONTENDED_BELOW
