"""One side of the aarch64 comparison: runs under qemu-aarch64 and natively, with only the runtime's packages.

    python worker.py versions OUT.json
    python worker.py parity OUT.npz --faces N --thesis-faces M --fp16-faces K [--models a,b] [--precisions fp32,int8]
    python worker.py board [--device tensorrt] [--fer DIR] [-o board.json]

``board`` is the check for a real Jetson: mini-Xception's precisions on the report's FER subset, on the given
device (strict: no silent CPU fallback), against the x86 labels in benchmarks/results/aarch64/report.json.

``parity`` runs the FER2013 PublicTest subset (every k-th face of labels.csv, so every class is in it) through
each shipped model and precision on the portable ``model.onnx`` layout, one intra-op thread, and saves every
output head, the labels and a digest of the preprocessed batch.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import json
import platform
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
FER = REPO.parent / "shared" / "data" / "fer2013-publictest"


def fer_subset(count: int, fer: Path = FER) -> tuple[list[np.ndarray], np.ndarray]:
    rows = list(csv.DictReader((fer / "labels.csv").open()))
    step = max(1, len(rows) // count)
    rows = rows[::step][:count]
    faces = [cv2.imread(str(fer / r["path"]), cv2.IMREAD_UNCHANGED) for r in rows]
    return faces, np.array([int(r["label"]) for r in rows])


def versions(out: Path) -> None:
    import onnxruntime as ort

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith(("model name", "CPU part"))), "")
    except OSError:
        pass
    info = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu": cpu,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "packages": {
            p: _version(p) for p in ("opencv-python-headless", "onnxruntime", "av", "typer", "rich", "dlib-bin")
        },
    }
    out.write_text(json.dumps(info, indent=2) + "\n")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def parity(out: Path, faces: int, thesis_faces: int, fp16_faces: int, models: list[str], precisions: list[str]) -> None:
    from edgeemo.errors import EdgeemoError
    from edgeemo.runtime.assets import resolve_model
    from edgeemo.runtime.model import EmotionModel
    from edgeemo.runtime.session import SessionOptions

    opts = SessionOptions(cpu_layout="portable", intra_op_threads=1)
    arrays: dict[str, np.ndarray] = {}
    for name in models:
        all_crops, truth = fer_subset(faces if name == "mini-xception" else thesis_faces)
        arrays[f"{name}/truth"] = truth
        for precision in precisions:
            try:
                resolve_model(name, precision)
            except EdgeemoError:
                continue  # this model ships no file of that precision
            # FP16 arithmetic is emulated in software (several times FP32's cost): every k-th face of the subset
            index = np.arange(0, len(all_crops), max(1, len(all_crops) // fp16_faces) if precision == "fp16" else 1)
            crops = [all_crops[i] for i in index]
            arrays[f"{name}/{precision}/index"] = index
            model = EmotionModel.load(name, precision, opts)
            batch = model.preprocess(crops)
            arrays[f"{name}/{precision}/input_sha256"] = np.frombuffer(
                hashlib.sha256(batch.tobytes()).digest(), dtype=np.uint8
            )
            parts = [model.run_batch(batch[i : i + 64]) for i in range(0, len(batch), 64)]
            for head in parts[0].heads:
                arrays[f"{name}/{precision}/{head}"] = np.concatenate([p.heads[head] for p in parts])
            print(f"{platform.machine()}: {name} {precision} {len(crops)} faces", file=sys.stderr, flush=True)
    np.savez(out, **arrays)


def board(reference: Path, device: str, fer: Path, out: Path | None) -> None:
    from edgeemo.runtime.model import EmotionModel
    from edgeemo.runtime.session import SessionOptions

    rows = [r for r in json.loads(reference.read_text())["parity"] if "labels_x86" in r]
    all_crops, all_truth = fer_subset(max(r["faces"] for r in rows), fer)
    opts = SessionOptions(device=device, strict_device=device != "auto", cpu_layout="portable")
    results = []
    for r in rows:
        stride = r.get("face_stride", 1)
        crops, truth = all_crops[::stride], all_truth[::stride]
        model = EmotionModel.load(r["model"], r["precision"], opts)
        batch = model.preprocess(crops)
        probs = np.concatenate([model.run_batch(batch[i : i + 64]).probabilities for i in range(0, len(batch), 64)])
        labels, ref = probs.argmax(1), np.array([int(c) for c in r["labels_x86"]])
        results.append(
            {
                "model": r["model"],
                "precision": r["precision"],
                "provider": model.providers[0],
                "faces": len(labels),
                "accuracy": float(np.mean(labels == truth)),
                "accuracy_x86": r["accuracy_x86"],
                "labels_equal_to_x86": float(np.mean(labels == ref)),
            }
        )
        x = results[-1]
        print(
            f"{x['model']} {x['precision']} on {x['provider']}: accuracy {x['accuracy']:.4f} "
            f"(x86 {x['accuracy_x86']:.4f}), labels equal to x86 on {x['labels_equal_to_x86'] * 100:.2f} % "
            f"of {x['faces']} faces"
        )
    if out:
        out.write_text(json.dumps({"machine": platform.machine(), "results": results}, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="task", required=True)
    v = sub.add_parser("versions")
    v.add_argument("out", type=Path)
    p = sub.add_parser("parity")
    p.add_argument("out", type=Path)
    p.add_argument("--faces", type=int, default=1000)
    p.add_argument("--thesis-faces", type=int, default=10)
    p.add_argument("--fp16-faces", type=int, default=200, help="at most this many of the subset for FP16")
    p.add_argument("--models", default="mini-xception,thesis-mobilenet,thesis-fused,thesis-valence,thesis-arousal")
    p.add_argument("--precisions", default="fp32,fp16,int8")
    b = sub.add_parser("board")
    b.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or tensorrt (not auto: fail rather than fall back)"
    )
    b.add_argument("--fer", type=Path, default=FER, help="FER2013 PublicTest folder with labels.csv")
    b.add_argument("--reference", type=Path, default=REPO / "benchmarks" / "results" / "aarch64" / "report.json")
    b.add_argument("-o", "--out", type=Path)
    args = ap.parse_args()
    if args.task == "versions":
        versions(args.out)
    elif args.task == "board":
        from edgeemo.errors import EdgeemoError

        try:
            board(args.reference, args.device, args.fer, args.out)
        except EdgeemoError as e:  # e.g. no TensorRT in this onnxruntime build: one line, not a traceback
            raise SystemExit(f"board check: {e}") from e
    else:
        parity(
            args.out, args.faces, args.thesis_faces, args.fp16_faces, args.models.split(","), args.precisions.split(",")
        )


if __name__ == "__main__":
    main()
