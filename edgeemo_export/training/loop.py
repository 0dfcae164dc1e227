"""The resumable training loop.

Every random choice is a pure function of (seed, epoch, step): the epoch's shuffle comes from
``default_rng([seed, epoch])`` and a batch's augmentation from ``default_rng([seed, epoch, step])``, and the
learning rate (linear warm-up, then cosine) from the global step. A checkpoint therefore only needs the
model and optimizer variables (``tf.train.Checkpoint``) and a small ``state.json`` (position, best validation
accuracy, history, time), and a run resumed from it continues exactly where it was cut off. Checkpoints are
written at every epoch end, every ``checkpoint_seconds`` within an epoch, and on SIGTERM/SIGINT; the model
with the best validation accuracy is kept as HDF5 beside them (no optimizer), ready for the export path.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from edgeemo.errors import InputError
from edgeemo_export.keras_io import import_tf_keras
from edgeemo_export.training.architectures import Architecture
from edgeemo_export.training.augment import AugmentOptions, augment_batch, resize_batch
from edgeemo_export.training.data import LabelledFaces

log = logging.getLogger(__name__)

STATE = "state.json"
LATEST = "latest"
CKPT_PREFIX = "ckpt"
STATE_VERSION = 1
_NO_DECAY = ("bias", "beta", "gamma", "depthwise_kernel")  # MobileNet practice: no decay on BN, biases, depthwise


@dataclass(frozen=True)
class TrainOptions:
    """The recipe; a checkpoint resumes only under the options it was written with."""

    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 2e-3  # peak, after warm-up
    warmup_epochs: float = 2.0
    final_lr_fraction: float = 0.01
    weight_decay: float = 0.02  # AdamW, decoupled
    label_smoothing: float = 0.1
    balance_power: float = 0.5  # class weight (N / (K n_c)) ** power: 0 none, 1 fully balanced
    distill: float = 0.0  # weight of KL(teacher || model) against the label loss (needs a teacher: fine-tunes)
    seed: int = 13
    augment: AugmentOptions = field(default_factory=AugmentOptions)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # tuples → lists, as they come back from state.json


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    val_balanced_accuracy: float
    learning_rate: float
    seconds: float
    faces_per_s: float


@dataclass(frozen=True)
class TrainResult:
    """Where a run stands: ``finished`` when every planned epoch is done."""

    run_dir: Path
    classes: tuple[str, ...]
    epochs_done: int
    epochs: int
    finished: bool
    best_epoch: int
    best_val_accuracy: float
    best_h5: Path | None
    history: tuple[EpochRecord, ...]
    train_seconds: float
    peak_rss_mb: float

    @property
    def faces_per_s(self) -> float:
        done = [h for h in self.history if h.faces_per_s > 0]
        return float(np.mean([h.faces_per_s for h in done])) if done else 0.0


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """Per-class loss weights ``(N / (K n_c)) ** power``, scaled so the mean weight over the faces is 1."""
    counts = np.maximum(counts.astype(np.float64), 1.0)
    w = (counts.sum() / (len(counts) * counts)) ** power
    return (w * counts.sum() / (w * counts).sum()).astype(np.float32)


def learning_rate(step: int, total: int, warmup: int, peak: float, final_fraction: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = peak * final_fraction
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


class Progress:
    """One status line per batch on a terminal; on a file one line every ``every_s`` seconds."""

    def __init__(self, stream: TextIO, total: int, prefix: str, every_s: float = 60.0) -> None:
        self.stream, self.total, self.prefix, self.every_s = stream, total, prefix, every_s
        self.tty = stream.isatty()
        self.last = time.monotonic()

    def update(self, done: int, text: str) -> None:
        now = time.monotonic()
        if self.tty:
            bar = "#" * int(30 * done / self.total)
            self.stream.write(f"\r{self.prefix} [{bar:<30}] {done}/{self.total} {text}")
            self.stream.flush()
        elif now - self.last >= self.every_s:
            self.stream.write(f"{self.prefix} {done}/{self.total} {text}\n")
            self.stream.flush()
            self.last = now

    def close(self, text: str) -> None:
        self.stream.write(("\r" if self.tty else "") + f"{self.prefix} {text}\n")
        self.stream.flush()


def resume_mismatch(saved: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """Which of version, architecture, options and data differ between a saved state and a fresh run's (the
    data by content fingerprint, classes and split sizes; not by how its path was spelled)."""

    def comparable(state: dict[str, Any], key: str) -> Any:
        value = state.get(key)
        if key == "options" and isinstance(value, dict):
            return {**_ADDED_OPTIONS, **value}  # options added later default to the behaviour before them
        return {k: v for k, v in value.items() if k != "source"} if key == "data" and isinstance(value, dict) else value

    return [
        key
        for key in ("version", "architecture", "options", "data")
        if comparable(saved, key) != comparable(fresh, key)
    ]


_ADDED_OPTIONS = {"distill": 0.0}


class _Stop(Exception):
    """A signal asked the run to stop after checkpointing."""


class Trainer:
    """One run directory: builds or restores the model, trains, checkpoints."""

    def __init__(
        self,
        arch: Architecture,
        train: LabelledFaces,
        val: LabelledFaces,
        run_dir: Path,
        options: TrainOptions,
        checkpoint_seconds: float = 600.0,
        stream: TextIO | None = None,
    ) -> None:
        import tensorflow as tf

        self.tf = tf
        self.arch, self.train_set, self.val_set, self.options = arch, train, val, options
        self.run_dir, self.checkpoint_seconds = Path(run_dir), checkpoint_seconds
        self.stream = stream or sys.stdout
        self.n_classes = len(train.classes)
        built = arch.build(self.n_classes, options.seed)
        self.model, self.saved_model, self.teacher, self.before_step = (
            built.train,
            built.saved,
            built.teacher,
            built.before_step,
        )
        if options.distill > 0 and self.teacher is None:
            raise InputError(f"{arch.name}: distillation needs a teacher (fine-tune from an existing model)")
        shape = self.model.input_shape
        if len(shape) != 4 or shape[1] != shape[2]:
            raise InputError(f"{arch.name}: training needs a square NHWC input, the model has {shape}")
        self.size, self.channels = int(shape[1]), int(shape[3])
        self.steps_per_epoch = len(train) // options.batch_size
        if self.steps_per_epoch == 0:
            raise InputError(f"{len(train)} training faces are fewer than one batch of {options.batch_size}")
        self.total_steps = self.steps_per_epoch * options.epochs
        self.warmup_steps = round(options.warmup_epochs * self.steps_per_epoch)
        self.weights = class_weights(train.counts(), options.balance_power)
        tf_keras = import_tf_keras()
        self.optimizer = tf_keras.optimizers.AdamW(
            learning_rate=options.learning_rate, weight_decay=options.weight_decay
        )
        self.optimizer.exclude_from_weight_decay(var_names=list(_NO_DECAY))
        self.optimizer.build(self.model.trainable_variables)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self.val_images = self._expand(resize_batch(val.images, self.size))
        self._train_step = self._make_train_step()
        self._predict = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        self.state = self._fresh_state()
        self._stop = False

    # --- state -------------------------------------------------------------------------------------------

    def _fresh_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "architecture": self.arch.name,
            "options": self.options.to_dict(),
            "data": {
                "source": self.train_set.source,
                "fingerprint": self.train_set.fingerprint,
                "classes": list(self.train_set.classes),
                "train": len(self.train_set),
                "val": len(self.val_set),
            },
            "epoch": 0,
            "step": 0,
            "partial": {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0},
            "best": {"epoch": 0, "val_accuracy": -1.0},
            "history": [],
            "train_seconds": 0.0,
            "peak_rss_mb": 0.0,
        }

    def has_checkpoint(self) -> bool:
        return (self.run_dir / LATEST / STATE).is_file()

    def restore(self) -> None:
        """Load ``latest/`` (weights, optimizer, position); refuse one written under other options or data."""
        latest = self.run_dir / LATEST
        state = json.loads((latest / STATE).read_text(encoding="utf-8"))
        mismatch = resume_mismatch(state, self._fresh_state())
        if mismatch:
            raise InputError(
                f"{latest}: checkpoint was written with other {', '.join(mismatch)}; resume with the same "
                "settings and data, or start a new --run-dir"
            )
        self.checkpoint.read(str(latest / CKPT_PREFIX)).assert_consumed()
        self.state = state
        log.info("resumed %s at epoch %d step %d", latest, state["epoch"], state["step"])

    def save(self) -> None:
        """Write the checkpoint to ``latest.tmp`` then swap it in, so a kill never leaves a half-written one."""
        self.state["peak_rss_mb"] = max(self.state["peak_rss_mb"], peak_rss_mb())
        tmp, latest, old = (self.run_dir / f"{LATEST}{s}" for s in (".tmp", "", ".old"))
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.checkpoint.write(str(tmp / CKPT_PREFIX))
        (tmp / STATE).write_text(json.dumps(self.state, indent=1) + "\n", encoding="utf-8")
        shutil.rmtree(old, ignore_errors=True)
        if latest.exists():
            latest.rename(old)
        tmp.rename(latest)
        shutil.rmtree(old, ignore_errors=True)

    def _save_best(self) -> Path:
        path = self.run_dir / self.arch.h5_name
        tmp = path.with_suffix(".tmp.h5")
        self.saved_model.save(tmp, save_format="h5", include_optimizer=False)
        tmp.replace(path)
        return path

    # --- steps -------------------------------------------------------------------------------------------

    def _expand(self, batch: np.ndarray) -> np.ndarray:
        return batch if self.channels == 1 else np.repeat(batch, self.channels, axis=-1)

    def _make_train_step(self) -> Any:
        tf = self.tf
        model, opt, k, ls = self.model, self.optimizer, self.n_classes, self.options.label_smoothing
        teacher, distill = self.teacher, self.options.distill
        spec = (
            tf.TensorSpec((None, self.size, self.size, self.channels), tf.uint8),
            tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((None,), tf.float32),
        )

        @tf.function(input_signature=spec)
        def step(x: Any, y: Any, w: Any) -> Any:
            with tf.GradientTape() as tape:
                out = model(x, training=True)
                log_p = self._log_probs(out)
                target = tf.one_hot(y, k) * (1.0 - ls) + ls / k
                per_face = -tf.reduce_sum(target * log_p, axis=-1)
                if distill > 0:
                    log_t = tf.stop_gradient(self._log_probs(teacher(x, training=False)))
                    kl = tf.reduce_sum(tf.exp(log_t) * (log_t - log_p), axis=-1)
                    per_face = (1.0 - distill) * per_face + distill * kl
                loss = tf.reduce_sum(per_face * w) / tf.reduce_sum(w)
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(out, axis=-1, output_type=tf.int32), y), tf.int32))
            return loss, correct

        return step

    def _log_probs(self, out: Any) -> Any:
        tf = self.tf
        return tf.nn.log_softmax(out) if self.arch.logits else tf.math.log(tf.clip_by_value(out, 1e-7, 1.0))

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The augmented batch ``step`` of ``epoch`` (0-based), a pure function of the seed."""
        seed, bs = self.options.seed, self.options.batch_size
        order = np.random.default_rng([seed, epoch]).permutation(len(self.train_set))
        idx = order[step * bs : (step + 1) * bs]
        rng = np.random.default_rng([seed, epoch, step])
        x = augment_batch(self.train_set.images[idx], self.size, rng, self.options.augment)
        return self._expand(x), self.train_set.labels[idx].astype(np.int32)

    def evaluate(self, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> tuple[float, float, float]:
        """(loss, accuracy, balanced accuracy) without label smoothing or class weights."""
        outs = [np.asarray(self._predict(images[i : i + batch])) for i in range(0, len(images), batch)]
        out = np.concatenate(outs).astype(np.float64)
        if self.arch.logits:
            out = out - out.max(axis=1, keepdims=True)
            logp = out - np.log(np.exp(out).sum(axis=1, keepdims=True))
        else:
            logp = np.log(np.clip(out, 1e-7, 1.0))
        pred = logp.argmax(axis=1)
        loss = float(-logp[np.arange(len(labels)), labels].mean())
        recalls = [float((pred[labels == c] == c).mean()) for c in range(self.n_classes) if (labels == c).any()]
        return loss, float((pred == labels).mean()), float(np.mean(recalls))

    # --- the run -----------------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop = True

    def run(self) -> TrainResult:
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while self.state["epoch"] < self.options.epochs:
                self._epoch()
        except _Stop:
            self.stream.write(
                f"stopped at epoch {self.state['epoch'] + 1} step {self.state['step']}; "
                f"checkpoint in {self.run_dir / LATEST}\n"
            )
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
        return self.result()

    def _epoch(self) -> None:
        st, opt = self.state, self.options
        epoch = st["epoch"]
        part = st["partial"]
        progress = Progress(self.stream, self.steps_per_epoch, f"epoch {epoch + 1}/{opt.epochs}")
        last_save = time.monotonic()
        t0 = time.monotonic() - part["seconds"]
        while st["step"] < self.steps_per_epoch:
            step = st["step"]
            global_step = epoch * self.steps_per_epoch + step
            lr = learning_rate(
                global_step, self.total_steps, self.warmup_steps, opt.learning_rate, opt.final_lr_fraction
            )
            self.optimizer.learning_rate.assign(lr)
            if self.before_step is not None:
                self.before_step(global_step)
            x, y = self.batch(epoch, step)
            loss, correct = self._train_step(x, y, self.weights[y])
            part["loss_sum"] += float(loss) * len(y)
            part["correct"] += int(correct)
            part["seen"] += len(y)
            st["step"] = step + 1
            elapsed = time.monotonic() - t0
            part["seconds"] = elapsed
            progress.update(
                st["step"],
                f"loss {part['loss_sum'] / part['seen']:.4f} acc {part['correct'] / part['seen']:.4f} "
                f"lr {lr:.2e} {part['seen'] / elapsed:.0f} faces/s",
            )
            if self._stop or time.monotonic() - last_save >= self.checkpoint_seconds:
                st["train_seconds"] += elapsed - part.get("saved_seconds", 0.0)
                part["saved_seconds"] = elapsed
                self.save()
                last_save = time.monotonic()
                if self._stop:
                    raise _Stop
        seconds = time.monotonic() - t0
        val_loss, val_acc, val_bal = self.evaluate(self.val_images, self.val_set.labels)
        record = EpochRecord(
            epoch + 1,
            part["loss_sum"] / part["seen"],
            part["correct"] / part["seen"],
            val_loss,
            val_acc,
            val_bal,
            float(self.optimizer.learning_rate.numpy()),
            seconds,
            part["seen"] / seconds,
        )
        st["train_seconds"] += seconds - part.get("saved_seconds", 0.0)
        st["history"].append(asdict(record))
        best = ""
        if val_acc > st["best"]["val_accuracy"]:
            st["best"] = {"epoch": epoch + 1, "val_accuracy": val_acc}
            self._save_best()
            best = " (best)"
        st["epoch"], st["step"] = epoch + 1, 0
        st["partial"] = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.save()
        progress.close(
            f"loss {record.loss:.4f} acc {record.accuracy:.4f} val_loss {val_loss:.4f} val_acc {val_acc:.4f} "
            f"val_bal_acc {val_bal:.4f} {record.faces_per_s:.0f} faces/s {seconds:.0f} s{best}"
        )
        if self._stop:
            raise _Stop

    def result(self) -> TrainResult:
        st = self.state
        best = self.run_dir / self.arch.h5_name
        return TrainResult(
            self.run_dir,
            tuple(st["data"]["classes"]),
            st["epoch"],
            self.options.epochs,
            st["epoch"] >= self.options.epochs,
            st["best"]["epoch"],
            st["best"]["val_accuracy"],
            best if best.is_file() else None,
            tuple(EpochRecord(**h) for h in st["history"]),
            st["train_seconds"],
            max(st["peak_rss_mb"], peak_rss_mb()),
        )


def configure_threads(threads: int) -> None:
    """Pin TensorFlow's thread pools (must run before the first op)."""
    import tensorflow as tf

    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
