"""Concurrency: several pipelines in threads, one pipeline's classifier shared by threads, `classify --workers N`
and several `classify` processes at once all give the results of one sequential run."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeemo.cli import app
from edgeemo.pipeline import Pipeline
from edgeemo.results import FrameResult
from edgeemo.video.reader import FrameReader

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "astronaut.mp4"
CLI = [sys.executable, "-c", "from edgeemo.cli import main; main()"]
THREADS = 4


@pytest.fixture(scope="module")
def frames(astronaut_bgr: np.ndarray) -> list[np.ndarray]:
    """Real faces: every 15th frame of the sample clip, the astronaut photo and a mirrored copy."""
    with FrameReader(SAMPLE) as r:
        clip = [f.image for f in r if f.index % 15 == 0]
    return [*clip, astronaut_bgr, np.ascontiguousarray(astronaut_bgr[:, ::-1])]


def summary(result: FrameResult) -> list[tuple]:
    return [
        (
            tuple(round(v, 2) for v in (f.face.box.x1, f.face.box.y1, f.face.box.x2, f.face.box.y2)),
            f.prediction.label,
            tuple(p for _, p in f.prediction.probabilities),
        )
        for f in result.faces
    ]


def assert_same(a: list[list[tuple]], b: list[list[tuple]]) -> None:
    assert len(a) == len(b)
    for fa, fb in zip(a, b, strict=True):
        assert len(fa) == len(fb)
        for (box_a, label_a, p_a), (box_b, label_b, p_b) in zip(fa, fb, strict=True):
            assert box_a == box_b and label_a == label_b
            assert p_a == pytest.approx(p_b, abs=1e-5)


def test_several_pipelines_in_threads_equal_one(frames: list[np.ndarray]) -> None:
    with Pipeline() as pipe:
        reference = [summary(pipe.run_image(f)) for f in frames]
    assert sum(len(r) for r in reference) >= len(frames)  # faces were found: the comparison means something

    def work(k: int) -> list[list[tuple]]:
        with Pipeline() as own:
            order = frames[k:] + frames[:k]  # each thread in another order
            out = [summary(own.run_image(f)) for f in order]
            return out[-k:] + out[:-k] if k else out

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))
    for r in results:
        assert_same(r, reference)


def test_one_classifier_shared_by_threads_equals_sequential(astronaut_bgr: np.ndarray) -> None:
    face = astronaut_bgr[45:195, 150:280]
    crops = [np.ascontiguousarray(np.roll(face, k, axis=k % 2)) for k in range(48)]
    with Pipeline(detector=None) as pipe:
        reference = [tuple(p for _, p in pred.probabilities) for pred in pipe.classify_crops(crops)]

        def work(k: int) -> list[tuple]:
            chunk = crops[k::THREADS]
            return [tuple(p for _, p in pred.probabilities) for pred in pipe.classify_crops(chunk)]

        with ThreadPoolExecutor(THREADS) as pool:
            parts = list(pool.map(work, range(THREADS)))
    for k, part in enumerate(parts):
        for got, want in zip(part, reference[k::THREADS], strict=True):
            assert got == pytest.approx(want, abs=1e-5)


@pytest.fixture()
def crops_dir(tmp_path: Path, astronaut_bgr: np.ndarray) -> Path:
    d = tmp_path / "crops"
    d.mkdir()
    gray = cv2.cvtColor(astronaut_bgr[45:195, 150:280], cv2.COLOR_BGR2GRAY)
    for k in range(300):
        crop = np.roll(gray, (k % 11) - 5, axis=k % 2)
        cv2.imwrite(str(d / f"{k}.png"), crop if k % 3 else crop[:, ::-1])
    (d / "bad.jpg").write_text("not an image")
    return d


@pytest.mark.slow
def test_classify_workers_and_parallel_processes_equal_one_worker(tmp_path: Path, crops_dir: Path) -> None:
    def outputs(name: str) -> tuple[bytes, bytes, bytes]:
        base = tmp_path / name
        return (
            (base / "s.csv").read_bytes(),
            (base / "p.csv").read_bytes(),
            (base / "s.errors.csv").read_bytes(),
        )

    def args(name: str, workers: int) -> list[str]:
        base = tmp_path / name
        outs = ["-o", str(base / "s.csv"), "--probs", str(base / "p.csv")]
        return ["classify", str(crops_dir), *outs, "--workers", str(workers), "--batch-size", "16"]

    r = runner.invoke(app, args("one", 1))
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, args("four", 4))
    assert r.exit_code == 0, r.output
    procs = [
        subprocess.Popen([*CLI, *args(f"proc{k}", 2)], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    reference = outputs("one")
    assert reference[0].count(b"\n") == 301 and b"bad.jpg" in reference[2]
    for name in ("four", "proc0", "proc1", "proc2"):
        assert outputs(name) == reference, name  # byte for byte: rows, order, probabilities, errors
