"""Provider selection is pure logic: tested here for every device without needing a GPU."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgeemo.errors import DeviceError, ModelError
from edgeemo.runtime.session import (
    SessionOptions,
    choose_cpu_layout,
    cpu_has_avx512,
    create_session,
    resolve_batch_slice,
    resolve_providers,
)

CPU_ONLY = ["CPUExecutionProvider"]
JETSON = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CUDA_ONLY = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def names(chosen: list[tuple[str, dict]]) -> list[str]:
    return [n for n, _ in chosen]


def test_auto_prefers_tensorrt_then_cuda_then_cpu() -> None:
    assert names(resolve_providers(SessionOptions(device="auto"), JETSON)) == JETSON
    assert names(resolve_providers(SessionOptions(device="auto"), CUDA_ONLY)) == CUDA_ONLY
    assert names(resolve_providers(SessionOptions(device="auto"), CPU_ONLY)) == CPU_ONLY


def test_cpu_never_picks_gpu_providers() -> None:
    assert names(resolve_providers(SessionOptions(device="cpu"), JETSON)) == CPU_ONLY


def test_cuda_skips_tensorrt() -> None:
    assert names(resolve_providers(SessionOptions(device="cuda"), JETSON)) == CUDA_ONLY


def test_missing_provider_falls_back_with_one_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeemo.runtime import session

    monkeypatch.setattr(session, "_warned", set())  # as in a fresh process: earlier tests may have warned
    caplog.set_level(logging.WARNING, logger="edgeemo.runtime.session")
    opts = SessionOptions(device="tensorrt", trt_cache_dir="/tmp/x")
    assert names(resolve_providers(opts, CPU_ONLY)) == CPU_ONLY
    assert names(resolve_providers(opts, CPU_ONLY)) == CPU_ONLY
    warnings = [r for r in caplog.records if "TensorrtExecutionProvider" in r.getMessage()]
    assert len(warnings) == 1  # said once per process, not per session
    assert "running on the CPU instead" in warnings[0].getMessage()


def test_strict_device_refuses_missing_provider() -> None:
    with pytest.raises(DeviceError, match="CUDAExecutionProvider"):
        resolve_providers(SessionOptions(device="cuda", strict_device=True), CPU_ONLY)


def test_tensorrt_options_carry_precision_and_cache() -> None:
    opts = SessionOptions(device="tensorrt", trt_fp16=True, trt_int8=True, trt_cache_dir="/cache")
    (trt, trt_opts), *_ = resolve_providers(opts, JETSON)
    assert trt == "TensorrtExecutionProvider"
    assert trt_opts["trt_fp16_enable"] and trt_opts["trt_int8_enable"]
    assert trt_opts["trt_engine_cache_enable"] and trt_opts["trt_engine_cache_path"] == "/cache"


def test_unknown_device_is_an_error() -> None:
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_providers(SessionOptions(device="tpu"), CPU_ONLY)  # type: ignore[arg-type]


def test_real_session_on_this_machine_uses_cpu() -> None:
    import edgeemo

    model = edgeemo.load_model("mini-xception", session_options=SessionOptions(device="auto", intra_op_threads=1))
    assert model.providers[-1] == "CPUExecutionProvider"
    out = model.run([np.full((48, 48), 128, np.uint8)])
    assert out.probabilities is not None and out.probabilities.shape == (1, len(model.classes))


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all"])
def test_corrupt_model_file_is_a_model_error(tmp_path, content: bytes) -> None:
    p = tmp_path / "broken.onnx"
    p.write_bytes(content)
    with pytest.raises(ModelError, match=r"broken\.onnx"):
        create_session(p)


@pytest.mark.parametrize(
    ("layout", "available", "avx512", "want"),
    [
        ("auto", CPU_ONLY, True, "avx512"),
        ("auto", CPU_ONLY, False, None),
        ("auto", JETSON, True, None),  # TensorRT/CUDA get the portable graph
        ("auto", CUDA_ONLY, True, None),
        ("portable", CPU_ONLY, True, None),
        ("avx512", CPU_ONLY, False, "avx512"),  # forced, e.g. to benchmark it
    ],
)
def test_cpu_layout_choice(layout: str, available: list[str], avx512: bool, want: str | None) -> None:
    options = SessionOptions(cpu_layout=layout)
    assert choose_cpu_layout(options, available, avx512=avx512) == want


def test_cpu_layout_on_cpu_device_ignores_gpus() -> None:
    assert choose_cpu_layout(SessionOptions(device="cpu"), JETSON, avx512=True) == "avx512"


def test_unknown_cpu_layout_is_an_error() -> None:
    with pytest.raises(DeviceError, match="unknown CPU layout 'neon'"):
        choose_cpu_layout(SessionOptions(cpu_layout="neon"), CPU_ONLY, avx512=True)


def test_cpu_feature_probe_matches_proc_cpuinfo() -> None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo on this system")
    flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.read_text().splitlines() if ln.startswith("flags")), [])
    assert cpu_has_avx512() == ("avx512f" in flags)


@pytest.mark.parametrize(
    ("asked", "available", "want"),
    [(None, CPU_ONLY, 8), (None, JETSON, 0), (None, CUDA_ONLY, 0), (0, CPU_ONLY, 0), (3, JETSON, 3)],
)
def test_batch_slice_choice(asked: int | None, available: list[str], want: int) -> None:
    assert resolve_batch_slice(SessionOptions(batch_slice=asked), available) == want


def test_negative_batch_slice_is_an_error() -> None:
    with pytest.raises(DeviceError, match="batch_slice"):
        resolve_batch_slice(SessionOptions(batch_slice=-1), CPU_ONLY)


def test_sliced_batches_give_the_one_call_answers_in_order(astronaut_bgr: np.ndarray) -> None:
    """Ten real crops (shifted, flipped, scaled) through slices of 3 and through one call agree face by face."""
    from edgeemo.runtime.model import EmotionModel

    face = astronaut_bgr[30:230, 140:320]
    crops = [np.ascontiguousarray(face[k * 4 : 160 + k * 4, :: 1 if k % 2 else -1]) for k in range(10)]
    whole = EmotionModel.load("mini-xception", session_options=SessionOptions(device="cpu", batch_slice=0))
    sliced = EmotionModel.load("mini-xception", session_options=SessionOptions(device="cpu", batch_slice=3))
    a, b = whole.run(crops), sliced.run(crops)
    assert np.abs(np.diff(a.probabilities, axis=0)).max(axis=1).min() > 1e-4  # distinct rows: a reorder shows
    np.testing.assert_allclose(b.probabilities, a.probabilities, atol=1e-6)


def test_sessions_ask_onnxruntime_for_exact_int8_without_vnni() -> None:
    """The switch behind tests/test_int8_isa.py's int8-weight check: set on every session the runtime makes."""
    from edgeemo.runtime.session import X64_QUANT_PRECISION, make_session_options

    assert make_session_options(SessionOptions()).get_session_config_entry(X64_QUANT_PRECISION) == "1"
