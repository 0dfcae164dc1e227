"""Circumplex trajectory plot for video: valence (x) against arousal (y) over time, one panel per track.

Input rows are ``(timestamp, track_id, valence, arousal, va_source)``. Each track's points are joined in time
order and coloured by time; start and end are marked. A panel shows one source only: model values on the
thesis's +-4.5 axes, derived estimates on the centroid scale +-1 (:data:`edgeemo.va.AXIS_LIMIT`); a track with
both gets one panel for each. The class centroids of :mod:`edgeemo.va` are drawn for reference: on derived
panels at their true place, on model panels stretched to the +-4.5 axes and labelled as orientation only, since
the regression heads have no published scale to compare with.

Panels follow the timeline's rule (:func:`edgeemo.render.timeline.plotted_tracks`): tracks seen in only a few frames
are left out and at most :data:`~edgeemo.render.timeline.MAX_PLOTTED_TRACKS` panels (the longest) are drawn; a line
under the panels says how many were left out.

matplotlib (the "plot" extra) is used through :mod:`edgeemo.render.figure`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from edgeemo.errors import InputError
from edgeemo.io.sinks import output_error
from edgeemo.render.figure import new_figure, save_figure
from edgeemo.render.style import AROUSAL_LABEL, VA_SOURCES, VALENCE_LABEL
from edgeemo.render.timeline import MAX_PLOTTED_TRACKS, plotted_tracks
from edgeemo.results import VASource
from edgeemo.va import AXIS_LIMIT, CENTROIDS, axis_limit, centroid_table

Row = tuple[float | None, int | None, float | None, float | None, VASource | None]

_COLUMNS = 3


def plot_circumplex(
    rows: Iterable[Row],
    out_path: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    title: str = "Valence-arousal trajectory",
    max_panels: int = MAX_PLOTTED_TRACKS,
) -> Path:
    """Write the circumplex plot of ``rows`` to ``out_path`` (PNG, or the format of its suffix, atomically) and
    return the path.

    ``classes`` picks the reference centroids (default: every category :mod:`edgeemo.va` knows). Rows whose
    valence, arousal or source is missing (faces without a VA estimate) are skipped; if none is left the plot
    cannot say anything and :class:`InputError` is raised. Short tracks and panels past ``max_panels`` are left
    out (see the module notes).
    """
    everything, timed = _group(rows)
    if not everything:
        raise InputError(f"{out_path}: no rows with valence, arousal and va_source to plot")
    names = list(classes) if classes is not None else sorted(CENTROIDS)
    table = centroid_table(names)
    chosen = plotted_tracks({k: len(pts) for k, pts in everything.items()}, max_panels)
    groups = {k: everything[k] for k in chosen}
    left_out = len(everything) - len(groups)

    n = len(groups)
    cols = min(n, _COLUMNS)
    nrows = math.ceil(n / cols)
    # Fixed margins, not a constrained layout: that layout engine is slow with several panels (docs/benchmarks.md).
    w, h = 4.6 * cols + 1.0, 4.4 * nrows + 0.9
    fig = new_figure("the circumplex plot", figsize=(w, h), dpi=110)
    fig.suptitle(title, y=1 - 0.18 / h)
    fig.subplots_adjust(left=0.75 / w, right=1 - 1.35 / w, bottom=0.75 / h, top=1 - 0.55 / h, wspace=0.35, hspace=0.3)
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    t_all = [t for pts in groups.values() for t, _, _ in pts]
    t_min, t_max = min(t_all), max(t_all)
    mappable = None
    for ax, ((track, source), pts) in zip(axes.flat, groups.items()):
        mappable = _panel(ax, track, source, pts, names, table, (t_min, t_max))
    if mappable is not None:
        bar = fig.add_axes((1 - 1.05 / w, 0.75 / h, 0.18 / w, 1 - 1.3 / h))
        fig.colorbar(mappable, cax=bar, label="time (s)" if timed else "row order")
    if left_out:
        fig.text(
            0.01, 0.01, f"{left_out} shorter track panel(s) not drawn; every track is in the CSV/JSON lines", fontsize=8
        )

    out = Path(out_path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(out, exc, "cannot write the circumplex plot") from exc
    save_figure(fig, out)
    return out


def _group(rows: Iterable[Row]) -> tuple[dict[tuple[int | None, str], list[tuple[float, float, float]]], bool]:
    """(track, source) -> time-sorted (t, valence, arousal), and whether every row had a timestamp.

    A row without a timestamp is placed by its position in ``rows``.
    """
    groups: dict[tuple[int | None, str], list[tuple[float, float, float]]] = {}
    timed = True
    for k, row in enumerate(rows):
        try:
            t, track, v, a, source = row
        except (TypeError, ValueError):
            raise InputError(
                f"circumplex row {k}: expected (timestamp, track_id, valence, arousal, va_source), got {row!r}"
            ) from None
        if v is None or a is None or source is None or not (math.isfinite(v) and math.isfinite(a)):
            continue
        axis_limit(source)  # refuses an unknown source by name
        timed = timed and t is not None
        groups.setdefault((track, source), []).append((float(k) if t is None else float(t), float(v), float(a)))
    for pts in groups.values():
        pts.sort(key=lambda p: p[0])
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0, kv[0][1]))), timed


def _panel(
    ax: Any,
    track: int | None,
    source: str,
    pts: list[tuple[float, float, float]],
    names: list[str],
    table: Any,
    t_range: tuple[float, float],
) -> Any:
    limit = AXIS_LIMIT[source]
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ticks = [-limit, -limit / 2, 0, limit / 2, limit]  # fixed ticks: automatic tick layout is slow too
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.grid(True, color="0.92", lw=0.6)
    ax.set_xlabel(VALENCE_LABEL)
    ax.set_ylabel(AROUSAL_LABEL)
    name = "untracked" if track is None else f"track {track}"
    ax.set_title(f"{name} ({VA_SOURCES[source].caption}, axes +-{limit:g})", fontsize=9)  # type: ignore[index]

    # Reference centroids: true place on the derived scale, stretched to the axes on the model scale.
    stretch = limit / AXIS_LIMIT["derived"]
    label = "class centroids" if source == "derived" else f"class centroids (x{stretch:g}, orientation only)"
    ax.scatter(table[:, 0] * stretch, table[:, 1] * stretch, marker="D", s=22, color="0.55", zorder=2, label=label)
    for cname, (cv, ca) in zip(names, table):
        ax.annotate(
            cname, (cv * stretch, ca * stretch), fontsize=7, color="0.4", xytext=(3, 3), textcoords="offset points"
        )

    t = [p[0] for p in pts]
    v = [max(-limit, min(limit, p[1])) for p in pts]  # points off the axes are pinned to the border
    a = [max(-limit, min(limit, p[2])) for p in pts]
    ax.plot(v, a, color="0.35", lw=0.8, alpha=0.6, zorder=3)
    sc = ax.scatter(v, a, c=t, cmap="viridis", vmin=t_range[0], vmax=max(t_range[1], t_range[0] + 1e-9), s=16, zorder=4)
    ax.scatter([v[0]], [a[0]], marker="o", s=70, facecolors="none", edgecolors="black", zorder=5, label="start")
    ax.scatter([v[-1]], [a[-1]], marker="s", s=70, facecolors="none", edgecolors="black", zorder=5, label="end")
    ax.legend(loc="lower left", fontsize=7, framealpha=0.8)
    return sc
