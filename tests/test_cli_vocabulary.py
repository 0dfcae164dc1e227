"""One CLI vocabulary: every option of every command is in docs/cli.md's table, and the aliases work."""

from __future__ import annotations

import importlib
import json
import re
import typing
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import typer
from typer.testing import CliRunner

from edgeemo.cli.app import COMMANDS, app

REPO = Path(__file__).resolve().parents[1]


def _commands(cmd: Any, name: str = "") -> dict[str, Any]:
    out = {name: cmd} if name else {}
    for sub_name, sub in getattr(cmd, "commands", {}).items():
        out |= _commands(sub, f"{name} {sub_name}".strip())
    return out


def test_every_option_of_every_command_is_in_the_vocabulary_table() -> None:
    for module, _ in COMMANDS.values():
        importlib.import_module(module)
    doc = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    table = doc[doc.index("## Options by command") :]
    named = {t for span in re.findall(r"`([^`]+)`", table) for t in re.split(r"[ ,/=()]+", span) if t}
    commands = _commands(typer.main.get_command(app))
    assert set(COMMANDS) <= set(commands)
    missing = [
        f"{name} {opt}"
        for name, cmd in commands.items()
        for p in cmd.params
        if p.param_type_name == "option"
        for opt in [*p.opts, *p.secondary_opts]
        if opt.startswith("--") and opt != "--help" and opt not in named
    ]
    assert not missing, missing


def test_image_takes_out_dir_as_video_does(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    src = tmp_path / "photo.jpg"
    cv2.imwrite(str(src), astronaut_bgr)
    written = {}
    for flag in ("--out", "--out-dir"):
        out = tmp_path / flag.strip("-")
        r = CliRunner().invoke(app, ["image", str(src), flag, str(out), "--json"])
        assert r.exit_code == 0, r.output
        written[flag] = sorted(p.name for p in out.iterdir())
        face = json.loads((out / "photo.json").read_text())
        assert face["faces"] and face["faces"][0]["label"] == "happy"
    assert written["--out"] == written["--out-dir"] == ["photo.jpg", "photo.json"]


def test_choice_options_offer_exactly_the_library_values() -> None:
    """Enumerations are spelled once, in the library; every command's choice options offer exactly those values."""
    from edgeemo.render.annotate import VaBars
    from edgeemo.runtime.session import CPU_LAYOUTS, DEVICES, GRAPH_OPT_LEVELS
    from edgeemo.runtime.spec import PRECISIONS

    want = {
        "--precision": PRECISIONS,
        "--device": DEVICES,
        "--graph-opt": GRAPH_OPT_LEVELS,
        "--cpu-layout": CPU_LAYOUTS,
        "--va-bars": typing.get_args(VaBars),
    }
    for module, _ in COMMANDS.values():
        importlib.import_module(module)
    seen: dict[str, int] = {}
    for name, cmd in _commands(typer.main.get_command(app)).items():
        if name in ("export", "parity", "train"):  # comma-separated lists of precisions, checked by export
            continue
        for param in getattr(cmd, "params", []):
            flag = next((o for o in param.opts if o in want), None)
            if flag is not None:
                assert typing.get_args(param.type_descriptor.annotation) == want[flag], f"{name} {flag}"
                seen[flag] = seen.get(flag, 0) + 1
    assert seen == {"--precision": 3, "--device": 3, "--graph-opt": 3, "--cpu-layout": 3, "--va-bars": 2}, seen


def test_library_tables_are_keyed_by_the_enumerations() -> None:
    from edgeemo.runtime import session
    from edgeemo.runtime.assets import PRECISION_SUFFIX
    from edgeemo.runtime.spec import PRECISIONS

    assert tuple(PRECISION_SUFFIX) == PRECISIONS
    assert set(session._CHAIN) == set(session.DEVICES)
    assert {dev for chain in session._CHAIN.values() for dev in chain} == set(session.DEVICES) - {"auto"}
