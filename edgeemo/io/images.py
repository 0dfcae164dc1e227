"""Robust image decoding: by content, never by extension, with one clear :class:`DecodeError` per problem.

Only regular files are read (a FIFO, device or socket, also behind a symlink, is refused without blocking),
at most a bounded number of bytes. The file is read once; its header is sniffed to name the format, to refuse
truncated files and to refuse images above a pixel limit *before* their pixels are decoded (a 20000x20000 PNG is
a few hundred bytes on disk but 1.2 GB in memory). Every format OpenCV would decode has its size parsed from its
header the way its decoder reads it; a file whose header does not state a size (or states it twice) is refused,
never decoded unchecked. Whatever the source (gray, gray+alpha, RGBA, palette, 16-bit, float), the result is a
contiguous BGR uint8 array with the EXIF orientation applied.

Conversions, documented because they change pixels:
- alpha is composited over white (transparent surroundings of a cut-out face must not become black);
- 16-bit integers are scaled to 8 bits (``v / 257``); float images are read as 0..1 when their values lie in
  that range, else min-max scaled to 0..255;
- EXIF orientation is applied by OpenCV for files without alpha; files with alpha are decoded unchanged and
  keep their stored orientation (OpenCV applies orientation only when it drops alpha).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeemo.errors import DecodeError, one_line
from edgeemo.io.containers import video_container
from edgeemo.io.headers import UNSUPPORTED_FORMATS, ImageHeader, sniff

DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MIN_SIDE = 8
# No image within the pixel limit needs more file bytes than this per pixel (uncompressed 16-bit RGBA is 8).
BYTES_PER_PIXEL_CAP = 8
HEADER_ROOM = 1 << 20
IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".pjpeg",
        ".pjp",
        ".png",
        ".bmp",
        ".dib",
        ".webp",
        ".tif",
        ".tiff",
        ".gif",
        ".pgm",
        ".ppm",
        ".pbm",
        ".pnm",
        ".jp2",
        ".avif",
        ".hdr",
        ".pfm",
        ".ras",
        ".sr",
    }
)
# Image formats OpenCV cannot decode: listed from folders so that they are reported, not silently skipped.
UNSUPPORTED_SUFFIXES = frozenset(
    {".heic", ".heif", ".hif", ".jxl", ".exr", ".psd", ".svg", ".ico", ".dng", ".cr2", ".cr3", ".nef", ".arw"}
)


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (used only to pick files from folders; decoding sniffs)."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_SUFFIXES


def _listed_name(name: str) -> bool:
    """Image names, and names of image formats that cannot be decoded (listed so that they are reported)."""
    dot = name.rfind(".")
    return dot > 0 and (name[dot:].lower() in IMAGE_SUFFIXES or name[dot:].lower() in UNSUPPORTED_SUFFIXES)


def max_file_bytes(max_pixels: int | None) -> int | None:
    """The read limit that goes with a pixel limit (None: no limit)."""
    return None if max_pixels is None else BYTES_PER_PIXEL_CAP * max_pixels + HEADER_ROOM


def read_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Read an image file as BGR uint8; raises :class:`DecodeError` naming the file and the problem.

    ``max_bytes`` bounds the bytes read (default: :func:`max_file_bytes` of ``max_pixels``).
    """
    p = Path(path)
    limit = max_file_bytes(max_pixels) if max_bytes is None else max_bytes
    return decode_image(read_regular_file(p, limit), str(p), max_pixels=max_pixels, min_side=min_side)


_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


# Non-blocking so that no special file can hang the open; the flags are absent on Windows (no FIFOs there).
_OPEN_FLAGS = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _not_regular(p: Path, mode: int) -> DecodeError:
    if stat.S_ISDIR(mode):
        return DecodeError(f"{p}: is a folder, not an image file")
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return DecodeError(f"{p}: is {kind}, not a regular file; only regular files are read as images")


def read_regular_file(p: Path, max_bytes: int | None) -> bytes:
    """The bytes of a regular file (symlinks followed), at most ``max_bytes``; anything else is a DecodeError.

    The type is checked before opening (opening some devices has effects) and again on the open descriptor,
    which is opened non-blocking so that a FIFO swapped in between cannot hang the read.
    """
    try:
        st = os.stat(p)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(p, st.st_mode)
        _check_bytes(p, st.st_size, max_bytes)
        fd = os.open(p, os.O_RDONLY | _OPEN_FLAGS)
    except FileNotFoundError:
        raise DecodeError(f"{p}: no such file") from None
    except OSError as exc:
        raise DecodeError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(p, st.st_mode)
        chunks: list[bytes] = []
        got = 0
        step = max(st.st_size + 1, 1 << 16)  # one read for the whole file: no copy when the chunks are joined
        while max_bytes is None or got <= max_bytes:  # a file that grows while it is read stops past the limit
            chunk = os.read(fd, step if max_bytes is None else min(step, max_bytes + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise DecodeError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)
    _check_bytes(p, got, max_bytes)
    return b"".join(chunks)


def _check_bytes(p: Path, size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise DecodeError(
            f"{p}: file is larger than the read limit of {max_bytes / 2**20:.0f} MiB "
            "(8 bytes per pixel of the pixel limit; raise max_pixels / --max-pixels to read it)"
        )


def decode_image(
    data: bytes,
    origin: str = "<bytes>",
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> np.ndarray:
    """Decode encoded image bytes as BGR uint8 (see the module docstring for the conversions)."""
    header = check_header(data, origin, max_pixels=max_pixels, min_side=min_side)
    flags = cv2.IMREAD_UNCHANGED if header.alpha else cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:  # e.g. OpenCV's own pixel limit, or a corrupt stream it detects late
        raise DecodeError(f"{origin}: cannot decode {header.format} ({one_line(exc, 200)})") from exc
    if img is None or img.size == 0:
        raise DecodeError(f"{origin}: cannot decode {header.format} data (corrupt or truncated file)")
    _check_size(origin, img.shape[1], img.shape[0], max_pixels, min_side)
    return to_bgr8(img)


def check_header(
    data: bytes,
    origin: str = "<bytes>",
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> ImageHeader:
    """Everything checked before pixels are decoded (format, stated size, completeness); for callers that decode
    with their own OpenCV flags (export's face sets and calibration)."""
    if len(data) == 0:
        raise DecodeError(f"{origin}: empty file (0 bytes)")
    header = sniff(data)
    if header is None:
        if video := video_container(data):
            raise DecodeError(f"{origin}: is a video ({video}), not an image; use `edgeemo video`")
        raise DecodeError(f"{origin}: not an image (content starts with {data[:12]!r}, no known image signature)")
    if header.format in UNSUPPORTED_FORMATS:
        raise DecodeError(f"{origin}: {header.format} images are not supported; convert it to JPEG or PNG")
    if header.problem:
        raise DecodeError(f"{origin}: {header.format} {header.problem}; refused before decoding")
    if header.width is None or header.height is None:
        raise DecodeError(
            f"{origin}: {header.format} header does not state the image size where its decoder reads it "
            "(corrupt, or an unusual layout); refused before decoding"
        )
    _check_size(origin, header.width, header.height, max_pixels, min_side)
    _check_complete(data, header, origin)
    return header


def to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any decoded array (gray, gray+alpha, BGR, BGRA; uint8/uint16/float) → contiguous BGR uint8."""
    img = _to_uint8(img)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 2:  # gray + alpha
        return _over_white(cv2.cvtColor(np.ascontiguousarray(img[:, :, 0]), cv2.COLOR_GRAY2BGR), img[:, :, 1])
    if channels == 4:
        return _over_white(np.ascontiguousarray(img[:, :, :3]), img[:, :, 3])
    return np.ascontiguousarray(img)


def _over_white(bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    if alpha.min() == 255:
        return bgr
    a = alpha.astype(np.float32)[:, :, None] * np.float32(1 / 255)
    out = bgr.astype(np.float32) * a + np.float32(255) * (1 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return cv2.convertScaleAbs(img, alpha=1 / 257)
    if img.dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(img.dtype)
        scaled = (img.astype(np.float32) - info.min) * np.float32(255 / (info.max - info.min))
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
    f = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(f.min()), float(f.max())
    if lo >= 0.0 and hi <= 1.0:
        return np.clip(f * 255 + 0.5, 0, 255).astype(np.uint8)
    span = hi - lo if hi > lo else 1.0
    return np.clip((f - lo) * np.float32(255 / span) + 0.5, 0, 255).astype(np.uint8)


def _check_size(origin: str, width: int, height: int, max_pixels: int | None, min_side: int) -> None:
    if width <= 0 or height <= 0:
        raise DecodeError(f"{origin}: header states an empty image ({width}x{height})")
    if min(width, height) < min_side:
        raise DecodeError(
            f"{origin}: image is {width}x{height} pixels, too small to hold a face (minimum {min_side}x{min_side})"
        )
    if max_pixels is not None and width * height > max_pixels:
        raise DecodeError(
            f"{origin}: image is {width}x{height} ({width * height / 1e6:.1f} MP), above the limit of "
            f"{max_pixels / 1e6:.0f} MP (raise max_pixels / --max-pixels to read it)"
        )


def _check_complete(data: bytes, header: ImageHeader, origin: str) -> None:
    """Refuse truncated JPEG and PNG files, which decoders may otherwise return half grey."""
    if header.format == "JPEG":
        sos = data.rfind(b"\xff\xda")
        eoi = data.rfind(b"\xff\xd9")
        if sos < 0 or eoi < sos:
            raise DecodeError(f"{origin}: truncated JPEG (no end-of-image marker after the image data)")
    elif header.format == "PNG" and data.rfind(b"IEND", max(0, len(data) - 64)) < 0:
        raise DecodeError(f"{origin}: truncated PNG (no IEND chunk at the end)")


def natural_key(text: str) -> tuple[tuple[Any, ...], str]:
    """Sort key that orders digit runs by value: ``2.jpg`` before ``10.jpg``; ties broken by the text itself."""
    parts = re.split(r"(\d+)", text)
    return tuple(int(t) if i % 2 else t.casefold() for i, t in enumerate(parts)), text


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Image files (by extension; hidden files and folders skipped) in ``folder``, in natural order of their
    relative paths.

    Entries are listed by name, whatever they are, so that reading them reports what is wrong rather than
    dropping them silently: broken or looping symlinks, FIFOs and devices, files of image formats that cannot
    be decoded (``.heic``, ``.jxl`` ...) and, without ``recursive``, folders named like images. Symlinked
    folders are never followed.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DecodeError(f"{root}: not a folder")
    # os.walk/os.scandir rather than Path.rglob: several times faster on big folders (docs/benchmarks.md).
    found: list[str] = []  # relative POSIX paths

    def unreadable(exc: OSError) -> None:  # an unreadable sub-folder is skipped, as Path.rglob does
        if Path(exc.filename) == root:
            raise DecodeError(f"{root}: cannot list the folder ({exc.strerror or exc})") from exc

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        found.extend(prefix + name for name in filenames if not name.startswith(".") and _listed_name(name))
        # os.walk lists symlinks to folders among dirnames: an image-named one is kept, as a file would be, and
        # so is an image-named folder that will not be walked into.
        found.extend(
            prefix + name
            for name in dirnames
            if not name.startswith(".")
            and is_image_name(name)
            and (not recursive or os.path.islink(os.path.join(dirpath, name)))
        )
        if not recursive:
            break
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    return [root / rel for rel in sorted(found, key=natural_key)]
