"""Measure a model's crop framing from its training faces: where a detector's box sits in each training crop.

``python -m edgeemo_export.framing_calibration --out models/mini-xception/framing.json``

Each 48x48 FER2013 training face is upscaled to a random size in a realistic range (a fixed seed; the spread of
sizes also dithers detectors whose boxes come in steps, like dlib's pyramid), padded with its
own replicated border (so it sees a whole face in context, not a face filling the frame), and run through the
detector; the detection nearest the face's centre gives the box, mapped back into the original crop. The crop's
edges relative to that box, as fractions of the box's width (left/right) and height (top/bottom), are the
framing the model learned: their medians over the faces are written as :class:`edgeemo.runtime.spec.Framing`, one per
detector, with the spread, the detection rate and the setup in the same JSON. Training faces are used for
calibration only; no accuracy is measured here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeemo.detectors import DEFAULT_DETECTOR, Detector, create_detector
from edgeemo.errors import EdgeemoError, InputError
from edgeemo.results import Face
from edgeemo.runtime.spec import Framing

REPO = Path(__file__).resolve().parents[1]
FER_TRAIN = REPO.parent / "shared" / "data" / "fer2013-train"
SIDES = ("left", "right", "top", "bottom")
COMMAND = "python -m edgeemo_export.framing_calibration"


@dataclass(frozen=True)
class Placement:
    """One face's detection mapped into its original crop: margins as fractions of the box, box size in pixels."""

    left: float
    right: float
    top: float
    bottom: float
    box_width: float
    box_height: float
    eye_angle: float | None  # degrees the eye line is tilted (image y down), None without eye landmarks


def training_faces(folder: Path, limit: int | None) -> list[Path]:
    """The face files of ``folder`` (class subfolders), sorted; ``limit`` takes that many evenly spaced."""
    files = sorted(p for p in folder.glob("*/*.png"))
    if not files:
        raise InputError(f"{folder}: no training faces (<class>/*.png)")
    if limit is not None and limit < len(files):
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def in_context(face: np.ndarray, side: int, pad: float) -> tuple[np.ndarray, int]:
    """The square face resized to ``side`` pixels and padded by ``pad`` sides of its replicated border (BGR)."""
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    p = round(pad * side)
    framed = cv2.copyMakeBorder(big, p, p, p, p, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(framed, cv2.COLOR_GRAY2BGR), p


def place(faces: Sequence[Face], size: int, offset: int, side: int) -> Placement | None:
    """The detection nearest the face's centre (inside the face's square), mapped into the original crop."""
    upscale = side / size
    centre = offset + side / 2
    inside = [
        f
        for f in faces
        if offset <= (f.box.x1 + f.box.x2) / 2 < offset + side and offset <= (f.box.y1 + f.box.y2) / 2 < offset + side
    ]
    if not inside:
        return None
    best = min(inside, key=lambda f: math.hypot((f.box.x1 + f.box.x2) / 2 - centre, (f.box.y1 + f.box.y2) / 2 - centre))
    x1, y1 = (best.box.x1 - offset) / upscale, (best.box.y1 - offset) / upscale
    x2, y2 = (best.box.x2 - offset) / upscale, (best.box.y2 - offset) / upscale
    bw, bh = x2 - x1, y2 - y1
    angle = None
    if best.landmarks is not None and len(best.landmarks) >= 2:
        (rx, ry), (lx, ly) = best.landmarks[0], best.landmarks[1]  # BlazeFace: subject's right eye, then left
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
    return Placement(x1 / bw, (size - x2) / bw, y1 / bh, (size - y2) / bh, bw, bh, angle)


def measure(
    files: Sequence[Path], detector: Detector, sizes: tuple[int, int], pad: float, seed: int = 0
) -> tuple[list[Placement], int]:
    """Placements of the faces the detector found, and how many it missed; face sizes drawn from ``sizes``."""
    rng = np.random.default_rng(seed)
    sides = rng.integers(sizes[0], sizes[1] + 1, len(files))
    found: list[Placement] = []
    missed = 0
    for path, side in zip(files, sides):
        face = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if face is None or face.shape[0] != face.shape[1]:
            raise InputError(f"{path}: not a decodable square training face")
        frame, offset = in_context(face, int(side), pad)
        p = place(detector.detect(frame), face.shape[0], offset, int(side))
        if p is None:
            missed += 1
        else:
            found.append(p)
    return found, missed


def quartiles(values: Sequence[float]) -> dict[str, float]:
    q1, q2, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return {"q1": round(float(q1), 4), "median": round(float(q2), 4), "q3": round(float(q3), 4)}


def summarise(detector: str, found: Sequence[Placement], missed: int, basis: str) -> dict[str, Any]:
    """Medians and quartiles per side; the framing is the medians, square (the training crops are square)."""
    if not found:
        raise InputError(f"detector {detector!r} found none of the {missed} training faces")
    sides = {s: quartiles([getattr(p, s) for p in found]) for s in SIDES}
    framing = Framing(
        "box",
        *(round(sides[s]["median"], 3) for s in SIDES),
        square=True,
        align=False,
        detector=detector,
        basis=basis,
    )
    angles = [abs(p.eye_angle) for p in found if p.eye_angle is not None]
    return {
        "detector": detector,
        "faces": len(found) + missed,
        "detected": len(found),
        "detection_rate": round(len(found) / (len(found) + missed), 4),
        "margins": sides,
        "box_width_px": quartiles([p.box_width for p in found]),
        "box_height_px": quartiles([p.box_height for p in found]),
        "box_aspect_w_over_h": quartiles([p.box_width / p.box_height for p in found]),
        "abs_eye_angle_deg": quartiles(angles) if angles else None,
        "framing": asdict(framing),
    }


def framings(report: dict[str, Any]) -> tuple[Framing, ...]:
    """The :class:`Framing` entries of a calibration report (what the stamp tool writes into the model)."""
    return tuple(Framing(**d["framing"]) for d in report["detectors"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FER_TRAIN, help="training faces, <class>/*.png (48x48)")
    parser.add_argument("--limit", type=int, default=6000, help="evenly spaced faces to use (default 6000)")
    parser.add_argument("--detector", action="append", help=f"detector(s) to calibrate (default {DEFAULT_DETECTOR})")
    parser.add_argument("--sizes", default="96:256", help="face sizes in pixels to draw from, MIN:MAX (96:256)")
    parser.add_argument("--pad", type=float, default=1.0, help="replicated border per side, in face sizes")
    parser.add_argument("--out", type=Path, required=True, help="JSON report to write")
    args = parser.parse_args(argv)
    try:
        lo, _, hi = args.sizes.partition(":")
        sizes = (int(lo), int(hi or lo))
        files = training_faces(args.data, args.limit)
        basis = args.out.name
        reports = []
        for name in args.detector or [DEFAULT_DETECTOR]:
            t0 = time.perf_counter()
            detector = create_detector(name)
            try:
                found, missed = measure(files, detector, sizes, args.pad)
            finally:
                detector.close()
            reports.append(summarise(name, found, missed, basis))
            print(
                f"{name}: {len(found)}/{len(files)} detected in {time.perf_counter() - t0:.0f} s; "
                f"framing {Framing(**reports[-1]['framing']).describe()}"
            )
    except EdgeemoError as exc:
        print(f"framing_calibration: error: {exc}", file=sys.stderr)
        return exc.exit_code
    report = {
        "what": "where the detector's box sits in the model's 48x48 training crops (margins: fraction of the box)",
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
        "data": "../" + args.data.resolve().relative_to(REPO.parent).as_posix()
        if args.data.resolve().is_relative_to(REPO.parent)
        else str(args.data),
        "faces": len(files),
        "setup": {
            "face_sizes_px": list(sizes),
            "seed": 0,
            "pad_face_sizes": args.pad,
            "interpolation": "cubic",
            "border": "replicate",
            "selection": "evenly spaced over the sorted files",
        },
        "detectors": reports,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
