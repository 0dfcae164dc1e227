"""Every command and code path the README and docs/ name exists: `python -m MODULE` and backticked `*.py` paths."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from edgeemo.cli.app import COMMANDS

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MODULE = re.compile(r"python3? -m ([A-Za-z_][\w.]*)")
CODE = re.compile(r"```.*?```|`[^`]+`", re.S)  # fenced blocks and inline spans (which may wrap a line)
PY_PATH = re.compile(r"(?<![\w./*-])((?:\.\./)*[\w*-]+(?:/[\w.*-]+)*\.py)\b")
COMMAND = re.compile(r"(?:^|`|\$ |&& )\s*edgeemo ([a-z][a-z-]*)", re.M)  # a command line, not prose or `import`


def _module_exists(name: str) -> bool:
    top = name.split(".")[0]
    if (REPO / top).is_dir():  # a repository package: the file itself, never an installed copy
        path = REPO.joinpath(*name.split("."))
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()
    return importlib.util.find_spec(top) is not None


def _named(doc: Path) -> tuple[set[str], set[str], set[str]]:
    text = doc.read_text(encoding="utf-8")
    spans = CODE.findall(text)
    modules = set(MODULE.findall(text))
    paths = {p for span in spans for p in PY_PATH.findall(span)}
    commands = {c for span in spans for c in COMMAND.findall(span)}
    return modules, {p for p in paths if not p.startswith("../shared/") and "*" not in p}, commands


def _doc_id(doc: Path) -> str:
    return str(doc.relative_to(REPO))


def test_the_scan_finds_what_the_docs_name() -> None:
    """Guards the extraction itself: commands and paths known to be in the docs are found."""
    modules, _, commands = _named(REPO / "docs" / "training.md")
    assert "edgeemo_export.train" in modules and "train" in commands
    assert "benchmarks/aarch64/worker.py" in _named(REPO / "docs" / "jetson.md")[1]
    assert {"image", "video", "models"} <= _named(REPO / "README.md")[2]


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_named_modules_and_files_exist(doc: Path) -> None:
    modules, paths, commands = _named(doc)
    missing = [f"python -m {m}" for m in sorted(modules) if not _module_exists(m)]
    missing += [f"edgeemo {c}" for c in sorted(commands) if c not in COMMANDS]
    for p in sorted(paths):
        base = doc.parent if p.startswith("../") else REPO
        if not (base / p).resolve().is_file():
            missing.append(p)
    assert not missing, f"{_doc_id(doc)} names what does not exist: {missing}"
