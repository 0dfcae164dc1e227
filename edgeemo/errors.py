"""One exception hierarchy for the whole library.

The CLI catches :class:`EdgeemoError` at its edge and turns it into a one-line message and an exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeemoError(Exception):
    """Base class of every error edgeemo raises on purpose."""

    exit_code = 1


class ModelError(EdgeemoError):
    """A model file is missing, corrupt, untrusted or its metadata does not match its graph."""

    exit_code = 3


class InputError(EdgeemoError):
    """An input (image, video, folder, argument) cannot be used; the message names the input."""

    exit_code = 2


class DecodeError(InputError):
    """An image or video could not be decoded."""


class DeviceError(EdgeemoError):
    """An execution provider that was strictly required is not available."""

    exit_code = 4


class MissingDependencyError(EdgeemoError):
    """An optional dependency is not installed; the message names the pip extra."""

    exit_code = 5

    def __init__(self, what: str, extra: str, detail: str = "") -> None:
        self.what = what
        self.extra = extra
        msg = f"{what} needs an optional dependency: pip install 'edgeemo[{extra}]'"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class ExportError(EdgeemoError):
    """Export or parity checking failed."""

    exit_code = 6
