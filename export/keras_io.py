"""Load legacy Keras HDF5 models safely through ``tf_keras`` (Keras 2 semantics).

Thesis-era files hold ``TFOpLambda`` layers (``tf.cast``, ``tf.math.truediv`` ...) that Keras 3 cannot load;
``tf_keras`` loads them and tf2onnx converts them exactly. Before TensorFlow is touched the file is inspected
with ``h5py``: a file that is not HDF5, one that holds weights only, unknown layer classes and ``Lambda`` layers
(which carry marshalled Python bytecode that runs on load) are refused with a message naming the file.
``TFOpLambda`` / ``SlicingOpLambda`` only name TensorFlow API functions and are accepted.
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

log = logging.getLogger(__name__)

# Layer classes that are containers or op wrappers rather than entries of ``tf_keras.layers``.
_CONTAINERS = frozenset({"Functional", "Model", "Sequential"})
_OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
_CODE_LAYERS = frozenset({"Lambda"})


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

    @property
    def class_names(self) -> frozenset[str]:
        return frozenset(layer.class_name for layer in self.layers)

    @property
    def lambda_layers(self) -> tuple[str, ...]:
        return tuple(layer.path for layer in self.layers if layer.class_name in _CODE_LAYERS)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _walk_layers(config: dict[str, Any], prefix: str = "") -> Iterator[H5Layer]:
    for layer in config.get("config", {}).get("layers", []) or []:
        cls = str(layer.get("class_name", "?"))
        cfg = layer.get("config", {}) or {}
        name = str(cfg.get("name", layer.get("name", "?")))
        path = f"{prefix}{name}"
        yield H5Layer(path, cls, cfg)
        if cls in _CONTAINERS:
            yield from _walk_layers(layer, prefix=f"{path}/")
        elif isinstance(cfg.get("layer"), dict):  # wrappers: TimeDistributed, Bidirectional ...
            inner = cfg["layer"]
            yield H5Layer(f"{path}/{inner.get('config', {}).get('name', '?')}", str(inner.get("class_name")), {})


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
    return H5Info(p, sha256_file(p), keras_version, backend, str(config["class_name"]), layers)


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


def known_layer_classes(tf_keras: Any) -> frozenset[str]:
    names = {n for n in dir(tf_keras.layers) if not n.startswith("_") and n[:1].isupper()}
    return frozenset(names | _CONTAINERS | _OP_LAYERS)


def check_layers(info: H5Info, known: frozenset[str], trust_lambda: bool) -> None:
    """Refuse unknown layer classes, and ``Lambda`` layers unless ``trust_lambda``."""
    unknown = [
        f"{layer.class_name} (layer {layer.path!r})"
        for layer in info.layers
        if layer.class_name not in known and layer.class_name not in _CODE_LAYERS
    ]
    if unknown:
        raise ExportError(
            f"{info.path}: unknown layer class(es) {', '.join(unknown)}; custom layers cannot be loaded by the "
            "exporter (rebuild the model from standard Keras layers)"
        )
    refuse_untrusted_code(info, trust_lambda)
    if info.lambda_layers:
        log.warning("%s: loading trusted Lambda layer(s) %s", info.path, ", ".join(info.lambda_layers))


def refuse_untrusted_code(info: H5Info, trust_lambda: bool) -> None:
    """Refuse ``Lambda`` layers unless ``trust_lambda``; needs no TensorFlow, so it runs before TF is imported."""
    lambdas = info.lambda_layers
    if lambdas and not trust_lambda:
        raise ExportError(
            f"{info.path}: contains Lambda layer(s) {', '.join(map(repr, lambdas))} that carry Python code which "
            "would run while loading; refused. Pass --trust-lambda (trust_lambda=True) only for a file you trust"
        )


def load_keras(path: str | os.PathLike[str], trust_lambda: bool = False) -> tuple[Any, H5Info]:
    """Inspect, then load a legacy HDF5 model with ``tf_keras`` (``compile=False``)."""
    info = inspect_h5(path)
    refuse_untrusted_code(info, trust_lambda)
    tf_keras = import_tf_keras()
    check_layers(info, known_layer_classes(tf_keras), trust_lambda)
    try:
        model = tf_keras.models.load_model(str(info.path), compile=False, safe_mode=not trust_lambda)
    except (ValueError, TypeError, KeyError, OSError, AttributeError) as exc:
        raise ModelError(f"{info.path}: tf_keras could not load the model ({type(exc).__name__}: {exc})") from exc
    log.info(
        "loaded %s (%s, Keras %s, %d parameters)", info.path, info.model_class, info.keras_version, model.count_params()
    )
    return model, info
