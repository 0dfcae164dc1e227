"""Real inputs for benchmarks: by default the sample clip shipped with edgeemo (its frames, and its face as the
classifiers' crop); with a data folder (``edgeemo bench --data DIR``, in the layout of the project's shared data:
``videos/1zlab_face.mp4``, ``photos/*.jpg``, ``fer2013-publictest/``) that folder's frames, photos and crops.

Every function returns the source it used, so a result file says what was measured.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from edgeemo.errors import InputError
from edgeemo.runtime.assets import sample_clip

log = logging.getLogger(__name__)

DETECTOR_SIZES: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720), (1920, 1080))
PIPELINE_SIZES: tuple[tuple[int, int], ...] = ((960, 540), (640, 480))  # 960x540: the thesis measured 168 ms
DATA_VIDEO = Path("videos", "1zlab_face.mp4")
DATA_PHOTOS = "photos"  # *.jpg
DATA_CROPS = "fer2013-publictest"  # *.png / *.jpg face crops, in class folders

DataDir = str | os.PathLike[str] | None


def check_data_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a benchmark data folder; an :class:`InputError` when it holds none of the inputs used here."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{p}: benchmark data folder not found")
    if not ((p / DATA_VIDEO).is_file() or any((p / DATA_PHOTOS).glob("*.jpg")) or (p / DATA_CROPS).is_dir()):
        raise InputError(
            f"{p}: no benchmark inputs in it (expected {DATA_VIDEO}, {DATA_PHOTOS}/*.jpg or {DATA_CROPS}/)"
        )
    return p


def _video_frames(path: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or count
        step = max(1, total // count)
        frames = []
        for k in range(count):
            cap.set(cv2.CAP_PROP_POS_FRAMES, k * step)
            ok, frame = cap.read()
            if ok:
                frames.append(frame)
        return frames
    finally:
        cap.release()


def source_frames(count: int = 4, data: DataDir = None) -> tuple[list[np.ndarray], str]:
    """A few real BGR frames with faces, at their native size, and a description of where they came from."""
    if data is not None:
        video = Path(data) / DATA_VIDEO
        frames = _video_frames(video, count) if video.is_file() else []
        photos = sorted((Path(data) / DATA_PHOTOS).glob("*.jpg"))
        for p in photos[: max(0, count - len(frames))]:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None:
                frames.append(img)
        if frames:
            return frames, f"data folder: {video.name} frames + photos"
    clip = sample_clip()
    frames = _video_frames(clip, count) if clip is not None else []
    if frames:
        return frames, f"sample clip {clip.name}"
    raise LookupError("no real frames: no frames in the data folder and no sample clip in this install")


def resize_cover(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover ``width`` x ``height`` keeping the aspect ratio, then centre-crop to exactly that size."""
    h, w = frame.shape[:2]
    s = max(width / w, height / h)
    nw, nh = max(width, round(w * s)), max(height, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    big = cv2.resize(frame, (nw, nh), interpolation=interp)
    x0, y0 = (nw - width) // 2, (nh - height) // 2
    return np.ascontiguousarray(big[y0 : y0 + height, x0 : x0 + width])


def frames_at(width: int, height: int, count: int = 4, data: DataDir = None) -> tuple[list[np.ndarray], str]:
    frames, source = source_frames(count, data)
    return [resize_cover(f, width, height) for f in frames], source


def face_crops(count: int, data: DataDir = None) -> tuple[list[np.ndarray], str]:
    """``count`` grayscale face crops (repeated if there are fewer): the data folder's FER2013 PublicTest, else
    the sample clip's face, else seeded noise."""
    crops: list[np.ndarray] = []
    source = ""
    if data is not None:
        folder = Path(data) / DATA_CROPS
        files = sorted(folder.rglob("*.png"))[:count] or sorted(folder.rglob("*.jpg"))[:count]
        crops = [c for c in (cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files) if c is not None]
        source = "FER2013 PublicTest"
    clip = sample_clip() if not crops else None
    frames = _video_frames(clip, 1) if clip is not None else []
    if frames:
        h, w = frames[0].shape[:2]  # the clip keeps its one face near the centre, 130-190 px wide
        crops = [cv2.cvtColor(frames[0][h // 2 - 160 : h // 2 + 40, w // 2 - 110 : w // 2 + 90], cv2.COLOR_BGR2GRAY)]
        source = "sample clip face"
    if not crops:
        rng = np.random.default_rng(0)
        crops = [rng.integers(0, 256, (128, 128), dtype=np.uint8)]
        source = "seeded noise"
    return [crops[k % len(crops)] for k in range(count)], source
