"""End-to-end label accuracy: detector → framing → classifier on labelled faces in context, next to crop-only.

    python -m benchmarks.end_to_end                  # all sets, writes results/end_to_end.json + .md
    python -m benchmarks.end_to_end --set group --set expressions

Sets (each skipped with a reason where ../shared is absent):

- ``expressions``: the 7 posed photos of ../shared/data/expressions (labels.csv), the largest face of each.
- ``group``: faces in the group photos of ../shared/data/photos, labelled by eye where the expression is
  unambiguous (a grin: happy; a still face: neutral) in ``benchmarks/data/group_photos_labels.csv``: one point
  per face, matched to the detection whose box holds it.
- ``publictest``: FER2013 PublicTest faces put in a context: resized to a random size in photo range (seeded)
  and padded with their own replicated border, then detected like a photo. Its crop-only accuracy (the 48x48
  crop itself, as in parity) stands beside it, so what detection and framing cost shows. (The same construction
  calibrates the framing on the *training* split: this set checks the chain, the other two the real world.)

Each face is detected once; every framing crops the same detection, so the framings differ only in the crop.
A face the detector misses counts as wrong. Framings: today's thesis default (30 px), the model's own (from its
metadata), variants of it (not square, eyes levelled) and fixed fractions of the box.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeemo.detectors import DEFAULT_DETECTOR, create_detector
from edgeemo.errors import EdgeemoError
from edgeemo.io.images import read_image
from edgeemo.results import Face
from edgeemo.runtime.crops import crop_box, face_eyes
from edgeemo.runtime.model import EmotionModel
from edgeemo.runtime.spec import THESIS_FRAMING, Framing

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
GROUP_LABELS = Path(__file__).resolve().parent / "data" / "group_photos_labels.csv"
RESULTS = Path(__file__).resolve().parent / "results"
SETS = ("expressions", "group", "publictest")
COMMAND = "python -m benchmarks.end_to_end"


@dataclass(frozen=True)
class Sample:
    """One labelled face: its frame, the label, and a point on the face (None: the largest face)."""

    name: str
    frame: np.ndarray
    label: str
    point: tuple[float, float] | None = None
    crop: np.ndarray | None = None  # the face's own crop, where the set has one (crop-only accuracy)


def expressions(folder: Path) -> list[Sample]:
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [Sample(r["path"], read_image(folder / r["path"]), r["emotion"]) for r in rows]


def group(folder: Path, labels: Path = GROUP_LABELS) -> list[Sample]:
    with open(labels, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    frames = {name: read_image(folder / name) for name in {r["file"] for r in rows}}
    return [
        Sample(f"{r['file']}@{r['x']},{r['y']}", frames[r["file"]], r["label"], (float(r["x"]), float(r["y"])))
        for r in rows
    ]


def publictest(folder: Path, limit: int | None, sizes: tuple[int, int] = (60, 200), seed: int = 1) -> list[Sample]:
    files = sorted(folder.glob("*/*.png"))
    if limit is not None and limit < len(files):
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    rng = np.random.default_rng(seed)
    out = []
    for path, side in zip(files, rng.integers(sizes[0], sizes[1] + 1, len(files))):
        face = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        big = cv2.resize(face, (int(side), int(side)), interpolation=cv2.INTER_CUBIC)
        frame = cv2.cvtColor(cv2.copyMakeBorder(big, *(int(side),) * 4, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2BGR)
        centre = 1.5 * float(side)
        out.append(Sample(path.relative_to(folder).as_posix(), frame, path.parent.name, (centre, centre), face))
    return out


def pick(faces: Sequence[Face], point: tuple[float, float] | None) -> Face | None:
    """The largest face, or the one whose box holds ``point`` (nearest centre first)."""
    if point is None:
        return max(faces, key=lambda f: f.box.area, default=None)
    x, y = point
    holding = [f for f in faces if f.box.x1 <= x < f.box.x2 and f.box.y1 <= y < f.box.y2]
    return min(
        holding, key=lambda f: ((f.box.x1 + f.box.x2) / 2 - x) ** 2 + ((f.box.y1 + f.box.y2) / 2 - y) ** 2, default=None
    )


def framings(model_framing: Framing) -> dict[str, Framing]:
    """The framings compared: today's default, the model's, variants of it, fixed fractions of the box."""
    return {
        "thesis 30 px (old default)": THESIS_FRAMING,
        f"model: {model_framing.describe()}": model_framing,
        "model, not square": replace(model_framing, square=False),
        "model, eyes levelled": replace(model_framing, align=True),
        "box + 0": Framing.ratio(0.0),
        "box + 0.1": Framing.ratio(0.1),
        "box + 0.2": Framing.ratio(0.2),
        "box + 0.3": Framing.ratio(0.3),
    }


@dataclass(frozen=True)
class Score:
    n: int
    correct: int
    per_class: dict[str, tuple[int, int]]  # class -> (correct, n)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 4),
            "per_class": {
                c: {"correct": k, "n": n, "accuracy": round(k / n, 4)} for c, (k, n) in self.per_class.items()
            },
        }


def score(labels: Sequence[str], predicted: Sequence[str | None]) -> Score:
    per: dict[str, list[int]] = {}
    for truth, pred in zip(labels, predicted):
        row = per.setdefault(truth, [0, 0])
        row[0] += int(truth == pred)
        row[1] += 1
    correct = sum(k for k, _ in per.values())
    return Score(len(labels), correct, {c: (k, n) for c, (k, n) in sorted(per.items())})


def evaluate(samples: Sequence[Sample], model: EmotionModel, detector: Any, variants: dict[str, Framing]) -> dict:
    """Detect once per sample, then classify each framing's crops of the same detection."""
    faces = [pick(detector.detect(s.frame), s.point) for s in samples]
    labels = [s.label for s in samples]
    found = [k for k, f in enumerate(faces) if f is not None]
    result: dict[str, Any] = {"faces": len(samples), "detected": len(found), "framings": {}}
    for name, framing in variants.items():
        crops = [crop_box(samples[k].frame, faces[k].box, framing, face_eyes(faces[k])) for k in found]  # type: ignore[union-attr]
        preds: list[str | None] = [None] * len(samples)
        for k, p in zip(found, model.predict(crops) if crops else []):
            preds[k] = p.label
        entry = {"framing": asdict(framing), **score(labels, preds).to_dict()}
        entry["accuracy_detected"] = round(entry["correct"] / len(found), 4) if found else None
        if len(samples) <= 50:
            entry["per_face"] = {s.name: p for s, p in zip(samples, preds)}
        result["framings"][name] = entry
    if all(s.crop is not None for s in samples):
        preds_all = [p.label for p in model.predict([s.crop for s in samples])]  # type: ignore[misc]
        result["crop_only"] = score(labels, preds_all).to_dict()
        on_found = score([labels[k] for k in found], [preds_all[k] for k in found])
        result["crop_only"]["accuracy_detected"] = round(on_found.accuracy, 4)
    return result


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# End-to-end label accuracy ({report['model']}, {report['detector']})",
        "",
        f"Command: `{report['command']}`. A face the detector misses counts as wrong. Per class: correct/n.",
    ]
    for name, res in report["sets"].items():
        if "skipped" in res:
            lines += ["", f"## {name}: skipped ({res['skipped']})"]
            continue
        classes = sorted({c for e in res["framings"].values() for c in e["per_class"]})
        lines += [
            "",
            f"## {name}: {res['faces']} faces, {res['detected']} detected",
            "",
            "| framing | accuracy | on detected faces | " + " | ".join(classes) + " |",
            "|---|---|---|" + "---|" * len(classes),
        ]
        rows = list(res["framings"].items())
        if "crop_only" in res:
            rows.append(("crop only (the 48x48 crops, no detection)", res["crop_only"]))
        for label, e in rows:
            cells = [f"{e['per_class'][c]['correct']}/{e['per_class'][c]['n']}" for c in classes]
            on = "-" if e.get("accuracy_detected") is None else f"{e['accuracy_detected']:.4f}"
            lines.append(
                f"| {label} | {e['accuracy']:.4f} ({e['correct']}/{e['n']}) | {on} | " + " | ".join(cells) + " |"
            )
        first = next(iter(res["framings"].values()))
        if "per_face" in first:
            lines += ["", "| face | truth | " + " | ".join(f"F{k}" for k in range(len(rows))) + " |"]
            lines += ["|---|---|" + "---|" * len(rows)]
            truth = {s: t for s, t in res["truth"].items()}
            for face in first["per_face"]:
                preds = [e["per_face"][face] or "-" for _, e in res["framings"].items()]
                lines.append(f"| {face} | {truth[face]} | " + " | ".join(preds) + " |")
            lines += ["", "Columns: " + "; ".join(f"F{k} = {label}" for k, (label, _) in enumerate(rows))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mini-xception", help="model name, folder or .onnx (default mini-xception)")
    ap.add_argument("--detector", default=DEFAULT_DETECTOR)
    ap.add_argument("--set", action="append", choices=SETS, help="set(s) to run (default: all)")
    ap.add_argument("--limit", type=int, default=None, help="publictest: evenly spaced faces (default: all)")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=RESULTS / "end_to_end", help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    model = EmotionModel.load(args.model)
    detector = create_detector(args.detector)
    variants = framings(model.spec.framing_for(args.detector))
    loaders = {
        "expressions": lambda: expressions(args.data / "expressions"),
        "group": lambda: group(args.data / "photos"),
        "publictest": lambda: publictest(args.data / "fer2013-publictest", args.limit),
    }
    report: dict[str, Any] = {
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
        "model": model.spec.name,
        "model_file": model.path.name,
        "detector": args.detector,
        "sets": {},
    }
    for name in args.set or SETS:
        t0 = time.perf_counter()
        try:
            samples = loaders[name]()
        except (OSError, ValueError, EdgeemoError) as exc:
            report["sets"][name] = {"skipped": f"{type(exc).__name__}: {exc}"}
            print(f"{name}: skipped ({exc})")
            continue
        res = evaluate(samples, model, detector, variants)
        res["truth"] = {s.name: s.label for s in samples} if len(samples) <= 50 else None
        report["sets"][name] = res
        best = max(res["framings"].items(), key=lambda kv: kv[1]["accuracy"])
        print(
            f"{name}: {len(samples)} faces, {time.perf_counter() - t0:.0f} s; best {best[0]} {best[1]['accuracy']:.4f}"
        )
    detector.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
    print(f"wrote {args.out.with_suffix('.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
