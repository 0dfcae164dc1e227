"""`edgeemo export` (Keras HDF5 → ONNX FP32/FP16/INT8, or fusion of exported models) and `edgeemo parity`.

Both need the ``export`` extra (TensorFlow); it is imported inside the commands only, so ``import edgeemo.cli``
never loads TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from edgeemo.cli.app import app
from edgeemo.errors import ExportError, MissingDependencyError
from edgeemo.io.sinks import write_json_atomic
from edgeemo.runtime.spec import PRECISIONS

FacesOpt = Annotated[
    Path | None,
    typer.Option(
        "--faces",
        help="Face set for parity: folder with class subfolders, a labels.csv, or a plain folder "
        "(default: scikit-image's registry faces).",
    ),
]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Use this many evenly spaced faces.")]
ThresholdOpt = Annotated[
    list[str] | None,
    typer.Option("--threshold", help="Override a parity threshold, e.g. fp16.agreement=0.99 (repeatable)."),
]
JsonOpt = Annotated[Path | None, typer.Option("--json-out", help="Also write the parity report as JSON here.")]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-lambda",
        help="Trust the Keras file: load Lambda layers and whatever else the code-free allow-list refuses "
        "(such files run Python code on load).",
    ),
]




def _split(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else ()


def _show(report: Any, json_out: Path | None, as_json: bool) -> None:
    from edgeemo_export.parity import report_table

    data = report.to_dict()
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(json_out, data)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        Console().print(report_table(report))
    if not report.passed:
        fails = [f"{v.precision}: {f}" for v in report.variants for f in v.failures]
        raise ExportError(f"parity thresholds failed for {report.model}: " + "; ".join(fails))


@app.command("export")
def export_command(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Keras HDF5 file; with --fuse: exported model folders or FP32 .onnx files."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (model.onnx, variants, card).")],
    fuse: Annotated[bool, typer.Option("--fuse", help="Fuse models sharing one input into one graph.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="Model name (default: the output folder's name).")] = None,
    classes: Annotated[str | None, typer.Option("--classes", help="Class names in output order, a,b,c.")] = None,
    head: Annotated[
        str | None, typer.Option("--head", help="Head name per output: emotion, valence, arousal (a,b for several).")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Head kind per output: logits, probabilities, regression.")
    ] = None,
    colour: Annotated[str | None, typer.Option("--colour", help="gray, rgb or bgr (default from channels).")] = None,
    normalisation: Annotated[
        str, typer.Option("--normalisation", help="auto, in_graph or affine (float input: pixel*scale+offset).")
    ] = "auto",
    scale: Annotated[float | None, typer.Option("--scale", help="Affine normalisation scale.")] = None,
    offset: Annotated[float | None, typer.Option("--offset", help="Affine normalisation offset.")] = None,
    interpolation: Annotated[
        str, typer.Option("--interpolation", help="Resize interpolation: linear, area, nearest, cubic.")
    ] = "linear",
    framing: Annotated[
        list[str] | None,
        typer.Option(
            "--framing",
            help="How the training faces sat around a detector's box (repeatable, one per detector): 30px, 0.1 "
            "(fraction of the box per side), box:L,R,T,B[,square][,align][@DETECTOR], or a calibration JSON "
            "(edgeemo_export/framing_calibration.py). Default: none stored (the runtime then uses 30 px).",
        ),
    ] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (13 or newer).")] = 17,
    precision: Annotated[str, typer.Option("--precision", help=f"Any of {','.join(PRECISIONS)}.")] = "fp32,fp16",
    calibration: Annotated[
        Path | None, typer.Option("--calibration", help="Folder of face images for INT8 calibration.")
    ] = None,
    faces: FacesOpt = None,
    limit: LimitOpt = None,
    no_parity: Annotated[bool, typer.Option("--no-parity", help="Skip the parity check.")] = False,
    threshold: ThresholdOpt = None,
    json_out: JsonOpt = None,
    trust_lambda: TrustOpt = False,
) -> None:
    """Export a Keras HDF5 model to ONNX (FP32/FP16/INT8) with its facts embedded, then check parity."""
    modules = ("onnx",) if fuse else ("tensorflow", "tf_keras", "tf2onnx", "onnx", "h5py")
    MissingDependencyError.unless_installed("edgeemo export", "export", modules)
    from edgeemo_export.framing import parse_framing
    from edgeemo_export.keras_to_onnx import ExportOptions
    from edgeemo_export.parity import Thresholds
    from edgeemo_export.pipeline import run_export

    options = ExportOptions(
        name=name or out.name,
        classes=_split(classes),
        heads=_split(head),
        kinds=_split(kind),
        colour=colour,
        normalisation=normalisation,
        scale=scale,
        offset=offset,
        interpolation=interpolation,
        opset=opset,
        trust_lambda=trust_lambda,
        framing=tuple(f for text in framing or () for f in parse_framing(text)),
    )
    result = run_export(
        sources,
        out,
        options,
        fuse=fuse,
        precisions=precision,
        calibration=calibration,
        parity=not no_parity,
        faces=faces,
        limit=limit,
        thresholds=Thresholds().with_overrides(threshold or []),
    )
    for prec, path in result.files.items():
        typer.echo(f"{prec}: {path}")
    if result.parity is not None:
        _show(result.parity, json_out, as_json=False)


@app.command("parity")
def parity_command(
    model: Annotated[str, typer.Argument(help="Model folder, .onnx file or shipped model name.")],
    faces: FacesOpt = None,
    keras: Annotated[
        list[Path] | None, typer.Option("--keras", help="Original Keras HDF5 file(s) (default: found beside).")
    ] = None,
    precision: Annotated[
        str, typer.Option("--precision", help=f"Variants to check: all or {','.join(PRECISIONS)}.")
    ] = "all",
    limit: LimitOpt = None,
    threshold: ThresholdOpt = None,
    json_out: JsonOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")] = False,
    trust_lambda: TrustOpt = False,
) -> None:
    """Compare an exported model's ONNX variants with the original Keras model on a face set."""
    MissingDependencyError.unless_installed("edgeemo parity", "export", ("tensorflow", "tf_keras", "onnx", "h5py"))
    from edgeemo_export.parity import Thresholds, check_model_parity

    thresholds = Thresholds().with_overrides(threshold or [])
    report = check_model_parity(model, precision, faces, limit, keras or [], thresholds, trust_lambda)
    _show(report, json_out, as_json)
