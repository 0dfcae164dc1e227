"""A video handed to an image command is named as a video, with the command to use instead."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeemo.cli import app
from edgeemo.errors import DecodeError
from edgeemo.io.containers import video_container
from edgeemo.io.images import read_image

av = pytest.importorskip("av", reason="PyAV (the video extra) writes the sample videos")

# suffix, FFmpeg muxer, encoder, the name the error gives
CONTAINERS = [
    ("mp4", "mp4", "mpeg4", "MP4"),
    ("mov", "mov", "mpeg4", "QuickTime"),
    ("mkv", "matroska", "mpeg4", "Matroska"),
    ("webm", "webm", "libvpx", "WebM"),
    ("avi", "avi", "mpeg4", "AVI"),
    ("ts", "mpegts", "mpeg2video", "MPEG-TS"),
    ("mpg", "mpeg", "mpeg1video", "MPEG-PS"),
    ("flv", "flv", "flv", "FLV"),
    ("wmv", "asf", "wmv2", "ASF/WMV"),
    ("h264", "h264", "libx264", "H.264 stream"),
]


def write_clip(path: Path, muxer: str, encoder: str) -> Path:
    if encoder not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {encoder} encoder")
    with av.open(str(path), mode="w", format=muxer) as out:
        stream = out.add_stream(encoder, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize(("suffix", "muxer", "encoder", "name"), CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_read_image_names_a_video_and_the_video_command(
    tmp_path: Path, suffix: str, muxer: str, encoder: str, name: str
) -> None:
    clip = write_clip(tmp_path / f"clip.{suffix}", muxer, encoder)
    with pytest.raises(DecodeError) as err:
        read_image(clip)
    assert str(err.value) == f"{clip}: is a video ({name}), not an image; use `edgeemo video`"


def test_image_command_on_a_video(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", "mp4", "mpeg4")
    r = CliRunner().invoke(app, ["image", str(clip)])
    assert r.exit_code == 2
    assert "is a video (MP4), not an image; use `edgeemo video`" in r.output


def test_images_and_other_files_are_not_videos(tmp_path: Path) -> None:
    img = np.full((16, 16, 3), 128, np.uint8)
    for ext in (".png", ".jpg", ".bmp", ".tif", ".webp", ".gif"):
        ok, buf = cv2.imencode(ext, img) if ext != ".gif" else (True, b"GIF89a\x10\x00\x10\x00")
        assert ok and video_container(bytes(buf)) is None, ext
    for still in (b"\x00\x00\x00\x1cftypavif", b"\x00\x00\x00\x18ftypheic", b"\x00\x00\x00\x20ftypM4A "):
        assert video_container(still + bytes(64)) is None
    assert video_container(b"hello, this is text" * 40) is None
    assert video_container(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert video_container(b"OggS\x00\x02" + bytes(20) + b"\x01vorbis") is None
    assert video_container(b"\x47" + bytes(400)) is None  # one sync byte is not a transport stream
