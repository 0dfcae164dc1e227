"""`edgeemo train`: the training recipe (:mod:`edgeemo_export.train`) from the command line.

Needs the ``export`` extra (TensorFlow); nothing of it is imported until the command runs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from edgeemo.cli.app import app
from edgeemo.errors import ExportError, MissingDependencyError

EXPORT_MODULES = ("edgeemo_export", "tensorflow", "tf_keras", "tf2onnx", "onnx", "h5py")




@app.command("train")
def train_command(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Checkpoints, best HDF5 and state.json.")],
    architecture: Annotated[
        str | None, typer.Argument(help="Architecture to train from scratch (e.g. thesis-mobilenet); or --init.")
    ] = None,
    init: Annotated[
        Path | None, typer.Option("--init", help="Fine-tune this Keras HDF5 (facts from the model.onnx beside it).")
    ] = None,
    qat: Annotated[bool, typer.Option("--qat", help="Quantization-aware fine-tune for the INT8 export.")] = False,
    distill: Annotated[
        float, typer.Option("--distill", help="Weight of the original model's outputs against the labels (0-1).")
    ] = 0.0,
    calibration: Annotated[
        Path | None, typer.Option("--calibration", help="QAT range faces (default: the INT8 calibration set).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Labelled faces: class subfolders or a labels.csv.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the checkpoint in --run-dir, if any.")] = False,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs to train.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Faces per step.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    warmup_epochs: Annotated[float | None, typer.Option("--warmup-epochs", help="Linear warm-up length.")] = None,
    weight_decay: Annotated[float | None, typer.Option("--weight-decay", help="AdamW decoupled decay.")] = None,
    balance_power: Annotated[
        float | None, typer.Option("--balance-power", help="Class weights (N/(K n_c))^power; 0: none.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of split, shuffles and augmentation.")] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Validation share of --data.")] = 0.1,
    cache: Annotated[Path | None, typer.Option("--cache", help="Folder for the decoded-faces cache.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Use this many evenly spaced faces (smoke runs).")] = 0,
    threads: Annotated[int, typer.Option("--threads", help="TensorFlow intra-op threads (0: its default).")] = 2,
    checkpoint_minutes: Annotated[
        float, typer.Option("--checkpoint-minutes", help="Checkpoint this often within an epoch.")
    ] = 10.0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Model folder to export to once training is done.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Model name in the exported metadata.")] = None,
    faces: Annotated[
        Path | None, typer.Option("--faces", help="Labelled faces for the export's parity (default: PublicTest).")
    ] = None,
    precision: Annotated[str, typer.Option("--precision", help="Precisions to export, any of fp32,fp16,int8.")] = (
        "fp32,fp16,int8"
    ),
) -> None:
    """Train a model (or fine-tune one, optionally quantization-aware), then export it and write its card."""
    MissingDependencyError.unless_installed("edgeemo train", "export", EXPORT_MODULES)
    from edgeemo_export.train import FER_TRAIN, RunConfig, run
    from edgeemo_export.training.loop import TrainOptions

    logging.getLogger("edgeemo_export").setLevel(logging.INFO)
    d = TrainOptions()
    options = replace(
        d,
        epochs=d.epochs if epochs is None else epochs,
        batch_size=d.batch_size if batch_size is None else batch_size,
        learning_rate=d.learning_rate if lr is None else lr,
        warmup_epochs=d.warmup_epochs if warmup_epochs is None else warmup_epochs,
        weight_decay=d.weight_decay if weight_decay is None else weight_decay,
        balance_power=d.balance_power if balance_power is None else balance_power,
        distill=distill,
        seed=d.seed if seed is None else seed,
    )
    cfg = RunConfig(
        architecture,
        data or FER_TRAIN,
        run_dir,
        resume,
        val_fraction,
        options.seed,
        cache,
        limit,
        threads,
        checkpoint_minutes * 60.0,
        init,
        qat,
        calibration,
    )
    if not run(cfg, options, out, name, faces, precision, say=typer.echo):
        raise ExportError(f"{out}: the exported model failed its parity thresholds (see the card)")
