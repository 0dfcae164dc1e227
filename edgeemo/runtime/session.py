"""The one place that turns device, thread and optimisation options into an onnxruntime session.

Provider priority for ``device="auto"``: TensorRT > CUDA > CPU, limited to what the installed onnxruntime
build offers. A provider that was asked for but is missing is reported once through ``logging`` and either
falls back to the next one or, with ``strict=True``, raises :class:`DeviceError`.
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from edgeemo.errors import DeviceError, ModelError, one_line

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda", "tensorrt"]
CpuLayout = Literal["auto", "portable", "avx512"]
GraphOptLevel = Literal["disable", "basic", "extended", "all"]  # onnxruntime's levels, in order
DEVICES: tuple[Device, ...] = get_args(Device)
CPU_LAYOUTS: tuple[CpuLayout, ...] = get_args(CpuLayout)
GRAPH_OPT_LEVELS: tuple[GraphOptLevel, ...] = get_args(GraphOptLevel)

_PROVIDER = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_CHAIN = {
    "auto": ("tensorrt", "cuda", "cpu"),
    "tensorrt": ("tensorrt", "cuda", "cpu"),
    "cuda": ("cuda", "cpu"),
    "cpu": ("cpu",),
}
_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class SessionOptions:
    """How to run a model: device, strictness, threads, graph optimisation, TensorRT settings."""

    device: Device = "auto"
    strict_device: bool = False
    intra_op_threads: int | None = None  # None: onnxruntime's default (one per physical core)
    inter_op_threads: int | None = None
    # Idle intra-op threads spin before sleeping: fastest when idle, slower on shared cores (docs/benchmarks.md).
    intra_op_spinning: bool = True
    graph_optimization: GraphOptLevel = "all"
    trt_fp16: bool = True
    trt_int8: bool = False
    trt_cache_dir: str | None = None
    cuda_device_id: int = 0
    # Which file of an fp32 model to load: "avx512" is the copy whose narrow layers are padded to onnxruntime's
    # 16-channel AVX-512 block (edgeemo_export/channel_pad.py); "auto" takes it when the CPU provider runs the model on
    # an AVX-512 CPU and the folder has it.
    cpu_layout: CpuLayout = "auto"
    # Largest batch handed to one session call; bigger batches run in slices of this size. None: 8 on the CPU
    # provider (a batch of 8 keeps a small CNN's activations in L2; docs/benchmarks.md), unlimited on CUDA/TensorRT.
    # 0: never slice.
    batch_slice: int | None = None


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


_LABEL = {"tensorrt": "TensorRT", "cuda": "CUDA", "cpu": "the CPU"}
_GET = {
    "tensorrt": "install 'edgeemo[gpu]' (onnxruntime-gpu, in place of 'edgeemo[cpu]') and the TensorRT, CUDA and "
    "cuDNN libraries, on a machine with an NVIDIA GPU",
    "cuda": "install 'edgeemo[gpu]' (onnxruntime-gpu, in place of 'edgeemo[cpu]') and the CUDA and cuDNN "
    "libraries, on a machine with an NVIDIA GPU",
}


def fallback_message(device: str, reason: str, runs_on: str | None) -> str:
    """What a user reads when the device asked for is not the one used: what was asked, why it is not used,
    what runs instead (``runs_on``, a key of the device chain; None: nothing) and how to get the asked one."""
    asked = f"{_LABEL[device]} was asked for (device {device!r}, {_PROVIDER[device]}), but {reason}"
    instead = f"; running on {_LABEL[runs_on]} instead" if runs_on else ""
    how = f". For {_LABEL[device]}: {gpu_install_hint(device)}" if device in _GET else ""
    return asked + instead + how


def _offers(available: list[str]) -> str:
    """The providers edgeemo can use among those onnxruntime lists (it also lists Azure and others), in words."""
    labels = [_LABEL[dev].removeprefix("the ") for dev in _PROVIDER if _PROVIDER[dev] in available]
    if not labels:
        return "this onnxruntime build offers no provider edgeemo can use"
    return f"this onnxruntime build offers {'only ' if len(labels) == 1 else ''}{' and '.join(labels)}"


def resolve_providers(options: SessionOptions, available: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Return the provider list (name, provider options) to hand to onnxruntime.

    Pure function of ``options`` and ``available`` so the selection logic is testable without a GPU.
    """
    if options.device not in _CHAIN:
        raise DeviceError(f"unknown device {options.device!r}; choose one of {', '.join(DEVICES)}")
    avail = available_providers() if available is None else available
    chain = [dev for dev in _CHAIN[options.device] if _PROVIDER[dev] in avail]
    wanted = _CHAIN[options.device][0]
    if options.device != "auto" and (not chain or chain[0] != wanted):
        fails = options.strict_device or not chain
        msg = fallback_message(options.device, _offers(avail), None if fails else chain[0])
        if fails:
            raise DeviceError(msg)
        key = (options.device, _PROVIDER[wanted])
        if key not in _warned:
            _warned.add(key)
            log.warning("%s", msg)
    if not chain:
        raise DeviceError(f"{_offers(avail)} (it lists {', '.join(avail) or 'none'})")
    return [(_PROVIDER[dev], _provider_options(dev, options)) for dev in chain]


def gpu_install_hint(device: str, machine: str | None = None) -> str:
    """Where a CUDA/TensorRT onnxruntime comes from on this kind of machine (PyPI has no aarch64 onnxruntime-gpu)."""
    if (machine or platform.machine()).lower() in ("aarch64", "arm64"):
        return "on NVIDIA Jetson install NVIDIA's onnxruntime-gpu wheel for your JetPack (docs/jetson.md)"
    return _GET[device]


def _provider_options(dev: str, options: SessionOptions) -> dict[str, Any]:
    if dev == "tensorrt":
        o: dict[str, Any] = {
            "device_id": options.cuda_device_id,
            "trt_fp16_enable": options.trt_fp16,
            "trt_int8_enable": options.trt_int8,
        }
        if options.trt_cache_dir:
            o["trt_engine_cache_enable"] = True
            o["trt_engine_cache_path"] = options.trt_cache_dir
        return o
    if dev == "cuda":
        return {"device_id": options.cuda_device_id}
    return {}


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpuid_features() -> dict[str, bool]:
    """numpy's runtime CPU feature table (CPUID on x86, HWCAP on Arm): what this process can run, also under
    emulation, where /proc/cpuinfo still describes the host. Empty where numpy does not expose it."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return {}
    return dict(features)


def cpu_has_avx512() -> bool:
    """Whether this CPU has AVX-512F, the instruction set behind onnxruntime's 16-channel NCHWc block."""
    return bool(cpuid_features().get("AVX512F", False))


def choose_cpu_layout(
    options: SessionOptions, available: list[str] | None = None, avx512: bool | None = None
) -> str | None:
    """The model-file layout to load (``"avx512"``) or ``None`` for the portable file.

    "auto" picks ``"avx512"`` only when the first provider is the CPU one and the CPU has AVX-512F; on a GPU
    provider the portable graph is what TensorRT/CUDA should see. Pure given ``available`` and ``avx512``.
    """
    if options.cpu_layout not in CPU_LAYOUTS:
        raise DeviceError(f"unknown CPU layout {options.cpu_layout!r}; choose one of {', '.join(CPU_LAYOUTS)}")
    if options.cpu_layout == "portable":
        return None
    if options.cpu_layout == "avx512":
        return "avx512"
    first = resolve_providers(options, available)[0][0]
    if first != _PROVIDER["cpu"]:
        return None
    return "avx512" if (cpu_has_avx512() if avx512 is None else avx512) else None


CPU_BATCH_SLICE = 8
X64_QUANT_PRECISION = "session.x64quantprecision"  # onnxruntime's Avx2WeightS8ToU8Transformer switch


def resolve_batch_slice(options: SessionOptions, available: list[str] | None = None) -> int:
    """The largest batch for one session call (0: no limit). Pure given ``available``."""
    if options.batch_slice is not None:
        if options.batch_slice < 0:
            raise DeviceError(f"batch_slice must be 0 (no limit) or positive, got {options.batch_slice}")
        return int(options.batch_slice)
    first = resolve_providers(options, available)[0][0]
    return CPU_BATCH_SLICE if first == _PROVIDER["cpu"] else 0


def make_session_options(options: SessionOptions) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    order = (level.ORT_DISABLE_ALL, level.ORT_ENABLE_BASIC, level.ORT_ENABLE_EXTENDED, level.ORT_ENABLE_ALL)
    levels = dict(zip(GRAPH_OPT_LEVELS, order, strict=True))
    if options.graph_optimization not in levels:
        raise DeviceError(
            f"unknown graph optimisation level {options.graph_optimization!r}; "
            f"choose one of {', '.join(GRAPH_OPT_LEVELS)}"
        )
    so.graph_optimization_level = levels[options.graph_optimization]
    if options.intra_op_threads is not None:
        so.intra_op_num_threads = int(options.intra_op_threads)
    if options.inter_op_threads is not None:
        so.inter_op_num_threads = int(options.inter_op_threads)
    if not options.intra_op_spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # x86 CPUs without VNNI add u8 x s8 products pairwise in saturating int16: there this switch stores int8
    # weights as uint8 at load (no effect elsewhere), so INT8 models exported with int8 weights stay exact.
    so.add_session_config_entry(X64_QUANT_PRECISION, "1")
    so.log_severity_level = 3
    return so


def create_session(path: str | os.PathLike[str] | bytes, options: SessionOptions | None = None) -> Any:
    """Open an ONNX model (path or serialized bytes) with the resolved providers.

    Any failure to parse or initialise the model becomes a :class:`ModelError` naming the file.
    """
    import onnxruntime as ort

    options = options or SessionOptions()
    origin = "<bytes>" if isinstance(path, bytes) else str(path)
    if not isinstance(path, bytes):
        p = Path(path)
        if not p.is_file():
            raise ModelError(f"{p}: model file not found")
        if p.stat().st_size == 0:
            raise ModelError(f"{p}: model file is empty")
    providers = resolve_providers(options)
    try:
        sess = ort.InferenceSession(
            path if isinstance(path, bytes) else str(path),
            sess_options=make_session_options(options),
            providers=[n for n, _ in providers],
            provider_options=[o for _, o in providers],
        )
    except Exception as exc:  # onnxruntime raises several unrelated types for bad files
        raise ModelError(f"{origin}: cannot load ONNX model ({one_line(exc, 300)})") from exc
    used = sess.get_providers()
    if options.device != "auto" and providers[0][0] not in used:
        # The build offers the asked provider but onnxruntime could not start it and fell back on its own.
        reason = "onnxruntime could not start it (no GPU, or its libraries are missing)"
        if options.strict_device:
            raise DeviceError(f"{origin}: {fallback_message(options.device, reason, None)}")
        runs_on = next((dev for dev in _CHAIN[options.device] if _PROVIDER[dev] in used), None)
        if (options.device, "start") not in _warned:
            _warned.add((options.device, "start"))
            log.warning("%s: %s", origin, fallback_message(options.device, reason, runs_on))
    log.debug("%s: session on %s", origin, used)
    return sess
