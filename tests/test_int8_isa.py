"""The shipped INT8 file on onnxruntime's AVX2 kernels (no VNNI: u8 x s8 pairs summed in saturating int16), run
under ``qemu-x86_64 -cpu Haswell``: it must give FP32's answers there and the same labels as natively."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from edgeemo_export.faceset import load_face_set
from edgeemo_export.isa_parity import emulator, isa_parity

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
FOLDER = MODELS / "mini-xception"
FACES = 300
# Goals of issue 14 (agreement >= 0.97, same labels on both instruction sets >= 0.995), checked on 300 faces.
# On these faces natively (onnxruntime 1.32, the file rebuilt after the float32 resize): agreement 0.9833, accuracy
# 0.6567 -> 0.6400 (5 faces; 0.6528 -> 0.6506 on all 3,589); the AVX2 run gives the native labels (uint8 weights).
# thesis-mobilenet (trained, same U8U8 recipe) on these faces natively: agreement 0.9900, accuracy 0.6300 -> 0.6400
# (0.6489 -> 0.6481 on all 3,589, agreement 0.9827); its full per-ISA run (card) gives the native labels on AVX2.
# The int8-weight file shipped before: 0.8765 agreement and
# 0.8781 same labels on AVX2 (599 faces, models/mini-xception/INT8.md).
MIN_AGREEMENT = 0.97
MIN_SAME_LABELS = 0.995
# The 0.5-point accuracy goal is checked natively on all 3,589 faces (a few seconds): on 300 faces one point is
# three faces, below the sampling noise. On AVX2 it follows from giving the native labels (MIN_SAME_LABELS).
MAX_ACC_LOSS = 0.005


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mini-xception", "thesis-mobilenet"])
def test_shipped_int8_on_avx2_matches_fp32_and_native(name: str, fer_publictest: Path) -> None:
    if emulator("Haswell") is None:
        pytest.skip("qemu-x86_64 (Debian qemu-user) absent or not an x86-64 host: the AVX2 INT8 path is not checked")
    folder = MODELS / name
    faces = load_face_set(fer_publictest, FACES)
    report = isa_parity(folder, faces, ("Haswell",), fp32_emulated=False)
    native, avx2 = report.results
    # The emulated process really ran without AVX-512 and VNNI (else this checks nothing new).
    assert "avx2" in avx2.features["cpuid"] and "avx512f" not in avx2.features["cpuid"], avx2.features
    assert avx2.features["emulated"] == ("avx512f" in avx2.features["cpuinfo"])  # /proc/cpuinfo shows the host
    assert avx2.int8_same_labels_as_native >= MIN_SAME_LABELS, avx2
    for r in (native, avx2):
        assert r.int8_agreement >= MIN_AGREEMENT, r
    (whole,) = isa_parity(folder, load_face_set(fer_publictest), (), fp32_emulated=False).results
    assert whole.fp32_accuracy is not None and whole.int8_accuracy is not None
    assert whole.int8_agreement >= MIN_AGREEMENT, whole
    assert whole.fp32_accuracy - whole.int8_accuracy <= MAX_ACC_LOSS, whole


@pytest.mark.slow
def test_runtime_keeps_int8_weight_models_exact_on_avx2(fer_publictest: Path, tmp_path: Path) -> None:
    """A model exported with int8 weights (U8S8, the recipe shipped before issue 14) gives its native labels on
    AVX2 too, through the runtime's session switch (without it: 0.88 agreement with native on PublicTest)."""
    import dataclasses

    if emulator("Haswell") is None:
        pytest.skip("qemu-x86_64 (Debian qemu-user) absent or not an x86-64 host: the AVX2 INT8 path is not checked")
    from edgeemo_export.int8 import DEFAULT_OPTIONS, quantize_int8

    folder = tmp_path / "u8s8"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(FOLDER / "model.onnx")
    quantize_int8(
        FOLDER / "model.onnx",
        folder / "model.int8.onnx",
        options=dataclasses.replace(DEFAULT_OPTIONS, weight_type="int8"),
    )
    faces = load_face_set(fer_publictest, FACES)
    _, avx2 = isa_parity(folder, faces, ("Haswell",), fp32_emulated=False).results
    assert avx2.int8_same_labels_as_native >= MIN_SAME_LABELS, avx2
