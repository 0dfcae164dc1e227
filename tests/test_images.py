"""Robust image decoding: every kind of bad file gets a DecodeError naming the file and the problem."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeemo.errors import DecodeError
from edgeemo.io.images import decode_image, list_images, natural_key, read_image, sniff


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def huge_png_header(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG file whose header claims ``width`` x ``height`` (the pixels would be 1.2 GB as BGR)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))  # one row; the header is what must be refused
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment holding one Orientation tag right after the JPEG's SOI marker."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def encode(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def face_bgr(astronaut_bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(astronaut_bgr[40:200, 150:300])


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_decodes_by_content_not_extension(tmp_path: Path, face_bgr: np.ndarray) -> None:
    p = write(tmp_path, "really_a_png.jpg", encode(".png", face_bgr))
    img = read_image(p)
    assert img.dtype == np.uint8 and img.shape == face_bgr.shape
    assert np.array_equal(img, face_bgr)  # lossless PNG, read despite the .jpg name


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("empty.jpg", b"", "empty file (0 bytes)"),
        ("notes.jpg", b"this is a text file, not a photo\n", "not an image"),
        ("huge.png", huge_png_header(), "20000x20000 (400.0 MP), above the limit of 100 MP"),
    ],
)
def test_bad_files_get_a_clear_message(tmp_path: Path, name: str, data: bytes, problem: str) -> None:
    p = write(tmp_path, name, data)
    with pytest.raises(DecodeError) as err:
        read_image(p)
    assert str(p) in str(err.value) and problem in str(err.value)


def test_truncated_jpeg_and_png(tmp_path: Path, face_bgr: np.ndarray) -> None:
    jpg = encode(".jpg", face_bgr)
    for cut in (len(jpg) // 2, len(jpg) - 2):  # half the data; only the end-of-image marker missing
        p = write(tmp_path, f"cut{cut}.jpg", jpg[:cut])
        with pytest.raises(DecodeError, match=r"truncated JPEG"):
            read_image(p)
    png = encode(".png", face_bgr)
    p = write(tmp_path, "cut.png", png[: len(png) // 2])
    with pytest.raises(DecodeError, match=r"cut\.png: truncated PNG"):
        read_image(p)


def test_one_pixel_image_is_too_small(tmp_path: Path) -> None:
    p = write(tmp_path, "dot.png", encode(".png", np.zeros((1, 1, 3), np.uint8)))
    with pytest.raises(DecodeError, match=r"dot\.png: image is 1x1 pixels, too small to hold a face"):
        read_image(p)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="no such file"):
        read_image(tmp_path / "absent.jpg")
    with pytest.raises(DecodeError, match="is a folder"):
        read_image(tmp_path)


def test_pixel_limit_is_an_option(tmp_path: Path, face_bgr: np.ndarray) -> None:
    p = write(tmp_path, "face.png", encode(".png", face_bgr))
    with pytest.raises(DecodeError, match="above the limit"):
        read_image(p, max_pixels=1000)
    assert read_image(p, max_pixels=None).shape == face_bgr.shape


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path: Path, face_bgr: np.ndarray) -> None:
    wide = face_bgr.astype(np.uint16) * 257  # 0..255 → 0..65535
    p = write(tmp_path, "deep.png", encode(".png", wide))
    img = read_image(p)
    assert img.dtype == np.uint8
    assert np.array_equal(img, face_bgr)


def test_grayscale_becomes_three_equal_channels(tmp_path: Path, face_bgr: np.ndarray) -> None:
    gray = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2GRAY)
    img = read_image(write(tmp_path, "gray.png", encode(".png", gray)))
    assert img.shape == (*gray.shape, 3)
    assert np.array_equal(img[:, :, 0], gray) and np.array_equal(img[:, :, 2], gray)


def test_rgba_is_composited_over_white(tmp_path: Path, face_bgr: np.ndarray) -> None:
    bgra = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2BGRA)
    bgra[:, :20, 3] = 0  # transparent strip
    bgra[:, 20:, 3] = 255
    img = read_image(write(tmp_path, "cutout.png", encode(".png", bgra)))
    assert img.shape == face_bgr.shape
    assert (img[:, :20] == 255).all()
    assert np.array_equal(img[:, 20:], face_bgr[:, 20:])


def test_palette_png(tmp_path: Path) -> None:
    """A real palette PNG (colour type 3) written by hand: 2 colours, 16x16 checkerboard."""
    w = h = 16
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    plte = bytes([255, 0, 0, 0, 0, 255])  # index 0 red, 1 blue (RGB)
    rows = b"".join(b"\x00" + bytes((x + y) % 2 for x in range(w)) for y in range(h))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"PLTE", plte)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )
    img = read_image(write(tmp_path, "palette.png", png))
    assert img.shape == (16, 16, 3)
    assert tuple(img[0, 0]) == (0, 0, 255) and tuple(img[0, 1]) == (255, 0, 0)  # BGR red, BGR blue


def test_float_image(tmp_path: Path, face_bgr: np.ndarray) -> None:
    f = face_bgr.astype(np.float32) / 255
    p = write(tmp_path, "float.tiff", encode(".tiff", f))
    img = read_image(p)
    assert img.dtype == np.uint8
    assert np.abs(img.astype(int) - face_bgr.astype(int)).max() <= 1


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :20] = 255  # white band on the left of a landscape image
    rotated = with_exif_orientation(encode(".jpg", img), 6)  # 6: display rotated 90° clockwise
    out = read_image(write(tmp_path, "rotated.jpg", rotated))
    assert out.shape == (80, 40, 3)
    assert out[:20].mean() > 200 and out[30:].mean() < 50  # the band is now on top


def test_sniff_reads_sizes_from_headers(face_bgr: np.ndarray) -> None:
    h, w = face_bgr.shape[:2]
    for ext, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".bmp", "BMP"), (".webp", "WebP")):
        head = sniff(encode(ext, face_bgr))
        assert head is not None and head.format == fmt and (head.width, head.height) == (w, h), ext
    assert sniff(b"hello") is None


def test_decode_bytes_names_origin() -> None:
    with pytest.raises(DecodeError, match=r"^upload\.bin: not an image"):
        decode_image(b"GIF-ish but not", "upload.bin")


def test_natural_sort_and_listing(tmp_path: Path, face_bgr: np.ndarray) -> None:
    png = encode(".png", face_bgr)
    for name in ("10.png", "2.png", "1.png", "b/3.png", ".hidden.png", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(png)
    assert [p.name for p in list_images(tmp_path)] == ["1.png", "2.png", "10.png"]
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)] == [
        "1.png",
        "2.png",
        "10.png",
        "b/3.png",
    ]
    assert sorted(["img10.jpg", "img2.jpg", "Img1.jpg"], key=natural_key) == ["Img1.jpg", "img2.jpg", "img10.jpg"]


def test_listing_skips_hidden_folders_and_keeps_links(tmp_path: Path, face_bgr: np.ndarray) -> None:
    png = encode(".png", face_bgr)
    for name in (".cache/x.png", "a/.thumbs/y.png", "a/Z.PNG", "album.jpg/inner.png", "c/d/e.webp"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(png)
    (tmp_path / "gone.png").symlink_to(tmp_path / "missing.png")  # broken: kept, reading it reports it
    (tmp_path / "alias").symlink_to(tmp_path / "c")  # a linked folder is not followed
    listed = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)]
    assert listed == ["a/Z.PNG", "album.jpg/inner.png", "c/d/e.webp", "gone.png"]
    assert [p.name for p in list_images(tmp_path)] == ["album.jpg", "gone.png"]  # the folder is reported
    with pytest.raises(DecodeError, match=r"gone\.png"):
        read_image(tmp_path / "gone.png")


def test_huge_jpeg_is_refused_from_its_header(tmp_path: Path, face_bgr: np.ndarray) -> None:
    data = bytearray(encode(".jpg", face_bgr))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 20000, 20000)  # claim 20000x20000 in the frame header
    p = write(tmp_path, "huge.jpg", bytes(data))
    with pytest.raises(DecodeError, match=r"huge\.jpg: image is 20000x20000 \(400\.0 MP\), above the limit"):
        read_image(p)
