"""EmotionModel: crops in, per-head arrays and :class:`Prediction` objects out.

Everything about feeding and reading the model comes from its embedded :class:`ModelSpec`; the graph is only
checked against those facts (a model whose metadata lies is refused rather than silently misread).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeemo.errors import InputError, ModelError
from edgeemo.results import Prediction, predictions
from edgeemo.runtime.assets import resolve_model, warn_if_untrained
from edgeemo.runtime.session import SessionOptions, choose_cpu_layout, create_session, resolve_batch_slice
from edgeemo.runtime.spec import EMOTION_HEAD, METADATA_KEY, ModelSpec

log = logging.getLogger(__name__)

_INTERP = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "cubic": cv2.INTER_CUBIC,
}


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class ModelOutput:
    """Per-head outputs of one batch: ``heads[name]`` has shape (N, C) or (N,) for regression (raw, or the
    crop-and-mirror means with ``flip``)."""

    heads: dict[str, np.ndarray]
    probabilities: np.ndarray | None  # (N, C) emotion probabilities, softmaxed where the head gives logits


def read_spec(session: Any, origin: str) -> ModelSpec:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelError(
            f"{origin}: no '{METADATA_KEY}' metadata; export it with `edgeemo export` or pass the model facts"
        )
    return ModelSpec.from_json(meta[METADATA_KEY], origin)


def check_graph(session: Any, spec: ModelSpec, origin: str) -> None:
    """Refuse a model whose graph does not match its metadata."""
    inputs = {i.name: i for i in session.get_inputs()}
    if spec.input.name not in inputs:
        raise ModelError(f"{origin}: metadata names input {spec.input.name!r}, graph has {list(inputs)}")
    shape = inputs[spec.input.name].shape
    expect = spec.input.shape(-1)
    if len(shape) != 4 or any(isinstance(g, int) and g != e for g, e in zip(shape[1:], expect[1:])):
        raise ModelError(f"{origin}: graph input shape {shape} does not match metadata {list(expect[1:])}")
    want_type = "tensor(uint8)" if spec.input.dtype == "uint8" else "tensor(float)"
    if inputs[spec.input.name].type != want_type:
        raise ModelError(
            f"{origin}: graph input type {inputs[spec.input.name].type} does not match metadata {spec.input.dtype}"
        )
    outputs = {o.name: o for o in session.get_outputs()}
    for head in spec.outputs:
        if head.onnx_name not in outputs:
            raise ModelError(f"{origin}: head {head.name!r} output {head.onnx_name!r} not in graph {list(outputs)}")
        dims = outputs[head.onnx_name].shape
        last = dims[-1] if dims else None
        if head.name == EMOTION_HEAD and isinstance(last, int) and last != len(spec.classes):
            raise ModelError(
                f"{origin}: metadata lists {len(spec.classes)} classes but output {head.onnx_name!r} has {last}"
            )
        if head.kind == "regression" and isinstance(last, int) and last != 1:
            raise ModelError(f"{origin}: regression head {head.name!r} has {last} values per face, expected 1")


class EmotionModel:
    """One ONNX model with its spec; thread-safe for concurrent ``run`` calls (onnxruntime sessions are)."""

    def __init__(self, path: str | os.PathLike[str], session_options: SessionOptions | None = None) -> None:
        self.path = Path(path)
        origin = str(self.path)
        options = session_options or SessionOptions()
        self.session = create_session(self.path, options)
        self.batch_slice = resolve_batch_slice(options)
        self.spec = read_spec(self.session, origin)
        check_graph(self.session, self.spec, origin)
        warn_if_untrained(self.path)
        self._out_names = [h.onnx_name for h in self.spec.outputs]
        self._interp = _INTERP[self.spec.input.interpolation]
        norm = self.spec.input.normalisation
        self._affine = (np.float32(norm.scale), np.float32(norm.offset)) if norm.mode == "affine" else None

    @classmethod
    def load(
        cls,
        name_or_path: str | os.PathLike[str] = "mini-xception",
        precision: str = "fp32",
        session_options: SessionOptions | None = None,
    ) -> EmotionModel:
        """Load a shipped/user model by name or folder (or an ``.onnx`` path as is).

        For fp32 on an AVX-512 CPU the folder's ``model.avx512.onnx`` is taken when present
        (:func:`edgeemo.runtime.session.choose_cpu_layout`); ``self.path`` says which file was loaded.
        """
        options = session_options or SessionOptions()
        return cls(resolve_model(name_or_path, precision, choose_cpu_layout(options)), options)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def preprocess(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """BGR (or gray) uint8 crops of any size → one input batch per the spec."""
        spec = self.spec.input
        size = (spec.width, spec.height)
        planes = np.empty((len(crops), spec.height, spec.width, spec.channels), dtype=np.float32)
        for k, crop in enumerate(crops):
            if crop.dtype != np.uint8 or crop.ndim not in (2, 3) or crop.size == 0:
                raise InputError(f"crop {k}: expected a non-empty uint8 image, got {crop.dtype} {crop.shape}")
            img = _to_colour(crop, spec.colour)
            if img.shape[1] != spec.width or img.shape[0] != spec.height:
                img = resize_stable(img, size, self._interp)
            planes[k] = img.reshape(spec.height, spec.width, spec.channels)
        batch: np.ndarray = planes
        if spec.layout == "NCHW":
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        if self._affine is not None:
            scale, offset = self._affine
            batch = batch * scale + offset
        elif spec.dtype == "uint8":
            batch = np.rint(batch).clip(0, 255).astype(np.uint8)
        return batch

    def run_batch(self, batch: np.ndarray, *, flip: bool = False) -> ModelOutput:
        """Run a preprocessed batch and split it by head; batches above ``batch_slice`` run in slices.

        With ``flip`` the batch and its mirror (along the width) run as one doubled batch and each head is the mean
        of the two: of the values for regression and probability heads, of the softmax for logits heads (whose
        entry then holds probabilities).
        """
        if len(batch) == 0:
            return ModelOutput({h.name: np.zeros((0,)) for h in self.spec.outputs}, None)
        if not flip:
            heads = self._heads(batch)
            emotion = heads.get(EMOTION_HEAD)
            return ModelOutput(heads, None if emotion is None else self._as_probabilities(EMOTION_HEAD, emotion))
        n = len(batch)
        width_axis = 3 if self.spec.input.layout == "NCHW" else 2
        both = self._heads(np.concatenate([batch, np.flip(batch, axis=width_axis)]))
        heads = {}
        for name, a in both.items():
            values = self._as_probabilities(name, a)
            heads[name] = (values[:n] + values[n:]) / np.float32(2)
        return ModelOutput(heads, heads.get(EMOTION_HEAD))

    def _as_probabilities(self, head: str, values: np.ndarray) -> np.ndarray:
        """A logits head's softmax; any other head's values as they are."""
        return softmax(values) if self.spec.head(head).kind == "logits" else values

    def _heads(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The session's outputs of a non-empty batch, one float32 array per head (regression heads flat)."""
        n = self.batch_slice
        if n and len(batch) > n:
            parts = [
                self.session.run(self._out_names, {self.spec.input.name: batch[i : i + n]})
                for i in range(0, len(batch), n)
            ]
            outs = [np.concatenate(o) for o in zip(*parts)]
        else:
            outs = self.session.run(self._out_names, {self.spec.input.name: batch})
        heads: dict[str, np.ndarray] = {}
        for head, arr in zip(self.spec.outputs, outs):
            a = np.asarray(arr, dtype=np.float32)
            if head.kind == "regression":
                heads[head.name] = a.reshape(len(batch), -1)[:, 0]
            else:
                heads[head.name] = a.reshape(len(batch), -1)
        return heads

    def run(self, crops: Sequence[np.ndarray], *, flip: bool = False) -> ModelOutput:
        """Preprocess and run ``crops`` (with ``flip``, averaged with their mirrors: :meth:`run_batch`)."""
        return self.run_batch(self.preprocess(crops), flip=flip)

    def predict(self, crops: Sequence[np.ndarray], *, flip: bool = False) -> list[Prediction]:
        """Predictions for a list of crops; VA fields are filled when the model has valence/arousal heads."""
        out = self.run(crops, flip=flip)
        return predictions_from_output(out, self.spec.classes)


def predictions_from_output(out: ModelOutput, classes: Sequence[str]) -> list[Prediction]:
    """The model's own predictions: valence/arousal where it has both heads."""
    if out.probabilities is None:
        raise ModelError("model has no emotion head; use run() for regression-only models")
    val = out.heads.get("valence")
    aro = out.heads.get("arousal")
    if val is None or aro is None:
        return predictions(out.probabilities, classes)
    return predictions(out.probabilities, classes, val, aro, "model")


def resize_stable(img: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """Resize in float32, unrounded: OpenCV's uint8 resize is fixed-point code that rounds differently on x86 and
    Arm (one step in a quarter of the values, enough to flip near-tie faces); the float path agrees (docs/jetson.md).
    """
    return cv2.resize(img.astype(np.float32), size, interpolation=interpolation)


def _to_colour(img: np.ndarray, colour: str) -> np.ndarray:
    if img.ndim == 2 or img.shape[2] == 1:
        gray = img if img.ndim == 2 else img[:, :, 0]
        if colour == "gray":
            return gray
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB if colour == "rgb" else cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if colour == "gray":
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if colour == "rgb":
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img
