"""Training smoke test: the thesis classifier trained a few batches on real (registry) faces, resumed exactly
from a cut-off checkpoint, and its saved HDF5 exported through the project's export path into the runtime."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeemo
from edgeemo.errors import InputError

pytest.importorskip("tf_keras")
pytest.importorskip("tf2onnx")
pytest.importorskip("skimage")

from edgeemo_export.card import CARD
from edgeemo_export.keras_io import inspect_h5
from edgeemo_export.train import RunConfig, export_trained, int8_floor
from edgeemo_export.training.architectures import architecture
from edgeemo_export.training.augment import AugmentOptions, augment_batch, resize_batch
from edgeemo_export.training.data import load_labelled_faces, stratified_split
from edgeemo_export.training.loop import (
    LATEST,
    STATE,
    Trainer,
    TrainOptions,
    class_weights,
    learning_rate,
    resume_mismatch,
)

pytestmark = pytest.mark.export

CLASSES = ("face", "nonface")
SMOKE = TrainOptions(epochs=2, batch_size=32, learning_rate=2e-3, warmup_epochs=0.5)


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory) -> Path:
    """scikit-image's lfw_subset (100 faces, 100 non-faces, 25x25) as class subfolders of PNGs."""
    root = tmp_path_factory.mktemp("lfw")
    from skimage import data

    images = data.lfw_subset()
    for k, img in enumerate(images):
        d = root / CLASSES[k // 100]
        d.mkdir(exist_ok=True)
        cv2.imwrite(str(d / f"{k:03d}.png"), np.clip(np.rint(img * 255), 0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def split(face_folder, tmp_path_factory):
    faces = load_labelled_faces(face_folder, CLASSES, cache_dir=tmp_path_factory.mktemp("cache"))
    train_idx, val_idx = stratified_split(faces.labels, 0.2, seed=1)
    return faces.subset(train_idx), faces.subset(val_idx)


def _trainer(split, run_dir: Path, options: TrainOptions = SMOKE) -> Trainer:
    return Trainer(architecture("thesis-mobilenet"), *split, run_dir, options, checkpoint_seconds=1e9)


def test_data_cache_and_split(face_folder, tmp_path):
    first = load_labelled_faces(face_folder, CLASSES, cache_dir=tmp_path)
    assert first.images.shape == (200, 48, 48) and first.images.dtype == np.uint8
    assert list(first.counts()) == [100, 100]
    assert len(list(tmp_path.glob("faces-*.npz"))) == 1
    cached = load_labelled_faces(face_folder, CLASSES, cache_dir=tmp_path)
    np.testing.assert_array_equal(cached.images, first.images)
    train_idx, val_idx = stratified_split(first.labels, 0.2, seed=1)
    assert len(np.intersect1d(train_idx, val_idx)) == 0 and len(train_idx) + len(val_idx) == 200
    assert list(np.bincount(first.labels[val_idx])) == [20, 20]
    np.testing.assert_array_equal(stratified_split(first.labels, 0.2, seed=1)[1], val_idx)
    with pytest.raises(InputError, match="not among the classes"):
        load_labelled_faces(face_folder, ("face",))


def test_resume_fingerprint_is_the_content_not_the_file_dates(face_folder, tmp_path):
    """A copy of the same faces with new mtimes (../shared re-created) resumes; an edited face does not."""
    import os
    import shutil

    original = load_labelled_faces(face_folder, CLASSES, cache_dir=tmp_path / "cache")
    copy = tmp_path / "copy"
    shutil.copytree(face_folder, copy)
    for k, png in enumerate(sorted(copy.glob("*/*.png"))):
        os.utime(png, ns=(10**18 + k, 10**18 + k))
    same = load_labelled_faces(copy, CLASSES, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("faces-*.npz"))) == 2  # the cache key sees the dates
    assert same.fingerprint == original.fingerprint
    first = sorted(copy.glob("*/*.png"))[0]
    img = cv2.imread(str(first), cv2.IMREAD_GRAYSCALE)
    img[0, 0] ^= 1
    cv2.imwrite(str(first), img)
    assert load_labelled_faces(copy, CLASSES).fingerprint != original.fingerprint


def test_augmentation_without_jitter_is_the_deployment_resize(split):
    images = split[0].images[:8]
    still = AugmentOptions(scale=(1.0, 1.0), shift=0.0, rotate_deg=0.0, flip=False, brightness=0.0, contrast=(1.0, 1.0))
    plain = augment_batch(images, 128, np.random.default_rng(0), still)
    assert plain.shape == (8, 128, 128, 1)
    assert np.abs(plain.astype(int) - resize_batch(images, 128)).max() <= 1
    jittered = augment_batch(images, 128, np.random.default_rng(0), AugmentOptions())
    assert np.abs(jittered.astype(int) - plain).mean() > 5
    np.testing.assert_array_equal(jittered, augment_batch(images, 128, np.random.default_rng(0), AugmentOptions()))


def test_int8_floor_states_goal_and_floor():
    """An INT8 variant that misses the 0.99 goal is judged against issue 14's floor, with its figures."""
    from edgeemo_export.parity import HeadParity, ParityReport, Thresholds, VariantParity

    def report(agreement: float, int8_accuracy: float) -> ParityReport:
        def variant(precision: str, accuracy: float, agree: float, failures: tuple[str, ...]) -> VariantParity:
            head = HeadParity("emotion", "logits", 0.1, 0.01, 1.0, 0.1, 0.01, agree, accuracy)
            return VariantParity(precision, f"m/{precision}.onnx", (head,), failures)

        variants = (
            variant("fp32", 0.6489, 1.0, ()),
            variant("int8", int8_accuracy, agreement, (f"emotion: top-1 agreement {agreement} < 0.99",)),
        )
        return ParityReport("m", "faces", 3589, (), 3589, (), 0.6489, None, variants, Thresholds().to_dict())

    ok, note = int8_floor(report(0.9827, 0.6481))
    assert ok and "0.9827" in note and "-0.08 points" in note and "0.99 agreement goal" in note and "is met" in note
    assert int8_floor(report(0.9650, 0.6481))[0] is False  # agreement under 0.97
    assert int8_floor(report(0.9827, 0.6420))[0] is False  # 0.69 points lost
    passed = replace(report(0.995, 0.6489), variants=report(0.995, 0.6489).variants[:1])
    assert int8_floor(passed) is None  # no INT8 variant


def test_recipe_helpers():
    w = class_weights(np.array([10, 30]), 1.0)
    assert w[0] == pytest.approx(3 * w[1]) and (w * [10, 30]).sum() / 40 == pytest.approx(1.0)
    assert np.all(class_weights(np.array([10, 30]), 0.0) == 1.0)
    lrs = [learning_rate(s, 100, 10, 1e-3, 0.01) for s in range(100)]
    assert lrs[9] == pytest.approx(1e-3) and lrs[0] < lrs[5] < lrs[9]
    assert lrs[-1] == pytest.approx(1e-5, rel=0.05) and all(a >= b for a, b in itertools.pairwise(lrs[10:]))


def test_training_learns_resumes_exactly_and_exports(split, face_folder, tmp_path, astronaut_bgr):
    straight = _trainer(split, tmp_path / "straight")
    result = straight.run()
    assert result.finished and result.epochs_done == 2 and len(result.history) == 2
    first, last = result.history
    assert last.loss < first.loss, result.history  # loss falls on real faces
    assert result.faces_per_s > 0 and result.peak_rss_mb > 100
    saved = inspect_h5(result.best_h5)  # the thesis's own file layout: in-graph normalisation as TFOpLambda layers
    ops = [layer.config.get("function") for layer in saved.layers if layer.class_name == "TFOpLambda"]
    assert ops == ["image.grayscale_to_rgb", "cast", "math.truediv", "math.subtract"]

    cut = _trainer(split, tmp_path / "cut")
    real_step = cut._train_step
    calls = []

    def stop_after_three(*args):
        calls.append(1)
        if len(calls) == 3:
            cut._stop = True  # as SIGTERM would: the loop checkpoints after this step and stops
        return real_step(*args)

    cut._train_step = stop_after_three
    stopped = cut.run()
    assert not stopped.finished and stopped.epochs_done == 0
    state = json.loads((tmp_path / "cut" / LATEST / STATE).read_text())
    assert (state["epoch"], state["step"]) == (0, 3)
    resumed = _trainer(split, tmp_path / "cut")
    resumed.restore()
    final = resumed.run()
    assert final.finished
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert [h.val_accuracy for h in final.history] == [h.val_accuracy for h in result.history]

    saved = json.loads((tmp_path / "cut" / LATEST / STATE).read_text())
    assert resume_mismatch(saved, resumed._fresh_state()) == []
    other = {**resumed._fresh_state(), "options": replace(SMOKE, learning_rate=1e-3).to_dict()}
    assert resume_mismatch(saved, other) == ["options"]

    cfg = RunConfig("thesis-mobilenet", face_folder, tmp_path / "straight", resume=True)
    out = export_trained(result, cfg, tmp_path / "model", "smoke", None, ("fp32",), SMOKE)
    model = edgeemo.load_model(out.files["fp32"])
    assert model.classes == CLASSES and model.spec.input.dtype == "uint8"
    assert model.run([astronaut_bgr]).probabilities.shape == (1, 2)
    assert out.parity is not None and out.parity.passed, out.parity.to_dict()
    card = json.loads((tmp_path / "model" / CARD).read_text())
    assert card["weights"] == "trained" and card["training"]["epochs"] == 2
    assert card["training"]["train_seconds"] == pytest.approx(result.train_seconds, abs=0.1)
    assert "--epochs 2 --batch-size 32" in card["regenerate"]
