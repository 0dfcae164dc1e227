"""blazeface on onnxruntime: anchors, decoding and NMS on real model outputs, variants, tiling, real photos."""

from __future__ import annotations

import json
from itertools import pairwise

import cv2
import numpy as np
import pytest

from edgeemo.detectors import create_detector
from edgeemo.detectors.blazeface import (
    METADATA_KEY,
    MODEL_FILES,
    BlazeFaceDetector,
    BlazeFaceModel,
    decode,
    ssd_anchors,
    tiles,
    weighted_nms,
)
from edgeemo.errors import EdgeemoError, InputError, ModelError
from edgeemo.runtime.assets import asset_path

pytest.importorskip("onnxruntime")

ASTRONAUT_FACE_CENTRE = (222.0, 127.0)  # hand-checked on scikit-image's 512x512 astronaut


@pytest.fixture(scope="module")
def short():
    with BlazeFaceDetector(model="short") as d:
        yield d


@pytest.fixture(scope="module")
def full():
    with BlazeFaceDetector(model="full") as d:
        yield d


@pytest.fixture(scope="module")
def auto():
    with create_detector("blazeface") as d:
        yield d


def _centre(face):
    return (face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2


@pytest.mark.parametrize("variant", ["short", "full", "auto"])
def test_finds_the_astronaut_with_landmarks(variant, astronaut_bgr):
    with BlazeFaceDetector(model=variant) as det:
        faces = det.detect(astronaut_bgr)
        names = det.keypoint_names
    assert len(faces) == 1
    (f,) = faces
    cx, cy = _centre(f)
    assert abs(cx - ASTRONAUT_FACE_CENTRE[0]) < 15 and abs(cy - ASTRONAUT_FACE_CENTRE[1]) < 20
    assert 70 < f.box.width < 130 and f.score > 0.8
    lm = dict(zip(names, f.landmarks))
    # The subject's right eye is on the image's left; eyes above the nose, the nose above the mouth.
    assert lm["right_eye"][0] < lm["nose_tip"][0] < lm["left_eye"][0]
    assert max(lm["right_eye"][1], lm["left_eye"][1]) < lm["nose_tip"][1] < lm["mouth_center"][1]
    assert all(f.box.x1 - 10 < x < f.box.x2 + 10 and f.box.y1 - 10 < y < f.box.y2 + 10 for x, y in f.landmarks)


def test_metadata_drives_the_anchor_layout():
    for variant, count, grid in (("short", 896, 16), ("full", 2304, 48)):
        model = BlazeFaceModel(asset_path("detectors", "blazeface", MODEL_FILES[variant]))
        assert model.spec.variant == variant and len(model.anchors) == count
        # The first anchors sit in the top-left cell of the finest grid, the last in the bottom-right cell.
        assert np.allclose(model.anchors[0], 0.5 / grid)
        assert np.allclose(model.anchors[-1], 1 - 0.5 / (model.spec.size // model.spec.strides[-1]))
        model.close()
    short_spec = BlazeFaceModel(asset_path("detectors", "blazeface", MODEL_FILES["short"])).spec
    anchors = ssd_anchors(short_spec)
    # Short range: 2 anchors per cell on the stride-8 grid, then 6 per cell on the stride-16 grid.
    assert np.array_equal(anchors[0], anchors[1]) and not np.array_equal(anchors[1], anchors[2])
    assert (anchors[512:518] == anchors[512]).all()


def test_decode_and_weighted_nms_on_real_outputs(short, astronaut_bgr):
    model = short._model
    raw_boxes, raw_scores, _ = model.raw(astronaut_bgr)
    d = decode(raw_boxes, raw_scores, model.anchors, model.spec, 0.5)
    # BlazeFace fires on several neighbouring anchors for one face; all of them lie on the face.
    assert len(d.scores) >= 3
    assert (d.scores >= 0.5).all()
    assert d.keypoints.shape == (len(d.scores), 6, 2)
    fewer = decode(raw_boxes, raw_scores, model.anchors, model.spec, float(np.median(d.scores)))
    assert 0 < len(fewer.scores) < len(d.scores)
    merged = weighted_nms(d, 0.3)
    assert len(merged.scores) == 1
    assert merged.scores[0] == pytest.approx(d.scores.max())
    w = d.scores[:, None] / d.scores.sum()
    assert np.allclose(merged.boxes[0], (d.boxes * w).sum(axis=0), atol=1e-5)
    # With an IoU threshold above every pairwise overlap nothing merges, and the order is best first.
    apart = weighted_nms(d, 1.0)
    assert len(apart.scores) == len(d.scores)
    assert np.all(np.diff(apart.scores) <= 0)


def test_letterbox_maps_back_to_frame_pixels(full, astronaut_bgr):
    (ref,) = full.detect(astronaut_bgr)
    canvas = np.zeros((700, 1100, 3), np.uint8)
    canvas[150:662, 400:912] = astronaut_bgr
    (f,) = full.detect(canvas)
    shifted = type(ref.box)(ref.box.x1 + 400, ref.box.y1 + 150, ref.box.x2 + 400, ref.box.y2 + 150)
    assert f.box.iou(shifted) > 0.85


def test_gray_input_and_refusals(auto, astronaut_bgr):
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    (g,) = auto.detect(gray)
    (c,) = auto.detect(astronaut_bgr)
    assert g.box.iou(c.box) > 0.8
    with pytest.raises(InputError, match="uint8"):
        auto.detect(astronaut_bgr.astype(np.float32))
    with pytest.raises(InputError, match="model"):
        BlazeFaceDetector(model="medium")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="min_score"):
        BlazeFaceDetector(min_score=1.5)


def test_closed_detector_refuses(astronaut_bgr):
    det = BlazeFaceDetector(model="short")
    det.close()
    with pytest.raises(EdgeemoError, match="closed"):
        det.detect(astronaut_bgr)


def test_model_without_detector_metadata_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")

    proto = onnx.load(str(asset_path("detectors", "blazeface", MODEL_FILES["short"])))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta[METADATA_KEY])["anchors"]["count"] == 896
    del proto.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match=METADATA_KEY):
        BlazeFaceDetector(model="short", model_path=path)


def test_tiles_cover_the_frame_with_overlap():
    assert tiles(640, 480, 768, 80) == [(0, 0, 640, 480)]
    wins = tiles(1920, 1080, 768, 240)
    assert len(wins) == 8
    covered = np.zeros((1080, 1920), bool)
    for x1, y1, x2, y2 in wins:
        assert x2 - x1 <= 768 and y2 - y1 <= 768
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    xs = sorted({x1 for x1, *_ in wins})
    assert all(a + 768 - b >= 240 for a, b in pairwise(xs))


def test_short_misses_the_group_that_full_finds(short, full, shared_photos):
    frame = cv2.imread(str(shared_photos / "facenet-pytorch_multiface.jpg"))
    assert len(short.detect(frame)) == 0
    faces = full.detect(frame)
    assert len(faces) == 6
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


def test_auto_tiles_large_frames_of_small_faces(full, auto, shared_photos):
    # The group photo repeated 2x2: each face keeps its ~90 px but is 1/27 of the frame's width, below the
    # full-range model's reach on the whole frame; the windows of auto bring it back in range.
    frame = np.tile(cv2.imread(str(shared_photos / "facenet-pytorch_multiface.jpg")), (2, 2, 1))
    assert len(full.detect(frame)) <= 4
    faces = auto.detect(frame)
    assert len(faces) >= 22
    boxes = [f.box for f in faces]
    assert max(a.iou(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]) < 0.3  # no duplicates


# Faces found per shared photo (which hold 4, 3, 5, 6, 5, 2 and 6 faces) by short, full and auto.
COUNTS = {
    "face-api-js_bbt1.jpg": (0, 4, 4),
    "face-api-js_bbt2.jpg": (2, 3, 3),
    "face-api-js_bbt3.jpg": (2, 5, 5),
    "face-api-js_bbt4.jpg": (6, 6, 6),
    "face-api-js_bbt5.jpg": (3, 5, 5),
    "face_recognition_two_people.jpg": (2, 2, 2),
    "facenet-pytorch_multiface.jpg": (0, 6, 6),
}


def test_counts_on_the_shared_photos(short, full, auto, shared_photos):
    found = {}
    for path in sorted(shared_photos.glob("*.jpg")):
        frame = cv2.imread(str(path))
        found[path.name] = tuple(len(d.detect(frame)) for d in (short, full, auto))
    assert found == COUNTS


def test_auto_finds_at_least_what_dlib_hog_finds(auto, shared_photos):
    dlib = pytest.importorskip("dlib")
    hog = dlib.get_frontal_face_detector()
    for path in sorted(shared_photos.glob("*.jpg")):
        frame = cv2.imread(str(path))
        faces = auto.detect(frame)
        hog_rects = hog(np.ascontiguousarray(frame[:, :, ::-1]), 0)
        assert len(faces) >= len(hog_rects), path.name
        # Every face dlib finds is one of ours.
        for r in hog_rects:
            centre = ((r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2)
            assert any(f.box.x1 < centre[0] < f.box.x2 and f.box.y1 < centre[1] < f.box.y2 for f in faces), path.name


def test_concurrent_detection_matches_serial(auto, assert_thread_safe):
    """The detector declares itself thread-safe (video runs detect ahead on threads): prove it on real frames."""
    assert_thread_safe(auto, 6)
