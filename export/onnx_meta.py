"""Small ONNX graph edits shared by the exporters: metadata, tensor renames, named dynamic batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx

from edgeemo.errors import ExportError
from edgeemo.spec import METADATA_KEY, ModelSpec

PARTS_KEY = "edgeemo.parts"  # fused models: one entry per original model (heads, source file, sha256)
BATCH_DIM = "batch"


def set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    """Set one ``metadata_props`` entry, replacing an earlier value under the same key."""
    keep = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    entry = model.metadata_props.add()
    entry.key = key
    entry.value = value


def get_metadata(model: onnx.ModelProto, key: str) -> str | None:
    for p in model.metadata_props:
        if p.key == key:
            return p.value
    return None


def write_spec(model: onnx.ModelProto, spec: ModelSpec, origin: str) -> None:
    spec.validate(origin)
    set_metadata(model, METADATA_KEY, spec.to_json())


def read_spec(model: onnx.ModelProto, origin: str) -> ModelSpec:
    text = get_metadata(model, METADATA_KEY)
    if text is None:
        raise ExportError(f"{origin}: no '{METADATA_KEY}' metadata (not exported by edgeemo export)")
    return ModelSpec.from_json(text, origin)


def read_parts(model: onnx.ModelProto) -> list[dict[str, Any]] | None:
    text = get_metadata(model, PARTS_KEY)
    return None if text is None else list(json.loads(text))


def rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a tensor everywhere in ``graph`` (node inputs/outputs, graph inputs/outputs, value_info)."""
    if old == new:
        return
    taken = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    taken |= {i.name for i in graph.initializer}
    if new in taken:
        raise ExportError(f"cannot rename tensor {old!r} to {new!r}: the name is already used in the graph")
    for node in graph.node:
        for seq in (node.input, node.output):
            for k, name in enumerate(seq):
                if name == old:
                    seq[k] = new
    for seq in (graph.input, graph.output, graph.value_info):
        for vi in seq:
            if vi.name == old:
                vi.name = new


def name_batch_dim(graph: onnx.GraphProto) -> None:
    """Give the first (batch) dimension of every graph input and output the symbolic name ``batch``."""
    for vi in [*graph.input, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def save_checked(model: onnx.ModelProto, path: Path) -> Path:
    """Check the graph and write it; the folder is created."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path}: the exported graph is not valid ONNX ({exc})") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
