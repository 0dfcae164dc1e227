"""edgeemo_export.optimize: the folded thesis graph gives the same answers on real faces and keeps the edgeemo facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from edgeemo.errors import ModelError  # noqa: E402
from edgeemo.runtime.assets import resolve_model  # noqa: E402
from edgeemo.runtime.model import EmotionModel  # noqa: E402
from edgeemo_export.optimize import fold_input_normalisation, max_abs_difference, optimize_onnx  # noqa: E402


def _model(name: str) -> Path:
    try:
        return resolve_model(name)
    except ModelError as exc:
        pytest.skip(f"{name} not exported here ({exc})")


def _faces(astronaut_bgr: np.ndarray, model: EmotionModel) -> np.ndarray:
    face = astronaut_bgr[30:230, 140:320]
    crops = [face, face[::-1], np.ascontiguousarray(face[:, ::-1]), astronaut_bgr[:300, :300]]
    crops += [np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)]  # the extremes of the range
    return model.preprocess(crops)


def _unfolded_thesis_stem(channels_out: int = 8) -> onnx.ModelProto:
    """The chain tf2onnx writes for the thesis's in-graph normalisation, in front of a padded 3x3 convolution."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array([1, 1, 1, 3], np.int64), "reps"),
        numpy_helper.from_array(np.array(127.5, np.float32), "div"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(rng.normal(size=(channels_out, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=channels_out).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Tile", ["input", "reps"], ["rgb"]),
        helper.make_node("Cast", ["rgb"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["f", "div"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "one"], ["norm"]),
        helper.make_node("Transpose", ["norm"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "stem",
        [helper.make_tensor_value_info("input", TensorProto.UINT8, ["N", 32, 32, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 16, 16])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fold_is_exact_on_real_pixels(astronaut_bgr: np.ndarray) -> None:
    import cv2

    model = _unfolded_thesis_stem()
    meta = model.metadata_props.add()
    meta.key, meta.value = "edgeemo", "{}"
    optimized = optimize_onnx(model)
    ops = [n.op_type for n in optimized.graph.node]
    assert "Tile" not in ops and "Div" not in ops and "Sub" not in ops and "Pad" in ops
    assert list(optimized.metadata_props) == list(model.metadata_props)
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    face = cv2.resize(gray[30:230, 140:320], (32, 32))
    crops = [face, np.zeros((32, 32), np.uint8), np.full((32, 32), 255, np.uint8)]
    batch = np.stack(crops)[..., None]
    diffs = max_abs_difference(model, optimized, batch)
    assert diffs["y"] <= 1e-4  # border pixels included: the explicit pad value reproduces zero padding exactly


@pytest.mark.parametrize("name", ["thesis-mobilenet", "thesis-fused"])
def test_shipped_thesis_graphs_are_already_folded(name: str, astronaut_bgr: np.ndarray) -> None:
    """The exporter applies the fold: shipped graphs have no Tile chain left and still run through the runtime."""
    path = _model(name)
    graph = onnx.load(str(path))
    assert "Tile" not in [n.op_type for n in graph.graph.node]
    assert fold_input_normalisation(graph) == 0
    model = EmotionModel(path)
    out = model.run_batch(_faces(astronaut_bgr, model))
    assert out.probabilities is not None and np.isfinite(out.probabilities).all()


def test_fold_leaves_a_graph_without_the_pattern_alone() -> None:
    path = resolve_model("mini-xception")  # float input, normalised outside the graph: nothing to fold
    model = onnx.load(str(path))
    before = model.SerializeToString()
    assert fold_input_normalisation(model) == 0
    assert model.SerializeToString() == before
