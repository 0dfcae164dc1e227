"""Export round trips on real faces: mini-Xception, the trained thesis classifier, and the fused thesis graph."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeemo
from edgeemo.errors import ExportError
from edgeemo.runtime.session import cpuid_features

pytest.importorskip("tf_keras")
pytest.importorskip("tf2onnx")

from edgeemo_export.card import CARD
from edgeemo_export.faceset import load_face_set, registry_faces
from edgeemo_export.framing import parse_framing
from edgeemo_export.fuse import fuse_models
from edgeemo_export.keras_to_onnx import ExportOptions
from edgeemo_export.parity import Thresholds, run_parity
from edgeemo_export.pipeline import export_fused, export_keras

pytestmark = pytest.mark.export

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
FER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MX_FRAMING = parse_framing("box:0.066,0.073,0.125,0.033,square@blazeface")
MX_OPTIONS = ExportOptions(name="mx", classes=FER, scale=2.0 / 255.0, offset=-1.0, framing=MX_FRAMING)


@pytest.fixture(scope="module")
def faces():
    return registry_faces()


@pytest.fixture(scope="module")
def mx(tmp_path_factory, faces):
    out = tmp_path_factory.mktemp("export") / "mx"
    return export_keras(MODELS / "mini-xception" / "emotion_model.hdf5", out, MX_OPTIONS, ("fp32", "fp16"), faces=faces)


@pytest.fixture(scope="module")
def thesis(tmp_path_factory, faces):
    """The shipped thesis HDF5 files (the trained classifier, the untrained twins) exported again into one
    temporary models folder."""
    root = tmp_path_factory.mktemp("thesis")
    out = {}
    for head, name, h5 in (
        ("emotion", "thesis-mobilenet", "thesis_fer2013.h5"),
        ("valence", "thesis-valence", "thesis_valence_untrained.h5"),
        ("arousal", "thesis-arousal", "thesis_arousal_untrained.h5"),
    ):
        options = ExportOptions(name=name, classes=FER if head == "emotion" else (), heads=(head,))
        precisions = ("fp32", "fp16") if head == "emotion" else ("fp32",)
        out[head] = export_keras(MODELS / name / h5, root / name, options, precisions, faces=faces)
    return out


def test_mini_xception_round_trip(mx):
    model = edgeemo.load_model(mx.files["fp32"])
    assert model.classes == FER
    spec = model.spec
    assert (spec.input.height, spec.input.width, spec.input.channels, spec.input.dtype) == (64, 64, 1, "float32")
    assert spec.input.normalisation.mode == "affine"
    assert spec.input.normalisation.scale == pytest.approx(2 / 255) and spec.input.normalisation.offset == -1.0
    assert [(h.name, h.kind) for h in spec.outputs] == [("emotion", "probabilities")]
    assert spec.source.file == "emotion_model.hdf5" and len(spec.source.sha256) == 64
    assert edgeemo.load_model(mx.files["fp16"]).spec.source.precision == "fp16"
    # --framing travels into every variant's metadata
    assert {edgeemo.load_model(p).spec.framing for p in mx.files.values()} == {MX_FRAMING}
    assert mx.parity is not None and mx.parity.passed, mx.parity.to_dict()
    assert [(v.precision, Path(v.path).name) for v in mx.parity.variants] == [
        ("fp32", "model.onnx"),
        ("fp32", "model.avx512.onnx"),  # the AVX-512 layout copy is checked against Keras like the rest
        ("fp16", "model.fp16.onnx"),
    ]
    assert mx.files["fp32-avx512"].name == "model.avx512.onnx"
    fp32 = mx.parity.variants[0].heads[0]
    assert fp32.max_abs_delta <= 1e-5 and fp32.agreement == 1.0
    card = json.loads((mx.folder / CARD).read_text())
    assert card["files"]["model.onnx"]["sha256"] and card["parity"]["passed"] is True


def test_export_is_deterministic(tmp_path):
    from edgeemo_export.keras_io import sha256_file
    from edgeemo_export.keras_to_onnx import export_fp32

    h5 = MODELS / "mini-xception" / "emotion_model.hdf5"
    paths = [export_fp32(h5, tmp_path / f"{k}.onnx", MX_OPTIONS)[0].path for k in range(2)]
    assert sha256_file(paths[0]) == sha256_file(paths[1])


def test_dynamic_batch(mx, astronaut_bgr):
    model = edgeemo.load_model(mx.files["fp32"])
    probs = [model.run([astronaut_bgr] * n).probabilities for n in (1, 3)]
    assert probs[1].shape == (3, 7)
    np.testing.assert_allclose(probs[1][0], probs[0][0], atol=1e-6)


def test_mini_xception_parity_on_fer(mx, fer_publictest):
    faces = load_face_set(fer_publictest, limit=350)
    report = run_parity(list(mx.files.values()), faces)
    assert report.passed, report.to_dict()
    assert report.n_labelled == len(faces) == 350
    fp32, avx512, fp16 = (v.heads[0] for v in report.variants)
    assert fp32.accuracy == pytest.approx(report.reference_accuracy) == avx512.accuracy
    assert 0.55 < fp32.accuracy < 0.75  # FER2013 PublicTest accuracy of this model is 0.6528 on all 3589 faces
    assert fp16.agreement >= 0.995 and fp16.max_abs_delta <= 1e-2
    assert set(fp32.per_class_accuracy) == set(FER)


def test_thesis_round_trip(thesis, faces):
    res = thesis["emotion"]
    model = edgeemo.load_model(res.files["fp32"])
    assert model.classes == FER
    assert model.spec.input.dtype == "uint8" and model.spec.input.normalisation.mode == "in_graph"
    assert (model.spec.input.height, model.spec.input.width) == (128, 128)
    assert [(h.name, h.kind) for h in model.spec.outputs] == [("emotion", "logits")]
    # Trained weights: held to the default thresholds, like mini-Xception (the untrained twins are not).
    assert res.parity.passed, res.parity.to_dict()
    fp32, avx512, fp16 = (v.heads[0] for v in res.parity.variants)
    assert avx512.agreement == 1.0 and avx512.max_delta <= 1e-5
    assert fp32.agreement == 1.0 and fp32.max_delta <= 1e-5
    assert fp16.agreement >= 0.995 and fp16.max_delta <= 1e-2
    val = edgeemo.load_model(thesis["valence"].files["fp32"])
    assert [(h.name, h.kind) for h in val.spec.outputs] == [("valence", "regression")] and val.classes == ()
    out = val.run(list(faces.images[:4])).heads["valence"]
    assert out.shape == (4,) and np.all(np.isfinite(out)) and np.ptp(out) > 0


def test_thesis_parity_on_fer_gives_accuracy(thesis, fer_publictest):
    """Trained on the FER2013 classes: the face labels are its classes, so parity reports accuracy."""
    report = run_parity(list(thesis["emotion"].files.values()), load_face_set(fer_publictest, limit=100))
    assert report.passed, report.to_dict()
    assert report.n_labelled == 100 and report.reference_accuracy is not None
    fp32 = report.variants[0].heads[0]
    assert fp32.accuracy == report.reference_accuracy and fp32.agreement == 1.0
    assert set(fp32.per_class_accuracy) <= set(FER)


def test_fused_graph(thesis, faces, tmp_path):
    parts = [thesis[h].folder for h in ("emotion", "valence", "arousal")]
    res = export_fused(parts, tmp_path / "fused", "fused", ("fp32",), faces=faces)
    model = edgeemo.load_model(res.files["fp32"])
    assert model.spec.head_names == ("emotion", "valence", "arousal")
    assert [o.name for o in model.session.get_outputs()] == ["emotion", "valence", "arousal"]
    for head in res.parity.variants[0].heads:
        assert head.max_delta <= 1e-4 and head.agreement in (None, 1.0), head
    crops = list(faces.images[:5])
    fused = model.run(crops).heads
    for head in ("emotion", "valence", "arousal"):
        alone = edgeemo.load_model(thesis[head].files["fp32"]).run(crops).heads[head]
        np.testing.assert_allclose(fused[head], alone, rtol=0, atol=1e-5)
    preds = model.predict(crops)
    assert preds[0].va_source == "model" and preds[0].valence == pytest.approx(float(fused["valence"][0]))


def test_fusion_refuses_different_inputs(thesis, mx, tmp_path):
    with pytest.raises(ExportError, match="input spec differs"):
        fuse_models([thesis["emotion"].files["fp32"], mx.files["fp32"]], tmp_path / "x.onnx", "x")


def test_parity_threshold_failure_is_reported(mx, faces):
    report = run_parity([mx.files["fp16"]], faces, thresholds=Thresholds().with_overrides(["fp16.max_delta=1e-9"]))
    assert not report.passed
    assert "max |Δ|" in report.variants[0].failures[0]


def test_cli_parity_exit_codes(mx, tmp_path):
    from typer.testing import CliRunner

    from edgeemo.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["parity", str(mx.folder), "--limit", "30", "--json-out", str(tmp_path / "p.json")])
    assert ok.exit_code == 0, ok.output
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["passed"] and [v["precision"] for v in data["variants"]] == ["fp32", "fp16"]
    cpu = data["cpu"]  # the CPU features the variants ran with: INT8 kernels differ by instruction set
    assert cpu["machine"] == platform.machine() and cpu["emulated"] is False
    assert ("avx2" in (cpu["cpuid"] or [])) == bool(cpuid_features().get("AVX2"))
    bad = runner.invoke(app, ["parity", str(mx.folder), "--limit", "30", "--threshold", "fp16.agreement=1.01"])
    assert bad.exit_code != 0
    assert isinstance(bad.exception, ExportError) and "agreement" in str(bad.exception)


def test_cli_import_does_not_load_tensorflow():
    code = "import sys, edgeemo.cli; print('tensorflow' in sys.modules or 'tf_keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
