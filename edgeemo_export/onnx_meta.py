"""Small ONNX graph edits shared by the exporters: metadata, tensor renames, named dynamic batch."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import onnx

from edgeemo.errors import ExportError
from edgeemo.runtime.spec import METADATA_KEY, ModelSpec

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


_GENERATED = re.compile(r"__\d+")


def canonical_names(graph: onnx.GraphProto) -> None:
    """Put nodes in a stable topological order and renumber generated names (``name__123``) by appearance.

    tf2onnx numbers the names it invents from counters, and orders independent branches, in ways that depend on
    the process (its optimizers walk Python sets); normalising both makes the same model give the same bytes.
    """
    _stable_node_order(graph)
    mapping: dict[str, str] = {}

    def canon(name: str) -> str:
        if not _GENERATED.search(name):
            return name
        if name not in mapping:
            # The whole name is replaced: for constants that tf2onnx merged, which original name survived is
            # itself process-dependent.
            mapping[name] = f"t__c{len(mapping)}"
        return mapping[name]

    for node in graph.node:
        node.name = canon(node.name)
        node.input[:] = [canon(n) for n in node.input]
        node.output[:] = [canon(n) for n in node.output]
    for init in graph.initializer:
        init.name = canon(init.name)
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        vi.name = canon(vi.name)
    inits = sorted(graph.initializer, key=lambda t: t.name)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    infos = sorted(graph.value_info, key=lambda v: v.name)
    del graph.value_info[:]
    graph.value_info.extend(infos)


def _stable_node_order(graph: onnx.GraphProto) -> None:
    """Kahn's topological sort; among ready nodes the one with the smallest name (numbers stripped) goes first."""
    import heapq

    nodes = list(graph.node)
    producer = {out: k for k, n in enumerate(nodes) for out in n.output}
    deps = [{producer[i] for i in n.input if i in producer} for n in nodes]
    users: list[list[int]] = [[] for _ in nodes]
    for k, d in enumerate(deps):
        for j in d:
            users[j].append(k)
    waiting = [len(d) for d in deps]

    def key(k: int) -> tuple[str, str, int]:
        return (_GENERATED.sub("", nodes[k].name), nodes[k].op_type, k)

    ready = [key(k) for k, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        k = heapq.heappop(ready)[2]
        order.append(nodes[k])
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, key(u))
    if len(order) != len(nodes):
        raise ExportError("the exported graph has a cycle; cannot order its nodes")
    del graph.node[:]
    graph.node.extend(order)
