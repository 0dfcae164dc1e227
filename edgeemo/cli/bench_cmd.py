"""`edgeemo bench`: run the benchmark harness, render its table, put two result files side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeemo.cli.app import app

bench_app = typer.Typer(
    help="Benchmark classifiers, detectors and the pipeline; render or compare result files.",
    no_args_is_help=False,
    invoke_without_command=True,
)
app.add_typer(bench_app, name="bench")
TF_RUNNERS = Path("benchmarks", "tf_modes.py")  # relative to the current folder: run from a checkout's root


@bench_app.callback()
def bench_command(
    ctx: typer.Context,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smoke run (~20 s): default model and detector, a few calls each.")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Full run (minutes): every model, precision and detector.")
    ] = False,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model name (repeatable); default: the default model (--quick), all (--full).",
        ),
    ] = None,
    detector: Annotated[
        list[str] | None,
        typer.Option(
            "--detector",
            "-d",
            help="Detector (repeatable); default: the default one (--quick), all (--full).",
        ),
    ] = None,
    with_tf: Annotated[
        bool, typer.Option("--tf", help="Add TensorFlow / TFLite comparisons (export extra, source checkout).")
    ] = False,
    tf_runners: Annotated[
        Path,
        typer.Option("--tf-runners", help="With --tf: the checkout's TensorFlow runners file."),
    ] = TF_RUNNERS,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Folder of real inputs (videos/1zlab_face.mp4, photos/*.jpg, fer2013-publictest/, as in the "
            "project's shared data); default: the sample clip shipped with edgeemo.",
        ),
    ] = None,
    no_detectors: Annotated[bool, typer.Option("--no-detectors", help="Skip detectors and pipeline.")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Result JSON (default: bench-<mode>.json).")] = None,
    table: Annotated[Path | None, typer.Option("--table", help="Also write the markdown table here.")] = None,
    peak_gflops: Annotated[
        float | None, typer.Option("--peak-gflops", help="The CPU's peak FP32 GFLOP/s, for % of peak.")
    ] = None,
) -> None:
    """Run the harness (each configuration in its own process), write one JSON result file and print a table.

    Choose --quick or --full; the subcommands render, compare and probe.
    """
    if ctx.invoked_subcommand is not None:
        return
    if quick == full:
        from edgeemo.errors import InputError

        typer.echo(ctx.get_help(), err=True)
        raise InputError("bench: choose one run: --quick (~20 s smoke run) or --full (everything, minutes); see above")
    from edgeemo.bench.report import brief, markdown
    from edgeemo.bench.suite import build_plan, run_plan, write_results

    plan, budget = build_plan(
        quick=quick,
        models=model,
        tf_runners=tf_runners if with_tf else None,
        detectors=[] if no_detectors else detector,
        pipeline=not no_detectors,
        data=data,
    )
    mode = "quick" if quick else "full"

    def progress(k: int, n: int, result: dict) -> None:
        detail = result.get("reason") or result.get("error") or f"{result.get('wall_s')} s"
        typer.echo(f"[{k}/{n}] {result['id']}: {result['status']} ({detail})", err=True)

    doc = run_plan(plan, mode=mode, budget=budget, progress=progress)
    if peak_gflops:
        doc["peak_gflops"] = peak_gflops
    path = write_results(doc, out or Path(f"bench-{mode}.json"))
    typer.echo(brief(doc))
    typer.echo(f"results: {path}")
    if table is not None:
        from edgeemo.io.sinks import write_text_atomic

        table.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(table, markdown(doc, str(path)))
        typer.echo(f"table: {table}")


@bench_app.command("report")
def report_command(
    results: Annotated[Path, typer.Argument(help="A result JSON written by `edgeemo bench`.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the markdown here instead of stdout.")] = None,
) -> None:
    """Render a result file as the markdown results table."""
    from edgeemo.bench.report import markdown
    from edgeemo.bench.suite import load_results

    text = markdown(load_results(results), results.as_posix())
    if out is None:
        typer.echo(text)
    else:
        from edgeemo.io.sinks import prepare_outputs, write_text_atomic

        prepare_outputs([("--out", out)])  # missing folders are created, as by every command
        write_text_atomic(out, text)
        typer.echo(f"table: {out}")


@bench_app.command("compare")
def compare_command(
    a: Annotated[Path, typer.Argument(help="Result JSON A (e.g. a desktop run).")],
    b: Annotated[Path, typer.Argument(help="Result JSON B (e.g. a Jetson run).")],
) -> None:
    """Put two result files side by side: every case both measured, with the ratio B / A."""
    from edgeemo.bench.report import compare_markdown
    from edgeemo.bench.suite import load_results

    typer.echo(compare_markdown(load_results(a), load_results(b), a.name, b.name))


@bench_app.command("spread")
def spread_command(
    results: Annotated[list[Path], typer.Argument(help="Result JSON files of repeated runs on one machine.")],
) -> None:
    """Repeated runs side by side: every case's headline ms in each run and max / min (how far apart they are)."""
    from edgeemo.bench.report import spread_markdown
    from edgeemo.bench.suite import load_results
    from edgeemo.errors import InputError

    if len(results) < 2:
        raise InputError("bench spread: give at least two result files")
    typer.echo(spread_markdown([load_results(p) for p in results], [p.name for p in results]))


@bench_app.command("probe")
def probe_command(
    seconds: Annotated[float, typer.Option("--seconds", min=0, help="How long to keep probing.")] = 60.0,
    interval: Annotated[float, typer.Option("--interval", min=0, help="Pause between probes, in seconds.")] = 0.5,
) -> None:
    """Probe the cores again and again (the harness's 1-thread vs all-core check) and print, as JSON, how long
    their state lasts: autocorrelation of the readings and the all-core time per speed-up band."""
    import json

    from edgeemo.bench.probe import stability, watch

    typer.echo(json.dumps({"interval_s": interval, **stability(watch(seconds, interval))}, indent=1))
