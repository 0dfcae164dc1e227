"""Parity: the original Keras model(s) against each ONNX variant, on the same preprocessed faces.

The batch comes from the runtime's own :meth:`EmotionModel.preprocess`, so the preprocessing the runtime
applies is what gets checked. Per head and variant the report gives max and mean |Δ| of the raw head output,
top-1 agreement (classification heads), and accuracy / per-class accuracy where the face labels are the
model's class names (all labels of the set must be classes of the model; otherwise no accuracy is given).

Scale rule: every threshold on |Δ| applies to ``|Δ| / s`` with ``s = max(1, max |reference output|)`` over
the face set. For probabilities (within [0, 1]) this is the plain absolute difference; for logits and unbounded
regression outputs (valence/arousal) it is the difference relative to the largest reference magnitude, so a
head that outputs values around 4 is held to the same number of significant digits as one around 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeemo.bench.machine import cpu_features
from edgeemo.errors import ExportError, InputError, ModelError
from edgeemo.runtime.assets import PRECISION_SUFFIX, resolve_model
from edgeemo.runtime.model import EmotionModel
from edgeemo.runtime.spec import EMOTION_HEAD, ModelSpec
from edgeemo_export.faceset import FaceSet, parity_faces
from edgeemo_export.keras_io import sha256_file

log = logging.getLogger(__name__)

BATCH = 256


@dataclass(frozen=True)
class Threshold:
    """Limits for one precision and head type; ``None`` means not checked."""

    max_delta: float | None = None  # on max |Δ| / s
    mean_delta: float | None = None  # on mean |Δ| / s
    agreement: float | None = None  # top-1 agreement, classification heads only


@dataclass(frozen=True)
class Thresholds:
    """Per precision: one threshold for classification heads and one for regression heads."""

    classification: dict[str, Threshold] = field(
        default_factory=lambda: {
            "fp32": Threshold(max_delta=1e-5, agreement=1.0),
            "fp16": Threshold(max_delta=1e-2, agreement=0.995),
            "int8": Threshold(agreement=0.99),
        }
    )
    regression: dict[str, Threshold] = field(
        default_factory=lambda: {
            "fp32": Threshold(max_delta=1e-5),
            "fp16": Threshold(max_delta=1e-2),
            "int8": Threshold(mean_delta=5e-2),
        }
    )

    def for_head(self, precision: str, kind: str) -> Threshold:
        table = self.regression if kind == "regression" else self.classification
        return table.get(precision, Threshold())

    def with_overrides(self, items: Sequence[str]) -> Thresholds:
        """Apply ``PREC[.regression].FIELD=VALUE`` items, e.g. ``fp16.agreement=0.99``, ``int8.max_delta=none``."""
        cls, reg = dict(self.classification), dict(self.regression)
        for item in items:
            key, sep, value = item.partition("=")
            parts = key.strip().split(".")
            if not sep or len(parts) not in (2, 3) or (len(parts) == 3 and parts[1] != "regression"):
                raise InputError(f"threshold {item!r}: expected PREC.FIELD=VALUE or PREC.regression.FIELD=VALUE")
            prec, fld = parts[0], parts[-1]
            if fld not in ("max_delta", "mean_delta", "agreement"):
                raise InputError(f"threshold {item!r}: field must be max_delta, mean_delta or agreement")
            try:
                val = None if value.strip().lower() == "none" else float(value)
            except ValueError as exc:
                raise InputError(f"threshold {item!r}: {value!r} is not a number or 'none'") from exc
            table = reg if len(parts) == 3 else cls
            table[prec] = replace(table.get(prec, Threshold()), **{fld: val})
        return Thresholds(cls, reg)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classification": {k: asdict(v) for k, v in self.classification.items()},
            "regression": {k: asdict(v) for k, v in self.regression.items()},
            "scale_rule": "thresholds on |delta| apply to |delta| / max(1, max|reference|)",
        }


@dataclass(frozen=True)
class HeadParity:
    head: str
    kind: str
    max_abs_delta: float
    mean_abs_delta: float
    scale: float
    max_delta: float  # max |Δ| / scale
    mean_delta: float  # mean |Δ| / scale
    agreement: float | None = None
    accuracy: float | None = None
    per_class_accuracy: dict[str, float] | None = None


@dataclass(frozen=True)
class VariantParity:
    precision: str
    path: str
    heads: tuple[HeadParity, ...]
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class ParityReport:
    model: str
    faces: str
    n_faces: int
    skipped: tuple[tuple[str, str], ...]
    n_labelled: int  # labelled faces used for accuracy (0 unless every label is one of the model's classes)
    keras_sources: tuple[tuple[str, str], ...]  # (file, sha256)
    reference_accuracy: float | None
    reference_per_class: dict[str, float] | None
    variants: tuple[VariantParity, ...]
    thresholds: dict[str, Any]
    # CPU features the variants ran with (edgeemo.bench.machine.cpu_features): INT8 kernels differ by instruction set
    cpu: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.variants)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        d["skipped"] = [{"file": f, "reason": r} for f, r in self.skipped]
        d["keras_sources"] = [{"file": f, "sha256": s} for f, s in self.keras_sources]
        for v, vd in zip(self.variants, d["variants"]):
            vd["passed"] = v.passed
        return d


@dataclass(frozen=True)
class KerasSource:
    """One original Keras file and the heads it produces, in its output order."""

    path: Path
    heads: tuple[str, ...]


def keras_sources_for(onnx_path: Path, spec: ModelSpec, given: Sequence[Path] = ()) -> tuple[KerasSource, ...]:
    """The Keras files behind an exported model: ``given`` files, or found by name and sha256 beside it.

    A fused model lists its parts in the ``edgeemo.parts`` metadata; each part is looked for in the model's
    folder and in its sibling folders (``models/<name>/``).
    """
    import onnx

    from edgeemo_export.onnx_meta import read_parts

    parts = read_parts(onnx.load(str(onnx_path), load_external_data=False)) or [
        {"heads": list(spec.head_names), "file": spec.source.file, "sha256": spec.source.sha256}
    ]
    given_sha = {sha256_file(Path(g)): Path(g) for g in given}
    for g in given:
        if not Path(g).is_file():
            raise InputError(f"{g}: Keras file not found")
    out = []
    for part in parts:
        if given:
            path = given_sha.get(part["sha256"])
            if path is None and len(given) == 1 and len(parts) == 1:
                path = Path(given[0])
                log.warning("%s: sha256 differs from the source recorded in %s", path, onnx_path)
        else:
            folder = onnx_path.resolve().parent
            candidates = [folder / part["file"], *sorted(folder.parent.glob(f"*/{part['file']}"))]
            path = next((c for c in candidates if c.is_file() and sha256_file(c) == part["sha256"]), None)
        if path is None:
            raise ExportError(
                f"{onnx_path}: original Keras file {part['file']} (sha256 {part['sha256'][:12]}…) not found beside "
                "the model; pass it with --keras"
            )
        out.append(KerasSource(path, tuple(part["heads"])))
    return tuple(out)


def _keras_outputs(sources: Sequence[KerasSource], batch: np.ndarray, trust_lambda: bool) -> dict[str, np.ndarray]:
    from edgeemo_export.keras_io import load_keras

    ref: dict[str, np.ndarray] = {}
    for src in sources:
        model, _ = load_keras(src.path, trust_lambda=trust_lambda)
        chunks: list[list[np.ndarray]] = [[] for _ in src.heads]
        for start in range(0, len(batch), BATCH):
            out = model(batch[start : start + BATCH], training=False)
            outs = out if isinstance(out, (list, tuple)) else [out]
            for k, o in enumerate(outs):
                chunks[k].append(np.asarray(o, dtype=np.float32))
        for head, parts in zip(src.heads, chunks):
            ref[head] = np.concatenate(parts).reshape(len(batch), -1)
    return ref


def _onnx_outputs(model: EmotionModel, batch: np.ndarray) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(batch), BATCH):
        for head, arr in model.run_batch(batch[start : start + BATCH]).heads.items():
            parts.setdefault(head, []).append(arr.reshape(len(arr), -1))
    return {h: np.concatenate(p) for h, p in parts.items()}


def _accuracy(pred: np.ndarray, truth: np.ndarray, classes: Sequence[str]) -> tuple[float, dict[str, float]]:
    per = {c: float(np.mean(pred[truth == k] == k)) for k, c in enumerate(classes) if np.any(truth == k)}
    return float(np.mean(pred == truth)), per


def _label_indices(faces: FaceSet, classes: Sequence[str]) -> np.ndarray:
    index = {c: k for k, c in enumerate(classes)}
    return np.array([index.get(label, -1) if label is not None else -1 for label in faces.labels], dtype=np.int64)


def run_parity(
    onnx_paths: Sequence[Path],
    faces: FaceSet,
    keras: Sequence[Path] = (),
    thresholds: Thresholds | None = None,
    trust_lambda: bool = False,
) -> ParityReport:
    """Compare every ONNX variant (same model, any precisions) with its Keras original on ``faces``."""
    if not onnx_paths:
        raise ExportError("parity needs at least one ONNX model")
    thresholds = thresholds or Thresholds()
    variants = [EmotionModel(p) for p in onnx_paths]
    base = variants[0]
    for v in variants[1:]:
        if v.spec.input != base.spec.input or v.spec.head_names != base.spec.head_names:
            raise ExportError(f"{v.path}: input or heads differ from {base.path}; not variants of one model")
    sources = keras_sources_for(base.path, base.spec, keras)
    batch = base.preprocess(list(faces.images))
    ref = _keras_outputs(sources, batch, trust_lambda)
    missing = set(base.spec.head_names) - set(ref)
    if missing:
        raise ExportError(f"{base.path}: no Keras reference for head(s) {sorted(missing)}")
    classes = base.spec.classes
    foreign = sorted({label for label in faces.labels if label is not None} - set(classes))
    if foreign and faces.labelled:
        log.info("%s: no accuracy, face labels %s are not classes of the model", base.path, foreign)
    truth = _label_indices(faces, classes) if classes and not foreign else np.full(len(batch), -1)
    labelled = truth >= 0
    ref_acc = ref_per = None
    if EMOTION_HEAD in ref and labelled.any():
        ref_acc, ref_per = _accuracy(ref[EMOTION_HEAD].argmax(1)[labelled], truth[labelled], classes)

    results = []
    for model in variants:
        got = _onnx_outputs(model, batch)
        precision = model.spec.source.precision
        heads, failures = [], []
        for head in model.spec.outputs:
            a, b = ref[head.name], got[head.name]
            diff = np.abs(a - b)
            scale = max(1.0, float(np.max(np.abs(a))))
            hp = HeadParity(
                head.name,
                head.kind,
                float(diff.max()),
                float(diff.mean()),
                scale,
                float(diff.max()) / scale,
                float(diff.mean()) / scale,
            )
            if head.kind != "regression":
                pa, pb = a.argmax(1), b.argmax(1)
                hp = replace(hp, agreement=float(np.mean(pa == pb)))
                if head.name == EMOTION_HEAD and labelled.any():
                    acc, per = _accuracy(pb[labelled], truth[labelled], classes)
                    hp = replace(hp, accuracy=acc, per_class_accuracy=per)
            heads.append(hp)
            failures += _check(hp, thresholds.for_head(precision, head.kind))
        results.append(VariantParity(precision, str(model.path), tuple(heads), tuple(failures)))
        for f in failures:
            log.warning("%s (%s): %s", model.path, precision, f)
    return ParityReport(
        model=base.spec.name,
        faces=faces.source,
        n_faces=len(batch),
        skipped=faces.skipped,
        n_labelled=int(labelled.sum()),
        keras_sources=tuple((s.path.name, sha256_file(s.path)) for s in sources),
        reference_accuracy=ref_acc,
        reference_per_class=ref_per,
        variants=tuple(results),
        thresholds=thresholds.to_dict(),
        cpu=cpu_features(),
    )


def check_model_parity(
    model: str,
    precisions: str | Sequence[str] = "all",
    faces: Path | None = None,
    limit: int | None = None,
    keras: Sequence[Path] = (),
    thresholds: Thresholds | None = None,
    trust_lambda: bool = False,
) -> ParityReport:
    """``edgeemo parity``: an exported model's ONNX variants (a model folder or name: ``"all"`` it has, or those
    asked; an ``.onnx`` file: that one) against its Keras original on ``faces`` (default: the registry faces)."""
    every = precisions == "all"
    wanted = tuple(PRECISION_SUFFIX) if every else _split(precisions)
    if Path(model).suffix == ".onnx":
        paths = [resolve_model(model)]
    else:
        paths = []
        for prec in wanted:
            try:
                paths.append(resolve_model(model, prec))
            except ModelError:
                if not every:
                    raise
        if not paths:
            raise InputError(f"{model}: no ONNX variant found")
    face_set = parity_faces(faces, limit)
    if face_set is None:
        raise InputError("no face set: pass --faces DIR (or install scikit-image for the built-in faces)")
    return run_parity(paths, face_set, keras, thresholds, trust_lambda)


def _split(text: str | Sequence[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else text
    return tuple(s.strip() for s in items if s.strip())


def _check(hp: HeadParity, t: Threshold) -> list[str]:
    out = []
    if t.max_delta is not None and hp.max_delta > t.max_delta:
        out.append(f"{hp.head}: max |Δ|/s {hp.max_delta:.3g} > {t.max_delta:g}")
    if t.mean_delta is not None and hp.mean_delta > t.mean_delta:
        out.append(f"{hp.head}: mean |Δ|/s {hp.mean_delta:.3g} > {t.mean_delta:g}")
    if t.agreement is not None and hp.agreement is not None and hp.agreement < t.agreement:
        out.append(f"{hp.head}: top-1 agreement {hp.agreement:.4f} < {t.agreement:g}")
    return out


def cpu_summary(cpu: dict[str, Any]) -> str:
    """One line: machine and the features its CPUID reports (plus the kernel's view when they differ)."""
    if not cpu:
        return "unknown"
    line = f"{cpu['machine']} {' '.join(cpu['cpuid'] or cpu['cpuinfo'])}"
    if cpu.get("emulated"):
        line += f" (emulated; /proc/cpuinfo says {' '.join(cpu['cpuinfo'])})"
    return line


def report_table(report: ParityReport) -> Any:
    """A rich table: one row per variant and head."""
    from rich.table import Table

    acc = f", Keras accuracy {report.reference_accuracy:.4f}" if report.reference_accuracy is not None else ""
    table = Table(
        title=f"parity {report.model}: {report.n_faces} faces{acc}",
        caption=f"faces: {report.faces}; CPU: {cpu_summary(report.cpu)}",
    )
    for col in ("precision", "head", "max |Δ|", "mean |Δ|", "agreement", "accuracy", "result"):
        table.add_column(col, justify="left" if col in ("precision", "head", "result") else "right")
    for v in report.variants:
        for h in v.heads:
            failed = any(f.startswith(f"{h.head}:") for f in v.failures)
            table.add_row(
                v.precision,
                h.head,
                f"{h.max_abs_delta:.3g}",
                f"{h.mean_abs_delta:.3g}",
                "-" if h.agreement is None else f"{h.agreement:.4f}",
                "-" if h.accuracy is None else f"{h.accuracy:.4f}",
                "[red]FAIL[/red]" if failed else "[green]ok[/green]",
            )
    return table
