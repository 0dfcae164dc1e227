"""`edgeemo classify`: the Kaggle submission generator — accuracy, order, resume, workers, bad files."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeemo.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture()
def crops_dir(tmp_path: Path, astronaut_bgr: np.ndarray) -> Path:
    """24 real face crops of the astronaut (shifted windows, some mirrored) named 1..24, two bad files, a sub-folder."""
    d = tmp_path / "test_kaggle"
    d.mkdir()
    for k in range(1, 25):
        x, y = 150 + k, 45 + k  # every window holds the whole face (about x 175-272, y 70-172)
        crop = astronaut_bgr[y : y + 150, x : x + 130]
        if k % 3 == 0:
            crop = crop[:, ::-1]
        if k % 4 == 0:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(d / f"{k}.png"), crop)
    (d / "25.jpg").write_bytes(b"")
    (d / "26.jpg").write_text("not an image\n")
    (d / "labels.csv").write_text("ignored,by,extension\n")
    (d / "sub").mkdir()
    cv2.imwrite(str(d / "sub" / "1.png"), astronaut_bgr[60:200, 160:290])
    return d


def test_submission_order_errors_and_probabilities(tmp_path: Path, crops_dir: Path) -> None:
    out, probs = tmp_path / "submission.csv", tmp_path / "probs.csv"
    r = runner.invoke(app, ["classify", str(crops_dir), "--out", str(out), "--probs", str(probs), "--batch-size", "5"])
    assert r.exit_code == 0, r.output
    rows = read_rows(out)
    assert rows[0] == ["image_path", "emotion"]
    assert [row[0] for row in rows[1:]] == [f"{k}.png" for k in range(1, 25)]  # natural order, no sub-folder
    assert {row[1] for row in rows[1:]} == {"happy"}  # the astronaut smiles in every crop
    errors = read_rows(tmp_path / "submission.errors.csv")
    assert errors[0] == ["image_path", "reason"]
    assert errors[1] == ["25.jpg", "empty file (0 bytes)"]
    assert errors[2][0] == "26.jpg" and errors[2][1].startswith("not an image")
    p = read_rows(probs)
    assert p[0] == ["image_path", "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert [row[0] for row in p[1:]] == [row[0] for row in rows[1:]]
    assert all(abs(sum(map(float, row[1:])) - 1) < 1e-4 for row in p[1:])
    journal = read_rows(tmp_path / "submission.csv.journal")  # kept: what each row was computed from
    assert journal[0][:4] == ["image_path", "input_sha256", "run_key", "emotion"]
    assert [row[0] for row in journal[1:]] == [row[0] for row in rows[1:]]
    assert "2 files could not be read" in r.stderr

    rec = tmp_path / "rec.csv"
    assert runner.invoke(app, ["classify", str(crops_dir), "--out", str(rec), "-r"]).exit_code == 0
    names = [row[0] for row in read_rows(rec)[1:]]
    assert names[-1] == "sub/1.png" and len(names) == 25


def test_resume_skips_done_rows_without_duplicates(tmp_path: Path, crops_dir: Path) -> None:
    out = tmp_path / "submission.csv"
    assert runner.invoke(app, ["classify", str(crops_dir), "--out", str(out)]).exit_code == 0
    rows = read_rows(out)
    # Keep the rows of 1..10 with a label the model would not give (proof they are not recomputed), drop the rest;
    # the journal, which records what each row was computed from, is what a resumed run trusts.
    kept = [rows[0]] + [[name, "sad"] for name, _ in rows[1:11]]
    journal = tmp_path / "submission.csv.journal"
    records = read_rows(journal)
    with open(journal, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([records[0]] + [[*r[:3], "sad", *r[4:]] for r in records[1:11]])
    with open(out, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(kept)
    r = runner.invoke(app, ["classify", str(crops_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    again = read_rows(out)
    assert len(again) == len(rows) and len({row[0] for row in again}) == len(again)
    assert again[1:11] == kept[1:]
    assert again[11:] == rows[11:]
    assert "(14 new, 10 already done)" in r.stdout
    fresh = runner.invoke(app, ["classify", str(crops_dir), "--out", str(out), "--fresh"])
    assert fresh.exit_code == 0 and read_rows(out) == rows


def test_journal_of_a_killed_run_is_merged(tmp_path: Path, crops_dir: Path) -> None:
    """A journal as a killed run leaves it (last line torn) is read back; the torn row is recomputed."""
    out = tmp_path / "submission.csv"
    assert (
        runner.invoke(
            app, ["classify", str(crops_dir), "--out", str(out), "--probs", str(tmp_path / "p.csv")]
        ).exit_code
        == 0
    )
    full = read_rows(out)
    journal = tmp_path / "submission.csv.journal"
    records = {r[0]: r for r in read_rows(journal)}
    header = ["image_path", "input_sha256", "run_key", "emotion", "angry", "disgust", "fear", "happy", "sad"]
    assert records["image_path"] == [*header, "surprise", "neutral"]
    lines = [",".join(records["image_path"])]
    lines += [",".join([*records[k][:3], "fear", "0", "0", "1", "0", "0", "0", "0"]) for k in ("3.png", "1.png")]
    lines += [",".join(records["2.png"][:3]) + ",fe"]
    journal.write_text("\n".join(lines))  # "2.png" was being written when the process died
    out.unlink()
    r = runner.invoke(app, ["classify", str(crops_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = read_rows(out)
    assert rows[1] == ["1.png", "fear"] and rows[3] == ["3.png", "fear"]  # taken from the journal
    assert rows[2] == full[2]  # torn row recomputed
    assert len(rows) == len(full) and len(read_rows(journal)) == len(full)  # one record per row, none torn


def test_workers_give_identical_results(tmp_path: Path, crops_dir: Path) -> None:
    outs = []
    for workers in (1, 3):
        out, probs = tmp_path / f"s{workers}.csv", tmp_path / f"p{workers}.csv"
        args = ["classify", str(crops_dir), "-o", str(out), "--probs", str(probs), "--batch-size", "4"]
        r = runner.invoke(app, [*args, "--workers", str(workers)])
        assert r.exit_code == 0, r.output
        outs.append((out.read_bytes(), probs.read_bytes()))
    assert outs[0] == outs[1]


def test_foreign_output_is_refused(tmp_path: Path, crops_dir: Path) -> None:
    out = tmp_path / "submission.csv"
    out.write_text("id,prediction\n1,2\n")
    r = runner.invoke(app, ["classify", str(crops_dir), "--out", str(out)])
    assert r.exit_code != 0 and "use --fresh" in str(r.exception)
    assert out.read_text() == "id,prediction\n1,2\n"


def test_detect_mode_classifies_the_face_in_full_photos(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    d = tmp_path / "photos"
    d.mkdir()
    cv2.imwrite(str(d / "astronaut.png"), astronaut_bgr)
    cv2.imwrite(str(d / "wall.png"), np.full((200, 200, 3), 90, np.uint8))
    for det in ("blazeface", "dlib-hog"):
        r = runner.invoke(app, ["classify", str(d), "-o", str(tmp_path / "s.csv"), "--detect", "-d", det, "--fresh"])
        if r.exit_code == 0:
            break
    else:
        pytest.skip("no usable detector")
    assert read_rows(tmp_path / "s.csv")[1] == ["astronaut.png", "happy"]
    assert "no face found in 1 images" in r.stderr


@pytest.mark.slow
def test_kill_9_loses_at_most_the_batch_in_flight(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    d = tmp_path / "many"
    d.mkdir()
    crop = cv2.imencode(".png", astronaut_bgr[60:200, 160:290])[1].tobytes()
    for k in range(600):
        (d / f"{k}.png").write_bytes(crop)
    out = tmp_path / "submission.csv"
    journal = tmp_path / "submission.csv.journal"
    cmd = [
        sys.executable,
        "-c",
        "from edgeemo.cli import main; main()",
        "classify",
        str(d),
        "-o",
        str(out),
        "--batch-size",
        "8",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not journal.exists() or journal.read_text().count("\n") < 20):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed"
    journaled = journal.read_text().count("\n") - 1
    assert journaled >= 19  # rows of finished batches survive the kill
    r = runner.invoke(app, ["classify", str(d), "-o", str(out)])
    assert r.exit_code == 0, r.output
    rows = read_rows(out)
    assert len(rows) == 601 and len({row[0] for row in rows}) == 601
    assert f"({600 - journaled} new, {journaled} already done)" in r.stdout


@pytest.mark.slow
def test_fer_publictest_accuracy(tmp_path: Path, fer_publictest: Path) -> None:
    """FP32 accuracy of mini-Xception on FER2013 PublicTest with the float32 resize: 0.6528 (0.6523 with the old
    uint8 resize, benchmarks/results/aarch64/resize_ab.json)."""
    out = tmp_path / "submission.csv"
    r = runner.invoke(app, ["classify", str(fer_publictest), "-r", "-o", str(out), "--batch-size", "256"])
    assert r.exit_code == 0, r.output
    with open(fer_publictest / "labels.csv", newline="") as f:
        truth = {row["path"]: row["emotion"] for row in csv.DictReader(f)}
    with open(out, newline="") as f:
        pred = {row["image_path"]: row["emotion"] for row in csv.DictReader(f)}
    assert set(pred) == set(truth) and len(truth) == 3589
    accuracy = sum(pred[k] == v for k, v in truth.items()) / len(truth)
    assert round(accuracy, 4) == 0.6528
