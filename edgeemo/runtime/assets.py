"""Where shipped and user models live, and how a model name plus precision becomes a file.

A model folder holds ``model.onnx`` (fp32), ``model.fp16.onnx``, ``model.int8.onnx`` and ``card.json``, and
may hold ``model.avx512.onnx``: the same fp32 model laid out for onnxruntime on AVX-512 CPUs
(:mod:`edgeemo_export.channel_pad`), picked through :func:`edgeemo.runtime.session.choose_cpu_layout`.
Shipped models are found in the installed package (``edgeemo/_models``) or, in a source checkout, in the
repository's ``models/``. Extra folders of user models can be listed in ``EDGEEMO_MODEL_PATH`` (os.pathsep).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgeemo.errors import ModelError
from edgeemo.runtime.spec import PRECISIONS

log = logging.getLogger(__name__)

CARD = "card.json"
DEFAULT_MODEL = "mini-xception"
PRECISION_SUFFIX = dict(zip(PRECISIONS, ("model.onnx", "model.fp16.onnx", "model.int8.onnx"), strict=True))
LAYOUT_SUFFIX = {"avx512": "model.avx512.onnx"}  # fp32 only
SAMPLE_CLIP = "astronaut.mp4"
Packaged = Literal["models", "samples"]  # folders shipped as edgeemo/_models and edgeemo/_samples


def _packaged_candidates(kind: Packaged) -> tuple[Path, Path]:
    package = Path(__file__).resolve().parents[1]
    return package / f"_{kind}", package.parent / kind


def packaged_dir(kind: Packaged) -> Path | None:
    """A folder shipped with edgeemo: ``edgeemo/_<kind>`` when installed, the repository's ``<kind>/`` in a
    checkout (or an editable install); None when neither exists. The one place that knows both layouts."""
    return next((p for p in _packaged_candidates(kind) if p.is_dir()), None)


def sample_clip() -> Path | None:
    """The shipped sample clip, None when this install lacks it."""
    folder = packaged_dir("samples")
    clip = folder / SAMPLE_CLIP if folder is not None else None
    return clip if clip is not None and clip.is_file() else None


def shipped_models_dir() -> Path:
    folder = packaged_dir("models")
    if folder is None:
        looked = " and ".join(str(p) for p in _packaged_candidates("models"))
        raise ModelError(f"shipped models not found (looked in {looked})")
    return folder


def asset_path(*parts: str) -> Path:
    """Path of a shipped asset, e.g. ``asset_path("detectors", "dlib", "mmod_human_face_detector.dat")``."""
    p = shipped_models_dir().joinpath(*parts)
    if not p.exists():
        raise ModelError(f"shipped asset missing: {p}")
    return p


def model_search_path() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("EDGEEMO_MODEL_PATH", "").split(os.pathsep) if p]
    return [*extra, shipped_models_dir()]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    folder: Path
    shipped: bool

    def variants(self) -> dict[str, Path]:
        return {p: self.folder / f for p, f in PRECISION_SUFFIX.items() if (self.folder / f).is_file()}

    def layouts(self) -> dict[str, Path]:
        """The fp32 model's CPU-layout copies (``avx512`` → file) present in the folder."""
        return {k: self.folder / f for k, f in LAYOUT_SUFFIX.items() if (self.folder / f).is_file()}

    def card(self) -> dict[str, Any]:
        return read_card(self.folder)

    @property
    def untrained(self) -> bool:
        return is_untrained(self.card())


def read_card(folder: Path) -> dict[str, Any]:
    """The folder's ``card.json`` ({} when absent or unreadable: a card only adds facts, it never blocks a load)."""
    try:
        card = json.loads((folder / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def is_untrained(card: dict[str, Any]) -> bool:
    """The card says ``"weights": "untrained"`` (set at export; a retrained model's new card clears it)."""
    return card.get("weights") == "untrained"


def card_accuracy(card: dict[str, Any], file_name: str = PRECISION_SUFFIX["fp32"]) -> float | None:
    """Top-1 accuracy the card measured for one of its files, else None (untrained or regression-only)."""
    parity = card.get("parity") or {}
    for variant in parity.get("variants") or ():
        if Path(str(variant.get("path", ""))).name == file_name:
            accs = [h.get("accuracy") for h in variant.get("heads") or () if h.get("accuracy") is not None]
            return float(accs[0]) if accs else None
    return None


def untrained_heads(card: dict[str, Any]) -> tuple[str, ...]:
    """The heads the card names untrained when only some are (``"untrained_heads"``); () when it names none."""
    heads = card.get("untrained_heads")
    return tuple(h for h in heads if isinstance(h, str)) if isinstance(heads, list) else ()


_warned_untrained: set[Path] = set()


def warn_if_untrained(model_file: Path) -> None:
    """Log once per model folder and process when the card next to ``model_file`` marks its weights untrained,
    naming the untrained heads when the card says only some are."""
    folder = model_file.resolve().parent
    if folder in _warned_untrained:
        return
    card = read_card(folder)
    if not is_untrained(card):
        return
    _warned_untrained.add(folder)
    partial = untrained_heads(card)
    if partial:
        outputs = (card.get("metadata") or {}).get("outputs") or ()
        trained = [str(o.get("name")) for o in outputs if isinstance(o, dict) and o.get("name") not in partial]
        log.warning(
            "%s: UNTRAINED heads %s (its card.json says so): those outputs mean nothing; trained heads: %s",
            folder.name,
            ", ".join(partial),
            ", ".join(trained) or "none",
        )
        return
    log.warning(
        "%s: UNTRAINED weights (its card.json says so): its outputs mean nothing; for speed and compatibility "
        "work only (for labels use %s)",
        folder.name,
        DEFAULT_MODEL,
    )


def list_models() -> list[ModelEntry]:
    """Every model folder (with at least ``model.onnx``) on the search path; earlier folders win."""
    seen: dict[str, ModelEntry] = {}
    shipped = shipped_models_dir()
    for root in model_search_path():
        try:
            folders = sorted(root.iterdir()) if root.is_dir() else []
        except OSError as exc:  # an unreadable folder on EDGEEMO_MODEL_PATH must not hide the other models
            log.warning("%s: cannot list model folder (%s)", root, exc.strerror or exc)
            continue
        for d in folders:
            if d.is_dir() and (d / PRECISION_SUFFIX["fp32"]).is_file() and d.name not in seen:
                seen[d.name] = ModelEntry(d.name, d, root == shipped)
    return list(seen.values())


def resolve_model(name_or_path: str | os.PathLike[str], precision: str = "fp32", layout: str | None = None) -> Path:
    """An ``.onnx`` path is used as is; a folder or model name picks the file of ``precision``.

    With ``layout`` (e.g. ``"avx512"``) an fp32 model's layout copy is taken when the folder has one; a folder
    without it gives the portable file.
    """
    if precision not in PRECISION_SUFFIX:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_SUFFIX)}")
    p = Path(name_or_path)
    if p.suffix == ".onnx":
        if not p.is_file():
            raise ModelError(f"{p}: model file not found")
        return p
    folder = p if p.is_dir() else None
    if folder is None:
        for entry in list_models():
            if entry.name == str(name_or_path):
                folder = entry.folder
                break
    if folder is None:
        names = ", ".join(e.name for e in list_models()) or "none"
        raise ModelError(f"unknown model {str(name_or_path)!r}; available: {names}")
    if layout is not None and layout not in LAYOUT_SUFFIX:
        raise ModelError(f"unknown model layout {layout!r}; choose one of {', '.join(LAYOUT_SUFFIX)}")
    if layout and precision == "fp32" and (folder / LAYOUT_SUFFIX[layout]).is_file():
        return folder / LAYOUT_SUFFIX[layout]
    f = folder / PRECISION_SUFFIX[precision]
    if not f.is_file():
        have = ", ".join(ModelEntry(folder.name, folder, False).variants()) or "none"
        raise ModelError(f"model {folder.name!r} has no {precision} variant (has: {have})")
    return f
