"""Shared fixtures: the evaluation data beside the checkout (skipped cleanly where absent) and registry faces."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# What only the `export` extra installs (onnx and scikit-image also come with `dev`, sympy with onnxruntime).
EXPORT_EXTRA = ("tensorflow", "tf_keras", "tf2onnx", "onnxconverter_common", "h5py")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent package, or a module without a spec
        return False


def _missing_export_extra() -> list[str]:
    return [m for m in EXPORT_EXTRA if not _installed(m)]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `export` skip, with the reason, where the export extra is not installed."""
    if item.get_closest_marker("export") is not None and (missing := _missing_export_extra()):
        pytest.skip(f"needs the export extra (pip install 'edgeemo[export]'): {', '.join(missing)} not installed")


def _shared(sub: str) -> Path:
    p = SHARED_DATA / sub
    if not p.exists():
        pytest.skip(f"{p} is absent (the evaluation data lives in ../shared/data beside the checkout)")
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _shared("")


@pytest.fixture(scope="session")
def fer_publictest() -> Path:
    return _shared("fer2013-publictest")


@pytest.fixture(scope="session")
def shared_photos() -> Path:
    return _shared("photos")


@pytest.fixture(scope="session")
def shared_expressions() -> Path:
    return _shared("expressions")


@pytest.fixture(scope="session")
def shared_video() -> Path:
    return _shared("videos/1zlab_face.mp4")


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """scikit-image's astronaut (public domain, ships in the wheel): one real face, BGR uint8."""
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="session")
def assert_thread_safe(astronaut_bgr: np.ndarray) -> Callable[[Any, int], None]:
    """Check a detector that declares itself thread-safe: 4 threads give its serial answers on real frames
    (faces found, and none in the upside-down frame)."""
    import cv2

    frames = [astronaut_bgr, astronaut_bgr[::-1].copy(), cv2.resize(astronaut_bgr, (900, 700)), astronaut_bgr[:300]]

    def check(detector: Any, copies: int) -> None:
        assert detector.thread_safe
        batch = frames * copies
        serial = [detector.detect(f) for f in batch]
        assert any(serial) and any(not s for s in serial)
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(detector.detect, batch)) == serial

    return check


@pytest.fixture(scope="session")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime wheel hatchling builds from this checkout (offline: no build isolation, hatchling from the dev
    extra), unpacked as site-packages would hold it: put it first on PYTHONPATH to run edgeemo as installed."""
    import subprocess
    import sys
    import zipfile

    out = tmp_path_factory.mktemp("wheel")
    build = "import sys; from hatchling.build import build_wheel; build_wheel(sys.argv[1])"
    subprocess.run([sys.executable, "-c", build, str(out)], cwd=REPO, check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("edgeemo-*.whl")
    with zipfile.ZipFile(whl) as z:
        z.extractall(out / "site")
    return out / "site"
