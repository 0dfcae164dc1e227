"""The architectures the training loop can build, by name; each yields a fresh seeded tf_keras model with a
uint8 NHWC input whose graph normalises in-graph, so the saved HDF5 exports like the thesis files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeemo.errors import InputError


@dataclass(frozen=True)
class Built:
    """What the loop trains (``train``: uint8 NHWC in), what it saves as HDF5 (``saved``: the same weights, maybe
    another graph), the frozen model to distil from (``teacher``, uint8 in, or None) and a hook run with the
    global step before each training step (``before_step``, e.g. to refresh quantization ranges)."""

    train: Any
    saved: Any
    teacher: Any = None
    before_step: Callable[[int], None] | None = None


@dataclass(frozen=True)
class Architecture:
    """``build(n_classes, seed)`` → :class:`Built` (uncompiled); ``logits``: is the output pre-softmax.
    A fine-tune (:mod:`edgeemo_export.training.finetune`) also carries the source's export options and provenance."""

    name: str
    description: str
    build: Callable[[int, int], Built]
    h5_name: str
    logits: bool = True
    export_options: Any = None  # ExportOptions for the trained HDF5 (None: the recipe's defaults)
    origin: str = "trained from scratch"
    licence: str = "MIT (edgeemo project; architecture from keras.applications, Apache-2.0)"


def _thesis(n_classes: int, seed: int) -> Built:
    from edgeemo_export.thesis_arch import thesis_graph

    model = thesis_graph(n_classes, "emotion", seed)
    return Built(model, model)


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
