"""Markdown from result documents: the results table for the README, and two result files side by side.

Every figure printed here comes from a result document; nothing is typed in by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from edgeemo.bench.probe import CONTENDED_BELOW, contended, probes_disagree

TF_ENGINES = ("tensorflow",)


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "–"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}" if x >= 1 else f"{x:.3f}"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _ok(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in doc["results"] if r["kind"] == kind and r["status"] == "ok"]


def _stats_by_batch(r: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {s["batch"]: s for s in r["data"]["stats"]}


def machine_lines(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    pk = m.get("packages", {})
    cores = f"{m.get('usable_cores')} usable / {m.get('physical_cores')} physical / {m.get('logical_cores')} logical"
    lines = [
        f"- Machine: {m.get('cpu_model')} ({cores} cores, {m.get('memory_gib')} GiB), {m.get('platform')}",
        f"- CPU flags: {', '.join(m.get('cpu_flags', [])) or 'none recorded'}",
        f"- onnxruntime {pk.get('onnxruntime') or pk.get('onnxruntime-gpu')} "
        f"({', '.join(m.get('onnxruntime_providers', []))}); numpy {pk.get('numpy')}; "
        f"OpenCV {pk.get('opencv-python-headless') or pk.get('opencv-python')}; "
        f"TensorFlow {pk.get('tensorflow', 'not installed')}; dlib {pk.get('dlib-bin') or pk.get('dlib', '–')}",
        f"- Run: {doc['mode']} mode, {doc['created_utc']}, {doc.get('total_wall_s', '?')} s in all; "
        f"load average at start {m.get('load_average_at_start')}; thread env {m.get('thread_env') or 'unset'}",
    ]
    busy = [x[0] for x in (m.get("load_average_at_start"), m.get("load_average_at_end")) if x]
    cores = m.get("usable_cores") or m.get("logical_cores") or 1
    if busy and max(busy) > 0.5 * cores:
        lines.append(
            f"- **Busy machine**: 1-minute load average {' → '.join(f'{x:g}' for x in busy)} on {cores} cores; other "
            "processes shared the CPU, so absolute figures are pessimistic and noisy (multi-threaded sessions suffer "
            "most); the interleaved ratios are the trustworthy part of this run."
        )
    probed = [r for r in doc["results"] if r.get("core_probe")]
    if probed:
        speedups = sorted(r["core_probe"]["speedup"] for r in probed)
        n_bad = sum(1 for r in probed if contended(r))
        both = any("core_probe_after" in r for r in probed)
        cores = probed[0]["core_probe"]["cores"]
        line = (
            f"- Core probe {'before and after' if both else 'before'} each configuration (mini-Xception batch 8, "
            f"{cores} threads vs 1): speed-up{' before' if both else ''} median "
            f"{speedups[len(speedups) // 2]:.2f}×, range {speedups[0]:.2f}–{speedups[-1]:.2f}×; "
        )
        if both:
            flips = sum(1 for r in probed if probes_disagree(r))
            line += (
                f"the two probes disagreed in {flips} of {len(probed)} configurations (the cores' state changed "
                f"during the run); {n_bad} read contended (under {CONTENDED_BELOW:g}×) before and after and are "
                "marked † (about one core was taken: their absolute figures may understate the machine)."
            )
        else:
            line += (
                f"{n_bad} of {len(probed)} configurations ran on contended cores (under {CONTENDED_BELOW:g}×) and "
                "are marked † (their absolute figures may understate the machine)."
            )
        lines.append(line)
    if m.get("device_model"):
        lines.insert(1, f"- Device: {m.get('device_model')}")
    return lines


def classifier_tables(doc: dict[str, Any]) -> list[str]:
    rows = _ok(doc, "classifier")
    out: list[str] = []
    peak = doc.get("peak_gflops")
    for model in dict.fromkeys(r["data"]["model"] for r in rows):
        mine = [r for r in rows if r["data"]["model"] == model]
        batches = sorted({b for r in mine for b in _stats_by_batch(r)})
        macs = next((r["data"].get("macs_per_item") for r in mine if r["data"].get("macs_per_item")), None)
        best_tf = {
            b: min(
                (_stats_by_batch(r)[b]["fast90_mean_ms"] for r in mine if r["data"]["engine"] in TF_ENGINES),
                default=None,
            )
            for b in batches
        }
        title = f"### Classifier `{model}`"
        if macs:
            title += f" ({macs / 1e6:.1f} M multiply-adds per face)"
        out += [title, ""]
        header = ["runtime", "batch", "p50 ms", "p90 ms", "p99 ms", "fast-90% mean ms", "faces/s", "× fastest TF"]
        if macs:
            header.append("GFLOP/s" + (f" (% of {peak:g})" if peak else ""))
        header.append("peak RSS MiB")
        table = []
        for r in mine:
            d = r["data"]
            label = d["mode"] + (f" [{d['providers'][0].replace('ExecutionProvider', '')}]" if "providers" in d else "")
            label += " †" if contended(r) else ""
            for b, s in sorted(_stats_by_batch(r).items()):
                ref = best_tf.get(b)
                row = [
                    label,
                    str(b),
                    _fmt(s["p50_ms"]),
                    _fmt(s["p90_ms"]),
                    _fmt(s["p99_ms"]),
                    _fmt(s["fast90_mean_ms"]),
                    _fmt(s["items_per_s"]),
                    f"{ref / s['fast90_mean_ms']:.1f}" if ref else "–",
                ]
                if macs:
                    gf = 2 * macs * s["items_per_s"] / 1e9
                    row.append(f"{gf:.0f}" + (f" ({100 * gf / peak:.0f}%)" if peak else ""))
                row.append(_fmt(r.get("peak_rss_mib"), 0))
                table.append(row)
        out += [*_table(header, table), ""]
    return out


def _fast(doc: dict[str, Any], rid: str, batch: int) -> float | None:
    for r in doc["results"]:
        if r["id"] == rid and r["status"] == "ok":
            s = _stats_by_batch(r).get(batch)
            return s["fast90_mean_ms"] if s else None
    return None


def _mark(doc: dict[str, Any], rid: str) -> str:
    """ " †" when the result ``rid`` was measured on contended cores."""
    return next((" †" for r in doc["results"] if r["id"] == rid and contended(r)), "")


def _ratio(reference: float | None, value: float | None) -> str:
    """Speed-up with one decimal below 100 (7.6× must not read as the 8× of a goal)."""
    if not (reference and value):
        return "–"
    r = reference / value
    return f"{r:.0f}×" if r >= 100 else f"{r:.1f}×"


def summary_table(doc: dict[str, Any]) -> list[str]:
    """One row per model: edgeemo's batch-1 latency against TF and TFLite, and the best batch-32 throughput."""
    rows = _ok(doc, "classifier")
    peak = doc.get("peak_gflops")
    table = []
    for model in dict.fromkeys(r["data"]["model"] for r in rows):
        base = f"classifier/{model}/"
        ort1 = _fast(doc, base + "ort-fp32-cpu", 1)
        fn1, pr1, tfl1 = (_fast(doc, base + k, 1) for k in ("tf-function", "tf-predict", "tf-tflite"))
        ab = next((r for r in _ok(doc, "compare") if r["id"] == f"compare/{model}/ort-vs-tf"), None)
        ab_mark = _mark(doc, f"compare/{model}/ort-vs-tf")
        ab_tfl, ab_fn = _interleaved_batch1(ab, "TFLite"), _interleaved_batch1(ab, "TF tf.function")
        best = None
        for r in rows:
            if r["data"]["model"] == model and r["data"]["engine"] == "onnxruntime":
                s = _stats_by_batch(r).get(32)
                if s and (best is None or s["items_per_s"] > best[0]):
                    best = (s["items_per_s"], r["data"]["mode"] + _mark(doc, r["id"]), r["data"].get("macs_per_item"))
        peak_cell = "–"
        if best and best[2] and peak:
            peak_cell = f"{100 * 2 * best[2] * best[0] / 1e9 / peak:.0f}%"
        table.append(
            [
                model,
                _fmt(ort1) + _mark(doc, base + "ort-fp32-cpu"),
                _ratio(fn1, ort1),
                "–" if ab_fn is None else _ratio(ab_fn, 1.0) + ab_mark,
                _ratio(pr1, ort1),
                _fmt(tfl1) + _mark(doc, base + "tf-tflite"),
                "–" if ab_tfl is None else f"{ab_tfl:.2f}{ab_mark}",
                f"{_fmt(best[0])} ({best[1]})" if best else "–",
                peak_cell,
            ]
        )
    header = [
        "model",
        "edgeemo ORT FP32 batch 1 ms",
        "× vs tf.function",
        "× vs tf.function, interleaved",
        "× vs predict()",
        "TFLite FP32 batch 1 ms",
        "TFLite / edgeemo, interleaved",
        "best ORT batch 32 faces/s",
        "of peak" + (f" {peak:g} GFLOP/s" if peak else ""),
    ]
    return [*_table(header, table), ""] if table else []


def _interleaved_batch1(ab: dict[str, Any] | None, prefix: str) -> float | None:
    """In an interleaved comparison, the batch-1 time of the contender whose name starts with ``prefix``,
    divided by the reference's (how much faster edgeemo is); None when the comparison lacks it."""
    if ab is None:
        return None
    blk = next((b for b in ab["data"]["batches"] if b["batch"] == 1), None)
    if blk is None:
        return None
    c = blk["contenders"]
    other = next((v for k, v in c.items() if k.startswith(prefix)), None)
    return None if other is None else other["fast90_mean_ms"] / c[ab["data"]["reference"]]["fast90_mean_ms"]


def compare_tables(doc: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for r in _ok(doc, "compare"):
        d = r["data"]
        ref = d["reference"]
        mark = " †" if contended(r) else ""
        out += [f"### Interleaved `{d['model']}`: {r['id'].split('/')[-1]}{mark} (× = how much faster {ref} is)", ""]
        names = list(d["batches"][0]["contenders"]) if d["batches"] else []
        header = ["batch", *[f"{n} ms" for n in names], *[f"× vs {n}" for n in names if n != ref]]
        rows = []
        for blk in d["batches"]:
            c = blk["contenders"]
            base = c[ref]["fast90_mean_ms"]
            rows.append(
                [
                    str(blk["batch"]),
                    *[_fmt(c[n]["fast90_mean_ms"]) for n in names],
                    *[f"{c[n]['fast90_mean_ms'] / base:.2f}" for n in names if n != ref],
                ]
            )
        out += [*_table(header, rows), ""]
    return out


def detector_table(doc: dict[str, Any], kind: str = "detector") -> list[str]:
    rows = _ok(doc, kind)
    if not rows:
        return []
    sizes = sorted({(s["width"], s["height"]) for r in rows for s in r["data"]["sizes"]})
    header = ["detector", *[f"{w}x{h} ms (FPS)" for w, h in sizes], "faces/frame", "peak RSS MiB"]
    stage_names = list(dict.fromkeys(k for r in rows for s in r["data"]["sizes"] for k in s.get("stages_p50_ms", {})))
    first = rows[0]["data"]["sizes"][0]
    if stage_names:
        header.append(f"stages at {first['width']}x{first['height']} ms: " + " / ".join(stage_names))
    table = []
    for r in rows:
        d = r["data"]
        opts = ", ".join(f"{k}={v}" for k, v in d.get("options", {}).items())
        by = {(s["width"], s["height"]): s for s in d["sizes"]}
        cells = []
        for key in sizes:
            s = by.get(key)
            cells.append(
                f"{_fmt(s['stats']['p50_ms'])} ({1e3 / s['stats']['p50_ms']:.1f})" if s else "–"  # p50 per frame
            )
        faces = "/".join(str(max(s["faces_per_frame"] or [0])) for s in d["sizes"])
        name = d["detector"] + (f" ({opts})" if opts else "") + (" †" if contended(r) else "")
        row = [name, *cells, faces, _fmt(r.get("peak_rss_mib"), 0)]
        if stage_names:
            st = d["sizes"][0].get("stages_p50_ms", {})
            row.append(" / ".join(_fmt(st.get(k)) for k in stage_names))
        table.append(row)
    frames = rows[0]["data"].get("frames", "")
    how = "; the whole call and its stages are timed interleaved" if kind == "pipeline" else ""
    return [*_table(header, table), "", f"Frames: {frames}; ms are medians per frame{how}.", ""]


def import_lines(doc: dict[str, Any]) -> list[str]:
    rows = _ok(doc, "import")
    if not rows:
        return []
    d = rows[0]["data"]
    return [
        f"- `import edgeemo`: {d['import_ms_median']} ms median of {d['repeats']} fresh interpreters "
        f"(min {d['import_ms_min']} ms), {d['rss_after_import_mib']} MiB resident afterwards.",
        "",
    ]


def problem_lines(doc: dict[str, Any]) -> list[str]:
    out = []
    for r in doc["results"]:
        if r["status"] == "skipped":
            out.append(f"- skipped `{r['id']}`: {r.get('reason')}")
        elif r["status"] == "error":
            out.append(f"- ERROR `{r['id']}`: {r.get('error')}")
    return [*out, ""] if out else []


def markdown(doc: dict[str, Any], source: str = "") -> str:
    """The full results page for one result document."""
    lines = [
        "# edgeemo benchmark results",
        "",
        f"Generated from `{source or 'a result file'}` by `edgeemo bench report`; do not edit by hand.",
        "Latency is per call (one batch); faces/s = batch / fast-90% mean; × = speed-up over the named reference.",
        "",
        *machine_lines(doc),
        "",
        "## Summary",
        "",
        *summary_table(doc),
        "## Classifiers (isolated processes)",
        "",
        *classifier_tables(doc),
        "## Interleaved A/B comparisons (same process, alternating blocks)",
        "",
        *compare_tables(doc),
        "## Face detectors",
        "",
        *detector_table(doc, "detector"),
        "## Image pipeline (`Pipeline.run_image`: detect, crop, classify; JPEG decode timed as a stage)",
        "",
        *detector_table(doc, "pipeline"),
        "## Import and memory",
        "",
        *import_lines(doc),
        *(["## Not measured in this run", "", *problem_lines(doc)] if problem_lines(doc) else []),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _flatten(doc: dict[str, Any]) -> dict[tuple[str, str], float]:
    """(configuration id, case) → headline milliseconds, for side-by-side comparison."""
    out: dict[tuple[str, str], float] = {}
    for r in doc["results"]:
        if r["status"] != "ok":
            continue
        d = r["data"]
        if r["kind"] == "classifier":
            for s in d["stats"]:
                out[(r["id"], f"batch {s['batch']}")] = s["fast90_mean_ms"]
        elif r["kind"] == "compare":
            for blk in d["batches"]:
                for n, s in blk["contenders"].items():
                    out[(r["id"], f"batch {blk['batch']} {n}")] = s["fast90_mean_ms"]
        elif r["kind"] in ("detector", "pipeline"):
            for s in d["sizes"]:
                out[(r["id"], f"{s['width']}x{s['height']}")] = s["stats"]["p50_ms"]
        elif r["kind"] == "import":
            out[(r["id"], "import")] = d["import_ms_median"]
    return out


def compare_markdown(a: dict[str, Any], b: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """Two result documents side by side: every case both measured, with B / A (below 1: B is faster)."""
    fa, fb = _flatten(a), _flatten(b)
    ma, mb = a["machine"], b["machine"]
    lines = [
        f"# {name_a} vs {name_b}",
        "",
        f"- A: {ma.get('cpu_model')} / {ma.get('device_model') or ma.get('platform')}, {a['mode']}, {a['created_utc']}",
        f"- B: {mb.get('cpu_model')} / {mb.get('device_model') or mb.get('platform')}, {b['mode']}, {b['created_utc']}",
        "",
    ]
    rows = []
    for key in [k for k in fa if k in fb]:
        ra, rb = fa[key], fb[key]
        rows.append([key[0], key[1], _fmt(ra), _fmt(rb), f"{rb / ra:.2f}" if ra else "–"])
    only_a = [k for k in fa if k not in fb]
    only_b = [k for k in fb if k not in fa]
    lines += _table(["configuration", "case", "A ms", "B ms", "B / A"], rows)
    lines += ["", f"{len(rows)} cases in both; {len(only_a)} only in A; {len(only_b)} only in B.", ""]
    return "\n".join(lines)


def spread_markdown(docs: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """Repeated runs side by side: each case's headline ms in every run, and max / min.

    On a machine whose speed drifts (a shared VM), one run's absolute figures can sit anywhere in that range;
    this shows how far apart the runs were, case by case.
    """
    flats = [_flatten(d) for d in docs]
    keys = [k for k in flats[0] if all(k in f for f in flats[1:])]
    lines = [f"# Spread over {len(docs)} runs", ""]
    lines += [
        f"- {n}: {d['machine'].get('cpu_model')} / {d['machine'].get('device_model') or d['machine'].get('platform')}, "
        f"{d['mode']}, {d['created_utc']}"
        for n, d in zip(names, docs)
    ]
    if len({d["machine"].get("cpu_model") for d in docs}) > 1:
        lines.append("- The runs come from different CPUs: `edgeemo bench compare` is the tool for two machines.")
    lines.append("")
    rows, spreads = [], []
    for key in keys:
        values = [f[key] for f in flats]
        lo, hi = min(values), max(values)
        spread = hi / lo if lo > 0 else None
        if spread is not None:
            spreads.append((spread, key))
        rows.append([key[0], key[1], *(_fmt(v) for v in values), "–" if spread is None else f"{spread:.2f}"])
    lines += _table(["configuration", "case", *(f"{n} ms" for n in names), "max / min"], rows)
    lines.append("")
    if spreads:
        ordered = sorted(spreads)
        top, (case, what) = ordered[-1][0], ordered[-1][1]
        lines.append(
            f"{len(rows)} cases in every run; max / min median {ordered[len(ordered) // 2][0]:.2f}, "
            f"largest {top:.2f} ({case}, {what})."
        )
        lines.append("")
    return "\n".join(lines)


def _headline(r: dict[str, Any]) -> tuple[str, str, str]:
    """What a result measured, its median ms and its rate, for the one-table summary of a run."""
    d = r["data"]
    if r["kind"] == "import":
        return "`import edgeemo`", _fmt(d["import_ms_median"]), f"{d['rss_after_import_mib']} MiB resident"
    if r["kind"] == "classifier":
        s = _stats_by_batch(r)
        one, big = s.get(1) or d["stats"][0], s.get(max(s))
        return f"{d['mode']}, batch 1", _fmt(one["p50_ms"]), f"{_fmt(big['items_per_s'])} faces/s at batch {max(s)}"
    if r["kind"] == "compare":
        blk = d["batches"][0]
        c = blk["contenders"]
        base = c[d["reference"]]["fast90_mean_ms"]
        others = ", ".join(f"{n} {v['fast90_mean_ms'] / base:.2f}×" for n, v in c.items() if n != d["reference"])
        ref = c[d["reference"]]["p50_ms"]
        return f"batch {blk['batch']}, interleaved", _fmt(ref), f"time / {d['reference']}'s: {others}"
    s = d["sizes"][0]
    faces = max(s["faces_per_frame"] or [0])
    return (
        f"{s['width']}x{s['height']}, {d['frames']}",
        _fmt(s["stats"]["p50_ms"]),
        (f"{1e3 / s['stats']['p50_ms']:.1f} FPS, {faces} face(s)"),
    )


def brief(doc: dict[str, Any]) -> str:
    """One table for the terminal: every configuration of a run with its headline figure, or why it has none."""
    rows = []
    for r in doc["results"]:
        if r["status"] == "ok":
            what, ms, rate = _headline(r)
        else:
            what, ms, rate = r.get("reason") or r.get("error") or "", "–", r["status"]
        rows.append([r["id"] + (" †" if contended(r) else ""), what, ms, rate, _fmt(r.get("peak_rss_mib"), 0)])
    lines = _table(["case", "measured", "p50 ms", "rate", "peak RSS MiB"], rows)
    lines.append(f"{doc['mode']} run, {doc.get('total_wall_s', '?')} s; † measured on contended cores.")
    return "\n".join(lines) + "\n"
