"""The CPU path on aarch64 (qemu-user): a few FER faces through mini-Xception FP32 and INT8 give the x86 answers.

Uses the emulator, arm64 sysroot and aarch64 site folder that ``benchmarks/aarch64/run.sh --prepare-only`` caches
(``EDGEEMO_AARCH64_CACHE``, default ~/.cache/edgeemo-aarch64) and skips where one is missing: building them needs
root, apt and some 200 MB of downloads from two Debian suites and PyPI, too slow and too fragile for every CI run.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from edgeemo.errors import DeviceError
from edgeemo.runtime.session import SessionOptions, resolve_providers

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "benchmarks" / "aarch64" / "worker.py"
CACHE = Path(os.environ.get("EDGEEMO_AARCH64_CACHE", Path.home() / ".cache" / "edgeemo-aarch64"))


def _qemu() -> str:
    """An emulator that shows aarch64 programs an Arm /proc/cpuinfo (qemu >= 8; docs/jetson.md says why)."""
    for q in (os.environ.get("QEMU_AARCH64"), str(CACHE / "qemu/usr/bin/qemu-aarch64"), shutil.which("qemu-aarch64")):
        if q and Path(q).is_file():
            out = subprocess.run([q, "--version"], capture_output=True, text=True).stdout
            m = re.search(r"version (\d+)\.", out)
            if m and int(m.group(1)) >= 8:
                return q
    pytest.skip("no qemu-aarch64 >= 8 (run benchmarks/aarch64/run.sh --prepare-only)")


def _sysroot_and_site() -> tuple[Path, Path]:
    sysroot = CACHE / "sysroot"
    site = CACHE / f"site-ort{onnxruntime.__version__}"
    if not (sysroot / ".complete").is_file() or not (site / ".complete").is_file():
        pytest.skip(f"no cached aarch64 sysroot and site folder in {CACHE} (benchmarks/aarch64/run.sh --prepare-only)")
    return sysroot, site


@pytest.mark.slow
def test_fp32_and_int8_on_aarch64_match_x86(tmp_path: Path, fer_publictest: Path) -> None:
    qemu = _qemu()
    sysroot, site = _sysroot_and_site()
    argv = [str(WORKER), "parity", "--faces", "6", "--models", "mini-xception", "--precisions", "fp32,int8"]
    arm_cmd = [qemu, "-cpu", "neoverse-n1", "-L", str(sysroot), str(sysroot / "usr/bin/python3.11")]
    sides = {"x86_64": [sys.executable], "aarch64": arm_cmd}
    out = {}
    for side, python in sides.items():
        env = {**os.environ, "PYTHONPATH": f"{site}:{REPO}" if side == "aarch64" else str(REPO)}
        r = subprocess.run(
            [*python, *argv[:2], str(tmp_path / side), *argv[2:]], env=env, capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"{side}: mini-xception int8 6 faces" in r.stderr  # really ran on that architecture
        out[side] = np.load(tmp_path / f"{side}.npz")
    x86, arm = out["x86_64"], out["aarch64"]
    for precision, tolerance in (("fp32", 1e-5), ("int8", 0.05)):
        key = f"mini-xception/{precision}"
        assert np.array_equal(x86[f"{key}/input_sha256"], arm[f"{key}/input_sha256"])  # identical input tensors
        a, b = x86[f"{key}/emotion"], arm[f"{key}/emotion"]
        assert a.shape == (6, 7) and np.allclose(a.sum(1), 1, atol=1e-4)
        assert np.abs(a - b).max() < tolerance
        assert (a.argmax(1) == b.argmax(1)).all()


@pytest.mark.parametrize(
    ("machine", "hint"), [("aarch64", "onnxruntime-gpu wheel for your JetPack"), ("x86_64", "edgeemo[gpu]")]
)
def test_strict_gpu_request_names_where_the_gpu_build_comes_from(monkeypatch, machine: str, hint: str) -> None:
    monkeypatch.setattr(platform, "machine", lambda: machine)
    with pytest.raises(DeviceError, match="TensorrtExecutionProvider") as e:
        resolve_providers(SessionOptions(device="tensorrt", strict_device=True), ["CPUExecutionProvider"])
    assert hint in str(e.value)
