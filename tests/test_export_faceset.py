"""Face sets for parity (labels.csv, class folders, bad files) and threshold overrides; no TensorFlow needed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeemo.errors import InputError
from edgeemo_export.faceset import load_face_set
from edgeemo_export.parity import Thresholds


def _write(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((48, 48), value, np.uint8))


def test_class_folders_and_bad_file(tmp_path):
    _write(tmp_path / "happy" / "a.png", 10)
    _write(tmp_path / "sad" / "b.png", 20)
    (tmp_path / "sad" / "broken.png").write_bytes(b"\x89PNG not really")
    faces = load_face_set(tmp_path)
    assert faces.labels == ("happy", "sad") and faces.names == ("happy/a.png", "sad/b.png")
    assert [Path(f).name for f, _ in faces.skipped] == ["broken.png"]
    assert "cannot be decoded" in faces.skipped[0][1]


def test_labels_csv_prefers_text_emotion(tmp_path):
    _write(tmp_path / "x" / "1.png", 1)
    _write(tmp_path / "x" / "2.png", 2)
    (tmp_path / "labels.csv").write_text("path,label,emotion\nx/1.png,3,happy\nx/2.png,6,neutral\nx/3.png,0,angry\n")
    faces = load_face_set(tmp_path)
    assert faces.labels == ("happy", "neutral")
    assert faces.skipped[0][1] == "missing"


def test_fer_labels_csv_and_limit(fer_publictest):
    faces = load_face_set(fer_publictest / "labels.csv", limit=70)
    assert len(faces) == 70 and faces.labelled
    assert set(faces.labels) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert faces.images[0].shape[:2] == (48, 48)


def test_empty_or_missing(tmp_path):
    with pytest.raises(InputError, match="no face images"):
        load_face_set(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_face_set(tmp_path / "nope")


def test_threshold_overrides():
    t = Thresholds().with_overrides(["fp16.agreement=0.99", "int8.regression.mean_delta=none"])
    assert t.for_head("fp16", "logits").agreement == 0.99
    assert t.for_head("fp16", "logits").max_delta == 1e-2
    assert t.for_head("int8", "regression").mean_delta is None
    assert t.for_head("fp32", "probabilities").max_delta == 1e-5
    for bad in ("fp16.agree=1", "fp16", "fp16.max_delta=x"):
        with pytest.raises(InputError):
            Thresholds().with_overrides([bad])
