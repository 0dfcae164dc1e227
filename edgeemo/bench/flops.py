"""Multiply-adds per item of an ONNX classifier, counted from its Conv / Gemm / MatMul nodes.

Needs the ``onnx`` package (in the ``dev`` and ``export`` extras) for shape inference; returns None without it,
so the lean harness simply leaves the figure out. The harness counts in its own process, once per model: importing
``onnx`` takes seconds and tens of MiB, which must not land in a measured configuration's time or peak memory.
"""

from __future__ import annotations

import math
from pathlib import Path


def model_macs(name: str) -> int | None:
    """Multiply-adds per item of a model's portable fp32 graph (its other precisions share the architecture), None
    when the model cannot be loaded here or ``onnx`` is missing."""
    from edgeemo.errors import EdgeemoError
    from edgeemo.runtime.assets import resolve_model
    from edgeemo.runtime.model import EmotionModel

    try:
        path = resolve_model(name, "fp32")
        spec = EmotionModel.load(path).spec.input
    except EdgeemoError:
        return None
    return count_macs(path, spec.height, spec.width, spec.channels, spec.layout)


def count_macs(path: str | Path, height: int, width: int, channels: int, layout: str = "NHWC") -> int | None:
    """Multiply-accumulates for one item (batch 1) of the model at ``path``."""
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:
        return None
    model = onnx.load(str(path))
    inp = model.graph.input[0]
    dims = [1, height, width, channels] if layout == "NHWC" else [1, channels, height, width]
    for d, v in zip(inp.type.tensor_type.shape.dim, dims):
        d.ClearField("dim_param")
        d.dim_value = v
    model = shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for vi in [*model.graph.value_info, *model.graph.output, *model.graph.input]:
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    weights = {t.name: list(numpy_helper.to_array(t).shape) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            w_name = node.input[3] if node.op_type == "QLinearConv" else node.input[1]
            w = weights.get(w_name) or shapes.get(w_name)
            out = shapes.get(node.output[0])
            if not w or not out or 0 in out:
                continue
            # out: N, M, spatial...; weight: M, C/group, k...
            total += math.prod(out[1:]) * math.prod(w[1:])
        elif node.op_type in ("Gemm", "MatMul", "MatMulInteger"):
            a = shapes.get(node.input[0])
            out = shapes.get(node.output[0])
            if not a or not out or 0 in out:
                continue
            total += math.prod(out[1:]) * a[-1]
    return total
