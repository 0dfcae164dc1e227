"""Video mode of the Python API: frames with timestamps in, tracked and smoothed results out.

:class:`VideoSession` is the per-frame step that ``edgeemo video`` runs (:class:`~edgeemo.video.run.VideoRun`
adds the threaded reader and the outputs around it). Use it directly when frames come from your own loop::

    with Pipeline() as pipe:
        session = pipe.video_session(detect_every=2)
        for t, frame in my_frames():
            result = session.process(frame, t)   # FrameResult with track ids, smoothed probabilities
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from edgeemo.errors import InputError
from edgeemo.results import Face, FaceResult, FrameResult
from edgeemo.video.tracking import IoUTracker, ProbabilitySmoother, SceneCuts


class FrameEngine(Protocol):
    """What a video session needs of a pipeline: detection and classification of given faces."""

    @property
    def classes(self) -> tuple[str, ...]: ...

    def detect(self, frame: np.ndarray) -> list[Face]: ...

    def classify_faces(
        self,
        frame: np.ndarray,
        faces: Sequence[Face],
        *,
        index: int = 0,
        timestamp: float | None = None,
        source: str | None = None,
        track_ids: Sequence[int | None] | None = None,
    ) -> FrameResult: ...


class VideoSession:
    """Detection every ``detect_every`` frames, IoU tracking with stable ids, per-track smoothing.

    With ``scene_cuts`` (default) a scene cut (:class:`~edgeemo.video.tracking.SceneCuts`) ends every track and the
    cut frame is a detection frame, so no id carries over from one shot to the next; ``cuts`` counts them.
    Timestamps (seconds) must not decrease: a session is one stream. With ``detect_every > 1`` the faces of
    frames without detection are the tracker's boxes, with score 0.0. ``last_detect_s`` / ``last_infer_s``
    hold the time the last frame spent in each step.
    """

    def __init__(
        self,
        engine: FrameEngine,
        detect_every: int = 1,
        smoothing: float = 0.6,
        max_misses: int = 10,
        iou_threshold: float = 0.3,
        scene_cuts: bool = True,
    ) -> None:
        if detect_every < 1:
            raise InputError(f"detect_every must be >= 1, got {detect_every}")
        self.engine = engine
        self.detect_every = detect_every
        self.tracker = IoUTracker(iou_threshold, max_misses)
        self.smoother = ProbabilitySmoother(smoothing)
        self._cuts = SceneCuts() if scene_cuts else None
        self.frames = 0
        self.track_ids: set[int] = set()
        self.last_detect_s = 0.0
        self.last_infer_s = 0.0
        self._last_timestamp: float | None = None

    @property
    def cuts(self) -> int:
        """Scene cuts seen so far."""
        return 0 if self._cuts is None else self._cuts.cuts

    def detects(self, k: int) -> bool:
        """Whether the ``k``-th frame given to :meth:`process` (counting from 0) is a detection frame."""
        return k % self.detect_every == 0

    def process(
        self,
        frame: np.ndarray,
        timestamp: float,
        index: int | None = None,
        detected: Sequence[Face] | None = None,
    ) -> FrameResult:
        """Track and classify the faces of one frame; ``index`` defaults to the count of frames processed.

        ``detected``: this frame's detections, computed ahead by the caller (e.g. on other threads); only for
        detection frames (:meth:`detects`), and then ``last_detect_s`` is 0 (the caller timed it).
        """
        if detected is not None and not self.detects(self.frames):
            raise InputError(f"detections given for frame {self.frames}, which is not a detection frame")
        if self._last_timestamp is not None and timestamp < self._last_timestamp:
            raise InputError(
                f"frame timestamps must not decrease: {timestamp:.4f} s after {self._last_timestamp:.4f} s"
            )
        self._last_timestamp = timestamp
        index = self.frames if index is None else index
        t0 = time.perf_counter()
        cut = self._cuts is not None and self._cuts(frame)
        if cut:  # a new shot: nobody in it is anybody tracked so far
            self.smoother.forget(self.tracker.close_all())
        if self.detects(self.frames) or cut:
            if detected is None:
                detected = self.engine.detect(frame)
            t1 = time.perf_counter()
            ids: list[int] = self.tracker.update(index, [f.box for f in detected])
            self.smoother.forget(self.tracker.ended)
            current = list(detected)
        else:
            t1 = t0
            coasted = self.tracker.coast(index)
            ids = [c.track_id for c in coasted]
            current = [Face(c.box, 0.0) for c in coasted]
        raw = self.engine.classify_faces(frame, current, index=index, timestamp=timestamp, track_ids=ids)
        result = self._smoothed(raw)
        self.last_detect_s = t1 - t0
        self.last_infer_s = time.perf_counter() - t1
        self.frames += 1
        self.track_ids.update(f.track_id for f in result.faces if f.track_id is not None)
        return result

    def _smoothed(self, result: FrameResult) -> FrameResult:
        if self.smoother.smoothing == 0.0 or not result.faces:
            return result
        faces = tuple(FaceResult(f.face, self.smoother(f.track_id, f.prediction), f.track_id) for f in result.faces)
        return dataclasses.replace(result, faces=faces)
