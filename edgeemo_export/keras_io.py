"""Load legacy Keras HDF5 models safely through ``tf_keras`` (Keras 2 semantics).

Thesis-era files hold ``TFOpLambda`` layers (``tf.cast``, ``tf.math.truediv`` ...) that Keras 3 cannot load;
``tf_keras`` loads them and tf2onnx converts them exactly. Before TensorFlow is touched the file is inspected
with ``h5py``: a file that is not HDF5 or holds weights only is refused, and the whole architecture is checked
against an allow-list of code-free Keras classes (:mod:`edgeemo_export.keras_safety`): ``Lambda`` layers, RNN cell
wrappers with functions, serialized functions at any depth, unknown classes and TF ops with side effects are
refused with a message naming the file and the layer path, unless the file is trusted (``--trust-lambda``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeemo.errors import ExportError, MissingDependencyError, ModelError
from edgeemo_export.keras_safety import CONTAINERS, Finding, scan_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class H5Layer:
    """One layer entry of the saved architecture (nested models flattened, ``path`` joins the names)."""

    path: str
    class_name: str
    config: dict[str, Any]


@dataclass(frozen=True)
class H5Info:
    """What the HDF5 file says about itself, read without TensorFlow."""

    path: Path
    sha256: str
    keras_version: str
    backend: str
    model_class: str
    layers: tuple[H5Layer, ...]
    findings: tuple[Finding, ...] = ()  # what the allow-list could not prove code-free (empty: safe to load)

    @property
    def class_names(self) -> frozenset[str]:
        return frozenset(layer.class_name for layer in self.layers)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _walk_layers(config: dict[str, Any], prefix: str = "") -> Iterator[H5Layer]:
    """The layers of a model config in order, nested models and wrapped layers flattened."""
    body = config.get("config")
    layers = body if isinstance(body, list) else body.get("layers") if isinstance(body, dict) else None
    for layer in layers if isinstance(layers, list) else []:  # a legacy Sequential stores a bare list
        if not isinstance(layer, dict):
            continue
        cls = str(layer.get("class_name", "?"))
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        name = str(cfg.get("name", layer.get("name", "?")))
        path = f"{prefix}{name}"
        yield H5Layer(path, cls, cfg)
        if cls in CONTAINERS:
            yield from _walk_layers(layer, prefix=f"{path}/")
        elif isinstance(cfg.get("layer"), dict):  # wrappers: TimeDistributed, Bidirectional ...
            yield from _walk_layers({"config": [cfg["layer"]]}, prefix=f"{path}/")


def inspect_h5(path: str | os.PathLike[str]) -> H5Info:
    """Read the architecture of a Keras HDF5 file without TensorFlow; raise :class:`ExportError` if unusable."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise ExportError(f"{p}: Keras model file not found")
    if not h5py.is_hdf5(p):
        if zipfile.is_zipfile(p):
            raise ExportError(
                f"{p}: is a zip archive (Keras 3 '.keras' format?), not a legacy Keras HDF5 file; "
                "save it with model.save('model.h5') from tf_keras"
            )
        raise ExportError(f"{p}: is not an HDF5 file (expected a Keras .h5/.hdf5 model saved with model.save)")
    try:
        with h5py.File(p, "r") as f:
            attrs = dict(f.attrs)
            keras_version = _text(attrs.get("keras_version", "unknown"))
            backend = _text(attrs.get("backend", "unknown"))
            raw = attrs.get("model_config")
            has_weights = "model_weights" in f or "layer_names" in attrs
    except OSError as exc:
        raise ExportError(f"{p}: cannot read the HDF5 file ({exc})") from exc
    if raw is None:
        what = "weights only" if has_weights else "no Keras model"
        raise ExportError(
            f"{p}: holds {what} and no model architecture ('model_config' missing); "
            "export needs a full model saved with model.save(...), not model.save_weights(...)"
        )
    try:
        config = json.loads(_text(raw))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{p}: the saved model architecture is not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or "class_name" not in config:
        raise ExportError(f"{p}: the saved model architecture has no class_name; not a Keras model file")
    layers = tuple(_walk_layers(config))
    findings = tuple(scan_config(config))
    return H5Info(p, sha256_file(p), keras_version, backend, str(config["class_name"]), layers, findings)


def import_tf_keras() -> Any:
    """Import ``tf_keras`` with legacy Keras selected; raise :class:`MissingDependencyError` when absent."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow  # noqa: F401
        import tf_keras
    except ImportError as exc:
        raise MissingDependencyError("Keras export", "export", str(exc)) from exc
    return tf_keras


def refuse_untrusted_code(info: H5Info, trust_lambda: bool) -> None:
    """Refuse a file whose architecture is not proven code-free, unless ``trust_lambda``; needs no TensorFlow,
    so it runs before TensorFlow is imported and before anything of the file is deserialized."""
    if not info.findings:
        return
    if trust_lambda:
        log.warning("%s: loading trusted file with %s", info.path, _describe(info.findings))
        return
    if all(f.unknown_class for f in info.findings):
        raise ExportError(
            f"{info.path}: {_describe(info.findings)}; only standard, code-free Keras layers are loaded without "
            "--trust-lambda (rebuild the model from standard Keras layers)"
        )
    raise ExportError(
        f"{info.path}: contains {_describe(info.findings)}; refused before anything was loaded. "
        "Pass --trust-lambda (trust_lambda=True) only for a file you trust"
    )


def _describe(findings: tuple[Finding, ...]) -> str:
    lambdas = [repr(f.path or "<model>") for f in findings if f.lambda_layer]
    unknown = [f"{f.what} (layer {f.path or '<model>'!r})" for f in findings if f.unknown_class]
    other = [f"{f.what} at {f.path or '<model>'!r}" for f in findings if not f.lambda_layer and not f.unknown_class]
    parts = []
    if lambdas:
        parts.append(f"Lambda layer(s) {', '.join(lambdas)} that carry Python code which would run while loading")
    if other:
        parts.append(f"{', '.join(other)}, which could run Python code or touch files while loading")
    if unknown:
        parts.append(f"layer class(es) not on the allow-list of code-free Keras layers: {', '.join(unknown)}")
    return "; ".join(parts)


def load_keras(path: str | os.PathLike[str], trust_lambda: bool = False) -> tuple[Any, H5Info]:
    """Inspect, then load a legacy HDF5 model with ``tf_keras`` (``compile=False``)."""
    info = inspect_h5(path)
    refuse_untrusted_code(info, trust_lambda)
    tf_keras = import_tf_keras()
    try:
        model = tf_keras.models.load_model(str(info.path), compile=False, safe_mode=not trust_lambda)
    except (ValueError, TypeError, KeyError, OSError, AttributeError) as exc:
        raise ModelError(f"{info.path}: tf_keras could not load the model ({type(exc).__name__}: {exc})") from exc
    log.info(
        "loaded %s (%s, Keras %s, %d parameters)", info.path, info.model_class, info.keras_version, model.count_params()
    )
    return model, info
