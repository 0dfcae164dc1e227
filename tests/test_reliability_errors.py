"""Errors: one exception hierarchy in the library, exit codes and one-line messages at the CLI edge, tracebacks
with --verbose, and a library that logs through `logging` and never prints."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import logging
from pathlib import Path

import numpy as np
import pytest

import edgeemo
from edgeemo import errors
from edgeemo.errors import DecodeError, EdgeemoError, InputError, MissingDependencyError, ModelError

cli_app = importlib.import_module("edgeemo.cli.app")  # the module (edgeemo.cli.app is also the Typer object)
PACKAGE = Path(edgeemo.__file__).resolve().parent
REPO = PACKAGE.parent
SAMPLE = REPO / "samples" / "astronaut.mp4"
CLI_MODULES = PACKAGE / "cli"

# Builtin exceptions the library may raise on purpose, each with its reason. Anything else a user can trigger
# must be an EdgeemoError.
ALLOWED_BUILTIN_RAISES = {
    ("runtime/spec.py", "KeyError"): "ModelSpec.head(name): a misspelt head name is a programming error, like a dict",
    ("results.py", "KeyError"): "Prediction.probability(cls): a misspelt class name, like a dict lookup",
    ("detectors/blazeface.py", "ValueError"): "raised inside a try that turns it into ModelError",
    ("bench/stats.py", "ValueError"): "percentiles of no samples: misuse of a helper by the harness",
    ("bench/frames.py", "LookupError"): "benchmark harness internals: no frames to time, reported by the harness",
    ("__init__.py", "ImportError"): "import-time: onnxruntime missing, so the package itself cannot be imported",
    ("__init__.py", "AttributeError"): "the package's lazy __getattr__: Python's protocol for an unknown name",
}
# Writers to the process's stdout outside the CLI: the benchmark worker's result protocol to its parent.
ALLOWED_STDOUT = {"bench/worker.py"}
BUILTIN_EXCEPTIONS = {
    n
    for n, v in vars(builtins).items()
    if isinstance(v, type) and issubclass(v, BaseException) and n not in ("KeyboardInterrupt", "SystemExit")
}


def library_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if CLI_MODULES not in p.parents)


def rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


# ---------------------------------------------------------------------------------------------- hierarchy
def test_one_hierarchy_with_distinct_exit_codes() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert EdgeemoError in classes and len(classes) >= 6
    for cls in classes:
        assert issubclass(cls, EdgeemoError), cls
        assert isinstance(cls.exit_code, int) and 1 <= cls.exit_code < 126, cls
    families = [c for c in classes if c.__bases__ == (EdgeemoError,)]
    codes = [c.exit_code for c in families]
    assert len(set(codes)) == len(codes), {c.__name__: c.exit_code for c in families}  # a code tells the family
    assert DecodeError.exit_code == InputError.exit_code


def test_library_raises_only_its_own_errors() -> None:
    found = set()
    for path in library_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id in BUILTIN_EXCEPTIONS:
                    found.add((rel(path), exc.id, node.lineno))
    unexpected = sorted(f for f in found if f[:2] not in ALLOWED_BUILTIN_RAISES)
    assert not unexpected, f"builtin exceptions raised outside edgeemo.errors: {unexpected}"


def test_library_never_prints() -> None:
    offenders = []
    for path in library_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id == "print":
                    offenders.append(f"{rel(path)}:{node.lineno} print()")
                text = ast.unparse(f)
                if text.startswith(("sys.stdout.", "sys.stderr.")) and rel(path) not in ALLOWED_STDOUT:
                    offenders.append(f"{rel(path)}:{node.lineno} {text}()")
    assert not offenders, offenders


def test_library_calls_write_nothing_to_stdout_or_stderr(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, astronaut_bgr: np.ndarray, tmp_path: Path
) -> None:
    from edgeemo.io.images import read_image
    from edgeemo.pipeline import Pipeline
    from edgeemo.runtime.session import create_session
    from edgeemo.video.run import VideoOutputs, VideoRun

    caplog.set_level(logging.DEBUG)
    capfd.readouterr()
    with Pipeline() as pipe:
        result = pipe.run_image(astronaut_bgr)
        assert len(result.faces) == 1
        bad = tmp_path / "x.jpg"
        bad.write_text("text")
        with pytest.raises(DecodeError):
            read_image(bad)
        data = bytearray(SAMPLE.read_bytes())
        off = len(data) // 2
        data[off : off + 3000] = bytes(b ^ 0xFF for b in data[off : off + 3000])
        corrupt = tmp_path / "corrupt.mp4"
        corrupt.write_bytes(bytes(data))
        summary = VideoRun(pipe, corrupt, VideoOutputs(jsonl=tmp_path / "f.jsonl")).run()
        assert summary.frames > 0
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00garbage")
    with pytest.raises(ModelError):
        create_session(broken)
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)
    # ... what the library has to say goes through logging, under the edgeemo logger names
    assert any(r.name.startswith("edgeemo.") and "corrupt" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------- the CLI edge
@pytest.mark.parametrize(
    "exc",
    [
        InputError("photo.jpg: not a folder"),
        DecodeError("clip.mp4: cannot open as a video (Invalid data)"),
        ModelError("m.onnx: cannot load ONNX model (protobuf parsing failed)"),
        MissingDependencyError("H.264 video output", "video"),
        ModelError("m.onnx: first line\nsecond line\n  third"),
        InputError("my  photo.jpg: spaces inside a name are kept"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_edge_turns_errors_into_one_line_and_their_exit_code(
    exc: EdgeemoError, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing_app(**_kw: object) -> None:
        raise exc

    monkeypatch.setattr(cli_app, "app", failing_app)
    monkeypatch.setitem(cli_app._state, "verbose", False)
    with pytest.raises(SystemExit) as done:
        cli_app.main()
    assert done.value.code == exc.exit_code
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeemo: error: "), err
    assert lines[0].removeprefix("edgeemo: error: ") == " ".join(p.strip() for p in str(exc).splitlines())


def test_edge_interrupt_and_verbose(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(**_kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_app, "app", interrupted)
    with pytest.raises(SystemExit) as done:
        cli_app.main()
    assert done.value.code == 130 and capsys.readouterr().err == "edgeemo: interrupted\n"

    def failing(**_kw: object) -> None:
        raise ModelError("m.onnx: broken")

    monkeypatch.setattr(cli_app, "app", failing)
    monkeypatch.setitem(cli_app._state, "verbose", True)
    with pytest.raises(ModelError, match=r"m\.onnx: broken"):  # re-raised: Python prints the full traceback
        cli_app.main()


def test_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything that is not an EdgeemoError is a bug: the edge does not hide it behind a friendly line."""

    def buggy(**_kw: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli_app, "app", buggy)
    monkeypatch.setitem(cli_app._state, "verbose", False)
    with pytest.raises(ZeroDivisionError):
        cli_app.main()


def test_one_line_keeps_every_line_of_an_error_in_one() -> None:
    """The one formatter of exception text: all lines joined (not just the first or the last), cut, never empty."""
    from edgeemo.errors import one_line

    multi = RuntimeError("  first part\n\n  second part: the reason \n")
    assert one_line(multi) == "first part second part: the reason"
    assert one_line(multi, 15) == "first part sec…" and len(one_line(multi, 15)) == 15
    assert one_line(FileNotFoundError(2, "No such file or directory", "clip.mp4")) == "No such file or directory"
    assert one_line(ValueError()) == "ValueError"
    assert one_line("a\nb") == "a b"
