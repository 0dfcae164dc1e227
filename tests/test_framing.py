"""Crop framing as a model fact: metadata round trip, what the runtime uses, the stamp tool, and real photos."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import edgeemo
from edgeemo import Pipeline
from edgeemo.cli import app
from edgeemo.errors import InputError, ModelError
from edgeemo.results import Box, Face
from edgeemo.runtime.assets import resolve_model
from edgeemo.runtime.spec import THESIS_FRAMING, Framing, ModelSpec

onnx = pytest.importorskip("onnx")
from edgeemo_export.framing import parse_framing, shipped_framing, stamp_file, stamp_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BLAZE = Framing("box", 0.07, 0.07, 0.12, 0.03, square=True, detector="blazeface", basis="test")
HOG = Framing("box", 0.08, 0.08, 0.16, 0.02, square=True, detector="dlib-hog", basis="test")


class _NamedDetector:
    """A detector stand-in that only has a name (crops are classified from given faces)."""

    thread_safe = False

    def __init__(self, name: str) -> None:
        self.name = name

    def detect(self, frame: np.ndarray) -> list[Face]:
        return []

    def close(self) -> None:
        pass


@pytest.fixture()
def framed_model(tmp_path: Path) -> Path:
    """A copy of the shipped FP32 mini-Xception stamped with two per-detector framings."""
    path = tmp_path / "model.onnx"
    shutil.copyfile(resolve_model("mini-xception", "fp32"), path)
    stamp_file(path, (BLAZE, HOG))
    return path


def test_framing_round_trips_and_old_files_keep_the_thesis_default() -> None:
    spec = dataclasses.replace(edgeemo.load_model("mini-xception").spec, framing=(BLAZE, HOG))
    back = ModelSpec.from_json(spec.to_json())
    assert back == spec and back.framing_for("dlib-hog") == HOG and back.framing_for("mediapipe") == BLAZE
    old = json.loads(spec.to_json())
    del old["framing"]  # a file written before framing existed
    assert ModelSpec.from_dict(old).framing_for("blazeface") == THESIS_FRAMING == Framing.pixels(30)


def test_bad_framing_metadata_is_refused_with_the_reason() -> None:
    spec = edgeemo.load_model("mini-xception").spec
    for bad, reason in (
        (Framing("px", -1, 0, 0, 0), ">= 0"),
        (Framing("box", -0.6, -0.6, 0, 0), "nothing of the box"),
        (Framing("mm", 1, 1, 1, 1), "unit"),  # type: ignore[arg-type]
        (Framing("box", float("nan"), 0, 0, 0), "finite"),
    ):
        with pytest.raises(ModelError, match=reason):
            ModelSpec.from_json(dataclasses.replace(spec, framing=(bad,)).to_json(), "m.onnx")
    with pytest.raises(ModelError, match="more than one framing"):
        ModelSpec.from_json(dataclasses.replace(spec, framing=(BLAZE, BLAZE)).to_json(), "m.onnx")
    d = json.loads(spec.to_json())
    d["framing"] = [{"unit": "box", "sides": 0.1}]
    with pytest.raises(ModelError, match="malformed"):
        ModelSpec.from_dict(d, "m.onnx")


def test_the_runtime_uses_the_model_framing_unless_overridden(framed_model: Path, astronaut_bgr: np.ndarray) -> None:
    assert Pipeline(framed_model, detector=_NamedDetector("blazeface")).framing == BLAZE
    assert Pipeline(framed_model, detector=_NamedDetector("dlib-hog")).framing == HOG
    assert Pipeline(framed_model, detector=_NamedDetector("blazeface"), margin=10).framing == Framing.pixels(10)
    assert Pipeline(framed_model, detector=None, margin=10, margin_ratio=0.2).framing == Framing.ratio(0.2)
    # What it changes: the crop (0.07 + 0.07 of a 90 px box, squared to the 1.15 x 90 px height) and the label.
    face = Face(Box(180, 80, 270, 170), 0.9)
    own = Pipeline(framed_model, detector=_NamedDetector("blazeface"))
    old = Pipeline(framed_model, detector=_NamedDetector("blazeface"), margin=30)
    assert own.crops(astronaut_bgr, [face]).crops[0].shape == (104, 104, 3)
    assert old.crops(astronaut_bgr, [face]).crops[0].shape == (150, 150, 3)
    p_own = own.classify_faces(astronaut_bgr, [face]).faces[0].prediction.probabilities
    p_old = old.classify_faces(astronaut_bgr, [face]).faces[0].prediction.probabilities
    assert p_own != p_old


def test_stamp_changes_only_the_metadata_and_is_idempotent(framed_model: Path, tmp_path: Path) -> None:
    before = onnx.load(str(framed_model))
    assert stamp_file(framed_model, (BLAZE, HOG)) is False  # already carries it: untouched
    again = tmp_path / "again.onnx"
    shutil.copyfile(framed_model, again)
    assert stamp_file(again, (HOG,)) is True
    after = onnx.load(str(again))
    assert after.graph == before.graph
    assert edgeemo.load_model(again).spec.framing == (HOG,)


def test_stamp_folder_updates_the_card(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("model.onnx", "card.json"):
        shutil.copyfile(REPO / "models" / "mini-xception" / name, folder / name)
    stamp_folder(folder, (HOG,))
    card = json.loads((folder / "card.json").read_text())
    assert card["metadata"]["framing"] == [dataclasses.asdict(HOG)]
    assert card["framing"]["stamp_command"] == "python -m edgeemo_export.framing"
    assert (
        "Crop framing: l 0.08 r 0.08 t 0.16 b 0.02 of the box, square (dlib-hog boxes)"
        in (folder / "README.md").read_text()
    )
    assert stamp_folder(folder, (HOG,)) == []


def test_shipped_models_carry_their_framing() -> None:
    """mini-Xception: measured on its training faces (framing.json); the thesis models: the thesis's 30 px."""
    report = json.loads((REPO / "models" / "mini-xception" / "framing.json").read_text())
    measured = {d["detector"]: Framing(**d["framing"]) for d in report["detectors"]}
    for precision in ("fp32", "fp16", "int8"):
        spec = edgeemo.load_model("mini-xception", precision).spec
        assert {f.detector: f for f in spec.framing} == measured, precision
    assert measured["blazeface"].unit == "box" and measured["blazeface"].square
    assert shipped_framing("mini-xception") == tuple(measured.values())
    for name in ("thesis-mobilenet", "thesis-valence", "thesis-arousal", "thesis-fused"):
        [framing] = edgeemo.load_model(name).spec.framing
        assert (framing.unit, framing.left, framing.top, framing.square) == ("px", 30, 30, False), name


def test_parse_framing() -> None:
    assert parse_framing("30px") == (Framing.pixels(30),)
    assert parse_framing("0.1") == (Framing.ratio(0.1),)
    assert parse_framing("box:0.05,0.06,0.11,0.03,square@blazeface") == (
        Framing("box", 0.05, 0.06, 0.11, 0.03, square=True, detector="blazeface"),
    )
    assert parse_framing(str(REPO / "models" / "mini-xception" / "framing.json")) == shipped_framing("mini-xception")
    for bad in ("box:1,2", "px:-1,0,0,0", "wide"):
        with pytest.raises(InputError, match="--framing"):
            parse_framing(bad)


def test_default_options_label_the_grinning_group_photo(shared_photos: Path) -> None:
    """Five people grinning at about 60 px (face-api-js_bbt3.jpg): the old 30 px default said
    neutral, surprise, neutral, sad, surprise; the model's own framing says happy for all five."""
    r = CliRunner().invoke(app, ["image", str(shared_photos / "face-api-js_bbt3.jpg"), "--json"])
    assert r.exit_code == 0, r.output
    faces = json.loads(r.stdout.splitlines()[0])["faces"]
    assert [f["label"] for f in faces] == ["happy"] * 5


def test_model_framing_beats_the_old_default_on_labelled_group_faces(shared_photos: Path) -> None:
    """26 faces labelled by eye (benchmarks/data/group_photos_labels.csv), detected in their photos."""
    from benchmarks.end_to_end import group, pick

    samples = group(shared_photos)
    right = {"model": 0, "thesis": 0}
    with Pipeline() as own, Pipeline(margin=30) as old:
        for s in samples:
            face = pick(own.detect(s.frame), s.point)
            assert face is not None, s.name
            right["model"] += own.classify_faces(s.frame, [face]).faces[0].prediction.label == s.label
            right["thesis"] += old.classify_faces(s.frame, [face]).faces[0].prediction.label == s.label
    assert right["model"] >= right["thesis"] + 5, right


def test_calibration_measures_where_the_box_sits(shared_data: Path, tmp_path: Path) -> None:
    """A few training faces through the calibration command: a report the stamp tool reads, margins in range."""
    from edgeemo_export.framing_calibration import main

    train = shared_data / "fer2013-train"
    if not train.is_dir():
        pytest.skip(f"{train} is absent")
    out = tmp_path / "framing.json"
    assert main(["--data", str(train), "--limit", "40", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    [entry] = report["detectors"]
    assert entry["detector"] == "blazeface" and entry["detected"] >= 25
    margins = entry["margins"]
    # FER2013 crops are tight: the box fills most of the 48x48 frame, with more room above than below.
    assert all(-0.1 < margins[s]["median"] < 0.25 for s in ("left", "right", "top", "bottom"))
    assert margins["top"]["median"] > margins["bottom"]["median"]
    assert parse_framing(str(out))[0].detector == "blazeface"
