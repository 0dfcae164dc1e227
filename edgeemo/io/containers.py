"""Video containers recognised from a file's first bytes, so that a video handed to an image command is named as
one (and the user pointed to ``edgeemo video``) instead of being called "not an image"."""

from __future__ import annotations

# ISO base media brands that are still images or audio, not video.
_NOT_VIDEO_BRANDS = frozenset(
    {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"M4A ", b"M4B "}
)
_TS_PACKET = 188


def video_container(data: bytes) -> str | None:
    """The container format's name when ``data`` starts like a video file (MP4, QuickTime, Matroska, WebM,
    AVI, MPEG-TS, MPEG-PS, FLV, ASF/WMV, Ogg Theora, raw H.264), else None."""
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _NOT_VIDEO_BRANDS:
            return None
        if brand == b"qt  ":
            return "QuickTime"
        return "3GP" if brand.startswith(b"3g") else "MP4"
    if data[4:8] in (b"moov", b"mdat", b"wide") and len(data) >= 8:
        return "QuickTime"
    if data.startswith(b"\x1a\x45\xdf\xa3"):  # EBML
        return "WebM" if b"webm" in data[:64] else "Matroska"
    if data.startswith(b"RIFF") and data[8:12] == b"AVI ":
        return "AVI"
    if _packets(data, 0, _TS_PACKET) or _packets(data, 4, _TS_PACKET + 4):  # 192-byte packets: M2TS
        return "MPEG-TS"
    if data.startswith(b"\x00\x00\x01\xba"):
        return "MPEG-PS"
    if data.startswith(b"\x00\x00\x01\xb3"):
        return "MPEG video"
    if data.startswith(b"FLV\x01"):
        return "FLV"
    if data.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "ASF/WMV"
    if data.startswith(b"OggS") and b"theora" in data[:64]:
        return "Ogg Theora"
    if data.startswith(b"\x00\x00\x00\x01") and len(data) > 4 and data[4] & 0x1F in (7, 9):  # SPS or AUD NAL
        return "H.264 stream"
    return None


def _packets(data: bytes, offset: int, size: int) -> bool:
    """Three sync bytes (0x47) one packet apart, the MPEG transport stream's framing."""
    return len(data) > offset + 2 * size and all(data[offset + i * size] == 0x47 for i in range(3))
