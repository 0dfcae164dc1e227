"""The detector interface and the one registry of detectors.

A detector takes a BGR uint8 frame and returns :class:`~edgeemo.results.Face` objects in frame pixels.
Built-in detectors register themselves in :mod:`edgeemo.detectors`; third-party packages add theirs through
the entry-point group ``edgeemo.detectors`` (``name = "package.module:factory"``), where the factory is
called with the detector's keyword options and returns an object following :class:`Detector`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import TYPE_CHECKING, Any, Protocol

from edgeemo.errors import InputError, MissingDependencyError

if TYPE_CHECKING:  # listing detectors needs neither
    import numpy as np

    from edgeemo.results import Face

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "edgeemo.detectors"


class Detector(Protocol):
    """A face detector. One that sets ``thread_safe = True`` (a class attribute) may have ``detect`` called from
    several threads at once; video runs then detect frames ahead on every core. Without it, calls are serial.

    One that also sets ``cpu_heavy = True`` takes tens of milliseconds of CPU per frame (dlib): while a video
    is encoded, runs still give it every core, since the encoder's share is small beside it. A light detector
    (BlazeFace) leaves one core to the encoder. The built-in detectors share
    :class:`~edgeemo.detectors.common.DetectorBase`."""

    name: str

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in a BGR uint8 frame, boxes in that frame's pixels, best first."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DetectorInfo:
    """What ``edgeemo detectors`` shows about one registered detector."""

    name: str
    description: str
    extra: str | None  # pip extra that provides its dependencies, None when core
    available: bool
    reason: str = ""  # why it is unavailable
    versions: tuple[str, ...] = ()  # "dist version" of each installed requirement whose distribution is known


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Detector]
    description: str
    extra: str | None
    requires: tuple[str, ...]  # importable modules the detector needs
    distributions: tuple[str, ...]  # pip distributions that may provide them (for their versions)


_REGISTRY: dict[str, _Entry] = {}
_entry_points_loaded = False


def register(
    name: str,
    factory: Callable[..., Detector],
    description: str,
    extra: str | None = None,
    requires: tuple[str, ...] = (),
    distributions: tuple[str, ...] | None = None,
) -> None:
    """Add a detector to the registry; the factory is called only when the detector is created.

    ``requires`` names the top-level modules it imports; ``distributions`` the pip distributions that may
    provide them (default: the module names), used only to show their versions.
    """
    _REGISTRY[name] = _Entry(
        factory, description, extra, requires, requires if distributions is None else distributions
    )


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        register(ep.name, _lazy_entry_point(ep.value), f"third-party detector ({ep.value})")


def _lazy_entry_point(value: str) -> Callable[..., Detector]:
    def factory(**options: Any) -> Detector:
        module, _, attr = value.partition(":")
        return getattr(importlib.import_module(module), attr)(**options)

    return factory


def _missing(requires: tuple[str, ...]) -> str:
    """Why a requirement is not installed, without importing it: importing mediapipe, for one, imports
    TensorFlow where that is installed, and takes seconds."""
    for mod in requires:
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):  # a broken parent package, or a module without a spec
            found = False
        if not found:
            return f"{mod} is not installed"
    return ""


def _versions(distributions: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for dist in distributions:
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            continue
    return tuple(out)


def list_detectors() -> list[DetectorInfo]:
    """Every registered detector and whether its dependencies are installed (found, not imported)."""
    _load_entry_points()
    infos = []
    for name, e in _REGISTRY.items():
        reason = _missing(e.requires)
        infos.append(DetectorInfo(name, e.description, e.extra, not reason, reason, _versions(e.distributions)))
    return infos


def detector_names() -> list[str]:
    _load_entry_points()
    return list(_REGISTRY)


def create_detector(name: str, **options: Any) -> Detector:
    """Build a registered detector; a missing optional dependency names the pip extra to install."""
    _load_entry_points()
    if name not in _REGISTRY:
        raise InputError(f"unknown detector {name!r}; available: {', '.join(_REGISTRY)}")
    e = _REGISTRY[name]
    reason = _missing(e.requires)
    if reason:
        raise MissingDependencyError(f"detector {name!r}", e.extra or "cpu", reason)
    try:
        return e.factory(**options)
    except ImportError as exc:  # installed but broken (a missing shared library, a partial install)
        if exc.name is None or exc.name.partition(".")[0] not in e.requires:
            raise
        raise MissingDependencyError(
            f"detector {name!r}", e.extra or "cpu", f"cannot import {exc.name} ({exc})"
        ) from exc
