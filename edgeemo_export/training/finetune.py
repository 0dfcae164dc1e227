"""Fine-tuning an existing model: its HDF5 (loaded through the allow-list of :func:`edgeemo_export.keras_io.load_keras`)
becomes the starting point of the training loop, optionally with the fake quantization of :mod:`edgeemo_export.qat`
(quantization-aware training) and distillation from its own original outputs.

The model's facts (classes, input normalisation, framing, interpolation) come from the exported ``model.onnx``
beside the HDF5, never from code, and go unchanged into the fine-tuned model's export. A model with a float
input is fed ``pixels * scale + offset`` as the runtime would; BatchNorm keeps its statistics (frozen).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from edgeemo.errors import InputError
from edgeemo.runtime.assets import PRECISION_SUFFIX
from edgeemo.runtime.spec import ModelSpec
from edgeemo_export.training.architectures import Architecture, Built

log = logging.getLogger(__name__)

RECALIBRATE_STEPS = 50  # activation ranges follow the weights: refreshed on the calibration faces this often


def source_spec(h5: Path) -> ModelSpec:
    """The metadata of the FP32 ONNX exported from ``h5`` (same folder), which holds the model's facts."""
    import onnx

    from edgeemo_export.onnx_meta import read_spec

    onnx_path = h5.parent / PRECISION_SUFFIX["fp32"]
    if not onnx_path.is_file():
        raise InputError(
            f"{h5}: fine-tuning needs the model's facts (classes, normalisation) from {onnx_path.name} beside it; "
            "export the model first"
        )
    spec = read_spec(onnx.load(str(onnx_path), load_external_data=False), str(onnx_path))
    if spec.source.sha256 and spec.source.file == h5.name:
        from edgeemo_export.keras_io import sha256_file

        if sha256_file(h5) != spec.source.sha256:
            raise InputError(f"{h5}: differs from the file {onnx_path.name} was exported from (sha256 mismatch)")
    return spec


def fine_tune_architecture(h5: Path, qat: bool = False, calibration: Path | None = None) -> Architecture:
    """An :class:`Architecture` whose ``build`` loads ``h5`` (and a frozen copy as the distillation teacher)."""
    from edgeemo_export.keras_io import inspect_h5
    from edgeemo_export.keras_to_onnx import ExportOptions

    h5 = Path(h5)
    avoid_onednn_crash()
    info = inspect_h5(h5)  # fails early, before TensorFlow, on a file that is not a Keras model
    spec = source_spec(h5)
    norm = spec.input.normalisation
    if len(spec.outputs) != 1 or spec.outputs[0].name != "emotion":
        raise InputError(f"{h5}: fine-tuning trains one emotion head, the model has {list(spec.head_names)}")
    export = ExportOptions(
        name=spec.name,
        classes=spec.classes,
        heads=("emotion",),
        normalisation=norm.mode,
        scale=norm.scale if norm.mode == "affine" else None,
        offset=norm.offset if norm.mode == "affine" else None,
        interpolation=spec.input.interpolation,
        framing=spec.framing,
    )

    def build(n_classes: int, seed: int) -> Built:
        return _build(h5, spec, qat, calibration, n_classes)

    kind = "quantization-aware fine-tune" if qat else "fine-tune"
    return Architecture(
        name=f"{spec.name} {kind} of {h5.name} (sha256 {info.sha256[:16]})",
        description=f"{spec.name} ({kind} of {os.path.basename(h5)})",
        build=build,
        h5_name=h5.name,
        logits=spec.outputs[0].kind == "logits",
        export_options=export,
        origin=f"fine-tuned ({kind}) from {h5.name} (sha256 {info.sha256[:16]})",
        licence=f"as the source model ({h5.parent.name}; its licence file)",
    )


def avoid_onednn_crash() -> None:
    """TensorFlow 2.21's oneDNN Conv2DBackpropFilter crashed (SIGSEGV) on mini-Xception's gradients on this
    project's AVX-512 machine; its plain kernels do not. The switch only works before TensorFlow is imported."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    elif os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
        log.warning("TensorFlow was imported with oneDNN on: fine-tuning may crash (set TF_ENABLE_ONEDNN_OPTS=0)")


def _build(h5: Path, spec: ModelSpec, qat: bool, calibration: Path | None, n_classes: int) -> Built:
    import tensorflow as tf

    from edgeemo_export.keras_io import import_tf_keras, load_keras
    from edgeemo_export.qat import qat_graph

    tf_keras = import_tf_keras()
    if len(spec.classes) != n_classes:
        raise InputError(f"{h5}: the model has {len(spec.classes)} classes, the training data {n_classes}")
    model, _ = load_keras(h5)
    teacher_model, _ = load_keras(h5)
    teacher_model.trainable = False
    norm = spec.input.normalisation
    if norm.mode == "in_graph":
        if qat:
            raise InputError(f"{h5}: quantization-aware fine-tuning needs a float-input model (affine normalisation)")
        return Built(model, model, teacher_model)

    def normalise(pixels: Any) -> Any:
        return tf.cast(pixels, tf.float32) * norm.scale + norm.offset

    graph = qat_graph(model, normalise, fake_quant=qat)
    u8 = tf_keras.Input(model.input_shape[1:], dtype="uint8")
    teacher = tf_keras.Model(u8, teacher_model(normalise(u8), training=False), name="teacher")
    if not qat:
        return Built(graph.train, model, teacher)
    faces = _calibration_tensor(h5, calibration)

    def recalibrate(step: int) -> None:
        if step % RECALIBRATE_STEPS == 0:
            graph.calibrate(faces)

    return Built(graph.train, model, teacher, recalibrate)


def _calibration_tensor(h5: Path, calibration: Path | None) -> Any:
    """The INT8 export's calibration faces (default: the shipped set) as the runtime feeds them."""
    from edgeemo.runtime.model import EmotionModel
    from edgeemo_export.calibration import load_calibration_set

    fp32 = EmotionModel(h5.parent / PRECISION_SUFFIX["fp32"])
    return fp32.preprocess(list(load_calibration_set(calibration).images))
