"""Decode-path fuzzing with hypothesis: random and mutated bytes into the image decoder either decode to a BGR
uint8 image or raise :class:`DecodeError` — never another exception, never a crash of the process.

The suite runs a bounded number of examples; a longer run (see docs/reliability.md):

    EDGEEMO_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz_decode.py -p no:cacheprovider
"""

from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeemo.errors import DecodeError
from edgeemo.io.images import decode_image, sniff

LONG_RUN = "EDGEEMO_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("EDGEEMO_FUZZ_EXAMPLES", "500"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG_RUN,  # the suite's run is reproducible; long runs explore
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
# Lower than the default limit, so mutated headers cannot make one example allocate gigabytes.
MAX_PIXELS = 4_000_000


def _seeds() -> dict[str, bytes]:
    """Small valid files of every format the decoder sniffs (that this OpenCV can write), from a real face."""
    from skimage import data

    face = np.ascontiguousarray(data.astronaut()[60:124, 170:234, ::-1])  # 64x64 BGR
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    out = {}
    for ext, img in (
        (".jpg", face),
        (".png", face),
        (".png", cv2.cvtColor(face, cv2.COLOR_BGR2BGRA)),
        (".bmp", face),
        (".tif", face.astype(np.uint16) * 257),
        (".webp", face),
        (".pgm", gray),
        (".ppm", face),
        (".pbm", gray),
        (".gif", face),
        (".jp2", face),
        (".avif", face),
        (".ras", face),
        (".hdr", face.astype(np.float32) / 255),
        (".pfm", face.astype(np.float32) / 255),
    ):
        ok, buf = cv2.imencode(ext, img)
        if ok:
            out[f"{ext}-{img.dtype}-{img.shape[-1]}"] = buf.tobytes()
    ok, buf = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    out["progressive.jpg"] = buf.tobytes()
    return out


SEEDS = _seeds()


def _check(data: bytes) -> None:
    try:
        img = decode_image(data, "<fuzz>", max_pixels=MAX_PIXELS)
    except DecodeError as exc:
        assert str(exc).startswith("<fuzz>: "), exc  # names its origin
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.flags.c_contiguous
    assert img.shape[0] * img.shape[1] <= MAX_PIXELS


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid seed with a few byte flips, overwritten runs, insertions, deletions or a truncation."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "run", "insert", "delete", "truncate", "header"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "run":
            data[pos : pos + 16] = draw(st.binary(min_size=1, max_size=16))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 256))]
        elif op == "truncate":
            del data[pos:]
        elif op == "header" and len(data) > 32:  # the first bytes hold sizes, depths, offsets
            k = draw(st.integers(0, 31))
            data[k] = draw(st.integers(0, 255))
    return bytes(data)


@st.composite
def png_with_declared_size(draw: st.DrawFn) -> bytes:
    """A structurally valid PNG whose IHDR states arbitrary sizes, depths and colour types."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    w, h = draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1))
    depth, colour = draw(st.sampled_from([1, 2, 4, 8, 16])), draw(st.sampled_from([0, 2, 3, 4, 6, 7]))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, draw(st.integers(0, 1)))
    idat = zlib.compress(draw(st.binary(max_size=512)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@FUZZ
@given(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF89a", b"P5\n"]))
def test_signatures_followed_by_garbage(prefix: bytes) -> None:
    rng = np.random.default_rng(len(prefix))
    for n in (0, 1, 7, 64, 600):
        _check(prefix + rng.integers(0, 256, n, dtype=np.uint8).tobytes())


@FUZZ
@given(mutated())
def test_mutated_valid_files(data: bytes) -> None:
    _check(data)


@FUZZ
@given(png_with_declared_size())
def test_png_headers_with_any_size(data: bytes) -> None:
    _check(data)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seeds_decode(name: str) -> None:
    """The seeds themselves are valid: the mutations start from files the decoder reads."""
    img = decode_image(SEEDS[name], name)
    assert img.shape == (64, 64, 3)
    assert sniff(SEEDS[name]) is not None
