"""Model cards: ``models/<name>/card.json`` (machine-readable) and a short ``README.md`` for humans.

The card repeats the embedded metadata, adds licence and provenance, the sha256 of every file in the folder,
and the parity figures measured at export time (and the INT8 study, where ``int8_study.json`` exists).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeemo.runtime.assets import PRECISION_SUFFIX
from edgeemo.runtime.spec import THESIS_FRAMING, Framing, ModelSpec
from edgeemo_export.keras_io import sha256_file
from edgeemo_export.parity import ParityReport, cpu_summary

CARD = "card.json"
README = "README.md"
INT8_STUDY = "int8_study.json"
CALIBRATION = "framing.json"  # a framing calibration report in a model folder (edgeemo_export/framing_calibration.py)
STAMP_COMMAND = "python -m edgeemo_export.framing"
INT8_ISA = "int8_isa.json"  # written by edgeemo_export/isa_parity.py


@dataclass(frozen=True)
class CardFacts:
    """What a card says beyond the metadata; ``weights`` is ``trained`` or ``untrained``, and ``untrained_heads``
    names the untrained heads when only some are (empty: all heads are as ``weights`` says)."""

    description: str = ""
    weights: str = "trained"
    untrained_heads: tuple[str, ...] = ()
    licence: str = "not stated"
    provenance: str = ""
    notes: tuple[str, ...] = ()
    regenerate: str = ""
    training: dict[str, Any] | None = None  # figures measured by edgeemo_export/train.py


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name not in (CARD, README) and not p.name.startswith(".")
    }


def framing_section(folder: Path, framings: tuple[Framing, ...]) -> dict[str, Any]:
    """The card's framing: what the metadata says, and the calibration report it was measured in (if any)."""
    report = folder / CALIBRATION
    command = json.loads(report.read_text(encoding="utf-8")).get("command") if report.is_file() else None
    return {
        "framings": [asdict(f) for f in framings],
        "calibration": CALIBRATION if report.is_file() else None,
        "calibration_command": command,
        "stamp_command": STAMP_COMMAND,
    }


def write_card(
    folder: Path,
    spec: ModelSpec,
    facts: CardFacts,
    parity: ParityReport | None = None,
    int8_calibration: dict[str, Any] | None = None,
) -> Path:
    """Write ``card.json`` and ``README.md`` into ``folder`` (after every model file is in place)."""
    card: dict[str, Any] = {
        "name": spec.name,
        "description": facts.description,
        "weights": facts.weights,
        **({"untrained_heads": list(facts.untrained_heads)} if facts.untrained_heads else {}),
        "licence": facts.licence,
        "provenance": facts.provenance,
        "notes": list(facts.notes),
        "metadata": spec.to_dict(),
        "framing": framing_section(folder, spec.framing),
        "files": file_table(folder),
        "parity": parity.to_dict() if parity else None,
        "int8": None,
        "training": facts.training,
        "regenerate": facts.regenerate,
    }
    if int8_calibration is not None or (folder / INT8_STUDY).is_file():
        card["int8"] = {
            "calibration": int8_calibration,
            "study": INT8_STUDY if (folder / INT8_STUDY).is_file() else None,
            "per_isa": _isa_parity(folder),
        }
    return _save(folder, card)


def refresh_card(folder: Path) -> Path:
    """Re-read the folder's files and per-ISA INT8 parity into an existing card (keeps everything else)."""
    path = folder / CARD
    card = json.loads(path.read_text(encoding="utf-8"))
    card["files"] = file_table(folder)
    if card.get("int8") is not None:
        card["int8"]["per_isa"] = _isa_parity(folder)
    return _save(folder, card)


def _save(folder: Path, card: dict[str, Any]) -> Path:
    path = folder / CARD
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    (folder / README).write_text(render_readme(card), encoding="utf-8")
    return path


def _isa_parity(folder: Path) -> dict[str, Any] | None:
    """The per-ISA INT8 parity report when it was measured on the INT8 graph now in the folder."""
    from edgeemo_export.isa_parity import graph_sha256

    report, int8 = folder / INT8_ISA, folder / PRECISION_SUFFIX["int8"]
    if not report.is_file() or not int8.is_file():
        return None
    data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return data if data.get("int8_graph_sha256") == graph_sha256(int8) else None


def _f4(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def render_readme(card: dict[str, Any]) -> str:
    meta = card["metadata"]
    i = meta["input"]
    lines = [f"# {card['name']}", ""]
    partial = card.get("untrained_heads")
    if partial:
        lines += [
            f"**UNTRAINED HEADS: {', '.join(partial)}** (the other heads are trained). For compatibility, speed "
            "and parity work only; never use those outputs as predictions.",
            "",
        ]
    elif card["weights"] == "untrained":
        lines += [
            "**UNTRAINED WEIGHTS**. For compatibility, speed and parity work only; never use its outputs as "
            "predictions.",
            "",
        ]
    lines += [card["description"], "", f"- Licence: {card['licence']}", f"- Provenance: {card['provenance']}"]
    lines += [
        f"- Input: {i['height']}x{i['width']}x{i['channels']} {i['colour']} {i['dtype']}, "
        f"normalisation {i['normalisation']['mode']}, resize {i['interpolation']}",
        "- Heads: " + ", ".join(f"{o['name']} ({o['kind']})" for o in meta["outputs"]),
    ]
    if meta["classes"]:
        lines.append("- Classes: " + ", ".join(meta["classes"]))
    framings = [Framing(**f) for f in meta.get("framing", [])]
    lines.append(
        "- Crop framing: "
        + ("; ".join(f.describe() for f in framings) if framings else f"none stored ({THESIS_FRAMING.describe()})")
    )
    section = card.get("framing") or {}
    if section.get("calibration"):
        lines.append(
            f"  - measured on the training faces: `{section['calibration']}` (`{section['calibration_command']}`); "
            f"stamped by `{section['stamp_command']}`"
        )
    lines += [f"- Note: {n}" for n in card["notes"]]
    p = card["parity"]
    if p:
        acc = f"; Keras accuracy {p['reference_accuracy']:.4f}" if p["reference_accuracy"] is not None else ""
        lines += [
            "",
            f"## Parity (Keras vs ONNX, {p['n_faces']} faces from `{p['faces']}`{acc})",
            "",
            f"Run on: {cpu_summary(p.get('cpu') or {})}.",
            "",
            "| precision | head | max abs Δ | mean abs Δ | agreement | accuracy | result |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in p["variants"]:
            for h in v["heads"]:
                agree = "-" if h["agreement"] is None else f"{h['agreement']:.4f}"
                acc = "-" if h["accuracy"] is None else f"{h['accuracy']:.4f}"
                ok = "FAIL" if any(f.startswith(f"{h['head']}:") for f in v["failures"]) else "pass"
                name = Path(v["path"]).name
                label = v["precision"] + ("" if name in PRECISION_SUFFIX.values() else f" (`{name}`)")
                lines.append(
                    f"| {label} | {h['head']} | {h['max_abs_delta']:.3g} | "
                    f"{h['mean_abs_delta']:.3g} | {agree} | {acc} | {ok} |"
                )
    isa = card["int8"].get("per_isa") if card["int8"] else None
    if isa:
        lines += [
            "",
            f"## INT8 per instruction set ({isa['n_faces']} faces from `{isa['faces']}`, onnxruntime "
            f"{isa['onnxruntime']})",
            "",
            "| CPU | features seen (CPUID) | FP32 accuracy | INT8 accuracy | INT8 agreement with FP32 "
            f"({'same CPU' if isa.get('fp32_on_each_cpu') else 'native'}) | INT8 labels = native INT8 labels |",
            "|---|---|---|---|---|---|",
        ]
        for r in isa["results"]:
            where = "native" if r["cpu"] == "native" else f"`qemu-x86_64 -cpu {r['cpu']}`"
            lines.append(
                f"| {where} | {', '.join(r['features']['cpuid'] or ['?'])} | {_f4(r['fp32_accuracy'])} "
                f"| {_f4(r['int8_accuracy'])} | {r['int8_agreement']:.4f} | {r['int8_same_labels_as_native']:.4f} |"
            )
    t = card.get("training")
    if t:
        lines += [
            "",
            "## Training (measured by `edgeemo_export/train.py`)",
            "",
            f"- Data: `{t['data']}`, validation {t['val_fraction']:.0%} of it (stratified, seeded)",
            f"- Epochs: {t['epochs']}, best validation accuracy {t['val_accuracy']:.4f} at epoch {t['best_epoch']}",
            f"- Training time {t['train_seconds'] / 3600:.2f} h, {t['faces_per_s']:.0f} faces/s, "
            f"peak memory {t['peak_rss_mb']:.0f} MB, {t['threads']} threads",
        ]
    if card["int8"] and card["int8"]["study"]:
        lines += ["", f"INT8 study: see `{card['int8']['study']}`."]
    lines += ["", "## Files", "", "| file | bytes | sha256 |", "|---|---|---|"]
    lines += [f"| {n} | {f['bytes']} | `{f['sha256']}` |" for n, f in card["files"].items()]
    if card["regenerate"]:
        lines += ["", "Regenerate: `" + card["regenerate"] + "`"]
    return "\n".join(lines) + "\n"
