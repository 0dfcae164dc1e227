"""Post-export graph optimisation: exact rewrites that make the exported graph cheaper for onnxruntime.

:func:`optimize_onnx` folds the thesis models' in-graph pixel normalisation (``grayscale_to_rgb`` → cast →
``/127.5`` → ``-1``, exported by tf2onnx as Tile → Cast → Mul → Sub → Transpose) into the first convolution:

- the channel replication (Tile to 3 equal channels) becomes a sum of the first convolution's weights over
  its input channels, so the convolution reads 1 channel instead of 3;
- the affine map ``x * s + o`` moves into the weights (``W * s``) and bias (``b + o * sum(W)``);
- the convolution's zero padding in normalised space is the pixel value ``-o / s`` (127.5), so its padding
  becomes an explicit Pad node with that value in front of a convolution without padding.

This is exact up to float rounding. onnxruntime runs its generic Tile kernel on uint8 slowly (about a quarter of
the thesis graph's time at batch 32 on an AVX-512 CPU), which is why this rewrite pays. The graph's inputs,
outputs and ``metadata_props`` (the edgeemo facts) are kept as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_FLOAT = TensorProto.FLOAT


@dataclass
class _Chain:
    """Elementwise nodes from a graph input to the first Conv, and what they amount to."""

    nodes: list[onnx.NodeProto]
    conv: onnx.NodeProto
    scale: float
    offset: float
    repeat: int  # channel replication factor (1: none)
    nchw: bool  # the chain transposed NHWC → NCHW


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _const(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for t in graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None


def _scalar(graph: onnx.GraphProto, name: str) -> float | None:
    v = _const(graph, name)
    if v is None or v.size != 1:
        return None
    return float(v.reshape(()))


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _find_chain(graph: onnx.GraphProto, start: onnx.NodeProto, consumers: dict, outputs: set[str]) -> _Chain | None:
    """Follow single-consumer elementwise nodes from ``start`` to a Conv; None when the pattern does not hold."""
    nodes: list[onnx.NodeProto] = []
    scale, offset, repeat, nchw = 1.0, 0.0, 1, False
    node = start
    while True:
        op = node.op_type
        if op == "Conv":
            return _Chain(nodes, node, scale, offset, repeat, nchw) if nodes else None
        if op == "Tile":
            reps = _const(graph, node.input[1])
            if reps is None or nchw or reps.tolist()[:-1] != [1] * (len(reps) - 1):
                return None
            repeat *= int(reps[-1])
        elif op == "Cast":
            if _attr(node, "to") != _FLOAT:
                return None
        elif op in ("Mul", "Div", "Add", "Sub"):
            c = _scalar(graph, node.input[1])
            if c is None:
                return None
            if op == "Mul":
                scale, offset = scale * c, offset * c
            elif op == "Div":
                scale, offset = scale / c, offset / c
            elif op == "Add":
                offset += c
            else:
                offset -= c
        elif op == "Transpose":
            if nchw or list(_attr(node, "perm", [])) != [0, 3, 1, 2]:
                return None
            nchw = True
        else:
            return None
        nodes.append(node)
        out = node.output[0]
        nxt = consumers.get(out, [])
        if len(nxt) != 1 or out in outputs or nxt[0].input[0] != out:
            return None
        node = nxt[0]


def _conv_pads(conv: onnx.NodeProto) -> list[int] | None:
    auto = _attr(conv, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        return None
    pads = list(_attr(conv, "pads", [0, 0, 0, 0]))
    return [0, 0, 0, 0] if auto == "VALID" else pads


def _rewrite(graph: onnx.GraphProto, chain: _Chain, source: str, tag: str) -> bool:
    conv = chain.conv
    pads = _conv_pads(conv)
    w = _const(graph, conv.input[1])
    if pads is None or len(pads) != 4 or w is None or w.ndim != 4 or int(_attr(conv, "group", 1)) != 1:
        return False
    if not chain.nchw or chain.scale == 0 or w.shape[1] != chain.repeat:
        return False
    b = _const(graph, conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(w.shape[0], np.float32)
    if b is None:
        return False
    w64 = w.astype(np.float64)
    new_w = (w64.sum(axis=1, keepdims=True) * chain.scale).astype(np.float32)
    new_b = (b.astype(np.float64) + chain.offset * w64.sum(axis=(1, 2, 3))).astype(np.float32)
    pad_value = -chain.offset / chain.scale  # the pixel value that normalises to 0

    names = {k: f"{tag}_{k}" for k in ("cast", "nchw", "pad", "pads", "padval", "w", "b")}
    new_nodes = [
        helper.make_node("Cast", [source], [names["cast"]], to=_FLOAT, name=names["cast"]),
        helper.make_node("Transpose", [names["cast"]], [names["nchw"]], perm=[0, 3, 1, 2], name=names["nchw"]),
    ]
    conv_in = names["nchw"]
    if any(pads):
        top, left, bottom, right = pads
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array([0, 0, top, left, 0, 0, bottom, right], np.int64), names["pads"]),
                numpy_helper.from_array(np.array(pad_value, np.float32), names["padval"]),
            ]
        )
        pad_inputs = [names["nchw"], names["pads"], names["padval"]]
        new_nodes.append(helper.make_node("Pad", pad_inputs, [names["pad"]], mode="constant", name=names["pad"]))
        conv_in = names["pad"]
    graph.initializer.extend([numpy_helper.from_array(new_w, names["w"]), numpy_helper.from_array(new_b, names["b"])])
    new_conv = helper.make_node(
        "Conv",
        [conv_in, names["w"], names["b"]],
        list(conv.output),
        name=conv.name or f"{tag}_conv",
        **{a.name: helper.get_attribute_value(a) for a in conv.attribute if a.name not in ("pads", "auto_pad")},
    )
    dead = {n.output[0] for n in [*chain.nodes, conv]}  # node outputs are unique in a valid graph
    position = next(k for k, n in enumerate(graph.node) if n.output[0] == chain.nodes[0].output[0])
    kept = [n for n in graph.node if n.output[0] not in dead]
    kept[position:position] = [*new_nodes, new_conv]
    del graph.node[:]
    graph.node.extend(kept)
    return True


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def fold_input_normalisation(model: onnx.ModelProto) -> int:
    """Fold every graph input's channel replication and affine normalisation into its first Conv, in place.

    Returns how many chains were rewritten (a fused graph has one per sub-model).
    """
    graph = model.graph
    outputs = {o.name for o in graph.output}
    inputs = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    count = 0
    for name in inputs:
        tried: set[str] = set()
        while True:  # the node list is rebuilt by each rewrite: look the consumers up again every time
            starts = [n for n in _consumers(graph).get(name, []) if n.output[0] not in tried]
            if not starts:
                break
            start = starts[0]
            tried.add(start.output[0])
            chain = _find_chain(graph, start, _consumers(graph), outputs)
            if chain is not None and _rewrite(graph, chain, name, f"edgeemo_fold{count}"):
                count += 1
                tried.add(f"edgeemo_fold{count - 1}_cast")
    if count:
        _drop_unused_initializers(graph)
    return count


def optimize_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """A faster, equivalent copy of an exported edgeemo model; inputs, outputs and metadata unchanged."""
    out = copy.deepcopy(model)
    fold_input_normalisation(out)
    onnx.checker.check_model(out)
    return out


def max_abs_difference(a: onnx.ModelProto, b: onnx.ModelProto, batch: np.ndarray) -> dict[str, float]:
    """Largest absolute difference per output between two models on ``batch`` (onnxruntime, CPU)."""
    import onnxruntime as ort

    sa = ort.InferenceSession(a.SerializeToString(), providers=["CPUExecutionProvider"])
    sb = ort.InferenceSession(b.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sa.get_inputs()[0].name
    outs_a = sa.run(None, {name: batch})
    outs_b = sb.run(None, {name: batch})
    names: Sequence[str] = [o.name for o in sa.get_outputs()]
    return {n: float(np.max(np.abs(x - y))) for n, x, y in zip(names, outs_a, outs_b)}
