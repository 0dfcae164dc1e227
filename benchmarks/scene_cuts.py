"""Scene-cut scores of consecutive frames, to place :class:`edgeemo.video.tracking.SceneCuts`' thresholds.

For each pair of frames: the mean absolute difference of 64x36 grey thumbnails (0-255) and half the L1 distance of
their 32-bin histograms (0-1), on the shipped sample clip, the shared interview clip (when ../shared is present)
and the two-shot clip of tests/test_scene_cuts.py (a cut after frame 14). Prints the largest scores within shots
and the scores at the cut. ``python -m benchmarks.scene_cuts``
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgeemo.video.reader import FrameReader
from edgeemo.video.tracking import SceneCuts

ROOT = Path(__file__).resolve().parents[1]
SHOT = 14


def scores(frames: list[np.ndarray]) -> np.ndarray:
    """(difference, histogram distance) per consecutive pair."""
    test = SceneCuts()
    return np.array([m for m in map(test.scores, frames) if m is not None])


def two_shots() -> list[np.ndarray]:
    """Shot A: the astronaut drifting right; shot B: her face mirrored on the coffee photo, where shot A ends."""
    from skimage import data

    face = cv2.cvtColor(cv2.resize(data.astronaut(), (320, 320)), cv2.COLOR_RGB2BGR)
    other = cv2.cvtColor(cv2.resize(data.coffee(), (320, 320)), cv2.COLOR_RGB2BGR)
    other[10:210, 26:206] = cv2.flip(face[10:210, 90:270], 1)
    return [np.roll(face, k, axis=1) for k in range(SHOT)] + [np.roll(other, k, axis=1) for k in range(SHOT)]


def _clip(path: Path) -> list[np.ndarray]:
    with FrameReader(path) as r:
        return [f.image for f in r]


def main() -> None:
    cases = {"samples/astronaut.mp4 (zoom)": _clip(ROOT / "samples" / "astronaut.mp4")}
    shared = ROOT.parent / "shared" / "data" / "videos" / "1zlab_face.mp4"
    if shared.is_file():
        cases["1zlab_face.mp4 (interview)"] = _clip(shared)
    cases["two shots (cut after frame 14)"] = two_shots()
    cut = SceneCuts()
    print(f"thresholds: difference >= {cut.min_difference}, histogram >= {cut.min_histogram}")
    for name, frames in cases.items():
        s = scores(frames)
        within = np.delete(s, SHOT - 1, axis=0) if name.startswith("two shots") else s
        line = f"{name}: {len(frames)} frames; largest within shots: difference {within[:, 0].max():.1f}, "
        line += f"histogram {within[:, 1].max():.3f}"
        if name.startswith("two shots"):
            line += f"; at the cut: difference {s[SHOT - 1, 0]:.1f}, histogram {s[SHOT - 1, 1]:.3f}"
        print(line)


if __name__ == "__main__":
    main()
