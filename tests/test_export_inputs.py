"""Bad export inputs get clear errors naming the file: not HDF5, weights only, Lambda code, unknown layers,
class lists that do not fit, unnamed regression heads. Small models are built here so this stays fast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeemo.errors import ExportError
from edgeemo_export.keras_io import inspect_h5

h5py = pytest.importorskip("h5py")
tf_keras = pytest.importorskip("tf_keras")

from edgeemo_export.keras_io import load_keras  # noqa: E402
from edgeemo_export.keras_to_onnx import ExportOptions, export_fp32  # noqa: E402
from edgeemo_export.thesis_arch import build_thesis_model  # noqa: E402

pytestmark = pytest.mark.export


def _small(path: Path, units: int = 3, activation: str = "softmax", lam: bool = False) -> Path:
    inp = tf_keras.Input((8, 8, 1), name="input")
    x = tf_keras.layers.Lambda(lambda t: t * 2.0)(inp) if lam else inp
    x = tf_keras.layers.Conv2D(2, 3)(x)
    x = tf_keras.layers.Flatten()(x)
    out = tf_keras.layers.Dense(units, activation=activation)(x)
    tf_keras.Model(inp, out).save(path, save_format="h5")
    return path


def test_not_hdf5(tmp_path):
    p = tmp_path / "model.h5"
    p.write_text("not a model")
    with pytest.raises(ExportError, match=r"model\.h5: is not an HDF5 file"):
        inspect_h5(p)


def test_missing_file(tmp_path):
    with pytest.raises(ExportError, match="not found"):
        inspect_h5(tmp_path / "nope.h5")


def test_weights_only(tmp_path):
    inp = tf_keras.Input((8, 8, 1))
    model = tf_keras.Model(inp, tf_keras.layers.Dense(3)(tf_keras.layers.Flatten()(inp)))
    p = tmp_path / "weights.h5"
    model.save_weights(p)
    with pytest.raises(ExportError, match=r"weights\.h5: holds weights only"):
        load_keras(p)


def test_lambda_refused_without_trust(tmp_path):
    p = _small(tmp_path / "lam.h5", lam=True)
    with pytest.raises(ExportError, match=r"lam\.h5: contains Lambda layer"):
        load_keras(p)
    with pytest.raises(ExportError, match="--trust-lambda"):
        export_fp32(p, tmp_path / "out.onnx", ExportOptions(classes=("a", "b", "c"), scale=1 / 255, offset=0.0))
    assert not (tmp_path / "out.onnx").exists()
    res, _ = export_fp32(
        p, tmp_path / "out.onnx", ExportOptions(classes=("a", "b", "c"), scale=1 / 255, offset=0.0, trust_lambda=True)
    )
    assert res.spec.classes == ("a", "b", "c")


def test_unknown_layer_class(tmp_path):
    p = _small(tmp_path / "custom.h5")
    with h5py.File(p, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        cfg["config"]["layers"][1]["class_name"] = "MyFancyConv"
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(ExportError, match=r"custom\.h5: layer class\(es\) not on the allow-list .*: MyFancyConv"):
        load_keras(p)


def test_class_count_mismatch(tmp_path):
    p = _small(tmp_path / "three.h5")
    with pytest.raises(ExportError, match=r"three\.h5: 2 class names given .* has 3 values"):
        export_fp32(p, tmp_path / "o.onnx", ExportOptions(classes=("a", "b"), scale=1 / 255, offset=0.0))
    with pytest.raises(ExportError, match="--classes"):
        export_fp32(p, tmp_path / "o.onnx", ExportOptions(scale=1 / 255, offset=0.0))


def test_float_input_needs_normalisation(tmp_path):
    p = _small(tmp_path / "float.h5")
    with pytest.raises(ExportError, match="--scale and --offset"):
        export_fp32(p, tmp_path / "o.onnx", ExportOptions(classes=("a", "b", "c")))


def test_regression_needs_head_name(tmp_path):
    p = _small(tmp_path / "reg.h5", units=1, activation="linear")
    with pytest.raises(ExportError, match="--head"):
        export_fp32(p, tmp_path / "o.onnx", ExportOptions(scale=1 / 255, offset=0.0))
    res, _ = export_fp32(p, tmp_path / "o.onnx", ExportOptions(heads=("arousal",), scale=1 / 255, offset=0.0))
    assert [(h.name, h.kind) for h in res.spec.outputs] == [("arousal", "regression")]


def test_thesis_architecture_matches_the_thesis(tmp_path):
    model = build_thesis_model("emotion")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert (model.count_params(), trainable) == (255_417, 249_945)
    p = tmp_path / "thesis.h5"
    model.save(p, save_format="h5")
    info = inspect_h5(p)
    ops = [layer.config.get("function") for layer in info.layers if layer.class_name == "TFOpLambda"]
    assert ops == ["image.grayscale_to_rgb", "cast", "math.truediv", "math.subtract"]
    assert "mobilenet_0.25_128" in {layer.path for layer in info.layers}
