"""Bad and odd image files through `classify` and `image`: the run finishes, every bad file is reported with its
reason, every good result is written, a `kill -9` run resumes without duplicates or loss, outputs are atomic.

The big folder holds 10,000 inputs (500 bad, 5%) of small real face crops; it is generated once per session.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeemo.cli import app
from edgeemo.errors import DecodeError
from edgeemo.io import images
from edgeemo.io.images import read_image
from edgeemo.pipeline import Pipeline

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from edgeemo.cli import main; main()"]
BIG_N = 10_000
BAD_EVERY = 20  # 1 in 20 = 5% bad


# ---------------------------------------------------------------------------------------------- builders
def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = 20000) -> bytes:
    """A valid 1-bit grayscale PNG of side x side zeros: ~50 KB on disk, side² bytes once decoded to 8 bits."""
    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png_header_only(side: int = 20000) -> bytes:
    """A PNG that declares side x side RGB pixels and holds no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def tiff_bomb(side: int = 20000) -> bytes:
    """A valid deflate-compressed 1-bit TIFF of side x side zeros (tens of KB; side² bytes decoded)."""
    row = b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    strip = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, side),
        (257, 4, side),
        (258, 3, 1),
        (259, 3, 8),  # deflate
        (262, 3, 1),  # black is zero
        (273, 4, 0),  # strip offset, patched below
        (277, 3, 1),
        (278, 4, side),
        (279, 4, len(strip)),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    strip_offset = 8 + ifd_size
    out = io.BytesIO()
    out.write(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, value in entries:
        value = strip_offset if tag == 273 else value
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        out.write(struct.pack("<HHI", tag, kind, 1) + packed)
    out.write(struct.pack("<I", 0) + strip)
    return out.getvalue()


def encode(ext: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, image, params or [])
    assert ok
    return buf.tobytes()


def pil_bytes(image_bgr: np.ndarray, mode: str, fmt: str, **kw: object) -> bytes:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1])).convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def exif_rotated_jpeg(image_bgr: np.ndarray) -> bytes:
    """The face stored turned 90° clockwise with EXIF orientation 8 (display: turn back counter-clockwise)."""
    from PIL import Image

    stored = cv2.rotate(image_bgr, cv2.ROTATE_90_CLOCKWISE)
    im = Image.fromarray(np.ascontiguousarray(stored[:, :, ::-1]))
    exif = Image.Exif()
    exif[0x0112] = 8
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.fixture(scope="session")
def face(astronaut_bgr: np.ndarray) -> np.ndarray:
    """The astronaut's face with a little margin: a real face crop (130x150)."""
    return np.ascontiguousarray(astronaut_bgr[45:195, 150:280])


def good_files(face: np.ndarray) -> dict[str, bytes]:
    """Odd but valid images: each must be classified."""
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    rgba = cv2.cvtColor(face, cv2.COLOR_BGR2BGRA)
    rgba[:10] = 0  # a transparent band
    return {
        "rgb.jpg": encode(".jpg", face),
        "cmyk.jpg": pil_bytes(face, "CMYK", "JPEG", quality=95),
        "exif_rotated.jpg": exif_rotated_jpeg(face),
        "gray.png": encode(".png", gray),
        "rgba.png": encode(".png", rgba),
        "palette.png": pil_bytes(face, "P", "PNG"),
        "sixteen_bit.png": encode(".png", face.astype(np.uint16) * 257),
        "sixteen_bit.tif": encode(".tif", face.astype(np.uint16) * 257),
        "float.tif": encode(".tif", face.astype(np.float32) / 255),
        "named_png.jpg": encode(".png", face),  # decoded by content, not by extension
    }


# name → (content, reason pattern). Symlinks and the permission case are made by make_zoo.
def bad_files(face: np.ndarray) -> dict[str, tuple[bytes, str]]:
    jpg, png = encode(".jpg", face), encode(".png", face)
    return {
        "zero_byte.jpg": (b"", r"empty file \(0 bytes\)"),
        "truncated.jpg": (jpg[: len(jpg) // 2], r"truncated JPEG"),
        "truncated.png": (png[: len(png) // 2], r"truncated PNG"),
        "text.jpg": (b"this is a text file, not a photo\n", r"not an image"),
        "text.png": (b"<html>404</html>", r"not an image"),
        "one_pixel.png": (encode(".png", face[:1, :1]), r"1x1 pixels, too small"),
        "huge_20000.png": (png_header_only(), r"20000x20000 \(400\.0 MP\), above the limit"),
        "bomb.png": (png_bomb(), r"20000x20000 \(400\.0 MP\), above the limit"),
        "bomb.tif": (tiff_bomb(), r"20000x20000 \(400\.0 MP\), above the limit"),
    }


SYMLINK_REASONS = {
    "loop_a.jpg": r"cannot read \(Too many levels of symbolic links\)",
    "loop_b.jpg": r"cannot read \(Too many levels of symbolic links\)",
    "dangling.jpg": r"no such file",
}


def _unreadable(path: Path) -> bool:
    """chmod 000, and whether that really makes the file unreadable (not for root)."""
    path.chmod(0)
    return not os.access(path, os.R_OK)


@pytest.fixture(scope="session")
def zoo_data(face: np.ndarray) -> tuple[dict[str, bytes], dict[str, tuple[bytes, str]]]:
    return good_files(face), bad_files(face)


def make_zoo(
    folder: Path, data: tuple[dict[str, bytes], dict[str, tuple[bytes, str]]]
) -> tuple[set[str], dict[str, str]]:
    """Write every good and bad case into ``folder``; returns good names and bad name → reason pattern."""
    folder.mkdir()
    good, bad_data = data
    for name, content in good.items():
        (folder / name).write_bytes(content)
    bad = {name: reason for name, (_, reason) in bad_data.items()}
    for name, (content, _) in bad_data.items():
        (folder / name).write_bytes(content)
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    os.symlink("gone.jpg", folder / "dangling.jpg")
    bad.update(SYMLINK_REASONS)
    locked = folder / "no_permission.jpg"
    locked.write_bytes(good["rgb.jpg"])
    if _unreadable(locked):
        bad[locked.name] = r"cannot read \(Permission denied\)"
    else:  # running as root: chmod 000 does not stop reading, so it is a good file here
        good = {**good, locked.name: b""}
    return set(good), bad


@pytest.fixture()
def zoo(
    tmp_path: Path, zoo_data: tuple[dict[str, bytes], dict[str, tuple[bytes, str]]]
) -> tuple[Path, set[str], dict[str, str]]:
    folder = tmp_path / "zoo"
    good, bad = make_zoo(folder, zoo_data)
    return folder, good, bad


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


# ------------------------------------------------------------------------------------------ the odd files
def test_every_odd_file_decodes_or_fails_with_its_reason(zoo: tuple[Path, set[str], dict[str, str]]) -> None:
    folder, good, bad = zoo
    for name in sorted(good):
        img = read_image(folder / name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
        assert img.shape[:2] == (150, 130), name  # EXIF rotation applied, no channel or size surprises
    for name, reason in sorted(bad.items()):
        with pytest.raises(DecodeError) as err:
            read_image(folder / name)
        assert re.search(reason, str(err.value)), (name, str(err.value))
        assert str(err.value).startswith(str(folder / name)), err.value  # the message names the file


def test_odd_good_files_give_the_same_face_as_the_plain_jpeg(zoo_data: tuple[dict, dict], tmp_path: Path) -> None:
    """Colour models and depths are converted, not mangled: every variant classifies like the plain file."""
    folder = tmp_path / "good"
    folder.mkdir()
    for name, data in zoo_data[0].items():
        (folder / name).write_bytes(data)
    with Pipeline(detector=None) as pipe:
        preds = {p.name: pipe.classify_crops([read_image(p)])[0] for p in sorted(folder.iterdir())}
    reference = preds["rgb.jpg"]
    for name, p in preds.items():
        assert p.label == reference.label, (name, p.label, reference.label)
        gap = max(abs(a - b) for (_, a), (_, b) in zip(p.probabilities, reference.probabilities, strict=True))
        assert gap < 0.15, (name, gap)


def test_bombs_are_refused_from_the_header_before_any_pixel_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_data: tuple[dict, dict]
) -> None:
    def no_decoding(*_args: object) -> None:
        raise AssertionError("cv2.imdecode was called on a decompression bomb")

    monkeypatch.setattr(images.cv2, "imdecode", no_decoding)
    for name in ("bomb.png", "bomb.tif", "huge_20000.png"):
        data = zoo_data[1][name][0]
        assert len(data) < 100_000  # small on disk ...
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(DecodeError, match="above the limit"):  # ... refused without decoding 400 MP
            read_image(p)


def test_unreadable_permissions_are_reported(tmp_path: Path, face: np.ndarray) -> None:
    p = tmp_path / "locked.jpg"
    p.write_bytes(encode(".jpg", face))
    if not _unreadable(p):
        pytest.skip("running as root: chmod 000 does not make a file unreadable here")
    with pytest.raises(DecodeError, match=r"locked\.jpg: cannot read \(Permission denied\)"):
        read_image(p)


# ------------------------------------------------------------------------------------- classify and image
def test_classify_reports_every_bad_file_and_writes_every_good_one(
    zoo: tuple[Path, set[str], dict[str, str]], tmp_path: Path
) -> None:
    folder, good, bad = zoo
    out = tmp_path / "out" / "submission.csv"
    r = runner.invoke(app, ["classify", str(folder), "-o", str(out)])
    assert r.exit_code == 0, r.output
    rows = read_csv(out)
    assert rows[0] == ["image_path", "emotion"]
    assert {row[0] for row in rows[1:]} == good and len(rows) - 1 == len(good)
    errors = dict(read_csv(out.with_name("submission.errors.csv"))[1:])
    assert set(errors) == set(bad)
    for name, reason in bad.items():
        assert re.search(reason, errors[name]), (name, errors[name])
    assert f"{len(bad)} files could not be read" in r.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "submission.csv",
        "submission.csv.journal",  # what each row was computed from, for the next resume
        "submission.errors.csv",
    ]


def test_image_command_reports_every_bad_file_and_writes_every_good_one(
    zoo: tuple[Path, set[str], dict[str, str]], tmp_path: Path
) -> None:
    folder, good, bad = zoo
    out = tmp_path / "annotated"
    r = runner.invoke(app, ["image", str(folder), "--out", str(out), "--json"])
    assert r.exit_code == 2, r.output  # some inputs failed
    error_lines = [line for line in r.stderr.splitlines() if line.startswith("edgeemo: error: ")]
    assert len(error_lines) == len(bad)
    for name, reason in bad.items():
        line = next(e for e in error_lines if e.startswith(f"edgeemo: error: {folder / name}: "))
        assert re.search(reason, line), line
    assert f"{len(bad)} of {len(bad) + len(good)} inputs failed" in r.stderr
    written = {p.name for p in out.iterdir()}
    for name in good:
        stem = Path(name).stem
        assert f"{stem}.json" in written, name
        assert any(w.startswith(f"{stem}.") and not w.endswith(".json") for w in written), name
    assert not [w for w in written if w.endswith(".tmp")]  # no temporary files left behind
    faces = [len(json.loads((out / f"{Path(n).stem}.json").read_text())["faces"]) for n in good]
    assert sum(f >= 1 for f in faces) >= len(good) - 1  # a face is found in (almost) every good crop


# -------------------------------------------------------------------------------------- 10,000 inputs
@pytest.fixture(scope="session")
def big_folder(tmp_path_factory: pytest.TempPathFactory, face: np.ndarray) -> tuple[Path, set[str], set[str]]:
    """10,000 small face crops (48x48 gray PNGs: shifted, mirrored, brightness-varied), every 20th one bad."""
    folder = tmp_path_factory.mktemp("big") / "faces"
    folder.mkdir()
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    variants = []
    for dx in range(0, 10, 3):
        for dy in range(0, 10, 3):
            for gain in (0.8, 1.0, 1.2):
                c = cv2.resize(gray[dy : dy + 140, dx : dx + 120], (48, 48), interpolation=cv2.INTER_AREA)
                c = np.clip(c.astype(np.float32) * gain, 0, 255).astype(np.uint8)
                variants += [encode(".png", c), encode(".png", c[:, ::-1].copy())]
    jpg = encode(".jpg", face)
    bad_makers = [
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(jpg[: len(jpg) // 3]),
        lambda p: p.write_text("not an image\n"),
        lambda p: p.write_bytes(encode(".png", face[:2, :2])),
        lambda p: os.symlink(p.name, p),  # a link to itself: a loop
    ]
    good: set[str] = set()
    bad: set[str] = set()
    for k in range(BIG_N):
        name = f"{k}.png" if k % BAD_EVERY else f"{k}.jpg"
        p = folder / name
        if k % BAD_EVERY == 0:
            bad_makers[(k // BAD_EVERY) % len(bad_makers)](p)
            bad.add(name)
        else:
            p.write_bytes(variants[k % len(variants)])
            good.add(name)
    return folder, good, bad


@pytest.fixture(scope="session")
def big_reference(big_folder: tuple[Path, set[str], set[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted single-worker run over the big folder."""
    folder, _, _ = big_folder
    out = tmp_path_factory.mktemp("ref") / "submission.csv"
    r = runner.invoke(app, ["classify", str(folder), "-o", str(out), "--probs", str(out.with_name("probs.csv"))])
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.slow
def test_ten_thousand_inputs_all_accounted_for(
    big_folder: tuple[Path, set[str], set[str]], big_reference: Path
) -> None:
    folder, good, bad = big_folder
    rows = read_csv(big_reference)[1:]
    assert len(rows) == len(good) == BIG_N - BIG_N // BAD_EVERY
    assert {r[0] for r in rows} == good
    errors = read_csv(big_reference.with_name("submission.errors.csv"))[1:]
    assert {e[0] for e in errors} == bad and len(errors) == len(bad)
    assert all(e[1] for e in errors)  # every one with its reason
    # Every written label is the model's answer for that file (checked in-process on a sample).
    probs = {r[0]: r for r in read_csv(big_reference.with_name("probs.csv"))[1:]}
    labels = dict(rows)
    with Pipeline(detector=None) as pipe:
        sample = sorted(good)[::97]
        preds = pipe.classify_crops([read_image(folder / n) for n in sample])
    for name, pred in zip(sample, preds, strict=True):
        assert labels[name] == pred.label, name
        assert [float(v) for v in probs[name][1:]] == pytest.approx([v for _, v in pred.probabilities], abs=2e-6)


@pytest.mark.slow
def test_kill_9_then_rerun_with_workers_equals_one_clean_run(
    big_folder: tuple[Path, set[str], set[str]], big_reference: Path, tmp_path: Path
) -> None:
    folder, _, _ = big_folder
    out = tmp_path / "submission.csv"
    journal = tmp_path / "submission.csv.journal"
    cmd = [*CLI, "classify", str(folder), "-o", str(out), "--batch-size", "32"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not journal.exists() or journal.read_text().count("\n") < 2000):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed"  # no half-written output either
    journaled = journal.read_text().count("\n") - 1
    assert journaled >= 1999
    r = runner.invoke(app, ["classify", str(folder), "-o", str(out), "--workers", "3"])
    assert r.exit_code == 0, r.output
    assert f"{journaled} already done" in r.stdout
    assert out.read_bytes() == big_reference.read_bytes()  # no duplicate, no loss, same answers, same order
    errors = out.with_name("submission.errors.csv")
    assert errors.read_bytes() == big_reference.with_name("submission.errors.csv").read_bytes()
    assert len(read_csv(journal)) == len(read_csv(out))  # compacted: one record per row (each with a header)
    assert not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------ atomic outputs
def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    from edgeemo.io.sinks import atomic_open, write_csv_atomic

    out = tmp_path / "submission.csv"
    write_csv_atomic(out, ["image_path", "emotion"], [["1.png", "happy"]])
    before = out.read_bytes()

    def rows():  # a producer that dies half way, as a killed or failing run would
        yield ["2.png", "sad"]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_csv_atomic(out, ["image_path", "emotion"], rows())
    with pytest.raises(KeyboardInterrupt), atomic_open(out) as f:
        f.write("image_path,emotion\n3.png,")
        raise KeyboardInterrupt
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]


@pytest.mark.slow
def test_kill_9_during_a_rerun_keeps_the_previous_output_whole(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    """The output is replaced in one rename: a reader (or a crash) never sees a half-written submission."""
    d = tmp_path / "faces"
    d.mkdir()
    crop = encode(".png", cv2.cvtColor(astronaut_bgr[45:195, 150:280], cv2.COLOR_BGR2GRAY))
    for k in range(300):
        (d / f"{k}.png").write_bytes(crop)
    out = tmp_path / "submission.csv"
    assert runner.invoke(app, ["classify", str(d), "-o", str(out)]).exit_code == 0
    before = out.read_bytes()
    for k in range(300, 3000):
        (d / f"{k}.png").write_bytes(crop)
    journal = tmp_path / "submission.csv.journal"
    cmd = [*CLI, "classify", str(d), "-o", str(out), "--batch-size", "16"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not journal.exists() or journal.read_text().count("\n") < 1000):
        seen.add(out.read_bytes())  # sampled while the run goes on: always the complete earlier file
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert seen == {before} and out.read_bytes() == before
    r = runner.invoke(app, ["classify", str(d), "-o", str(out)])
    assert r.exit_code == 0, r.output
    rows = read_csv(out)[1:]
    assert len(rows) == 3000 and len({row[0] for row in rows}) == 3000


@pytest.mark.slow
def test_image_command_killed_mid_run_leaves_only_whole_files(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    """`image` has no journal: each output is written atomically, so after `kill -9` every visible file is whole
    and a re-run completes the set (a hidden ``.name.*.tmp`` of the file in flight may remain)."""
    d = tmp_path / "photos"
    d.mkdir()
    photo = encode(".jpg", astronaut_bgr)
    for k in range(80):
        (d / f"{k}.jpg").write_bytes(photo)
    out = tmp_path / "out"
    proc = subprocess.Popen([*CLI, "image", str(d), "--out", str(out), "--json"], cwd=REPO, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.is_dir() or len(list(out.glob("*.json"))) < 10):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    visible = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert 10 <= len(list(out.glob("*.json"))) < 80
    for p in visible:
        if p.suffix == ".json":
            assert len(json.loads(p.read_text())["faces"]) == 1, p
        else:
            assert cv2.imdecode(np.frombuffer(p.read_bytes(), np.uint8), cv2.IMREAD_COLOR).shape == (512, 512, 3), p
    r = runner.invoke(app, ["image", str(d), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("*.json"))) == 80 and len(list(out.glob("*.jpg"))) == 80
