"""`edgeemo video`: the no-argument default run, clear errors with exit codes, SIGTERM finalises outputs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeemo.cli import app

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"
CLI = [sys.executable, "-c", "from edgeemo.cli import main; main()"]


def _frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_no_arguments_runs_the_sample_into_edgeemo_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["video"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "edgeemo-out"
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "astronaut.annotated.mp4",
        "astronaut.circumplex.png",
        "astronaut.jsonl",
        "astronaut.timeline.csv",
        "astronaut.timeline.png",
    ]
    assert _frames(out / "astronaut.annotated.mp4") == 150
    assert len((out / "astronaut.jsonl").read_text().splitlines()) == 150
    assert "150 frames, 150 faces, 1 track(s), 0 dropped" in " ".join(result.output.split())


def test_explicit_outputs_only(tmp_path: Path) -> None:
    jsonl, faces = tmp_path / "f.jsonl", tmp_path / "faces.csv"
    args = ["video", str(SAMPLE), "--jsonl", str(jsonl), "--csv", str(faces), "--detect-every", "3"]
    result = CliRunner().invoke(app, [*args, "--smoothing", "0", "--max-misses", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.jsonl", "faces.csv"]
    assert len(list(csv.DictReader(faces.open()))) == 150


def test_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    missing = subprocess.run([*CLI, "video", str(tmp_path / "gone.mp4")], capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"edgeemo: error: {tmp_path / 'gone.mp4'}: video file not found"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    bad = subprocess.run(
        [*CLI, "video", str(text), "--jsonl", str(tmp_path / "f.jsonl")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "notes.mp4: cannot open as a video" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_sigterm_finalises_video_jsonl_and_timeline(tmp_path: Path) -> None:
    out, jsonl, tl = tmp_path / "a.mp4", tmp_path / "f.jsonl", tmp_path / "t.png"
    # dlib-hog with upsampling is slow enough (several frames a second) to be stopped mid-clip.
    args = ["video", str(SAMPLE), "--out", str(out), "--jsonl", str(jsonl), "--timeline", str(tl)]
    args += ["--detector", "dlib-hog", "--detector-option", "upsample=1"]
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        # Outputs are written under temporary names beside the final ones until the run ends.
        partial = list(tmp_path.glob(".f.jsonl.*.tmp"))
        if partial and len(partial[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM: finishing outputs" in stderr
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert 3 <= len(lines) < 150
    assert _frames(out) == len(lines)  # the mp4 was closed properly: playable, every processed frame in it
    assert len(list(csv.DictReader((tmp_path / "t.csv").open()))) == sum(len(d["faces"]) for d in lines)
    assert tl.stat().st_size > 0
    assert "ended: stopped" in " ".join(stdout.split())


def test_show_on_headless_opencv_is_a_clear_error(tmp_path: Path) -> None:
    import cv2

    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        pytest.skip("this OpenCV has a GUI")
    except cv2.error:
        pass
    result = CliRunner().invoke(app, ["video", str(SAMPLE), "--show"])
    assert result.exit_code != 0
    assert "--show needs an OpenCV build with GUI support" in str(result.exception)
