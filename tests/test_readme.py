"""Every ```python block of README.md runs as written.

The blocks open ``photo.jpg`` and ``clip.mp4`` in the working directory; the test puts scikit-image's astronaut
(a real face from a registry package) and the shipped sample clip there. A block is skipped only when it imports
an optional package that is not installed, and the skip names it.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(encoding="utf-8"), re.M | re.S)


def _missing_imports(code: str) -> list[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return sorted(n for n in names if importlib.util.find_spec(n) is None)


def test_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{k}" for k in range(len(BLOCKS))])
def test_readme_python_block_runs(
    code: str,
    astronaut_bgr: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = _missing_imports(code)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (an optional extra), not installed")
    cv2.imwrite(str(tmp_path / "photo.jpg"), astronaut_bgr)
    shutil.copyfile(REPO / "samples" / "astronaut.mp4", tmp_path / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "happy" in out, out  # the astronaut smiles, in the photo and all through the clip
