"""matplotlib figures (the ``plot`` extra): imported only when a plot is drawn, and only through the object API,
never pyplot, so plotting from a worker thread leaves no global state behind; written atomically in the format
their file's suffix names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeemo.errors import InputError, MissingDependencyError, printable
from edgeemo.io.sinks import write_figure_atomic

# What matplotlib's Agg canvas writes, by file suffix (checked before a run, so a typo fails at once).
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp",
                ".tif": "tiff", ".tiff": "tiff", ".eps": "eps", ".ps": "ps"}  # fmt: skip


def new_figure(what: str, **kwargs: Any) -> Any:
    """A matplotlib ``Figure(**kwargs)`` on an Agg canvas; :class:`MissingDependencyError` names ``what`` and the
    ``plot`` extra when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(what, "plot", str(exc)) from exc
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def plot_format(path: str | os.PathLike[str]) -> str:
    """The matplotlib format of a plot file from its suffix; :class:`InputError` for a suffix it cannot write."""
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise InputError(
            f"{printable(str(path))}: cannot draw a plot as {suffix or 'a file without suffix'!r} "
            f"(use {', '.join(PLOT_FORMATS)})"
        )
    return PLOT_FORMATS[suffix]


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Write ``fig`` to ``path`` atomically, in the format of its suffix."""
    write_figure_atomic(path, fig, plot_format(path))
