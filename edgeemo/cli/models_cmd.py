"""`edgeemo models`: shipped and user models with their precisions, sizes and classes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgeemo.assets import list_models
from edgeemo.cli.app import app
from edgeemo.errors import ModelError
from edgeemo.model import read_spec
from edgeemo.session import create_session


@app.command("models")
def models_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List shipped and user models (EDGEEMO_MODEL_PATH) with precision, size and classes."""
    import json

    rows = []
    for entry in list_models():
        try:
            spec = read_spec(create_session(entry.variants()["fp32"]), str(entry.folder))
        except ModelError as exc:  # one broken user model must not hide the others
            reason = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
            typer.echo(f"edgeemo: note: skipped model {entry.name!r}: {reason}", err=True)
            continue
        files = [*entry.variants().items(), *((f"fp32 ({k} layout)", p) for k, p in entry.layouts().items())]
        for precision, path in files:
            rows.append(
                {
                    "name": entry.name,
                    "precision": precision,
                    "size_kb": round(path.stat().st_size / 1024, 1),
                    "input": f"{spec.input.height}x{spec.input.width}x{spec.input.channels} {spec.input.dtype}",
                    "heads": list(spec.head_names),
                    "classes": list(spec.classes),
                    "shipped": entry.shipped,
                    "path": str(path),
                }
            )
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="edgeemo models")
    for col in ("name", "precision", "size KiB", "input", "heads", "classes", "where"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            r["precision"],
            str(r["size_kb"]),
            r["input"],
            ",".join(r["heads"]),
            ",".join(r["classes"]),
            "shipped" if r["shipped"] else "user",
        )
    Console().print(table)
