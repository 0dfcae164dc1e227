"""Shared fixtures: the evaluation data beside the checkout (skipped cleanly where absent) and registry faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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
