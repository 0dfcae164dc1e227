"""Crop framing at build time: parse ``--framing``, and re-stamp it into shipped models (metadata only).

``python -m edgeemo_export.framing`` stamps every shipped model with its framing (:data:`SHIPPED`): mini-Xception's
calibrated one from ``models/mini-xception/framing.json`` (written by ``edgeemo_export.framing_calibration``), the
thesis models the thesis's 30 px. Only the ``edgeemo`` metadata entry of each ``model*.onnx`` changes (the graph
is untouched), then the card's metadata, file hashes and README follow. Idempotent: a file that already carries
the framing is not rewritten; run it again after any model file is regenerated.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx

from edgeemo.errors import EdgeemoError, ExportError, InputError
from edgeemo.runtime.spec import METADATA_KEY, THESIS_FRAMING, Framing
from edgeemo_export.card import CALIBRATION, CARD, README, file_table, framing_section, render_readme
from edgeemo_export.onnx_meta import read_spec

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"


def read_report(path: Path) -> tuple[Framing, ...]:
    """The framings of a calibration report (``{"detectors": [{"framing": {...}}, ...]}``) or a framing JSON."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = [d["framing"] for d in data["detectors"]] if isinstance(data, dict) and "detectors" in data else data
        framings = tuple(Framing(**e) for e in (entries if isinstance(entries, list) else [entries]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a framing or framing calibration JSON ({exc})") from exc
    return tuple(replace(f, basis=f.basis or path.name) for f in framings)


def parse_framing(text: str) -> tuple[Framing, ...]:
    """``--framing`` text → framings.

    ``30px`` (pixels per side), ``0.1`` (fraction of the box per side), ``box:L,R,T,B`` (fractions per side) or
    ``px:L,R,T,B``, each optionally followed by ``,square`` / ``,align`` and ``@DETECTOR``; or a ``.json`` file
    (a calibration report or framing objects).
    """
    text = text.strip()
    if text.endswith(".json"):
        return read_report(Path(text))
    body, _, detector = text.partition("@")
    parts = [p.strip() for p in body.split(",") if p.strip()]
    flags = {p for p in parts if p in ("square", "align")}
    values = [p for p in parts if p not in flags]
    try:
        if len(values) == 1 and values[0].endswith("px"):
            framing = Framing.pixels(float(values[0][:-2]))
        elif len(values) == 1 and ":" not in values[0]:
            framing = Framing.ratio(float(values[0]))
        else:
            unit, _, first = values[0].partition(":")
            sides = [float(v) for v in [first, *values[1:]]]
            if unit not in ("box", "px") or len(sides) != 4:
                raise ValueError("expected box:L,R,T,B or px:L,R,T,B")
            framing = Framing(unit, *sides)  # type: ignore[arg-type]
    except (ValueError, IndexError) as exc:
        raise InputError(
            f"--framing {text!r}: {exc} (e.g. 30px, 0.1, box:0.05,0.06,0.11,0.03,square@blazeface)"
        ) from exc
    framing = replace(framing, square="square" in flags, align="align" in flags, detector=detector.strip())
    if framing.problems():
        raise InputError(f"--framing {text!r}: " + "; ".join(framing.problems()))
    return (framing,)


def shipped_framing(name: str) -> tuple[Framing, ...]:
    """What each shipped model is stamped with: its calibration report where it has one, else the thesis's 30 px."""
    report = MODELS / name / CALIBRATION
    return read_report(report) if report.is_file() else (replace(THESIS_FRAMING, basis="thesis: 30 px per side"),)


def stamp_file(path: Path, framings: tuple[Framing, ...]) -> bool:
    """Write ``framings`` into one ONNX file's metadata; False when it already carries them (file untouched)."""
    model = onnx.load(str(path), load_external_data=False)
    spec = read_spec(model, str(path))
    if spec.framing == framings:
        return False
    stamped = replace(spec, framing=framings)
    stamped.validate(str(path))
    # In place: the entry keeps its position, so files derived from this one (the AVX-512 copy) stay byte-equal
    # to what the exporter would write from it.
    next(p for p in model.metadata_props if p.key == METADATA_KEY).value = stamped.to_json()
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return True


def stamp_folder(folder: Path, framings: tuple[Framing, ...]) -> list[Path]:
    """Stamp every ``model*.onnx`` of ``folder``, then bring its card (metadata, hashes, README) up to date."""
    files = sorted(folder.glob("model*.onnx"))
    if not files:
        raise ExportError(f"{folder}: no model*.onnx to stamp")
    changed = [p for p in files if stamp_file(p, framings)]
    card_path = folder / CARD
    if card_path.is_file():
        card: dict[str, Any] = json.loads(card_path.read_text(encoding="utf-8"))
        fp32 = folder / "model.onnx"
        spec = read_spec(onnx.load(str(fp32 if fp32.is_file() else files[0]), load_external_data=False), str(folder))
        card["metadata"] = spec.to_dict()
        card["framing"] = framing_section(folder, spec.framing)
        card["files"] = file_table(folder)
        card_path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        (folder / README).write_text(render_readme(card), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path, help="model folders (default: every shipped model)")
    ap.add_argument("--framing", help="framing to stamp (see parse_framing; default: each model's shipped one)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    folders = args.folders or sorted(p.parent for p in MODELS.glob("*/model.onnx"))
    try:
        for folder in folders:
            framings = parse_framing(args.framing) if args.framing else shipped_framing(folder.name)
            changed = stamp_folder(folder, framings)
            what = "; ".join(f.describe() for f in framings)
            print(f"{folder.name}: {what}: {len(changed)} file(s) restamped" + (", card updated" if changed else ""))
    except EdgeemoError as exc:
        print(f"framing: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
