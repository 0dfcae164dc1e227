"""The detector registry, `edgeemo detectors`, and the frame checks every built-in detector shares."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeemo.cli import app
from edgeemo.detectors import DEFAULT_DETECTOR, base, create_detector, detector_names, list_detectors, register
from edgeemo.detectors._frames import check_frame, clipped_box
from edgeemo.errors import InputError, MissingDependencyError

BUILT_IN = {"blazeface": "cpu", "dlib-hog": "dlib", "dlib-cnn": "dlib", "mediapipe": "mediapipe"}


def test_built_in_detectors_are_registered_with_their_extras():
    infos = {i.name: i for i in list_detectors()}
    assert DEFAULT_DETECTOR == "blazeface"
    for name, extra in BUILT_IN.items():
        assert infos[name].extra == extra
        installed = importlib.util.find_spec({"cpu": "onnxruntime"}.get(extra, extra)) is not None
        assert infos[name].available == installed, infos[name]
        assert (infos[name].reason == "") == installed


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    register("needs-missing", lambda **_: None, "test detector", extra="nosuchextra", requires=("edgeemo_no_such_mod",))


def test_unavailable_detector_reports_reason_and_extra(fake_registry):
    (info,) = [i for i in list_detectors() if i.name == "needs-missing"]
    assert not info.available and "edgeemo_no_such_mod" in info.reason and info.extra == "nosuchextra"
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgeemo\[nosuchextra\]'"):
        create_detector("needs-missing")


def test_cli_lists_detectors_and_install_hints(fake_registry):
    result = CliRunner().invoke(app, ["detectors", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(BUILT_IN) <= set(rows) and rows["blazeface"]["default"]
    missing = rows["needs-missing"]
    assert missing["available"] is False and missing["install"] == "pip install 'edgeemo[nosuchextra]'"
    table = CliRunner().invoke(app, ["detectors"], env={"COLUMNS": "200"})
    assert "pip install 'edgeemo[nosuchextra]'" in table.output and "blazeface (default)" in table.output


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is not None, reason="mediapipe is installed here")
def test_mediapipe_missing_names_its_extra():
    with pytest.raises(MissingDependencyError, match=r"edgeemo\[mediapipe\]"):
        create_detector("mediapipe")


def test_unknown_detector_lists_the_known_ones():
    with pytest.raises(InputError, match="blazeface"):
        create_detector("haar")
    assert set(BUILT_IN) <= set(detector_names())


def test_importing_detectors_loads_no_optional_dependency():
    code = "import sys, edgeemo.detectors; print(sorted({'dlib', 'mediapipe', 'tensorflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_frame_checks():
    bgr = np.zeros((4, 5, 3), np.uint8)
    assert check_frame(bgr, "t") is bgr
    assert check_frame(bgr[:, :, :1], "t").shape == (4, 5)
    for bad, msg in (
        (bgr.astype(np.float32), "uint8"),
        (np.zeros((4, 5, 4), np.uint8), "shape"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        ([[0]], "numpy array"),
    ):
        with pytest.raises(InputError, match=msg):
            check_frame(bad, "t")
    assert clipped_box(-5, -5, 3, 10, 5, 4).to_dict() == {"x1": 0.0, "y1": 0.0, "x2": 3.0, "y2": 4.0}
    assert clipped_box(6, 0, 9, 3, 5, 4) is None


def test_detector_base_checks_orders_best_first_and_closes_once() -> None:
    """DetectorBase: frame check, best-first order (ties in the subclass's order), one release, no use after close."""
    from edgeemo.detectors.common import DetectorBase
    from edgeemo.errors import EdgeemoError
    from edgeemo.results import Box, Face

    class Listed(DetectorBase):
        name = "listed"

        def __init__(self) -> None:
            self.released = 0

        def _detect(self, frame: np.ndarray) -> list[Face]:
            return [Face(Box(0, 0, 2, 2), s) for s in (0.2, 0.9, 0.5, 0.9)] if frame.any() else []

        def _release(self) -> None:
            self.released += 1

    frame = np.ones((8, 8, 3), np.uint8)
    with Listed() as det:
        assert [f.score for f in det.detect(frame)] == [0.9, 0.9, 0.5, 0.2]
        assert det.detect(np.zeros((8, 8), np.uint8)) == []
        with pytest.raises(InputError, match="detector 'listed': expected a uint8 image, got dtype float32"):
            det.detect(frame.astype(np.float32))
    assert det.closed and det.released == 1
    det.close()
    assert det.released == 1
    with pytest.raises(EdgeemoError, match="detector 'listed' was closed"):
        det.detect(frame)


@pytest.mark.parametrize(
    "module, cls",
    [
        ("blazeface", "BlazeFaceDetector"),
        ("dlib_hog", "DlibHogDetector"),
        ("dlib_cnn", "DlibCnnDetector"),
        ("mediapipe", "MediaPipeDetector"),
    ],
)
def test_built_in_detectors_share_the_base(module: str, cls: str) -> None:
    """Their modules import their optional dependency only when a detector is made, so this runs anywhere."""
    from edgeemo.detectors.common import DetectorBase

    detector_class = getattr(importlib.import_module(f"edgeemo.detectors.{module}"), cls)
    assert issubclass(detector_class, DetectorBase)
    assert "detect" not in vars(detector_class) and "close" not in vars(detector_class)
