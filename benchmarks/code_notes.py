"""The figures behind one-line "why" comments in the runtime code (docs/benchmarks.md, "Why the code does it
this way"): each choice against its alternative, interleaved, best of several rounds, on this machine.

    python -m benchmarks.code_notes [--fer ../shared/data/fer2013-publictest]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np


def _best_ms(fns: dict[str, Callable[[], object]], calls: int, rounds: int = 7) -> dict[str, float]:
    """Milliseconds per call for each function: interleaved rounds of ``calls`` calls, the fastest round."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / calls * 1e3)
    return {k: round(v, 4) for k, v in best.items()}


def lut_vs_indexing() -> dict[str, float]:
    """BlazeFace's input normalisation at 192x192: cv2.LUT against numpy fancy indexing (same values)."""
    rgb = np.random.default_rng(0).integers(0, 256, (192, 192, 3), dtype=np.uint8)
    lut = np.arange(256, dtype=np.float32) * np.float32(2 / 255) - np.float32(1)
    assert np.array_equal(cv2.LUT(rgb, lut), lut[rgb])
    return _best_ms({"cv2.LUT": lambda: cv2.LUT(rgb, lut), "numpy lut[rgb]": lambda: lut[rgb]}, 200)


def preshrink_vs_area() -> dict[str, float]:
    """BlazeFace's anti-aliasing of a 1920x1080 frame to 3 x 192 px: integer-factor INTER_AREA first, then
    INTER_AREA to size, against one INTER_AREA resize by the arbitrary factor."""
    frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    size = (576, 324)

    def two_step() -> np.ndarray:
        small = cv2.resize(frame, None, fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_AREA)
        return cv2.resize(small, size, interpolation=cv2.INTER_AREA)

    return _best_ms(
        {"integer step + area": two_step, "area only": lambda: cv2.resize(frame, size, interpolation=cv2.INTER_AREA)},
        20,
    )


def walk_vs_rglob(folder: Path) -> dict[str, float]:
    """Listing a folder tree of images: os.walk (edgeemo.io.images.list_images's way) against Path.rglob."""

    def walk() -> list[str]:
        return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]

    def rglob() -> list[Path]:
        return [p for p in folder.rglob("*") if p.is_file()]

    assert len(walk()) == len(rglob())
    return {**_best_ms({"os.walk": walk, "Path.rglob": rglob}, 1), "files": len(walk())}


def dlib_hog() -> dict[str, float]:
    """dlib's frontal detector: making one (what a pool saves) and one 640x480 frame at upsample 0."""
    import dlib
    from skimage import data

    frame = cv2.resize(np.ascontiguousarray(data.astronaut()), (640, 480))
    det = dlib.get_frontal_face_detector()
    return {
        **{f"make {k}": v for k, v in _best_ms({"detector": dlib.get_frontal_face_detector}, 1, 5).items()},
        **_best_ms({"detect 640x480": lambda: det.run(frame, 0, 0.0)}, 5, 5),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fer", type=Path, default=Path("../shared/data/fer2013-publictest"))
    args = ap.parse_args()
    out = {"lut_192": lut_vs_indexing(), "antialias_1080p": preshrink_vs_area(), "dlib_hog": dlib_hog()}
    if args.fer.is_dir():
        out["list_fer_publictest"] = walk_vs_rglob(args.fer)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
