"""``blazeface``: MediaPipe's BlazeFace detectors as ONNX on onnxruntime (no mediapipe, no TensorFlow).

Two shipped models, converted at build time by ``edgeemo_export/blazeface.py``:

- ``short``: 128x128 input, 896 anchors; faces that fill a good part of the frame (webcam, selfie).
- ``full``: 192x192 input, 2304 anchors on a stride-4 grid; small and distant faces, group photos.

Everything a model needs to be fed and decoded (input size, normalisation, anchor layout, decoding scale,
keypoint names, MediaPipe's default thresholds) is read from the ONNX metadata (key :data:`METADATA_KEY`).
Per frame: letterbox to the input square (aspect ratio kept, black padding, as MediaPipe's
ImageToTensorCalculator with BORDER_ZERO), one session call, sigmoid scores, SSD box and keypoint decoding
against fixed-size anchors, MediaPipe's weighted non-maximum suppression, and boxes mapped back to frame pixels.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import cv2
import numpy as np

from edgeemo.detectors._frames import clipped_box
from edgeemo.detectors.common import DetectorBase
from edgeemo.errors import InputError, ModelError
from edgeemo.results import Face, iou_matrix
from edgeemo.runtime.assets import asset_path
from edgeemo.runtime.session import SessionOptions, create_session

log = logging.getLogger(__name__)

METADATA_KEY = "edgeemo.detector"
ModelChoice = Literal["short", "full", "auto"]
MODEL_CHOICES: tuple[ModelChoice, ...] = get_args(ModelChoice)
ANTIALIAS_FACTOR = 1.5  # with antialias, shrink large frames by area averaging to this many input sizes first
MODEL_FILES = {"short": "face_detection_short_range.onnx", "full": "face_detection_full_range.onnx"}


@dataclass(frozen=True)
class BlazeFaceSpec:
    """The facts of one BlazeFace ONNX model, read from its metadata (schema 1 of ``edgeemo.detector``)."""

    variant: str
    input_name: str
    size: int
    pixel_scale: float  # model input = pixel * pixel_scale + pixel_offset, RGB
    pixel_offset: float
    boxes_output: str
    scores_output: str
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    anchor_offset: float
    anchor_count: int
    decode_scale: float
    keypoints: tuple[str, ...]
    score_clip: float
    min_score: float
    min_suppression: float

    @classmethod
    def from_metadata(cls, meta: dict[str, str], origin: str) -> BlazeFaceSpec:
        if METADATA_KEY not in meta:
            raise ModelError(f"{origin}: no {METADATA_KEY!r} metadata; convert it with edgeemo_export/blazeface.py")
        try:
            d = json.loads(meta[METADATA_KEY])
            if d.get("schema") != 1 or d.get("kind") != "blazeface":
                raise ValueError(f"schema {d.get('schema')!r}, kind {d.get('kind')!r}")
            inp, anchors, dec = d["input"], d["anchors"], d["decode"]
            if inp["height"] != inp["width"] or inp["layout"] != "NHWC" or inp["colour"] != "rgb":
                raise ValueError("expected a square NHWC RGB input")
            if inp["normalisation"]["mode"] != "affine" or dec["box_order"] != "cx,cy,w,h":
                raise ValueError("unsupported normalisation or box order")
            if not anchors["fixed_size"]:
                raise ValueError("only fixed-size anchors are supported")
            return cls(
                variant=str(d["variant"]),
                input_name=str(inp["name"]),
                size=int(inp["height"]),
                pixel_scale=float(inp["normalisation"]["scale"]),
                pixel_offset=float(inp["normalisation"]["offset"]),
                boxes_output=str(d["outputs"]["boxes"]),
                scores_output=str(d["outputs"]["scores"]),
                strides=tuple(int(s) for s in anchors["strides"]),
                interpolated_scale_aspect_ratio=float(anchors["interpolated_scale_aspect_ratio"]),
                anchor_offset=float(anchors["offset"]),
                anchor_count=int(anchors["count"]),
                decode_scale=float(dec["scale"]),
                keypoints=tuple(str(k) for k in dec["keypoints"]),
                score_clip=float(dec["score_clip"]),
                min_score=float(d["min_score"]),
                min_suppression=float(d["min_suppression"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{origin}: invalid {METADATA_KEY!r} metadata ({exc})") from exc


def ssd_anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """Anchor centres (N, 2) as (x, y) in [0, 1], in the order the model emits its predictions.

    MediaPipe's SsdAnchorsCalculator: consecutive layers with the same stride share one grid of
    ceil(size / stride) cells; each layer puts one anchor per aspect ratio (here 1) in each cell, plus one
    more when ``interpolated_scale_aspect_ratio`` > 0. Anchors run row by row, cell by cell. With fixed-size
    anchors (width = height = 1) only the centres matter for decoding.
    """
    per_layer = 1 + (spec.interpolated_scale_aspect_ratio > 0)
    centres = []
    i = 0
    while i < len(spec.strides):
        j = i
        while j < len(spec.strides) and spec.strides[j] == spec.strides[i]:
            j += 1
        grid = -(-spec.size // spec.strides[i])
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
        cells = (cells + spec.anchor_offset) / grid
        centres.append(np.repeat(cells, (j - i) * per_layer, axis=0))
        i = j
    anchors = np.concatenate(centres, axis=0)
    if len(anchors) != spec.anchor_count:
        raise ModelError(f"anchor layout gives {len(anchors)} anchors, the model has {spec.anchor_count}")
    return anchors


@dataclass(frozen=True)
class Decoded:
    """Detections in normalised input-tensor coordinates: boxes (M, 4) x1 y1 x2 y2, keypoints (M, K, 2)."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray


def decode(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, spec: BlazeFaceSpec, min_score: float
) -> Decoded:
    """Raw model outputs (N, 4 + 2K) and (N, 1) → the detections scoring at least ``min_score``."""
    logits = np.clip(raw_scores.reshape(-1), -spec.score_clip, spec.score_clip)
    # Threshold in logit space (sigmoid is monotonic) and take the sigmoid of the survivors only.
    with np.errstate(divide="ignore"):
        min_logit = (
            np.log(min_score) - np.log1p(-min_score) if 0.0 < min_score < 1.0 else (-np.inf, np.inf)[min_score >= 1.0]
        )
    keep = np.flatnonzero(logits >= min_logit)
    scores = 1.0 / (1.0 + np.exp(-logits[keep].astype(np.float64)))
    raw = raw_boxes.reshape(len(anchors), -1)[keep] / spec.decode_scale
    a = anchors[keep]
    cx, cy = raw[:, 0] + a[:, 0], raw[:, 1] + a[:, 1]
    half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    k = len(spec.keypoints)
    keypoints = raw[:, 4 : 4 + 2 * k].reshape(-1, k, 2) + a[:, None, :]
    return Decoded(boxes.astype(np.float32), keypoints.astype(np.float32), scores.astype(np.float32))


def weighted_nms(d: Decoded, threshold: float) -> Decoded:
    """MediaPipe's weighted non-maximum suppression, best first.

    Take the best remaining detection and every remaining one overlapping it by IoU > ``threshold``; the
    merged detection keeps the best score and averages boxes and keypoints weighted by score. BlazeFace
    predicts each face from many neighbouring anchors, and averaging them steadies the box from frame to frame.
    """
    order = np.argsort(-d.scores, kind="stable")
    boxes, kps, scores = d.boxes[order], d.keypoints[order], d.scores[order]
    out_b, out_k, out_s = [], [], []
    remaining = np.arange(len(scores))
    while len(remaining):
        ious = iou_matrix(boxes[remaining[:1]], boxes[remaining])[0]
        group = remaining[ious > threshold]
        if len(group) == 0:  # a degenerate (zero-area) box overlaps nothing, not even itself
            group = remaining[:1]
        w = scores[group][:, None]
        total = float(w.sum())
        out_b.append((boxes[group] * w).sum(axis=0) / total)
        out_k.append((kps[group] * w[:, :, None]).sum(axis=0) / total)
        out_s.append(scores[remaining[0]])
        remaining = remaining[~np.isin(remaining, group)]
    k = d.keypoints.shape[1]
    return Decoded(
        np.array(out_b, np.float32).reshape(-1, 4),
        np.array(out_k, np.float32).reshape(-1, k, 2),
        np.array(out_s, np.float32),
    )


class BlazeFaceModel:
    """One BlazeFace ONNX model: letterbox a frame, run it, decode; detections in frame pixels."""

    def __init__(self, path: str | os.PathLike[str], session_options: SessionOptions | None = None) -> None:
        self.path = Path(path)
        self._session = create_session(self.path, session_options)
        meta = self._session.get_modelmeta().custom_metadata_map
        self.spec = BlazeFaceSpec.from_metadata(meta, str(self.path))
        self.anchors = ssd_anchors(self.spec)
        # Affine normalisation as a 256-entry lookup table (pixel value → model value) for cv2.LUT.
        self._lut = np.arange(256, dtype=np.float32) * self.spec.pixel_scale + self.spec.pixel_offset

    def raw(
        self, frame: np.ndarray, antialias: bool = False
    ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
        """Model outputs for a checked BGR/gray frame and the letterbox (left, top, x scale, y scale) in pixels.

        The frame is mapped into the input square as MediaPipe's ImageToTensorCalculator does (OpenCV
        backend): one bilinear affine warp, aspect ratio kept, centred, the rest black. A bilinear warp that
        shrinks a large frame many times over aliases; with ``antialias`` the frame is first shrunk by area
        averaging to 1.5x the input size, which helps small faces (see docs/detectors.md) but departs from
        MediaPipe's own input by a little.
        """
        h, w = frame.shape[:2]
        s = self.spec.size
        fx = fy = 1.0
        if antialias and max(h, w) > ANTIALIAS_FACTOR * s:
            # Shrink by an integer factor first (OpenCV's fast box filter; docs/benchmarks.md), then by area
            # averaging to exactly ANTIALIAS_FACTOR input sizes.
            step = int(max(h, w) // (ANTIALIAS_FACTOR * s))
            if step >= 2:
                frame = cv2.resize(frame, None, fx=1 / step, fy=1 / step, interpolation=cv2.INTER_AREA)
            k = ANTIALIAS_FACTOR * s / max(h, w)
            sw, sh = max(1, round(w * k)), max(1, round(h * k))
            frame = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
            fx, fy = sw / w, sh / h
            h, w = sh, sw
        scale = s / max(h, w)
        left, top = (s - w * scale) / 2, (s - h * scale) / 2
        warp = np.array([[scale, 0.0, left], [0.0, scale, top]])
        square = cv2.warpAffine(frame, warp, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        rgb = cv2.cvtColor(square, cv2.COLOR_GRAY2RGB if square.ndim == 2 else cv2.COLOR_BGR2RGB)
        # OpenCV's table lookup: faster than numpy indexing, same values (docs/benchmarks.md). A new array per
        # call: concurrent calls share no buffer.
        x = cv2.LUT(rgb, self._lut)
        boxes, scores = self._session.run(
            [self.spec.boxes_output, self.spec.scores_output], {self.spec.input_name: x[None]}
        )
        return boxes[0], scores[0], (left, top, scale * fx, scale * fy)

    def detect(self, frame: np.ndarray, min_score: float, min_suppression: float, antialias: bool = False) -> Decoded:
        """Detections of a checked frame in frame pixels (boxes may reach outside the frame), best first."""
        raw_boxes, raw_scores, (left, top, sx, sy) = self.raw(frame, antialias)
        d = weighted_nms(decode(raw_boxes, raw_scores, self.anchors, self.spec, min_score), min_suppression)
        s = float(self.spec.size)
        offset = np.array([left, top], np.float32)
        to_px = np.array([sx, sy], np.float32)
        boxes = ((d.boxes.reshape(-1, 2, 2) * s - offset) / to_px).reshape(-1, 4)
        kps = (d.keypoints * s - offset) / to_px
        return Decoded(boxes, kps, d.scores)

    def close(self) -> None:
        self._session = None


def _starts(length: int, window: int, overlap: int) -> list[int]:
    if length <= window * 1.15:  # a slightly longer single window beats two nearly identical ones
        return [0]
    n = -(-(length - overlap) // (window - overlap))
    return [round(i * (length - window) / (n - 1)) for i in range(n)] if n > 1 else [0]


def tiles(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Windows (x1, y1, x2, y2) of about ``tile`` x ``tile`` pixels (at most 15 % more) covering the frame.

    Neighbouring windows share at least ``overlap`` pixels (``overlap`` < ``tile``), so any face up to
    ``overlap`` pixels wide lies whole inside some window.
    """
    xs, ys = _starts(width, tile, overlap), _starts(height, tile, overlap)
    tw = width if len(xs) == 1 else tile
    th = height if len(ys) == 1 else tile
    return [(x, y, x + tw, y + th) for y in ys for x in xs]


class BlazeFaceDetector(DetectorBase):
    """BlazeFace on onnxruntime.

    ``model``:

    - ``short``: the short-range model on the whole frame; fastest, for faces that fill a good part of the
      frame (webcam, selfie). Misses faces smaller than about a seventh of the frame's longer side.
    - ``full``: the full-range model on the whole frame; finds faces down to about 1/13 of the longer side.
    - ``auto`` (default): ``full`` on the whole frame and, when the frame's longer side exceeds ``tile``
      pixels, also on overlapping windows of about ``tile`` pixels, merged; finds faces down to about
      ``tile / 12`` pixels (~65 px at the default 768, below dlib HOG's ~80 px floor) in frames of any size.
      One session call up to ``tile`` pixels, 1 + windows above (3 at 1280x720, 7 at 1920x1080).

    ``antialias`` (default: on for ``full`` and ``auto``, off for ``short``) shrinks large frames by area
    averaging before MediaPipe's bilinear warp; off, the model input equals MediaPipe's.
    ``min_score`` and ``min_suppression`` default to MediaPipe's values for the model (0.5 for ``short``,
    0.6 for ``full`` and ``auto``; 0.3); ``model_path`` replaces the shipped file (an ONNX written
    by edgeemo_export/blazeface.py); ``session_options`` default to one intra-op thread on the ``auto`` device.
    """

    name = "blazeface"
    # detect() keeps no per-call state and onnxruntime sessions take concurrent runs: video runs detect frames
    # ahead on several threads (edgeemo.video.run).
    thread_safe = True

    def __init__(
        self,
        model: ModelChoice = "auto",
        min_score: float | None = None,
        min_suppression: float | None = None,
        tile: int = 768,
        antialias: bool | None = None,
        model_path: str | os.PathLike[str] | None = None,
        session_options: SessionOptions | None = None,
    ) -> None:
        if model not in MODEL_CHOICES:
            raise InputError(f"detector 'blazeface': unknown model {model!r}; choose one of {', '.join(MODEL_CHOICES)}")
        for label, value in (("min_score", min_score), ("min_suppression", min_suppression)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise InputError(f"detector 'blazeface': {label} must be within [0, 1], got {value}")
        if int(tile) < 64:
            raise InputError(f"detector 'blazeface': tile must be at least 64 pixels, got {tile}")
        variant = "full" if model == "auto" else model
        path = (
            Path(model_path) if model_path is not None else asset_path("detectors", "blazeface", MODEL_FILES[variant])
        )
        self.model = model
        self.tile = int(tile)
        # Exact MediaPipe input for the short-range model (its reference); anti-aliased for full range.
        self.antialias = (variant == "full") if antialias is None else bool(antialias)
        # BlazeFace is small: one thread runs it as fast as two on an idle CPU and several times faster on a
        # busy one (docs/detectors.md), and leaves the other cores to the classifier.
        options = session_options if session_options is not None else SessionOptions(intra_op_threads=1)
        self._model = BlazeFaceModel(path, options)
        spec = self._model.spec
        self.min_score = spec.min_score if min_score is None else float(min_score)
        self.min_suppression = spec.min_suppression if min_suppression is None else float(min_suppression)
        self.keypoint_names = spec.keypoints

    def _detect(self, frame: np.ndarray) -> list[Face]:
        h, w = frame.shape[:2]
        d = self._model.detect(frame, self.min_score, self.min_suppression, self.antialias)
        if self.model == "auto":
            # Overlap: more than the smallest face the whole-frame pass finds (about 1/13 of the longer side).
            windows = tiles(w, h, self.tile, min(max(h, w) // 10, self.tile // 2))
            if len(windows) > 1:
                d = self._with_tiles(self._model, frame, d, windows)
        faces = []
        for box, kps, score in zip(d.boxes, d.keypoints, d.scores):
            b = clipped_box(*box, w, h)
            if b is not None:
                faces.append(Face(b, float(score), tuple((float(x), float(y)) for x, y in kps)))
        return faces

    def _with_tiles(
        self, model: BlazeFaceModel, frame: np.ndarray, whole: Decoded, windows: list[tuple[int, int, int, int]]
    ) -> Decoded:
        """Add detections from overlapping tiles to the whole-frame ones and merge them.

        A tile's detection touching one of the tile's inner edges is a cut face and is dropped: the overlap
        puts that face whole into the neighbouring tile, or it is large enough for the whole-frame pass.
        """
        h, w = frame.shape[:2]
        parts = [whole]
        for x1, y1, x2, y2 in windows:
            d = model.detect(frame[y1:y2, x1:x2], self.min_score, self.min_suppression, self.antialias)
            margin = 0.01 * max(x2 - x1, y2 - y1)
            b = d.boxes
            cut = (
                ((x1 > 0) & (b[:, 0] < margin))
                | ((y1 > 0) & (b[:, 1] < margin))
                | ((x2 < w) & (b[:, 2] > x2 - x1 - margin))
                | ((y2 < h) & (b[:, 3] > y2 - y1 - margin))
            )
            keep = ~cut
            shift = np.array([x1, y1], np.float32)
            parts.append(
                Decoded(
                    (b[keep].reshape(-1, 2, 2) + shift).reshape(-1, 4),
                    d.keypoints[keep] + shift,
                    d.scores[keep],
                )
            )
        merged = Decoded(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.keypoints for p in parts]),
            np.concatenate([p.scores for p in parts]),
        )
        return weighted_nms(merged, self.min_suppression)

    def _release(self) -> None:
        self._model.close()
