"""Full benchmark run for the README: lean configurations plus the TensorFlow / TFLite comparisons.

    python -m benchmarks.run            # full run (~15 min on 2 cores), writes results/full.json + RESULTS.md
    python -m benchmarks.run --quick    # smoke run, writes results/quick.json

Same as ``edgeemo bench --tf --data ../shared/data``, with the repository's default paths.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edgeemo.bench.report import markdown
from edgeemo.bench.suite import build_plan, run_plan, write_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SHARED_DATA = HERE.parent.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: a few calls per configuration")
    ap.add_argument("--model", action="append", help="model name (repeatable); default: all found")
    ap.add_argument("--no-tf", action="store_true", help="leave out TensorFlow / TFLite")
    ap.add_argument("--no-detectors", action="store_true", help="leave out detectors and the pipeline")
    ap.add_argument("--out", type=Path, help="result JSON (default: results/<mode>.json)")
    ap.add_argument("--table", type=Path, help="markdown table (default for a full run: results/RESULTS.md)")
    ap.add_argument(
        "--data",
        type=Path,
        default=SHARED_DATA if SHARED_DATA.is_dir() else None,
        help="folder of real inputs (default: ../shared/data beside the checkout, else the sample clip)",
    )
    ap.add_argument("--peak-gflops", type=float, help="the CPU's peak FP32 GFLOP/s, to report %% of peak")
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full"
    plan, budget = build_plan(
        quick=args.quick,
        models=args.model,
        tf_runners=None if args.no_tf else os.path.relpath(HERE / "tf_modes.py"),
        detectors=[] if args.no_detectors else None,
        pipeline=not args.no_detectors,
        data=args.data,
    )

    def progress(k: int, n: int, result: dict) -> None:
        detail = result.get("reason") or result.get("error") or f"{result.get('wall_s')} s"
        print(f"[{k}/{n}] {result['id']}: {result['status']} ({detail})", file=sys.stderr, flush=True)

    doc = run_plan(plan, mode=mode, budget=budget, progress=progress)
    if args.peak_gflops:
        doc["peak_gflops"] = args.peak_gflops
    out = write_results(doc, args.out or RESULTS / f"{mode}.json")
    table = args.table or (RESULTS / "RESULTS.md" if mode == "full" else None)
    if table is not None:
        root = RESULTS.parent.parent
        table.write_text(markdown(doc, out.relative_to(root).as_posix() if out.is_relative_to(root) else str(out)))
    print(f"results: {out}" + (f"; table: {table}" if table else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
