"""What an image file's header says, read the way each OpenCV decoder reads it, before any pixel is decoded.

:func:`sniff` names the format from its signature and returns the size the decoder will allocate, read from
the same fields, in the same order and with the same quirks as the decoder (libjpeg's marker walk, libpng's
IHDR-first rule, OpenCV's ``fgets`` for Radiance headers, the AV1 stream behind an AVIF ``ispe``). A header it
cannot read gives no size, and one that can be read two ways (a TIFF stating its size twice) gives a problem:
:mod:`edgeemo.io.images` refuses both rather than decode unchecked.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

MAX_JP2_TILES = 4096  # OpenJPEG keeps a structure per tile: tiny tiles are a bomb of their own (docs/reliability.md)


@dataclass(frozen=True)
class ImageHeader:
    """What the first bytes say: format name, size when the header states it, and whether alpha may follow."""

    format: str
    width: int | None = None
    height: int | None = None
    alpha: bool = False
    problem: str = ""  # why the header cannot be trusted (e.g. its size stated twice), when it cannot


UNSUPPORTED_FORMATS = frozenset({"HEIF/HEIC", "JPEG XL", "OpenEXR", "Photoshop", "BigTIFF", "PAM"})
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


def sniff(data: bytes) -> ImageHeader | None:
    """Name the format from the signature and read the size where its decoder reads it; None if unknown."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(data)
    if data.startswith(b"BM"):
        return _bmp(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(data)
    if data[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6") and data[2:3].isspace():
        return _ascii_size("PNM", data, comments=True)
    if data[:2] in (b"Pf", b"PF") and data[2:3].isspace():
        return _ascii_size("PFM", data, comments=False)
    if data.startswith(b"\x00\x00\x00\x0cjP  ") or data.startswith(b"\xff\x4f\xff\x51"):
        return _jpeg2000(data)
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return _avif(data)
    if data.startswith(b"#?RADIANCE") or data.startswith(b"#?RGBE"):
        return _hdr(data)
    if data.startswith(b"\x59\xa6\x6a\x95"):
        return _sun_raster(data)
    return _unsupported(data)


def _unsupported(data: bytes) -> ImageHeader | None:
    """Image formats OpenCV does not decode, named so that the message says what the file is."""
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return ImageHeader("HEIF/HEIC")
    if data.startswith(b"\xff\x0a") or data.startswith(b"\x00\x00\x00\x0cJXL "):
        return ImageHeader("JPEG XL")
    if data.startswith(b"\x76\x2f\x31\x01"):
        return ImageHeader("OpenEXR")
    if data.startswith(b"8BPS"):
        return ImageHeader("Photoshop")
    if data[:4] in (b"II+\x00", b"MM\x00+"):
        return ImageHeader("BigTIFF")
    if data.startswith(b"P7") and data[2:3].isspace():
        return ImageHeader("PAM")
    return None


def _png(data: bytes) -> ImageHeader:
    if len(data) < 33 or data[12:16] != b"IHDR":  # libpng requires IHDR first
        return ImageHeader("PNG")
    w, h = struct.unpack(">II", data[16:24])
    colour_type = data[25]
    alpha = colour_type in (4, 6) or b"tRNS" in data[33 : 33 + 4096]
    return ImageHeader("PNG", w, h, alpha)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> ImageHeader:
    """Size from the first SOF marker, walking markers as libjpeg does (garbage before a marker is skipped)."""
    i = 2
    n = len(data)
    while i < n:
        while i < n and data[i] != 0xFF:
            i += 1
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == 0x00 or marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # stuffed byte / no length
            continue
        if marker in (0xD9, 0xDA) or i + 2 > n:  # end of image or scan data before any frame header
            break
        if marker in _SOF:
            if i + 7 > n:
                break
            h, w = struct.unpack(">HH", data[i + 3 : i + 7])
            return ImageHeader("JPEG", w, h)
        (length,) = struct.unpack(">H", data[i : i + 2])
        if length < 2:
            break
        i += length
    return ImageHeader("JPEG")


def _gif(data: bytes) -> ImageHeader:
    """The larger of the logical screen and the first frame's extent (a frame may reach past the screen)."""
    n = len(data)
    if n < 13:
        return ImageHeader("GIF")
    w, h = struct.unpack("<HH", data[6:10])
    flags = data[10]
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while i < n:
        if data[i] == 0x21:  # extension: label byte, then sub-blocks up to a zero length
            i += 2
            while i < n and data[i]:
                i += data[i] + 1
            i += 1
        elif data[i] == 0x2C and i + 9 <= n:
            left, top, fw, fh = struct.unpack("<HHHH", data[i + 1 : i + 9])
            return ImageHeader("GIF", max(w, left + fw), max(h, top + fh))
        else:
            break
    return ImageHeader("GIF")


def _bmp(data: bytes) -> ImageHeader:
    """OS/2 headers (12 bytes) hold 16-bit sizes, Windows headers (36 bytes and more) signed 32-bit ones."""
    if len(data) < 26:
        return ImageHeader("BMP", alpha=True)
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:
        w, h = struct.unpack("<HH", data[18:22])
    elif header_size >= 36:
        w, h = struct.unpack("<ii", data[18:26])
    else:
        return ImageHeader("BMP", alpha=True)
    return ImageHeader("BMP", abs(w), abs(h), alpha=True)


_TIFF_SIZE_TYPES = {3: ("H", 2), 4: ("I", 4)}  # SHORT, LONG


def _tiff(data: bytes) -> ImageHeader:
    """Size from the first IFD's ImageWidth/ImageLength tags (a deflated TIFF can be a decompression bomb).

    Each tag must appear once, as one SHORT or LONG: decoders disagree on which of two copies counts.
    """
    end = "<" if data[:2] == b"II" else ">"
    found: dict[int, list[int]] = {256: [], 257: []}
    if len(data) >= 8:
        (ifd,) = struct.unpack(end + "I", data[4:8])
        if ifd + 2 <= len(data):
            (count,) = struct.unpack(end + "H", data[ifd : ifd + 2])
            for k in range(count):
                off = ifd + 2 + 12 * k
                if off + 12 > len(data):
                    break
                tag, kind, n = struct.unpack(end + "HHI", data[off : off + 8])
                if tag not in found:
                    continue
                if kind not in _TIFF_SIZE_TYPES or n != 1:
                    return ImageHeader("TIFF", alpha=True, problem=f"size tag {tag} has type {kind} x {n}")
                fmt, size = _TIFF_SIZE_TYPES[kind]
                found[tag].append(struct.unpack(end + fmt, data[off + 8 : off + 8 + size])[0])
    if len(found[256]) > 1 or len(found[257]) > 1:
        return ImageHeader("TIFF", alpha=True, problem="header states its width or height more than once")
    if not found[256] or not found[257]:
        return ImageHeader("TIFF", alpha=True)
    return ImageHeader("TIFF", found[256][0], found[257][0], alpha=True)


def _ascii_size(fmt: str, data: bytes, comments: bool) -> ImageHeader:
    """Width and height: the first two decimal numbers after the two-byte magic (PNM allows # comments)."""
    numbers = []
    i, n = 2, min(len(data), 4096)
    while len(numbers) < 2 and i < n:
        c = data[i : i + 1]
        if c.isspace():
            i += 1
        elif comments and c == b"#":
            while i < n and data[i : i + 1] not in (b"\n", b"\r"):
                i += 1
        elif c.isdigit():
            j = i
            while j < n and data[j : j + 1].isdigit():
                j += 1
            numbers.append(int(data[i : min(j, i + 12)]) if j - i <= 12 else 1 << 40)
            i = j
        else:
            break
    if len(numbers) < 2:
        return ImageHeader(fmt)
    return ImageHeader(fmt, numbers[0], numbers[1])


def _box_header(data: bytes, i: int, end: int) -> tuple[int, bytes, int]:
    """ISO-BMFF box at ``i``: (length, type, header size); a 64-bit length when the 32-bit one is 1, to ``end``
    when it is 0."""
    length, kind = struct.unpack(">I4s", data[i : i + 8])
    if length == 1 and i + 16 <= end:
        return struct.unpack(">Q", data[i + 8 : i + 16])[0], kind, 16
    if length == 0:
        return end - i, kind, 8
    return length, kind, 8


def _jpeg2000(data: bytes) -> ImageHeader:
    """Size from the codestream's SIZ marker (a bare codestream, or the first ``jp2c`` box of a JP2 file)."""
    if data.startswith(b"\xff\x4f"):
        return _siz(data, 0)
    i, n = 0, len(data)
    while i + 8 <= n:
        length, kind, head = _box_header(data, i, n)
        if kind == b"jp2c":
            return _siz(data, i + head)
        if length < head:
            break
        i += length
    return ImageHeader("JPEG 2000")


def _siz(data: bytes, at: int) -> ImageHeader:
    if data[at : at + 4] != b"\xff\x4f\xff\x51" or at + 42 > len(data):
        return ImageHeader("JPEG 2000")
    x1, y1, x0, y0, tw, th, tx0, ty0 = struct.unpack(">8I", data[at + 8 : at + 40])
    (comps,) = struct.unpack(">H", data[at + 40 : at + 42])
    if not (0 <= x0 < x1 and 0 <= y0 < y1 and tw and th and tx0 <= x0 and ty0 <= y0):
        return ImageHeader("JPEG 2000", problem="SIZ marker is inconsistent")
    if not 1 <= comps <= 4:
        return ImageHeader("JPEG 2000", problem=f"has {comps} components (1 to 4 can be decoded)")
    tiles = -(-(x1 - tx0) // tw) * -(-(y1 - ty0) // th)
    if tiles > MAX_JP2_TILES:
        return ImageHeader("JPEG 2000", problem=f"is cut into {tiles} tiles (at most {MAX_JP2_TILES})")
    return ImageHeader("JPEG 2000", x1 - x0, y1 - y0, alpha=comps in (2, 4))


def _avif(data: bytes) -> ImageHeader:
    """The largest extent stated anywhere: every ``ispe`` property and every AV1 sequence header of every item.

    The AV1 decoder allocates frames by the stream's own sequence header whatever ``ispe`` says, so both are
    read; an AVIF whose AV1 streams cannot be found has no checked size.
    """
    sizes = [struct.unpack(">II", body[4:12]) for body in _boxes(data, (b"meta", b"iprp", b"ipco", b"ispe"))]
    streams = [wh for item in _avif_items(data) if (wh := _av1_size(item)) is not None]
    if not sizes or not streams:
        return ImageHeader("AVIF", alpha=True)
    every = sizes + streams
    return ImageHeader("AVIF", max(w for w, _ in every), max(h for _, h in every), alpha=True)


def _avif_items(data: bytes) -> list[bytes]:
    """The first extent of every item in ``meta/iloc`` (file offsets or ``idat``), truncated to 4 KiB."""
    out: list[bytes] = []
    idat = _boxes(data, (b"meta", b"idat"))
    for body in _boxes(data, (b"meta", b"iloc")):
        try:
            version = body[0]
            sizes = body[4] >> 4, body[4] & 15, body[5] >> 4, (body[5] & 15 if version in (1, 2) else 0)
            offset_size, length_size, base_size, index_size = sizes
            i = 6
            count, i = _uint(body, i, 4 if version == 2 else 2)
            for _ in range(count):
                _, i = _uint(body, i, 4 if version == 2 else 2)  # item ID
                method = 0
                if version in (1, 2):
                    method, i = _uint(body, i, 2)
                    method &= 15
                i += 2  # data reference index
                base, i = _uint(body, i, base_size)
                extents, i = _uint(body, i, 2)
                first: tuple[int, int] | None = None
                for _ in range(extents):
                    i += index_size
                    off, i = _uint(body, i, offset_size)
                    length, i = _uint(body, i, length_size)
                    first = first or (base + off, length)
                if first is None:
                    continue
                source = data if method == 0 else idat[0] if method == 1 and idat else b""
                start, length = first
                out.append(source[start : start + min(length or 4096, 4096)])
        except (_Truncated, IndexError):  # IndexError: the version/size bytes themselves are missing
            break
    return out


class _Truncated(Exception):
    """A box ends before its fields do; caught where the box is parsed, never escapes the module."""


def _uint(body: bytes, i: int, size: int) -> tuple[int, int]:
    if i + size > len(body):
        raise _Truncated
    return int.from_bytes(body[i : i + size], "big"), i + size


def _av1_size(stream: bytes) -> tuple[int, int] | None:
    """``max_frame_width/height`` of the AV1 sequence header among the first OBUs, None when there is none."""
    i = 0
    while i < len(stream):
        head = stream[i]
        kind, has_ext, has_size = (head >> 3) & 15, head & 4, head & 2
        if head & 0x80 or kind not in (1, 2) or not has_size:  # only temporal delimiters come before it
            return None
        i += 2 if has_ext else 1
        size = shift = 0
        for _ in range(8):  # leb128
            if i >= len(stream):
                return None
            size |= (stream[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not stream[i - 1] & 0x80:
                break
        if kind == 1:
            return _av1_sequence_header(stream[i : i + size])
        i += size
    return None


def _av1_sequence_header(obu: bytes) -> tuple[int, int] | None:
    bits = _Bits(obu)
    try:
        bits.read(3)  # seq_profile
        bits.read(1)  # still_picture
        if bits.read(1):  # reduced_still_picture_header
            bits.read(5)
        else:
            decoder_model = False
            buffer_delay = 0
            if bits.read(1):  # timing_info_present_flag
                bits.read(64)
                if bits.read(1):  # equal_picture_interval
                    bits.uvlc()
                decoder_model = bool(bits.read(1))
                if decoder_model:
                    buffer_delay = bits.read(5) + 1
                    bits.read(32 + 5 + 5)
            display_delay = bits.read(1)
            for _ in range(bits.read(5) + 1):  # operating points
                bits.read(12)
                if bits.read(5) > 7:
                    bits.read(1)
                if decoder_model and bits.read(1):
                    bits.read(2 * buffer_delay + 1)
                if display_delay and bits.read(1):
                    bits.read(4)
        wbits, hbits = bits.read(4) + 1, bits.read(4) + 1
        return bits.read(wbits) + 1, bits.read(hbits) + 1
    except IndexError:
        return None


class _Bits:
    """Big-endian bit reader over bytes; reading past the end raises IndexError."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return self.read(zeros) + (1 << zeros) - 1


def _boxes(data: bytes, path: tuple[bytes, ...], start: int = 0, end: int | None = None) -> list[bytes]:
    """Bodies of the ISO-BMFF boxes at ``path`` (``meta`` is a full box: 4 bytes of version and flags)."""
    end = len(data) if end is None else end
    out: list[bytes] = []
    i = start
    while i + 8 <= end and path:
        length, kind, head = _box_header(data, i, end)
        if length < head or i + length > end:
            break
        if kind == path[0]:
            body = i + head + (4 if kind == b"meta" else 0)
            if len(path) == 1:
                if i + length - (i + head) >= 12:
                    out.append(data[i + head : i + length])
            else:
                out += _boxes(data, path[1:], body, i + length)
        i += length
    return out


def _hdr(data: bytes) -> ImageHeader:
    """Radiance: header lines up to an empty one, then ``-Y <height> +X <width>``.

    Lines are cut as OpenCV's reader cuts them (``fgets`` into 128 bytes), so that a long line splits where its
    does and both read the same resolution line.
    """
    i, n = 0, min(len(data), 1 << 16)

    def line() -> bytes | None:
        nonlocal i
        if i >= n:
            return None
        j = data.find(b"\n", i, min(n, i + 127))
        stop = j + 1 if j >= 0 else min(n, i + 127)
        out = data[i:stop]
        i = stop
        return out.split(b"\x00", 1)[0]

    text = line()
    while text not in (None, b"", b"\n"):
        text = line()
    size = line() if text is not None else None
    m = re.match(rb"-Y\s*([+-]?\d{1,10})\s*\+X\s*([+-]?\d{1,10})", size or b"")
    if m is None:
        return ImageHeader("HDR")
    return ImageHeader("HDR", int(m.group(2)), int(m.group(1)))


def _sun_raster(data: bytes) -> ImageHeader:
    if len(data) < 12:
        return ImageHeader("Sun raster")
    w, h = struct.unpack(">II", data[4:12])
    return ImageHeader("Sun raster", w, h)


def _webp(data: bytes) -> ImageHeader:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        flags = data[20]
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
        return ImageHeader("WebP", w, h, alpha=bool(flags & 0x10))
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return ImageHeader("WebP", w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, alpha=True)
    return ImageHeader("WebP", alpha=True)
