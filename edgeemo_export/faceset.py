"""Face sets for parity checks: a labelled folder (class subfolders or ``labels.csv``), a plain folder, or the
registry faces of scikit-image (usable on any machine).

``labels.csv`` needs a ``path`` column (relative to the csv) and a text label in ``emotion`` or ``label``.
Files that cannot be decoded are skipped and reported, never silently dropped.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeemo.errors import DecodeError, InputError, MissingDependencyError
from edgeemo.io.images import DEFAULT_MAX_PIXELS, check_header, max_file_bytes, read_regular_file

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})
LABELS_CSV = "labels.csv"


@dataclass(frozen=True)
class FaceSet:
    """Decoded face crops (BGR or gray uint8) with optional text labels; ``skipped`` lists (file, reason)."""

    source: str
    names: tuple[str, ...]
    images: tuple[np.ndarray, ...]
    labels: tuple[str | None, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labelled(self) -> bool:
        return any(label is not None for label in self.labels)


def _pick(items: list, limit: int | None) -> list:
    """``limit`` evenly spaced items (deterministic; keeps every class of a class-sorted list represented)."""
    if limit is None or limit >= len(items):
        return items
    if limit <= 0:
        raise InputError(f"face limit must be positive, got {limit}")
    idx = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in idx]


def _entries_from_csv(csv_path: Path) -> list[tuple[Path, str | None]]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if "path" not in cols:
            raise InputError(f"{csv_path}: needs a 'path' column (has {cols})")
        label_col = "emotion" if "emotion" in cols else "label" if "label" in cols else None
        return [(csv_path.parent / row["path"], row[label_col] if label_col else None) for row in reader]


def _entries_from_folder(folder: Path) -> list[tuple[Path, str | None]]:
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir())
    entries: list[tuple[Path, str | None]] = []
    for d in subdirs:
        entries += [(p, d.name) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    entries += [(p, None) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return entries


def load_face_set(path: str | os.PathLike[str], limit: int | None = None) -> FaceSet:
    """Read a face folder or a ``labels.csv``; ``limit`` takes that many evenly spaced faces."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".csv":
        entries = _entries_from_csv(p)
    elif p.is_dir():
        entries = _entries_from_csv(p / LABELS_CSV) if (p / LABELS_CSV).is_file() else _entries_from_folder(p)
    else:
        raise InputError(f"{p}: face set not found (give a folder of faces, class subfolders, or a labels.csv)")
    if not entries:
        raise InputError(f"{p}: no face images found (suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    names, images, labels, skipped = [], [], [], []
    for file, label in _pick(entries, limit):
        try:  # the runtime's checks: a regular file, bounded read, size from the header before decoding
            data = read_regular_file(file, max_file_bytes(DEFAULT_MAX_PIXELS))
            check_header(data, str(file))
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None or img.size == 0:
                raise DecodeError(f"{file}: corrupt image data")
        except DecodeError as exc:
            why = (
                "missing"
                if not file.exists()
                else f"cannot be decoded as an image ({str(exc).removeprefix(f'{file}: ')})"
            )
            skipped.append((str(file), why))
            log.warning("face set %s: skipped %s", p, exc)
            continue
        names.append(str(file.relative_to(p if p.is_dir() else p.parent)))
        images.append(img)
        labels.append(label)
    if not images:
        raise InputError(f"{p}: none of the {len(entries)} listed face images could be read")
    return FaceSet(str(p), tuple(names), tuple(images), tuple(labels), tuple(skipped))


def registry_faces(limit: int | None = None) -> FaceSet:
    """The 100 face images of scikit-image's ``lfw_subset`` (25x25 gray) plus the astronaut's face (unlabelled)."""
    try:
        from skimage import data
    except ImportError as exc:
        raise MissingDependencyError("the built-in parity faces", "dev", "scikit-image ships them") from exc
    faces = [np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8) for f in data.lfw_subset()[:100]]
    astronaut = np.ascontiguousarray(data.astronaut()[50:200, 165:305, ::-1])  # face region, RGB → BGR
    items = [*((f"lfw_subset/{k:03d}", f) for k, f in enumerate(faces)), ("astronaut", astronaut)]
    items = _pick(items, limit)
    return FaceSet(
        "scikit-image:lfw_subset+astronaut",
        tuple(n for n, _ in items),
        tuple(i for _, i in items),
        tuple(None for _ in items),
    )


def parity_faces(path: str | os.PathLike[str] | None, limit: int | None = None) -> FaceSet | None:
    """The face set at ``path``; without one, the registry faces, or None (logged) where scikit-image is missing."""
    if path is not None:
        return load_face_set(path, limit)
    try:
        return registry_faces(limit)
    except MissingDependencyError as exc:
        log.warning("parity skipped: %s; pass --faces DIR", exc)
        return None
