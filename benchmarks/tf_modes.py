"""TensorFlow / TFLite runners for the benchmark harness (need the ``export`` extra: tensorflow, tf_keras).

Each runner loads the Keras file the model was exported from (found in the model's folder by the file name the
exporter recorded in the ONNX metadata) and times it on exactly the input edgeemo feeds the ONNX model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np

from edgeemo.bench.plan import Skip
from edgeemo.bench.runners import REFERENCE, interleaved_batches, load_model, model_inputs, time_batches
from edgeemo.runtime.session import SessionOptions, usable_cores

MODES = ("predict", "eager", "function", "tflite", "tflite-file")
MODE_LABELS = {
    "predict": "TF predict()",
    "eager": "TF eager call",
    "function": "TF tf.function",
    "tflite": "TFLite FP32 (XNNPACK)",
    "tflite-file": "TFLite {file}",
}


def _tf() -> Any:
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise Skip("TensorFlow is not installed: pip install 'edgeemo[export]'") from exc
    n = usable_cores()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # already initialised in this process
        pass
    return tf


def keras_files(model: Any) -> list[Path]:
    """The Keras file(s) the ONNX model was exported from, found by the name(s) the exporter recorded.

    A fused graph records ``a.h5+b.h5+c.h5``; each part is looked up beside the model, then in the other model
    folders. Without a recorded name, the only .h5/.hdf5 beside the model is used.
    """
    folder = model.path.parent
    names = [n for n in model.spec.source.file.split("+") if n]
    if not names:
        found = sorted([*folder.glob("*.h5"), *folder.glob("*.hdf5")])
        if len(found) == 1:
            return found
        raise Skip(f"{folder}: no Keras file to compare with (no source file recorded)")
    out = []
    for name in names:
        hits = [p for p in [folder / name, *folder.parent.glob(f"*/{name}")] if p.is_file()]
        if not hits:
            raise Skip(f"{folder}: no Keras file {name} to compare with (looked beside it and in {folder.parent})")
        out.append(hits[0])
    return out


def load_keras(paths: list[Path]) -> Any:
    """One Keras model; several (the parts of a fused graph) become one model with their outputs side by side."""
    _tf()
    import tf_keras

    from edgeemo_export.keras_io import load_keras as load_checked  # the exporter's checks: no code from the file runs

    parts = [load_checked(p)[0] for p in paths]
    if len(parts) == 1:
        return parts[0]
    inp = tf_keras.Input(shape=parts[0].input_shape[1:], dtype=parts[0].inputs[0].dtype)
    return tf_keras.Model(inp, [m(inp) for m in parts])


def tflite_from_keras(keras_model: Any) -> bytes:
    tf = _tf()
    return tf.lite.TFLiteConverter.from_keras_model(keras_model).convert()


class TFLiteRunner:
    """An XNNPACK interpreter resized to one batch size; ``__call__`` runs one batch."""

    def __init__(self, content: bytes | None = None, path: str | None = None) -> None:
        tf = _tf()
        self.interp = tf.lite.Interpreter(model_content=content, model_path=path, num_threads=usable_cores())
        self.inp = self.interp.get_input_details()[0]
        self.outs = [d["index"] for d in self.interp.get_output_details()]
        self.batch = -1

    def prepare(self, x: np.ndarray) -> None:
        if x.shape[0] != self.batch:
            self.interp.resize_tensor_input(self.inp["index"], list(x.shape))
            self.interp.allocate_tensors()
            self.batch = x.shape[0]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.prepare(x)
        self.interp.set_tensor(self.inp["index"], x.astype(self.inp["dtype"], copy=False))
        self.interp.invoke()
        return [self.interp.get_tensor(i) for i in self.outs]


def _callable(mode: str, km: Any, params: Mapping[str, Any], model: Any) -> Any:
    tf = _tf()
    if mode == "predict":
        return lambda x: km.predict(x, batch_size=len(x), verbose=0)
    if mode == "eager":
        return lambda x: km(x, training=False)
    if mode == "function":
        fn = tf.function(lambda x: km(x, training=False))
        return lambda x: fn(tf.constant(x))
    if mode == "tflite":
        return TFLiteRunner(content=tflite_from_keras(km))
    if mode == "tflite-file":
        path = model.path.parent / params["file"]
        if not path.is_file():
            raise Skip(f"{path}: no such TFLite file")
        return TFLiteRunner(path=str(path))
    raise ValueError(f"unknown TF mode {mode!r}; choose one of {', '.join(MODES)}")


def classifier_tf(params: Mapping[str, Any]) -> dict[str, Any]:
    """One TensorFlow or TFLite mode on one model at each batch size."""
    mode = params["mode"]
    model = load_model(params["model"], "fp32", SessionOptions(device="cpu"))
    km = load_keras(keras_files(model)) if mode != "tflite-file" else None
    run = _callable(mode, km, params, model)
    batches = list(params["batches"])
    inputs, source = model_inputs(model, batches, params.get("data"))
    if mode == "predict":  # ~40 ms a call: cap the count so the full run stays inside its budget
        params = {**params, "max_runs": min(int(params.get("max_runs", 50)), 50)}
    stats = time_batches(params, {b: (lambda b=b: run(inputs[b])) for b in batches})
    tf = _tf()
    return {
        "model": params["model"],
        "engine": "tflite" if mode.startswith("tflite") else "tensorflow",
        "mode": MODE_LABELS[mode].format(file=params.get("file", "")),
        "precision": "fp32" if mode != "tflite-file" else "file",
        "threads": usable_cores(),
        "tensorflow": tf.__version__,
        "input": source,
        "stats": stats,
    }


def compare_tf(params: Mapping[str, Any]) -> dict[str, Any]:
    """Interleaved in one process: edgeemo's default call, TFLite FP32 (XNNPACK), TF tf.function, and the portable
    graph in one session call (see :func:`edgeemo.bench.runners.interleaved_batches`)."""
    model = load_model(params["model"], "fp32", SessionOptions(device="cpu"))
    km = load_keras(keras_files(model))
    tfl = TFLiteRunner(content=tflite_from_keras(km))
    fn = _callable("function", km, params, model)

    def others(x: np.ndarray, feed: dict[str, np.ndarray]) -> dict[str, Any]:
        tfl.prepare(x)
        return {MODE_LABELS["tflite"]: lambda: tfl(x), MODE_LABELS["function"]: lambda: fn(x)}

    per_batch, source = interleaved_batches(model, params, others)
    return {"model": params["model"], "reference": REFERENCE, "input": source, "batches": per_batch}
