"""Untrusted or broken model files through the CLI: one line naming the file, a non-zero exit code, no traceback,
never a crash or a silently wrong answer.

The library-level checks live in tests/test_session.py (corrupt bytes, external data outside the folder),
tests/test_spec.py (metadata missing, malformed or lying) and tests/test_export_inputs.py (Lambda, weights only,
not HDF5); here the same files go through `edgeemo classify` / `edgeemo export` as a user meets them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeemo.cli import main
from edgeemo.errors import ExportError, ModelError
from edgeemo.runtime.assets import resolve_model
from edgeemo.runtime.spec import METADATA_KEY, ModelSpec

onnx = pytest.importorskip("onnx")

CLI = [sys.executable, "-c", "from edgeemo.cli import main; main()"]
SHIPPED = resolve_model("mini-xception", "fp32")


@pytest.fixture()
def crops(tmp_path: Path, astronaut_bgr: np.ndarray) -> Path:
    d = tmp_path / "crops"
    d.mkdir()
    cv2.imwrite(str(d / "1.png"), astronaut_bgr[45:195, 150:280])
    return d


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`edgeemo ARGS` in this process through the console entry point; returns (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["edgeemo", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("edgeemo: error: "), stderr
    return lines[0]


def with_metadata(tmp_path: Path, name: str, spec: ModelSpec | None) -> Path:
    model = onnx.load(str(SHIPPED))
    del model.metadata_props[:]
    if spec is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, spec.to_json()
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    return path


def shipped_spec() -> ModelSpec:
    model = onnx.load(str(SHIPPED))
    return ModelSpec.from_json(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))


def external_data_escape(tmp_path: Path) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    weight = numpy_helper.from_array(np.ones(4, np.float32), "w")
    weight.data_location = TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weight],
    )
    folder = tmp_path / "escape"
    folder.mkdir()
    path = folder / "model.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def bad_models(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name → (model path, pattern of the reason)."""
    spec = shipped_spec()
    shipped = SHIPPED.read_bytes()
    cases: dict[str, tuple[Path, str]] = {}
    for name, content in (
        ("random_bytes", np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes()),
        ("truncated", shipped[: len(shipped) // 2]),
        ("empty", b""),
    ):
        p = tmp_path / f"{name}.onnx"
        p.write_bytes(content)
        cases[name] = (p, r"cannot load ONNX model|model file is empty")
    cases["no_metadata"] = (with_metadata(tmp_path, "no_meta", None), r"no 'edgeemo' metadata")
    lying = dataclasses.replace(spec, classes=(*spec.classes, "boredom"))
    cases["more_classes_than_outputs"] = (with_metadata(tmp_path, "lying", lying), r"8 classes but output")
    fewer = dataclasses.replace(spec, classes=spec.classes[:-1])
    cases["fewer_classes_than_outputs"] = (with_metadata(tmp_path, "fewer", fewer), r"6 classes but output")
    cases["external_data_outside_folder"] = (external_data_escape(tmp_path), r"escapes model directory")
    return cases


def test_bad_onnx_models_fail_with_one_line_and_exit_3(
    tmp_path: Path, crops: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, (path, reason) in bad_models(tmp_path).items():
        out = tmp_path / f"{name}.csv"
        code, stderr = run_cli(["classify", str(crops), "-o", str(out), "--model", str(path)], monkeypatch, capsys)
        assert code == ModelError.exit_code, (name, code, stderr)
        line = one_error_line(stderr)
        assert str(path) in line, (name, line)  # the file is named
        assert re.search(reason, line), (name, line)
        assert not out.exists()  # no answer at all rather than a wrong one


def test_lying_metadata_is_refused_by_the_python_api_too(tmp_path: Path) -> None:
    from edgeemo import Pipeline

    for path, reason in bad_models(tmp_path).values():
        with pytest.raises(ModelError, match=reason):
            Pipeline(path, detector=None)


@pytest.mark.slow
def test_verbose_shows_the_traceback(tmp_path: Path, crops: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    quiet = subprocess.run([*CLI, "classify", str(crops), "--model", str(bad)], capture_output=True, text=True)
    assert quiet.returncode == 3 and "Traceback" not in quiet.stderr
    assert one_error_line(quiet.stderr).endswith(")") and "broken.onnx" in quiet.stderr
    loud = subprocess.run(
        [*CLI, "--verbose", "classify", str(crops), "--model", str(bad)], capture_output=True, text=True
    )
    assert loud.returncode != 0
    assert "Traceback (most recent call last)" in loud.stderr and "edgeemo.errors.ModelError" in loud.stderr
    assert "broken.onnx" in loud.stderr


# ----------------------------------------------------------------------------------------------- HDF5 files
def lambda_h5(path: Path) -> Path:
    """A Keras HDF5 whose architecture holds a Lambda layer (marshalled Python code that would run on load).

    Written with h5py from the architecture JSON alone: the exporter must refuse it before TensorFlow loads it.
    """
    h5py = pytest.importorskip("h5py")
    config = {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, 4]}},
                {
                    "class_name": "Lambda",
                    "config": {"name": "evil", "function": ["4wEAAAAAAAAA", None, None], "function_type": "lambda"},
                },
            ],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.21.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
    return path


@pytest.mark.slow
@pytest.mark.export
def test_lambda_and_truncated_hdf5_fail_through_export_with_one_line(tmp_path: Path) -> None:
    keras_file = Path(__file__).resolve().parents[1] / "models" / "mini-xception" / "emotion_model.hdf5"
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(keras_file.read_bytes()[: keras_file.stat().st_size // 2])
    cases = {
        lambda_h5(tmp_path / "lambda.h5"): r"contains Lambda layer\(s\) 'evil' .* refused",
        truncated: r"cannot read the HDF5 file \(.*truncated file",
    }
    for path, reason in cases.items():
        out = tmp_path / f"out_{path.stem}"
        r = subprocess.run(
            [*CLI, "export", str(path), "--out", str(out), "--no-parity"], capture_output=True, text=True
        )
        assert r.returncode == ExportError.exit_code, (path, r.returncode, r.stderr)
        line = one_error_line(r.stderr)
        assert str(path) in line and re.search(reason, line), line
        assert not (out / "model.onnx").exists()
