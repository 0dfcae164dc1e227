"""The shipped trained thesis classifier, through the runtime only: its card's PublicTest figures reproduced on all
3,589 faces (a few seconds: 128x128 MobileNet alpha 0.25), issue 13's accuracy goal, issue 14's INT8 floor on
this CPU, and the posed happy photo labelled happy with default options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgeemo
from edgeemo.io.images import read_image
from edgeemo.pipeline import Pipeline
from edgeemo.runtime.assets import card_accuracy
from edgeemo.runtime.model import EmotionModel
from edgeemo.runtime.spec import THESIS_FRAMING
from edgeemo_export.faceset import load_face_set

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "models" / "thesis-mobilenet"
FER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MIN_ACCURACY = 0.62  # issue 13's goal for the trained thesis classifier on PublicTest
INT8_MIN_AGREEMENT = 0.97  # issue 14's floor (goal 0.99)
INT8_MAX_ACC_LOSS = 0.005
ONE_FACE = 1.0 / 3589


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((FOLDER / "card.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def publictest(fer_publictest: Path):
    faces = load_face_set(fer_publictest)
    assert len(faces) == 3589 and not faces.skipped
    return faces


def _labels(model: EmotionModel, images) -> np.ndarray:
    batch = model.preprocess(list(images))
    return np.concatenate(
        [model.run_batch(batch[k : k + 256]).probabilities.argmax(1) for k in range(0, len(batch), 256)]
    )


def test_card_and_metadata_say_trained_fer_classes_thesis_framing(card: dict) -> None:
    assert card["weights"] == "trained" and card["training"]["epochs"] == 60
    assert card["training"]["train_seconds"] > 0 and card["training"]["peak_rss_mb"] > 0
    for precision in ("fp32", "fp16", "int8"):
        spec = edgeemo.load_model("thesis-mobilenet", precision).spec
        assert spec.classes == FER and spec.source.file == "thesis_fer2013.h5", precision
        assert spec.input.dtype == "uint8" and spec.input.normalisation.mode == "in_graph"
        assert [f.describe() for f in spec.framing] == [THESIS_FRAMING.describe()], precision
    assert not (FOLDER / "thesis_fer_untrained.h5").exists()


def test_reaches_its_card_accuracy_on_publictest(card: dict, publictest) -> None:
    truth = np.array([FER.index(label) for label in publictest.labels])
    fp32 = _labels(edgeemo.load_model("thesis-mobilenet"), publictest.images)
    accuracy = float(np.mean(fp32 == truth))
    assert accuracy == pytest.approx(card_accuracy(card), abs=ONE_FACE)
    assert accuracy >= MIN_ACCURACY
    int8 = _labels(edgeemo.load_model("thesis-mobilenet", "int8"), publictest.images)
    assert float(np.mean(int8 == fp32)) >= INT8_MIN_AGREEMENT
    assert accuracy - float(np.mean(int8 == truth)) <= INT8_MAX_ACC_LOSS


def test_default_options_label_the_posed_happy_photo_happy(shared_expressions: Path) -> None:
    """Default detector and the model's own framing; the photo's face is labelled happy with confidence 0.91."""
    [photo] = sorted((shared_expressions / "happy").glob("*.jpg"))
    with Pipeline("thesis-mobilenet") as pipe:
        res = pipe.run_image(read_image(photo))
    assert len(res.faces) == 1
    assert res.faces[0].prediction.label == "happy" and res.faces[0].prediction.confidence > 0.5
