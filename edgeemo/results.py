"""Frozen result types. JSON output follows ``to_dict()`` one-to-one (schema in README, "Output schema")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"x1": round(self.x1, 2), "y1": round(self.y1, 2), "x2": round(self.x2, 2), "y2": round(self.y2, 2)}


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
