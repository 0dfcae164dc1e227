"""INT8 parity per instruction set: one model's FP32 and INT8 files run natively and under CPU emulation.

onnxruntime picks its integer kernels by instruction set at run time (AVX-512 VNNI, AVX-512BW, AVX2, Arm dot
product), and without VNNI its u8 x s8 kernels add products pairwise in saturating int16 (see
models/mini-xception/INT8.md): an INT8 file has to be checked on each path. ``qemu-x86_64 -cpu Haswell``
(Debian ``qemu-user``) runs the AVX2 kernels on any x86 machine; speed under emulation means nothing.

Per instruction set the report gives FP32 and INT8 accuracy, INT8's top-1 agreement with FP32 on that CPU, and
the agreement of INT8's labels with the native INT8 labels (the same file must answer the same everywhere).

    python -m edgeemo_export.isa_parity models/mini-xception --faces ../shared/data/fer2013-publictest --write-card
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeemo.bench.machine import cpu_features
from edgeemo.errors import EdgeemoError, ExportError, InputError
from edgeemo.runtime.assets import PRECISION_SUFFIX
from edgeemo.runtime.model import EmotionModel
from edgeemo_export.faceset import FaceSet, load_face_set

REPO = Path(__file__).resolve().parents[1]
ISA_REPORT = "int8_isa.json"
EMULATOR = "qemu-x86_64"
FER_PUBLICTEST = REPO.parent / "shared" / "data" / "fer2013-publictest"
DEFAULT_EMULATION = ("Haswell",)  # AVX2 + FMA, no AVX-512, no VNNI: the saturating u8 x s8 path


@dataclass(frozen=True)
class IsaResult:
    """One instruction set: ``cpu`` is ``native`` or the emulated CPU model; ``features`` what the process saw."""

    cpu: str
    features: dict[str, Any]
    fp32_accuracy: float | None
    int8_accuracy: float | None
    int8_agreement: float  # top-1 agreement of INT8 with FP32, both run on this CPU
    int8_mean_abs_dprob: float
    int8_same_labels_as_native: float  # INT8 labels here vs INT8 labels natively


@dataclass(frozen=True)
class IsaParityReport:
    model: str
    faces: str
    n_faces: int
    int8_graph_sha256: str  # of the INT8 graph without its metadata (see graph_sha256)
    onnxruntime: str
    fp32_on_each_cpu: bool  # False: emulated INT8 was compared with native FP32
    results: tuple[IsaResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def emulator(cpu: str) -> list[str] | None:
    """The command prefix that runs this Python's x86-64 binaries as ``cpu``; None where it cannot (no
    ``qemu-x86_64`` on PATH, or not an x86-64 host)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    exe = shutil.which(EMULATOR)
    return [exe, "-cpu", cpu] if exe else None


def probabilities(paths: Sequence[Path], batch: np.ndarray, cpu: str = "native") -> tuple[dict[str, Any], list]:
    """CPU features and emotion probabilities of each model on ``batch``, run here or under emulation as ``cpu``."""
    if cpu == "native":
        return cpu_features(), [_run(p, batch) for p in paths]
    prefix = emulator(cpu)
    if prefix is None:
        raise ExportError(f"cannot emulate CPU {cpu!r}: needs an x86-64 host with {EMULATOR} (Debian qemu-user)")
    with tempfile.TemporaryDirectory(prefix="edgeemo-isa-") as tmp:
        src, dst = Path(tmp) / "batch.npy", Path(tmp) / "out.npz"
        np.save(src, batch)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        worker = ["-m", "edgeemo_export.isa_parity", "--worker", str(src), str(dst), *map(str, paths)]
        cmd = [*prefix, sys.executable, *worker]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not dst.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ExportError(f"emulated run as {cpu} failed (exit {done.returncode}): {last}")
        with np.load(dst) as out:
            return json.loads(str(out["features"])), [out[f"p{k}"] for k in range(len(paths))]


def _run(path: Path, batch: np.ndarray) -> np.ndarray:
    probs = EmotionModel(path).run_batch(batch).probabilities
    if probs is None:
        raise ExportError(f"{path}: no emotion head to compare")
    return probs


def _worker(src: Path, dst: Path, paths: Sequence[str]) -> None:
    batch = np.load(src)
    features, probs = probabilities([Path(p) for p in paths], batch)
    np.savez(dst, features=json.dumps(features), **{f"p{k}": p for k, p in enumerate(probs)})


def isa_parity(
    folder: Path, faces: FaceSet, emulate: Sequence[str] = DEFAULT_EMULATION, fp32_emulated: bool = True
) -> IsaParityReport:
    """Compare ``folder``'s ``model.int8.onnx`` with its ``model.onnx`` natively and on each emulated CPU.

    With ``fp32_emulated=False`` the emulated INT8 is compared with native FP32 (half the emulation time; FP32
    gives the same labels on every x86 path we measured).
    """
    fp32_path, int8_path = folder / PRECISION_SUFFIX["fp32"], folder / PRECISION_SUFFIX["int8"]
    for p in (fp32_path, int8_path):
        if not p.is_file():
            raise InputError(f"{p}: not found (per-ISA parity needs the FP32 and INT8 files of one model)")
    fp32 = EmotionModel(fp32_path)
    batch = fp32.preprocess(list(faces.images))
    index = {c: k for k, c in enumerate(fp32.spec.classes)}
    truth = np.array([index.get(label, -1) if label else -1 for label in faces.labels])
    labelled = truth >= 0

    def accuracy(p: np.ndarray) -> float | None:
        return float(np.mean(p.argmax(1)[labelled] == truth[labelled])) if labelled.any() else None

    features, (p32, p8) = probabilities([fp32_path, int8_path], batch)
    native8 = p8.argmax(1)
    runs = [("native", features, p32, p8)]
    for cpu in emulate:
        paths = [fp32_path, int8_path] if fp32_emulated else [int8_path]
        feats, probs = probabilities(paths, batch, cpu)
        runs.append((cpu, feats, probs[0] if fp32_emulated else p32, probs[-1]))
    results = tuple(
        IsaResult(
            cpu=cpu,
            features=feats,
            fp32_accuracy=accuracy(a),
            int8_accuracy=accuracy(b),
            int8_agreement=float(np.mean(a.argmax(1) == b.argmax(1))),
            int8_mean_abs_dprob=float(np.abs(a - b).mean()),
            int8_same_labels_as_native=float(np.mean(b.argmax(1) == native8)),
        )
        for cpu, feats, a, b in runs
    )
    import onnxruntime

    return IsaParityReport(
        fp32.spec.name,
        faces.source,
        len(batch),
        graph_sha256(int8_path),
        onnxruntime.__version__,
        fp32_emulated,
        results,
    )


def graph_sha256(path: Path) -> str:
    """sha256 of a model without its metadata: what the kernels compute, so figures survive metadata edits."""
    import hashlib

    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()


def _f4(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", help="model folder with model.onnx and model.int8.onnx")
    parser.add_argument("--faces", type=Path, required=False, help="labelled face set (default: FER PublicTest)")
    parser.add_argument("--limit", type=int, default=None, help="use this many evenly spaced faces")
    parser.add_argument("--emulate", action="append", help="CPU model for qemu-x86_64 (repeatable; default Haswell)")
    parser.add_argument("--write-card", action="store_true", help=f"write {ISA_REPORT} and refresh the card")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(Path(args.worker[0]), Path(args.worker[1]), args.worker[2:])
        return 0
    if args.folder is None:
        parser.error("give the model folder")
    try:
        faces = load_face_set(args.faces or FER_PUBLICTEST, args.limit)
        if args.faces is None:
            faces = dataclasses.replace(faces, source="../shared/data/fer2013-publictest")  # not this machine's path
        report = isa_parity(args.folder, faces, tuple(args.emulate or DEFAULT_EMULATION))
        if args.write_card:
            from edgeemo_export.card import CARD, refresh_card

            (args.folder / ISA_REPORT).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
            if (args.folder / CARD).is_file():
                refresh_card(args.folder)
    except EdgeemoError as exc:
        print(f"isa_parity: error: {exc}", file=sys.stderr)
        return exc.exit_code
    for r in report.results:
        print(
            f"{r.cpu:10s} int8 acc {_f4(r.int8_accuracy)} fp32 acc {_f4(r.fp32_accuracy)} "
            f"agreement {r.int8_agreement:.4f} "
            f"same labels as native {r.int8_same_labels_as_native:.4f} cpuid {','.join(r.features['cpuid'] or [])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
