"""Prove, from the saved JSON alone, that loading a Keras HDF5 architecture runs no Python code from the file.

The whole ``model_config`` is walked, at every depth (nested models, ``TimeDistributed``/``Bidirectional``
wrappers, RNN ``cell``/``cells``, initializers, call arguments), *before* TensorFlow is imported. It is an
allow-list, not a search for known bad keys: every object with a ``class_name`` must be one of the standard,
code-free classes below, TF op layers may only name side-effect-free TensorFlow functions, string activations
must be built-in ones, and a key that can hold a serialized Python function (``function``, ``*_fn``,
``function_type`` ...) is refused wherever it appears. Whatever cannot be proven safe is reported with its
layer path; the caller refuses the file unless the user trusts it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Standard tf_keras layers whose configs hold only numbers, strings and the nested objects below.
# Left out on purpose: Lambda (bytecode), RNN cell wrappers (ResidualWrapper/DropoutWrapper carry functions),
# lookup / vectorization layers (their ``vocabulary`` may name a file to read), and anything custom.
SAFE_LAYERS = frozenset(
    {
        "InputLayer", "Dense", "EinsumDense", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU",
        "Softmax", "Identity",
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
        "Convolution1D", "Convolution2D", "Convolution3D", "Convolution2DTranspose", "Convolution3DTranspose",
        "SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D",
        "DepthwiseConv1D", "DepthwiseConv2D",
        "BatchNormalization", "BatchNormalizationV1", "BatchNormalizationV2", "LayerNormalization",
        "GroupNormalization", "UnitNormalization",
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
        "AlphaDropout", "ActivityRegularization",
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
        "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
        "Flatten", "Reshape", "Permute", "RepeatVector", "Masking",
        "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
        "UpSampling1D", "UpSampling2D", "UpSampling3D",
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
        "Embedding", "Attention", "AdditiveAttention", "MultiHeadAttention",
        "Rescaling", "Normalization", "Resizing", "CenterCrop",
        "SimpleRNN", "GRU", "LSTM", "SimpleRNNCell", "GRUCell", "LSTMCell", "RNN", "StackedRNNCells",
        "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
        "TimeDistributed", "Bidirectional",
    }
)  # fmt: skip
CONTAINERS = frozenset({"Functional", "Model", "Sequential"})
OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
CODE_LAYERS = frozenset({"Lambda"})
# Objects nested in layer configs: initializers, regularizers, constraints, dtype policies, and the
# structures tf_keras' JSON decoder rebuilds itself (TensorShape, tuples, Ellipsis).
SAFE_OBJECTS = frozenset(
    {
        "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity", "LecunNormal",
        "LecunUniform", "Ones", "Orthogonal", "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
        "Zeros",
        "L1", "L2", "L1L2", "OrthogonalRegularizer",
        "MaxNorm", "MinMaxNorm", "NonNeg", "RadialConstraint", "UnitNorm",
        "Policy",
        "TensorShape", "__tuple__", "__ellipsis__",
    }
)  # fmt: skip
SAFE_ACTIVATIONS = frozenset(
    {
        "linear", "relu", "elu", "selu", "gelu", "sigmoid", "hard_sigmoid", "tanh", "softmax", "softplus",
        "softsign", "swish", "exponential", "mish",
    }
)  # fmt: skip
ACTIVATION_KEYS = frozenset({"activation", "recurrent_activation"})
# TensorFlow API functions a TF op layer may call: pure tensor maths, no file, network or Python access.
SAFE_OP_PREFIXES = ("math.", "nn.", "linalg.", "__operators__.")
SAFE_OPS = frozenset(
    {
        "cast", "reshape", "transpose", "concat", "stack", "unstack", "squeeze", "expand_dims", "identity",
        "clip_by_value", "split", "tile", "pad", "gather", "where", "shape", "ones_like", "zeros_like",
        "broadcast_to", "reverse", "add", "subtract", "multiply", "divide", "truediv", "maximum", "minimum",
        "sqrt", "square", "exp", "abs", "pow", "sigmoid", "tanh", "matmul", "einsum", "argmax", "argmin",
        "reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "round", "floor", "ceil", "sign", "rank",
        "image.grayscale_to_rgb", "image.rgb_to_grayscale", "image.resize", "image.convert_image_dtype",
        "image.per_image_standardization", "image.central_crop", "image.flip_left_right", "image.flip_up_down",
    }
)  # fmt: skip
# Keys that may hold a serialized Python function (or say how to load one) in tf_keras configs.
_FUNCTION_KEY = re.compile(r"^(function|function_type|output_shape_type|output_shape_module)$|_fn(_type|_module)?$")
_KERAS_MODULE = re.compile(r"^keras(\.[a-z_]+)*$")


@dataclass(frozen=True)
class Finding:
    """Something in the architecture that cannot be proven code-free; ``path`` joins layer names."""

    path: str
    what: str
    lambda_layer: bool = False  # a Lambda layer (the common, well-known case)
    unknown_class: bool = False  # a class name not on the allow-list at all


def is_safe_op(name: object) -> bool:
    return isinstance(name, str) and (name in SAFE_OPS or name.startswith(SAFE_OP_PREFIXES))


def scan_config(config: Any) -> list[Finding]:
    """Every finding in a decoded ``model_config`` (empty when the whole architecture is on the allow-list)."""
    if isinstance(config, dict) and "class_name" in config:
        return list(_object(config, "", top=True))  # the model's own name is left out of layer paths
    return list(_walk(config, ""))


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _walk(node: Any, path: str) -> Iterator[Finding]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, path)
    elif isinstance(node, dict):
        if "class_name" in node:
            yield from _object(node, path)
        else:
            yield from _plain_dict(node, path)


def _plain_dict(node: dict[str, Any], path: str) -> Iterator[Finding]:
    code_keys = [str(k) for k in node if not isinstance(k, str) or _FUNCTION_KEY.search(k)]
    if code_keys:
        yield Finding(path or "<model>", f"{', '.join(map(repr, code_keys))} (a serialized Python function)")
    for key, value in node.items():
        if str(key) in code_keys:
            continue
        if (
            key in ACTIVATION_KEYS
            and value is not None
            and not (isinstance(value, dict) or (isinstance(value, str) and value in SAFE_ACTIVATIONS))
        ):
            yield Finding(path or "<model>", f"{key} {value!r}, not a built-in activation")
            continue
        yield from _walk(value, path)


def _object(node: dict[str, Any], path: str, top: bool = False) -> Iterator[Finding]:
    cls = node["class_name"]
    config = node.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    name = name if isinstance(name, str) and name else node.get("name")
    here = "" if top else _join(path, name if isinstance(name, str) and name else str(cls))
    if not isinstance(cls, str):
        yield Finding(here, f"class_name {cls!r} is not a string", unknown_class=True)
        return
    rest = {k: v for k, v in node.items() if k not in ("class_name", "config", "module", "registered_name")}
    if cls in CODE_LAYERS:
        yield Finding(here, "Lambda layer", lambda_layer=True)
        return
    if cls in OP_LAYERS:
        fn = config.get("function") if isinstance(config, dict) else None
        if not is_safe_op(fn):
            yield Finding(here, f"{cls} calling {fn!r}, not on the list of side-effect-free TensorFlow ops")
        config = {k: v for k, v in config.items() if k != "function"} if isinstance(config, dict) else config
    elif cls not in SAFE_LAYERS and cls not in CONTAINERS and cls not in SAFE_OBJECTS:
        yield Finding(here, cls, unknown_class=True)  # its config is still walked: it may hold functions
    else:
        module, registered = node.get("module"), node.get("registered_name")
        if module is not None and not (isinstance(module, str) and _KERAS_MODULE.match(module)):
            yield Finding(here, f"{cls} from module {module!r}, not a Keras module")
        if registered is not None and registered != cls:
            yield Finding(here, f"{cls} registered as {registered!r}, not a built-in Keras class")
    if isinstance(config, dict):
        yield from _plain_dict(config, here)
    else:  # a legacy Sequential stores its layers as a bare list
        yield from _walk(config, here)
    yield from _plain_dict(rest, here)
