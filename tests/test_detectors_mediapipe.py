"""mediapipe (Tasks FaceDetector) and blazeface's fidelity to it: runs only where mediapipe is installed.

mediapipe must live in its own virtual environment (it installs opencv-contrib-python over cv2), e.g.
``python3 -m venv ../venv-mp && ../venv-mp/bin/pip install mediapipe onnxruntime pytest scikit-image
&& ../venv-mp/bin/pip install -e . --no-deps && ../venv-mp/bin/python -m pytest tests/test_detectors_mediapipe.py``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeemo.detectors import create_detector
from edgeemo.errors import EdgeemoError, InputError

pytest.importorskip("mediapipe")

ASTRONAUT_FACE_CENTRE = (222.0, 127.0)


@pytest.fixture(scope="module")
def mp_detector():
    with create_detector("mediapipe") as d:
        yield d


def test_finds_the_astronaut(mp_detector, astronaut_bgr):
    (f,) = mp_detector.detect(astronaut_bgr)
    cx, cy = (f.box.x1 + f.box.x2) / 2, (f.box.y1 + f.box.y2) / 2
    assert abs(cx - ASTRONAUT_FACE_CENTRE[0]) < 15 and abs(cy - ASTRONAUT_FACE_CENTRE[1]) < 20
    assert f.score > 0.8 and len(f.landmarks) == 6
    (g,) = mp_detector.detect(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY))
    assert g.box.iou(f.box) > 0.8
    with pytest.raises(InputError):
        mp_detector.detect(astronaut_bgr.astype(np.uint16))


def test_close_is_final(astronaut_bgr):
    det = create_detector("mediapipe")
    det.close()
    det.close()
    with pytest.raises(EdgeemoError, match="closed"):
        det.detect(astronaut_bgr)


def _inner(face, frame) -> bool:
    """A face whose box does not reach the frame's edge (MediaPipe shifts such boxes instead of cutting them)."""
    h, w = frame.shape[:2]
    b = face.box
    return b.x1 > 0 and b.y1 > 0 and b.x2 < w and b.y2 < h


def test_blazeface_short_matches_mediapipe(mp_detector, astronaut_bgr, shared_photos, shared_expressions):
    frames = [astronaut_bgr] + [cv2.imread(str(p)) for p in sorted(shared_photos.glob("*.jpg"))]
    frames += [cv2.imread(str(p)) for p in sorted(shared_expressions.glob("*/*.jpg"))]
    ious = []
    with create_detector("blazeface", model="short") as ours:
        for frame in frames:
            ref, got = mp_detector.detect(frame), ours.detect(frame)
            assert len(got) == len(ref)
            for r in ref:
                best = max(got, key=lambda g, r=r: g.box.iou(r.box))
                assert best.score == pytest.approx(r.score, abs=0.02)
                if _inner(r, frame):
                    ious.append(best.box.iou(r.box))
    assert len(ious) >= 20
    assert min(ious) >= 0.9, sorted(ious)[:3]
