"""Where onnxruntime loses time: session settings and graph rewrites, compared interleaved in one process.

    python -m benchmarks.ort_study --model mini-xception --batch 1 --batch 32
    python -m benchmarks.ort_study --model thesis-mobilenet --rounds 20 --out benchmarks/results/ort_study.json

Every variant runs the same input in alternating blocks. Two clocks are reported: wall time (what a user sees;
only trustworthy on a quiet machine) and process CPU time per call (robust when other processes share the cores,
and the right measure of work for single-threaded variants; a spinning multi-threaded session also counts its spin
as CPU time). Variants:

- ``edgeemo``: edgeemo's default session (:func:`edgeemo.runtime.session.make_session_options`);
- ``ort-defaults``: a plain ``InferenceSession`` with onnxruntime's defaults;
- ``1-thread``, ``no-spin``, ``block-base-4``, ``denormal-zero``, ``extended-opt`` (no NCHWc layout): one
  setting changed from edgeemo's default;
- ``optimized``: edgeemo's default session on ``edgeemo_export.optimize.optimize_onnx(model)``;
- ``onnxslim``: edgeemo's default session on ``onnxslim.slim(model)`` (when onnxslim is installed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgeemo.bench.machine import machine_facts
from edgeemo.bench.runners import model_inputs
from edgeemo.runtime.assets import resolve_model
from edgeemo.runtime.model import EmotionModel
from edgeemo.runtime.session import SessionOptions, make_session_options

SETTINGS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    # name: (edgeemo SessionOptions fields, extra onnxruntime session config entries)
    "edgeemo": ({}, {}),
    "1-thread": ({"intra_op_threads": 1}, {}),
    "no-spin": ({"intra_op_spinning": False}, {}),
    "block-base-4": ({}, {"session.dynamic_block_base": "4"}),
    "denormal-zero": ({}, {"session.set_denormal_as_zero": "1"}),
    "extended-opt": ({"graph_optimization": "extended"}, {}),
}


def _session(model: bytes | str, fields: dict[str, Any], entries: dict[str, str]) -> ort.InferenceSession:
    so = make_session_options(SessionOptions(device="cpu", **fields))
    for k, v in entries.items():
        so.add_session_config_entry(k, v)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def variants(path: Path) -> dict[str, ort.InferenceSession]:
    out = {name: _session(str(path), f, e) for name, (f, e) in SETTINGS.items()}
    out["ort-defaults"] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    try:
        import onnx

        from edgeemo_export.optimize import optimize_onnx
    except ImportError:
        return out
    proto = onnx.load(str(path))
    out["optimized"] = _session(optimize_onnx(proto).SerializeToString(), {}, {})
    try:
        import onnxslim
    except ImportError:
        return out
    out["onnxslim"] = _session(onnxslim.slim(proto).SerializeToString(), {}, {})
    return out


def study(model_name: str, batches: list[int], rounds: int, per_round_faces: int) -> dict[str, Any]:
    path = resolve_model(model_name)
    model = EmotionModel(path, SessionOptions(device="cpu"))
    sessions = variants(path)
    inputs, source = model_inputs(model, batches)
    name = model.spec.input.name
    results = []
    for b, x in inputs.items():
        feed = {name: x}
        reference = sessions["edgeemo"].run(None, feed)
        per = max(3, per_round_faces // b)
        wall: dict[str, list[float]] = {k: [] for k in sessions}
        cpu: dict[str, list[float]] = {k: [] for k in sessions}
        diff = {}
        for k, s in sessions.items():
            for _ in range(5):
                out = s.run(None, feed)
            diff[k] = max(float(np.abs(o - r).max()) for o, r in zip(out, reference))
        names = list(sessions)
        for r in range(rounds):
            for k in names if r % 2 == 0 else names[::-1]:
                s = sessions[k]
                c0 = time.process_time()
                for _ in range(per):
                    t0 = time.perf_counter()
                    s.run(None, feed)
                    wall[k].append(time.perf_counter() - t0)
                cpu[k].append((time.process_time() - c0) / per)
        rows = {}
        for k in names:
            w = np.sort(wall[k])
            fast = float(w[: max(1, int(len(w) * 0.9))].mean())
            rows[k] = {
                "wall_p50_ms": float(np.median(w)) * 1e3,
                "wall_fast90_ms": fast * 1e3,
                "faces_per_s": b / fast,
                "cpu_ms_per_call": float(np.median(cpu[k])) * 1e3,
                "max_abs_diff_vs_edgeemo": diff[k],
            }
        results.append({"batch": b, "variants": rows})
    return {"model": model_name, "input": source, "rounds": rounds, "batches": results}


def print_study(s: dict[str, Any]) -> None:
    for blk in s["batches"]:
        base = blk["variants"]["edgeemo"]
        print(f"\n{s['model']} batch {blk['batch']}  (rel = variant / edgeemo; below 1 is faster)")
        print(
            f"{'variant':14s} {'wall p50 ms':>11s} {'fast90 ms':>10s} {'faces/s':>9s} {'rel':>5s} "
            f"{'cpu ms':>8s} {'rel':>5s} {'max|diff|':>9s}"
        )
        for k, v in blk["variants"].items():
            print(
                f"{k:14s} {v['wall_p50_ms']:11.3f} {v['wall_fast90_ms']:10.3f} {v['faces_per_s']:9.0f} "
                f"{v['wall_fast90_ms'] / base['wall_fast90_ms']:5.2f} {v['cpu_ms_per_call']:8.3f} "
                f"{v['cpu_ms_per_call'] / base['cpu_ms_per_call']:5.2f} {v['max_abs_diff_vs_edgeemo']:9.2e}"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="model name (repeatable); default: mini-xception")
    ap.add_argument("--batch", action="append", type=int, help="batch size (repeatable); default: 1 8 32")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--faces-per-round", type=int, default=256, help="faces per block (calls = this / batch)")
    ap.add_argument("--out", type=Path, help="write the study as JSON here")
    args = ap.parse_args(argv)
    doc = {"tool": "edgeemo-ort-study", "machine": machine_facts(), "command": sys.argv, "studies": []}
    for m in args.model or ["mini-xception"]:
        s = study(m, args.batch or [1, 8, 32], args.rounds, args.faces_per_round)
        print_study(s)
        doc["studies"].append(s)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
