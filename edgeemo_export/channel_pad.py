"""Pad narrow convolution outputs to onnxruntime's NCHWc channel block, exactly.

On x86, onnxruntime runs convolutions in a blocked layout (NCHWc) whose block is 8 channels with AVX2 and
16 with AVX-512. A tensor whose channel count is not a multiple of the block is kept in plain NCHW: the
producing convolution already computes a whole block and then a ``ReorderOutput`` node copies it back out, and
the consumers take a slower plain-NCHW input path. mini-Xception's and MobileNet-0.25's 8-channel layers hit
exactly this on an AVX-512 CPU; they are a third of mini-Xception's time at batch 8.

:func:`pad_narrow_channels` gives such a convolution zero filters up to the block and lets the padded channels
flow through per-channel nodes (ReLU, Clip, BatchNormalization, depthwise convolution) until 1x1 convolutions,
whose weights for the padded input channels are zero. The padded channels therefore never reach an output, and
the rewrite is exact up to float summation order. Paths that end anywhere else (an Add, a pool, a graph output,
a convolution with a larger kernel, whose cost would grow with the padding) leave that tensor alone.

The padded graph is only faster where the block is the padded width: the exporter writes it as a separate file
(``model.avx512.onnx``) that the runtime picks on AVX-512 CPUs (:func:`edgeemo.runtime.session.cpu_layout`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

AVX512_BLOCK = 16
PAD_KEY = "edgeemo.channel_pad"


@dataclass
class _Plan:
    """What padding one producer's output touches."""

    producer: onnx.NodeProto
    channels: int
    padded: int
    passthrough: list[onnx.NodeProto] = field(default_factory=list)
    sinks: list[onnx.NodeProto] = field(default_factory=list)
    tensors: list[str] = field(default_factory=list)


def _group(node: onnx.NodeProto) -> int:
    for a in node.attribute:
        if a.name == "group":
            return int(a.i)
    return 1


def _set_group(node: onnx.NodeProto, group: int) -> None:
    for a in node.attribute:
        if a.name == "group":
            a.i = group
            return
    node.attribute.append(helper.make_attribute("group", group))


def _plan(
    producer: onnx.NodeProto,
    block: int,
    inits: dict[str, onnx.TensorProto],
    consumers: dict[str, list[onnx.NodeProto]],
    outputs: set[str],
    uses: dict[str, int],
) -> _Plan | None:
    w = inits.get(producer.input[1]) if len(producer.input) > 1 else None
    if w is None or len(w.dims) != 4 or _group(producer) != 1 or w.dims[0] % block == 0:
        return None
    c = int(w.dims[0])
    plan = _Plan(producer, c, -(-c // block) * block)
    owned = [producer.input[1], *producer.input[2:3]]
    frontier = [producer.output[0]]
    while frontier:
        t = frontier.pop()
        if t in outputs or not consumers.get(t):
            return None
        plan.tensors.append(t)
        for n in consumers[t]:
            if n.input[0] != t:
                return None
            if n.op_type in ("Relu", "Clip"):
                plan.passthrough.append(n)
                frontier.append(n.output[0])
            elif n.op_type == "BatchNormalization":
                plan.passthrough.append(n)
                owned += list(n.input[1:5])
                frontier.append(n.output[0])
            elif n.op_type == "Conv" and n.input[1] in inits:
                dims = list(inits[n.input[1]].dims)
                owned += list(n.input[1:3])
                if _group(n) == c and dims[:2] == [c, 1]:  # depthwise: the padding flows on
                    plan.passthrough.append(n)
                    frontier.append(n.output[0])
                elif _group(n) == 1 and dims[1] == c and dims[2:] == [1, 1]:
                    plan.sinks.append(n)
                else:
                    return None
            else:
                return None
    if any(name not in inits or uses[name] != 1 for name in owned if name):
        return None  # only initializers this plan alone reads may be rewritten
    return plan


def _pad(t: onnx.TensorProto, axis: int, size: int, fill: float = 0.0) -> onnx.TensorProto:
    a = numpy_helper.to_array(t)
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, size - a.shape[axis])
    return numpy_helper.from_array(np.pad(a, widths, constant_values=fill).astype(a.dtype), t.name)


def _apply(plan: _Plan, inits: dict[str, onnx.TensorProto]) -> None:
    def pad(name: str, axis: int, fill: float = 0.0) -> None:
        if name:
            inits[name].CopyFrom(_pad(inits[name], axis, plan.padded, fill))

    pad(plan.producer.input[1], 0)
    if len(plan.producer.input) > 2:
        pad(plan.producer.input[2], 0)
    for n in plan.passthrough:
        if n.op_type == "BatchNormalization":  # padded channels: scale 1, bias 0, mean 0, variance 1
            for name, fill in zip(n.input[1:5], (1.0, 0.0, 0.0, 1.0)):
                pad(name, 0, fill)
        elif n.op_type == "Conv":
            pad(n.input[1], 0)
            if len(n.input) > 2:
                pad(n.input[2], 0)
            _set_group(n, plan.padded)
    for n in plan.sinks:
        pad(n.input[1], 1)


def pad_narrow_channels(model: onnx.ModelProto, block: int = AVX512_BLOCK) -> onnx.ModelProto:
    """A copy of ``model`` with every paddable narrow convolution output padded to ``block`` channels.

    Inputs, outputs and metadata are unchanged. The copy records the padded tensors in the metadata key
    ``edgeemo.channel_pad`` (``block=16;tensors=3``); an unchanged copy carries no such key.
    """
    out = copy.deepcopy(model)
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    uses: dict[str, int] = {}
    for n in g.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
            uses[name] = uses.get(name, 0) + 1
    outputs = {o.name for o in g.output}
    padded: list[str] = []
    for node in list(g.node):
        if node.op_type != "Conv":
            continue
        plan = _plan(node, block, inits, consumers, outputs, uses)
        if plan is None:
            continue
        _apply(plan, inits)
        padded += plan.tensors
    if padded:
        stale = set(padded)
        kept = [v for v in g.value_info if v.name not in stale]
        del g.value_info[:]
        g.value_info.extend(kept)
        helper.set_model_props(
            out, {**{p.key: p.value for p in out.metadata_props}, PAD_KEY: f"block={block};tensors={len(padded)}"}
        )
        onnx.checker.check_model(out)
    return out
