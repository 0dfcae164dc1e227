"""`--va-bars` on `image` and `video`: panels drawn or not, valence/arousal kept in the data either way."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeemo.cli import app

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"


def _frame(path: Path, k: int) -> np.ndarray:
    av = pytest.importorskip("av")
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == k:
                return f.to_ndarray(format="bgr24")
    raise AssertionError(f"{path} has fewer than {k + 1} frames")


def test_video_va_bars_never_and_auto(tmp_path: Path) -> None:
    pytest.importorskip("av")
    frames = {}
    for mode in ("never", "auto"):
        video, jsonl = tmp_path / f"{mode}.mp4", tmp_path / f"{mode}.jsonl"
        args = ["video", str(SAMPLE), "--out", str(video), "--jsonl", str(jsonl), "--va-bars", mode]
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
        assert all(f["valence"] is not None for row in rows for f in row["faces"])  # the data keeps VA
        frames[mode] = _frame(video, 30).astype(float)
    # the panel darkens a block of the frame to 30 %: the whole frame gets visibly darker
    assert frames["never"].mean() - frames["auto"].mean() > 4


def test_image_va_bars_never_draws_no_panel(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    src = tmp_path / "in" / "astronaut.png"
    src.parent.mkdir()
    cv2.imwrite(str(src), astronaut_bgr)
    means = {}
    for mode in ("never", "always"):
        out = tmp_path / mode
        r = CliRunner().invoke(app, ["image", str(src), "--out", str(out), "--va-bars", mode])
        assert r.exit_code == 0, r.output
        means[mode] = cv2.imread(str(out / "astronaut.png")).astype(float).mean()
    assert means["never"] - means["always"] > 4
