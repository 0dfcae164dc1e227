"""One exception hierarchy for the whole library.

The CLI catches :class:`EdgeemoError` at its edge and turns it into a one-line message and an exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno as _errno


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


class OutputError(InputError):
    """An output file or folder cannot be written (read-only folder, full disk, ...); the message names it.

    ``errno`` is the operating system's error number when there is one; :attr:`folder_wide` tells whether the
    next output into the same place would fail the same way (full disk, read-only or vanished folder).
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno

    @property
    def folder_wide(self) -> bool:
        return self.errno in _FOLDER_WIDE


_FOLDER_WIDE = frozenset(
    {_errno.ENOSPC, _errno.EDQUOT, _errno.EROFS, _errno.EACCES, _errno.EPERM, _errno.ENOENT, _errno.EIO}
)


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

    @classmethod
    def unless_installed(cls, what: str, extra: str, modules: tuple[str, ...]) -> None:
        """Raise for the first of ``modules`` that is not installed, before any work (and any traceback)."""
        import importlib.util

        for mod in modules:
            try:
                found = importlib.util.find_spec(mod) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                raise cls(what, extra, f"{mod} is not installed")


class ExportError(EdgeemoError):
    """Export or parity checking failed."""

    exit_code = 6


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``), so a file name cannot split or colour a line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def one_line(error: BaseException | str, limit: int | None = None) -> str:
    """An error's text on one line: its own reason (an OS error's ``strerror``) or message, lines joined by spaces,
    cut to ``limit`` characters; the exception's type name when it has no text."""
    text = error if isinstance(error, str) else getattr(error, "strerror", None) or str(error)
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    if not line:
        return "" if isinstance(error, str) else type(error).__name__
    return line if limit is None or len(line) <= limit else line[: limit - 1] + "…"
