"""The metadata contract: round trip, validation, and refusing models whose metadata lies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import edgeemo
from edgeemo.errors import ModelError
from edgeemo.runtime.assets import resolve_model
from edgeemo.runtime.spec import METADATA_KEY, HeadSpec, InputSpec, ModelSpec, Normalisation

onnx = pytest.importorskip("onnx")


def shipped_spec() -> ModelSpec:
    return edgeemo.load_model("mini-xception").spec


def test_shipped_model_metadata_round_trips() -> None:
    spec = shipped_spec()
    assert spec.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert spec.input.normalisation.mode == "affine"


def test_validation_names_every_problem() -> None:
    bad = ModelSpec(
        "x",
        InputSpec("in", 0, 64, channels=3, colour="gray", dtype="uint8", normalisation=Normalisation("affine")),
        (HeadSpec("emotion", "out", "regression"),),
        classes=("a",),
    )
    with pytest.raises(ModelError) as err:
        bad.validate("bad.onnx")
    msg = str(err.value)
    for part in ("bad.onnx", "not positive", "3 channels", "affine normalisation", "regression", "two class"):
        assert part in msg


def test_malformed_json_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="not valid JSON"):
        ModelSpec.from_json("{nope", "m.onnx")
    with pytest.raises(ModelError, match="malformed"):
        ModelSpec.from_json('{"name": "x"}', "m.onnx")


def _rewrite_metadata(tmp_path, spec: ModelSpec | None):
    model = onnx.load(str(resolve_model("mini-xception")))
    del model.metadata_props[:]
    if spec is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, spec.to_json()
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_model_without_metadata_is_refused(tmp_path) -> None:
    path = _rewrite_metadata(tmp_path, None)
    with pytest.raises(ModelError, match="no 'edgeemo' metadata"):
        edgeemo.EmotionModel(path)


def test_metadata_with_wrong_class_count_is_refused(tmp_path) -> None:
    spec = shipped_spec()
    lying = dataclasses.replace(spec, classes=(*spec.classes, "contempt"))
    path = _rewrite_metadata(tmp_path, lying)
    with pytest.raises(ModelError, match="8 classes but output"):
        edgeemo.EmotionModel(path)


def test_metadata_with_wrong_input_size_is_refused(tmp_path) -> None:
    spec = shipped_spec()
    lying = dataclasses.replace(spec, input=dataclasses.replace(spec.input, height=128, width=128))
    path = _rewrite_metadata(tmp_path, lying)
    with pytest.raises(ModelError, match="does not match metadata"):
        edgeemo.EmotionModel(path)


def test_preprocess_follows_the_spec(astronaut_bgr: np.ndarray) -> None:
    model = edgeemo.load_model("mini-xception")
    batch = model.preprocess([astronaut_bgr[0:200, 150:350], astronaut_bgr[:, :, 0]])
    assert batch.shape == (2, 64, 64, 1) and batch.dtype == np.float32
    assert batch.min() >= -1.0 and batch.max() <= 1.0
