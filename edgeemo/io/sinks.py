"""Atomic writers: a reader never sees a half-written JSON, CSV, image, plot or video file.

Each writer writes a temporary file in the destination folder, flushes and fsyncs it, then moves it over the
destination with :func:`os.replace` (atomic on POSIX and Windows within one file system). Temporary files get
fresh, unguessable hidden names (``.<name>.<random>.tmp``), created exclusively and never through a symbolic
link, with the permissions the umask gives. :class:`AtomicFile` is the same for outputs written over a long run
(video JSON lines and CSV). :class:`Journal` is the crash-safe companion for long batch runs: complete CSV rows
appended per batch, so a ``kill -9`` loses at most the batch in flight, and read back tolerating a torn last
line. :func:`prepare_outputs` checks a run's outputs before any work starts; :func:`output_lock` keeps two runs
from writing one output at once.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeemo.errors import InputError, OutputError, printable

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def output_error(path: str | os.PathLike[str], exc: OSError, what: str = "cannot write") -> OutputError:
    """The one-line :class:`OutputError` for an operating-system error on an output."""
    return OutputError(f"{printable(str(path))}: {what} ({exc.strerror or exc})", exc.errno)


def create_temp(dest: str | os.PathLike[str], suffix: str = ".tmp") -> tuple[int, Path]:
    """A new empty file beside ``dest`` under a fresh hidden name: (its descriptor open for writing, its path).

    Created with ``O_EXCL | O_NOFOLLOW``, so a file or link planted under any name is never written through;
    mode 0666 less the umask, like any file the user creates.
    """
    dest = Path(dest)
    for _ in range(64):
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise output_error(dest, exc) from exc
    raise OutputError(f"{printable(str(dest))}: cannot create a temporary file beside it")


class AtomicFile:
    """An output written under a temporary name beside ``path``: :meth:`commit` moves it into place whole,
    :meth:`discard` removes it and leaves any earlier ``path`` untouched."""

    def __init__(self, path: str | os.PathLike[str], mode: str = "w") -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise OutputError(f"{printable(str(self.path))}: output folder {printable(str(self.path.parent))} "
                              "does not exist")  # fmt: skip
        fd, self.temp = create_temp(self.path)
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        self.file: Any = os.fdopen(fd, mode, **kwargs)

    def commit(self) -> Path:
        """Flush, fsync and move the file to its name; an operating-system error becomes :class:`OutputError`."""
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.temp, self.path)
        except OSError as exc:
            self.discard()
            raise output_error(self.path, exc) from exc
        return self.path

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.temp)


def commit_file(temp: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Move ``temp``, a finished file another library wrote by its path (an encoder, a muxer), over ``dest``
    after an fsync, as :meth:`AtomicFile.commit` does; on an operating-system error ``temp`` is removed and
    :class:`OutputError` names ``dest``."""
    temp, dest = Path(temp), Path(dest)
    try:
        fd = os.open(temp, os.O_RDWR | _NOFOLLOW | _CLOEXEC)  # write access: Windows cannot flush a read-only handle
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise output_error(dest, exc) from exc
    return dest


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path``, on error it vanishes.

    An operating-system error while writing (full disk, I/O error) becomes :class:`OutputError` naming ``path``.
    """
    out = AtomicFile(path, mode)
    try:
        yield out.file
    except OSError as exc:
        out.discard()
        if exc.errno is None:  # raised by the caller's own code, not by the file system
            raise
        raise output_error(out.path, exc) from exc
    except BaseException:
        out.discard()
        raise
    out.commit()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def write_csv_atomic(
    path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[Any]], lineterminator: str = "\n"
) -> None:
    with atomic_open(path) as f:
        w = csv.writer(f, lineterminator=lineterminator)
        w.writerow(header)
        w.writerows(rows)


def write_image_atomic(path: str | os.PathLike[str], image: np.ndarray, params: Sequence[int] = ()) -> None:
    """Encode ``image`` by the file's extension and write it atomically."""
    dest = Path(path)
    ok, buf = cv2.imencode(dest.suffix or ".png", image, list(params))
    if not ok:
        raise InputError(f"{dest}: OpenCV cannot encode an image as {dest.suffix!r}")
    with atomic_open(dest, "wb") as f:
        f.write(buf.tobytes())


def write_figure_atomic(path: str | os.PathLike[str], figure: Any, fmt: str) -> None:
    """Save a matplotlib figure (anything with ``savefig(file, format=...)``) as ``fmt`` atomically."""
    with atomic_open(path, "wb") as f:
        figure.savefig(f, format=fmt)


def read_csv_rows(path: str | os.PathLike[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file; an empty file gives an empty header."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], []
    return rows[0], rows[1:]


def _open_nofollow(path: Path, flags: int) -> int:
    """Open a fixed-name side file without following a symbolic link planted under its name."""
    try:
        return os.open(path, flags | _NOFOLLOW | _CLOEXEC, 0o666)
    except OSError as exc:
        if path.is_symlink():
            raise OutputError(f"{printable(str(path))}: is a symbolic link; edgeemo does not write through links "
                              "under the names of its own files (remove it)", exc.errno) from exc  # fmt: skip
        raise output_error(path, exc) from exc


class Journal:
    """Append-only CSV of finished rows; each :meth:`append` is one ``write`` of whole lines.

    After :meth:`append` returns the rows are in the operating system's cache and survive the process being
    killed; a torn last line (power loss mid-write) is dropped by :meth:`read`. The file is never opened
    through a symbolic link.
    """

    def __init__(self, path: str | os.PathLike[str], header: Sequence[str]) -> None:
        self.path = Path(path)
        self.header = list(header)
        self._f: Any = None

    def read(self) -> list[list[str]]:
        """Rows already journaled (empty when the file is absent or from another header)."""
        if not self.path.exists() and not self.path.is_symlink():
            return []
        with open(_open_nofollow(self.path, os.O_RDONLY), encoding="utf-8", errors="replace", newline="") as f:
            text = f.read()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or rows[0] != self.header:
            return []
        return [r for r in rows[1:] if len(r) == len(self.header)]

    def append(self, rows: Sequence[Sequence[Any]]) -> None:
        if self._f is None:
            self._open()
        if rows:
            self._write(rows)

    def rewrite(self, rows: Iterable[Sequence[Any]]) -> None:
        """Replace the journal by exactly ``rows`` (atomically): drops superseded and torn lines."""
        self.close()
        write_csv_atomic(self.path, self.header, rows)

    def _open(self) -> None:
        fd = _open_nofollow(self.path, os.O_RDWR | os.O_CREAT)
        try:
            with open(fd, "rb", closefd=False) as f:
                data = f.read()
            keep = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace") == ",".join(self.header)
            os.ftruncate(fd, data.rfind(b"\n") + 1 if keep else 0)  # drops a torn last line, or a foreign file
            os.lseek(fd, 0, os.SEEK_END)
        except OSError as exc:
            os.close(fd)
            raise output_error(self.path, exc) from exc
        self._f = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115  # closed by close()
        if not keep:
            self._write([self.header])

    def _write(self, rows: Sequence[Sequence[Any]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        try:
            self._f.write(buf.getvalue())
            self._f.flush()
        except OSError as exc:
            raise output_error(self.path, exc) from exc

    def close(self) -> None:
        if self._f is not None:
            f, self._f = self._f, None
            with contextlib.suppress(OSError):  # a failed flush was reported by _write
                f.close()

    def remove(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _real(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def prepare_outputs(outputs: Sequence[tuple[str, Path]], inputs: Sequence[tuple[str, Path]] = ()) -> None:
    """Before any work starts: refuse two outputs, or an output and an input, that are one file (after relative
    paths and symbolic links are resolved), refuse an output that is a folder, and create missing parent folders.

    ``outputs`` and ``inputs`` are (what the user called it, path) pairs, e.g. ``("--probs", Path("p.csv"))``.
    """
    seen: dict[str, str] = {_real(p): what for what, p in inputs}
    for what, p in outputs:
        key = _real(p)
        if key in seen:
            raise InputError(f"{what} and {seen[key]} are the same file {printable(key)}; give each its own name")
        seen[key] = what
        if p.is_dir():
            raise OutputError(f"{printable(str(p))}: cannot write {what} there: it is a folder; give a file name")
    for folder in dict.fromkeys(p.parent for _, p in outputs):
        prepare_folder(folder)


def prepare_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (and its parents) when missing and check that a file can be created in it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(folder, exc, "cannot create the output folder") from exc
    if not folder.is_dir():
        raise OutputError(f"{printable(str(folder))}: is not a folder")
    fd, probe = create_temp(folder / "edgeemo")
    os.close(fd)
    os.unlink(probe)
    return folder


@contextlib.contextmanager
def output_lock(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold an exclusive lock file ``path`` for the run writing ``what``; a second run is refused at once.

    The lock is an ``flock`` (released by the kernel however the process ends); the file is removed on exit.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; runs are not guarded
        yield
        return
    path = Path(path)
    while True:
        fd = _open_nofollow(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"{printable(what)}: another edgeemo run is writing it (it holds {printable(str(path))}); "
                "wait for it to finish or choose another output"
            ) from None
        try:  # the run before us may have removed the file after we opened it: lock the file at the path
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
