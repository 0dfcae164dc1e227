"""`--engine ray` on a Ray started in this process (``ray.init(num_cpus=2)``, no external service): the same bytes
as a local run, exactly one row per input when a worker is killed, the same JSON lines per video."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeemo.cli import app
from edgeemo.errors import InputError

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
OUTPUTS = ("s.csv", "p.csv", "s.errors.csv", "s.csv.journal")


@pytest.fixture(scope="module")
def ray_local() -> Any:
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def classify(folder: Path, out_dir: Path, *extra: str) -> tuple[dict[str, bytes | None], str]:
    """Run `classify` into ``out_dir``; the bytes of every output (None where absent) and stdout."""
    out_dir.mkdir()
    args = ["classify", str(folder), "-o", str(out_dir / "s.csv"), "--probs", str(out_dir / "p.csv"), *extra]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return {n: (out_dir / n).read_bytes() if (out_dir / n).exists() else None for n in OUTPUTS}, r.stdout


def crops(folder: Path, face: np.ndarray, n: int) -> Path:
    """``n`` real face crops (the astronaut, shifted and mirrored), an empty file and a non-image."""
    folder.mkdir()
    for k in range(1, n + 1):
        crop = face[45 + k % 40 : 195 + k % 40, 150 + k % 50 : 280 + k % 50]
        cv2.imwrite(str(folder / f"{k}.png"), crop[:, ::-1] if k % 3 == 0 else crop)
    (folder / f"{n + 1}.jpg").write_bytes(b"")
    (folder / f"{n + 2}.jpg").write_text("not an image\n")
    return folder


def test_ray_reports_bad_files_as_local_does_and_resumes_locally(
    ray_local: Any, tmp_path: Path, astronaut_bgr: np.ndarray
) -> None:
    folder = crops(tmp_path / "faces", astronaut_bgr, 30)
    local, _ = classify(folder, tmp_path / "local", "--batch-size", "7")
    remote, _ = classify(folder, tmp_path / "ray", "--batch-size", "7", "--engine", "ray", "--actors", "2")
    assert remote == local
    assert local["s.errors.csv"] is not None and b"31.jpg,empty file (0 bytes)" in local["s.errors.csv"]
    assert local["s.csv"] is not None and local["s.csv"].count(b",happy\n") == 30
    # The Ray run's journal is a local run's: a local re-run reuses every row.
    again = runner.invoke(app, ["classify", str(folder), "-o", str(tmp_path / "ray" / "s.csv")])
    assert again.exit_code == 0 and "(0 new, 30 already done)" in again.stdout, again.output


def test_a_model_that_does_not_load_is_the_local_error_on_ray(
    ray_local: Any, tmp_path: Path, astronaut_bgr: np.ndarray
) -> None:
    folder = crops(tmp_path / "faces", astronaut_bgr, 2)
    results = []
    for engine in ("local", "ray"):
        out, model = str(tmp_path / f"{engine}.csv"), str(tmp_path / "none.onnx")
        r = runner.invoke(app, ["classify", str(folder), "-o", out, "-m", model, "--engine", engine])
        results.append((type(r.exception).__name__, str(r.exception)))
    assert results[0] == results[1] and results[0][0] == "ModelError", results


def test_a_gpu_device_on_a_cluster_without_gpus_is_refused(
    ray_local: Any, tmp_path: Path, astronaut_bgr: np.ndarray
) -> None:
    folder = crops(tmp_path / "faces", astronaut_bgr, 2)
    r = runner.invoke(
        app, ["classify", str(folder), "-o", str(tmp_path / "s.csv"), "--engine", "ray", "--device", "cuda"]
    )
    assert r.exit_code != 0 and "the Ray cluster has no GPU" in str(r.exception), r.output
    assert not (tmp_path / "s.csv").exists()


def test_a_video_that_fails_on_its_worker_is_a_row_of_the_table(ray_local: Any, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    r = runner.invoke(app, ["video", str(bad), "--engine", "ray", "--jsonl", str(tmp_path / "b.jsonl")])
    assert r.exit_code == 2, r.output
    assert "1 source(s) on Ray" in r.stdout  # the table, with the error in the source's row
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"edgeemo: error: {bad}: "), line
    assert not (tmp_path / "b.jsonl").exists()


def test_publictest_on_ray_is_byte_identical_to_local(ray_local: Any, tmp_path: Path, fer_publictest: Path) -> None:
    local, out = classify(fer_publictest, tmp_path / "local", "-r", "--batch-size", "128")
    remote, ray_out = classify(fer_publictest, tmp_path / "ray", "-r", "--batch-size", "128", "--engine", "ray")
    assert "3589 rows (3589 new, 0 already done)" in out and "3589 rows (3589 new" in ray_out
    assert local["s.errors.csv"] is None and remote["s.errors.csv"] is None
    assert remote == local


@pytest.mark.slow
def test_a_killed_worker_still_gives_one_row_per_input(
    ray_local: Any, tmp_path: Path, astronaut_bgr: np.ndarray
) -> None:
    from edgeemo.batch import BatchProgress, ClassifyOptions, classify_folder
    from edgeemo.distributed import RayExecutor

    folder = crops(tmp_path / "faces", astronaut_bgr, 400)
    local, _ = classify(folder, tmp_path / "local", "--batch-size", "8")
    actors = ray_local._private.state.actors  # the GCS actor table: pid and restarts of every actor
    before = set(actors())
    killed: list[str] = []

    def kill_one(p: BatchProgress) -> None:
        if p.faces and not killed:  # the first batch is back: the others are running or queued on the actors
            mine = {k: v for k, v in actors().items() if k not in before and v["State"] == "ALIVE"}
            actor_id, info = sorted(mine.items())[0]
            os.kill(int(info["Pid"]), signal.SIGKILL)
            killed.append(actor_id)

    out = tmp_path / "ray" / "s.csv"
    options = ClassifyOptions(probs=out.with_name("p.csv"), batch_size=8)
    summary = classify_folder(folder, out, options, executor=RayExecutor(actors=2), on_progress=kill_one)
    assert killed and actors()[killed[0]]["NumRestarts"] >= 1  # the worker died and its actor came back
    assert summary.rows == 400 and summary.new == 400 and summary.errors == 2
    rows = out.read_text().splitlines()
    assert len(rows) == 401 and len({r.split(",")[0] for r in rows}) == 401  # exactly one row per input
    assert {n: (out.parent / n).read_bytes() if (out.parent / n).exists() else None for n in OUTPUTS} == local


@pytest.mark.slow
def test_two_videos_on_ray_give_the_jsonl_of_two_local_runs(ray_local: Any, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    first = REPO / "samples" / "astronaut.mp4"
    second = tmp_path / "mirrored.mp4"  # another video: the sample's first 40 frames, mirrored
    with av.open(str(first)) as src:
        rate = src.streams.video[0].average_rate
        frames = [f.to_ndarray(format="bgr24")[:, ::-1].copy() for _, f in zip(range(40), src.decode(video=0))]
    with av.open(str(second), "w") as dst:
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for img in frames:
            dst.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        dst.mux(stream.encode())
    for video in (first, second):
        r = runner.invoke(app, ["video", str(video), "--jsonl", str(tmp_path / f"{video.stem}.local.jsonl")])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["video", str(first), str(second), "--engine", "ray", "--out-dir", str(tmp_path / "ray")])
    assert r.exit_code == 0, r.output
    assert "2 source(s) on Ray" in r.stdout
    for video in (first, second):
        local = (tmp_path / f"{video.stem}.local.jsonl").read_bytes()
        assert local.count(b"\n") == (150 if video == first else 40)
        assert (tmp_path / "ray" / f"{video.stem}.jsonl").read_bytes() == local
        assert (tmp_path / "ray" / f"{video.stem}.annotated.mp4").stat().st_size > 0


def test_nothing_imports_ray_unless_the_engine_is_asked_for(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    folder = crops(tmp_path / "faces", astronaut_bgr, 3)
    code = (
        "import sys; import edgeemo, edgeemo.batch, edgeemo.distributed, edgeemo.cli.classify_cmd, "
        "edgeemo.cli.video_cmd; from edgeemo.cli import main\n"
        f"sys.argv = ['edgeemo', 'classify', {str(folder)!r}, '-o', {str(tmp_path / 's.csv')!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\nprint('no ray')"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "no ray" in r.stdout, r.stderr
    # Without Ray installed, asking for it is a one-line error naming the extra (exit code 5).
    hide = "import sys; sys.modules['ray'] = None; from edgeemo.cli import main; main()"
    cmd = [sys.executable, "-c", hide, "classify", str(folder), "-o", str(tmp_path / "r.csv"), "--engine", "ray"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 5 and "pip install 'edgeemo[ray]'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_video_sources_expand_from_folders_and_lists(tmp_path: Path) -> None:
    from edgeemo.distributed import expand_sources

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("10.mp4", "2.mov", "notes.txt"):
        shutil.copy(REPO / "samples" / "astronaut.mp4", videos / name)
    listing = tmp_path / "sources.txt"
    listing.write_text("# interviews\nvideos/2.mov\n\nrtsp://cam/1\n0\n")
    got = expand_sources([str(videos), str(listing), "x.mp4"])
    assert got == [str(videos / "2.mov"), str(videos / "10.mp4"), str(tmp_path / "videos/2.mov"), "rtsp://cam/1", "0",
                   "x.mp4"]  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("classify", "DIR", "--actors", "2"),
        ("classify", "DIR", "--address", "auto"),
        ("classify", "DIR", "--engine", "ray", "--workers", "2"),
        ("video", "--address", "auto"),
    ],
)
def test_scale_out_options_of_the_other_engine_are_refused_before_work(args: tuple[str, ...], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((48, 48), 128, np.uint8))
    argv = [str(folder) if a == "DIR" else a for a in args]
    out = tmp_path / "out" / ("submission.csv" if args[0] == "classify" else "")
    result = runner.invoke(app, [*argv, "--out" if args[0] == "classify" else "--out-dir", str(out)])
    assert isinstance(result.exception, InputError), result.output  # exit 2 at the CLI's edge
    assert "for --engine" in str(result.exception)
    assert not (tmp_path / "out").exists()  # refused before any output was prepared
