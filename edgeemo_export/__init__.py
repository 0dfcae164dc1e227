"""Build-time tools: Keras HDF5 → ONNX (FP32 / FP16 / INT8) with the model's facts embedded, fusion, parity.

This package may import TensorFlow (through ``tf_keras``), but only inside the functions that need it; the
runtime package :mod:`edgeemo` never imports it.
"""

from __future__ import annotations

EXPORTER_VERSION = "0.1.0"
EXPORTER = f"edgeemo-export {EXPORTER_VERSION}"
