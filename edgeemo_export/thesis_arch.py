"""The thesis architecture, built in code (its trained weights are not reachable from here).

Classifier: input 128x128x1 uint8 → ``tf.image.grayscale_to_rgb`` → ``tf.cast`` float32 → ``/ 127.5`` → ``- 1``
(saved as ``TFOpLambda`` layers, as in the thesis file) → ``MobileNet(alpha=0.25, include_top=False,
weights=None)`` → Flatten → Dense(9) logits: 255,417 parameters, 249,945 trainable, exactly the thesis's counts.
The valence and arousal twins end in Dense(1) linear instead.

The weights are **untrained**: Keras' initialisers with a fixed seed, then label-free adjustments on the first
100 (face) images of scikit-image's ``lfw_subset`` (a registry package) so that the random network is
numerically sane and not degenerate; otherwise parity figures would measure the random weights, not the export:

1. Depthwise 3x3 kernels are made non-negative (``|w|``), i.e. random smoothing filters. Signed random 3x3
   filters are high-pass; on smooth face images their outputs are tiny, BatchNorm rescales them to unit
   variance and so amplifies rounding noise: measured, input noise of std 5e-4 changed the logits by up to
   1.36 (69% top-1 agreement) with signed kernels and by 0.05 (100%) with non-negative ones.
2. The BatchNorm moving statistics are re-estimated layer by layer on the faces (with the initial mean 0 /
   variance 1 the activations vanish: about 1e-15 at the last block, 0 in float16); then every BatchNorm's
   beta is raised by 0.5, so most units stay active after ReLU6 (else many faces end in all-zero features
   and an output that is exactly the bias).
3. The Dense bias is set to ``-W · mean(features)`` over the faces, so outputs are centred and the argmax
   follows face-to-face variation instead of one constant class.

Measured on 500 FER2013 faces (classifier, ONNX vs Keras, max |Δ| / max |logit|): FP32 3.8e-6 with 100% top-1
agreement, argmax spread over all 9 classes, no all-zero outputs. FP16 gives 0.025 and 98.4%: random features
have no class margins, so float16 rounding flips near-ties that a trained model (mini-Xception: 99.97%) does
not have. Rejected: a positive offset on pointwise kernels passed every FP16 threshold, but only because about
60% of faces then gave all-zero outputs.

No labels are used: the models keep random features and serve compatibility, speed and parity work, never
accuracy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeemo.errors import ExportError, MissingDependencyError
from edgeemo_export.keras_io import import_tf_keras

log = logging.getLogger(__name__)

THESIS_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise", "uncertain")
INPUT_SIZE = 128
BACKBONE_NAME = "mobilenet_0.25_128"
BN_BETA_SHIFT = 0.5  # added to every BatchNorm beta after re-estimation (see the module docstring)


@dataclass(frozen=True)
class ThesisHead:
    """One of the three thesis models: head name, units of its Dense layer, seed, expected parameter counts."""

    head: str
    units: int
    seed: int
    total_params: int
    trainable_params: int
    file_name: str


THESIS_HEADS = (
    ThesisHead("emotion", len(THESIS_CLASSES), 2021, 255_417, 249_945, "thesis_fer_untrained.h5"),
    ThesisHead("valence", 1, 2022, 222_641, 217_169, "thesis_valence_untrained.h5"),
    ThesisHead("arousal", 1, 2023, 222_641, 217_169, "thesis_arousal_untrained.h5"),
)


def thesis_head(head: str) -> ThesisHead:
    for h in THESIS_HEADS:
        if h.head == head:
            return h
    raise ExportError(f"no thesis model with head {head!r} (choose from {[h.head for h in THESIS_HEADS]})")


def thesis_graph(units: int, head: str, seed: int) -> Any:
    """The thesis graph (uint8 input, TFOpLambda normalisation, MobileNet α 0.25, Flatten) ending in
    ``Dense(units)`` named ``head``, freshly initialised from ``seed``."""
    tf_keras = import_tf_keras()
    import tensorflow as tf

    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(seed)
    inp = tf_keras.Input((INPUT_SIZE, INPUT_SIZE, 1), dtype="uint8", name="input")
    x = tf.image.grayscale_to_rgb(inp)
    x = tf.cast(x, tf.float32)
    x = x / 127.5
    x = x - 1.0
    backbone = tf_keras.applications.MobileNet(
        alpha=0.25, include_top=False, weights=None, input_shape=(INPUT_SIZE, INPUT_SIZE, 3)
    )
    x = backbone(x)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    out = tf_keras.layers.Dense(units, name=head)(x)
    return tf_keras.Model(inp, out, name=f"thesis_{head}")


def build_thesis_model(head: str) -> Any:
    """The thesis architecture with a freshly initialised (seeded) head ``emotion``, ``valence`` or ``arousal``."""
    spec = thesis_head(head)
    model = thesis_graph(spec.units, head, spec.seed)
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    if (model.count_params(), trainable) != (spec.total_params, spec.trainable_params):
        raise ExportError(
            f"thesis {head} model has {model.count_params():,} parameters ({trainable:,} trainable), "
            f"expected {spec.total_params:,} ({spec.trainable_params:,})"
        )
    return model


def calibration_faces() -> np.ndarray:
    """The 100 face images of scikit-image's ``lfw_subset`` as (100, 128, 128, 1) uint8."""
    import cv2

    try:
        from skimage import data
    except ImportError as exc:
        raise MissingDependencyError("building the thesis models", "dev", "scikit-image provides lfw_subset") from exc
    faces = np.asarray(data.lfw_subset()[:100])
    out = np.empty((len(faces), INPUT_SIZE, INPUT_SIZE, 1), np.uint8)
    for k, f in enumerate(faces):
        img = np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8)
        out[k, :, :, 0] = cv2.resize(img, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    return out


def condition_weights(model: Any, images: np.ndarray) -> int:
    """The label-free adjustments of the module docstring, on ``images``; returns the BatchNorm count."""
    tf_keras = import_tf_keras()

    backbone = model.get_layer(BACKBONE_NAME)
    for layer in backbone.layers:
        if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            weights = layer.get_weights()
            layer.set_weights([np.abs(weights[0]), *weights[1:]])
    x = images.astype(np.float32).repeat(3, axis=-1) / np.float32(127.5) - np.float32(1.0)
    norms = [layer for layer in backbone.layers if isinstance(layer, tf_keras.layers.BatchNormalization)]
    for layer in norms:
        probe = tf_keras.Model(backbone.input, layer.input)
        acts = np.asarray(probe(x, training=False), dtype=np.float64)
        axes = tuple(range(acts.ndim - 1))
        gamma, beta, _, _ = layer.get_weights()
        mean, var = acts.mean(axis=axes).astype(np.float32), acts.var(axis=axes).astype(np.float32)
        layer.set_weights([gamma, beta, mean, var])
    for layer in norms:
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights([gamma, beta + np.float32(BN_BETA_SHIFT), mean, var])
    features = tf_keras.Model(model.input, model.get_layer("flatten").output)(images, training=False)
    dense = model.layers[-1]
    kernel, _ = dense.get_weights()
    centre = -(np.asarray(features, dtype=np.float64).mean(axis=0) @ kernel)
    dense.set_weights([kernel, centre.astype(np.float32)])
    return len(norms)


def save_thesis_model(head: str, out_dir: Path) -> Path:
    """Build, re-estimate BatchNorm statistics and save one thesis model as legacy HDF5 (tf_keras)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    spec = thesis_head(head)
    model = build_thesis_model(head)
    n = condition_weights(model, calibration_faces())
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / spec.file_name
    model.save(path, save_format="h5")
    log.info("saved %s (%d BatchNorm layers re-estimated)", path, n)
    return path
