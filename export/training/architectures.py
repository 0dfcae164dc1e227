"""The architectures the training loop can build, by name; each yields a fresh seeded tf_keras model with a
uint8 NHWC input whose graph normalises in-graph, so the saved HDF5 exports like the thesis files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeemo.errors import InputError


@dataclass(frozen=True)
class Architecture:
    """``build(n_classes, seed)`` → an uncompiled model; ``logits`` says whether its output is pre-softmax."""

    name: str
    description: str
    build: Callable[[int, int], Any]
    h5_name: str
    logits: bool = True


def _thesis(n_classes: int, seed: int) -> Any:
    from export.thesis_arch import thesis_graph

    return thesis_graph(n_classes, "emotion", seed)


ARCHITECTURES = {
    "thesis-mobilenet": Architecture(
        "thesis-mobilenet",
        "Thesis classifier: MobileNet v1 alpha 0.25, 128x128x1 uint8 input, in-graph normalisation (TFOpLambda), "
        "Flatten, Dense logits",
        _thesis,
        "thesis_fer2013.h5",
    ),
}


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise InputError(f"unknown architecture {name!r} (choose from {', '.join(ARCHITECTURES)})") from None
