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
      "framing": [{"detector": "blazeface", "unit": "box", "left": 0.1, "right": 0.1, "top": 0.3,
                   "bottom": 0.05, "square": true, "align": false, "basis": "framing.json"}],
      "source": {"file": "emotion_model.hdf5", "sha256": "...", "exporter": "edgeemo-export 0.1.0",
                 "precision": "fp32", "calibration": null}
    }

``normalisation.mode`` is ``in_graph`` (feed raw pixels in ``dtype``) or ``affine`` (feed
``pixel * scale + offset`` as float32).

``framing`` (optional, added compatibly within schema 1) says how the model's training faces sat around a
detector's box, one entry per detector it was calibrated for (``detector`` "" = any detector). A file without
it is framed as the thesis framed its faces: :data:`THESIS_FRAMING`, 30 px per side.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

from edgeemo.errors import ModelError

METADATA_KEY = "edgeemo"
SCHEMA_VERSION = 1

Layout = Literal["NHWC", "NCHW"]
Colour = Literal["gray", "rgb", "bgr"]
HeadKind = Literal["logits", "probabilities", "regression"]
Precision = Literal["fp32", "fp16", "int8"]
FramingUnit = Literal["box", "px"]
Dtype = Literal["uint8", "float32"]
NormalisationMode = Literal["in_graph", "affine"]

LAYOUTS: tuple[Layout, ...] = get_args(Layout)
COLOURS: tuple[Colour, ...] = get_args(Colour)
DTYPES: tuple[Dtype, ...] = get_args(Dtype)
NORMALISATION_MODES: tuple[NormalisationMode, ...] = get_args(NormalisationMode)
HEAD_KINDS: tuple[HeadKind, ...] = get_args(HeadKind)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
INTERPOLATIONS = ("area", "linear", "nearest", "cubic")
FRAMING_UNITS: tuple[FramingUnit, ...] = get_args(FramingUnit)
EMOTION_HEAD = "emotion"
# Face classifiers take crops of tens to a few hundred pixels; a side above this is a broken or hostile file
# (with open graph dimensions a 12000x12000 input would be allocated for every crop until memory runs out).
MAX_INPUT_SIDE = 1024


@dataclass(frozen=True)
class Normalisation:
    """How pixels become model input: ``in_graph`` or ``x * scale + offset``."""

    mode: NormalisationMode = "in_graph"
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
    dtype: Dtype = "uint8"
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
class Framing:
    """Where a model's faces sat around a detector's box: the crop is the box grown per side by a margin.

    ``unit`` ``box``: margins are fractions of the box's width (left/right) and height (top/bottom), negative
    inside the box; ``px``: pixels (>= 0). ``square`` then grows the shorter side of the crop about its centre,
    so the face keeps its proportions in a square input; ``align`` turns the crop so the eyes are level (needs a
    detector with eye landmarks). ``detector`` names the detector whose boxes it was measured on ("" = any);
    ``basis`` where the figures come from.
    """

    unit: FramingUnit = "px"
    left: float = 30.0
    right: float = 30.0
    top: float = 30.0
    bottom: float = 30.0
    square: bool = False
    align: bool = False
    detector: str = ""
    basis: str = ""

    @classmethod
    def pixels(cls, margin: float) -> Framing:
        return cls("px", margin, margin, margin, margin)

    @classmethod
    def ratio(cls, ratio: float) -> Framing:
        return cls("box", ratio, ratio, ratio, ratio)

    def problems(self) -> list[str]:
        sides = (self.left, self.right, self.top, self.bottom)
        where = f"framing{f' for {self.detector}' if self.detector else ''}"
        if self.unit not in FRAMING_UNITS:
            return [f"{where}: unit {self.unit!r} not in {FRAMING_UNITS}"]
        if not all(isinstance(m, (int, float)) and math.isfinite(m) for m in sides):
            return [f"{where}: margins {sides} are not all finite numbers"]
        if self.unit == "px" and min(sides) < 0:
            return [f"{where}: pixel margins {sides} must be >= 0"]
        if self.unit == "box" and (1 + self.left + self.right <= 0.05 or 1 + self.top + self.bottom <= 0.05):
            return [f"{where}: margins {sides} leave (almost) nothing of the box"]
        return []

    def describe(self) -> str:
        """One line for logs and cards, e.g. ``box l0.10 r0.10 t0.30 b0.05, square (blazeface)``."""
        if self.unit == "px" and len({self.left, self.right, self.top, self.bottom}) == 1:
            text = f"{self.left:g} px per side"
        else:
            unit = " px" if self.unit == "px" else " of the box"
            text = f"l {self.left:g} r {self.right:g} t {self.top:g} b {self.bottom:g}{unit}"
        flags = [f for f, on in (("square", self.square), ("eyes levelled", self.align)) if on]
        return text + "".join(f", {f}" for f in flags) + (f" ({self.detector} boxes)" if self.detector else "")


THESIS_FRAMING = Framing()  # the thesis's crops: 30 px per side, whatever the face's size


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
    framing: tuple[Framing, ...] = ()

    def framing_for(self, detector: str | None) -> Framing:
        """The framing measured for ``detector``, else the one for any detector, else the first, else the thesis's."""
        for f in self.framing:
            if f.detector == (detector or ""):
                return f
        return next((f for f in self.framing if not f.detector), self.framing[0] if self.framing else THESIS_FRAMING)

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
        d["framing"] = [asdict(f) for f in self.framing]
        return {"schema": SCHEMA_VERSION, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def with_precision(self, precision: Precision, calibration: dict[str, Any] | None = None) -> ModelSpec:
        return replace(self, source=replace(self.source, precision=precision, calibration=calibration))

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
                framing=tuple(Framing(**f) for f in d.get("framing", ())),
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
        if i.normalisation.mode not in NORMALISATION_MODES:
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
        for f in self.framing:
            problems += f.problems()
        framed = [f.detector for f in self.framing]
        if len(set(framed)) != len(framed):
            problems.append(f"more than one framing for one detector {framed}")
        if self.source.precision not in PRECISIONS:
            problems.append(f"precision {self.source.precision!r} not in {PRECISIONS}")
        if problems:
            raise ModelError(f"{origin}: inconsistent edgeemo metadata: " + "; ".join(problems))
