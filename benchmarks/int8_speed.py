"""INT8 vs FP32 speed on this CPU, interleaved in one run: the shipped INT8 file against FP32 and against the same
recipe with int8 weights (U8S8, the file shipped before issue 14) and with 7-bit int8 weights (reduce_range).

Reports the CPU features the process ran with (CPUID; under qemu the timings are meaningless and the script says
so) and, per batch size, the median ms per face and the median over rounds of the per-round ratio to FP32.

    python benchmarks/int8_speed.py [--rounds 15] [--batches 1 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgeemo.bench.machine import cpu_features  # noqa: E402
from edgeemo.bench.stats import interleave  # noqa: E402
from edgeemo.runtime.model import EmotionModel  # noqa: E402
from edgeemo.runtime.session import SessionOptions  # noqa: E402
from edgeemo_export.calibration import default_calibration_dir, load_calibration_set  # noqa: E402
from edgeemo_export.int8 import DEFAULT_OPTIONS, quantize_int8  # noqa: E402

FOLDER = REPO / "models" / "mini-xception"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)
    cpu = cpu_features()
    faces = list(load_calibration_set(default_calibration_dir()).images)
    with tempfile.TemporaryDirectory(prefix="int8-speed-") as tmp:
        variants = {
            "int8 weights (U8S8)": dataclasses.replace(DEFAULT_OPTIONS, weight_type="int8"),
            "7-bit int8 weights (reduce_range)": dataclasses.replace(
                DEFAULT_OPTIONS, weight_type="int8", reduce_range=True
            ),
        }
        opts = SessionOptions(device="cpu", cpu_layout="portable")
        models = {
            "fp32": EmotionModel(FOLDER / "model.onnx", opts),
            "int8 shipped": EmotionModel(FOLDER / "model.int8.onnx", opts),
        }
        for k, (name, options) in enumerate(variants.items()):
            path = Path(tmp) / f"v{k}.onnx"
            quantize_int8(FOLDER / "model.onnx", path, options=options)
            models[name] = EmotionModel(path, opts)
        rows = []
        for batch in args.batches:
            x = models["fp32"].preprocess((faces * (batch // len(faces) + 1))[:batch])
            fns = {n: (lambda m=m, x=x: m.session.run(None, {m.spec.input.name: x})) for n, m in models.items()}
            times = interleave(fns, rounds=args.rounds, per_round=args.per_round)
            per_round = {n: _per_round(t, args.rounds) for n, t in times.items()}
            for name in models:
                ratio = statistics.median(a / b for a, b in zip(per_round[name], per_round["fp32"]))
                ms = 1000 * statistics.median(times[name]) / batch
                rows.append({"batch": batch, "model": name, "ms_per_face": ms, "x_fp32": ratio})
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    doc = {"cpu": cpu, "load_average_at_end": load, "rounds": args.rounds, "per_round": args.per_round, "rows": rows}
    if cpu["emulated"]:
        print("emulated CPU: these timings measure the emulator, not the kernels")
    print(f"CPUID: {' '.join(cpu['cpuid'] or [])}; load average at the end {load}")
    for r in rows:
        print(f"batch {r['batch']:3d} {r['model']:34s} {r['ms_per_face']:8.4f} ms/face  x{r['x_fp32']:.2f} vs fp32")
    if args.json_out:
        args.json_out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def _per_round(samples: list[float], rounds: int) -> list[float]:
    """Median call time of each round (``interleave`` returns the rounds' calls one after the other)."""
    n = len(samples) // rounds
    return [statistics.median(samples[k * n : (k + 1) * n]) for k in range(rounds)]


if __name__ == "__main__":
    raise SystemExit(main())
