"""Model facts that travel inside the ONNX file.

The exporter writes one JSON document under the metadata key :data:`METADATA_KEY`; the runtime reads it back
and never guesses a model's classes, input size or normalisation from its graph.

Schema (version 1)::

    {
      "schema": 1,
      "name": "mini-xception",
      "classes": ["angry", ...],                  # order of the emotion head
      "input": {"name": "input", "layout": "NHWC", "height": 64, "width": 64, "channels": 1,
                "colour": "gray", "dtype": "float32",
                "normalisation": {"mode": "affine", "scale": 0.00784, "offset": -1.0},
                "interpolation": "area"},
      "outputs": [{"name": "emotion", "onnx_name": "predictions", "kind": "probabilities"}],
      "source": {"file": "emotion_model.hdf5", "sha256": "...", "exporter": "edgeemo-export 0.1.0",
                 "precision": "fp32", "calibration": null}
    }

``normalisation.mode`` is ``in_graph`` (feed raw pixels in ``dtype``) or ``affine`` (feed
``pixel * scale + offset`` as float32).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from edgeemo.errors import ModelError

METADATA_KEY = "edgeemo"
SCHEMA_VERSION = 1

Layout = Literal["NHWC", "NCHW"]
Colour = Literal["gray", "rgb", "bgr"]
HeadKind = Literal["logits", "probabilities", "regression"]
Precision = Literal["fp32", "fp16", "int8"]

LAYOUTS = ("NHWC", "NCHW")
COLOURS = ("gray", "rgb", "bgr")
DTYPES = ("uint8", "float32")
HEAD_KINDS = ("logits", "probabilities", "regression")
PRECISIONS = ("fp32", "fp16", "int8")
INTERPOLATIONS = ("area", "linear", "nearest", "cubic")
EMOTION_HEAD = "emotion"
# Face classifiers take crops of tens to a few hundred pixels; a side above this is a broken or hostile file
# (with open graph dimensions a 12000x12000 input would be allocated for every crop until memory runs out).
MAX_INPUT_SIDE = 1024


@dataclass(frozen=True)
class Normalisation:
    """How pixels become model input: ``in_graph`` or ``x * scale + offset``."""

    mode: Literal["in_graph", "affine"] = "in_graph"
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class InputSpec:
    name: str
    height: int
    width: int
    channels: int = 1
    layout: Layout = "NHWC"
    colour: Colour = "gray"
    dtype: Literal["uint8", "float32"] = "uint8"
    normalisation: Normalisation = field(default_factory=Normalisation)
    interpolation: str = "area"

    def shape(self, batch: int) -> tuple[int, int, int, int]:
        if self.layout == "NHWC":
            return (batch, self.height, self.width, self.channels)
        return (batch, self.channels, self.height, self.width)


@dataclass(frozen=True)
class HeadSpec:
    """One model output: ``name`` is the semantic name (emotion, valence, arousal)."""

    name: str
    onnx_name: str
    kind: HeadKind


@dataclass(frozen=True)
class SourceSpec:
    file: str = ""
    sha256: str = ""
    exporter: str = ""
    precision: Precision = "fp32"
    calibration: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input: InputSpec
    outputs: tuple[HeadSpec, ...]
    classes: tuple[str, ...] = ()
    source: SourceSpec = field(default_factory=SourceSpec)

    def head(self, name: str) -> HeadSpec:
        for h in self.outputs:
            if h.name == name:
                return h
        raise KeyError(f"model {self.name!r} has no head {name!r} (heads: {[h.name for h in self.outputs]})")

    @property
    def head_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["outputs"] = [asdict(h) for h in self.outputs]
        return {"schema": SCHEMA_VERSION, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def with_precision(self, precision: Precision, calibration: dict[str, Any] | None = None) -> ModelSpec:
        src = SourceSpec(
            file=self.source.file,
            sha256=self.source.sha256,
            exporter=self.source.exporter,
            precision=precision,
            calibration=calibration,
        )
        return ModelSpec(self.name, self.input, self.outputs, self.classes, src)

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str = "model") -> ModelSpec:
        try:
            if d.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
                raise ModelError(f"{origin}: metadata schema {d.get('schema')} is not supported")
            i = dict(d["input"])
            i["normalisation"] = Normalisation(**i.get("normalisation", {}))
            spec = cls(
                name=str(d["name"]),
                input=InputSpec(**i),
                outputs=tuple(HeadSpec(**h) for h in d["outputs"]),
                classes=tuple(d.get("classes", ())),
                source=SourceSpec(**d.get("source", {})),
            )
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{origin}: edgeemo metadata is malformed ({exc!r})") from exc
        spec.validate(origin)
        return spec

    @classmethod
    def from_json(cls, text: str, origin: str = "model") -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{origin}: edgeemo metadata is not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ModelError(f"{origin}: edgeemo metadata must be a JSON object")
        return cls.from_dict(data, origin)

    def validate(self, origin: str = "model") -> None:
        """Check the facts against each other; raises :class:`ModelError` naming ``origin``."""
        i = self.input
        problems = []
        if i.layout not in LAYOUTS:
            problems.append(f"layout {i.layout!r} not in {LAYOUTS}")
        if i.colour not in COLOURS:
            problems.append(f"colour {i.colour!r} not in {COLOURS}")
        if i.dtype not in DTYPES:
            problems.append(f"dtype {i.dtype!r} not in {DTYPES}")
        if i.interpolation not in INTERPOLATIONS:
            problems.append(f"interpolation {i.interpolation!r} not in {INTERPOLATIONS}")
        sizes = (i.height, i.width, i.channels)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in sizes):
            raise ModelError(f"{origin}: inconsistent edgeemo metadata: input size {sizes} must be whole numbers")
        if i.height <= 0 or i.width <= 0:
            problems.append(f"input size {i.height}x{i.width} is not positive")
        if max(i.height, i.width) > MAX_INPUT_SIDE:
            problems.append(
                f"input size {i.height}x{i.width} is implausible for a face model (at most {MAX_INPUT_SIDE} per side)"
            )
        if i.channels != (1 if i.colour == "gray" else 3):
            problems.append(f"{i.channels} channels do not fit colour {i.colour!r}")
        if i.normalisation.mode not in ("in_graph", "affine"):
            problems.append(f"normalisation mode {i.normalisation.mode!r} unknown")
        if i.normalisation.mode == "affine" and i.dtype != "float32":
            problems.append("affine normalisation needs a float32 input")
        if not self.outputs:
            problems.append("no output heads")
        for h in self.outputs:
            if h.kind not in HEAD_KINDS:
                problems.append(f"head {h.name!r} kind {h.kind!r} not in {HEAD_KINDS}")
        names = [h.name for h in self.outputs]
        if len(set(names)) != len(names):
            problems.append(f"duplicate head names {names}")
        emo = [h for h in self.outputs if h.name == EMOTION_HEAD]
        if emo and emo[0].kind == "regression":
            problems.append("the emotion head cannot be a regression head")
        if emo and len(self.classes) < 2:
            problems.append("an emotion head needs at least two class names")
        if len(set(self.classes)) != len(self.classes):
            problems.append(f"duplicate class names {list(self.classes)}")
        if self.source.precision not in PRECISIONS:
            problems.append(f"precision {self.source.precision!r} not in {PRECISIONS}")
        if problems:
            raise ModelError(f"{origin}: inconsistent edgeemo metadata: " + "; ".join(problems))
