"""Video mode of the Python API: frames with timestamps in, tracked and smoothed results out.

:class:`VideoSession` is the per-frame step of ``edgeemo video`` and the one owner of the detection schedule
(:class:`~edgeemo.video.run.VideoRun` only adds the threads that move frames and the outputs around it). Use it
directly when frames come from your own loop::

    with Pipeline() as pipe:
        session = pipe.video_session(detect_every=2)
        for t, frame in my_frames():
            result = session.process(frame, t)   # FrameResult with track ids, smoothed probabilities

or, to detect a few frames ahead on other threads, :meth:`VideoSession.submit` each frame as it arrives and
:meth:`VideoSession.finish` them in the same order.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeemo.detectors._frames import check_frame
from edgeemo.errors import InputError
from edgeemo.results import Face, FaceResult, FrameResult
from edgeemo.video.options import VideoOptions
from edgeemo.video.tracking import IoUTracker, ProbabilitySmoother, SceneCuts

if TYPE_CHECKING:  # the pipeline module imports this one
    from edgeemo.pipeline import Pipeline

Detection = tuple[list[Face], float]  # the faces of a frame and the seconds the detector took


@dataclasses.dataclass(frozen=True)
class PendingFrame:
    """A frame given to :meth:`VideoSession.submit`: its place in the session, whether it starts a new shot, and
    its detection (done, or under way on the session's executor) when it is a detection frame."""

    image: np.ndarray
    number: int
    cut: bool
    detection: Future[Detection] | None
    cut_seconds: float


class VideoSession:
    """Detection every ``detect_every`` frames, IoU tracking with stable ids, per-track smoothing.

    ``options`` (:class:`~edgeemo.video.options.VideoOptions`; keyword ``overrides`` replace single fields) give the
    schedule, the tracker and the smoother. With ``scene_cuts`` (default) a scene cut
    (:class:`~edgeemo.video.tracking.SceneCuts`) ends every track and the cut frame is a detection frame, so no id
    carries over from one shot to the next; ``cuts`` counts them. Timestamps (seconds) must not decrease: a session
    is one stream. With ``detect_every > 1`` the faces of frames without detection are the tracker's boxes, with
    score 0.0. With an ``executor`` detections run on it, ahead of the frames being finished. ``last_detect_s`` /
    ``last_infer_s`` hold the time the last finished frame spent in each step.

    A frame is checked once, here (:meth:`submit`); the pipeline's steps take it as checked (a detector still
    checks its own input, as any public detector does).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        options: VideoOptions | None = None,
        *,
        executor: Executor | None = None,
        **overrides: Any,
    ) -> None:
        opt = dataclasses.replace(options or VideoOptions(), **overrides)
        self.pipeline = pipeline
        self.options = opt
        self.detect_every = opt.detect_every
        self.tracker = IoUTracker(opt.iou_threshold, opt.max_misses)
        self.smoother = ProbabilitySmoother(opt.smoothing)
        self._cuts = SceneCuts() if opt.scene_cuts else None
        self._executor = executor
        self._submitted = 0
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
        """Whether the ``k``-th frame of the session (counting from 0) is a scheduled detection frame."""
        return k % self.detect_every == 0

    def process(
        self,
        frame: np.ndarray,
        timestamp: float,
        index: int | None = None,
        detected: Sequence[Face] | None = None,
    ) -> FrameResult:
        """Track and classify the faces of one frame; ``index`` defaults to the count of frames processed.

        ``detected``: this frame's detections, computed by the caller; only for detection frames (:meth:`detects`).
        """
        self._check_timestamp(timestamp)
        return self.finish(self.submit(frame, detected), timestamp, index)

    def submit(self, frame: np.ndarray, detected: Sequence[Face] | None = None) -> PendingFrame:
        """Take the next frame of the stream: test it for a scene cut and, on a detection frame, start detecting
        (on the executor when there is one). Finish frames with :meth:`finish`, in the order they were submitted."""
        frame = check_frame(frame)
        k = self._submitted
        if detected is not None and not self.detects(k):
            raise InputError(f"detections given for frame {k}, which is not a detection frame")
        t0 = time.perf_counter()
        cut = self._cuts is not None and self._cuts(frame)
        cut_seconds = time.perf_counter() - t0
        detection: Future[Detection] | None = None
        if detected is not None:
            detection = _done((list(detected), 0.0))
        elif self.detects(k) or cut:  # a new shot: detect there, whatever the schedule
            if self._executor is not None:
                detection = self._executor.submit(self._timed_detect, frame)
            else:
                detection = _done(self._timed_detect(frame))
        self._submitted += 1
        return PendingFrame(frame, k, cut, detection, cut_seconds)

    def finish(self, pending: PendingFrame, timestamp: float, index: int | None = None) -> FrameResult:
        """Track, classify and smooth a submitted frame (waiting for its detection); ``index`` defaults to the count
        of frames finished."""
        if pending.number != self.frames:
            raise InputError(f"frame {pending.number} finished out of order: frame {self.frames} is next")
        self._check_timestamp(timestamp)
        detected, detect_s = pending.detection.result() if pending.detection is not None else (None, 0.0)
        t0 = time.perf_counter()
        self._last_timestamp = timestamp
        index = self.frames if index is None else index
        if pending.cut:  # a new shot: nobody in it is anybody tracked so far
            self.smoother.forget(self.tracker.close_all())
        if detected is not None:
            ids: list[int] = self.tracker.update(index, [f.box for f in detected])
            self.smoother.forget(self.tracker.ended)
            current = detected
        else:
            coasted = self.tracker.coast(index)
            ids = [c.track_id for c in coasted]
            current = [Face(c.box, 0.0) for c in coasted]
        raw = self.pipeline._classify(pending.image, current, index=index, timestamp=timestamp, track_ids=ids)
        result = self._smoothed(raw)
        self.last_detect_s = pending.cut_seconds + detect_s
        self.last_infer_s = time.perf_counter() - t0
        self.frames += 1
        self.track_ids.update(f.track_id for f in result.faces if f.track_id is not None)
        return result

    def _check_timestamp(self, timestamp: float) -> None:
        if self._last_timestamp is not None and timestamp < self._last_timestamp:
            raise InputError(
                f"frame timestamps must not decrease: {timestamp:.4f} s after {self._last_timestamp:.4f} s"
            )

    def _timed_detect(self, frame: np.ndarray) -> Detection:
        t0 = time.perf_counter()
        faces = self.pipeline._detect(frame)
        return faces, time.perf_counter() - t0

    def _smoothed(self, result: FrameResult) -> FrameResult:
        if self.smoother.smoothing == 0.0 or not result.faces:
            return result
        faces = tuple(FaceResult(f.face, self.smoother(f.track_id, f.prediction), f.track_id) for f in result.faces)
        return dataclasses.replace(result, faces=faces)


def _done(value: Detection) -> Future[Detection]:
    done: Future[Detection] = Future()
    done.set_result(value)
    return done
