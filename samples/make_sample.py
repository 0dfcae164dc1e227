"""Generate ``samples/astronaut.mp4``, the default clip of ``edgeemo video``.

A virtual camera moves over scikit-image's ``astronaut`` photograph (Eileen Collins, NASA, public domain):
a slow zoom towards the face, a gentle pan, a small rotation and a little hand-held sway, 6 s at 25 fps,
640x480, encoded as H.264 (yuv420p, +faststart) with PyAV so it plays in browsers.

Run from the repository root:  python samples/make_sample.py  (needs scikit-image and av: the dev extra)
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data

WIDTH, HEIGHT, FPS, SECONDS = 640, 480, 25, 6.0
OUT = Path(__file__).resolve().parent / "astronaut.mp4"


def ease(t: float) -> float:
    """Smooth start and stop (cosine ease-in-out) on [0, 1]."""
    return 0.5 - 0.5 * math.cos(math.pi * min(max(t, 0.0), 1.0))


def camera(t: float) -> tuple[float, float, float, float]:
    """Window centre (x, y), window width and rotation (degrees) in the photo at time fraction ``t``."""
    e = ease(t)
    width = 440.0 + (300.0 - 440.0) * e  # zoom in: the face grows from about 130 to 190 px
    cx = 250.0 + (226.0 - 250.0) * e + 5.0 * math.sin(2 * math.pi * 0.35 * t * SECONDS)
    cy = 172.0 + (136.0 - 172.0) * e + 3.0 * math.sin(2 * math.pi * 0.5 * t * SECONDS + 1.0)
    angle = 2.5 * math.sin(2 * math.pi * 0.2 * t * SECONDS) + 0.6 * math.sin(2 * math.pi * 1.1 * t * SECONDS)
    return cx, cy, width, angle


def render(photo: np.ndarray, t: float) -> np.ndarray:
    cx, cy, width, angle = camera(t)
    scale = WIDTH / width
    # Rotate and scale about the window centre, then move that centre to the middle of the output frame.
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += WIDTH / 2 - cx
    m[1, 2] += HEIGHT / 2 - cy
    return cv2.warpAffine(photo, m, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def main() -> int:
    photo = np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # RGB -> BGR
    n = round(FPS * SECONDS)
    with av.open(str(OUT), "w", format="mp4", container_options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "26", "preset": "slow"}
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(render(photo, i / (n - 1)), format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    print(f"wrote {OUT} ({n} frames, {OUT.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
