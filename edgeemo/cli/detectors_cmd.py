"""`edgeemo detectors`: the registered face detectors, whether each can run here, and what to install if not."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgeemo.cli.app import app
from edgeemo.detectors import DEFAULT_DETECTOR, list_detectors


@app.command("detectors")
def detectors_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List face detectors: available ones, and for unavailable ones the reason and the pip extra to install."""
    rows = [
        {
            "name": info.name,
            "available": info.available,
            "default": info.name == DEFAULT_DETECTOR,
            "extra": info.extra,
            "install": None if info.available or not info.extra else f"pip install 'edgeemo[{info.extra}]'",
            "reason": info.reason or None,
            "versions": list(info.versions),
            "description": info.description,
        }
        for info in list_detectors()
    ]
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="edgeemo detectors")
    for col in ("name", "available", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        name = f"{r['name']} (default)" if r["default"] else r["name"]
        status = (
            "yes" + "".join(f"\n{v}" for v in r["versions"])
            if r["available"]
            else f"no: {r['reason']}\n{r['install'] or ''}"
        )
        table.add_row(escape(name), escape(status), escape(r["description"]))
    Console().print(table)
