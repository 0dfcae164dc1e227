"""Merge single-input models that share an input spec into one ONNX graph with one output per head.

The typical use is the thesis's classifier plus its valence and arousal models: one session call then yields
``emotion``, ``valence`` and ``arousal`` for a batch of faces. Every node, initializer and intermediate tensor
of part *k* gets the prefix ``p<k>_<name>/``; the shared input keeps its name and each output is named after
its head. The fused file's ``source`` names all parts (``file`` joined with ``+``; ``sha256`` over the parts'
list), and the metadata key ``edgeemo.parts`` lists each part's heads, source file and sha256 so that parity
can find the original Keras models. The result is checked against the parts on a fixed random batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from edgeemo.errors import ExportError
from edgeemo.runtime.spec import EMOTION_HEAD, HeadSpec, ModelSpec, SourceSpec
from edgeemo_export import EXPORTER
from edgeemo_export.keras_io import sha256_file
from edgeemo_export.onnx_meta import PARTS_KEY, read_spec, save_checked, set_metadata, write_spec

log = logging.getLogger(__name__)

VERIFY_TOLERANCE = 1e-5


@dataclass(frozen=True)
class FusePart:
    name: str
    heads: tuple[str, ...]
    file: str
    sha256: str
    onnx_file: str
    onnx_sha256: str


@dataclass(frozen=True)
class FuseResult:
    path: Path
    spec: ModelSpec
    parts: tuple[FusePart, ...]
    max_abs_delta: dict[str, float]  # fused vs its part, per head, on the verification batch


def _input_mismatch(a: ModelSpec, b: ModelSpec) -> list[str]:
    da, db = asdict(a.input), asdict(b.input)
    diff = [f"{k}: {da[k]!r} vs {db[k]!r}" for k in da if da[k] != db[k]]
    if a.framing != b.framing:  # one crop feeds every head
        diff.append(f"framing: {[f.describe() for f in a.framing]} vs {[f.describe() for f in b.framing]}")
    return diff


def _rename_graph(graph: onnx.GraphProto, mapping: dict[str, str], prefix: str, origin: Path) -> None:
    def new(name: str) -> str:
        return name if not name else mapping.get(name, prefix + name)

    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ExportError(
                f"{origin}: node {node.name!r} ({node.op_type}) holds a subgraph; fusion supports plain graphs only"
            )
        node.name = prefix + node.name
        node.input[:] = [new(n) for n in node.input]
        node.output[:] = [new(n) for n in node.output]
    for init in graph.initializer:
        init.name = new(init.name)
    for vi in [*graph.value_info, *graph.output]:
        vi.name = new(vi.name)


def _opsets(models: Sequence[onnx.ModelProto], paths: Sequence[Path]) -> list[onnx.OperatorSetIdProto]:
    versions: dict[str, int] = {}
    default = {}
    for m, p in zip(models, paths):
        for o in m.opset_import:
            if o.domain in ("", "ai.onnx"):
                default[p] = o.version
            versions[o.domain] = max(versions.get(o.domain, 0), o.version)
    if len(set(default.values())) > 1:
        raise ExportError(
            "models use different ONNX opsets ("
            + ", ".join(f"{p}: {v}" for p, v in default.items())
            + "); export them with the same --opset before fusing"
        )
    return [helper.make_opsetid(d, v) for d, v in sorted(versions.items())]


def fuse_models(paths: Sequence[Path], out_path: Path, name: str) -> FuseResult:
    """Fuse FP32 edgeemo models (same input spec, distinct head names) into ``out_path``."""
    if len(paths) < 2:
        raise ExportError("fusion needs at least two models")
    models = [onnx.load(str(p)) for p in paths]
    specs = [read_spec(m, str(p)) for m, p in zip(models, paths)]
    for p, s in zip(paths, specs):
        if s.source.precision != "fp32":
            raise ExportError(
                f"{p}: fusion takes fp32 models (convert the fused model afterwards), this one is {s.source.precision}"
            )
    for p, s in zip(paths[1:], specs[1:]):
        diff = _input_mismatch(specs[0], s)
        if diff:
            raise ExportError(
                f"{p}: input spec differs from {paths[0]} ({'; '.join(diff)}); only models that "
                "share one input can be fused (run the other model on its own crops instead)"
            )
    heads = [h for s in specs for h in s.outputs]
    names = [h.name for h in heads]
    if len(set(names)) != len(names):
        raise ExportError(f"head names repeat across {', '.join(map(str, paths))}: {names}")
    emotion = [s for s in specs if EMOTION_HEAD in s.head_names]
    input_name = specs[0].input.name

    graph = helper.make_graph([], name, [], [])
    parts = []
    for k, (m, s, p) in enumerate(zip(models, specs, paths)):
        g = m.graph
        mapping = {input_name: input_name, **{h.onnx_name: h.name for h in s.outputs}}
        _rename_graph(g, mapping, f"p{k}_{s.name}/", p)
        if k == 0:
            graph.input.extend(g.input)
        graph.node.extend(g.node)
        graph.initializer.extend(g.initializer)
        graph.value_info.extend(g.value_info)
        by_name = {o.name: o for o in g.output}
        graph.output.extend(by_name[h.name] for h in s.outputs)
        parts.append(FusePart(s.name, s.head_names, s.source.file, s.source.sha256, p.name, sha256_file(p)))

    fused = helper.make_model(graph, opset_imports=_opsets(models, paths), producer_name="edgeemo-export")
    fused.ir_version = max(m.ir_version for m in models)
    parts_json = json.dumps([asdict(part) for part in parts], sort_keys=True)
    spec = ModelSpec(
        name=name,
        input=specs[0].input,
        outputs=tuple(HeadSpec(h.name, h.name, h.kind) for h in heads),
        classes=emotion[0].classes if emotion else (),
        source=SourceSpec(
            file="+".join(part.file for part in parts),
            sha256=hashlib.sha256(parts_json.encode()).hexdigest(),
            exporter=f"{EXPORTER} fuse",
            precision="fp32",
        ),
        framing=specs[0].framing,
    )
    fused.doc_string = f"{name}: fused by {EXPORTER} from {', '.join(part.onnx_file for part in parts)}"
    write_spec(fused, spec, str(out_path))
    set_metadata(fused, PARTS_KEY, parts_json)
    save_checked(fused, out_path)
    deltas = verify_fused(out_path, paths)
    log.info("wrote %s (%s), max |Δ| vs parts %s", out_path, ", ".join(spec.head_names), deltas)
    return FuseResult(out_path, spec, tuple(parts), deltas)


def verify_fused(fused_path: Path, part_paths: Sequence[Path], n: int = 8, seed: int = 0) -> dict[str, float]:
    """Run fused and parts on the same random faces-sized batch; raise if any head differs."""
    from edgeemo.runtime.model import EmotionModel

    fused = EmotionModel(fused_path)
    spec = fused.spec.input
    rng = np.random.default_rng(seed)
    crops = list(rng.integers(0, 256, (n, spec.height, spec.width), dtype=np.uint8))
    batch = fused.preprocess(crops)
    got = fused.run_batch(batch).heads
    deltas: dict[str, float] = {}
    for p in part_paths:
        want = EmotionModel(p).run_batch(batch).heads
        for head, ref in want.items():
            delta = float(np.max(np.abs(got[head] - ref)))
            deltas[head] = delta
            if delta > VERIFY_TOLERANCE * max(1.0, float(np.max(np.abs(ref)))):
                raise ExportError(f"{fused_path}: head {head!r} differs from {p} by {delta:.3g} after fusion")
    return deltas
