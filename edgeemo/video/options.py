"""How a video is processed: the one table of video defaults, read by the library and by ``edgeemo video``."""

from __future__ import annotations

from dataclasses import dataclass

from edgeemo.errors import InputError
from edgeemo.video.reader import DEFAULT_STREAM_TIMEOUT


@dataclass(frozen=True)
class VideoOptions:
    """Options of a video session (the first five) and of a whole run (the CLI options of the same names).

    The tracker and the smoother check their own values (:mod:`edgeemo.video.tracking`), the reader the timeout.
    """

    detect_every: int = 1  # run the detector on every n-th frame; the tracker moves boxes in between
    smoothing: float = 0.6  # weight of a track's past probabilities, in [0, 1); 0: raw outputs
    max_misses: int = 10  # a track ends after this many detection frames without a match
    iou_threshold: float = 0.3  # least box overlap that continues a track
    scene_cuts: bool = True  # end every track at a scene cut (see VideoSession)
    queue_size: int = 8
    live: bool | None = None  # None: live for webcams and streams, not for files
    # Frames whose detection runs ahead on worker threads while the calling thread tracks, classifies and
    # outputs earlier ones. None: one per CPU (at most 4; one CPU fewer when a video is encoded, unless the
    # detector is CPU-heavy) for a thread-safe detector, else 1 (detection still overlaps the rest).
    # 0: detect on the calling thread.
    detect_ahead: int | None = None
    stream_timeout: float = DEFAULT_STREAM_TIMEOUT  # seconds a stream may send nothing before it has timed out

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise InputError(f"detect_every must be >= 1, got {self.detect_every}")
        if self.queue_size < 1:
            raise InputError(f"queue_size must be >= 1, got {self.queue_size}")
        if self.detect_ahead is not None and self.detect_ahead < 0:
            raise InputError(f"detect_ahead must be >= 0, got {self.detect_ahead}")
