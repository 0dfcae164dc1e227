"""The streaming outputs of a video run: one JSON object per frame and one CSV row per face, written as the frames
come and flushed line by line, under a temporary name until :meth:`TextSink.close` moves them into place
(:class:`~edgeemo.io.sinks.AtomicFile`); and the live window.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from edgeemo.errors import InputError
from edgeemo.io.sinks import AtomicFile, output_error
from edgeemo.results import FrameResult, face_csv_header, face_csv_row


class TextSink:
    """A text output written under a temporary name and moved into place by :meth:`close` or dropped by
    :meth:`discard`; a write error marks it failed and names the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failed = False
        self._out = AtomicFile(path)
        self._fh = self._out.file

    def _flush(self, text: str) -> None:
        try:
            self._fh.write(text)
            self._fh.flush()
        except OSError as exc:
            self.failed = True
            raise output_error(self.path, exc) from exc

    def close(self) -> Path:
        return self._out.commit()

    def discard(self) -> None:
        self._out.discard()


class JsonlSink(TextSink):
    """One JSON object per frame (``FrameResult.to_dict()``), flushed per line so a stopped run loses nothing."""

    def write(self, result: FrameResult) -> None:
        self._flush(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")


class CsvSink(TextSink):
    """One row per face per frame (:func:`~edgeemo.results.face_csv_row` with the detection and VA columns)."""

    def __init__(self, path: Path, classes: Sequence[str]) -> None:
        super().__init__(path)
        self.classes = tuple(classes)
        self._buf = io.StringIO()
        self._w = csv.writer(self._buf)
        self._w.writerow(face_csv_header(self.classes))
        self._drain()

    def _drain(self) -> None:
        text = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        self._flush(text)

    def write(self, result: FrameResult) -> None:
        for f in result.faces:
            p = f.prediction
            probs = dict(p.probabilities)
            self._w.writerow(
                face_csv_row(
                    result.index,
                    result.timestamp,
                    f.track_id,
                    p.label,
                    (probs.get(c, 0.0) for c in self.classes),
                    p.valence,
                    p.arousal,
                    p.va_source,
                    face=f.face,
                    confidence=p.confidence,
                )
            )
        self._drain()


def live_window(name: str = "edgeemo") -> Callable[[np.ndarray], bool]:
    """A window showing each frame it is given; the callback returns False once q or Esc is pressed or the window
    is closed. :class:`InputError` when this OpenCV has no GUI."""
    try:
        cv2.namedWindow(name, cv2.WINDOW_NORMAL)
    except cv2.error as exc:
        raise InputError(
            "--show needs an OpenCV build with GUI support; this one is headless "
            "(pip install opencv-python instead of opencv-python-headless)"
        ) from exc

    def show(image: np.ndarray) -> bool:
        cv2.imshow(name, image)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) >= 1

    return show
