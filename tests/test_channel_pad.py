"""edgeemo_export.channel_pad and the AVX-512 layout copies: exact on real faces, picked by the runtime, left alone
where padding would not be exact or would cost more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeemo.runtime.assets import LAYOUT_SUFFIX, PRECISION_SUFFIX, list_models, resolve_model  # noqa: E402
from edgeemo.runtime.model import EmotionModel  # noqa: E402
from edgeemo.runtime.session import SessionOptions, cpu_has_avx512  # noqa: E402
from edgeemo_export.channel_pad import PAD_KEY, pad_narrow_channels  # noqa: E402

LAYOUT_FOLDERS = [e for e in list_models() if e.shipped and "avx512" in e.layouts()]


def _faces(astronaut_bgr: np.ndarray) -> list[np.ndarray]:
    face = astronaut_bgr[30:230, 140:320]
    return [face, np.ascontiguousarray(face[:, ::-1]), face[20:180, 10:170], astronaut_bgr[:300, :300]]


def test_every_shipped_emotion_model_has_a_layout_copy() -> None:
    names = {e.name for e in LAYOUT_FOLDERS}
    assert {"mini-xception", "thesis-mobilenet", "thesis-valence", "thesis-arousal", "thesis-fused"} <= names


@pytest.mark.parametrize("entry", LAYOUT_FOLDERS, ids=lambda e: e.name)
def test_shipped_layout_copy_is_what_the_exporter_writes(entry) -> None:
    want = pad_narrow_channels(onnx.load(str(entry.folder / PRECISION_SUFFIX["fp32"]))).SerializeToString()
    assert (entry.folder / LAYOUT_SUFFIX["avx512"]).read_bytes() == want


@pytest.mark.parametrize("name", ["mini-xception", "thesis-fused"])
def test_layout_copy_gives_the_same_answers_on_real_faces(name: str, astronaut_bgr: np.ndarray) -> None:
    portable = EmotionModel.load(name, session_options=SessionOptions(device="cpu", cpu_layout="portable"))
    padded = EmotionModel.load(name, session_options=SessionOptions(device="cpu", cpu_layout="avx512"))
    assert portable.path.name == "model.onnx" and padded.path.name == "model.avx512.onnx"
    a, b = portable.run(_faces(astronaut_bgr)), padded.run(_faces(astronaut_bgr))
    for head, x in a.heads.items():
        scale = max(1.0, float(np.abs(x).max()))
        assert np.abs(x - b.heads[head]).max() / scale < 1e-5, head
    assert [p.label for p in portable.predict(_faces(astronaut_bgr))] == [
        p.label for p in padded.predict(_faces(astronaut_bgr))
    ]


def test_layout_copy_is_only_for_fp32() -> None:
    options = SessionOptions(device="cpu", cpu_layout="avx512")
    assert EmotionModel.load("mini-xception", "fp16", options).path.name == "model.fp16.onnx"
    assert resolve_model("mini-xception", "int8", "avx512").name == "model.int8.onnx"


def _optimized_ops(path: Path, tmp_path: Path) -> list[str]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / f"{path.parent.name}-{path.name}")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]


@pytest.mark.skipif(not cpu_has_avx512(), reason="the 16-channel NCHWc block is onnxruntime's AVX-512 layout")
@pytest.mark.parametrize("name", ["mini-xception", "thesis-mobilenet"])
def test_layout_copy_drops_layout_conversions_on_avx512(name: str, tmp_path: Path) -> None:
    """Why the copy is faster: onnxruntime no longer reorders the narrow tensors out of its blocked layout."""
    portable = _optimized_ops(resolve_model(name), tmp_path)
    padded = _optimized_ops(resolve_model(name, "fp32", "avx512"), tmp_path)
    assert padded.count("ReorderOutput") < portable.count("ReorderOutput")
    assert padded.count("Conv") == portable.count("Conv")


# --- small graphs: what is padded, what is left alone --------------------------------------------------------


def _conv(name: str, x: str, w: np.ndarray, y: str, group: int = 1, bias: bool = True) -> tuple:
    inits = [numpy_helper.from_array(w.astype(np.float32), f"{name}_w")]
    inputs = [x, f"{name}_w"]
    if bias:
        inits.append(numpy_helper.from_array(np.linspace(-0.5, 0.5, w.shape[0]).astype(np.float32), f"{name}_b"))
        inputs.append(f"{name}_b")
    pads = [w.shape[2] // 2] * 4
    return helper.make_node("Conv", inputs, [y], name=name, group=group, pads=pads), inits


def _model(nodes: list, inits: list, out: str = "y", out_channels: int = 16) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 12, 12])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["n", out_channels, 12, 12])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _stem(rng: np.random.Generator) -> tuple[list, list]:
    """Conv 1→8 3x3 → ReLU → depthwise 3x3 → BatchNorm → Clip: the per-channel chain the padding flows through."""
    c1, i1 = _conv("c1", "x", rng.normal(size=(8, 1, 3, 3)), "a")
    relu = helper.make_node("Relu", ["a"], ["b"])
    dw, i2 = _conv("dw", "b", rng.normal(size=(8, 1, 3, 3)), "c", group=8)
    bn_params = [rng.uniform(0.5, 2, 8), rng.normal(size=8), rng.normal(size=8), rng.uniform(0.5, 2, 8)]
    names = ["bn_s", "bn_b", "bn_m", "bn_v"]
    i3 = [numpy_helper.from_array(p.astype(np.float32), n) for p, n in zip(bn_params, names)]
    bn = helper.make_node("BatchNormalization", ["c", *names], ["d"])
    lo, hi = numpy_helper.from_array(np.float32(-1), "lo"), numpy_helper.from_array(np.float32(1), "hi")
    clip = helper.make_node("Clip", ["d", "lo", "hi"], ["e"])
    return [c1, relu, dw, bn, clip], [*i1, *i2, *i3, lo, hi]


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def test_padding_flows_through_per_channel_nodes_to_a_pointwise_conv_exactly() -> None:
    rng = np.random.default_rng(0)
    nodes, inits = _stem(rng)
    pw, i4 = _conv("pw", "e", rng.normal(size=(16, 8, 1, 1)), "y")
    model = _model([*nodes, pw], inits + i4)
    padded = pad_narrow_channels(model)
    props = {p.key: p.value for p in padded.metadata_props}
    assert props[PAD_KEY] == "block=16;tensors=5"
    w = {t.name: numpy_helper.to_array(t) for t in padded.graph.initializer}
    assert w["c1_w"].shape == (16, 1, 3, 3) and w["pw_w"].shape == (16, 16, 1, 1)
    assert not w["pw_w"][:, 8:].any()  # the padded channels never reach the output
    x = rng.uniform(0, 1, (2, 1, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(_run(padded, x), _run(model, x), atol=1e-5)


def _unchanged(model: onnx.ModelProto) -> None:
    padded = pad_narrow_channels(model)
    assert PAD_KEY not in {p.key for p in padded.metadata_props}
    assert padded.graph.SerializeToString() == model.graph.SerializeToString()


def test_a_3x3_consumer_is_left_alone() -> None:
    """Padding its input channels would multiply a full convolution's work."""
    rng = np.random.default_rng(1)
    c1, i1 = _conv("c1", "x", rng.normal(size=(8, 1, 3, 3)), "a")
    c2, i2 = _conv("c2", "a", rng.normal(size=(16, 8, 3, 3)), "y")
    _unchanged(_model([c1, c2], i1 + i2))


def test_a_narrow_graph_output_is_left_alone() -> None:
    c1, i1 = _conv("c1", "x", np.ones((8, 1, 3, 3)), "y")
    _unchanged(_model([c1], i1, out_channels=8))


def test_an_add_on_the_path_is_left_alone() -> None:
    rng = np.random.default_rng(2)
    nodes, inits = _stem(rng)
    add = helper.make_node("Add", ["e", "b"], ["f"])
    pw, i4 = _conv("pw", "f", rng.normal(size=(16, 8, 1, 1)), "y")
    _unchanged(_model([*nodes, add, pw], inits + i4))


def test_shared_weights_are_left_alone() -> None:
    """Two convolutions reading one weight tensor: padding it for one would change the other."""
    rng = np.random.default_rng(3)
    c1, i1 = _conv("c1", "x", rng.normal(size=(8, 1, 3, 3)), "a", bias=False)
    c2, _ = _conv("c2", "x", rng.normal(size=(8, 1, 3, 3)), "b", bias=False)
    c2.input[1] = "c1_w"
    p1, i2 = _conv("p1", "a", rng.normal(size=(16, 8, 1, 1)), "ya")
    p2, i3 = _conv("p2", "b", rng.normal(size=(16, 8, 1, 1)), "yb")
    add = helper.make_node("Add", ["ya", "yb"], ["y"])
    _unchanged(_model([c1, c2, p1, p2, add], i1 + i2 + i3))


def test_models_command_lists_the_layout_copies() -> None:
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from edgeemo.cli import main; main()", "models", "--json"]
    rows = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout)
    mx = {r["precision"]: Path(r["path"]).name for r in rows if r["name"] == "mini-xception"}
    assert mx["fp32"] == "model.onnx" and mx["fp32 (avx512 layout)"] == "model.avx512.onnx"
