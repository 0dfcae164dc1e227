""":class:`DetectorBase`: what the built-in detectors share, so each of them holds only its model's own code.

Kept apart from :mod:`edgeemo.detectors.base` (the interface and the registry), which lists detectors without
importing numpy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, TypeVar

from edgeemo.detectors._frames import check_frame
from edgeemo.errors import EdgeemoError

if TYPE_CHECKING:
    import numpy as np

    from edgeemo.results import Face

_D = TypeVar("_D", bound="DetectorBase")


class DetectorBase(ABC):
    """A :class:`~edgeemo.detectors.Detector` with the frame check, lifetime and output order done once.

    :meth:`detect` checks the frame, refuses after :meth:`close` and orders the subclass's faces best first
    (highest score; readers' left-to-right numbering is :meth:`edgeemo.Pipeline.detect`'s). A subclass sets
    ``name`` (and ``thread_safe`` / ``cpu_heavy`` as the protocol describes), finds faces in :meth:`_detect`
    and frees its model in :meth:`_release`.
    """

    name: ClassVar[str]
    thread_safe: ClassVar[bool] = False
    cpu_heavy: ClassVar[bool] = False
    _closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in a BGR (H, W, 3) or gray uint8 frame, boxes in its pixels and inside it, best first."""
        frame = check_frame(frame, self.name)
        if self._closed:
            raise EdgeemoError(f"detector {self.name!r} was closed")
        return sorted(self._detect(frame), key=lambda f: f.score, reverse=True)  # stable: ties keep their order

    @abstractmethod
    def _detect(self, frame: np.ndarray) -> list[Face]:
        """Faces of a checked frame (gray (H, W) or BGR (H, W, 3) uint8), boxes clipped to it, in any order."""

    @abstractmethod
    def _release(self) -> None:
        """Free the model (session, network, pool); called once, by the first :meth:`close`."""

    def close(self) -> None:
        """Free the model; :meth:`detect` raises afterwards. Closing again does nothing."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self: _D) -> _D:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
