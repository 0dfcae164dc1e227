"""Horizontal-flip test-time augmentation (``flip``): the mean of the crop's and its mirror's outputs, opt-in."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeemo import load_model, read_image
from edgeemo.cli import app
from edgeemo.pipeline import Pipeline, PipelineOptions
from edgeemo.results import Prediction
from edgeemo.resume import MODEL_CHANGED

runner = CliRunner()


def _mirrored(crops: list[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(c[:, ::-1]) for c in crops]


def _probs(preds: list[Prediction]) -> np.ndarray:
    """The probabilities of predictions as the float32 rows they were made from (float32 -> float is exact)."""
    return np.array([[v for _, v in p.probabilities] for p in preds], np.float32)


@pytest.fixture(scope="module")
def faces(fer_publictest: Path) -> list[np.ndarray]:
    """Two PublicTest faces per class (48x48 gray), the first of each folder in name order."""
    files = [f for d in sorted(p for p in fer_publictest.iterdir() if p.is_dir()) for f in sorted(d.glob("*.png"))[:2]]
    assert len(files) == 14
    return [read_image(f) for f in files]


@pytest.mark.parametrize("name", ["mini-xception", "thesis-mobilenet"])  # a probabilities head, a logits head
def test_flip_is_the_mean_of_the_crops_and_their_mirrors(name: str, faces: list[np.ndarray]) -> None:
    model = load_model(name)
    plain = model.run(faces).probabilities
    mirror = model.run(_mirrored(faces)).probabilities
    assert plain is not None and mirror is not None
    assert np.abs(plain - mirror).max() > 1e-2  # mirrors read differently: a flip that did nothing would show
    flipped = model.run(faces, flip=True).probabilities
    assert flipped is not None and flipped.dtype == np.float32
    np.testing.assert_allclose(flipped, (plain + mirror) / 2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(flipped.sum(axis=1), 1, atol=1e-5)
    preds = model.predict(faces, flip=True)
    assert [p.label for p in preds] == [model.classes[k] for k in flipped.argmax(axis=1)]
    # the symmetric check: a face and its mirror give the same flip result
    np.testing.assert_allclose(model.run(_mirrored(faces), flip=True).probabilities, flipped, rtol=0, atol=1e-6)


def test_flip_averages_regression_heads(faces: list[np.ndarray]) -> None:
    model = load_model("thesis-fused")  # untrained weights: only the arithmetic on real outputs is checked here
    plain, mirror, flipped = model.run(faces), model.run(_mirrored(faces)), model.run(faces, flip=True)
    for head in ("valence", "arousal"):
        assert flipped.heads[head].shape == (len(faces),)
        np.testing.assert_allclose(flipped.heads[head], (plain.heads[head] + mirror.heads[head]) / 2, atol=1e-6)
    assert flipped.probabilities is not None and plain.probabilities is not None
    assert mirror.probabilities is not None
    want = (plain.probabilities + mirror.probabilities) / 2
    np.testing.assert_allclose(flipped.probabilities, want, atol=1e-6)


def test_without_flip_the_output_is_the_session_output(faces: list[np.ndarray]) -> None:
    model = load_model("mini-xception")
    crops = faces[:7]  # within one batch slice: one session call, as the reference makes
    batch = model.preprocess(crops)
    (raw,) = model.session.run(None, {model.spec.input.name: batch})
    got = model.run(crops).probabilities
    assert got is not None and got.tobytes() == np.asarray(raw, np.float32).tobytes()
    assert model.run(crops, flip=False).probabilities.tobytes() == got.tobytes()  # type: ignore[union-attr]
    pipe = Pipeline.from_options(PipelineOptions(detector=None))
    assert pipe.flip is False
    assert _probs(pipe.classify_crops(crops)).tobytes() == got.tobytes()


def test_pipeline_flip_with_derived_va(faces: list[np.ndarray]) -> None:
    plain = Pipeline.from_options(PipelineOptions(detector=None))
    flipped = Pipeline.from_options(PipelineOptions(detector=None, flip=True))
    assert flipped.flip
    want = flipped.model.run(faces, flip=True).probabilities
    preds = flipped.classify_crops(faces)
    np.testing.assert_array_equal(_probs(preds), want)
    assert all(p.va_source == "derived" for p in preds)
    assert [p.valence for p in preds] != [p.valence for p in plain.classify_crops(faces)]


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_cli_flip_changes_the_run_key_so_classify_reruns(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    folder = tmp_path / "crops"
    folder.mkdir()
    for k in range(4):
        crop = astronaut_bgr[45 + 5 * k : 195 + 5 * k, 150 + 5 * k : 280 + 5 * k]
        cv2.imwrite(str(folder / f"{k}.png"), crop if k % 2 else crop[:, ::-1])
    out, probs = tmp_path / "s.csv", tmp_path / "p.csv"
    args = ["classify", str(folder), "-o", str(out), "--probs", str(probs)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    plain = _read(probs)
    again = runner.invoke(app, args)
    assert "(0 new, 4 already done)" in again.stdout
    flip = runner.invoke(app, [*args, "--flip"])
    assert flip.exit_code == 0, flip.output
    assert "(0 new, 4 re-run, 0 already done)" in flip.stdout
    assert f"4 re-run: {MODEL_CHANGED}" in flip.stderr
    flipped = _read(probs)
    assert flipped[0] == plain[0] and [r[0] for r in flipped] == [r[0] for r in plain]
    assert flipped[1:] != plain[1:]
    model = load_model("mini-xception")
    want = model.run([read_image(folder / row[0]) for row in flipped[1:]], flip=True).probabilities
    np.testing.assert_allclose(np.array([r[1:] for r in flipped[1:]], float), want, atol=1e-4)
    kept = runner.invoke(app, [*args, "--flip"])
    assert "(0 new, 4 already done)" in kept.stdout
    back = runner.invoke(app, args)
    assert "4 re-run" in back.stdout and _read(probs) == plain


def test_ray_classify_actors_get_flip_from_the_job(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    """The body of a Ray classify actor (run here, without Ray) builds its pipeline and run key with flip."""
    from edgeemo.batch import ClassifyJob, read_input
    from edgeemo.distributed import ClassifyWorker, worker_paths

    path = tmp_path / "face.png"
    cv2.imwrite(str(path), astronaut_bgr[45:195, 150:280])
    plain = ClassifyWorker(ClassifyJob(worker_paths(PipelineOptions())))
    flip = ClassifyWorker(ClassifyJob(worker_paths(PipelineOptions(flip=True))))
    assert flip.pipe is not None and flip.pipe.flip and plain.pipe is not None and not plain.pipe.flip
    assert flip.facts().key != plain.facts().key
    item = read_input("face.png", path, ClassifyJob(PipelineOptions()).max_pixels)
    (row,), (plain_row,) = flip.classify([item]).rows, plain.classify([item]).rows
    assert row[4:] != plain_row[4:]
    want = flip.pipe.model.run([read_image(path)], flip=True).probabilities
    np.testing.assert_allclose(np.array(row[4:], float), want[0], atol=1e-4)  # type: ignore[index]
