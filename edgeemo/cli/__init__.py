"""Command-line interface. Each command lives in its own module, registers itself on :data:`app` and is imported
when it is used (:data:`edgeemo.cli.app.COMMANDS`)."""

from __future__ import annotations

from edgeemo.cli.app import app, main

__all__ = ["app", "main"]
