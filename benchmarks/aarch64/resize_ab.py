"""Before/after of the platform-stable resize in EmotionModel.preprocess, on this machine (native x86).

Accuracy of every shipped precision on the whole FER2013 PublicTest with the uint8 resize it replaced and with
today's float32 resize, and the time per preprocessed batch of both, interleaved round by round (timings on a
shared VM swing, so only the ratio within one run means something).

    python benchmarks/aarch64/resize_ab.py [--rounds 30] [-o results.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edgeemo.runtime.model import EmotionModel, _to_colour
from edgeemo.runtime.session import SessionOptions

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"


def preprocess_uint8(model: EmotionModel, crops: Sequence[np.ndarray]) -> np.ndarray:
    """The replaced preprocessing: OpenCV's uint8 resize, then the affine normalisation (mini-Xception: NHWC)."""
    spec = model.spec.input
    planes = np.empty((len(crops), spec.height, spec.width, spec.channels), dtype=np.uint8)
    for k, crop in enumerate(crops):
        img = _to_colour(crop, spec.colour)
        if img.shape[:2] != (spec.height, spec.width):
            img = cv2.resize(img, (spec.width, spec.height), interpolation=model._interp)
        planes[k] = img.reshape(spec.height, spec.width, spec.channels)
    scale, offset = model._affine
    return planes.astype(np.float32) * scale + offset


def accuracy(model: EmotionModel, batch: np.ndarray, truth: np.ndarray) -> tuple[float, np.ndarray]:
    parts = [model.run_batch(batch[i : i + 256]).probabilities for i in range(0, len(batch), 256)]
    labels = np.concatenate(parts).argmax(1)
    return float(np.mean(labels == truth)), labels


def timings(model: EmotionModel, crops: Sequence[np.ndarray], rounds: int) -> dict[str, float]:
    """Median ms per batch of both preprocessings, alternating which goes first."""
    times: dict[str, list[float]] = {"uint8": [], "float32": []}
    fns = {"uint8": lambda: preprocess_uint8(model, crops), "float32": lambda: model.preprocess(crops)}
    for r in range(rounds):
        for name in ("uint8", "float32") if r % 2 == 0 else ("float32", "uint8"):
            t0 = time.perf_counter()
            for _ in range(20):
                fns[name]()
            times[name].append((time.perf_counter() - t0) / 20 * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("-o", "--out", type=Path)
    args = ap.parse_args()
    fer = SHARED / "fer2013-publictest"
    rows = list(csv.DictReader((fer / "labels.csv").open()))
    faces = [cv2.imread(str(fer / r["path"]), cv2.IMREAD_UNCHANGED) for r in rows]
    truth = np.array([int(r["label"]) for r in rows])
    opts = SessionOptions(cpu_layout="portable")
    result: dict[str, object] = {"faces": len(faces), "accuracy": {}}
    fp32 = EmotionModel.load("mini-xception", "fp32", opts)
    old, new = preprocess_uint8(fp32, faces), fp32.preprocess(faces)
    result["max_abs_input_change"] = float(np.abs(old - new).max())
    for precision in ("fp32", "fp16", "int8"):
        m = fp32 if precision == "fp32" else EmotionModel.load("mini-xception", precision, opts)
        a_old, l_old = accuracy(m, old, truth)
        a_new, l_new = accuracy(m, new, truth)
        result["accuracy"][precision] = {
            "uint8_resize": a_old,
            "float32_resize": a_new,
            "label_agreement": float(np.mean(l_old == l_new)),
        }
    photo = cv2.imread(str(SHARED / "photos" / "facenet-pytorch_multiface.jpg"))
    photo_crops = [photo[y : y + 160, x : x + 140] for x, y in ((100, 100), (400, 120), (700, 90), (900, 150))] * 2
    result["ms_per_batch"] = {
        "8 FER faces (48x48 gray)": timings(fp32, faces[:8], args.rounds),
        "32 FER faces (48x48 gray)": timings(fp32, faces[:32], args.rounds),
        "8 photo crops (140x160 BGR)": timings(fp32, photo_crops, args.rounds),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
