"""Augmentation that imitates deployment crops, vectorised per batch with OpenCV and numpy.

At run time a detector box is widened by a margin, cut with replicated borders and resized (linear) to the
model input. Training faces get the same treatment with jitter: one affine warp per face maps the output
pixel grid onto a randomly scaled (more or less margin), shifted and slightly rotated crop window of the
source face, mirrored half the time, with replicated borders; then brightness and contrast are jittered.
With no jitter the warp equals ``cv2.resize(..., INTER_LINEAR)`` within one grey level (same pixel centres).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentOptions:
    """Ranges of the random crop window and photometric jitter (all uniform)."""

    scale: tuple[float, float] = (0.85, 1.2)  # window side / face side: < 1 zooms in, > 1 adds margin
    shift: float = 0.08  # max shift of the window centre, fraction of the face side, per axis
    rotate_deg: float = 10.0
    flip: bool = True
    brightness: float = 0.12  # max additive shift, fraction of 255
    contrast: tuple[float, float] = (0.75, 1.3)


def _warp_matrix(src: int, out: int, scale: float, dx: float, dy: float, angle: float, flip: bool) -> np.ndarray:
    """2x3 matrix mapping output pixel (u, v) to source coordinates (for ``WARP_INVERSE_MAP``)."""
    k = scale * src / out
    c, s = math.cos(angle) * k, math.sin(angle) * k
    fx = -1.0 if flip else 1.0
    # source = centre + R·diag(fx, 1)·((u + 0.5) - out/2, (v + 0.5) - out/2) - 0.5
    cx, cy = src / 2.0 + dx * src, src / 2.0 + dy * src
    a = np.array([[c * fx, -s], [s * fx, c]])
    t = np.array([cx, cy]) - a @ np.array([out / 2.0 - 0.5, out / 2.0 - 0.5]) - 0.5
    return np.hstack([a, t[:, None]]).astype(np.float64)


def resize_batch(images: np.ndarray, out: int) -> np.ndarray:
    """Plain deployment-style resize of (N, s, s) gray faces to (N, out, out, 1) uint8."""
    return np.stack([cv2.resize(im, (out, out), interpolation=cv2.INTER_LINEAR) for im in images])[..., None]


def augment_batch(images: np.ndarray, out: int, rng: np.random.Generator, opt: AugmentOptions) -> np.ndarray:
    """Randomly framed, mirrored, rotated and photometrically jittered copies, (N, out, out, 1) uint8."""
    n, src = len(images), images.shape[1]
    scale = rng.uniform(*opt.scale, n)
    shift = rng.uniform(-opt.shift, opt.shift, (n, 2))
    angle = np.deg2rad(rng.uniform(-opt.rotate_deg, opt.rotate_deg, n))
    flip = rng.random(n) < 0.5 if opt.flip else np.zeros(n, bool)
    bright = rng.uniform(-opt.brightness, opt.brightness, n) * 255.0
    contrast = rng.uniform(*opt.contrast, n)
    warped = np.empty((n, out, out), np.uint8)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for i in range(n):
        m = _warp_matrix(src, out, scale[i], shift[i, 0], shift[i, 1], angle[i], bool(flip[i]))
        warped[i] = cv2.warpAffine(images[i], m, (out, out), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    x = warped.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    x = (x - mean) * contrast[:, None, None] + mean + bright[:, None, None]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)[..., None]
