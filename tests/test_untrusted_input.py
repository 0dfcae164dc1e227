"""Untrusted inputs, round two: special files, decompression bombs in every decodable format, skipped names, an
ONNX file asking for a huge input, a broken model among the listed ones.

The CLI runs here get a data-size limit (``RLIMIT_DATA``) and a timeout, so that a regression shows as a failed
test rather than a hung or swapping machine (reading /dev/zero without bound, decoding a 20000x20000 bomb).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeemo.io.images as images
from edgeemo.errors import DecodeError, ModelError
from edgeemo.io.images import decode_image, list_images, max_file_bytes, read_image, sniff

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from edgeemo.cli import main; main()"]
DATA_LIMIT = 3 << 30  # far above a healthy run, far below what the bombs and /dev/zero would take
# The CLI is started by this small launcher, not by pytest: Linux carries a parent's peak RSS over fork and exec
# into the child's ru_maxrss, and the pytest process may hold TensorFlow (a gigabyte) by then.
_LAUNCHER = """
import resource, subprocess, sys
limit, report = int(sys.argv[1]), sys.argv[2]
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
rc = subprocess.run(sys.argv[3:]).returncode
open(report, "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc if rc >= 0 else 128 - rc)
"""


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> tuple[int, str, str, int]:
    """Run the CLI; returns exit code, stdout, stderr and the CLI process's peak RSS in KiB."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    out, err, rss = (tmp / f"edgeemo-test-{os.getpid()}-{k}" for k in ("out", "err", "rss"))
    with open(out, "wb") as o, open(err, "wb") as e:
        cmd = [sys.executable, "-c", _LAUNCHER, str(DATA_LIMIT), str(rss), *CLI, *args]
        proc = subprocess.Popen(cmd, stdout=o, stderr=e, env=env, start_new_session=True)
        try:
            proc.wait(timeout)  # a hang guard, not a timing assertion
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    texts = [p.read_text(errors="replace") for p in (out, err)]
    peak = int(rss.read_text()) if rss.is_file() else -1
    for p in (out, err, rss):
        p.unlink(missing_ok=True)
    assert peak >= 0, f"killed after {timeout} s (hung): {texts[1][-2000:]}"
    return proc.returncode, texts[0], texts[1], peak


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut()[30:190, 150:290, ::-1])  # the astronaut's face, BGR


def encode(ext: str, img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok, ext
    return buf.tobytes()


# ------------------------------------------------------------------------------------------------ the bombs
def jp2_bomb(face: np.ndarray) -> bytes:
    """A ~1.5 KB JPEG 2000 whose SIZ marker and ``ihdr`` box state 20000x20000 in one tile (OpenJPEG decodes
    such a file when both agree: the same trick at 3000x3000 decodes to a 3000x3000 image)."""
    data = bytearray(encode(".jp2", face))
    siz = data.find(b"\xff\x4f\xff\x51")
    data[siz + 8 : siz + 32] = struct.pack(">6I", 20000, 20000, 0, 0, 20000, 20000)
    ihdr = data.find(b"ihdr")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", 20000, 20000)
    return bytes(data)


def hdr_bomb(rows: int = 8) -> bytes:
    """A run-length Radiance HDR of 20000x20000: each scanline is 4 channels of 127-pixel runs (~1.3 KB)."""
    width = 20000
    runs = [min(127, width - k) for k in range(0, width, 127)]
    channel = b"".join(bytes([128 + n, 128]) for n in runs)
    line = b"\x02\x02" + struct.pack(">H", width) + channel * 4
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n" + line * rows


def tiff_twice_bomb() -> bytes:
    """An 8-bit gray TIFF stating 20000x20000 first and 64x64 again last (libtiff takes the first pair)."""
    entries = [
        (256, 4, 20000),
        (257, 4, 20000),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 0),  # strip offset: patched below
        (277, 3, 1),
        (278, 4, 20000),
        (279, 4, 64 * 64),
        (256, 4, 64),
        (257, 4, 64),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    strip = 8 + ifd_size
    body = b"".join(struct.pack("<HHII", t, k, 1, strip if t == 273 else v) for t, k, v in entries)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)) + body + b"\0" * 4 + b"\x80" * 4096


def gif_frame_bomb() -> bytes:
    """A GIF whose 16x16 screen holds a first frame of 20000x20000."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 16, 16, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 20000, 20000, 0x80) + b"\x00\x00\x00\xff\xff\xff"
    return screen + frame + b"\x02\x02\x4c\x01\x00" + b"\x3b"


def jpeg_garbage_bomb(face: np.ndarray) -> bytes:
    """A JPEG claiming 20000x20000, with a stray byte before its frame header (libjpeg skips it, with a warning)."""
    data = bytearray(encode(".jpg", face))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 20000, 20000)
    data[sof:sof] = b"\x00"
    return bytes(data)


def avif_stream_bomb() -> bytes:
    """An AVIF whose ``ispe`` says 64x64 but whose AV1 stream is 3000x2000 (the decoder follows the stream)."""
    data = bytearray(encode(".avif", np.zeros((2000, 3000, 3), np.uint8)))
    ispe = data.find(b"ispe")
    data[ispe + 8 : ispe + 16] = struct.pack(">II", 64, 64)
    return bytes(data)


BOMBS: dict[str, Callable[[np.ndarray], bytes]] = {
    "jp2": jp2_bomb,
    "hdr": lambda face: hdr_bomb(),
    "tiff-twice": lambda face: tiff_twice_bomb(),
    "gif-frame": lambda face: gif_frame_bomb(),
    "jpeg-garbage": jpeg_garbage_bomb,
    "pnm": lambda face: b"P5\n# a comment\n20000 20000\n255\n" + b"\0" * 4096,
    "pfm": lambda face: b"Pf\n20000 20000\n-1.0\n" + b"\0" * 4096,
    "sun-raster": lambda face: struct.pack(">8I", 0x59A66A95, 20000, 20000, 8, 0, 1, 0, 0) + b"\0" * 4096,
    "avif-stream": lambda face: avif_stream_bomb(),
}
BOMB_REASONS = {"tiff-twice": "states its width or height more than once", "avif-stream": "3000x2000"}


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def trap(*_: object) -> None:
        raise AssertionError("cv2.imdecode was called: the size was not checked before decoding")

    monkeypatch.setattr(images.cv2, "imdecode", trap)


@pytest.mark.parametrize("kind", list(BOMBS))
def test_bombs_are_refused_from_the_header_before_decoding(face: np.ndarray, no_decoding: None, kind: str) -> None:
    data = BOMBS[kind](face)
    assert len(data) < 64_000
    max_pixels = 1_000_000 if kind == "avif-stream" else images.DEFAULT_MAX_PIXELS
    with pytest.raises(DecodeError) as err:
        decode_image(data, f"{kind}.bin", max_pixels=max_pixels)
    msg = str(err.value)
    assert msg.startswith(f"{kind}.bin: ") and BOMB_REASONS.get(kind, "20000x20000") in msg, msg


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xda\x00\x08", "does not state"),
        (b"II*\x00\x08\x00\x00\x00\x01\x00\x00\x01\x10\x00\x01\x00\x00\x00" + b"\0" * 64, "size tag 256 has type 16"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x04tEXtabcd" + b"\0" * 32, "does not state"),
        (b"\xff\x4f\xff\x51\x00\x29\x00\x00" + struct.pack(">8IH", 4000, 4000, 0, 0, 1, 1, 0, 0, 1), "tiles"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF/HEIC images are not supported"),
        # OpenCV reads header lines with fgets(buf, 128): a 127-byte line leaves its newline as an empty line
        (b"#?RADIANCE\n" + b"X" * 127 + b"\n-Y 20000 +X 20000\n\n-Y 64 +X 64\n", "20000x20000"),
    ],
    ids=["jpeg-no-frame", "tiff-long8-size", "png-no-ihdr", "jp2-1x1-tiles", "heic", "hdr-long-line"],
)
def test_headers_without_a_checkable_size_are_refused(no_decoding: None, data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_image(data, "odd.bin")


WRITABLE = [".jpg", ".png", ".bmp", ".webp", ".tiff", ".pgm", ".ppm", ".pbm", ".gif", ".jp2", ".avif", ".ras", ".hdr"]


@pytest.mark.parametrize("ext", [*WRITABLE, ".pfm"])
def test_every_decodable_format_states_its_true_size(face: np.ndarray, ext: str) -> None:
    img = (
        face.astype(np.float32) / 255 if ext in (".hdr", ".pfm") else face[:, :, 0] if ext in (".pbm", ".pgm") else face
    )
    data = encode(ext, img)
    head = sniff(data)
    h, w = face.shape[:2]
    assert head is not None and (head.width, head.height) == (w, h), (ext, head)
    assert decode_image(data, ext).shape == (h, w, 3)


# ----------------------------------------------------------------------------------- special files, size cap
@pytest.fixture
def specials(tmp_path: Path) -> dict[str, Path]:
    """Non-regular files named like images: a FIFO, a /dev/zero and a /dev/null link, a socket."""
    out = {"fifo.png": tmp_path / "fifo.png", "zero.jpg": tmp_path / "zero.jpg", "null.jpg": tmp_path / "null.jpg"}
    os.mkfifo(out["fifo.png"])
    out["zero.jpg"].symlink_to("/dev/zero")
    out["null.jpg"].symlink_to("/dev/null")
    sock_path = tmp_path / "sock.png"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path))
    out["sock.png"] = sock_path
    return out


REASONS = {
    "fifo.png": "is a FIFO (named pipe), not a regular file",
    "zero.jpg": "is a character device, not a regular file",
    "null.jpg": "is a character device, not a regular file",
    "sock.png": "is a socket, not a regular file",
}


def test_image_command_refuses_special_files_without_blocking(specials: dict[str, Path], tmp_path: Path, face) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(encode(".png", face))
    rc, stdout, stderr, _ = run_cli("image", *map(str, specials.values()), str(good), timeout=120)
    assert rc == 2, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("edgeemo: error: ")]
    assert len(errors) == len(specials), stderr
    for name, path in specials.items():
        assert any(str(path) in ln and REASONS[name] in ln for ln in errors), (name, errors)
    assert str(good) in stdout


def test_read_limit_is_enforced_before_reading(tmp_path: Path, face: np.ndarray) -> None:
    p = tmp_path / "face.png"
    p.write_bytes(encode(".png", face))
    size = p.stat().st_size
    assert read_image(p, max_bytes=size).shape[:2] == face.shape[:2]
    with pytest.raises(DecodeError, match=r"face\.png: file is larger than the read limit"):
        read_image(p, max_bytes=size - 1)
    # The default limit follows the pixel limit: 8 bytes per pixel plus 1 MiB of headers.
    assert max_file_bytes(images.DEFAULT_MAX_PIXELS) == 8 * images.DEFAULT_MAX_PIXELS + (1 << 20)
    big = tmp_path / "big.jpg"
    big.write_bytes(encode(".jpg", face) + b"\0" * (3 << 20))  # 3 MiB of trailing junk
    with pytest.raises(DecodeError, match=r"big\.jpg: file is larger than the read limit of 2 MiB"):
        read_image(big, max_pixels=100_000)
    assert read_image(big).shape[:2] == face.shape[:2]


# ------------------------------------------------------------------------------------- listing: nothing silent
def test_classify_reports_what_it_cannot_read_instead_of_skipping_it(tmp_path: Path, face: np.ndarray) -> None:
    folder = tmp_path / "in"
    (folder / "album.jpg").mkdir(parents=True)  # a folder named like an image
    (folder / "album.jpg" / "inner.png").write_bytes(encode(".png", face))
    (folder / "a.jpg").write_bytes(encode(".jpg", face))
    (folder / "b.jfif").write_bytes(encode(".jpg", face))  # a JPEG under its other name
    (folder / "c.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 64)
    (folder / "d.jxl").write_bytes(b"\xff\x0a" + b"\0" * 64)
    (folder / "notes.txt").write_text("not an image name: ignored")
    out = tmp_path / "sub.csv"
    rc, _, stderr, _ = run_cli("classify", str(folder), "--out", str(out), timeout=120)
    assert rc == 0, stderr
    rows = {r["image_path"] for r in csv.DictReader(out.open())}
    assert rows == {"a.jpg", "b.jfif"}
    errors = {r["image_path"]: r["reason"] for r in csv.DictReader((tmp_path / "sub.errors.csv").open())}
    assert set(errors) == {"album.jpg", "c.heic", "d.jxl"}, errors
    assert "is a folder" in errors["album.jpg"]
    assert "HEIF/HEIC images are not supported" in errors["c.heic"]
    assert "JPEG XL images are not supported" in errors["d.jxl"]
    assert "3 files could not be read" in stderr
    assert [p.name for p in list_images(folder, recursive=True)] == ["a.jpg", "inner.png", "b.jfif", "c.heic", "d.jxl"]


# --------------------------------------------------------------------------- 300 faces among specials and bombs
def _good_faces(dest: Path, face: np.ndarray, count: int = 300) -> list[str]:
    """FER PublicTest faces from ../shared/data, evenly spaced; the registry face in 300 variants without it."""
    shared = REPO.parent / "shared" / "data" / "fer2013-publictest"
    names = []
    if shared.is_dir():
        files = sorted(shared.glob("*/*.png"))
        for k in np.linspace(0, len(files) - 1, count).astype(int):
            src = files[k]
            names.append(f"{src.parent.name}_{src.name}")
            shutil.copyfile(src, dest / names[-1])
        return names
    gray = cv2.cvtColor(cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    for k in range(count):
        names.append(f"face_{k:03d}.png")
        (dest / names[-1]).write_bytes(
            encode(".png", np.clip(gray.astype(int) + (k % 41) - 20, 0, 255).astype(np.uint8))
        )
    return names


def test_300_faces_with_specials_and_bombs_finish_quickly_in_little_memory(
    tmp_path: Path, face: np.ndarray, specials: dict[str, Path]
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = _good_faces(folder, face)
    for name, path in specials.items():
        os.rename(path, folder / name)  # the FIFO, links and socket move with their type
    bombs = {"bomb.jp2": jp2_bomb(face), "bomb.hdr": hdr_bomb(), "bomb.tif": tiff_twice_bomb()}
    for name, data in bombs.items():
        (folder / name).write_bytes(data)
    out = tmp_path / "sub.csv"
    rc, stdout, stderr, peak_kib = run_cli("classify", str(folder), "--out", str(out), timeout=300)
    assert rc == 0, stderr
    rows = {r["image_path"]: r["emotion"] for r in csv.DictReader(out.open())}
    assert set(rows) == set(good)
    errors = {r["image_path"]: r["reason"] for r in csv.DictReader((tmp_path / "sub.errors.csv").open())}
    assert set(errors) == set(specials) | set(bombs), errors
    for name, reason in REASONS.items():
        assert reason in errors[name], (name, errors[name])
    assert "20000x20000" in errors["bomb.jp2"] and "20000x20000" in errors["bomb.hdr"]
    assert "more than once" in errors["bomb.tif"]
    assert peak_kib < 500 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
    print(
        f"300 faces + {len(specials)} special files + {len(bombs)} bombs: peak RSS {peak_kib / 1024:.0f} MiB; {stdout}"
    )


# ------------------------------------------------------------------------------------------------ model files
def _open_size_model(path: Path, height: int, width: int) -> Path:
    """A tiny classifier with open H and W (mean pixel -> 7 logits), declaring ``height`` x ``width``."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from edgeemo.runtime.spec import HeadSpec, InputSpec, ModelSpec, Normalisation

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Reshape", ["m", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "open",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", "h", "w", 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 7])],
        [
            helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
            helper.make_tensor("w", TensorProto.FLOAT, [1, 7], np.linspace(-1, 1, 7).tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    spec = ModelSpec(
        "open",
        InputSpec("input", height, width, 1, dtype="float32", normalisation=Normalisation("affine", 1 / 255, 0.0)),
        (HeadSpec("emotion", "logits", "logits"),),
        ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
    )
    helper.set_model_props(model, {"edgeemo": spec.to_json()})
    onnx.save(model, path)
    return path


def test_onnx_asking_for_an_implausible_input_size_is_refused_at_load(tmp_path: Path, face: np.ndarray) -> None:
    from edgeemo.runtime.model import EmotionModel

    fine = EmotionModel(_open_size_model(tmp_path / "fine.onnx", 64, 64))
    assert len(fine.predict([face])) == 1  # the same graph with a sane size works
    huge = _open_size_model(tmp_path / "huge.onnx", 12000, 12000)
    with pytest.raises(ModelError, match=r"huge\.onnx: .*input size 12000x12000 is implausible .*at most 1024"):
        EmotionModel(huge)
    crops = tmp_path / "crops"
    crops.mkdir()
    (crops / "a.png").write_bytes(encode(".png", face))
    rc, _, stderr, _ = run_cli("classify", str(crops), "--out", str(tmp_path / "s.csv"), "--model", str(huge))
    assert rc == ModelError.exit_code, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgeemo: error: ") and str(huge) in lines[0], stderr


def test_models_lists_the_good_models_when_one_is_broken(tmp_path: Path) -> None:
    user = tmp_path / "user_models"
    (user / "broken").mkdir(parents=True)
    (user / "broken" / "model.onnx").write_bytes(b"not an onnx model at all")
    env = {**os.environ, "EDGEEMO_MODEL_PATH": str(user)}
    rc, stdout, stderr, _ = run_cli("models", "--json", timeout=120, env=env)
    assert rc == 0, stderr
    names = {r["name"] for r in json.loads(stdout)}
    assert "mini-xception" in names and "broken" not in names
    notes = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(notes) == 1 and "broken" in notes[0] and str(user / "broken") in notes[0], stderr


def test_export_face_sets_and_calibration_use_the_same_checks(tmp_path: Path, face: np.ndarray) -> None:
    pytest.importorskip("onnx")
    from edgeemo_export.calibration import load_calibration_set
    from edgeemo_export.faceset import load_face_set

    happy = tmp_path / "faces" / "happy"
    happy.mkdir(parents=True)
    (happy / "a.png").write_bytes(encode(".png", face))
    (happy / "bomb.png").write_bytes(jp2_bomb(face))  # decoded by content, whatever the name
    (happy / "tiff.png").write_bytes(tiff_twice_bomb())
    os.mkfifo(happy / "pipe.png")
    (happy / "zero.png").symlink_to("/dev/zero")
    faces = load_face_set(tmp_path / "faces")
    assert faces.names == ("happy/a.png",)
    why = {Path(f).name: reason for f, reason in faces.skipped}
    assert "20000x20000" in why["bomb.png"] and "more than once" in why["tiff.png"]
    assert "FIFO" in why["pipe.png"] and "character device" in why["zero.png"]
    calib = load_calibration_set(happy)
    assert len(calib.images) == 1 and {Path(s).name for s in calib.skipped} == {"bomb.png", "tiff.png"}
