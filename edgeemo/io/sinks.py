"""Atomic writers: a reader never sees a half-written JSON, CSV or image file.

Each writer writes a temporary file in the destination folder, flushes and fsyncs it, then moves it over the
destination with :func:`os.replace` (atomic on POSIX and Windows within one file system). :class:`Journal` is
the crash-safe companion for long batch runs: complete CSV rows appended per batch, so a ``kill -9`` loses at
most the batch in flight, and read back tolerating a torn last line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeemo.errors import InputError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path``, on error it vanishes."""
    dest = Path(path)
    if not dest.parent.is_dir():
        raise InputError(f"{dest}: output folder {dest.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def write_csv_atomic(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with atomic_open(path) as f:
        w = csv.writer(f, lineterminator="\n")
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


def read_csv_rows(path: str | os.PathLike[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file; an empty file gives an empty header."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], []
    return rows[0], rows[1:]


class Journal:
    """Append-only CSV of finished rows; each :meth:`append` is one ``write`` of whole lines.

    After :meth:`append` returns the rows are in the operating system's cache and survive the process being
    killed; a torn last line (power loss mid-write) is dropped by :meth:`read`.
    """

    def __init__(self, path: str | os.PathLike[str], header: Sequence[str]) -> None:
        self.path = Path(path)
        self.header = list(header)
        self._f: Any = None

    def read(self) -> list[list[str]]:
        """Rows already journaled (empty when the file is absent or from another header)."""
        if not self.path.is_file():
            return []
        text = self.path.read_text(encoding="utf-8")
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

    def _open(self) -> None:
        keep = self.path.is_file() and self._first_line() == ",".join(self.header)
        if keep:
            self._drop_torn_line()
        self._f = open(self.path, "a" if keep else "w", encoding="utf-8", newline="")  # noqa: SIM115
        if not keep:
            self._write([self.header])

    def _first_line(self) -> str:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\r\n")

    def _drop_torn_line(self) -> None:
        with open(self.path, "r+b") as f:
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def _write(self, rows: Sequence[Sequence[Any]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        self._f.write(buf.getvalue())
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def remove(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
