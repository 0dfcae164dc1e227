"""Activation equalisation before INT8 calibration (a data-driven form of cross-layer equalisation).

INT8 activations are quantized per tensor, so a tensor whose channels span very different ranges loses most
of its resolution on the small channels. For a convolution ``A`` whose output feeds (directly or through a
Relu) only convolution ``B``, scaling output channel ``c`` of ``A`` (weights and bias) by ``1/s_c`` and input
channel ``c`` of ``B`` by ``s_c`` leaves the network's function unchanged (Relu commutes with positive scales)
while the intermediate channel's range becomes ``r_c / s_c``. With per-channel weight quantization the scaling
of ``A``'s output channels is free; for a depthwise ``B`` (one filter per channel) it is free too, so those
tensors are equalised fully (every channel to the tensor's largest range). For an ordinary ``B`` the
input-channel scaling reshapes its weights, so ``strength`` (0..1, a power on the ratio) trades the two.

The channel ranges are measured with onnxruntime on the calibration tensors (NCHW convolutions only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from edgeemo_export.calibration import intermediate_outputs

log = logging.getLogger(__name__)

_MIN_RATIO = 1e-3  # never amplify a channel by more than 1000x (near-dead channels stay as they are)


@dataclass(frozen=True)
class Pair:
    producer: str  # Conv A
    consumer: str  # Conv B
    tensor: str  # B's input (A's output or the Relu after it)
    depthwise: bool


def find_pairs(model: onnx.ModelProto) -> list[Pair]:
    """Conv → (Relu) → Conv chains whose intermediate tensor has no other reader."""
    graph = model.graph
    init = {i.name for i in graph.initializer}
    weight_dims = {i.name: list(i.dims) for i in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    pairs = []
    for a in graph.node:
        if not _is_plain_conv(a, init):
            continue
        t = a.output[0]
        readers = consumers.get(t, [])
        if len(readers) == 1 and readers[0].op_type == "Relu":
            t = readers[0].output[0]
            readers = consumers.get(t, [])
        if t in outputs or a.output[0] in outputs or len(readers) != 1:
            continue
        b = readers[0]
        if not _is_plain_conv(b, init) or b.input[0] != t:
            continue
        group = _group(b)
        dims = weight_dims[b.input[1]]
        depthwise = group > 1 and dims[0] == group and dims[1] == 1
        if group > 1 and not depthwise:
            continue
        pairs.append(Pair(a.name, b.name, t, depthwise))
    return pairs


def equalize(model: onnx.ModelProto, calibration: np.ndarray, input_name: str, strength: float = 1.0) -> int:
    """Rescale ``model``'s pairs in place using channel ranges measured on ``calibration``; returns the count."""
    pairs = [p for p in find_pairs(model) if p.depthwise or strength > 0]
    if not pairs:
        return 0
    ranges = _channel_ranges(model, calibration, input_name, [p.tensor for p in pairs])
    nodes = {n.name: n for n in model.graph.node}
    weights = {i.name: i for i in model.graph.initializer}
    done = 0
    for p in pairs:
        r = ranges[p.tensor]
        if r.max() <= 0:
            continue
        ratio = np.clip(r / r.max(), _MIN_RATIO, 1.0)
        s = ratio if p.depthwise else ratio**strength
        s = np.where(r > 0, s, 1.0).astype(np.float64)
        a, b = nodes[p.producer], nodes[p.consumer]
        _scale(weights, a.input[1], 1.0 / s, axis=0)
        if len(a.input) > 2 and a.input[2]:
            _scale(weights, a.input[2], 1.0 / s, axis=0)
        _scale(weights, b.input[1], s, axis=0 if p.depthwise else 1)
        done += 1
    log.info("equalised %d conv pairs (strength %.2f)", done, strength)
    return done


def _channel_ranges(
    model: onnx.ModelProto, calibration: np.ndarray, input_name: str, tensors: list[str]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for batch in intermediate_outputs(model, calibration, input_name, tensors):
        for t, v in batch.items():
            m = np.abs(v).max(axis=(0, 2, 3))
            out[t] = np.maximum(out[t], m) if t in out else m
    return out


def _scale(weights: dict[str, onnx.TensorProto], name: str, s: np.ndarray, axis: int) -> None:
    w = numpy_helper.to_array(weights[name]).astype(np.float64)
    shape = [1] * w.ndim
    shape[axis] = -1
    new = (w * s.reshape(shape)).astype(np.float32)
    weights[name].CopyFrom(numpy_helper.from_array(new, name))


def _is_plain_conv(node: onnx.NodeProto, init: set[str]) -> bool:
    return (
        node.op_type == "Conv"
        and len(node.input) >= 2
        and node.input[1] in init
        and (len(node.input) < 3 or not node.input[2] or node.input[2] in init)
    )


def _group(node: onnx.NodeProto) -> int:
    return int(next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1))
