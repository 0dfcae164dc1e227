"""Keras HDF5 files that would run Python code while loading are refused before anything is deserialized.

The two real attack files are built with tf_keras: a Lambda nested in ``TimeDistributed(Sequential([...]))`` and
an RNN ``ResidualWrapper(residual_fn=...)``. Their function writes a marker file; `edgeemo export` and
`edgeemo parity --keras` must exit 6 with one line naming the file and the layer path, and the marker must not
appear. Loading the same file as trusted writes the marker, which proves the files do carry running code.
Smaller cases (functions hidden in nested dicts, RNN ``cells``, a TF op with side effects, foreign modules, a
legacy Sequential whose config is a bare list) are written as JSON with h5py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgeemo.errors import ExportError
from edgeemo_export.keras_io import inspect_h5, refuse_untrusted_code
from edgeemo_export.keras_safety import SAFE_ACTIVATIONS, SAFE_LAYERS, SAFE_OBJECTS

pytestmark = pytest.mark.export
h5py = pytest.importorskip("h5py")
tf_keras = pytest.importorskip("tf_keras")

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from edgeemo.cli import main; main()"]


def _marker_fn(marker: Path, args: str) -> Any:
    """A lambda whose bytecode writes ``marker`` when it runs (eval'd so that its source is not needed)."""
    last = args.split(",")[-1].strip()
    return eval(f"lambda {args}: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), {last})[1]")


def nested_lambda_h5(path: Path, marker: Path) -> Path:
    inp = tf_keras.Input((2, 6, 6, 1), name="frames")
    inner = tf_keras.Sequential(
        [tf_keras.layers.Lambda(_marker_fn(marker, "t"), name="evil"), tf_keras.layers.Flatten()]
    )
    x = tf_keras.layers.TimeDistributed(inner, name="per_frame")(inp)
    out = tf_keras.layers.Dense(3, activation="softmax")(tf_keras.layers.LSTM(4)(x))
    tf_keras.Model(inp, out).save(path, save_format="h5")
    marker.unlink()  # building the model ran the function once
    return path


def residual_wrapper_h5(path: Path, marker: Path) -> Path:
    from tf_keras.src.layers.rnn.cell_wrappers import ResidualWrapper

    inp = tf_keras.Input((5, 4), name="seq")
    cell = ResidualWrapper(tf_keras.layers.LSTMCell(4), residual_fn=_marker_fn(marker, "i, o"))
    out = tf_keras.layers.Dense(3, activation="softmax")(tf_keras.layers.RNN(cell, name="recurrent")(inp))
    tf_keras.Model(inp, out).save(path, save_format="h5")
    marker.unlink()
    return path


@pytest.fixture(scope="module")
def attack_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, str]]:
    """name -> (h5 file, marker its code would write, layer path the refusal must name)."""
    d = tmp_path_factory.mktemp("keras_attacks")
    return {
        "nested": (nested_lambda_h5(d / "nested.h5", d / "nested.ran"), d / "nested.ran", "per_frame/sequential/evil"),
        "residual": (
            residual_wrapper_h5(d / "resid.h5", d / "resid.ran"),
            d / "resid.ran",
            "recurrent/residual_wrapper",
        ),
    }


def _one_error_line(stderr: str) -> str:
    """The one error line (parity may warn first that the file is not the model's recorded source)."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("edgeemo: error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nested", "residual"])
def test_export_and_parity_refuse_code_at_any_depth(attack_files, tmp_path: Path, name: str) -> None:
    h5, marker, layer_path = attack_files[name]
    runs = {
        "export": [*CLI, "export", str(h5), "--out", str(tmp_path / "out"), "--no-parity"],
        "parity": [*CLI, "parity", "mini-xception", "--keras", str(h5), "--precision", "fp32", "--limit", "2"],
    }
    for what, cmd in runs.items():
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == ExportError.exit_code, (what, r.returncode, r.stderr)
        line = _one_error_line(r.stderr)
        assert str(h5) in line and repr(layer_path) in line and "refused" in line, (what, line)
        assert not marker.exists(), f"{what}: the file's code ran"
    assert not (tmp_path / "out" / "model.onnx").exists()


@pytest.mark.parametrize("name", ["nested", "residual"])
def test_trusted_load_runs_the_code_so_the_files_are_real_attacks(attack_files, name: str) -> None:
    from edgeemo_export.keras_io import load_keras

    h5, marker, _ = attack_files[name]
    with pytest.raises(ExportError, match="refused"):
        load_keras(h5)
    assert not marker.exists()
    load_keras(h5, trust_lambda=True)
    assert marker.read_text() == "ran"
    marker.unlink()


# ------------------------------------------------------------------------------------ configs written as JSON
FUNC = ["4wEAAAAAAAAA", None, None]  # the shape of a marshalled function; never loaded here


def _dense(name: str, **extra: Any) -> dict[str, Any]:
    return {"class_name": "Dense", "config": {"name": name, "units": 2, **extra}, "name": name, "inbound_nodes": []}


def _functional(*layers: dict[str, Any]) -> dict[str, Any]:
    inp = {"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, 4]}, "name": "x"}
    return {"class_name": "Functional", "config": {"name": "m", "layers": [inp, *layers]}}


def _write(path: Path, config: Any) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.21.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
    return path


CASES: dict[str, tuple[Any, str, str]] = {
    # name: (config, layer path, what the message says)
    "function in an initializer": (
        _functional(_dense("d", kernel_initializer={"class_name": "Zeros", "config": {"function": FUNC}})),
        "d/Zeros",
        "'function'",
    ),
    "Lambda in Bidirectional": (
        _functional(
            {
                "class_name": "Bidirectional",
                "config": {"name": "bi", "layer": {"class_name": "Lambda", "config": {"name": "l", "function": FUNC}}},
            }
        ),
        "bi/l",
        "Lambda layer",
    ),
    "custom cell in StackedRNNCells": (
        _functional(
            {
                "class_name": "RNN",
                "config": {
                    "name": "rnn",
                    "cell": {
                        "class_name": "StackedRNNCells",
                        "config": {
                            "cells": [
                                {"class_name": "LSTMCell", "config": {"name": "c0", "units": 2}},
                                {"class_name": "DropoutWrapper", "config": {"name": "c1", "dropout_fn": FUNC}},
                            ]
                        },
                    },
                },
            }
        ),
        "rnn/StackedRNNCells/c1",
        "'dropout_fn'",
    ),
    "TF op with side effects": (
        _functional(
            {
                "class_name": "TFOpLambda",
                "config": {"name": "w", "function": "io.write_file"},
                "inbound_nodes": [["x", 0, 0, {"contents": "pwned", "filename": "/tmp/x"}]],
            }
        ),
        "w",
        "'io.write_file'",
    ),
    "class from a foreign module": (
        _functional({"module": "os", "class_name": "Dense", "config": {"name": "d", "units": 2}}),
        "d",
        "module 'os'",
    ),
    "activation that is not built in": (_functional(_dense("d", activation="eval")), "d", "activation 'eval'"),
    "legacy Sequential, bare list": (
        {
            "class_name": "Sequential",
            "config": [
                _dense("first", batch_input_shape=[None, 4]),
                {"class_name": "Lambda", "config": {"name": "lam", "function": FUNC, "function_type": "lambda"}},
            ],
        },
        "lam",
        "Lambda layer",
    ),
    "output_shape function in a call argument": (
        _functional(_dense("d") | {"inbound_nodes": [[["x", 0, 0, {"output_shape_type": "lambda"}]]]}),
        "d",
        "'output_shape_type'",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_code_anywhere_in_the_config_is_refused(tmp_path: Path, case: str) -> None:
    config, layer_path, what = CASES[case]
    p = _write(tmp_path / "m.h5", config)
    info = inspect_h5(p)
    with pytest.raises(ExportError) as err:
        refuse_untrusted_code(info, trust_lambda=False)
    msg = str(err.value)
    assert msg.startswith(f"{p}: ") and repr(layer_path) in msg and what in msg, msg
    assert "\n" not in msg


def test_legacy_sequential_bare_list_is_walked(tmp_path: Path) -> None:
    p = _write(tmp_path / "seq.h5", {"class_name": "Sequential", "config": [_dense("a"), _dense("b")]})
    info = inspect_h5(p)
    assert [layer.path for layer in info.layers] == ["a", "b"]
    assert info.findings == ()
    refuse_untrusted_code(info, trust_lambda=False)


def test_shipped_keras_files_are_proven_code_free() -> None:
    files = sorted((REPO / "models").glob("*/*.h*5"))
    assert len(files) >= 4
    for f in files:
        info = inspect_h5(f)
        assert info.findings == (), (f, info.findings)
        if "thesis" in f.name:
            assert "TFOpLambda" in info.class_names


def test_allow_lists_name_real_tf_keras_objects() -> None:
    """The allow-list only names classes tf_keras itself deserializes (no typo that would open a gap)."""
    from tf_keras.src.layers import serialization

    serialization.populate_deserializable_objects()
    layers = set(serialization.LOCAL.ALL_OBJECTS)
    assert layers >= SAFE_LAYERS, SAFE_LAYERS - layers
    objects = {
        n
        for mod in (tf_keras.initializers, tf_keras.regularizers, tf_keras.constraints, tf_keras.mixed_precision)
        for n in dir(mod)
    }
    assert SAFE_OBJECTS - {"TensorShape", "__tuple__", "__ellipsis__"} <= objects
    assert {a for a in SAFE_ACTIVATIONS if not hasattr(tf_keras.activations, a)} == set()
    assert not re.search(r"Lambda|Wrapper|Lookup|Vectorization", " ".join(SAFE_LAYERS))
