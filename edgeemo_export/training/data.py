"""Labelled face folders decoded once into uint8 arrays (cached as ``.npz``), and a seeded stratified split.

A folder is read through its ``labels.csv`` (``path`` + text label in ``emotion``) when present, else through
class subfolders; labels must be among the given class names. The cache key covers every file's relative
path, size and mtime, so an edited folder is decoded again instead of being served stale; the set's
``fingerprint`` (what a checkpoint resumes under) hashes the decoded faces and labels, so a copy of the same
data with new mtimes is the same data.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeemo.errors import InputError
from edgeemo_export.faceset import IMAGE_SUFFIXES, LABELS_CSV, _entries_from_csv, _entries_from_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledFaces:
    """``images`` (N, size, size) gray uint8, ``labels`` (N,) class indices into ``classes``."""

    source: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    fingerprint: str  # of the content (see content_fingerprint), shared by every subset

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    def subset(self, index: np.ndarray) -> LabelledFaces:
        return LabelledFaces(self.source, self.images[index], self.labels[index], self.classes, self.fingerprint)


def _entries(folder: Path) -> list[tuple[Path, str | None]]:
    if (folder / LABELS_CSV).is_file():
        return _entries_from_csv(folder / LABELS_CSV)
    return _entries_from_folder(folder)


def _cache_key(folder: Path, entries: list[tuple[Path, str | None]], size: int, classes: tuple[str, ...]) -> str:
    h = hashlib.sha256(f"{size}|{','.join(classes)}".encode())
    for path, label in entries:
        st = path.stat() if path.is_file() else None
        rel = path.relative_to(folder) if path.is_relative_to(folder) else path
        h.update(f"{rel}|{label}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
    return h.hexdigest()[:16]


def content_fingerprint(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> str:
    h = hashlib.sha256(f"{images.shape}|{','.join(classes)}".encode())
    h.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def _decode(path: Path, size: int) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None or img.size == 0:
        raise InputError(f"{path}: cannot be decoded as an image")
    if img.shape != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img


def load_labelled_faces(
    folder: str | Path, classes: tuple[str, ...], size: int = 48, cache_dir: Path | None = None, limit: int = 0
) -> LabelledFaces:
    """Every labelled face of ``folder`` as gray ``size`` x ``size``; ``limit`` > 0 keeps that many, spread
    evenly (for smoke runs). A face that cannot be decoded fails the load: a training set is never silently cut."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: training folder not found (class subfolders or a labels.csv)")
    entries = [(p, lab) for p, lab in _entries(folder) if p.suffix.lower() in IMAGE_SUFFIXES]
    if limit > 0 and limit < len(entries):
        entries = [entries[i] for i in np.linspace(0, len(entries) - 1, limit).round().astype(int)]
    unknown = sorted({str(lab) for _, lab in entries if lab not in classes})
    if unknown:
        raise InputError(f"{folder}: labels {', '.join(unknown)} are not among the classes {', '.join(classes)}")
    if not entries:
        raise InputError(f"{folder}: no labelled face images found")
    key = _cache_key(folder, entries, size, classes)
    cache = cache_dir / f"faces-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            images, labels = z["images"], z["labels"]
        return LabelledFaces(str(folder), images, labels, classes, content_fingerprint(images, labels, classes))
    images = np.stack([_decode(p, size) for p, _ in entries])
    labels = np.array([classes.index(str(lab)) for _, lab in entries], dtype=np.int64)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels)
        tmp.replace(cache)
        log.info("cached %d faces of %s in %s", len(labels), folder, cache)
    return LabelledFaces(str(folder), images, labels, classes, content_fingerprint(images, labels, classes))


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split keeping each class's share: (train index, validation index), both sorted."""
    if not 0.0 < fraction < 1.0:
        raise InputError(f"validation fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = round(len(idx) * fraction)
        val.append(rng.permutation(idx)[:n])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx
