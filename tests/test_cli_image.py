"""`edgeemo image`: annotated images and JSON for real faces; every bad input gets a message, the rest go on."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeemo.cli import app
from edgeemo.detectors import create_detector
from edgeemo.errors import EdgeemoError

runner = CliRunner()


def encode(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def huge_png_header(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG of a few hundred bytes whose header claims ``width`` x ``height``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def detector() -> str:
    for name in ("blazeface", "dlib-hog"):
        try:
            create_detector(name).close()
            return name
        except EdgeemoError:  # missing dependency or asset: try the next one
            continue
    pytest.skip("neither blazeface nor dlib-hog can be created here")


@pytest.fixture()
def inputs(tmp_path: Path, astronaut_bgr: np.ndarray) -> dict[str, Path]:
    """Good and bad inputs side by side in one folder."""
    d = tmp_path / "in"
    d.mkdir()
    face = astronaut_bgr
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    files = {
        "face.jpg": encode(".jpg", face),
        "face16.png": encode(".png", face.astype(np.uint16) * 257),
        "face_rgba.png": encode(".png", cv2.cvtColor(face, cv2.COLOR_BGR2BGRA)),
        "face_gray.png": encode(".png", gray),
        "wall.png": encode(".png", np.full((240, 320, 3), 128, np.uint8)),
        "empty.jpg": b"",
        "truncated.jpg": encode(".jpg", face)[:5000],
        "text.jpg": b"I am a text file with a photo's name\n",
        "dot.png": encode(".png", np.zeros((1, 1, 3), np.uint8)),
        "huge.png": huge_png_header(),
    }
    out = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        out[name] = d / name
    return out


def test_image_command_reports_bad_files_and_goes_on(tmp_path: Path, inputs: dict[str, Path], detector: str) -> None:
    out = tmp_path / "out"
    r = runner.invoke(app, ["image", *map(str, inputs.values()), "--out", str(out), "--json", "-d", detector])
    assert r.exit_code == 2, r.output
    expect_errors = {
        "empty.jpg": "empty file (0 bytes)",
        "truncated.jpg": "truncated JPEG",
        "text.jpg": "not an image",
        "dot.png": "too small to hold a face",
        "huge.png": "above the limit of 100 MP",
    }
    for name, problem in expect_errors.items():
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith(f"edgeemo: error: {inputs[name]}: ")]
        assert len(lines) == 1 and problem in lines[0], (name, r.stderr)
    assert "5 of 10 inputs failed" in r.stderr
    for name in ("face.jpg", "face16.png", "face_rgba.png", "face_gray.png"):
        stem = Path(name).stem
        doc = json.loads((out / f"{stem}.json").read_text())
        assert [f["label"] for f in doc["faces"]] == ["happy"], name
        assert doc["source"] == str(inputs[name])
        assert cv2.imread(str(out / name)).shape[:2] == (512, 512)
    wall = json.loads((out / "wall.json").read_text())
    assert wall["faces"] == []  # no face is a result, not a failure
    assert not (out / "empty.json").exists()
    assert "wall.png: 320x240, 0 faces" in r.stdout


def test_json_lines_on_stdout_and_exit_zero(inputs: dict[str, Path], detector: str) -> None:
    r = runner.invoke(app, ["image", str(inputs["face.jpg"]), str(inputs["wall.png"]), "--json", "-d", detector])
    assert r.exit_code == 0, r.output
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [len(d["faces"]) for d in docs] == [1, 0]
    face = docs[0]["faces"][0]
    assert face["label"] == "happy" and face["va_source"] == "derived"
    assert "1 face: #1 happy" in r.stderr


def test_folder_input_and_refused_output_folder(inputs: dict[str, Path], detector: str) -> None:
    folder = inputs["face.jpg"].parent
    r = runner.invoke(app, ["image", str(folder), "--out", str(folder), "-d", detector])
    assert r.exit_code != 0
    assert "is the folder of input" in str(r.exception)


def test_margin_and_runtime_options_reach_the_pipeline(inputs: dict[str, Path], detector: str) -> None:
    args = ["image", str(inputs["face.jpg"]), "--json", "-d", detector, "--device", "cpu", "--threads", "1"]
    tight = json.loads(runner.invoke(app, [*args, "--margin", "0"]).stdout)
    loose = json.loads(runner.invoke(app, [*args, "--margin-ratio", "0.5", "--graph-opt", "basic"]).stdout)
    p_tight = tight["faces"][0]["probabilities"]
    p_loose = loose["faces"][0]["probabilities"]
    assert p_tight != p_loose  # different crops give different probabilities
    assert tight["faces"][0]["box"] == loose["faces"][0]["box"]
    r = runner.invoke(app, [*args, "--detector-option", "no-equals-sign"])
    assert r.exit_code != 0 and "KEY=VALUE" in str(r.exception)


@pytest.mark.parametrize(
    ("flags", "file", "slice_"),
    [
        ([], None, 8),
        (["--cpu-layout", "portable"], "model.onnx", 8),
        (["--batch-slice", "3"], None, 3),
        (["--batch-slice", "0"], None, 0),
    ],
)
def test_cpu_layout_and_batch_slice_reach_the_model(
    inputs: dict[str, Path],
    detector: str,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    file: str | None,
    slice_: int,
) -> None:
    """--cpu-layout picks the file the CPU session loads, --batch-slice the largest batch per session call."""
    import edgeemo.image_run as image_run
    from edgeemo.runtime.session import SessionOptions, choose_cpu_layout

    seen = []

    class Recording(image_run.Pipeline):  # type: ignore[misc, name-defined]
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)
            seen.append(self.model)

    monkeypatch.setattr(image_run, "Pipeline", Recording)
    r = runner.invoke(app, ["image", str(inputs["face.jpg"]), "--json", "-d", detector, "--device", "cpu", *flags])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["faces"][0]["label"] == "happy"
    default = "model.avx512.onnx" if choose_cpu_layout(SessionOptions(device="cpu")) == "avx512" else "model.onnx"
    assert seen[0].path.name == (file or default)
    assert seen[0].batch_slice == slice_


def test_run_images_yields_one_typed_outcome_per_input(tmp_path: Path, inputs: dict[str, Path], detector: str) -> None:
    """The library entry point behind `edgeemo image`: results and failures in input order, nothing printed."""
    from edgeemo.errors import DecodeError
    from edgeemo.image_run import ImageDone, ImageFailed, ImageOutputs, run_images
    from edgeemo.pipeline import PipelineOptions

    empty = tmp_path / "no_images"
    empty.mkdir()
    paths = [empty, inputs["face.jpg"], inputs["text.jpg"], inputs["wall.png"]]
    out = tmp_path / "out"
    got = list(run_images(paths, PipelineOptions(detector=detector), ImageOutputs(out, json=True)))
    assert [o.path for o in got] == paths
    assert [type(o) for o in got] == [ImageFailed, ImageDone, ImageFailed, ImageDone]
    assert "folder holds no image files" in str(got[0].error)
    assert isinstance(got[2].error, DecodeError) and str(inputs["text.jpg"]) in str(got[2].error)
    face, wall = got[1], got[3]
    assert isinstance(face, ImageDone) and isinstance(wall, ImageDone)
    assert [f.prediction.label for f in face.result.faces] == ["happy"] and wall.result.faces == ()
    assert face.summary().startswith(f"{inputs['face.jpg']}: 512x512, 1 face: #1 happy ")
    assert sorted(p.name for p in out.iterdir()) == ["face.jpg", "face.json", "wall.json", "wall.png"]
