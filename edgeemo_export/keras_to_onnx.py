"""Keras HDF5 → ONNX FP32 with tf2onnx, the model's facts embedded as :class:`edgeemo.runtime.spec.ModelSpec`.

What the model itself knows is read from it: input size, channels and dtype, and per output its size and last
activation (softmax → ``probabilities``; linear → ``logits``, or ``regression`` for one value; sigmoid/tanh with
one value → ``regression``). What an HDF5 file does not know is given by the caller (CLI options): class names,
the pixel normalisation of a float32 input (``scale``/``offset``, unless it is visibly done in the graph), and
the semantic name of a regression head (``valence``/``arousal``). Every ONNX output is renamed to its head name.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeemo.errors import EdgeemoError, ExportError
from edgeemo.runtime.spec import (
    COLOURS,
    EMOTION_HEAD,
    HEAD_KINDS,
    INTERPOLATIONS,
    Framing,
    HeadSpec,
    InputSpec,
    ModelSpec,
    Normalisation,
    SourceSpec,
)
from edgeemo_export import EXPORTER
from edgeemo_export.keras_io import H5Info, load_keras
from edgeemo_export.onnx_meta import canonical_names, name_batch_dim, rename_tensor, save_checked, write_spec
from edgeemo_export.optimize import fold_input_normalisation

log = logging.getLogger(__name__)

MIN_OPSET = 13
DEFAULT_OPSET = 17
INPUT_NAME = "input"
# Layers that, before the first weighted layer, show that pixel scaling happens inside the graph.
_SCALING_LAYERS = frozenset({"Rescaling", "Normalization"})
_SCALING_OPS = ("truediv", "divide", "multiply", "subtract", "add", "scalar_mul")
_WEIGHTED = frozenset({"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "Conv1D", "Conv3D"})


@dataclass(frozen=True)
class ExportOptions:
    """The facts a caller adds to what the model knows; field names match the CLI options."""

    name: str | None = None
    classes: tuple[str, ...] = ()
    heads: tuple[str, ...] = ()  # semantic head name per Keras output, in output order
    kinds: tuple[str, ...] = ()  # head kind per output, overriding what the last activation says
    colour: str | None = None  # default: gray for 1 channel, rgb for 3
    normalisation: str = "auto"  # auto | in_graph | affine
    scale: float | None = None
    offset: float | None = None
    interpolation: str = "linear"
    opset: int = DEFAULT_OPSET
    trust_lambda: bool = False
    framing: tuple[Framing, ...] = ()  # how the training faces sat around a detector's box; () = unknown


def _fail(info: H5Info, msg: str) -> ExportError:
    return ExportError(f"{info.path}: {msg}")


def _input_spec(model: Any, info: H5Info, options: ExportOptions) -> InputSpec:
    if len(model.inputs) != 1:
        raise _fail(info, f"has {len(model.inputs)} inputs; edgeemo models take exactly one image batch")
    shape = tuple(model.inputs[0].shape)
    dtype = model.inputs[0].dtype.name
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise _fail(info, f"input shape {shape} is not a fixed-size image batch (None, H, W, C)")
    if dtype not in ("uint8", "float32"):
        raise _fail(info, f"input dtype {dtype} is not supported (uint8 or float32)")
    if shape[3] in (1, 3):
        layout, h, w, c = "NHWC", shape[1], shape[2], shape[3]
    elif shape[1] in (1, 3):
        layout, c, h, w = "NCHW", shape[1], shape[2], shape[3]
    else:
        raise _fail(info, f"input shape {shape} has neither 1 nor 3 channels first or last")
    colour = options.colour or ("gray" if c == 1 else "rgb")
    if colour not in COLOURS:
        raise _fail(info, f"colour {colour!r} not in {COLOURS}")
    if options.interpolation not in INTERPOLATIONS:
        raise _fail(info, f"interpolation {options.interpolation!r} not in {INTERPOLATIONS}")
    return InputSpec(
        name=INPUT_NAME,
        height=int(h),
        width=int(w),
        channels=int(c),
        layout=layout,
        colour=colour,  # type: ignore[arg-type]
        dtype=dtype,  # type: ignore[arg-type]
        normalisation=_normalisation(info, dtype, options),
        interpolation=options.interpolation,
    )


def scales_in_graph(info: H5Info) -> bool:
    """True when a rescaling layer or arithmetic TF op comes before the first weighted layer."""
    for layer in info.layers:
        if layer.class_name in _WEIGHTED:
            return False
        if layer.class_name in _SCALING_LAYERS:
            return True
        if layer.class_name == "TFOpLambda" and str(layer.config.get("function", "")).endswith(_SCALING_OPS):
            return True
    return False


def _normalisation(info: H5Info, dtype: str, options: ExportOptions) -> Normalisation:
    mode = options.normalisation
    if mode not in ("auto", "in_graph", "affine"):
        raise _fail(info, f"normalisation {mode!r} not in (auto, in_graph, affine)")
    given = options.scale is not None or options.offset is not None
    if mode == "auto":
        mode = "affine" if given else "in_graph" if dtype == "uint8" or scales_in_graph(info) else ""
    if not mode:
        raise _fail(
            info,
            "takes float32 pixels and the file does not say how they are normalised; pass --scale and --offset "
            "(input = pixel * scale + offset, e.g. --scale 0.00784313725 --offset -1 for (x/255-0.5)*2) "
            "or --normalisation in_graph",
        )
    if mode == "in_graph":
        if given:
            raise _fail(info, "--scale/--offset contradict --normalisation in_graph")
        return Normalisation("in_graph")
    if dtype != "float32":
        raise _fail(info, "affine normalisation needs a float32 input; this model takes uint8 (in_graph)")
    return Normalisation(
        "affine",
        float(options.scale if options.scale is not None else 1.0),
        float(options.offset if options.offset is not None else 0.0),
    )


def _activation_name(layer: Any) -> str:
    if type(layer).__name__ == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", "") if act is not None else ""


def _heads(model: Any, info: H5Info, options: ExportOptions) -> tuple[tuple[HeadSpec, ...], dict[str, int]]:
    n_out = len(model.outputs)
    if options.heads and len(options.heads) != n_out:
        raise _fail(info, f"{len(options.heads)} head name(s) given for {n_out} output(s)")
    if options.kinds and len(options.kinds) != n_out:
        raise _fail(info, f"{len(options.kinds)} head kind(s) given for {n_out} output(s)")
    heads, sizes = [], {}
    for k, (tensor, layer_name) in enumerate(zip(model.outputs, model.output_names)):
        shape = tuple(tensor.shape)
        if len(shape) != 2 or shape[1] is None:
            raise _fail(info, f"output {layer_name!r} has shape {shape}; expected (None, K)")
        size = int(shape[1])
        act = _activation_name(model.get_layer(layer_name))
        if options.kinds:
            kind = options.kinds[k]
            if kind not in HEAD_KINDS:
                raise _fail(info, f"head kind {kind!r} not in {HEAD_KINDS}")
        elif act == "softmax":
            kind = "probabilities"
        elif act == "linear":
            kind = "regression" if size == 1 else "logits"
        elif act in ("sigmoid", "tanh") and size == 1:
            kind = "regression"
        else:
            raise _fail(
                info,
                f"cannot tell what output {layer_name!r} ({size} values, activation {act!r}) is; "
                "pass --kind logits|probabilities|regression",
            )
        if options.heads:
            name = options.heads[k]
        elif kind != "regression" and n_out == 1:
            name = EMOTION_HEAD
        else:
            raise _fail(
                info, f"output {layer_name!r} is a {kind} head; name it with --head (emotion, valence or arousal)"
            )
        if kind == "regression" and size != 1:
            raise _fail(info, f"regression head {name!r} has {size} values per face; expected 1")
        if kind != "regression" and name != EMOTION_HEAD:
            raise _fail(info, f"{kind} output {layer_name!r} must be the {EMOTION_HEAD!r} head, not {name!r}")
        heads.append(HeadSpec(name=name, onnx_name=name, kind=kind))  # type: ignore[arg-type]
        sizes[name] = size
    return tuple(heads), sizes


def describe_keras(model: Any, info: H5Info, options: ExportOptions, exporter: str = EXPORTER) -> ModelSpec:
    """The :class:`ModelSpec` of a loaded Keras model (FP32), from the model plus ``options``."""
    input_spec = _input_spec(model, info, options)
    heads, sizes = _heads(model, info, options)
    classes = tuple(options.classes)
    if EMOTION_HEAD in sizes:
        if not classes:
            raise _fail(
                info,
                f"the emotion output has {sizes[EMOTION_HEAD]} classes; give their names with "
                "--classes a,b,c (the HDF5 file does not store them)",
            )
        if len(classes) != sizes[EMOTION_HEAD]:
            raise _fail(
                info,
                f"{len(classes)} class names given ({','.join(classes)}) but the emotion output "
                f"has {sizes[EMOTION_HEAD]} values",
            )
    elif classes:
        raise _fail(info, "class names given, but the model has no emotion (classification) output")
    spec = ModelSpec(
        name=options.name or info.path.stem,
        input=input_spec,
        outputs=heads,
        classes=classes,
        source=SourceSpec(file=info.path.name, sha256=info.sha256, exporter=exporter, precision="fp32"),
        framing=tuple(options.framing),
    )
    try:
        spec.validate(str(info.path))
    except EdgeemoError as exc:
        raise ExportError(str(exc)) from exc
    return spec


def convert_keras(model: Any, spec: ModelSpec, opset: int) -> Any:
    """tf2onnx conversion with a dynamic batch; outputs renamed to the head names, metadata embedded."""
    import tensorflow as tf
    import tf2onnx

    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old; use {MIN_OPSET} or newer")
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    # tf2onnx numbers generated tensor names with a process-wide counter; restart it so that the same model
    # always gives the same bytes, however many conversions ran before in this process.
    tf2onnx.utils.INTERNAL_NAME = 1
    i = spec.input
    dims = (None, i.height, i.width, i.channels) if i.layout == "NHWC" else (None, i.channels, i.height, i.width)
    signature = (tf.TensorSpec(dims, tf.uint8 if i.dtype == "uint8" else tf.float32, name=i.name),)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    except Exception as exc:  # tf2onnx raises bare exceptions of many types
        raise ExportError(f"{spec.source.file}: tf2onnx conversion failed ({type(exc).__name__}: {exc})") from exc
    graph = proto.graph
    if len(graph.output) != len(spec.outputs):
        raise ExportError(
            f"{spec.source.file}: ONNX graph has {len(graph.output)} outputs, expected {len(spec.outputs)}"
        )
    old = [o.name for o in graph.output]
    for k, o in enumerate(old):  # temporary names first: a head name may be another output's old name
        rename_tensor(graph, o, f"__edgeemo_out{k}")
    for k, head in enumerate(spec.outputs):
        rename_tensor(graph, f"__edgeemo_out{k}", head.name)
    name_batch_dim(graph)
    # tf2onnx spells in-graph normalisation as Tile→Cast→Mul→Sub→Transpose, a quarter of the thesis graph's time
    # at batch 32; folding it exactly into the first convolution is the exporter's one optimisation pass.
    fold_input_normalisation(proto)
    canonical_names(graph)
    proto.doc_string = f"{spec.name}: exported by {spec.source.exporter} from {spec.source.file}"
    write_spec(proto, spec, spec.source.file)
    return proto


def exporter_string(opset: int) -> str:
    import tf2onnx

    return f"{EXPORTER} (tf2onnx {tf2onnx.__version__}, opset {opset})"


@dataclass(frozen=True)
class Fp32Export:
    path: Path
    spec: ModelSpec
    h5: H5Info


def export_fp32(h5_path: str | os.PathLike[str], out_path: Path, options: ExportOptions) -> tuple[Fp32Export, Any]:
    """Load ``h5_path`` and write the FP32 ONNX to ``out_path``; returns the result and the Keras model."""
    model, info = load_keras(h5_path, trust_lambda=options.trust_lambda)
    spec = describe_keras(model, info, options, exporter=exporter_string(options.opset))
    proto = convert_keras(model, spec, options.opset)
    save_checked(proto, out_path)
    verify_loadable(out_path)
    log.info("wrote %s (%s)", out_path, spec.name)
    return Fp32Export(out_path, spec, info), model


def verify_loadable(path: Path) -> None:
    """The runtime must accept what was written: metadata parses and matches the graph."""
    from edgeemo.runtime.model import EmotionModel

    try:
        EmotionModel(path)
    except EdgeemoError as exc:
        raise ExportError(f"{path}: the runtime refuses the exported model ({exc})") from exc
