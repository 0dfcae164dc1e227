"""The emotion timeline: per-track results of a video, written as CSV and drawn as the thesis's plot.

The thesis drew one figure, "Emotion timeline": one lane per emotion (anger at the top), a pulse wherever
that emotion was present in a frame, x in m:ss with a grid line every 15 s, legend outside on the right.
Here the same plot is drawn per track (so several faces do not blur into one lane set): a lane panel with
the track's dominant emotion over time, and below it the stacked probabilities of every class. Gaps where
a track was not seen stay empty. Matplotlib (the ``plot`` extra) is imported only when plotting.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from edgeemo.errors import InputError
from edgeemo.io.sinks import write_csv_atomic
from edgeemo.render.figure import new_figure, save_figure
from edgeemo.render.style import NO_FACES_TEXT, emotion_colour
from edgeemo.results import FrameResult, face_csv_header, face_csv_row

log = logging.getLogger(__name__)

# Which tracks get a panel in the timeline and the circumplex: a track seen in fewer frames is a detector
# flicker or a face passing by, and a figure with more panels than this is unreadable. The CSV keeps every track.
MIN_TRACK_FRAMES = 5
MAX_PLOTTED_TRACKS = 6


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One face in one frame: what the timeline CSV holds per row."""

    frame: int
    timestamp: float
    track_id: int
    label: str
    probabilities: tuple[float, ...]
    valence: float | None = None
    arousal: float | None = None
    va_source: str | None = None


class Timeline:
    """Accumulates :class:`FrameResult` objects of one video (faces with track ids, timestamps set)."""

    def __init__(self) -> None:
        self.classes: tuple[str, ...] = ()
        self.rows: list[TimelineRow] = []
        self.duration = 0.0

    def add(self, frame: FrameResult) -> None:
        ts = frame.timestamp if frame.timestamp is not None else float(frame.index)
        self.duration = max(self.duration, ts)
        for face in frame.faces:
            names = tuple(n for n, _ in face.prediction.probabilities)
            if not self.classes:
                self.classes = names
            elif names != self.classes:
                raise InputError(f"frame {frame.index}: classes {names} differ from earlier frames {self.classes}")
            p = face.prediction
            self.rows.append(
                TimelineRow(
                    frame=frame.index,
                    timestamp=ts,
                    track_id=face.track_id if face.track_id is not None else 0,
                    label=p.label,
                    probabilities=tuple(v for _, v in p.probabilities),
                    valence=p.valence,
                    arousal=p.arousal,
                    va_source=p.va_source,
                )
            )

    @property
    def has_va(self) -> bool:
        return any(r.valence is not None for r in self.rows)

    def tracks(self) -> list[int]:
        return sorted({r.track_id for r in self.rows})

    def track_data(self, track_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(timestamps (N,), probabilities (N, C), dominant class index (N,)) of one track, in time order."""
        rows = sorted((r for r in self.rows if r.track_id == track_id), key=lambda r: r.timestamp)
        t = np.array([r.timestamp for r in rows], dtype=np.float64)
        p = np.array([r.probabilities for r in rows], dtype=np.float64).reshape(len(rows), len(self.classes))
        k = np.array([self.classes.index(r.label) for r in rows], dtype=np.int64)
        return t, p, k

    # ---------------------------------------------------------------------------------------------- CSV
    def csv_header(self) -> list[str]:
        return face_csv_header(self.classes, detection=False, va=self.has_va)

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write all rows atomically (a finished file is always complete)."""
        path = Path(path)
        va = self.has_va
        rows = (
            face_csv_row(
                r.frame, r.timestamp, r.track_id, r.label, r.probabilities, r.valence, r.arousal, r.va_source, va=va
            )
            for r in self.rows
        )
        write_csv_atomic(path, self.csv_header(), rows, lineterminator="\r\n")
        return path

    # --------------------------------------------------------------------------------------------- plot
    def plot(
        self,
        path: str | os.PathLike[str],
        *,
        max_tracks: int = MAX_PLOTTED_TRACKS,
        grid_step: float = 15.0,
        title: str = "Emotion timeline",
        dpi: int = 110,
    ) -> Path:
        """Draw the timeline PNG (or any format matplotlib infers from the suffix); returns the path."""
        path = Path(path)
        classes = self.classes
        tracks = self._tracks_to_plot(max_tracks)
        colours = [emotion_colour(c, i) for i, c in enumerate(classes)]
        n = max(1, len(tracks))
        lane_h = max(1.6, 0.28 * max(1, len(classes)))
        heights = [lane_h, 1.6] * n
        fig = new_figure("the emotion timeline plot", figsize=(12, sum(heights) + 1.2), dpi=dpi, layout="constrained")
        from matplotlib.patches import Patch  # present: new_figure imported matplotlib
        from matplotlib.ticker import FuncFormatter, MultipleLocator

        fig.suptitle(title, fontsize=14)
        end = max(self.duration, grid_step if not self.rows else 0.0, 1.0)
        step = _minor_step(end, grid_step)
        mmss = FuncFormatter(lambda x, _pos: f"{int(x // 60)}:{int(x % 60):02d}" if x >= 0 else "")
        axes = fig.subplots(2 * n, 1, sharex=True, gridspec_kw={"height_ratios": heights}) if classes else []
        if not classes:
            ax = fig.add_subplot(1, 1, 1)
            ax.text(0.5, 0.5, NO_FACES_TEXT, ha="center", va="center", fontsize=14, color="#b00")
            ax.set_axis_off()
        for ti, tid in enumerate(tracks):
            lanes, areas = axes[2 * ti], axes[2 * ti + 1]
            t, p, k = self.track_data(tid)
            dt = _frame_interval(t)
            segments = _segments(t, dt)
            # Dominant emotion lanes: anger (first class) at the top, one 0/1 pulse row per class.
            for ci in range(len(classes)):
                y = len(classes) - 1 - ci
                spans = _runs(t, k == ci, dt)
                if spans:
                    lanes.broken_barh(spans, (y - 0.38, 0.76), facecolors=colours[ci], edgecolors="none")
            lanes.set_yticks(range(len(classes)), list(reversed(classes)), fontsize=8)
            lanes.set_ylim(-0.6, len(classes) - 0.4)
            lanes.set_ylabel(f"track {tid}\ndominant", fontsize=9)
            # Stacked probabilities, drawn per contiguous segment so gaps stay empty.
            for a, b in segments:
                areas.stackplot(t[a:b], p[a:b].T, colors=colours, linewidth=0)
            areas.set_ylim(0, 1)
            areas.set_yticks([0, 0.5, 1])
            areas.set_ylabel("probability", fontsize=9)
            for ax in (lanes, areas):
                ax.set_xlim(0, end)
                ax.xaxis.set_major_locator(MultipleLocator(grid_step))
                ax.xaxis.set_major_formatter(mmss)
                ax.grid(True, axis="x", which="major", color="#444", alpha=0.5, linewidth=0.8)
                if step:
                    ax.xaxis.set_minor_locator(MultipleLocator(step))
                    ax.xaxis.set_minor_formatter(mmss)
                    ax.grid(True, axis="x", which="minor", color="#999", alpha=0.25, linewidth=0.5)
                ax.tick_params(axis="x", which="both", labelsize=8)
        if classes:
            axes[-1].set_xlabel("time (m:ss)")
            handles = [Patch(facecolor=c, label=name) for name, c in zip(classes, colours)]
            fig.legend(handles=handles, loc="outside right upper", title="emotion", fontsize=9)
            hidden = len(self.tracks()) - len(tracks)
            if hidden > 0:
                fig.text(0.01, 0.005, f"{hidden} shorter track(s) not drawn; all tracks are in the CSV", fontsize=8)
        save_figure(fig, path)
        return path

    def _tracks_to_plot(self, max_tracks: int) -> list[int]:
        counts: dict[int, int] = {}
        for r in self.rows:
            counts[r.track_id] = counts.get(r.track_id, 0) + 1
        shown = plotted_tracks(counts, max_tracks)
        if len(counts) > len(shown):
            log.info("timeline: drawing %d of %d tracks (the longest)", len(shown), len(counts))
        return sorted(shown)


K = TypeVar("K", bound=Hashable)


def plotted_tracks(
    lengths: Mapping[K, int], max_tracks: int = MAX_PLOTTED_TRACKS, min_frames: int = MIN_TRACK_FRAMES
) -> list[K]:
    """The tracks worth a panel, in the order of ``lengths`` (track -> frames seen): the ``max_tracks`` longest of
    those seen in at least ``min_frames`` frames; when none is that long, the longest one alone."""
    ranked = sorted(lengths, key=lambda k: -lengths[k])  # stable: ties keep their order
    kept = [k for k in ranked if lengths[k] >= min_frames][:max_tracks] or ranked[:1]
    chosen = set(kept)
    return [k for k in lengths if k in chosen]


def _frame_interval(t: np.ndarray) -> float:
    """The typical time between samples of a track (median positive difference), 1/30 s when unknown."""
    if len(t) < 2:
        return 1 / 30
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 1 / 30


def _segments(t: np.ndarray, dt: float) -> list[tuple[int, int]]:
    """Index ranges [a, b) of samples without a gap longer than 2.5 frame intervals."""
    if len(t) == 0:
        return []
    breaks = np.flatnonzero(np.diff(t) > 2.5 * dt) + 1
    edges = [0, *breaks.tolist(), len(t)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _runs(t: np.ndarray, on: np.ndarray, dt: float) -> list[tuple[float, float]]:
    """(start, width) spans where ``on`` holds for consecutive samples; each sample covers one interval."""
    spans: list[tuple[float, float]] = []
    start = last = 0.0
    open_ = False
    for ti, flag in zip(t.tolist(), on.tolist()):
        if open_ and (not flag or ti - last > 2.5 * dt):
            spans.append((start, last + dt - start))
            open_ = False
        if flag:
            if not open_:
                start, open_ = ti, True
            last = ti
    if open_:
        spans.append((start, last + dt - start))
    return spans


def _minor_step(duration: float, grid_step: float) -> float:
    """Labelled minor ticks for clips shorter than two grid steps (a 12 s clip would otherwise show one tick)."""
    if duration >= 2 * grid_step:
        return 0.0
    for s in (1.0, 2.0, 5.0):
        if duration / s <= 12:
            return s
    return 5.0
