"""Derived valence/arousal: an estimate from class probabilities, for models without VA heads.

The estimate is the probability-weighted mean of one published (valence, arousal) point per emotion category.
It is *not* a prediction: a face that the classifier calls 60 % happy / 40 % neutral gets the point 60 % of the
way from "neutral" to "happy", whatever the face itself shows. Results computed here carry
``va_source="derived"``; only a model with valence/arousal heads produces ``va_source="model"``.

Source of the category points
-----------------------------
Warriner, A. B., Kuperman, V., & Brysbaert, M. (2013). Norms of valence, arousal, and dominance for 13,915
English lemmas. *Behavior Research Methods*, 45(4), 1191-1207. https://doi.org/10.3758/s13428-012-0314-x

The norms rate each English word on 1..9 scales (valence 1 = unhappy ... 9 = happy; arousal 1 = calm ...
9 = excited), averaged over raters (columns ``V.Mean.Sum`` / ``A.Mean.Sum`` of the published CSV). We use the
ratings of the word naming each class, read from the published file (row numbers below, so anyone can check
them). These are ratings of the *word*, not of faces showing the expression: a defensible, citable proxy, but
a proxy (for example the word "surprise" is rated pleasant, while a surprised face can be either).

Scale: derived values are the ratings mapped linearly onto [-1, 1] with ``(rating - 5) / 4`` so that 0 is the
scale's neutral midpoint, as on the display's zero line. Model outputs are never rescaled: the thesis's
regression heads are unbounded and were plotted on fixed +-4.5 axes (:data:`AXIS_LIMIT`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeemo.errors import ModelError
from edgeemo.results import VASource

#: Half-width of the axes a value is shown on: model heads on the thesis's fixed +-4.5 axes, derived values on
#: the centroid source's [-1, 1].
AXIS_LIMIT: dict[VASource, float] = {"model": 4.5, "derived": 1.0}

RATING_MIDPOINT = 5.0  # Warriner et al. scales run 1..9
RATING_HALF_RANGE = 4.0


@dataclass(frozen=True, slots=True)
class Centroid:
    """One category's published rating, raw (1..9) and mapped to [-1, 1]."""

    name: str
    word: str
    row: int  # row id (first column) of the word in the published CSV
    valence_rating: float
    arousal_rating: float

    @property
    def valence(self) -> float:
        return (self.valence_rating - RATING_MIDPOINT) / RATING_HALF_RANGE

    @property
    def arousal(self) -> float:
        return (self.arousal_rating - RATING_MIDPOINT) / RATING_HALF_RANGE


# V.Mean.Sum / A.Mean.Sum of the word, Warriner et al. (2013) supplementary CSV.
CENTROIDS: dict[str, Centroid] = {
    c.name: c
    for c in (
        Centroid("anger", "anger", 418, 2.50, 5.93),
        Centroid("contempt", "contempt", 2639, 3.22, 4.61),
        Centroid("disgust", "disgust", 3569, 3.32, 5.00),
        Centroid("fear", "fear", 4524, 2.93, 6.14),
        Centroid("happy", "happy", 5596, 8.47, 6.05),
        Centroid("neutral", "neutral", 8155, 5.50, 3.45),
        Centroid("sad", "sad", 10583, 2.10, 3.49),
        Centroid("surprise", "surprise", 12138, 7.44, 6.57),
        # The thesis's "uncertain" class is not a basic emotion; the norm of the word "uncertain" is the most
        # direct published value: mildly unpleasant, slightly calm.
        Centroid("uncertain", "uncertain", 12997, 3.60, 4.45),
    )
}

#: Class-name spellings used by the datasets the project ships, mapped onto the canonical names above. The
#: same facial category gets the same point whichever dataset named it (FER2013 "angry" = thesis "anger").
SYNONYMS: dict[str, str] = {
    "angry": "anger",
    "contemptuous": "contempt",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
}


def canonical_class(name: str) -> str | None:
    """The canonical category of a class name (case and surrounding space ignored), or None if unknown."""
    key = name.strip().lower()
    key = SYNONYMS.get(key, key)
    return key if key in CENTROIDS else None


def centroid_table(classes: Sequence[str]) -> np.ndarray:
    """(C, 2) array of (valence, arousal) in [-1, 1] for ``classes``; :class:`ModelError` names unknown classes."""
    canon = [canonical_class(c) for c in classes]
    unknown = [c for c, k in zip(classes, canon) if k is None]
    if unknown:
        raise ModelError(
            f"no published valence/arousal centroid for class(es) {unknown}; derived valence/arousal knows "
            f"{sorted(CENTROIDS)} and the synonyms {sorted(SYNONYMS)}"
        )
    return np.array([(CENTROIDS[k].valence, CENTROIDS[k].arousal) for k in canon if k is not None], dtype=np.float64)


def derive_va(probabilities: np.ndarray, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, C) over ``classes`` -> (valence (N,), arousal (N,)) on [-1, 1].

    Each row is normalised to sum to 1 before weighting, so rows that drift from 1 by rounding (FP16/INT8
    models) still give a weighted mean. Negative, non-finite or all-zero rows are refused.
    """
    table = centroid_table(classes)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 1 and p.shape[0] == len(classes):
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ModelError(f"derive_va: probabilities of shape {p.shape} do not fit {len(classes)} classes {classes}")
    if p.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    if not np.all(np.isfinite(p)):
        raise ModelError("derive_va: probabilities contain NaN or infinity")
    if np.any(p < 0):
        raise ModelError("derive_va: probabilities must not be negative (pass softmaxed probabilities, not logits)")
    total = p.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ModelError("derive_va: a probability row sums to zero")
    va = (p / total) @ table
    return va[:, 0], va[:, 1]


def axis_limit(source: VASource | str) -> float:
    """Half-width of the axis on which values of ``source`` are displayed."""
    try:
        return AXIS_LIMIT[source]  # type: ignore[index]
    except KeyError:
        raise ModelError(f"unknown va_source {source!r}; expected one of {sorted(AXIS_LIMIT)}") from None
