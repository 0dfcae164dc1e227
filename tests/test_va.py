"""Derived valence/arousal: the weighted-centroid math, both shipped class sets, bad input, real model outputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgeemo.errors import ModelError
from edgeemo.va import AXIS_LIMIT, CENTROIDS, axis_limit, canonical_class, centroid_table, derive_va

FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
THESIS9 = ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise", "uncertain")
CLASS_SETS = pytest.mark.parametrize("classes", [FER7, THESIS9], ids=["fer2013", "thesis"])


def one_hot(classes: tuple[str, ...], name: str) -> np.ndarray:
    p = np.zeros((1, len(classes)))
    p[0, classes.index(name)] = 1.0
    return p


@CLASS_SETS
def test_pure_happy_is_pleasant_and_pure_sad_unpleasant(classes: tuple[str, ...]) -> None:
    v_happy, _ = derive_va(one_hot(classes, "happy"), classes)
    v_sad, a_sad = derive_va(one_hot(classes, "sad"), classes)
    assert v_happy[0] > 0.5
    assert v_sad[0] < -0.5
    assert a_sad[0] < 0  # sadness is a low-arousal state in the norms


@CLASS_SETS
def test_anger_and_fear_are_high_arousal(classes: tuple[str, ...]) -> None:
    anger = classes[0]  # "angry" or "anger"
    _, a_neutral = derive_va(one_hot(classes, "neutral"), classes)
    _, a_sad = derive_va(one_hot(classes, "sad"), classes)
    for name in (anger, "fear"):
        v, a = derive_va(one_hot(classes, name), classes)
        assert a[0] > 0.2, name
        assert a[0] > a_neutral[0] + 0.5 and a[0] > a_sad[0] + 0.5, name
        assert v[0] < -0.4, name


@CLASS_SETS
def test_uniform_probabilities_give_the_centroid_mean(classes: tuple[str, ...]) -> None:
    table = centroid_table(classes)
    v, a = derive_va(np.full((3, len(classes)), 1.0 / len(classes)), classes)
    np.testing.assert_allclose(v, table[:, 0].mean())
    np.testing.assert_allclose(a, table[:, 1].mean())
    # The category points spread around the middle of the scale, so their mean sits near the origin.
    assert abs(v[0]) < 0.2 and abs(a[0]) < 0.2


def test_a_mixture_is_the_weighted_mean_and_rows_are_normalised() -> None:
    p = np.zeros((2, 7))
    p[0, FER7.index("happy")] = 0.25
    p[0, FER7.index("sad")] = 0.75
    p[1] = p[0] * 4  # same proportions, not summing to 1
    v, a = derive_va(p, FER7)
    h, s = CENTROIDS["happy"], CENTROIDS["sad"]
    assert v[0] == pytest.approx(0.25 * h.valence + 0.75 * s.valence)
    assert a[0] == pytest.approx(0.25 * h.arousal + 0.75 * s.arousal)
    np.testing.assert_allclose(v[1], v[0])
    np.testing.assert_allclose(a[1], a[0])


def test_ratings_map_linearly_from_the_1_to_9_scale() -> None:
    for c in CENTROIDS.values():
        assert 1.0 <= c.valence_rating <= 9.0 and 1.0 <= c.arousal_rating <= 9.0
        assert c.valence == pytest.approx((c.valence_rating - 5.0) / 4.0)
        assert -1.0 <= c.valence <= 1.0 and -1.0 <= c.arousal <= 1.0


def test_synonyms_and_spelling_share_one_centroid() -> None:
    np.testing.assert_array_equal(centroid_table(["angry"]), centroid_table(["anger"]))
    np.testing.assert_array_equal(centroid_table([" Happy "]), centroid_table(["happy"]))
    np.testing.assert_array_equal(centroid_table(["surprised", "disgusted"]), centroid_table(["surprise", "disgust"]))
    assert canonical_class("FEARFUL") == "fear"
    assert canonical_class("boredom") is None
    # The two shipped class sets agree wherever they name the same category.
    fer = dict(zip(FER7, centroid_table(FER7).tolist()))
    thesis = dict(zip(THESIS9, centroid_table(THESIS9).tolist()))
    assert fer["angry"] == thesis["anger"]
    assert all(fer[k] == thesis[k] for k in ("disgust", "fear", "happy", "sad", "surprise", "neutral"))


def test_unknown_classes_are_named_in_the_error() -> None:
    with pytest.raises(ModelError, match=r"boredom.*pride|pride.*boredom"):
        derive_va(np.full((1, 3), 1 / 3), ["happy", "boredom", "pride"])


@pytest.mark.parametrize(
    ("probs", "match"),
    [
        (np.full((2, 6), 1 / 6), "do not fit 7 classes"),
        (np.full((2, 7, 1), 1 / 7), "do not fit"),
        (np.array([[np.nan] * 7]), "NaN"),
        (np.array([[2.0, -1.0, 0, 0, 0, 0, 0]]), "negative"),
        (np.zeros((1, 7)), "sums to zero"),
    ],
)
def test_bad_probabilities_are_refused(probs: np.ndarray, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        derive_va(probs, FER7)


def test_one_row_and_empty_batches() -> None:
    v, a = derive_va(one_hot(FER7, "happy")[0], FER7)
    assert v.shape == (1,) and a.shape == (1,)
    v, a = derive_va(np.zeros((0, 7)), FER7)
    assert v.shape == (0,) and a.shape == (0,)


def test_axis_limits() -> None:
    assert axis_limit("model") == 4.5 == AXIS_LIMIT["model"]
    assert axis_limit("derived") == 1.0
    with pytest.raises(ModelError, match="unknown va_source"):
        axis_limit("guessed")


def _real_faces(astronaut_bgr: np.ndarray) -> list[np.ndarray]:
    data = pytest.importorskip("skimage.data")
    faces = [astronaut_bgr[83:171, 179:267].copy()]  # dlib-hog's box for the astronaut's face
    lfw = data.lfw_subset()[:100]  # the first 100 images of the subset are faces
    faces += [np.round(f * 255).astype(np.uint8) for f in lfw]
    return faces


def test_derived_va_on_real_model_outputs(astronaut_bgr: np.ndarray) -> None:
    import edgeemo

    model = edgeemo.load_model("mini-xception")
    crops = _real_faces(astronaut_bgr)
    probs = model.run(crops).probabilities
    assert probs is not None and probs.shape == (len(crops), len(model.classes))
    v, a = derive_va(probs, model.classes)
    assert v.shape == a.shape == (len(crops),)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(a))
    # A weighted mean of the centroids lies inside their bounding box.
    table = centroid_table(model.classes)
    assert np.all(v >= table[:, 0].min() - 1e-9) and np.all(v <= table[:, 0].max() + 1e-9)
    assert np.all(a >= table[:, 1].min() - 1e-9) and np.all(a <= table[:, 1].max() + 1e-9)
    # The class order of the model is honoured: faces the model calls happy come out pleasant, sad ones not.
    happy = probs[:, model.classes.index("happy")]
    sad = probs[:, model.classes.index("sad")]
    assert happy[0] > 0.5, "the smiling astronaut should be classified happy"
    assert np.all(v[happy > 0.5] > 0)
    assert np.all(v[sad > 0.5] < 0)
    assert v.std() > 0.05  # real faces do not all land on one point
