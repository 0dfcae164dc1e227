"""Frozen result types. JSON output follows ``to_dict()`` one-to-one (schema in README, "Output schema"); the
per-face CSV tables (video ``--csv``, the timeline CSV) follow :func:`face_csv_row`.

Also the one box overlap (:func:`iou_matrix`, used by the tracker and BlazeFace's suppression) and the one way
probabilities become a :class:`Prediction` (:meth:`Prediction.from_probabilities`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

VASource = Literal["model", "derived"]


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box in frame pixels, ``x2``/``y2`` exclusive."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (0 when they do not overlap)."""
        return float(iou_matrix([self], [other])[0, 0])

    def to_dict(self) -> dict[str, float]:
        return {"x1": round(self.x1, 2), "y1": round(self.y1, 2), "x2": round(self.x2, 2), "y2": round(self.y2, 2)}


def iou_matrix(a: Sequence[Box] | np.ndarray, b: Sequence[Box] | np.ndarray) -> np.ndarray:
    """Pairwise intersection over union, shape (len(a), len(b)): boxes as :class:`Box` objects or as (N, 4) arrays
    of x1, y1, x2, y2 (computed in the arrays' dtype, float64 for boxes). Boxes that do not overlap give 0."""
    A, B = _corners(a), _corners(b)
    if not len(A) or not len(B):
        return np.zeros((len(A), len(B)), dtype=np.result_type(A, B))
    iw = np.clip(np.minimum(A[:, None, 2], B[None, :, 2]) - np.maximum(A[:, None, 0], B[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(A[:, None, 3], B[None, :, 3]) - np.maximum(A[:, None, 1], B[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(A[:, 2] - A[:, 0], 0, None) * np.clip(A[:, 3] - A[:, 1], 0, None)
    area_b = np.clip(B[:, 2] - B[:, 0], 0, None) * np.clip(B[:, 3] - B[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _corners(boxes: Sequence[Box] | np.ndarray) -> np.ndarray:
    if isinstance(boxes, np.ndarray):
        return boxes.reshape(-1, 4)
    return np.array([(x.x1, x.y1, x.x2, x.y2) for x in boxes], dtype=np.float64).reshape(-1, 4)


@dataclass(frozen=True, slots=True)
class Face:
    """A detection: box, confidence and optional landmarks (x, y) in frame pixels."""

    box: Box
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"box": self.box.to_dict(), "score": round(float(self.score), 4)}
        if self.landmarks is not None:
            d["landmarks"] = [[round(x, 2), round(y, 2)] for x, y in self.landmarks]
        return d


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model says about one face crop."""

    label: str
    probabilities: tuple[tuple[str, float], ...]
    valence: float | None = None
    arousal: float | None = None
    va_source: VASource | None = None

    @classmethod
    def from_probabilities(
        cls,
        classes: Sequence[str],
        probabilities: Sequence[float] | np.ndarray,
        valence: float | None = None,
        arousal: float | None = None,
        va_source: VASource | None = None,
    ) -> Prediction:
        """The prediction of one face from its class probabilities (in ``classes`` order): the label is the most
        probable class (the first of a tie)."""
        row = np.asarray(probabilities)
        return cls(
            label=classes[int(np.argmax(row))],
            probabilities=tuple(zip(classes, row.astype(float).tolist())),
            valence=None if valence is None else float(valence),
            arousal=None if arousal is None else float(arousal),
            va_source=va_source,
        )

    @property
    def confidence(self) -> float:
        return dict(self.probabilities)[self.label]

    def probability(self, cls: str) -> float:
        for name, p in self.probabilities:
            if name == cls:
                return p
        raise KeyError(f"unknown class {cls!r}; classes are {[n for n, _ in self.probabilities]}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities},
        }
        if self.valence is not None:
            d["valence"] = round(self.valence, 6)
            d["arousal"] = None if self.arousal is None else round(self.arousal, 6)
            d["va_source"] = self.va_source
        return d


@dataclass(frozen=True, slots=True)
class FaceResult:
    """One classified face; ``label``, ``confidence``, ``box``, ``valence``, ``arousal`` are shortcuts."""

    face: Face
    prediction: Prediction
    track_id: int | None = None

    @property
    def label(self) -> str:
        return self.prediction.label

    @property
    def confidence(self) -> float:
        return self.prediction.confidence

    @property
    def box(self) -> Box:
        return self.face.box

    @property
    def valence(self) -> float | None:
        return self.prediction.valence

    @property
    def arousal(self) -> float | None:
        return self.prediction.arousal

    def to_dict(self) -> dict[str, Any]:
        d = {**self.face.to_dict(), **self.prediction.to_dict()}
        if self.track_id is not None:
            d["track_id"] = self.track_id
        return d


@dataclass(frozen=True, slots=True)
class FrameResult:
    """All faces of one frame (or image). ``timestamp`` is seconds from the start of a video, else None.

    ``skipped`` holds detections that could not be cropped (degenerate boxes), each with the reason; they are
    reported rather than dropped silently, and never shift the results of the other faces.
    """

    faces: tuple[FaceResult, ...]
    width: int
    height: int
    index: int = 0
    timestamp: float | None = None
    source: str | None = None
    skipped: tuple[tuple[Face, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "timestamp": None if self.timestamp is None else round(self.timestamp, 4),
            "width": self.width,
            "height": self.height,
            "faces": [f.to_dict() for f in self.faces],
        }
        if self.source is not None:
            d["source"] = self.source
        if self.skipped:
            d["skipped"] = [{**face.to_dict(), "reason": reason} for face, reason in self.skipped]
        return d


def predictions(
    probabilities: np.ndarray,
    classes: Sequence[str],
    valence: np.ndarray | None = None,
    arousal: np.ndarray | None = None,
    va_source: VASource | None = None,
) -> list[Prediction]:
    """One :class:`Prediction` per row of ``probabilities`` (N, C), with the row's valence/arousal where given."""
    val = None if valence is None else np.asarray(valence, dtype=float).reshape(-1).tolist()
    aro = None if arousal is None else np.asarray(arousal, dtype=float).reshape(-1).tolist()
    return [
        Prediction.from_probabilities(
            classes, row, None if val is None else val[i], None if aro is None else aro[i], va_source
        )
        for i, row in enumerate(np.asarray(probabilities))
    ]


def face_csv_header(classes: Sequence[str], *, detection: bool = True, va: bool = True) -> list[str]:
    """The header of a per-face CSV table; the columns of :func:`face_csv_row` with the same flags."""
    head = ["frame", "timestamp", "track"]
    if detection:
        head += ["x1", "y1", "x2", "y2", "score"]
    head.append("label")
    if detection:
        head.append("confidence")
    head += list(classes)
    if va:
        head += ["valence", "arousal", "va_source"]
    return head


def face_csv_row(
    frame: int,
    timestamp: float | None,
    track: int | None,
    label: str,
    probabilities: Iterable[float],
    valence: float | None,
    arousal: float | None,
    va_source: str | None,
    *,
    face: Face | None = None,
    confidence: float | None = None,
    va: bool = True,
) -> list[Any]:
    """One face of one frame as CSV cells: frame, timestamp, track, (with ``face``: box and score), label, (with
    ``face``: ``confidence``), one probability per class, (with ``va``) valence, arousal and their source.
    Missing values are empty cells."""
    row: list[Any] = [frame, "" if timestamp is None else f"{timestamp:.4f}", "" if track is None else track]
    if face is not None:
        b = face.box
        row += [f"{b.x1:.1f}", f"{b.y1:.1f}", f"{b.x2:.1f}", f"{b.y2:.1f}", f"{face.score:.4f}"]
    row.append(label)
    if face is not None:
        row.append("" if confidence is None else f"{confidence:.6f}")
    row += [f"{p:.6f}" for p in probabilities]
    if va:
        row += [_cell(valence), _cell(arousal), va_source or ""]
    return row


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"
