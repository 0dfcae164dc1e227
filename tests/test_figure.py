"""Plots are written whole or not at all, in the format their suffix names."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from edgeemo.errors import InputError, OutputError
from edgeemo.render.figure import new_figure, plot_format, save_figure

pytest.importorskip("matplotlib")


def _figure() -> object:
    fig = new_figure("a test plot", figsize=(2, 2), dpi=50)
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    return fig


@pytest.mark.parametrize(("name", "magic"), [("p.png", b"\x89PNG"), ("p.PDF", b"%PDF"), ("p.svg", b"<?xml")])
def test_the_suffix_picks_the_format(tmp_path: Path, name: str, magic: bytes) -> None:
    save_figure(_figure(), tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(magic)
    assert os.listdir(tmp_path) == [name]


def test_an_unknown_suffix_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"p\.gif: cannot draw a plot as '\.gif'"):
        save_figure(_figure(), tmp_path / "p.gif")
    with pytest.raises(InputError, match="a file without suffix"):
        plot_format(tmp_path / "p")
    assert not any(tmp_path.iterdir())


def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    png.write_bytes(b"earlier plot")
    fig = _figure()
    real = fig.savefig

    def disk_full(f: object, **kw: object) -> None:
        real(f, **kw)  # part of the file is written, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    fig.savefig = disk_full
    with pytest.raises(OutputError, match=r"p\.png: cannot write \(No space left on device\)"):
        save_figure(fig, png)
    assert png.read_bytes() == b"earlier plot"
    assert os.listdir(tmp_path) == ["p.png"]
