"""benchmarks/default_model: its flip is the mirrored crop's prediction, and its paired test counts right."""

from __future__ import annotations

import numpy as np

from benchmarks.default_model import Member, mcnemar_p, probabilities
from edgeemo import load_model


def test_flip_averages_the_crop_and_its_mirror(astronaut_bgr: np.ndarray) -> None:
    model = load_model("mini-xception")
    face = np.ascontiguousarray(astronaut_bgr[83:171, 179:267])  # dlib-hog's box for the astronaut's face
    plain, mirror = model.run([face, np.ascontiguousarray(face[:, ::-1])]).probabilities
    assert np.abs(plain - mirror).max() > 1e-4  # the mirror reads differently: a missing flip would show
    flipped = probabilities([Member(model, True)], [face])[0]
    np.testing.assert_allclose(flipped, (plain + mirror) / 2, atol=2e-6)
    ensemble = probabilities([Member(model, False), Member(model, True)], [face])[0]
    np.testing.assert_allclose(ensemble, (plain + flipped) / 2, atol=1e-6)


def test_mcnemar_exact() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 5) == 1.0
    assert mcnemar_p(10, 0) == mcnemar_p(0, 10) == 2 / 1024
    assert mcnemar_p(6, 1) == 2 * 8 / 128
