"""The image pipeline: frame → detector → crops → one session call for all faces → :class:`FrameResult`.

Crops are framed as the model's metadata says for the pipeline's detector (:meth:`ModelSpec.framing_for`),
unless the caller gives ``framing``, ``margin_ratio`` or ``margin`` (in that order of precedence).

Valence/arousal, in order of precedence per value:
1. ``va_models``: separate regression models (heads named ``valence`` and/or ``arousal``) run on the same
   crops in the same frame step. A VA model whose input spec equals the classifier's reuses the classifier's
   preprocessed batch; one with a different input spec (size, colour, normalisation) gets its own
   preprocessing *of the same crops* — it is never refused for that, and never fed a batch of the wrong shape.
2. the classifier's own ``valence``/``arousal`` heads (a fused model);
3. with ``derive_va``, an estimate from the class probabilities by :func:`edgeemo.va.derive_va`
   (``va_source="derived"``), when it knows the model's classes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from edgeemo.detectors import DEFAULT_DETECTOR, Detector, create_detector
from edgeemo.detectors._frames import check_frame
from edgeemo.errors import EdgeemoError, InputError, ModelError
from edgeemo.io.images import read_image
from edgeemo.results import Face, FaceResult, FrameResult, Prediction, VASource, predictions
from edgeemo.runtime.assets import DEFAULT_MODEL
from edgeemo.runtime.crops import CropBatch, crop_faces, face_eyes, framing_override
from edgeemo.runtime.model import EmotionModel
from edgeemo.runtime.session import SessionOptions
from edgeemo.runtime.spec import EMOTION_HEAD, Framing, InputSpec, Precision
from edgeemo.va import derive_va
from edgeemo.video.options import VideoOptions
from edgeemo.video.session import VideoSession

log = logging.getLogger(__name__)

VA_HEADS = ("valence", "arousal")
DeriveFn = Callable[[np.ndarray, Sequence[str]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class _VAModel:
    model: EmotionModel
    heads: tuple[str, ...]  # which of valence/arousal it provides
    shares_input: bool  # True: feed the classifier's preprocessed batch


def _same_input(a: InputSpec, b: InputSpec) -> bool:
    """Input specs equal in everything that shapes the tensor (the input's graph name may differ)."""
    return (a.height, a.width, a.channels, a.layout, a.colour, a.dtype, a.normalisation, a.interpolation) == (
        b.height,
        b.width,
        b.channels,
        b.layout,
        b.colour,
        b.dtype,
        b.normalisation,
        b.interpolation,
    )


def _load_derive_va(classes: Sequence[str]) -> DeriveFn | None:
    """:func:`edgeemo.va.derive_va` when it can map ``classes``; else None (logged once, not fatal)."""
    probe = np.full((1, len(classes)), 1.0 / len(classes), dtype=np.float32)
    try:
        derive_va(probe, classes)
    except (EdgeemoError, KeyError, ValueError) as exc:
        log.warning("derived valence/arousal is off: it cannot map the classes %s (%s)", list(classes), exc)
        return None
    return derive_va


@dataclass(frozen=True)
class PipelineOptions:
    """Everything that builds a :class:`Pipeline`, in one value: the CLI fills it once for every command."""

    model: str = DEFAULT_MODEL
    precision: Precision = "fp32"
    detector: str | None = DEFAULT_DETECTOR
    detector_options: dict[str, Any] = field(default_factory=dict)
    session: SessionOptions = field(default_factory=SessionOptions)
    margin: float | None = None
    margin_ratio: float | None = None
    va_models: tuple[str, ...] = ()
    derive_va: bool = True
    flip: bool = False  # average each crop with its mirror (twice the model's compute)


class Pipeline:
    """Detect faces, crop them and classify all faces of a frame in one session call.

    ``model`` is a model name, folder, ``.onnx`` path or a loaded :class:`EmotionModel`; ``detector`` a
    registered detector name, a detector object, or None for a pipeline that only classifies crops. A detector
    built here from its name is closed by :meth:`close`; one passed in belongs to the caller. ``margin``
    (pixels per side), ``margin_ratio`` (fraction of the box) or ``framing`` replace the model's framing. With
    ``flip`` every model runs on the crops and their mirrors (:meth:`EmotionModel.run_batch`).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | EmotionModel = DEFAULT_MODEL,
        precision: str = "fp32",
        detector: str | Detector | None = DEFAULT_DETECTOR,
        detector_options: dict[str, Any] | None = None,
        session_options: SessionOptions | None = None,
        margin: float | None = None,
        margin_ratio: float | None = None,
        va_models: Sequence[str | os.PathLike[str]] = (),
        derive_va: bool = True,
        framing: Framing | None = None,
        flip: bool = False,
    ) -> None:
        if framing is not None and framing.problems():
            raise InputError("; ".join(framing.problems()))
        override = framing or framing_override(margin, margin_ratio)
        self.flip = flip
        self.model = model if isinstance(model, EmotionModel) else EmotionModel.load(model, precision, session_options)
        spec = self.model.spec
        if EMOTION_HEAD not in spec.head_names:
            raise ModelError(
                f"{self.model.path}: model {spec.name!r} has no emotion head (heads: {list(spec.head_names)}); "
                "a valence/arousal-only model is attached to a classifier with va_models / --va"
            )
        self._va = tuple(self._load_va(p, precision, session_options) for p in va_models)
        provided = {h for v in self._va for h in v.heads} | {h for h in VA_HEADS if h in spec.head_names}
        self._derive: DeriveFn | None = None
        if derive_va and not provided:
            self._derive = _load_derive_va(spec.classes)
        self._owns_detector = isinstance(detector, str)
        if isinstance(detector, str):
            self.detector: Detector | None = create_detector(detector, **(detector_options or {}))
        else:
            if detector_options:
                raise InputError("detector_options apply only when the detector is given by name")
            self.detector = detector
        detector_name = getattr(self.detector, "name", None)
        self.framing: Framing = override or spec.framing_for(detector_name)
        if override is None and detector_name and self.framing.detector not in ("", detector_name):
            log.info("%s: framing measured on %s boxes, used for %s", spec.name, self.framing.detector, detector_name)
        log.debug("crop framing: %s", self.framing.describe())

    @classmethod
    def from_options(cls, options: PipelineOptions) -> Pipeline:
        """The pipeline ``options`` describe (what every CLI command builds)."""
        return cls(
            model=options.model,
            precision=options.precision,
            detector=options.detector,
            detector_options=dict(options.detector_options) if options.detector is not None else None,
            session_options=options.session,
            margin=options.margin,
            margin_ratio=options.margin_ratio,
            va_models=options.va_models,
            derive_va=options.derive_va,
            flip=options.flip,
        )

    def _load_va(self, path: str | os.PathLike[str], precision: str, options: SessionOptions | None) -> _VAModel:
        model = EmotionModel.load(path, precision, options)
        heads = tuple(h.name for h in model.spec.outputs if h.name in VA_HEADS and h.kind == "regression")
        if not heads:
            raise ModelError(
                f"{model.path}: not a valence/arousal model: it needs a regression head named valence or arousal "
                f"(heads: {[(h.name, h.kind) for h in model.spec.outputs]})"
            )
        shares = _same_input(model.spec.input, self.model.spec.input)
        if not shares:
            log.info("%s: input spec differs from the classifier's; its crops are preprocessed separately", path)
        return _VAModel(model, heads, shares)

    # -- properties -------------------------------------------------------------------------------------------

    @property
    def classes(self) -> tuple[str, ...]:
        return self.model.classes

    @property
    def va_source(self) -> VASource | None:
        """Where valence/arousal come from for this pipeline: model, derived, or None."""
        if self._va or any(h in self.model.spec.head_names for h in VA_HEADS):
            return "model"
        return "derived" if self._derive is not None else None

    # -- the frame step ---------------------------------------------------------------------------------------

    @property
    def concurrent_detect(self) -> bool:
        """Whether :meth:`detect` may run on several threads at once (the detector says it is thread-safe)."""
        return bool(getattr(self.detector, "thread_safe", False))

    @property
    def heavy_detect(self) -> bool:
        """Whether the detector says it takes tens of ms of CPU a frame (see :class:`~edgeemo.detectors.Detector`)."""
        return bool(getattr(self.detector, "cpu_heavy", False))

    # Each public method checks its frame once (check_frame) and hands it on to the private steps, which take
    # checked frames; the video session checks at its own entry and calls the private steps too.

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces of ``frame`` ordered left to right, as a reader numbers them (detectors order by score)."""
        return self._detect(check_frame(frame))

    def _detect(self, frame: np.ndarray) -> list[Face]:
        if self.detector is None:
            raise InputError("this pipeline has no detector (detector=None); use classify_crops()")
        return sorted(self.detector.detect(frame), key=lambda f: (f.box.x1 + f.box.x2, f.box.y1))

    def crops(self, frame: np.ndarray, faces: Sequence[Face]) -> CropBatch:
        """Crops of ``faces`` with this pipeline's framing (degenerate boxes reported in ``skipped``)."""
        return self._crops(check_frame(frame), faces)

    def _crops(self, frame: np.ndarray, faces: Sequence[Face]) -> CropBatch:
        eyes = [face_eyes(f) for f in faces] if self.framing.align else None
        return crop_faces(frame, [f.box for f in faces], self.framing, eyes)

    def run_image(
        self,
        image: np.ndarray | str | os.PathLike[str],
        *,
        index: int = 0,
        timestamp: float | None = None,
        source: str | None = None,
    ) -> FrameResult:
        """Detect, crop and classify every face of an image (one session call per model).

        ``image`` is a BGR (or gray) uint8 array or an image file's path, decoded by :func:`edgeemo.read_image`
        (its path becomes the result's ``source`` unless one is given).
        """
        if isinstance(image, (str, os.PathLike)):
            source = source if source is not None else os.fspath(image)
            image = read_image(image)
        frame = check_frame(image)
        return self._classify(frame, self._detect(frame), index=index, timestamp=timestamp, source=source)

    def classify_faces(
        self,
        frame: np.ndarray,
        faces: Sequence[Face],
        *,
        index: int = 0,
        timestamp: float | None = None,
        source: str | None = None,
        track_ids: Sequence[int | None] | None = None,
    ) -> FrameResult:
        """Classify given detections (e.g. after tracking); results keep the order and identity of ``faces``."""
        return self._classify(
            check_frame(frame), faces, index=index, timestamp=timestamp, source=source, track_ids=track_ids
        )

    def _classify(
        self,
        frame: np.ndarray,
        faces: Sequence[Face],
        *,
        index: int = 0,
        timestamp: float | None = None,
        source: str | None = None,
        track_ids: Sequence[int | None] | None = None,
    ) -> FrameResult:
        if track_ids is not None and len(track_ids) != len(faces):
            raise InputError(f"{len(track_ids)} track ids for {len(faces)} faces")
        batch = self._crops(frame, faces)
        for i, reason in batch.skipped:
            log.warning("%sface %d skipped: %s", f"{source}: " if source else "", i, reason)
        preds = self.classify_crops(batch.crops)
        results = tuple(
            FaceResult(faces[i], pred, None if track_ids is None else track_ids[i])
            for i, pred in zip(batch.kept, preds, strict=True)
        )
        return FrameResult(
            faces=results,
            width=int(frame.shape[1]),
            height=int(frame.shape[0]),
            index=index,
            timestamp=timestamp,
            source=source,
            skipped=tuple((faces[i], reason) for i, reason in batch.skipped),
        )

    def classify_crops(self, crops: Sequence[np.ndarray]) -> list[Prediction]:
        """Predictions for face crops (no detection): one session call per model for the whole list."""
        if len(crops) == 0:
            return []
        batch = self.model.preprocess(crops)
        out = self.model.run_batch(batch, flip=self.flip)
        probs = out.probabilities
        if probs is None:  # excluded in __init__; kept for type narrowing
            raise ModelError(f"{self.model.path}: no emotion output")
        va: dict[str, np.ndarray] = {h: out.heads[h] for h in VA_HEADS if h in out.heads}
        for v in self._va:
            vout = v.model.run_batch(batch if v.shares_input else v.model.preprocess(crops), flip=self.flip)
            va.update({h: vout.heads[h] for h in v.heads})
        source: VASource | None = "model" if va else None
        if not va and self._derive is not None:
            va["valence"], va["arousal"] = self._derive(probs, self.classes)
            source = "derived"
        return predictions(probs, self.classes, va.get("valence"), va.get("arousal"), source)

    # -- lifetime ---------------------------------------------------------------------------------------------

    def video_session(
        self, options: VideoOptions | None = None, *, executor: Executor | None = None, **overrides: Any
    ) -> VideoSession:
        """Video mode: frames with timestamps in, tracked (stable ids) and smoothed results out.

        ``options`` default to :class:`~edgeemo.video.options.VideoOptions`; keyword ``overrides`` (e.g.
        ``detect_every=2``) replace single fields. With an ``executor`` detections run on it, ahead of the frames
        being finished (:meth:`VideoSession.submit`)."""
        return VideoSession(self, options, executor=executor, **overrides)

    def close(self) -> None:
        """Close the detector when this pipeline built it; afterwards only :meth:`classify_crops` still works."""
        if self.detector is not None and self._owns_detector:
            self.detector.close()
        self.detector = None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
