"""The runtime wheel, built offline from this checkout: lean (no build-time files), complete for every shipped
model and detector, and without top-level packages that could clash with other distributions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from edgeemo.detectors.blazeface import MODEL_FILES
from edgeemo.detectors.dlib_cnn import WEIGHTS
from edgeemo.detectors.mediapipe import SHORT_RANGE_TFLITE
from edgeemo.runtime.assets import CARD, SAMPLE_CLIP, list_models

REPO = Path(__file__).resolve().parents[1]
MODELS = PurePosixPath("edgeemo/_models")
# What the runtime reads besides ONNX graphs and cards, and the weights' licences (shipped with the weights).
READ_BY_RUNTIME = {MODELS.joinpath(*WEIGHTS), MODELS.joinpath(*SHORT_RANGE_TFLITE)}


@pytest.fixture(scope="module")
def wheel(unpacked_wheel: Path) -> list[PurePosixPath]:
    """Every file of the wheel built from this checkout."""
    return [PurePosixPath(p.relative_to(unpacked_wheel).as_posix()) for p in unpacked_wheel.rglob("*") if p.is_file()]


def test_the_wheel_ships_no_source_weights_calibration_faces_or_study_files(wheel: list[PurePosixPath]) -> None:
    assert not [p for p in wheel if p.suffix in (".h5", ".hdf5")]
    assert [p for p in wheel if p.suffix == ".tflite"] == [MODELS.joinpath(*SHORT_RANGE_TFLITE)]  # mediapipe's
    assert not [p for p in wheel if "calibration" in p.parts]
    shipped = [p for p in wheel if MODELS in p.parents]
    assert shipped
    kept = (CARD, "LICENSE")
    others = [p for p in shipped if p.suffix != ".onnx" and p.name not in kept and p not in READ_BY_RUNTIME]
    assert others == []  # e.g. int8_study.json, framing.json, README.md stay in the repository
    samples = PurePosixPath("edgeemo/_samples")
    assert [p for p in wheel if samples in p.parents] == [samples / SAMPLE_CLIP]


def test_every_model_and_detector_asset_the_runtime_finds_is_in_the_wheel(wheel: list[PurePosixPath]) -> None:
    files = set(wheel)
    entries = [e for e in list_models() if e.shipped]
    assert {e.name for e in entries} >= {"mini-xception"}
    for e in entries:
        needed = [e.folder / CARD, *e.variants().values(), *e.layouts().values()]
        missing = [p.name for p in needed if MODELS / e.name / p.name not in files]
        assert missing == [], e.name
    detector_files = [MODELS / "detectors" / "blazeface" / f for f in MODEL_FILES.values()]
    assert [p for p in [*detector_files, *READ_BY_RUNTIME] if p not in files] == []


def _top_level(wheel: list[PurePosixPath]) -> set[str]:
    return {p.parts[0] for p in wheel if not p.parts[0].endswith(".dist-info")}


def test_the_wheel_installs_only_edgeemo_and_its_export_package(wheel: list[PurePosixPath]) -> None:
    assert _top_level(wheel) == {"edgeemo", "edgeemo_export"}


def test_the_wheel_has_no_top_level_package_named_export(wheel: list[PurePosixPath]) -> None:
    assert "export" not in _top_level(wheel) and not any(p.parts[0] == "export" for p in wheel)


def test_the_installed_runtime_finds_its_models_and_clip_inside_the_package(
    unpacked_wheel: Path, tmp_path: Path
) -> None:
    probe = (
        "import json, edgeemo.runtime.assets as a; print(json.dumps([a.__file__, str(a.shipped_models_dir()), "
        "str(a.sample_clip()), [e.name for e in a.list_models()]]))"
    )
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    module, models, clip, names = json.loads(out.stdout)
    package = unpacked_wheel / "edgeemo"
    assert Path(module).is_relative_to(package)
    assert Path(models) == package / "_models" and Path(clip) == package / "_samples" / SAMPLE_CLIP
    assert names == [e.name for e in list_models()]  # the same models as this checkout ships
