"""Calibration faces for INT8 export: read a folder of face crops and feed them as the runtime would.

A calibration folder holds face crops (any size, gray or colour; PNG, JPEG, BMP, WebP, TIFF), searched
recursively. Every crop goes through :meth:`edgeemo.runtime.model.EmotionModel.preprocess` of the FP32 model, so the
calibrator sees exactly the tensors the runtime will feed later (resize, colour, layout, dtype, normalisation).

The default set (``models/calibration/lfw-subset``) is the 100 face crops of scikit-image's ``lfw_subset``
(registry material, see its CARD.md), so an export never needs data from outside the project.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeemo.errors import DecodeError, ExportError
from edgeemo.io.images import DEFAULT_MAX_PIXELS, check_header, max_file_bytes, read_regular_file
from edgeemo.runtime.assets import shipped_models_dir

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
DEFAULT_SET = ("calibration", "lfw-subset")
AUGMENTATIONS = ("none", "flip")


def default_calibration_dir() -> Path:
    """The shipped calibration faces (scikit-image ``lfw_subset`` faces)."""
    return shipped_models_dir().joinpath(*DEFAULT_SET)


@dataclass(frozen=True)
class CalibrationSet:
    """Decoded face crops (uint8, BGR or gray) and where they came from."""

    folder: Path
    images: tuple[np.ndarray, ...]
    skipped: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.images)

    def summary(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "images": self.count, "skipped": len(self.skipped)}


def load_calibration_set(folder: Path | None = None, max_images: int | None = None) -> CalibrationSet:
    """Decode every image under ``folder`` (sorted, recursive), skipping undecodable files with a warning.

    Raises :class:`ExportError` naming the folder when it is missing or holds no decodable image.
    """
    root = Path(folder) if folder is not None else default_calibration_dir()
    if not root.is_dir():
        raise ExportError(f"{root}: calibration folder not found (give a folder of face crops)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    images: list[np.ndarray] = []
    skipped: list[str] = []
    for f in files:
        if max_images is not None and len(images) >= max_images:
            break
        img = _decode(f)
        if img is None:
            log.warning("%s: not a decodable image, skipped for calibration", f)
            skipped.append(str(f))
            continue
        images.append(img)
    if not images:
        detail = f"{len(skipped)} undecodable files" if skipped else "no image files"
        raise ExportError(
            f"{root}: calibration folder holds no decodable face images ({detail}; suffixes "
            f"{', '.join(IMAGE_SUFFIXES)})"
        )
    log.info("calibration: %d faces from %s (%d skipped)", len(images), root, len(skipped))
    return CalibrationSet(root, tuple(images), tuple(skipped))


def _decode(path: Path) -> np.ndarray | None:
    try:  # the runtime's checks: a regular file, bounded read, size from the header before decoding
        data = read_regular_file(path, max_file_bytes(DEFAULT_MAX_PIXELS))
        check_header(data, str(path))
    except DecodeError as exc:
        log.warning("%s", exc)
        return None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        return None
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        return None
    return img


def augment(images: Sequence[np.ndarray], how: str) -> list[np.ndarray]:
    """``flip`` adds the mirror image of every crop (faces are near-symmetric; it widens the seen ranges)."""
    if how not in AUGMENTATIONS:
        raise ExportError(f"unknown calibration augmentation {how!r}; choose one of {', '.join(AUGMENTATIONS)}")
    out = list(images)
    if how == "flip":
        out += [np.ascontiguousarray(img[:, ::-1]) for img in images]
    return out


class PreprocessedReader:
    """onnxruntime ``CalibrationDataReader``: batches of runtime-preprocessed tensors under the input name.

    Written as a plain class with the reader's two methods so this module does not import onnxruntime's
    quantization package until calibration actually runs.
    """

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self.input_name = input_name
        self._batches = list(batches)
        self._it: Iterator[np.ndarray] = iter(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._it = iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)


def make_reader(tensor: np.ndarray, input_name: str, batch_size: int = 16) -> PreprocessedReader:
    """Split one preprocessed tensor (N, ...) into calibration batches."""
    if batch_size < 1:
        raise ExportError(f"calibration batch size must be >= 1, got {batch_size}")
    batches = [tensor[i : i + batch_size] for i in range(0, len(tensor), batch_size)]
    return PreprocessedReader(input_name, batches)


def intermediate_outputs(
    model: Any, calibration: np.ndarray, input_name: str, tensors: Sequence[str], batch: int = 64
) -> Iterator[dict[str, np.ndarray]]:
    """Values of ``model``'s intermediate ``tensors`` on ``calibration``, one dict per batch.

    Graph optimisation is off so that every named tensor still exists in the session.
    """
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in tensors if t not in have)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for i in range(0, len(calibration), batch):
        values = sess.run(list(tensors), {input_name: calibration[i : i + batch]})
        yield dict(zip(tensors, values))
