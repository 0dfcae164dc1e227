"""FP32 ONNX → INT8 QDQ ONNX (onnxruntime static quantization) that keeps the FP32 model's answers.

The defaults come from the study in ``benchmarks/int8_study.py`` (results in ``models/mini-xception/INT8.md``):
see :data:`DEFAULT_OPTIONS` for the chosen variant and why.

Calibration faces are fed through the FP32 model's own :meth:`EmotionModel.preprocess`, so the ranges are
measured on exactly the tensors the runtime feeds. The result carries the FP32 spec with precision ``int8``
and a calibration summary in its ``edgeemo`` metadata.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeemo.errors import EdgeemoError, ExportError
from edgeemo.runtime.model import EmotionModel
from edgeemo.runtime.spec import METADATA_KEY, ModelSpec
from edgeemo_export.bias_correction import add_zero_biases, correct_biases
from edgeemo_export.calibration import augment, default_calibration_dir, load_calibration_set, make_reader
from edgeemo_export.equalize import equalize

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile", "distribution")
ACTIVATION_TYPES = ("uint8", "int8", "uint16", "int16")
WEIGHT_TYPES = ("int8", "uint8", "int16")
# Selectors for nodes kept in float (besides plain op types such as "Add" and "node:<name>").
SELECTORS = ("head", "stem", "depthwise")
_WEIGHTED = ("Conv", "Gemm", "MatMul", "ConvTranspose")
# Ops that only pass a head's values on (walked through when finding the last weighted layer of a head).
_PASS_THROUGH = (
    "Softmax",
    "Sigmoid",
    "Squeeze",
    "Unsqueeze",
    "Reshape",
    "Flatten",
    "Identity",
    "Transpose",
    "GlobalAveragePool",
    "Relu",
    "Add",
    "BatchNormalization",
)


@dataclass(frozen=True)
class Int8Options:
    """One quantization recipe; every field maps to an onnxruntime.quantization argument or extra option.

    ``equalize`` (None: off) rescales conv pairs so activation channels share one range before calibration;
    the value is the strength for pairs whose second conv is not depthwise (see :mod:`edgeemo_export.equalize`).
    ``bias_correction`` re-centres each quantized conv's output channels on the float model's means
    (see :mod:`edgeemo_export.bias_correction`). ``keep_float`` lists what stays in float: ``head`` (each output's
    last weighted layer and everything after it), ``stem`` (the first weighted layer), ``depthwise`` (grouped
    convolutions), op types (``Add``), or ``node:<name>``.
    """

    method: str = "minmax"
    percentile: float = 99.999
    per_channel: bool = True
    reduce_range: bool = False
    activation_type: str = "uint8"
    weight_type: str = "int8"
    activation_symmetric: bool = False
    weight_symmetric: bool = True
    preprocess: bool = True
    keep_float: tuple[str, ...] = ("head",)
    augment: str = "none"
    max_images: int | None = None
    batch_size: int = 16
    moving_average: bool = False
    equalize: float | None = None
    bias_correction: bool = False
    extra_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["keep_float"] = list(self.keep_float)
        d["extra_options"] = {k: v for k, v in self.extra_options}
        return d

    def validate(self) -> None:
        problems = []
        if self.method not in METHODS:
            problems.append(f"method {self.method!r} not in {METHODS}")
        if self.activation_type not in ACTIVATION_TYPES:
            problems.append(f"activation_type {self.activation_type!r} not in {ACTIVATION_TYPES}")
        if self.weight_type not in WEIGHT_TYPES:
            problems.append(f"weight_type {self.weight_type!r} not in {WEIGHT_TYPES}")
        if not 0.0 < self.percentile <= 100.0:
            problems.append(f"percentile {self.percentile} not in (0, 100]")
        if self.batch_size < 1:
            problems.append(f"batch_size {self.batch_size} < 1")
        if problems:
            raise ExportError("bad INT8 options: " + "; ".join(problems))


# Chosen by the study (models/mini-xception/INT8.md): per-channel MinMax over the shipped LFW faces after
# quant_pre_process, with each head's last layer (conv/dense, pooling, softmax) and the first conv kept in float.
# The first conv's output is the most damaging tensor to quantize; keeping the head in float leaves the
# probabilities unquantized. Weights are uint8 (U8U8): with int8 weights onnxruntime's x86 kernels without VNNI
# (AVX2, AVX-512BW) add u8 x s8 products pairwise in saturating int16 (vpmaddubsw) and the same file gave other
# answers there (agreement 0.88 instead of 0.98); its U8U8 kernels widen to int16 first and are exact on every
# instruction set, at a 0.006 agreement cost on VNNI CPUs. See INT8.md for the cause, the evidence and the gap to 0.99.
DEFAULT_OPTIONS = Int8Options(keep_float=("head", "stem"), weight_type="uint8")


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    calibration_dir: Path | None = None,
    options: Int8Options | None = None,
) -> dict[str, Any]:
    """Write an INT8 QDQ model of ``fp32_path`` to ``out_path``; return the calibration summary.

    ``calibration_dir`` is a folder of face crops (``None``: the shipped default set). A missing folder or
    one without decodable images raises :class:`ExportError` naming the folder.
    """
    options = options or DEFAULT_OPTIONS
    options.validate()
    is_default = calibration_dir is None
    folder = default_calibration_dir() if is_default else Path(calibration_dir)  # type: ignore[arg-type]
    calib = load_calibration_set(folder)
    source = {
        "name": folder.name,
        "default": is_default,
        "faces": calib.count,
        "skipped": len(calib.skipped),
    }
    if is_default:
        source["provenance"] = "scikit-image lfw_subset faces (models/calibration/lfw-subset/CARD.md)"
    return quantize_from_images(Path(fp32_path), Path(out_path), calib.images, source, options)


def quantize_from_images(
    fp32_path: Path,
    out_path: Path,
    images: Sequence[np.ndarray],
    source: dict[str, Any],
    options: Int8Options | None = None,
) -> dict[str, Any]:
    """Quantize with already decoded face crops (``source`` describes them for the summary)."""
    options = options or DEFAULT_OPTIONS
    options.validate()
    fp32 = _open_fp32(fp32_path)
    crops = augment(list(images)[: options.max_images], options.augment)
    try:
        tensor = fp32.preprocess(crops)
    except EdgeemoError as exc:
        raise ExportError(f"calibration faces ({source.get('name', '?')}): {exc}") from exc
    summary: dict[str, Any] = {
        "method": options.method,
        "images": len(crops),
        "source": dict(source),
        "options": options.to_dict(),
    }
    with tempfile.TemporaryDirectory(prefix="edgeemo-int8-") as tmp:
        model_in = Path(tmp) / "prepared.onnx"
        _prepare(fp32_path, model_in, options.preprocess)
        prepared = onnx.load(str(model_in))
        if options.equalize is not None:
            summary["equalized_pairs"] = equalize(prepared, tensor, fp32.spec.input.name, options.equalize)
        if options.bias_correction:
            add_zero_biases(prepared)
        onnx.save(prepared, str(model_in))
        kept = sorted(select_float_nodes(prepared, options.keep_float))
        _run_quantizer(model_in, out_path, tensor, fp32.spec.input.name, kept, options)
    summary["float_nodes"] = kept
    quantized = onnx.load(str(out_path))
    if options.bias_correction:
        summary["bias_corrected"] = correct_biases(quantized, prepared, tensor, fp32.spec.input.name)
    summary["quantize_linear_nodes"] = sum(1 for n in quantized.graph.node if n.op_type == "QuantizeLinear")
    summary["onnxruntime"] = _ort_version()
    spec = fp32.spec.with_precision("int8", summary)
    _set_metadata(quantized, spec)
    onnx.save(quantized, str(out_path))
    try:
        EmotionModel(out_path)
    except EdgeemoError as exc:
        raise ExportError(f"{out_path}: the INT8 model does not load back ({exc})") from exc
    log.info("INT8 %s → %s (%d calibration tensors, %s)", fp32_path, out_path, len(crops), options.method)
    return summary


def _open_fp32(path: Path) -> EmotionModel:
    try:
        model = EmotionModel(path)
    except EdgeemoError as exc:
        raise ExportError(f"{path}: cannot quantize ({exc})") from exc
    if model.spec.source.precision != "fp32":
        raise ExportError(f"{path}: INT8 export needs the fp32 model, this one is {model.spec.source.precision}")
    return model


def _prepare(src: Path, dst: Path, preprocess: bool) -> None:
    """Shape inference plus graph optimisation (folds BatchNormalization into Conv) before calibration."""
    if not preprocess:
        onnx.save(onnx.load(str(src)), str(dst))
        return
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    except Exception as exc:  # onnxruntime raises several types; the message is what the user needs
        raise ExportError(f"{src}: quantization pre-processing failed ({exc})") from exc


def select_float_nodes(model: onnx.ModelProto, keep: Sequence[str]) -> set[str]:
    """Names of the nodes that ``keep`` selectors leave in float (see :class:`Int8Options`)."""
    graph = model.graph
    init = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    chosen: set[str] = set()
    for sel in keep:
        if sel == "head":
            for out in graph.output:
                chosen |= _head_nodes(out.name, producer)
        elif sel == "stem":
            chosen |= _stem_nodes(graph, consumers)
        elif sel == "depthwise":
            chosen |= {n.name for n in graph.node if _is_depthwise(n, init)}
        elif sel.startswith("node:"):
            chosen.add(sel[len("node:") :])
        elif sel[:1].isupper():
            chosen |= {n.name for n in graph.node if n.op_type == sel}
        else:
            raise ExportError(
                f"unknown keep_float selector {sel!r}: use {', '.join(SELECTORS)}, an op type, or node:<name>"
            )
    return chosen


def _head_nodes(output: str, producer: dict[str, onnx.NodeProto]) -> set[str]:
    """The last weighted node feeding ``output`` and every node between it and the output."""
    found: set[str] = set()
    frontier = [output]
    while frontier:
        node = producer.get(frontier.pop())
        if node is None or node.name in found:
            continue
        found.add(node.name)
        if node.op_type in _WEIGHTED:
            continue
        if node.op_type in _PASS_THROUGH:
            frontier.extend(node.input)
    return found


def _stem_nodes(graph: onnx.GraphProto, consumers: dict[str, list[onnx.NodeProto]]) -> set[str]:
    """The first weighted node(s) reached from the graph inputs."""
    found: set[str] = set()
    seen: set[str] = set()
    frontier = [i.name for i in graph.input]
    while frontier:
        name = frontier.pop()
        for node in consumers.get(name, []):
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in _WEIGHTED:
                found.add(node.name)
            else:
                frontier.extend(node.output)
    return found


def _is_depthwise(node: onnx.NodeProto, init: dict[str, onnx.TensorProto]) -> bool:
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in init:
        return False
    group = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)
    return group > 1 and init[node.input[1]].dims[1] == 1


def _run_quantizer(
    model_in: Path,
    out_path: Path,
    tensor: np.ndarray,
    input_name: str,
    kept: Sequence[str],
    options: Int8Options,
) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "distribution": CalibrationMethod.Distribution,
    }
    qtypes = {
        "uint8": QuantType.QUInt8,
        "int8": QuantType.QInt8,
        "uint16": QuantType.QUInt16,
        "int16": QuantType.QInt16,
    }
    extra: dict[str, Any] = {
        "ActivationSymmetric": options.activation_symmetric,
        "WeightSymmetric": options.weight_symmetric,
        "CalibMovingAverage": options.moving_average,
    }
    if options.method == "percentile":
        extra["CalibPercentile"] = options.percentile
    if "16" in options.activation_type + options.weight_type:
        extra["UseQDQContribOps"] = True
    extra.update(dict(options.extra_options))
    # The histogram calibrators stack per-batch outputs and fail on a short last batch: feed them one by one.
    batch_size = options.batch_size if options.method == "minmax" else 1
    reader = make_reader(tensor, input_name, batch_size)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        quantize_static(
            str(model_in),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=options.per_channel,
            reduce_range=options.reduce_range,
            activation_type=qtypes[options.activation_type],
            weight_type=qtypes[options.weight_type],
            nodes_to_exclude=list(kept),
            calibrate_method=methods[options.method],
            extra_options=extra,
        )
    except Exception as exc:  # onnxruntime raises several types; wrap them with the file name
        raise ExportError(f"{model_in.name}: static quantization failed ({exc})") from exc


def _set_metadata(model: onnx.ModelProto, spec: ModelSpec) -> None:
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = spec.to_json()


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)
