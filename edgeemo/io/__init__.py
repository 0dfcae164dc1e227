"""Inputs and outputs: robust image decoding (:mod:`.images`) and atomic writers (:mod:`.sinks`)."""

from __future__ import annotations

from edgeemo.io.images import DEFAULT_MAX_PIXELS, decode_image, list_images, natural_key, read_image
from edgeemo.io.sinks import write_csv_atomic, write_image_atomic, write_json_atomic

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "decode_image",
    "list_images",
    "natural_key",
    "read_image",
    "write_csv_atomic",
    "write_image_atomic",
    "write_json_atomic",
]
