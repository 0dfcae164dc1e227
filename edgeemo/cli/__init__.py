"""Command-line interface. Each command lives in its own module and registers itself on :data:`app`."""

from __future__ import annotations

from edgeemo.cli.app import app, main

# Command modules (imported for their registration side effect).
from edgeemo.cli import models_cmd  # noqa: F401  isort: skip
from edgeemo.cli import detectors_cmd  # noqa: F401  isort: skip
from edgeemo.cli import image_cmd  # noqa: F401  isort: skip
from edgeemo.cli import classify_cmd  # noqa: F401  isort: skip
from edgeemo.cli import bench_cmd  # noqa: F401  isort: skip
from edgeemo.cli import video_cmd  # noqa: F401  isort: skip
from edgeemo.cli import export_cmd  # noqa: F401  isort: skip

__all__ = ["app", "main"]
