"""Model cards: ``models/<name>/card.json`` (machine-readable) and a short ``README.md`` for humans.

The card repeats the embedded metadata, adds licence and provenance, the sha256 of every file in the folder,
and the parity figures measured at export time (and the INT8 study, where ``int8_study.json`` exists).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeemo.assets import PRECISION_SUFFIX
from edgeemo.spec import ModelSpec
from export.keras_io import sha256_file
from export.parity import ParityReport

CARD = "card.json"
README = "README.md"
INT8_STUDY = "int8_study.json"


@dataclass(frozen=True)
class CardFacts:
    """What a card says beyond the metadata; ``weights`` is ``trained`` or ``untrained``."""

    description: str = ""
    weights: str = "trained"
    licence: str = "not stated"
    provenance: str = ""
    notes: tuple[str, ...] = ()
    regenerate: str = ""
    training: dict[str, Any] | None = None  # figures measured by export/train.py


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name not in (CARD, README) and not p.name.startswith(".")
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
        "licence": facts.licence,
        "provenance": facts.provenance,
        "notes": list(facts.notes),
        "metadata": spec.to_dict(),
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
        }
    path = folder / CARD
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    (folder / README).write_text(render_readme(card), encoding="utf-8")
    return path


def render_readme(card: dict[str, Any]) -> str:
    meta = card["metadata"]
    i = meta["input"]
    lines = [f"# {card['name']}", ""]
    if card["weights"] == "untrained":
        lines += [
            "**UNTRAINED WEIGHTS.** For compatibility, speed and parity work only; its predictions mean nothing.",
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
    lines += [f"- Note: {n}" for n in card["notes"]]
    p = card["parity"]
    if p:
        acc = f"; Keras accuracy {p['reference_accuracy']:.4f}" if p["reference_accuracy"] is not None else ""
        lines += [
            "",
            f"## Parity (Keras vs ONNX, {p['n_faces']} faces from `{p['faces']}`{acc})",
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
    t = card.get("training")
    if t:
        lines += [
            "",
            "## Training (measured by `export/train.py`)",
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
