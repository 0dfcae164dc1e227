"""The short common path of the Python API: ``run_image(path)``, ``face.label`` / ``face.box``, a hint for None."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeemo import DecodeError, InputError, Pipeline


@pytest.fixture(scope="module")
def pipe() -> Iterator[Pipeline]:
    with Pipeline() as p:
        yield p


def test_run_image_takes_a_path_like_the_array(pipe: Pipeline, astronaut_bgr: np.ndarray, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), astronaut_bgr)
    from_array = pipe.run_image(astronaut_bgr)
    for arg in (str(photo), photo):
        from_path = pipe.run_image(arg)
        assert from_path.source == str(photo)
        assert [f.to_dict() for f in from_path.faces] == [f.to_dict() for f in from_array.faces]
    assert len(from_array.faces) == 1


def test_face_result_shortcuts(pipe: Pipeline, astronaut_bgr: np.ndarray) -> None:
    (face,) = pipe.run_image(astronaut_bgr).faces
    assert face.label == face.prediction.label == "happy"
    assert face.box == face.face.box and face.box.width > 50
    assert face.confidence == face.prediction.confidence
    assert (face.valence, face.arousal) == (face.prediction.valence, face.prediction.arousal)
    flat = face.to_dict()
    assert flat["label"] == face.label and flat["box"] == face.box.to_dict()


def test_run_image_none_says_the_image_is_none(pipe: Pipeline, tmp_path: Path) -> None:
    missing = tmp_path / "no-such.jpg"
    with pytest.raises(InputError, match=r"^image is None \(cv2\.imread .*\)") as err:
        pipe.run_image(cv2.imread(str(missing)))
    assert "\n" not in str(err.value)
    with pytest.raises(DecodeError, match=rf"^{missing}: no such file$"):
        pipe.run_image(missing)
