"""dlib-hog on real faces: the astronaut anywhere, the shared group photos where ../shared is present."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeemo.detectors import create_detector
from edgeemo.errors import InputError

pytest.importorskip("dlib")

# Where the astronaut's face is (hand-checked on the 512x512 image): centre and size in pixels.
ASTRONAUT_FACE_CENTRE = (222.0, 127.0)


@pytest.fixture(scope="module")
def hog():
    det = create_detector("dlib-hog")
    yield det
    det.close()


def test_finds_the_astronaut(hog, astronaut_bgr):
    faces = hog.detect(astronaut_bgr)
    assert len(faces) == 1
    b = faces[0].box
    cx, cy = (b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2
    assert abs(cx - ASTRONAUT_FACE_CENTRE[0]) < 15 and abs(cy - ASTRONAUT_FACE_CENTRE[1]) < 15
    assert 60 < b.width < 130
    assert faces[0].landmarks is None


def test_gray_and_bgr_agree(hog, astronaut_bgr):
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    (a,) = hog.detect(astronaut_bgr)
    (g,) = hog.detect(gray)
    assert a.box.iou(g.box) > 0.8
    assert hog.detect(gray[:, :, None])[0].box == g.box


def test_boxes_are_clipped_to_the_frame(hog, astronaut_bgr):
    # Cut the frame through the middle of the face: dlib reports a box reaching outside, we clip it.
    crop = np.ascontiguousarray(astronaut_bgr[100:, 150:])
    faces = hog.detect(crop)
    h, w = crop.shape[:2]
    for f in faces:
        assert 0 <= f.box.x1 < f.box.x2 <= w and 0 <= f.box.y1 < f.box.y2 <= h


def test_upsample_finds_a_small_face(astronaut_bgr):
    small = cv2.resize(astronaut_bgr, (256, 256), interpolation=cv2.INTER_AREA)
    with create_detector("dlib-hog", upsample=0) as d0, create_detector("dlib-hog", upsample=1) as d1:
        assert d0.detect(small) == []  # a ~45 px face is below HOG's 80 px window
        (f,) = d1.detect(small)
        assert abs((f.box.x1 + f.box.x2) / 2 - ASTRONAUT_FACE_CENTRE[0] / 2) < 10


def test_refuses_bad_input(hog, astronaut_bgr):
    with pytest.raises(InputError, match="uint8"):
        hog.detect(astronaut_bgr.astype(np.float32))
    with pytest.raises(InputError, match="shape"):
        hog.detect(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(InputError):
        create_detector("dlib-hog", upsample=-1)


def test_scores_best_first_on_a_group_photo(hog, shared_photos):
    frame = cv2.imread(str(shared_photos / "facenet-pytorch_multiface.jpg"))
    faces = hog.detect(frame)
    assert len(faces) == 6
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)


# Faces dlib HOG (upsample 0) finds in each shared photo; the photos hold 4, 3, 5, 6, 5, 2 and 6 faces.
HOG_COUNTS = {
    "face-api-js_bbt1.jpg": 4,
    "face-api-js_bbt2.jpg": 2,
    "face-api-js_bbt3.jpg": 4,
    "face-api-js_bbt4.jpg": 6,
    "face-api-js_bbt5.jpg": 5,
    "face_recognition_two_people.jpg": 2,
    "facenet-pytorch_multiface.jpg": 6,
}


def test_counts_on_the_shared_photos(hog, shared_photos):
    found = {p.name: len(hog.detect(cv2.imread(str(p)))) for p in sorted(shared_photos.glob("*.jpg"))}
    assert found == HOG_COUNTS


def test_concurrent_detection_matches_serial(hog, assert_thread_safe):
    """Declared thread-safe (video runs detect ahead on every core): each call borrows its own dlib detector,
    and threads give the serial answers on real frames."""
    assert_thread_safe(hog, 4)


def test_closed_detector_refuses_every_thread(astronaut_bgr):
    from concurrent.futures import ThreadPoolExecutor

    from edgeemo.errors import EdgeemoError

    det = create_detector("dlib-hog")
    with ThreadPoolExecutor(2) as pool:
        assert all(pool.map(det.detect, [astronaut_bgr] * 4))
        assert 1 <= len(det._idle) <= 2  # kept for the next calls: at most one per concurrent call
        det.close()
        with pytest.raises(EdgeemoError, match="closed"):
            pool.submit(det.detect, astronaut_bgr).result()
    with pytest.raises(EdgeemoError, match="closed"):
        det.detect(astronaut_bgr)
