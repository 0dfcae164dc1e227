"""Quantization-aware fine-tuning graphs: a Keras model rebuilt layer by layer with the fake quantization that
:func:`edgeemo_export.int8.quantize_int8` (the shipped static recipe) will apply to it later.

The rebuilt graph calls the original layers' own variables, so training it trains the original model, which is
what gets saved (plain standard layers, loadable by :func:`edgeemo_export.keras_io.load_keras`); the fake-quant layers
live only in the training graph. What is simulated, for the recipe in ``edgeemo_export.int8.DEFAULT_OPTIONS`` (stem and
head kept float, everything else QDQ after ``quant_pre_process`` folds BatchNorm into the convs):

- weights: per output channel, symmetric 8-bit (uint8 with zero point 128), straight-through gradient, rounded
  on the BatchNorm-folded kernel as the export rounds it (each channel's largest weight sits on a rounding tie).
- activations: asymmetric uint8 on every tensor onnxruntime puts a QuantizeLinear on (the output of each
  quantized conv after its BatchNorm/ReLU, the depthwise half of a separable conv, and Add; MaxPool's output
  shares its input's range, so the max of grid values stays on the grid), with the MinMax ranges onnxruntime
  would calibrate: min/max of the float graph over the calibration faces, refreshed with
  :meth:`QatGraph.calibrate` as the weights move.

Not bit-exact (see models/mini-xception/INT8.md, "PTQ vs QAT"): float arithmetic that is not bit-identical (and
the int32 bias, not simulated) moves a few values across a rounding step, and such differences grow layer by
layer; placement and ranges match the INT8 file (``tests/test_train_finetune.py``).
- BatchNorm runs on its moving statistics (frozen), as it will be folded.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeemo.errors import InputError
from edgeemo_export.keras_io import import_tf_keras

_CONVS = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")
_PASS = ("MaxPooling2D", "Add", "Activation", "ReLU", "GlobalAveragePooling2D", "Flatten", "Softmax", "Reshape")


@dataclass(frozen=True)
class QatGraph:
    """``train``: uint8 NHWC in, the model's outputs; ``probe``: the float input to every fake-quantized tensor
    before quantization (for calibration); ``points``: the fake-quant layers, in ``probe`` output order."""

    train: Any
    probe: Any
    points: tuple[Any, ...]

    def calibrate(self, tensor: np.ndarray, batch: int = 128) -> None:
        """Set every activation range to onnxruntime's MinMax range over ``tensor`` (normalised model input)."""
        if not self.points:
            return
        lo = np.full(len(self.points), np.inf)
        hi = np.full(len(self.points), -np.inf)
        for i in range(0, len(tensor), batch):
            outs = self.probe(tensor[i : i + batch], training=False)
            outs = outs if isinstance(outs, list | tuple) else [outs]
            lo = np.minimum(lo, [float(np.min(o)) for o in outs])
            hi = np.maximum(hi, [float(np.max(o)) for o in outs])
        for point, a, b in zip(self.points, lo, hi):
            point.set_range(min(a, 0.0), max(b, 0.0))  # onnxruntime widens every range to include 0


def _layers() -> tuple[type, type]:
    """The two Keras layer classes, defined once tf_keras is importable (the module imports without it)."""
    tf_keras = import_tf_keras()
    import tensorflow as tf

    class FakeQuant(tf_keras.layers.Layer):
        """Asymmetric uint8 fake quantization with a fixed (calibrated) range; straight-through gradient."""

        def build(self, input_shape: Any) -> None:
            self.lo = self.add_weight(name="min", shape=(), initializer="zeros", trainable=False)
            self.hi = self.add_weight(name="max", shape=(), initializer="ones", trainable=False)

        def set_range(self, lo: float, hi: float) -> None:
            self.lo.assign(lo)
            self.hi.assign(hi if hi > lo else lo + 1e-6)

        def call(self, x: Any) -> Any:
            return tf.quantization.fake_quant_with_min_max_vars(x, self.lo, self.hi, num_bits=8)

    class KernelPart(tf_keras.layers.Layer):
        """One weighted step of a wrapped conv layer, from that layer's own variables: ``conv`` (Conv2D),
        ``depthwise`` (DepthwiseConv2D, or the first half of a SeparableConv2D), ``pointwise`` (its second half).
        ``quantize``: 8-bit per-channel weights (straight-through). Bias and activation close the layer."""

        def __init__(self, layer: Any, part: str, quantize: bool, bn: Any = None, **kw: Any) -> None:
            super().__init__(name=f"{layer.name}_{part}{'_q' if quantize else ''}", **kw)
            self.layer, self.part, self.quantize, self.bn = layer, part, quantize, bn
            self.closes = part != "depthwise" or layer.__class__.__name__ == "DepthwiseConv2D"

        def _w(self, w: Any, channel_axes: tuple[int, ...], folded: bool = False) -> Any:
            """``w`` on onnxruntime's grid: per output channel, symmetric uint8 (scale 2·max|w|/255, zero point
            128), computed like the export on the kernel with its BatchNorm folded in (float32, the fold's own
            operation order), so that each channel's largest weight, which sits exactly on a rounding tie,
            rounds the same way. Straight-through gradient."""
            if not self.quantize:
                return w
            reduce = [a for a in range(4) if a not in channel_axes]
            bn = self.bn if folded else None
            fold = 1.0
            if bn is not None:
                gamma = bn.gamma if bn.scale else tf.ones_like(bn.moving_variance)
                fold = gamma / tf.sqrt(bn.moving_variance + tf.constant(bn.epsilon, tf.float32))
            wf = w * fold
            absmax = tf.reduce_max(tf.abs(wf), axis=reduce, keepdims=True)
            scale = tf.cast(tf.cast(absmax, tf.float64) * 2.0 / 255.0, tf.float32)
            scale = tf.where(scale > 0, scale, 1.0)
            q = tf.clip_by_value(tf.round(wf / scale), -128.0, 127.0) * scale / fold
            return w + tf.stop_gradient(q - w)

        def call(self, x: Any) -> Any:
            la = self.layer
            strides, padding, rate = (1, *la.strides, 1), la.padding.upper(), la.dilation_rate
            if self.part == "conv":
                y = tf.nn.conv2d(x, self._w(la.kernel, (3,), True), strides, padding, dilations=rate)
            elif self.part == "depthwise":
                y = tf.nn.depthwise_conv2d(x, self._w(la.depthwise_kernel, (2, 3)), strides, padding, dilations=rate)
            else:
                y = tf.nn.conv2d(x, self._w(la.pointwise_kernel, (3,), True), 1, "VALID")
            if not self.closes:
                return y
            if la.use_bias:
                y = tf.nn.bias_add(y, la.bias)
            return la.activation(y)

    return FakeQuant, KernelPart


def _inbound(layer: Any) -> list[Any]:
    inbound = layer._inbound_nodes[0].inbound_layers  # the functional graph as tf_keras stores it
    return list(inbound) if isinstance(inbound, list | tuple) else [inbound]


def _is_act(layer: Any) -> bool:
    return layer.__class__.__name__ in ("Activation", "ReLU") and layer.get_config().get("activation", "relu") == "relu"


def _downstream(layer: Any, consumers: dict[str, list[Any]]) -> set[str]:
    seen: set[str] = set()
    todo = [layer]
    while todo:
        for nxt in consumers.get(todo.pop().name, []):
            if nxt.name not in seen:
                seen.add(nxt.name)
                todo.append(nxt)
    return seen


def qat_graph(model: Any, normalise: Callable[[Any], Any], fake_quant: bool = True) -> QatGraph:
    """Rebuild a single-input, single-output functional ``model`` (convs, BatchNorm, activations, pooling, Add)
    with fake quantization, or (``fake_quant=False``) as it is; BatchNorm frozen either way. ``normalise`` maps
    the uint8 input to the model's float input. Refuses graphs it does not know how to simulate."""
    tf_keras = import_tf_keras()
    FakeQuant, KernelPart = _layers()
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"{model.name}: fine-tuning needs one input and one output")
    layers = [la for la in model.layers if la.__class__.__name__ != "InputLayer"]
    unknown = sorted({la.__class__.__name__ for la in layers} - {*_CONVS, *_PASS, "BatchNormalization"})
    if unknown:
        raise InputError(f"{model.name}: fine-tuning cannot rebuild layer types {', '.join(unknown)}")
    convs = [la for la in layers if la.__class__.__name__ in _CONVS]
    if not convs:
        raise InputError(f"{model.name}: no convolution to fine-tune")
    float_convs = {convs[0].name, convs[-1].name}  # the recipe keeps the stem and the head in float
    consumers: dict[str, list[Any]] = {}
    for la in layers:
        for src in _inbound(la):
            consumers.setdefault(src.name, []).append(la)
    after_head = _downstream(convs[-1], consumers)

    def folded_bn(la: Any) -> Any:
        """The BatchNorm quant_pre_process folds into ``la`` (its only consumer), if any."""
        nxt = consumers.get(la.name, [])
        return nxt[0] if len(nxt) == 1 and nxt[0].__class__.__name__ == "BatchNormalization" else None

    def quantized_output(la: Any) -> bool:
        """Does onnxruntime put a QuantizeLinear on this layer's output (BN folded, ReLU fused)?"""
        kind, nxt = la.__class__.__name__, consumers.get(la.name, [])
        if la.name in after_head or la.name == convs[-1].name or kind in _CONVS:
            return False
        if kind == "BatchNormalization":
            return not (nxt and all(_is_act(n) for n in nxt))
        return kind == "Add" or _is_act(la)  # MaxPool keeps its input's grid: onnxruntime gives it the same range

    fq_layers: dict[str, Any] = {}

    def rebuild(x: Any, quantize: bool, record: list[Any]) -> Any:
        """The model on ``x``; ``record`` collects the float tensors at the quantization points."""

        def point(name: str, y: Any) -> Any:
            record.append(y)
            if not quantize:
                return y
            return fq_layers.setdefault(name, FakeQuant(name=f"fq_{name}"))(y)

        out: dict[str, Any] = {model.layers[0].name: x}
        for la in layers:
            args = [out[src.name] for src in _inbound(la)]
            y = args if len(args) > 1 else args[0]
            kind = la.__class__.__name__
            q = quantize and la.name not in float_convs
            if kind == "SeparableConv2D":
                y = KernelPart(la, "depthwise", q)(y)
                if fake_quant and la.name not in float_convs:
                    y = point(f"{la.name}_depthwise", y)
                y = KernelPart(la, "pointwise", q, folded_bn(la))(y)
            elif kind in _CONVS:
                y = KernelPart(la, "conv" if kind == "Conv2D" else "depthwise", q, folded_bn(la))(y)
            elif kind == "BatchNormalization":
                y = la(y, training=False)
            else:
                y = la(y)
            if fake_quant and quantized_output(la):
                y = point(la.name, y)
            out[la.name] = y
        return out[layers[-1].name]

    fin = tf_keras.Input(model.input_shape[1:], dtype="float32", name="normalised")
    probes: list[Any] = []
    rebuild(fin, False, probes)
    probe = tf_keras.Model(fin, probes or [fin], name=f"{model.name}_probe")
    u8 = tf_keras.Input(model.input_shape[1:], dtype="uint8", name="pixels")
    train = tf_keras.Model(u8, rebuild(normalise(u8), fake_quant, []), name=f"{model.name}_train")
    return QatGraph(train, probe, tuple(fq_layers.values()))


def compare(fp32: Path, int8: Path, faces: Any, emulate: tuple[str, ...]) -> Any:
    """:func:`edgeemo_export.isa_parity.isa_parity` of any FP32 / INT8 pair (a QAT INT8 against the shipped FP32)."""
    from edgeemo.runtime.assets import PRECISION_SUFFIX
    from edgeemo_export.isa_parity import isa_parity

    with tempfile.TemporaryDirectory(prefix="edgeemo-qat-") as tmp:
        for src, precision in ((fp32, "fp32"), (int8, "int8")):
            if not Path(src).is_file():
                raise InputError(f"{src}: not found")
            shutil.copyfile(src, Path(tmp) / PRECISION_SUFFIX[precision])
        return isa_parity(Path(tmp), faces, emulate)


def main(argv: list[str] | None = None) -> int:
    """``python -m edgeemo_export.qat --fp32 A.onnx --int8 B.onnx [--limit N] [--emulate Haswell]``: per-ISA parity of
    an INT8 file against any FP32 file (natively; under each ``--emulate`` CPU too)."""
    import argparse
    import dataclasses
    import json
    import sys

    from edgeemo.errors import EdgeemoError
    from edgeemo_export.faceset import load_face_set
    from edgeemo_export.isa_parity import FER_PUBLICTEST

    parser = argparse.ArgumentParser(prog="python -m edgeemo_export.qat", description=main.__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, required=True)
    parser.add_argument("--int8", type=Path, required=True)
    parser.add_argument("--faces", type=Path, default=None, help="labelled faces (default: FER2013 PublicTest)")
    parser.add_argument("--limit", type=int, default=None, help="use this many evenly spaced faces")
    parser.add_argument("--emulate", action="append", default=[], help="qemu-x86_64 CPU model (repeatable)")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        faces = load_face_set(args.faces or FER_PUBLICTEST, args.limit)
        if args.faces is None:
            faces = dataclasses.replace(faces, source="../shared/data/fer2013-publictest")
        report = compare(args.fp32, args.int8, faces, tuple(args.emulate))
    except EdgeemoError as exc:
        print(f"qat: error: {exc}", file=sys.stderr)
        return exc.exit_code
    data = {"fp32": str(args.fp32), "int8": str(args.int8), **report.to_dict()}
    if args.json_out:
        args.json_out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    for r in report.results:
        print(
            f"{r.cpu:10s} faces {report.n_faces} fp32 acc {r.fp32_accuracy:.4f} int8 acc {r.int8_accuracy:.4f} "
            f"agreement {r.int8_agreement:.4f} same labels as native {r.int8_same_labels_as_native:.4f}"
        )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
