"""What a person running ``edgeemo video`` sees and does: the progress bar, the summary, Ctrl-C / SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from rich import progress as rp
from rich.console import Console
from rich.markup import escape

from edgeemo.video.reader import SourceInfo
from edgeemo.video.run import VideoRun, VideoSummary


def print_summary(console: Console, summary: VideoSummary) -> None:
    for line in summary.lines():
        console.print(escape(line), highlight=False)


class ProgressBar:
    """The progress bar of a run: frames done, FPS, then the finishing steps in place of the source's name."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._bar: rp.Progress | None = None
        self._task: Any = None
        self._name = ""
        self._total: int | None = None

    @contextmanager
    def shown(self, info: SourceInfo) -> Iterator[None]:
        self._name = Path(info.source).name if info.kind == "file" else info.source
        self._total = None if info.live else info.frame_count
        columns = (rp.SpinnerColumn(), rp.TextColumn("[bold]{task.description}"), rp.BarColumn(),
                   rp.MofNCompleteColumn(), rp.TextColumn("{task.fields[fps]:>6.1f} FPS"), rp.TimeElapsedColumn(),
                   rp.TextColumn("ETA"), rp.TimeRemainingColumn())  # fmt: skip
        with rp.Progress(*columns, console=self.console, transient=True, disable=not self.console.is_terminal) as bar:
            self._bar, self._task = bar, bar.add_task(escape(self._name), total=self._total, fps=0.0)
            yield
        self._bar = None

    def progress(self, done: int, elapsed: float) -> None:
        if self._bar is not None and (done % 5 == 0 or done == self._total):  # redrawing every frame costs FPS
            self._bar.update(self._task, completed=done, fps=done / elapsed if elapsed > 0 else 0.0)

    def step(self, what: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=f"{escape(self._name)}: {what}…")


class SignalStop:
    """While active, SIGINT/SIGTERM stop the run gracefully (outputs finalised); a second signal kills."""

    def __init__(self, run: VideoRun) -> None:
        self.run = run
        self.received: list[int] = []
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.received:  # second signal: give up on graceful shutdown
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.received.append(signum)
        print(f"edgeemo: {signal.Signals(signum).name}: finishing outputs…", file=sys.stderr)
        self.run.stop()

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
