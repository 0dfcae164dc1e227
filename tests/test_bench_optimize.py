"""export.optimize: the folded thesis graph gives the same answers on real faces and keeps the edgeemo facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from edgeemo.assets import resolve_model  # noqa: E402
from edgeemo.errors import ModelError  # noqa: E402
from edgeemo.model import EmotionModel  # noqa: E402
from export.optimize import fold_input_normalisation, max_abs_difference, optimize_onnx  # noqa: E402


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


@pytest.mark.parametrize("name", ["thesis-mobilenet", "thesis-fused"])
def test_fold_removes_the_normalisation_chain_and_keeps_answers(
    name: str, astronaut_bgr: np.ndarray, tmp_path: Path
) -> None:
    path = _model(name)
    original = onnx.load(str(path))
    tiles = [n.op_type for n in original.graph.node].count("Tile")
    assert tiles >= 1  # one chain per sub-model of a fused graph
    assert fold_input_normalisation(onnx.load(str(path))) == tiles
    optimized = optimize_onnx(original)
    ops = [n.op_type for n in optimized.graph.node]
    assert "Tile" not in ops
    assert "Mul" not in ops and "Sub" not in ops
    assert list(optimized.metadata_props) == list(original.metadata_props)
    assert [i.name for i in optimized.graph.input] == [i.name for i in original.graph.input]
    assert [o.name for o in optimized.graph.output] == [o.name for o in original.graph.output]

    out = tmp_path / "model.onnx"
    onnx.save(optimized, str(out))
    reference = EmotionModel(path)
    folded = EmotionModel(out)  # loads through the metadata checks like any shipped model
    batch = _faces(astronaut_bgr, reference)
    a, b = reference.run_batch(batch), folded.run_batch(batch)
    for head in reference.spec.head_names:
        scale = float(np.abs(a.heads[head]).max())
        assert np.abs(a.heads[head] - b.heads[head]).max() <= 1e-4 * max(scale, 1.0), head
    np.testing.assert_array_equal(a.probabilities.argmax(1), b.probabilities.argmax(1))
    diffs = max_abs_difference(original, optimized, batch)
    assert set(diffs) == {o.name for o in original.graph.output}


def test_fold_leaves_a_graph_without_the_pattern_alone() -> None:
    path = resolve_model("mini-xception")  # float input, normalised outside the graph: nothing to fold
    model = onnx.load(str(path))
    before = model.SerializeToString()
    assert fold_input_normalisation(model) == 0
    assert model.SerializeToString() == before
