"""The CLI's light paths load only what they need, checked in fresh interpreters by which modules got imported:
``--version`` and ``--help`` no runtime, ``edgeemo detectors`` no detector dependency; a missing ``export`` extra
is one line and exit 5; flags show no type and take no value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME = ("cv2", "onnxruntime", "numpy")
DETECTOR_DEPS = ("mediapipe", "tensorflow", "dlib")

# Runs the console entry with the given arguments, then reports which of `watch` got imported.
ENTRY = """
import atexit, json, sys
watch = json.loads(sys.argv.pop(1))
atexit.register(lambda: print("LOADED=" + json.dumps(sorted(m for m in watch if m in sys.modules)), file=sys.stderr))
{prelude}
from edgeemo.cli import main
main()
"""

# Makes the export extra's modules unimportable, as in an environment installed without `[export]`.
NO_EXPORT_EXTRA = """
class _NoExportExtra:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"tensorflow", "tf_keras", "tf2onnx", "onnx", "h5py"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoExportExtra())
"""


def edgeemo(
    *args: str, watch: tuple[str, ...] = RUNTIME, prelude: str = "", path: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=os.pathsep.join(str(p) for p in (path, REPO) if p))
    code = ENTRY.format(prelude=prelude)
    r = subprocess.run(
        [sys.executable, "-c", code, json.dumps(watch), *args], capture_output=True, text=True, env=env, cwd=REPO
    )
    loaded_lines = [line for line in r.stderr.splitlines() if line.startswith("LOADED=")]
    assert loaded_lines, r.stderr
    r.stderr = "\n".join(line for line in r.stderr.splitlines() if not line.startswith("LOADED="))
    return r, json.loads(loaded_lines[-1].removeprefix("LOADED="))


def test_version_loads_no_runtime() -> None:
    from edgeemo import __version__

    r, loaded = edgeemo("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"edgeemo {__version__}"
    assert loaded == []


def test_help_lists_every_command_without_loading_the_runtime() -> None:
    from edgeemo.cli.app import COMMANDS

    r, loaded = edgeemo("--help")
    assert r.returncode == 0, r.stderr
    for name, (_, summary) in COMMANDS.items():
        assert name in r.stdout and summary[:40] in r.stdout
    assert loaded == []


def test_command_table_matches_the_registered_commands() -> None:
    import importlib

    import typer

    from edgeemo.cli.app import COMMANDS, app

    for module, _ in COMMANDS.values():
        importlib.import_module(module)
    assert set(typer.main.get_command(app).commands) == set(COMMANDS)  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", [("--help",), ("image", "--help"), ("bench", "--help")])
def test_flags_show_no_bool_type(args: tuple[str, ...]) -> None:
    r, _ = edgeemo(*args)
    assert r.returncode == 0, r.stderr
    assert "--help" in r.stdout
    assert "<bool>" not in r.stdout


def test_flag_followed_by_a_boolean_word_is_a_usage_error(tmp_path: Path) -> None:
    r, _ = edgeemo("image", "--recursive", "true", str(tmp_path))
    assert r.returncode == 2
    assert "--recursive" in r.stderr and "takes no value" in r.stderr and "'true'" in r.stderr
    assert "true: no such file" not in r.stderr
    r, _ = edgeemo("image", "-r", "no", str(tmp_path))
    assert r.returncode == 2 and "-r" in r.stderr and "takes no value" in r.stderr
    r, _ = edgeemo("image", "-r", "0", str(tmp_path))  # digits stay inputs: `video --show 0` is webcam 0
    assert "takes no value" not in r.stderr and "0: no such file" in r.stderr


def test_listing_detectors_imports_no_detector_dependency(tmp_path: Path) -> None:
    # A stand-in mediapipe that fails when imported: listing must find it without importing it.
    (tmp_path / "mediapipe").mkdir()
    (tmp_path / "mediapipe" / "__init__.py").write_text(
        'raise ImportError("stand-in mediapipe: imported", name="mediapipe")\n'
    )
    r, loaded = edgeemo("detectors", "--json", watch=DETECTOR_DEPS, path=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["mediapipe"]["available"] is True
    assert set(rows) >= {"blazeface", "dlib-hog", "dlib-cnn", "mediapipe"}
    assert loaded == []


def test_creating_a_detector_with_a_broken_dependency_names_its_extra(tmp_path: Path) -> None:
    (tmp_path / "mediapipe").mkdir()
    (tmp_path / "mediapipe" / "__init__.py").write_text(
        'raise ImportError("stand-in mediapipe: broken", name="mediapipe")\n'
    )
    code = "from edgeemo.detectors import create_detector; create_detector('mediapipe')"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(tmp_path), str(REPO))))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode != 0
    assert "MissingDependencyError" in r.stderr and "edgeemo[mediapipe]" in r.stderr and "broken" in r.stderr


@pytest.mark.parametrize(
    "args",
    [("export", "model.h5", "--out", "out"), ("parity", "mini-xception")],
    ids=["export", "parity"],
)
def test_missing_export_extra_is_one_line_and_exit_5(args: tuple[str, ...]) -> None:
    r, loaded = edgeemo(*args, watch=("tensorflow",), prelude=NO_EXPORT_EXTRA)
    assert r.returncode == 5, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"edgeemo: error: edgeemo {args[0]} needs") and "'edgeemo[export]'" in lines[0]
    assert loaded == []
