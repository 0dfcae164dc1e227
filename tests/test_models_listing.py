"""`edgeemo models` at 80 columns, and untrained weights as a model fact (card.json ``weights``), never a name list."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeemo.runtime import assets
from edgeemo.runtime.model import EmotionModel

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SHIPPED = sorted(p.parent.name for p in MODELS.glob("*/card.json"))
UNTRAINED = [n for n in SHIPPED if json.loads((MODELS / n / "card.json").read_text())["weights"] == "untrained"]


def _models_cli(*args: str, model_path: Path | None = None) -> str:
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO)}
    env.pop("EDGEEMO_MODEL_PATH", None)
    if model_path is not None:
        env["EDGEEMO_MODEL_PATH"] = str(model_path)
    cmd = [sys.executable, "-c", "from edgeemo.cli import main; main()", "models", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120, env=env).stdout


def _user_model(root: Path, name: str, weights: str) -> Path:
    """A user model folder: the shipped mini-Xception graph with a card that says ``weights``."""
    folder = root / name
    folder.mkdir()
    shutil.copyfile(MODELS / "mini-xception" / "model.onnx", folder / "model.onnx")
    card = json.loads((MODELS / "mini-xception" / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "name": name, "weights": weights}))
    return folder


def _fp32_accuracy(name: str) -> str:
    """The card's measured fp32 accuracy as the listing prints it (whatever the last export gave)."""
    card = json.loads((MODELS / name / "card.json").read_text())
    fp32 = next(v for v in card["parity"]["variants"] if v["path"].endswith("/model.onnx"))
    return f"{fp32['heads'][0]['accuracy']:.3f}"


def test_shipped_cards_mark_the_untrained_thesis_models_untrained() -> None:
    """The trained thesis classifier is a model; its valence/arousal twins and the fused graph that carries them
    are untrained (no valence/arousal-labelled data)."""
    assert {"mini-xception", "thesis-mobilenet"} <= set(SHIPPED)
    assert set(UNTRAINED) == {"thesis-fused", "thesis-valence", "thesis-arousal"}


def test_default_listing_fits_80_columns_one_row_per_trained_model(tmp_path: Path) -> None:
    _user_model(tmp_path, "my-random", "untrained")
    _user_model(tmp_path, "my-trained", "trained")
    out = _models_cli(model_path=tmp_path)
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    rows = [line for line in lines if re.match(r"^\s*\*?\s+[a-z0-9-]+( \(user\))?\s+fp32", line)]
    assert len(rows) == 3, out  # mini-xception, thesis-mobilenet and my-trained; each model one row, whole name
    default = next(r for r in rows if "mini-xception" in r)
    accuracy = _fp32_accuracy("mini-xception")
    assert accuracy.startswith("0.65")
    assert default.lstrip().startswith("*") and re.search(rf"\b{re.escape(accuracy)}\b", default), default
    thesis = next(r for r in rows if re.search(r"\sthesis-mobilenet\s", r))
    accuracy = _fp32_accuracy("thesis-mobilenet")
    assert float(accuracy) >= 0.62  # issue 13's goal for the trained thesis classifier
    assert not thesis.lstrip().startswith("*") and re.search(rf"\b{re.escape(accuracy)}\b", thesis), thesis
    assert "my-trained (user)" in out and "…" not in out
    for name in [*UNTRAINED, "my-random"]:
        assert name not in out
    assert f"{len(UNTRAINED) + 1} untrained models hidden" in " ".join(out.split())


def test_all_lists_untrained_models_marked() -> None:
    out = _models_cli("--all")
    assert all(len(line) <= 80 for line in out.splitlines()), out
    for name in UNTRAINED:
        row = next(line for line in out.splitlines() if re.search(rf"\s{re.escape(name)}\s", line))
        assert row.rstrip().endswith("untrained"), row
    rows = json.loads(_models_cli("--all", "--json"))
    assert {r["name"] for r in rows if r["weights"] == "untrained"} == set(UNTRAINED)
    assert {r["name"] for r in json.loads(_models_cli("--json"))}.isdisjoint(UNTRAINED)


def test_untrained_load_warns_once_per_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assets, "_warned_untrained", set())
    random_model = _user_model(tmp_path, "my-random", "untrained") / "model.onnx"
    trained_model = _user_model(tmp_path, "my-trained", "trained") / "model.onnx"
    with caplog.at_level(logging.WARNING, logger="edgeemo.runtime.assets"):
        for _ in range(2):
            EmotionModel(random_model)
            EmotionModel(trained_model)
            EmotionModel.load("mini-xception")
            EmotionModel.load("thesis-fused", "fp16")
        EmotionModel.load("thesis-fused")  # another file of the same model: still one warning
    warned = [r.getMessage() for r in caplog.records if "UNTRAINED" in r.getMessage()]
    assert len(warned) == 2, warned
    assert warned[0].startswith("my-random:") and warned[1].startswith("thesis-fused:")
    assert "outputs mean nothing" in warned[0]  # no head named: the whole model is untrained
    assert "UNTRAINED heads valence, arousal" in warned[1] and warned[1].endswith("trained heads: emotion"), warned[1]


def test_nothing_untrained_is_called_recommended() -> None:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    docs += [p for n in SHIPPED for p in (MODELS / n / "README.md", MODELS / n / "card.json")]
    for doc in docs:
        for k, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            low = line.lower()
            named = [n for n in UNTRAINED if n in low] or (UNTRAINED if doc.parent.name in UNTRAINED else [])
            assert not (named and ("recommend" in low or "(default)" in low)), f"{doc}:{k}: {line}"
