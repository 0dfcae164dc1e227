"""dlib-cnn (MMOD CNN): kept to one small image, since it takes seconds per frame without CUDA."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edgeemo.detectors import create_detector
from edgeemo.errors import InputError

dlib = pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def astronaut_face(astronaut_bgr):
    # 180x180 around the astronaut's face (at about x 175-270, y 75-170 in the full image): ~0.4 s on a CPU.
    return np.ascontiguousarray(astronaut_bgr[40:220, 130:310])


def test_finds_the_astronaut(astronaut_face):
    with create_detector("dlib-cnn") as det:
        faces = det.detect(astronaut_face)
        with pytest.raises(InputError):
            det.detect(astronaut_face.astype(np.int16))
    assert len(faces) == 1
    b = faces[0].box
    cx, cy = (b.x1 + b.x2) / 2 + 130, (b.y1 + b.y2) / 2 + 40
    assert abs(cx - 222) < 15 and abs(cy - 127) < 20
    assert 70 < b.width < 130 and faces[0].score > 0.5 and faces[0].landmarks is None


@pytest.mark.skipif(bool(getattr(dlib, "DLIB_USE_CUDA", False)), reason="dlib has CUDA here")
def test_warns_once_without_cuda(caplog, monkeypatch):
    from edgeemo.detectors import dlib_cnn

    monkeypatch.setattr(dlib_cnn, "_warned_no_cuda", [])
    with caplog.at_level(logging.WARNING, logger="edgeemo.detectors.dlib_cnn"):
        create_detector("dlib-cnn").close()
        create_detector("dlib-cnn").close()
    warnings = [r for r in caplog.records if "no CUDA" in r.getMessage()]
    assert len(warnings) == 1


def test_refuses_negative_upsample():
    with pytest.raises(InputError, match="upsample"):
        create_detector("dlib-cnn", upsample=-1)
