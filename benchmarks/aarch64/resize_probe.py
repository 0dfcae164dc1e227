"""Which OpenCV resize / warp paths give the same values on x86 and aarch64.

Run it on both sides (under qemu-aarch64 with the sysroot's Python, as run.sh does), then compare:

    python resize_probe.py dump x86.npz
    qemu-aarch64 -cpu neoverse-n1 -L SYSROOT SYSROOT/usr/bin/python3.11 resize_probe.py dump arm.npz
    python resize_probe.py compare x86.npz arm.npz [-o resize_probe.json]

The faces are 1,000 FER2013 PublicTest crops (48x48 gray, resized to mini-Xception's 64x64 and down to 30x30);
the frame is a shared group photo (colour conversion, BlazeFace's bilinear warp into its 128x128 square, and an
area shrink at a non-integer factor as in the detector's antialias option).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def dump(out: Path) -> None:
    files = sorted((SHARED / "fer2013-publictest").glob("*/*.png"))[::3][:1000]
    faces = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    frame = cv2.imread(str(SHARED / "photos" / "facenet-pytorch_multiface.jpg"))

    def each(fn) -> np.ndarray:
        return np.stack([fn(f) for f in faces])

    warp = np.array([[128 / 1200, 0, 0], [0, 128 / 1200, 30.0]])
    arrays = {
        "face 48->64 uint8 INTER_LINEAR": each(lambda f: cv2.resize(f, (64, 64), interpolation=cv2.INTER_LINEAR)),
        "face 48->64 uint8 INTER_LINEAR_EXACT": each(
            lambda f: cv2.resize(f, (64, 64), interpolation=cv2.INTER_LINEAR_EXACT)
        ),
        "face 48->64 float32 INTER_LINEAR": each(
            lambda f: cv2.resize(f.astype(np.float32), (64, 64), interpolation=cv2.INTER_LINEAR)
        ),
        "face 48->64 uint8 INTER_CUBIC": each(lambda f: cv2.resize(f, (64, 64), interpolation=cv2.INTER_CUBIC)),
        "face 48->64 float32 INTER_CUBIC": each(
            lambda f: cv2.resize(f.astype(np.float32), (64, 64), interpolation=cv2.INTER_CUBIC)
        ),
        "face 48->30 uint8 INTER_AREA": each(lambda f: cv2.resize(f, (30, 30), interpolation=cv2.INTER_AREA)),
        "face 48->30 float32 INTER_AREA": each(
            lambda f: cv2.resize(f.astype(np.float32), (30, 30), interpolation=cv2.INTER_AREA)
        ),
        "photo uint8 BGR2GRAY": cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY),
        "photo uint8 warpAffine bilinear 128x128 (BlazeFace input)": cv2.warpAffine(
            frame, warp, (128, 128), flags=cv2.INTER_LINEAR
        ),
        "photo uint8 INTER_AREA 1200->300 (antialias)": cv2.resize(frame, (300, 158), interpolation=cv2.INTER_AREA),
    }
    np.savez(out, **arrays)
    print(f"{len(arrays)} arrays, opencv {cv2.__version__}", file=sys.stderr)


def compare(a_path: Path, b_path: Path, out: Path | None) -> None:
    a, b = np.load(a_path), np.load(b_path)
    rows = []
    for k in a.files:
        d = np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))
        rows.append({"path": k, "values_differing": float(np.mean(d > 0)), "max_abs_diff": float(d.max())})
        print(f"{k:58s} {rows[-1]['values_differing'] * 100:7.3f} % differ, max {rows[-1]['max_abs_diff']:.3g}")
    if out:
        out.write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="task", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("-o", "--out", type=Path)
    args = ap.parse_args()
    if args.task == "dump":
        dump(args.out)
    else:
        compare(args.a, args.b, args.out)


if __name__ == "__main__":
    main()
