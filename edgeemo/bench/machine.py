"""Facts about the machine and software a result was measured on, recorded with every result file."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from edgeemo.runtime.session import cpuid_features, usable_cores

CPU_FLAGS_OF_INTEREST = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "fphp",
)
PACKAGES = (
    "edgeemo",
    "onnxruntime",
    "onnxruntime-gpu",
    "numpy",
    "opencv-python-headless",
    "opencv-python",
    "dlib-bin",
    "dlib",
    "av",
    "onnx",
    "tensorflow",
    "tf-keras",
    "tf2onnx",
    "onnxslim",
)
# numpy's runtime CPUID table → /proc/cpuinfo names, for the instruction sets that pick onnxruntime's kernels.
_CPUID_NAMES = {
    "SSE42": "sse4_2",
    "AVX": "avx",
    "AVX2": "avx2",
    "FMA3": "fma",
    "F16C": "f16c",
    "AVX512F": "avx512f",
    "AVX512BW": "avx512bw",
    "AVX512VL": "avx512vl",
    "AVX512VNNI": "avx512_vnni",
    "AVX512BF16": "avx512_bf16",
    "AVX512FP16": "avx512_fp16",
    "ASIMD": "asimd",
    "ASIMDDP": "asimddp",
    "ASIMDHP": "fphp",
    "SVE": "sve",
}
THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def _cpuinfo() -> tuple[str, set[str], int | None]:
    """CPU model name, feature flags and physical core count from /proc/cpuinfo (Linux; empty elsewhere)."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return platform.processor() or platform.machine(), set(), None
    model, flags = "", set()
    cores: set[tuple[str, str]] = set()
    phys = core = ""
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model") and not model:
            model = value
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
            cores.add((phys, core))
    return model or platform.machine(), flags, len(cores) or None


def _jetson_model() -> str | None:
    p = Path("/proc/device-tree/model")
    try:
        return p.read_text(errors="replace").strip("\x00\n ") if p.is_file() else None
    except OSError:
        return None


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def cpu_features() -> dict[str, Any]:
    """The CPU features this process runs with, from two views that differ under emulation.

    ``cpuid`` is what the process itself detects (what onnxruntime dispatches on; right under
    ``qemu-x86_64 -cpu Haswell``); ``cpuinfo`` is the kernel's /proc/cpuinfo, which also lists flags numpy does
    not probe (``avx_vnni``, ``amx_*``) but describes the host under qemu-user. ``emulated`` is true when the two
    disagree on a feature both can see.
    """
    _, flags, _ = _cpuinfo()
    cpuinfo = {f for f in CPU_FLAGS_OF_INTEREST if f in flags}
    table = cpuid_features()
    cpuid = {name for key, name in _CPUID_NAMES.items() if table.get(key)} if table else None
    both = set(_CPUID_NAMES.values()) & set(CPU_FLAGS_OF_INTEREST)
    emulated = bool(flags) and cpuid is not None and (cpuid & both) != (cpuinfo & both)
    return {
        "machine": platform.machine(),
        "cpuid": sorted(cpuid) if cpuid is not None else None,
        "cpuinfo": sorted(cpuinfo),
        "emulated": emulated,
    }


def machine_facts() -> dict[str, Any]:
    """CPU model and flags, cores, memory, load, OS, Python, package versions, onnxruntime providers."""
    import onnxruntime as ort

    model, flags, physical = _cpuinfo()
    usable = usable_cores()
    mem_gib = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu_model": model,
        "cpu_flags": sorted(f for f in CPU_FLAGS_OF_INTEREST if f in flags),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": usable,
        "memory_gib": mem_gib,
        "load_average_at_start": load,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "device_model": _jetson_model(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "onnxruntime_providers": list(ort.get_available_providers()),
        "onnxruntime_device": ort.get_device(),
        "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
    }
