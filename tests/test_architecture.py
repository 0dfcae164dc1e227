"""docs/architecture.md cannot go stale: every module it names exists, every module of the package is named, and
the `edgeemo video FILE` path names each of its modules once."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
MODULE = re.compile(r"`(edgeemo(?:\.[a-z_][a-z0-9_]*)*)`")


def package_modules() -> set[str]:
    out = set()
    for path in (REPO / "edgeemo").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        out.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start : end if end >= 0 else None]


def test_every_named_module_exists_and_every_module_is_named() -> None:
    named = set(MODULE.findall(DOC.read_text(encoding="utf-8")))
    modules = package_modules()
    assert sorted(named - modules) == [], "named in docs/architecture.md but not in the package"
    assert sorted(modules - named) == [], "in the package but not named in docs/architecture.md"


def test_the_video_path_names_each_module_once_in_order() -> None:
    section = _section(DOC.read_text(encoding="utf-8"), "## `edgeemo video FILE`")
    steps = re.findall(r"^\d+\. `(edgeemo[\w.]*)`", section, flags=re.MULTILINE)
    mentioned = MODULE.findall(section)
    assert len(steps) >= 20 and steps[0] == "edgeemo.cli.app"
    assert sorted(m for m in set(mentioned) if mentioned.count(m) > 1) == []  # each module once
    assert mentioned == steps  # every module of the section leads its own step, in the order of the steps
    assert set(steps) <= package_modules()
