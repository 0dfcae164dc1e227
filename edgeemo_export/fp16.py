"""FP32 ONNX → FP16 ONNX (onnxconverter-common) with float32/uint8 inputs and float32 outputs kept.

``keep_io_types=True`` puts Cast nodes at the graph edges, so the runtime feeds and reads the same dtypes as
for FP32 and the spec's input description stays true; only ``source.precision`` changes.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import onnx
from onnx import TensorProto

from edgeemo.errors import ExportError, MissingDependencyError
from edgeemo_export.onnx_meta import get_metadata, read_spec, save_checked, set_metadata, write_spec

log = logging.getLogger(__name__)


def convert_fp16(fp32_path: Path, out_path: Path) -> Path:
    """Write the FP16 variant of an exported FP32 model; the edgeemo metadata says ``precision: fp16``."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise MissingDependencyError("FP16 export", "export", str(exc)) from exc
    model = onnx.load(str(fp32_path))
    spec = read_spec(model, str(fp32_path))
    if spec.source.precision != "fp32":
        raise ExportError(f"{fp32_path}: FP16 conversion needs an fp32 model, this one is {spec.source.precision}")
    extra = {p.key: p.value for p in model.metadata_props}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the model contains values out of fp16 range" is reported below
        half = float16.convert_float_to_float16(model, keep_io_types=True)
    _fix_casts(half.graph)
    for key, value in extra.items():
        if get_metadata(half, key) is None:
            set_metadata(half, key, value)
    write_spec(half, spec.with_precision("fp16"), str(out_path))
    save_checked(half, out_path)
    log.info("wrote %s", out_path)
    return out_path


def _fix_casts(graph: onnx.GraphProto) -> None:
    """Make ``Cast(to=float)`` nodes agree with the float16 type the converter gave their outputs.

    onnxconverter-common 1.16 retypes a Cast's output in ``value_info`` but leaves its ``to`` attribute, which
    onnxruntime rejects; the thesis graphs cast their uint8 input to float this way.
    """
    half = {vi.name for vi in graph.value_info if vi.type.tensor_type.elem_type == TensorProto.FLOAT16}
    for node in graph.node:
        if node.op_type != "Cast" or node.output[0] not in half:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
