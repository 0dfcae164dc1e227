"""Valence/arousal in the pipeline: fused heads, separate `--va` models (same or different input spec), derived.

The VA graphs here are small real ONNX models whose output is a known function of their input tensor (the mean
pixel value), so the test can tell which crop, which preprocessing and which head each number came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeemo import Pipeline
from edgeemo.results import Box
from edgeemo.runtime.assets import resolve_model
from edgeemo.runtime.crops import crop_box
from edgeemo.runtime.model import EmotionModel
from edgeemo.runtime.spec import METADATA_KEY

onnx = pytest.importorskip("onnx")
helper = onnx.helper


def _mean_model(path: Path, head: str, height: int, width: int, dtype: str, normalisation: dict) -> Path:
    """A regression model: ``head`` = mean of the (N, H, W, 1) input."""
    elem = onnx.TensorProto.FLOAT if dtype == "float32" else onnx.TensorProto.UINT8
    nodes = [
        helper.make_node("Cast", ["input"], ["x"], to=onnx.TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["out"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["out", "one"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        head,
        [helper.make_tensor_value_info("input", elem, ["N", height, width, 1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 1])],
        initializer=[helper.make_tensor("one", onnx.TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    spec = {
        "schema": 1,
        "name": f"mean-{head}",
        "classes": [],
        "input": {"name": "input", "layout": "NHWC", "height": height, "width": width, "channels": 1,
                  "colour": "gray", "dtype": dtype, "normalisation": normalisation, "interpolation": "linear"},
        "outputs": [{"name": head, "onnx_name": "y", "kind": "regression"}],
    }  # fmt: skip
    helper.set_model_props(model, {METADATA_KEY: json.dumps(spec)})
    onnx.save(model, path)
    return path


def _fused_model(path: Path) -> Path:
    """mini-xception plus valence (mean input) and arousal (max input) heads: a fused model as export makes."""
    model = onnx.load(resolve_model("mini-xception"))
    g = model.graph
    g.node.extend(
        [
            helper.make_node("ReduceMean", ["input"], ["valence"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("ReduceMax", ["input"], ["arousal"], axes=[1, 2, 3], keepdims=0),
        ]
    )
    g.output.extend(
        [
            helper.make_tensor_value_info("valence", onnx.TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("arousal", onnx.TensorProto.FLOAT, ["N"]),
        ]
    )
    meta = {p.key: p.value for p in model.metadata_props}
    spec = json.loads(meta[METADATA_KEY])
    spec["outputs"] += [
        {"name": "valence", "onnx_name": "valence", "kind": "regression"},
        {"name": "arousal", "onnx_name": "arousal", "kind": "regression"},
    ]
    del model.metadata_props[:]
    helper.set_model_props(model, {**meta, METADATA_KEY: json.dumps(spec)})
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def two_crops(astronaut_bgr: np.ndarray) -> list[np.ndarray]:
    face = crop_box(astronaut_bgr, Box(180, 80, 270, 170))
    dark = (face // 3).astype(np.uint8)
    return [face, dark]


MINI_XCEPTION_NORM = {"mode": "affine", "scale": 1 / 127.5, "offset": -1.0}


def test_separate_va_models_same_and_different_input(tmp_path: Path, two_crops: list[np.ndarray]) -> None:
    same = _mean_model(tmp_path / "v.onnx", "valence", 64, 64, "float32", MINI_XCEPTION_NORM)
    other = _mean_model(tmp_path / "a.onnx", "arousal", 32, 32, "uint8", {"mode": "in_graph"})
    with Pipeline(detector=None, va_models=[same, other]) as pipe:
        assert [v.shares_input for v in pipe._va] == [True, False]
        preds = pipe.classify_crops(two_crops)
        plain = Pipeline(pipe.model, detector=None, derive_va=False).classify_crops(two_crops)
    want_v = pipe.model.preprocess(two_crops).mean(axis=(1, 2, 3))  # classifier's batch, reused
    want_a = EmotionModel(other).preprocess(two_crops).astype(np.float32).mean(axis=(1, 2, 3))  # own 32x32 uint8
    assert [p.va_source for p in preds] == ["model", "model"]
    np.testing.assert_allclose([p.valence for p in preds], want_v, rtol=1e-5)
    np.testing.assert_allclose([p.arousal for p in preds], want_a, rtol=1e-5)
    assert preds[0].valence > preds[1].valence and preds[0].arousal > preds[1].arousal  # each on its own crop
    assert [p.probabilities for p in preds] == [p.probabilities for p in plain]  # emotion untouched
    assert plain[0].valence is None and plain[0].va_source is None


def test_fused_model_heads_fill_va(tmp_path: Path, two_crops: list[np.ndarray]) -> None:
    with Pipeline(_fused_model(tmp_path / "fused.onnx"), detector=None) as pipe:
        assert pipe.va_source == "model"
        preds = pipe.classify_crops(two_crops)
        batch = pipe.model.preprocess(two_crops)
    np.testing.assert_allclose([p.valence for p in preds], batch.mean(axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose([p.arousal for p in preds], batch.max(axis=(1, 2, 3)), rtol=1e-5)
    assert preds[0].to_dict()["va_source"] == "model"


def test_derived_va_when_no_model_gives_it(two_crops: list[np.ndarray]) -> None:
    with Pipeline(detector=None) as pipe:
        assert pipe.va_source == "derived"
        [happy, _] = pipe.classify_crops(two_crops)
    assert happy.label == "happy" and happy.va_source == "derived" and happy.valence > 0.3
    with Pipeline(detector=None, derive_va=False) as off:
        assert off.va_source is None and off.classify_crops(two_crops)[0].valence is None
