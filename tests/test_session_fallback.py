"""What a user reads when the device asked for is not available: asked, instead, how to get it (pure, no GPU)."""

from __future__ import annotations

import logging

import pytest

from edgeemo.errors import DeviceError
from edgeemo.runtime import session
from edgeemo.runtime.session import SessionOptions, fallback_message, resolve_providers

CPU_WITH_AZURE = ["AzureExecutionProvider", "CPUExecutionProvider"]  # what onnxruntime 1.2x lists on a CPU machine
CUDA_ONLY = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    monkeypatch.setattr(session, "_warned", set())  # each test sees its first warning
    caplog.set_level(logging.WARNING, logger="edgeemo.runtime.session")
    return caplog


def test_cuda_without_gpu_says_asked_instead_and_how(log: pytest.LogCaptureFixture) -> None:
    chosen = resolve_providers(SessionOptions(device="cuda"), CPU_WITH_AZURE)
    assert [n for n, _ in chosen] == ["CPUExecutionProvider"]
    (msg,) = log.messages
    assert msg.startswith("CUDA was asked for (device 'cuda', CUDAExecutionProvider), but this onnxruntime build")
    assert "running on the CPU instead" in msg
    assert "'edgeemo[gpu]'" in msg and "NVIDIA GPU" in msg
    assert "Azure" not in msg  # only providers edgeemo can run on are named
    resolve_providers(SessionOptions(device="cuda"), CPU_WITH_AZURE)
    assert len(log.messages) == 1  # once per process


def test_tensorrt_missing_runs_on_cuda(log: pytest.LogCaptureFixture) -> None:
    chosen = resolve_providers(SessionOptions(device="tensorrt"), CUDA_ONLY)
    assert [n for n, _ in chosen] == CUDA_ONLY
    (msg,) = log.messages
    assert msg.startswith("TensorRT was asked for")
    assert "offers CUDA and CPU" in msg and "running on CUDA instead" in msg


def test_strict_device_fails_with_the_same_words_and_no_fallback(log: pytest.LogCaptureFixture) -> None:
    with pytest.raises(DeviceError) as err:
        resolve_providers(SessionOptions(device="cuda", strict_device=True), CPU_WITH_AZURE)
    text = str(err.value)
    assert "CUDA was asked for" in text and "offers only CPU" in text and "'edgeemo[gpu]'" in text
    assert "instead" not in text and "Azure" not in text
    assert log.messages == []


def test_auto_and_cpu_never_warn(log: pytest.LogCaptureFixture) -> None:
    resolve_providers(SessionOptions(device="auto"), CPU_WITH_AZURE)
    resolve_providers(SessionOptions(device="cpu"), CPU_WITH_AZURE)
    assert log.messages == []


def test_no_usable_provider_is_an_error() -> None:
    with pytest.raises(DeviceError, match="no provider edgeemo can use"):
        resolve_providers(SessionOptions(device="auto"), ["AzureExecutionProvider"])


def test_message_parts() -> None:
    msg = fallback_message("cuda", "the GPU is busy", "cpu")
    assert msg.startswith("CUDA was asked for (device 'cuda', CUDAExecutionProvider), but the GPU is busy")
    assert "running on the CPU instead. For CUDA: install 'edgeemo[gpu]'" in msg
    assert "instead" not in fallback_message("cuda", "x", None)


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")  # onnxruntime's own note
def test_provider_listed_but_not_started_is_reported(
    log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As with onnxruntime-gpu on a machine without a GPU: the build lists CUDA, the session runs on the CPU.
    from edgeemo.runtime.assets import resolve_model

    monkeypatch.setattr(session, "available_providers", lambda: CUDA_ONLY)
    path = resolve_model("mini-xception")
    sess = session.create_session(path, SessionOptions(device="cuda", intra_op_threads=1))
    assert sess.get_providers() == ["CPUExecutionProvider"]
    (msg,) = [m for m in log.messages if "could not start" in m]
    assert "CUDA was asked for" in msg and "running on the CPU instead" in msg and "'edgeemo[gpu]'" in msg
    with pytest.raises(DeviceError, match="could not start"):
        session.create_session(path, SessionOptions(device="cuda", strict_device=True, intra_op_threads=1))
