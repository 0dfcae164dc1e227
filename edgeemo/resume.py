"""What a ``classify`` result depends on, so that a resumed run reuses a row only when nothing it depends on changed.

Each journaled row carries a digest of the input file's bytes and a *run key*: a digest of the model file that
was loaded (so another ``--precision``, CPU layout or re-exported model differs) and of the options that change
the answer (precision, face detection, detector and its options, crop margins). Execution options that only
change speed or the last float digits (device, threads, graph optimisation, batch size, workers) are not part
of it. A row is reused when its file's digest and the run key both match; otherwise it is re-run, and the
reason is counted (:data:`NEW`, :data:`NO_RECORD`, :data:`INPUT_CHANGED`, :data:`MODEL_CHANGED`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeemo.errors import InputError, printable
from edgeemo.io.sinks import Journal, read_csv_rows

SUBMISSION_HEADER = ["image_path", "emotion"]
JOURNAL_COLUMNS = ["image_path", "input_sha256", "run_key", "emotion"]

NEW = "new"
NO_RECORD = "no record of what produced them"
INPUT_CHANGED = "input changed"
MODEL_CHANGED = "model or options changed"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Record:
    """An earlier result: its label, probabilities (None when unknown) and what it was computed from
    (empty digest and key for rows found only in an output file)."""

    label: str
    probs: tuple[str, ...] | None = None
    digest: str = ""
    key: str = ""


@dataclass(frozen=True)
class ResumePlan:
    """Which files to (re-)run, with the reason per file, and how many earlier rows are reused."""

    todo: tuple[str, ...]
    reasons: Mapping[str, str]  # image_path -> reason, for every entry of todo
    reused: int


def file_digest(path: str | os.PathLike[str]) -> str | None:
    """SHA-256 (first 32 hex digits) of a regular file's bytes; None for anything else (FIFO, device, folder,
    unreadable), found without blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h = hashlib.sha256()
        try:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        except OSError:
            return None
    return h.hexdigest()[:32]


def bytes_digest(data: bytes) -> str:
    """:func:`file_digest` of a file holding ``data`` (for inputs read once and sent elsewhere to decode)."""
    return hashlib.sha256(data).hexdigest()[:32]


def run_key(model_file: str | os.PathLike[str], options: Mapping[str, Any]) -> str:
    """Digest of the loaded model file and the options that change the answer (JSON-serialisable values)."""
    model_digest = file_digest(model_file) or ""
    blob = json.dumps({"model": model_digest, **options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def journal_for(path: str | os.PathLike[str], classes: Sequence[str]) -> Journal:
    return Journal(path, [*JOURNAL_COLUMNS, *classes])


def journal_row(rel: str, digest: str, key: str, label: str, probs: Sequence[str]) -> list[str]:
    return [rel, digest, key, label, *probs]


def load_records(
    out: Path, probs_out: Path | None, journal: Journal, classes: Sequence[str]
) -> dict[str, Record]:
    """Earlier results: rows of the output (and probabilities file) without a record, then the journal's
    records (the last one per file wins). Foreign files under the output names are refused, not overwritten."""
    done: dict[str, Record] = {}
    if out.is_file():
        header, rows = read_csv_rows(out)
        if header and header != SUBMISSION_HEADER:
            raise InputError(f"{out}: exists but its header is {header}, not {SUBMISSION_HEADER}; use --fresh")
        done = {r[0]: Record(r[1]) for r in rows if len(r) == 2}
    if probs_out is not None and probs_out.is_file():
        header, rows = read_csv_rows(probs_out)
        if header and header != ["image_path", *classes]:
            raise InputError(f"{probs_out}: its header {header} does not match this model's classes; use --fresh")
        for r in rows:
            if r and r[0] in done and len(r) == len(classes) + 1:
                done[r[0]] = Record(done[r[0]].label, tuple(r[1:]))
    for r in journal.read():
        done[r[0]] = Record(r[3], tuple(r[4:]), r[1], r[2])
    return done


def plan_resume(
    files: Sequence[Path],
    rels: Sequence[str],
    done: Mapping[str, Record],
    key: str,
    classes: Sequence[str],
    origin: str | os.PathLike[str],
) -> ResumePlan:
    """Compare each file with its earlier record; earlier rows kept without re-running must hold known labels."""
    reasons: dict[str, str] = {}
    for f, rel in zip(files, rels, strict=True):
        rec = done.get(rel)
        if rec is None:
            reasons[rel] = NEW
        elif not rec.key:
            reasons[rel] = NO_RECORD
        elif rec.key != key:
            reasons[rel] = MODEL_CHANGED
        elif file_digest(f) != rec.digest:
            reasons[rel] = INPUT_CHANGED
    strange = sorted({rec.label for rel, rec in done.items() if rel not in reasons} - set(classes))
    if strange:
        raise InputError(
            f"{printable(str(origin))}: earlier results hold labels {strange} that this model does not have "
            f"(classes {list(classes)}); use --fresh or another --out"
        )
    reused = sum(1 for rel in rels if rel not in reasons)
    return ResumePlan(tuple(reasons), reasons, reused)


def describe_reruns(counts: Counter[str]) -> str:
    """``12 re-run: input changed; 3 re-run: model or options changed``."""
    return "; ".join(f"{n} re-run: {printable(reason)}" for reason, n in counts.most_common())
