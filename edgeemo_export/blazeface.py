"""Build time: MediaPipe's BlazeFace ``.tflite`` face detectors → ONNX for the ``blazeface`` detector.

Run once when the shipped models change (needs the ``export`` extra: TensorFlow for the TFLite schema and
interpreter, tf2onnx); the runtime only reads the ``.onnx`` files this writes::

    python -m edgeemo_export.blazeface                      # both variants into models/detectors/blazeface/
    python -m edgeemo_export.blazeface --verify IMG [IMG...]  # and compare ONNX with TFLite on real images

The short-range model converts directly. The full-range model is a *sparse* model: most 1x1 convolution
weights are stored in TFLite's sparse format (CSR along the input channels) and float16, and the graph
expands them at load time through ``DENSIFY`` and ``DEQUANTIZE`` ops, which tf2onnx cannot convert. We
expand those constants ourselves (:func:`densify`, written from the TFLite schema's definition of
``SparsityParameters``), fold the ``DEQUANTIZE`` of constant float16 weights into float32 constants, write an
equivalent dense ``.tflite`` without those ops (:func:`fold_sparse_weights`) and convert that. :func:`verify`
checks both steps against TensorFlow's own TFLite interpreter on the *original* file.

The detector facts (input size, normalisation, anchor layout, decoding scales, output names) are written
into the ONNX metadata under :data:`edgeemo.detectors.blazeface.METADATA_KEY`, so the runtime never
hard-codes them; ``card.json`` beside the files repeats them for humans with licence and checksums.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("edgeemo_export.blazeface")

REPO = Path(__file__).resolve().parents[1]
ASSET_DIR = REPO / "models" / "detectors" / "blazeface"
METADATA_KEY = "edgeemo.detector"  # same value as edgeemo.detectors.blazeface.METADATA_KEY
EXPORTER = "edgeemo-export blazeface 1"
SOURCE_WHEEL = "mediapipe-0.10.21 (PyPI wheel), mediapipe/modules/face_detection/"
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")


@dataclass(frozen=True)
class Variant:
    """One BlazeFace model and the MediaPipe graph options that go with it."""

    name: str
    tflite: str
    onnx: str
    size: int  # square input, pixels
    strides: tuple[int, ...]  # SsdAnchorsCalculator strides (layers with equal strides share a grid)
    interpolated_scale_aspect_ratio: float  # > 0 adds one anchor per layer and cell
    min_score: float  # MediaPipe's default score threshold for this model
    graph: str  # the MediaPipe graph these options come from


# From MediaPipe's graphs: face_detection_short_range.pbtxt / tasks face_detector_graph.cc (128x128, strides
# 8,16,16,16, interpolated ratio 1 → 2 anchors per layer: 16*16*2 + 8*8*6 = 896 anchors) and
# face_detection_full_range.pbtxt (192x192, one stride-4 layer, no interpolated anchor → 48*48 = 2304).
VARIANTS = {
    "short": Variant(
        "short",
        "face_detection_short_range.tflite",
        "face_detection_short_range.onnx",
        128,
        (8, 16, 16, 16),
        1.0,
        0.5,
        "face_detection_short_range.pbtxt, tasks/cc/vision/face_detector/face_detector_graph.cc",
    ),
    "full": Variant(
        "full",
        "face_detection_full_range_sparse.tflite",
        "face_detection_full_range.onnx",
        192,
        (4,),
        0.0,
        0.6,
        "face_detection_full_range.pbtxt",
    ),
}


def _schema() -> Any:
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def densify(values: np.ndarray, sparsity: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Expand a TFLite sparse tensor (values in traversal order) into its dense ``shape``.

    ``sparsity`` is a ``SparsityParametersT``: ``traversal_order`` lists the n original dimensions and then
    k block dimensions in storage order, ``block_map`` names the original dimension each block dimension
    splits, and ``dim_metadata`` (in traversal order) says per level whether it is DENSE (``dense_size``
    positions) or SPARSE_CSR (``array_segments`` / ``array_indices`` over the previous level's positions).
    """
    s = _schema()
    n = len(shape)
    order = [int(i) for i in sparsity.traversalOrder]
    block_map = [] if sparsity.blockMap is None else [int(i) for i in sparsity.blockMap]
    meta = sparsity.dimMetadata
    if len(order) != n + len(block_map) or len(meta) != len(order):
        raise ValueError(f"inconsistent sparsity: order {order}, block map {block_map}, {len(meta)} levels")
    level_size = [int(m.denseSize) for m in meta]
    # Size of one block along each original dimension (1 where the dimension is not blocked).
    block_size = [1] * n
    for j, d in enumerate(block_map):
        block_size[d] = level_size[order.index(n + j)]

    # Walk the levels breadth-first: each entry is (position in this level, coordinates so far).
    positions = np.zeros(1, dtype=np.int64)
    coords = np.zeros((1, len(order)), dtype=np.int64)
    for level, m in enumerate(meta):
        if m.format == s.DimensionType.DENSE:
            size = level_size[level]
            positions = (positions[:, None] * size + np.arange(size)[None, :]).reshape(-1)
            coords = np.repeat(coords, size, axis=0)
            coords[:, level] = np.tile(np.arange(size), len(coords) // size)
        else:
            seg = np.asarray(m.arraySegments.values, dtype=np.int64)
            idx = np.asarray(m.arrayIndices.values, dtype=np.int64)
            counts = seg[positions + 1] - seg[positions]
            new_positions = np.concatenate([np.arange(seg[p], seg[p + 1]) for p in positions])
            coords = np.repeat(coords, counts, axis=0)
            coords[:, level] = idx[new_positions]
            positions = new_positions
    if len(positions) != values.size:
        raise ValueError(f"sparse tensor holds {values.size} values, its index describes {len(positions)}")

    # Map storage coordinates back to original indices: dim d = outer index * block size + in-block index.
    original = np.zeros((len(positions), n), dtype=np.int64)
    for level, dim in enumerate(order):
        if dim < n:
            original[:, dim] += coords[:, level] * block_size[dim]
        else:
            original[:, block_map[dim - n]] += coords[:, level]
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(original.T)] = values.reshape(-1)[positions]
    return dense


_NUMPY_OF = {"FLOAT16": np.float16, "FLOAT32": np.float32, "INT32": np.int32, "INT8": np.int8, "UINT8": np.uint8}


def _tensor_dtype(s: Any, tensor: Any) -> Any:
    names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    name = names[tensor.type]
    if name not in _NUMPY_OF:
        raise ValueError(f"tensor {tensor.name!r}: unsupported type {name}")
    return _NUMPY_OF[name]


def fold_sparse_weights(tflite: bytes) -> tuple[bytes, int, int]:
    """An equivalent TFLite model where DENSIFY and constant-weight DEQUANTIZE ops are folded into constants.

    Returns the new model bytes and how many DENSIFY and DEQUANTIZE ops were folded.
    """
    import flatbuffers

    s = _schema()
    model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(tflite, 0))
    op_names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    codes = [op_names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    if len(model.subgraphs) != 1:
        raise ValueError(f"expected one subgraph, found {len(model.subgraphs)}")
    g = model.subgraphs[0]

    def constant(t_index: int) -> np.ndarray | None:
        t = g.tensors[t_index]
        data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        if data is None or len(data) == 0:
            return None
        raw = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=_tensor_dtype(s, t))
        return raw

    def set_constant(t_index: int, array: np.ndarray) -> None:
        t = g.tensors[t_index]
        buf = s.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), dtype=np.uint8)
        model.buffers.append(buf)
        t.buffer = len(model.buffers) - 1
        t.sparsity = None

    kept, n_densify, n_dequant = [], 0, 0
    for op in g.operators:
        code = codes[op.opcodeIndex]
        if code == "DENSIFY":
            src = g.tensors[op.inputs[0]]
            values = constant(op.inputs[0])
            if values is None or src.sparsity is None:
                raise ValueError(f"DENSIFY of non-constant or non-sparse tensor {src.name!r}")
            shape = tuple(int(d) for d in g.tensors[op.outputs[0]].shape)
            set_constant(op.outputs[0], densify(values, src.sparsity, shape))
            n_densify += 1
            continue
        if code == "DEQUANTIZE":
            values = constant(op.inputs[0])
            if values is not None and g.tensors[op.inputs[0]].type == s.TensorType.FLOAT16:
                set_constant(op.outputs[0], values.astype(np.float32))
                n_dequant += 1
                continue
        kept.append(op)
    g.operators = kept
    _drop_unused_tensors(g)
    builder = flatbuffers.Builder(len(tflite) * 2)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), n_densify, n_dequant


def _drop_unused_tensors(g: Any) -> None:
    """Remove tensors no op or graph input/output refers to (the folded sparse/float16 sources).

    Converters read every tensor that holds a buffer, so the sparse ones must go, not merely be unreferenced.
    """
    used = {int(i) for i in [*g.inputs, *g.outputs] if i >= 0}
    for op in g.operators:
        used.update(int(i) for i in [*op.inputs, *op.outputs] if i >= 0)
    keep = sorted(used)
    new_index = {old: new for new, old in enumerate(keep)}

    def remap(indices: Any) -> list[int]:
        return [new_index[int(i)] if i >= 0 else -1 for i in indices]

    g.tensors = [g.tensors[i] for i in keep]
    g.inputs, g.outputs = remap(g.inputs), remap(g.outputs)
    for op in g.operators:
        op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        if op.intermediates is not None and len(op.intermediates):
            raise ValueError("operators with intermediate tensors are not supported")


def _uniform_names(proto: Any) -> None:
    """Name the graph's tensors ``input``, ``regressors`` (N x 16) and ``classificators`` (N x 1) in every variant.

    The full-range model calls them ``input_1``, ``Identity`` and ``Identity_1``; the outputs are told apart by
    their last dimension (16 box and keypoint values, 1 score logit).
    """
    (inp,) = proto.graph.input
    renames = {inp.name: "input"}
    for out in proto.graph.output:
        last = out.type.tensor_type.shape.dim[-1].dim_value
        renames[out.name] = {16: "regressors", 1: "classificators"}[last]
    for value in [*proto.graph.input, *proto.graph.output]:
        value.name = renames.get(value.name, value.name)
    for node in proto.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]


def anchor_count(v: Variant) -> int:
    total, i = 0, 0
    while i < len(v.strides):
        j = i
        while j < len(v.strides) and v.strides[j] == v.strides[i]:
            j += 1
        per_layer = 1 + (v.interpolated_scale_aspect_ratio > 0)
        grid = -(-v.size // v.strides[i])
        total += grid * grid * (j - i) * per_layer
        i = j
    return total


def detector_facts(v: Variant, source_sha256: str) -> dict[str, Any]:
    """The metadata document the runtime reads (schema 1 of ``edgeemo.detector``)."""
    return {
        "schema": 1,
        "kind": "blazeface",
        "variant": v.name,
        "input": {
            "name": "input",
            "layout": "NHWC",
            "height": v.size,
            "width": v.size,
            "colour": "rgb",
            "dtype": "float32",
            "normalisation": {"mode": "affine", "scale": 1 / 127.5, "offset": -1.0},
            "resize": "letterbox",  # keep aspect ratio, pad with black (MediaPipe's BORDER_ZERO)
        },
        "outputs": {"boxes": "regressors", "scores": "classificators"},
        "anchors": {
            "strides": list(v.strides),
            "interpolated_scale_aspect_ratio": v.interpolated_scale_aspect_ratio,
            "offset": 0.5,
            "fixed_size": True,
            "count": anchor_count(v),
        },
        "decode": {
            "scale": float(v.size),
            "box_order": "cx,cy,w,h",
            "keypoints": list(KEYPOINTS),
            "score": "sigmoid",
            "score_clip": 100.0,
        },
        "min_score": v.min_score,
        "min_suppression": 0.3,
        "nms": "weighted",
        "source": {
            "file": v.tflite,
            "sha256": source_sha256,
            "from": SOURCE_WHEEL,
            "graph": v.graph,
            "licence": "Apache-2.0",
            "exporter": EXPORTER,
        },
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert(v: Variant, src_dir: Path = ASSET_DIR, out_dir: Path = ASSET_DIR, opset: int = 13) -> Path:
    """Convert one variant to ONNX (folding sparse weights first where present) and embed its facts."""
    import onnx
    import tf2onnx

    src = src_dir / v.tflite
    data = src.read_bytes()
    dense, n_densify, n_dequant = fold_sparse_weights(data)
    log.info("%s: folded %d DENSIFY and %d DEQUANTIZE ops", src.name, n_densify, n_dequant)
    with tempfile.TemporaryDirectory() as tmp:
        dense_path = Path(tmp) / "dense.tflite"
        dense_path.write_bytes(dense)
        proto, _ = tf2onnx.convert.from_tflite(str(dense_path), opset=opset)
    proto.graph.name = f"blazeface_{v.name}"
    _uniform_names(proto)
    facts = detector_facts(v, hashlib.sha256(data).hexdigest())
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(facts, sort_keys=True)
    onnx.checker.check_model(proto)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / v.onnx
    onnx.save(proto, str(out))
    log.info("wrote %s (%d anchors)", out, facts["anchors"]["count"])
    return out


def _tflite_outputs(path_or_bytes: Path | bytes, batch: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    kw = {"model_path": str(path_or_bytes)} if isinstance(path_or_bytes, Path) else {"model_content": path_or_bytes}
    interp = tf.lite.Interpreter(**kw)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    out: dict[str, list[np.ndarray]] = {}
    for x in batch:
        interp.set_tensor(inp["index"], x[None])
        interp.invoke()
        for d in interp.get_output_details():
            out.setdefault(d["name"], []).append(interp.get_tensor(d["index"])[0].copy())
    return {k: np.stack(v) for k, v in out.items()}


def letterboxed_inputs(images: list[Path], size: int) -> np.ndarray:
    """Real photos letterboxed to the model input, normalised to [-1, 1]: the verification batch."""
    import cv2

    xs = []
    for p in images:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{p}: cannot read image")
        h, w = bgr.shape[:2]
        scale = size / max(h, w)
        nw, nh = round(w * scale), round(h * scale)
        canvas = np.zeros((size, size, 3), np.uint8)
        top, left = (size - nh) // 2, (size - nw) // 2
        canvas[top : top + nh, left : left + nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA)
        xs.append(canvas[:, :, ::-1].astype(np.float32) / 127.5 - 1.0)
    return np.stack(xs)


def verify(v: Variant, images: list[Path], src_dir: Path = ASSET_DIR, onnx_dir: Path = ASSET_DIR) -> dict[str, float]:
    """Largest differences of raw outputs: dense TFLite vs original TFLite, and ONNX vs original TFLite."""
    import onnxruntime as ort

    batch = letterboxed_inputs(images, v.size)
    original = _tflite_outputs(src_dir / v.tflite, batch)
    dense = _tflite_outputs(fold_sparse_weights((src_dir / v.tflite).read_bytes())[0], batch)
    sess = ort.InferenceSession(str(onnx_dir / v.onnx), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    onnx_out = {n: [] for n in names}
    for x in batch:
        for n, y in zip(names, sess.run(names, {sess.get_inputs()[0].name: x[None]})):
            onnx_out[n].append(y[0])
    report = {}
    for key, last in (("regressors", 16), ("classificators", 1)):
        ref = next(val for val in original.values() if val.shape[-1] == last)
        d = next(val for val in dense.values() if val.shape[-1] == last)
        report[f"{key}: dense tflite vs original"] = float(np.abs(d - ref).max())
        report[f"{key}: onnx vs original"] = float(np.abs(np.stack(onnx_out[key]) - ref).max())
    return report


def write_card(src_dir: Path = ASSET_DIR, out_dir: Path = ASSET_DIR) -> Path:
    """card.json: what each file is, where it came from, its licence and checksum."""
    files = []
    for v in VARIANTS.values():
        src, dst = src_dir / v.tflite, out_dir / v.onnx
        files.append(
            {
                "variant": v.name,
                "onnx": v.onnx,
                "onnx_sha256": sha256(dst),
                "tflite": v.tflite,
                "tflite_sha256": sha256(src),
                "input": f"1x{v.size}x{v.size}x3 float32 RGB in [-1, 1], letterboxed",
                "anchors": anchor_count(v),
                "min_score": v.min_score,
            }
        )
    card = {
        "name": "blazeface",
        "task": "face detection (boxes + 6 keypoints)",
        "source": SOURCE_WHEEL,
        "authors": "Google (MediaPipe); BlazeFace, Bazarevsky et al. 2019, arXiv:1907.05047",
        "licence": "Apache-2.0 (LICENSE beside this file)",
        "converted_with": f"{EXPORTER}: python -m edgeemo_export.blazeface (tf2onnx, sparse weights folded)",
        "reproducibility": "outputs are identical between conversions; the bytes are not (tf2onnx names "
        "constants in hash order), so the sha256 below is that of the shipped file",
        "files": files,
    }
    path = out_dir / "card.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgeemo_export.blazeface", description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=[*VARIANTS, "all"], default="all")
    ap.add_argument("--src", type=Path, default=ASSET_DIR, help="folder with the .tflite files")
    ap.add_argument("--out", type=Path, default=ASSET_DIR, help="folder for the .onnx files and card.json")
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--verify", nargs="*", type=Path, default=[], metavar="IMAGE", help="compare with TFLite")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    chosen = list(VARIANTS.values()) if args.variant == "all" else [VARIANTS[args.variant]]
    for v in chosen:
        convert(v, args.src, args.out, args.opset)
        if args.verify:
            for what, diff in verify(v, args.verify, args.src, args.out).items():
                print(f"{v.name}: max |diff| {what}: {diff:.3g}")
    if args.variant == "all":
        print(f"wrote {write_card(args.src, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
