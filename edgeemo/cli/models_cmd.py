"""`edgeemo models`: shipped and user models, one row each, with precisions, input, heads and card accuracy.

Models whose card marks the weights untrained are left out unless ``--all`` (then marked): they exist for
compatibility and speed work, and must never look like a model to use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edgeemo.cli.app import app
from edgeemo.errors import ModelError, one_line
from edgeemo.runtime.assets import DEFAULT_MODEL, ModelEntry, card_accuracy, list_models
from edgeemo.runtime.model import read_spec
from edgeemo.runtime.session import create_session
from edgeemo.runtime.spec import EMOTION_HEAD, ModelSpec

_DTYPE = {"uint8": "u8", "float32": "f32"}


def _file_rows(entry: ModelEntry, spec: ModelSpec, card: dict[str, Any]) -> list[dict[str, Any]]:
    files = [*entry.variants().items(), *((f"fp32 ({k} layout)", p) for k, p in entry.layouts().items())]
    return [
        {
            "name": entry.name,
            "precision": precision,
            "size_kb": round(path.stat().st_size / 1024, 1),
            "input": f"{spec.input.height}x{spec.input.width}x{spec.input.channels} {spec.input.dtype}",
            "heads": list(spec.head_names),
            "classes": list(spec.classes),
            "weights": card.get("weights"),
            "accuracy": card_accuracy(card, path.name),
            "default": entry.name == DEFAULT_MODEL,
            "shipped": entry.shipped,
            "path": str(path),
        }
        for precision, path in files
    ]


def _input(spec: ModelSpec) -> str:
    i = spec.input
    return f"{i.height}x{i.width}x{i.channels} {_DTYPE.get(i.dtype, i.dtype)}"


def _heads(spec: ModelSpec) -> str:
    parts = [f"{len(spec.classes)} classes" if h == EMOTION_HEAD else h for h in spec.head_names]
    if {"valence", "arousal"} <= set(spec.head_names) and EMOTION_HEAD in spec.head_names:
        parts = [parts[0], "VA"]
    return " + ".join(parts)


def _accuracy_cell(entry: ModelEntry, card: dict[str, Any]) -> str:
    if entry.untrained:
        return "[bold red]untrained[/]"
    acc = card_accuracy(card)
    return "-" if acc is None else f"{acc:.3f}"


@app.command("models")
def models_command(
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list models whose card marks the weights untrained.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (one object per model file).")] = False,
) -> None:
    """List shipped and user models (EDGEEMO_MODEL_PATH): precisions, input, heads, accuracy from the card."""
    entries = list_models()
    shown: list[ModelEntry] = []
    specs: dict[str, ModelSpec] = {}
    for e in entries:
        if e.untrained and not show_all:
            continue
        try:
            specs[e.name] = read_spec(create_session(e.variants()["fp32"]), str(e.folder))
        except ModelError as exc:  # one broken user model must not hide the others
            reason = one_line(exc)
            typer.echo(f"edgeemo: note: skipped model {e.name!r}: {reason}", err=True)
            continue
        shown.append(e)
    cards = {e.name: e.card() for e in shown}
    if json_out:
        rows = [r for e in shown for r in _file_rows(e, specs[e.name], cards[e.name])]
        typer.echo(json.dumps(rows, indent=2))
        return
    face_sets = sorted(
        {Path(str(c["parity"]["faces"])).name for c in cards.values() if (c.get("parity") or {}).get("n_labelled")}
    )
    notes = [f"* default; accuracy: fp32 top-1 from the model card ({', '.join(face_sets) or 'no labelled faces'})"]
    hidden = 0 if show_all else sum(e.untrained for e in entries)
    if hidden:
        notes.append(f"{hidden} untrained model{'s' if hidden > 1 else ''} hidden (--all lists them)")
    table = Table(
        title="edgeemo models",
        caption="; ".join(notes),
        box=None,
        padding=(0, 1),
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("precisions", no_wrap=True)
    table.add_column("input")
    table.add_column("heads")
    table.add_column("accuracy", justify="right", no_wrap=True)
    for e in shown:
        spec = specs[e.name]
        table.add_row(
            "*" if e.name == DEFAULT_MODEL else "",
            e.name if e.shipped else f"{e.name} (user)",
            " ".join(e.variants()),
            _input(spec),
            _heads(spec),
            _accuracy_cell(e, cards[e.name]),
        )
    Console().print(table)
