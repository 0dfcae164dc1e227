"""One export run: Keras HDF5 (or several exported models to fuse) → the model folder with every asked
precision, a parity report on faces, and the card."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeemo.errors import ExportError, InputError
from edgeemo.runtime.assets import LAYOUT_SUFFIX, PRECISION_SUFFIX
from edgeemo.runtime.spec import PRECISIONS, ModelSpec
from edgeemo_export.card import CardFacts, write_card
from edgeemo_export.faceset import FaceSet, parity_faces
from edgeemo_export.fp16 import convert_fp16
from edgeemo_export.fuse import fuse_models
from edgeemo_export.keras_to_onnx import ExportOptions, export_fp32
from edgeemo_export.onnx_meta import read_spec
from edgeemo_export.parity import ParityReport, Thresholds, run_parity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    spec: ModelSpec
    files: dict[str, Path]  # precision → ONNX file
    parity: ParityReport | None
    int8_calibration: dict[str, Any] | None


def parse_precisions(text: str | Sequence[str]) -> tuple[str, ...]:
    items = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    bad = [p for p in items if p not in PRECISIONS]
    if bad or not items:
        raise InputError(f"precision {','.join(bad) or '(none)'} unknown; choose from {','.join(PRECISIONS)}")
    if "fp32" not in items:
        items.insert(0, "fp32")  # every other precision is made from the fp32 file
    return tuple(dict.fromkeys(items))


def quantize(fp32_path: Path, out_path: Path, calibration: Path | None) -> dict[str, Any]:
    """INT8 through :func:`edgeemo_export.int8.quantize_int8` (imported only when INT8 is asked for)."""
    try:
        from edgeemo_export.int8 import quantize_int8
    except ImportError as exc:
        raise ExportError(f"INT8 export is not available ({exc})") from exc
    return quantize_int8(fp32_path, out_path, calibration_dir=calibration)


def write_avx512_layout(fp32: Path, folder: Path) -> Path | None:
    """Write ``model.avx512.onnx`` (:mod:`edgeemo_export.channel_pad`) when padding changes the graph; else remove a
    stale one and return None."""
    import onnx

    from edgeemo_export.channel_pad import AVX512_BLOCK, PAD_KEY, pad_narrow_channels

    out = folder / LAYOUT_SUFFIX["avx512"]
    padded = pad_narrow_channels(onnx.load(str(fp32)), AVX512_BLOCK)
    if not any(p.key == PAD_KEY for p in padded.metadata_props):
        out.unlink(missing_ok=True)
        return None
    tmp = out.with_suffix(".tmp")
    onnx.save(padded, str(tmp))
    tmp.replace(out)
    return out


def _variants(
    fp32: Path, folder: Path, precisions: Sequence[str], calibration: Path | None
) -> tuple[dict[str, Path], dict[str, Any] | None]:
    files = {"fp32": fp32}
    layout = write_avx512_layout(fp32, folder)
    if layout is not None:
        files["fp32-avx512"] = layout
    summary = None
    if "fp16" in precisions:
        files["fp16"] = convert_fp16(fp32, folder / PRECISION_SUFFIX["fp16"])
    if "int8" in precisions:
        files["int8"] = folder / PRECISION_SUFFIX["int8"]
        summary = quantize(fp32, files["int8"], calibration)
    return files, summary


def export_keras(
    h5_path: Path,
    folder: Path,
    options: ExportOptions,
    precisions: Sequence[str] = ("fp32",),
    calibration: Path | None = None,
    faces: FaceSet | None = None,
    thresholds: Thresholds | None = None,
    card: CardFacts | None = None,
    copy_source: bool = True,
) -> ExportResult:
    """Export ``h5_path`` into ``folder`` (``model.onnx`` + variants), check parity on ``faces``, write the card.

    The HDF5 file is copied into the folder (``copy_source``) so that ``edgeemo parity`` can find it later.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fp32, _ = export_fp32(h5_path, folder / PRECISION_SUFFIX["fp32"], options)
    source = Path(h5_path)
    if copy_source and source.resolve().parent != folder.resolve():
        shutil.copyfile(source, folder / source.name)
    files, summary = _variants(fp32.path, folder, precisions, calibration)
    keras = [folder / source.name] if copy_source else [source]
    parity = run_parity(list(files.values()), faces, keras, thresholds, options.trust_lambda) if faces else None
    write_card(folder, fp32.spec, card or CardFacts(provenance=f"exported from {source.name}"), parity, summary)
    return ExportResult(folder, fp32.spec, files, parity, summary)


def _fp32_of(item: Path) -> Path:
    p = item / PRECISION_SUFFIX["fp32"] if item.is_dir() else item
    if not p.is_file():
        raise InputError(f"{item}: no exported FP32 model (expected a model folder or a .onnx file)")
    return p


def export_fused(
    parts: Sequence[Path],
    folder: Path,
    name: str,
    precisions: Sequence[str] = ("fp32",),
    calibration: Path | None = None,
    faces: FaceSet | None = None,
    thresholds: Thresholds | None = None,
    card: CardFacts | None = None,
) -> ExportResult:
    """Fuse exported models (folders or FP32 ONNX files) into ``folder`` and check parity against their Keras."""
    import onnx

    fp32_parts = [_fp32_of(Path(p)) for p in parts]
    folder.mkdir(parents=True, exist_ok=True)
    fused = fuse_models(fp32_parts, folder / PRECISION_SUFFIX["fp32"], name)
    files, summary = _variants(fused.path, folder, precisions, calibration)
    keras = []
    for p in fp32_parts:  # the Keras originals sit beside each part when it was exported with copy_source
        src = read_spec(onnx.load(str(p), load_external_data=False), str(p)).source.file
        if (p.parent / src).is_file():
            keras.append(p.parent / src)
    parity = run_parity(list(files.values()), faces, keras) if faces else None
    facts = card or CardFacts(provenance="fused from " + ", ".join(str(p) for p in parts))
    write_card(folder, fused.spec, facts, parity, summary)
    return ExportResult(folder, fused.spec, files, parity, summary)


def run_export(
    sources: Sequence[Path],
    out: Path,
    options: ExportOptions,
    *,
    fuse: bool = False,
    precisions: str | Sequence[str] = ("fp32",),
    calibration: Path | None = None,
    parity: bool = True,
    faces: Path | None = None,
    limit: int | None = None,
    thresholds: Thresholds | None = None,
) -> ExportResult:
    """``edgeemo export``: one Keras file, or with ``fuse`` several exported models, into the model folder
    ``out``; parity on ``faces`` (default: the registry faces) unless ``parity`` is off."""
    wanted = parse_precisions(precisions)
    face_set = parity_faces(faces, limit) if parity else None
    if fuse:
        if len(sources) < 2:
            raise InputError("--fuse needs at least two exported models (folders or .onnx files)")
        if options.framing:
            raise InputError("--framing applies to a Keras export; a fused model keeps its parts' framing")
        return export_fused(sources, out, options.name or out.name, wanted, calibration, face_set, thresholds)
    if len(sources) != 1:
        raise InputError(f"export takes one Keras file ({len(sources)} given); use --fuse to merge models")
    return export_keras(sources[0], out, options, wanted, calibration, face_set, thresholds)
