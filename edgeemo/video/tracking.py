"""Video tracking: stable face ids from box overlap, and per-track smoothing of the model's outputs.

:class:`IoUTracker` matches each frame's detections to live tracks greedily by intersection-over-union
(against each track's position predicted from its recent motion), starts a track for every unmatched
detection and ends a track after ``max_misses`` consecutive detection frames without a match. Between
detection frames (``--detect-every N``) :meth:`IoUTracker.coast` moves the live tracks along their
velocity so faces can be classified without running the detector.

:class:`SceneCuts` tells a scene cut from motion with a cheap test on a small grey thumbnail of each frame, so
a video session can end every track at a cut instead of letting an overlapping box carry an id from one person
to the next shot's.

:class:`ProbabilitySmoother` keeps an exponential moving average of each track's probabilities (and
valence/arousal) so labels do not flicker from frame to frame; ``smoothing=0`` passes raw outputs through.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgeemo.errors import InputError
from edgeemo.results import Box, Prediction, iou_matrix
from edgeemo.video.options import VideoOptions

_DEFAULTS = VideoOptions()


@dataclass(frozen=True, slots=True)
class TrackedBox:
    """A live track's id and its box predicted for the current frame."""

    track_id: int
    box: Box


class _Track:
    __slots__ = ("box", "id", "last_frame", "misses", "vx", "vy")

    def __init__(self, track_id: int, box: Box, frame: int) -> None:
        self.id = track_id
        self.box = box  # last detected box
        self.last_frame = frame  # frame index of that detection
        self.misses = 0
        self.vx = 0.0  # centre velocity, pixels per frame
        self.vy = 0.0

    def predicted(self, frame: int) -> Box:
        k = frame - self.last_frame
        if k <= 0 or (self.vx == 0.0 and self.vy == 0.0):
            return self.box
        dx, dy = self.vx * k, self.vy * k
        b = self.box
        return Box(b.x1 + dx, b.y1 + dy, b.x2 + dx, b.y2 + dy)


class IoUTracker:
    """Greedy IoU tracker with stable integer ids (1, 2, 3, … in order of appearance).

    Call :meth:`update` on frames where the detector ran and :meth:`coast` on frames where it did not;
    frame indices must increase. Ids of tracks that ended are reported by :attr:`ended` after each call.
    """

    def __init__(
        self,
        iou_threshold: float = _DEFAULTS.iou_threshold,
        max_misses: int = _DEFAULTS.max_misses,
        velocity_smoothing: float = 0.5,
    ) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise InputError(f"tracker iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_misses < 0:
            raise InputError(f"tracker max_misses must be >= 0, got {max_misses}")
        self.iou_threshold = float(iou_threshold)
        self.max_misses = int(max_misses)
        self._vs = float(velocity_smoothing)
        self._tracks: list[_Track] = []
        self._next_id = 1
        self.ended: list[int] = []

    @property
    def live_ids(self) -> list[int]:
        return [t.id for t in self._tracks]

    def update(self, frame: int, boxes: Sequence[Box]) -> list[int]:
        """Match this frame's detections; return one track id per box, in the order of ``boxes``."""
        self.ended = []
        predicted = [t.predicted(frame) for t in self._tracks]
        iou = iou_matrix(predicted, boxes)
        ids: list[int | None] = [None] * len(boxes)
        matched_tracks: set[int] = set()
        if iou.size:
            order = np.argsort(iou, axis=None)[::-1]
            for flat in order:
                ti, bi = divmod(int(flat), len(boxes))
                if iou[ti, bi] < self.iou_threshold:
                    break
                if ti in matched_tracks or ids[bi] is not None:
                    continue
                matched_tracks.add(ti)
                self._match(self._tracks[ti], boxes[bi], frame)
                ids[bi] = self._tracks[ti].id
        survivors = []
        for ti, t in enumerate(self._tracks):
            if ti not in matched_tracks:
                t.misses += 1
                if t.misses > self.max_misses:
                    self.ended.append(t.id)
                    continue
            survivors.append(t)
        self._tracks = survivors
        for bi, box in enumerate(boxes):
            if ids[bi] is None:
                t = _Track(self._next_id, box, frame)
                self._next_id += 1
                self._tracks.append(t)
                ids[bi] = t.id
        return [i for i in ids if i is not None]

    def coast(self, frame: int) -> list[TrackedBox]:
        """Live tracks at ``frame`` without a detection: boxes moved along each track's velocity.

        Tracks that missed their last detection are not shown (their face may be gone) but stay alive
        until the next :meth:`update` decides.
        """
        self.ended = []
        return [TrackedBox(t.id, t.predicted(frame)) for t in self._tracks if t.misses == 0]

    def _match(self, t: _Track, box: Box, frame: int) -> None:
        k = frame - t.last_frame
        if k > 0:
            old, new = t.box, box
            vx = ((new.x1 + new.x2) - (old.x1 + old.x2)) / (2 * k)
            vy = ((new.y1 + new.y2) - (old.y1 + old.y2)) / (2 * k)
            t.vx = self._vs * t.vx + (1 - self._vs) * vx
            t.vy = self._vs * t.vy + (1 - self._vs) * vy
        t.box = box
        t.last_frame = frame
        t.misses = 0

    def close_all(self) -> list[int]:
        """End every live track (a scene cut); return their ids."""
        ids = [t.id for t in self._tracks]
        self._tracks = []
        self.ended = ids
        return ids


class SceneCuts:
    """Scene-cut test on consecutive frames: a cut when both the mean absolute difference of 64x36 grey thumbnails
    (0-255) and half the L1 distance of their 32-bin histograms (0-1) reach their thresholds.

    The thumbnail difference alone also fires on fast pans, the histogram alone on lighting changes; both together
    mark a new picture. The thresholds sit between the largest values measured within shots and those at a cut
    (``python -m benchmarks.scene_cuts``; figures in docs/benchmarks.md).
    """

    SIZE = (64, 36)

    def __init__(self, min_difference: float = 25.0, min_histogram: float = 0.1) -> None:
        self.min_difference = float(min_difference)
        self.min_histogram = float(min_histogram)
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self.cuts = 0

    def __call__(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` starts a new shot (never the first frame)."""
        measured = self.scores(frame)
        cut = measured is not None and measured[0] >= self.min_difference and measured[1] >= self.min_histogram
        self.cuts += cut
        return cut

    def scores(self, frame: np.ndarray) -> tuple[float, float] | None:
        """(thumbnail difference, histogram distance) of ``frame`` against the frame before; None for the first."""
        w, h = self.SIZE
        # sample pixels before shrinking: shrinking the whole frame would cost more than the cut test itself
        step = max(1, min(frame.shape[0] // (2 * h), frame.shape[1] // (2 * w)))
        small = cv2.resize(frame[::step, ::step], self.SIZE, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        hist = np.bincount((grey >> 3).ravel(), minlength=32) / grey.size
        prev, self._prev = self._prev, (grey, hist)
        if prev is None:
            return None
        return float(np.abs(grey.astype(np.int16) - prev[0]).mean()), 0.5 * float(np.abs(hist - prev[1]).sum())


class ProbabilitySmoother:
    """Exponential moving average per track: ``s_t = smoothing * s_{t-1} + (1 - smoothing) * x_t``.

    ``smoothing`` is the weight of the history in [0, 1): 0 returns raw outputs, 0.6 (about a 2.5-frame time
    constant) removes single-frame flicker at 25–30 fps. Valence/arousal are smoothed the same way.
    """

    def __init__(self, smoothing: float = _DEFAULTS.smoothing) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise InputError(f"smoothing must be in [0, 1) (0 = off), got {smoothing}")
        self.smoothing = float(smoothing)
        self._state: dict[int, tuple[np.ndarray, float | None, float | None]] = {}

    def __call__(self, track_id: int | None, pred: Prediction) -> Prediction:
        if self.smoothing == 0.0 or track_id is None:
            return pred
        names = [n for n, _ in pred.probabilities]
        x = np.array([p for _, p in pred.probabilities], dtype=np.float64)
        prev = self._state.get(track_id)
        if prev is None or len(prev[0]) != len(x):
            s, v, a = x, pred.valence, pred.arousal
        else:
            w = self.smoothing
            s = w * prev[0] + (1 - w) * x
            v = _ema(prev[1], pred.valence, w)
            a = _ema(prev[2], pred.arousal, w)
        self._state[track_id] = (s, v, a)
        return Prediction.from_probabilities(names, s, v, a, pred.va_source)

    def forget(self, track_ids: Iterable[int]) -> None:
        for i in track_ids:
            self._state.pop(i, None)


def _ema(prev: float | None, new: float | None, w: float) -> float | None:
    if new is None:
        return None
    if prev is None:
        return new
    return w * prev + (1 - w) * new
