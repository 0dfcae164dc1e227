"""Outputs under stress (issue 15 points 4, 6-9; issue 19 point 5): resumes never reuse stale rows, write failures
are one line and lose nothing, clashing outputs are refused first, video outputs are atomic, side files never
follow planted links, permissions follow the umask, Ctrl-C and concurrent runs are handled, names with control
characters stay on one line, and every command creates the folders of its outputs."""

from __future__ import annotations

import csv
import errno
import fcntl
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeemo.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "astronaut.mp4"
CLI = [sys.executable, "-c", "from edgeemo.cli import main; main()"]


def run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """`edgeemo ARGS` in this process, through the real entry point (its error edge and exit codes)."""
    monkeypatch.setattr(sys, "argv", ["edgeemo", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("edgeemo: error:")]


def face_crops(folder: Path, face: np.ndarray, n: int, seed: int) -> Path:
    """``n`` real face crops named 1.png..n.png: the astronaut's face, shifted, flipped and tinted by ``seed``."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(1, n + 1):
        dy, dx = rng.integers(-25, 26, size=2)
        crop = face[60 + dy : 200 + dy, 160 + dx : 290 + dx]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = cv2.convertScaleAbs(crop, alpha=float(rng.uniform(0.6, 1.3)), beta=float(rng.uniform(-30, 30)))
        cv2.imwrite(str(folder / f"{k}.png"), crop)
    return folder


@pytest.fixture(scope="module")
def face(request: pytest.FixtureRequest) -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


# ------------------------------------------------------------------------------------ 4: stale resumes
def test_resume_reruns_another_folder_with_the_same_names(
    tmp_path: Path, face: np.ndarray, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a = face_crops(tmp_path / "a", face, 12, seed=1)
    b = face_crops(tmp_path / "b", face, 12, seed=2)  # same names, other pictures
    out, probs = tmp_path / "s.csv", tmp_path / "p.csv"
    assert run_cli(["classify", str(a), "-o", str(out), "--probs", str(probs)], monkeypatch, capsys)[0] == 0
    code, stdout, err = run_cli(["classify", str(b), "-o", str(out), "--probs", str(probs)], monkeypatch, capsys)
    assert code == 0, err
    assert "(0 new, 12 re-run, 0 already done)" in stdout
    assert "edgeemo: note: 12 re-run: input changed" in err
    fresh_out, fresh_probs = tmp_path / "fresh.csv", tmp_path / "fresh_p.csv"
    assert run_cli(["classify", str(b), "-o", str(fresh_out), "--probs", str(fresh_probs)], monkeypatch, capsys)[0] == 0
    assert out.read_bytes() == fresh_out.read_bytes() and probs.read_bytes() == fresh_probs.read_bytes()

    # One file changed in place: only it is re-run; nothing changed: nothing is.
    cv2.imwrite(str(b / "5.png"), cv2.imread(str(a / "5.png")))
    code, stdout, err = run_cli(["classify", str(b), "-o", str(out)], monkeypatch, capsys)
    assert code == 0 and "(0 new, 1 re-run, 11 already done)" in stdout and "1 re-run: input changed" in err
    code, stdout, err = run_cli(["classify", str(b), "-o", str(out)], monkeypatch, capsys)
    assert code == 0 and "(0 new, 12 already done)" in stdout and "re-run" not in err


def test_resume_reruns_another_precision(
    tmp_path: Path, face: np.ndarray, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a = face_crops(tmp_path / "a", face, 10, seed=3)
    out, probs = tmp_path / "s.csv", tmp_path / "p.csv"
    assert run_cli(["classify", str(a), "-o", str(out), "--probs", str(probs)], monkeypatch, capsys)[0] == 0
    args = ["classify", str(a), "-o", str(out), "--probs", str(probs), "--precision", "int8"]
    code, stdout, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    assert "(0 new, 10 re-run, 0 already done)" in stdout and "10 re-run: model or options changed" in err
    ref = tmp_path / "int8.csv"
    args = ["classify", str(a), "-o", str(tmp_path / "i.csv"), "--probs", str(ref), "--precision", "int8"]
    assert run_cli(args, monkeypatch, capsys)[0] == 0
    assert probs.read_bytes() == ref.read_bytes()  # the INT8 model's numbers, not the FP32 run's


# ------------------------------------------------------------------------------------ 6: write failures
def _fsize_limit(limit: int):  # preexec_fn
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_classify_full_disk_mid_run_is_one_line_and_keeps_the_journal(tmp_path: Path, face: np.ndarray) -> None:
    d = face_crops(tmp_path / "faces", face, 60, seed=4)
    out = tmp_path / "o" / "s.csv"
    journal = out.with_name("s.csv.journal")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [*CLI, "classify", str(d), "-o", str(out), "--batch-size", "8"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=_fsize_limit(3000), timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = error_lines(proc.stderr)
    assert line.startswith(f"edgeemo: error: {journal}: cannot write (File too large)"), line
    assert "the rows journaled before are kept" in line
    assert not out.exists()
    text = journal.read_text()
    kept = text[: text.rfind("\n") + 1].count("\n") - 1  # complete rows; the torn last one is dropped on read
    assert kept >= 8  # the batches journaled before the disk filled up
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"({60 - kept} new, {kept} already done)" in done.stdout and len(rows(out)) == 61


def test_classify_write_failure_at_the_end_keeps_every_result(
    tmp_path: Path, face: np.ndarray, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import edgeemo.io.sinks as sinks

    d = face_crops(tmp_path / "faces", face, 6, seed=5)
    out, probs = tmp_path / "s.csv", tmp_path / "p.csv"
    out.write_text("image_path,emotion\n1.png,sad\n")
    before = out.read_bytes()
    real_replace = os.replace

    def full_disk(src: str, dst: str) -> None:
        if Path(dst) == probs:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(sinks.os, "replace", full_disk)
    args = ["classify", str(d), "-o", str(out), "--probs", str(probs)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert line.startswith(f"edgeemo: error: {probs}: cannot write (No space left on device)")
    assert "all 6 results are kept in" in line
    assert not probs.exists() and not list(tmp_path.glob(".*.tmp"))
    assert len(rows(out.with_name("s.csv.journal"))) == 7  # header + every result
    assert out.read_bytes() != before  # the submission itself was written before the failure
    monkeypatch.setattr(sinks.os, "replace", real_replace)
    code, stdout, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0 and "(0 new, 6 already done)" in stdout and len(rows(probs)) == 7


def test_unwritable_output_places_are_refused_before_work(
    tmp_path: Path, face: np.ndarray, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = face_crops(tmp_path / "faces", face, 2, seed=6)
    for args in (
        ["classify", str(d), "-o", "/proc/edgeemo-test/s.csv"],
        ["classify", str(d), "-o", str(tmp_path / "s.csv"), "--probs", "/proc/self/p.csv"],
        ["image", str(d / "1.png"), "--out", "/proc/edgeemo-test"],
        ["video", str(SAMPLE), "--jsonl", "/proc/self/f.jsonl"],
    ):
        code, stdout, err = run_cli(args, monkeypatch, capsys)
        assert code == 2, (args, err)
        assert len(error_lines(err)) == 1 and "/proc/" in err and "Traceback" not in err, err
        assert stdout == ""
    assert not (tmp_path / "s.csv").exists()


def test_image_goes_on_after_a_failed_output_and_stops_cleanly_on_a_full_disk(
    tmp_path: Path, face: np.ndarray, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import edgeemo.io.sinks as sinks

    d = face_crops(tmp_path / "faces", face, 4, seed=7)
    out = tmp_path / "out"
    (out / "2.png").mkdir(parents=True)  # a folder where the output of 2.png goes: only that output fails
    args = ["image", str(d), "--out", str(out), "-d", "blazeface"]
    code, stdout, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert line.startswith(f"edgeemo: error: {out / '2.png'}: cannot write")
    assert {p.name for p in out.iterdir()} == {"1.png", "2.png", "3.png", "4.png"}
    assert len(stdout.splitlines()) == 3  # 1, 3 and 4 were processed

    fresh = tmp_path / "fresh"
    real_fsync, calls = os.fsync, []

    def fills_up(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(sinks.os, "fsync", fills_up)
    code, stdout, err = run_cli(["image", str(d), "--out", str(fresh), "-d", "blazeface"], monkeypatch, capsys)
    assert code == 2
    assert error_lines(err) == [
        f"edgeemo: error: {fresh / '3.png'}: cannot write (No space left on device)",
        f"edgeemo: error: stopped; 1 inputs not done: {d / '4.png'}",
    ]
    assert sorted(p.name for p in fresh.iterdir()) == ["1.png", "2.png"]  # written ones kept, no temporary
    assert "4 of 4 inputs failed" not in err and "2 of 4 inputs failed" in err


# ------------------------------------------------------------------------------------ 7: output collisions
@pytest.mark.parametrize(
    "extra",
    [
        ["--probs", "s.csv"],
        ["--probs", "sub/../s.csv"],
        ["--probs", "link.csv"],
        ["--probs", "s.csv.journal"],
    ],
)
def test_classify_outputs_that_are_one_file_are_refused(
    extra: list[str],
    tmp_path: Path,
    face: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    d = face_crops(tmp_path / "faces", face, 2, seed=8)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    Path("s.csv").write_text("image_path,emotion\n1.png,sad\n")
    Path("link.csv").symlink_to("s.csv")
    code, stdout, err = run_cli(["classify", str(d), "--out", "s.csv", *extra], monkeypatch, capsys)
    assert code == 2 and stdout == ""
    (line,) = err.strip().splitlines()
    assert "are the same file" in line and str(tmp_path / "s.csv") in line, line
    assert Path("s.csv").read_text() == "image_path,emotion\n1.png,sad\n"
    assert not Path("s.csv.journal").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--csv", "r.csv", "--timeline", "r.png"],  # the timeline writes r.csv beside r.png
        ["--jsonl", "a.out", "--csv", "./a.out"],
        ["--out", "v.mp4", "--timeline", "t.png", "--circumplex", "t.png"],
    ],
)
def test_video_outputs_that_are_one_file_are_refused_before_the_video_is_read(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    code, _, err = run_cli(["video", str(SAMPLE), *args], monkeypatch, capsys)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "are the same file" in line
    assert list(tmp_path.iterdir()) == []
    assert time.perf_counter() - t0 < 20  # refused before 150 frames are processed (they take longer)


def test_video_output_formats_are_refused_before_the_video_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for args, named in (
        (["--out", "o.txt", "--jsonl", "f.jsonl"], "o.txt: cannot write a video as '.txt'"),
        (["--timeline", "t.xyz", "--jsonl", "f.jsonl"], "t.xyz: cannot draw a plot as '.xyz'"),
        (["--circumplex", "c", "--jsonl", "f.jsonl"], "c: cannot draw a plot as 'a file without suffix'"),
    ):
        code, _, err = run_cli(["video", str(SAMPLE), *args], monkeypatch, capsys)
        assert code == 2 and err.startswith(f"edgeemo: error: {named} (use .") and err.count("\n") == 1
        assert not Path("f.jsonl").exists()  # nothing was processed


# ------------------------------------------------------------------------------------ 8: atomic video outputs
def test_video_outputs_appear_only_when_complete(tmp_path: Path) -> None:
    from edgeemo.pipeline import Pipeline
    from edgeemo.render.annotate import annotate
    from edgeemo.video.run import VideoOutputs, VideoRun

    outs = VideoOutputs(
        video=tmp_path / "v.mp4", jsonl=tmp_path / "f.jsonl", csv=tmp_path / "f.csv", timeline=tmp_path / "t.png"
    )
    for p in outs.paths():
        p.write_text("earlier run\n")
    seen: list[set[str]] = []

    def progress(done: int, _elapsed: float) -> None:
        if done in (20, 100):
            seen.append({p.name for p in outs.paths() if p.read_text(errors="replace") != "earlier run\n"})

    with Pipeline(detector="blazeface") as pipe:
        summary = VideoRun(pipe, SAMPLE, outs, annotate=annotate, progress=progress).run()
    assert seen == [set(), set()]  # mid-run every final name still holds the earlier run's file
    assert summary.frames == 150 and summary.notes == ()
    assert len((tmp_path / "f.jsonl").read_text().splitlines()) == 150
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv", "f.jsonl", "t.csv", "t.png", "v.mp4"]


def test_a_video_run_stopped_early_says_its_outputs_are_partial(tmp_path: Path) -> None:
    from edgeemo.pipeline import Pipeline
    from edgeemo.video.run import VideoOutputs, VideoRun

    outs = VideoOutputs(jsonl=tmp_path / "f.jsonl", timeline=tmp_path / "t.png")
    with Pipeline(detector="blazeface") as pipe:
        run = VideoRun(pipe, SAMPLE, outs, progress=lambda done, _t: run.stop() if done == 30 else None)
        summary = run.run()
    assert summary.interrupted
    (note,) = [n for n in summary.notes if n.startswith("stopped early")]
    assert f"cover the first {summary.frames} frames only (partial)" in note
    assert str(tmp_path / "f.jsonl") in note and str(tmp_path / "t.png") in note
    assert len((tmp_path / "f.jsonl").read_text().splitlines()) == summary.frames
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.jsonl", "t.csv", "t.png"]


def test_a_failed_timeline_keeps_the_earlier_plot_and_says_what_was_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    from edgeemo.errors import OutputError
    from edgeemo.pipeline import Pipeline
    from edgeemo.video.run import VideoOutputs, VideoRun

    png = tmp_path / "t.png"
    png.write_bytes(b"earlier plot")
    real_savefig = Figure.savefig

    def disk_full(self: Figure, fname: object, **kw: object) -> None:
        real_savefig(self, fname, **kw)  # part of the file is written, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", disk_full)
    outs = VideoOutputs(jsonl=tmp_path / "f.jsonl", timeline=png)
    with Pipeline(detector="blazeface") as pipe, pytest.raises(OutputError) as err:
        VideoRun(pipe, SAMPLE, outs).run()
    message = str(err.value)
    assert message.startswith(f"{png}: cannot write (No space left on device)")
    assert f"kept (partial: 150 frames processed): {tmp_path / 'f.jsonl'}, {tmp_path / 't.csv'}" in message
    assert "not written (an earlier file of the same name is kept): timeline" in message
    assert png.read_bytes() == b"earlier plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.jsonl", "t.csv", "t.png"]  # no temporary left


def test_a_video_without_frames_leaves_earlier_outputs_alone(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    from edgeemo.errors import DecodeError
    from edgeemo.pipeline import Pipeline
    from edgeemo.video.run import VideoOutputs, VideoRun

    empty = tmp_path / "zero_frames.mp4"
    with av.open(str(empty), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()  # header and trailer, no frame
    outs = VideoOutputs(jsonl=tmp_path / "f.jsonl", csv=tmp_path / "f.csv", timeline=tmp_path / "t.png")
    for p in outs.paths():
        p.write_text("earlier run\n")
    with Pipeline(detector="blazeface") as pipe, pytest.raises(DecodeError):
        VideoRun(pipe, empty, outs).run()
    assert {p.read_text() for p in outs.paths()} == {"earlier run\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv", "f.jsonl", "t.csv", "t.png", "zero_frames.mp4"]


# ------------------------------------------------------------------------------------ 9: side files, modes, signals
def test_planted_links_under_side_file_names_are_never_written_through(
    tmp_path: Path, face: np.ndarray, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    d = face_crops(tmp_path / "faces", face, 3, seed=9)
    out = tmp_path / "o" / "s.csv"
    out.parent.mkdir()
    (out.parent / "s.csv.partial").symlink_to(victim)  # the journal's earlier name
    for name in ("s.csv.journal", "s.csv.lock"):
        (out.parent / name).symlink_to(victim)
        code, _, err = run_cli(["classify", str(d), "-o", str(out)], monkeypatch, capsys)
        assert code == 2 and err == f"edgeemo: error: {out.parent / name}: is a symbolic link; edgeemo does not " \
            "write through links under the names of its own files (remove it)\n"
        (out.parent / name).unlink()
    assert run_cli(["classify", str(d), "-o", str(out)], monkeypatch, capsys)[0] == 0
    assert victim.read_text() == "precious\n" and (out.parent / "s.csv.partial").is_symlink()

    v = tmp_path / "v"
    v.mkdir()
    for name in ("o.part.mp4", "t.csv.part", "f.jsonl.part"):
        (v / name).symlink_to(victim)
    args = ["video", str(SAMPLE), "--out", str(v / "o.mp4"), "--timeline", str(v / "t.png")]
    args += ["--jsonl", str(v / "f.jsonl")]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    assert victim.read_text() == "precious\n"
    assert all((v / n).is_symlink() for n in ("o.part.mp4", "t.csv.part", "f.jsonl.part"))


def test_outputs_get_permissions_from_the_umask(
    tmp_path: Path, face: np.ndarray, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = face_crops(tmp_path / "faces", face, 2, seed=10)
    old = os.umask(0o022)
    try:
        out = tmp_path / "s.csv"
        assert run_cli(["classify", str(d), "-o", str(out)], monkeypatch, capsys)[0] == 0
        assert run_cli(["image", str(d), "--out", str(tmp_path / "img"), "--json"], monkeypatch, capsys)[0] == 0
        os.umask(0o077)
        assert run_cli(["classify", str(d), "-o", str(tmp_path / "private.csv")], monkeypatch, capsys)[0] == 0
    finally:
        os.umask(old)
    assert (out.stat().st_mode & 0o777) == 0o644
    assert (out.with_name("s.csv.journal").stat().st_mode & 0o777) == 0o644
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "img").iterdir()} == {0o644}
    assert ((tmp_path / "private.csv").stat().st_mode & 0o777) == 0o600


@pytest.mark.slow
def test_ctrl_c_on_classify_says_interrupted_and_keeps_the_journal(tmp_path: Path, face: np.ndarray) -> None:
    d = tmp_path / "many"
    d.mkdir()
    crop = cv2.imencode(".png", face[60:200, 160:290])[1].tobytes()
    for k in range(3000):
        (d / f"{k}.png").write_bytes(crop)
    out = tmp_path / "s.csv"
    journal = tmp_path / "s.csv.journal"
    proc = subprocess.Popen(
        [*CLI, "classify", str(d), "-o", str(out), "--batch-size", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, even under a job
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(j.exists() and j.read_text().count("\n") >= 40 for j in (journal, out.with_name("s.csv.partial"))):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "edgeemo: interrupted" in err.splitlines(), err
    assert not out.exists() and len(rows(journal)) > 40 and not (tmp_path / "s.csv.lock").exists()


def test_a_second_run_on_the_same_out_is_refused(
    tmp_path: Path, face: np.ndarray, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = face_crops(tmp_path / "faces", face, 2, seed=11)
    out = tmp_path / "s.csv"
    with open(tmp_path / "s.csv.lock", "w") as held:  # as a running classify holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, err = run_cli(["classify", str(d), "-o", str(out)], monkeypatch, capsys)
    assert code == 2
    assert err.strip() == (
        f"edgeemo: error: {out}: another edgeemo run is writing it (it holds {out}.lock); "
        "wait for it to finish or choose another output"
    )
    assert not out.exists() and not (tmp_path / "s.csv.journal").exists()
    code, _, _ = run_cli(["classify", str(d), "-o", str(out)], monkeypatch, capsys)  # released: runs
    assert code == 0 and out.exists() and not (tmp_path / "s.csv.lock").exists()


def test_control_characters_in_names_stay_on_one_line(
    tmp_path: Path, face: np.ndarray, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "in"
    d.mkdir()
    cv2.imwrite(str(d / "good.png"), face[60:200, 160:290])
    (d / "bad\nname.png").write_bytes((d / "good.png").read_bytes())
    (d / "worse\x1b[31m.png").write_text("not an image")
    code, stdout, err = run_cli(["image", str(d), "-d", "blazeface"], monkeypatch, capsys)
    assert code == 2
    lines = stdout.splitlines()
    assert len(lines) == 2 and any(line.startswith(f"{d}/bad\\nname.png: ") for line in lines), lines
    (line,) = error_lines(err)
    assert line.startswith(f"edgeemo: error: {d}/worse\\x1b[31m.png: ") and "\x1b" not in err


# ------------------------------------------------------------------------------------ 19.5: missing folders
def test_every_command_creates_the_folders_of_its_outputs(
    tmp_path: Path, face: np.ndarray, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = face_crops(tmp_path / "faces", face, 2, seed=12)
    base = tmp_path / "new" / "deeper"
    assert run_cli(["classify", str(d), "-o", str(base / "c" / "s.csv"), "--probs", str(base / "p" / "p.csv")],
                   monkeypatch, capsys)[0] == 0  # fmt: skip
    assert run_cli(["image", str(d), "--out", str(base / "i"), "--json"], monkeypatch, capsys)[0] == 0
    args = ["video", str(SAMPLE), "--out", str(base / "v" / "o.mp4"), "--timeline", str(base / "t" / "t.png")]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    results = REPO / "benchmarks" / "results" / "full.json"
    assert run_cli(["bench", "report", str(results), "--out", str(base / "b" / "t.md")], monkeypatch, capsys)[0] == 0
    for p in ("c/s.csv", "p/p.csv", "i/1.png", "i/1.json", "v/o.mp4", "t/t.png", "t/t.csv", "b/t.md"):
        assert (base / p).is_file(), p
