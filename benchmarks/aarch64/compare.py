"""Run edgeemo's CPU path on aarch64 (qemu-user) and natively, side by side; write report.json + report.md.

Started by ``benchmarks/aarch64/run.sh``, which builds the sysroot and the aarch64 site folder. Each step runs
twice, with the same repository checkout: under ``qemu-aarch64 -L SYSROOT`` with the sysroot's Python 3.11 and
the aarch64 wheels, and with this interpreter on the host. One emulated process at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared" / "data"
CLI = "from edgeemo.cli import main; main()"
ARM, X86 = "aarch64", "x86_64"


@dataclass(frozen=True)
class Step:
    name: str
    side: str
    command: str
    returncode: int
    seconds: float


class Sides:
    """How to start Python on each side, and a log of every step run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.sysroot = args.sysroot
        self.arm = [args.qemu, "-cpu", args.cpu, "-L", str(args.sysroot), str(args.sysroot / "usr/bin/python3.11")]
        self.env = {
            ARM: {**os.environ, "PYTHONPATH": f"{args.site}:{REPO}", "PYTHONNOUSERSITE": "1", "COLUMNS": "200"},
            X86: {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        }
        self.steps: list[Step] = []

    def python(self, side: str) -> list[str]:
        return self.arm if side == ARM else [sys.executable]

    def run(self, name: str, side: str, argv: list[str], timeout: float = 7200) -> subprocess.CompletedProcess[str]:
        cmd = ["nice", "-n", "15", *self.python(side), *argv] if side == ARM else [*self.python(side), *argv]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=self.env[side], cwd=REPO, capture_output=True, text=True, timeout=timeout)
        self.steps.append(Step(name, side, " ".join(cmd), r.returncode, round(time.perf_counter() - t0, 1)))
        print(f"[{side}] {name}: rc={r.returncode} {self.steps[-1].seconds} s", file=sys.stderr, flush=True)
        return r


def ort_import_check(system_qemu: str | None, sides: Sides, args: argparse.Namespace) -> dict[str, object]:
    """Does onnxruntime import under the host's own qemu-aarch64 (Debian bookworm: 7.2)? Evidence for the docs."""
    if not system_qemu:
        return {"checked": False}
    version = subprocess.run([system_qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    cmd = [
        "nice",
        "-n",
        "15",
        system_qemu,
        "-L",
        str(args.sysroot),
        str(args.sysroot / "usr/bin/python3.11"),
        "-c",
        "import onnxruntime",
    ]
    r = subprocess.run(cmd, env=sides.env[ARM], capture_output=True, text=True)
    return {"checked": True, "qemu": version, "returncode": r.returncode, "stderr_tail": r.stderr[-300:]}


def cli_text(sides: Sides, command: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for side in (X86, ARM):
        r = sides.run(f"edgeemo {command}", side, ["-c", CLI, command])
        out[side] = {"returncode": r.returncode, "stdout": r.stdout}
    out["identical"] = out[X86] == out[ARM]
    return out


def trained_head(model: str, head: str) -> bool:
    """The model's card marks this head trained: weights not untrained, or the head not among untrained_heads."""
    card = json.loads((REPO / "models" / model / "card.json").read_text(encoding="utf-8"))
    return card.get("weights") != "untrained" or head not in card.get("untrained_heads", [head])


def parity(sides: Sides, workdir: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    files = {}
    for side in (X86, ARM):
        files[side] = workdir / f"parity-{side}.npz"
        argv = [str(HERE / "worker.py"), "parity", str(files[side])]
        argv += [
            "--faces",
            str(args.faces),
            "--thesis-faces",
            str(args.thesis_faces),
            "--fp16-faces",
            str(args.fp16_faces),
        ]
        r = sides.run("parity", side, argv)
        if r.returncode != 0:
            raise SystemExit(f"parity on {side} failed:\n{r.stderr[-2000:]}")
    x86, arm = np.load(files[X86]), np.load(files[ARM])
    rows = []
    for key in sorted(k for k in x86.files if k.endswith("input_sha256")):
        name, precision, _ = key.split("/")
        index = x86[f"{name}/{precision}/index"]
        truth = x86[f"{name}/truth"][index]
        skip = (key, f"{name}/{precision}/index")
        heads = sorted(k.split("/")[2] for k in x86.files if k.startswith(f"{name}/{precision}/") and k not in skip)
        row: dict[str, object] = {"model": name, "precision": precision, "faces": len(truth)}
        if len(index) < len(x86[f"{name}/truth"]):
            row["face_stride"] = int(index[1] - index[0])  # every k-th face of the model's subset
        row["same_input_tensor"] = bool(np.array_equal(x86[key], arm[key]))
        for head in heads:
            a, b = x86[f"{name}/{precision}/{head}"], arm[f"{name}/{precision}/{head}"]
            row[f"{head}_max_abs_diff"] = float(np.abs(a - b).max())
            if a.ndim == 2:
                la, lb = a.argmax(1), b.argmax(1)
                row["label_agreement"] = float(np.mean(la == lb))
                row["labels_differing"] = int(np.sum(la != lb))
                if trained_head(name, head):  # an untrained head's labels mean nothing: no accuracy
                    row["accuracy_x86"] = float(np.mean(la == truth))
                    row["accuracy_aarch64"] = float(np.mean(lb == truth))
                if name == "mini-xception":
                    row["labels_x86"] = "".join(map(str, la))  # the reference `worker.py board` checks against
                fp32 = f"{name}/fp32/{head}"
                if precision != "fp32" and fp32 in x86.files:
                    row["agreement_with_fp32_x86"] = float(np.mean(la == x86[fp32][index].argmax(1)))
                    row["agreement_with_fp32_aarch64"] = float(np.mean(lb == arm[fp32][index].argmax(1)))
        rows.append(row)
    return rows


def _faces(record: dict[str, object]) -> list[dict[str, object]]:
    return list(record.get("faces", []))  # type: ignore[arg-type]


def compare_records(x86: list[dict[str, object]], arm: list[dict[str, object]], key: str) -> dict[str, object]:
    """Per image / frame: face count, labels, and the largest box and probability differences."""
    by = {side: {str(r[key]): r for r in recs} for side, recs in ((X86, x86), (ARM, arm))}
    differences, box_diff, prob_diff, faces = [], 0.0, 0.0, 0
    for k in sorted(set(by[X86]) | set(by[ARM])):
        a, b = by[X86].get(k), by[ARM].get(k)
        if a is None or b is None:
            differences.append(f"{k}: only on {'aarch64' if a is None else 'x86_64'}")
            continue
        fa, fb = _faces(a), _faces(b)
        faces += len(fa)
        if len(fa) != len(fb):
            differences.append(f"{k}: {len(fa)} faces on x86_64, {len(fb)} on aarch64")
            continue
        for i, (p, q) in enumerate(zip(fa, fb)):
            box_diff = max(box_diff, max(abs(p["box"][c] - q["box"][c]) for c in ("x1", "y1", "x2", "y2")))
            prob_diff = max(
                prob_diff, max(abs(p["probabilities"][c] - q["probabilities"][c]) for c in p["probabilities"])
            )
            if p["label"] != q["label"]:
                differences.append(f"{k} face {i}: {p['label']} on x86_64, {q['label']} on aarch64")
    return {
        "records": len(by[X86]),
        "faces": faces,
        "max_box_diff_px": round(box_diff, 3),
        "max_probability_diff": round(prob_diff, 6),
        "differences": differences,
    }


def image_run(sides: Sides, workdir: Path) -> dict[str, object]:
    photos = sorted(str(p) for p in (SHARED / "photos").glob("*.jpg"))
    recs = {}
    for side in (X86, ARM):
        r = sides.run("edgeemo image", side, ["-c", CLI, "image", *photos, "--json", "--cpu-layout", "portable"])
        (workdir / f"image-{side}.jsonl").write_text(r.stdout)
        recs[side] = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return {"photos": len(photos), **compare_records(recs[X86], recs[ARM], "source")}


def first_frames(clip: Path, frames: int, work: Path) -> Path:
    """The clip's first ``frames`` packets, remuxed unchanged (the shared clip is H.264 Baseline: no B-frames)."""
    import av

    out = work / f"{clip.stem}-first{frames}.mp4"
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        stream = src.streams.video[0]
        copy = dst.add_stream_from_template(stream)
        for n, packet in enumerate(p for p in src.demux(stream) if p.dts is not None):
            if n == frames:
                break
            packet.stream = copy
            dst.mux(packet)
    return out


def video_run(sides: Sides, workdir: Path, frames: int) -> dict[str, object]:
    clip = SHARED / "videos" / "1zlab_face.mp4"
    source = first_frames(clip, frames, workdir) if frames else clip
    recs = {}
    for side in (X86, ARM):
        out = workdir / f"video-{side}.jsonl"
        out.unlink(missing_ok=True)
        argv = ["-c", CLI, "video", str(source), "--jsonl", str(out), "--cpu-layout", "portable"]
        sides.run("edgeemo video", side, argv)
        recs[side] = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
    return {"clip": clip.name, "frames": frames or "all", **compare_records(recs[X86], recs[ARM], "index")}


def markdown(report: dict[str, object]) -> str:
    v = report["versions"]
    lines = [
        "# edgeemo on aarch64 (qemu-user) next to x86_64",
        "",
        f"Host: {report['host']}. Commands (wall time on that host):",
        "",
        *[f"- `{r['command']}`: {r['wall_s'] / 60:.1f} min ({', '.join(r['steps'])})" for r in report["runs"]],
        "",
        "| | x86_64 (native) | aarch64 (emulated) |",
        "|---|---|---|",
    ]
    for k in ("cpu", "python", "numpy", "opencv", "onnxruntime"):
        lines.append(f"| {k} | {v[X86].get(k)} | {v[ARM].get(k)} |")
    lines.append(f"| PyAV | {v[X86]['packages'].get('av')} | {v[ARM]['packages'].get('av')} |")
    lines.append(f"| emulator | | {report['qemu']} |")
    ort = report["ort_import_with_system_qemu"]
    if ort.get("checked"):
        lines += [
            "",
            f"onnxruntime {v[ARM]['onnxruntime']} import under the host's {ort['qemu']}: "
            f"exit code {ort['returncode']} (see docs/jetson.md).",
        ]
    lines += (
        ["", "## Parity on FER2013 PublicTest (portable model.onnx files, one thread)", ""]
        if "parity" in report
        else []
    )
    lines += (
        []
        if "parity" not in report
        else [
            "| model | precision | faces | accuracy x86_64 | accuracy aarch64 | labels equal | max prob diff | "
            "same input tensor | agreement with FP32 x86 / aarch64 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    )
    for r in report.get("parity", []):
        acc = (
            (f"{r['accuracy_x86']:.4f}", f"{r['accuracy_aarch64']:.4f}")
            if "accuracy_x86" in r
            else ("untrained", "untrained")
        )
        agree = (
            f"{r['label_agreement'] * 100:.2f} % ({r['labels_differing']} differ)" if "label_agreement" in r else "-"
        )
        diffs = ", ".join(f"{k.removesuffix('_max_abs_diff')} {r[k]:.2g}" for k in r if k.endswith("_max_abs_diff"))
        fp32 = (
            f"{r['agreement_with_fp32_x86'] * 100:.1f} / {r['agreement_with_fp32_aarch64'] * 100:.1f} %"
            if "agreement_with_fp32_x86" in r
            else "-"
        )
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['faces']} | {acc[0]} | {acc[1]} | {agree} | {diffs} | "
            f"{'yes' if r['same_input_tensor'] else 'no'} | {fp32} |"
        )
    lines += [line for note in report.get("notes", []) for line in ("", note)]  # prose added later, never figures
    for title, key in (
        ("`edgeemo image` on the shared group photos", "image"),
        ("`edgeemo video` on the shared clip", "video"),
    ):
        if key not in report:
            continue
        p = report[key]
        if key == "video":
            title += f" ({p['frames']} frames)" if p["frames"] != "all" else " (all frames)"
        lines += [
            "",
            f"## {title}",
            "",
            f"{p['records']} records, {p['faces']} faces on x86_64; largest box "
            f"difference {p['max_box_diff_px']} px, largest probability difference {p['max_probability_diff']}.",
        ]
        lines += ["", "Differences: " + ("none." if not p["differences"] else "(causes: docs/jetson.md)")]
        lines += [f"- {d}" for d in p["differences"]]
    for cmd in [c for c in ("models", "detectors") if c in report]:
        c = report[cmd]
        lines += [
            "",
            f"## `edgeemo {cmd}`",
            "",
            f"Exit codes x86_64 {c[X86]['returncode']}, aarch64 "
            f"{c[ARM]['returncode']}; output identical: {'yes' if c['identical'] else 'no'}. On aarch64:",
            "",
            "```",
            c[ARM]["stdout"].rstrip(),
            "```",
        ]
    lines += ["", "## Steps", "", "| step | side | exit | seconds |", "|---|---|---|---|"]
    lines += [f"| {s['name']} | {s['side']} | {s['returncode']} | {s['seconds']} |" for s in report["steps"]]
    return "\n".join(lines) + "\n"


def write(report: dict[str, object], out: Path, run: dict[str, object], t0: float, sides: Sides) -> None:
    report["steps"] = [asdict(s) for s in sides.steps]
    report["runs"] = [{**run, "wall_s": round(time.perf_counter() - t0, 1)}]
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown(report))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sysroot", type=Path, required=True)
    ap.add_argument("--site", type=Path, required=True)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--cpu", default="neoverse-n1", help="qemu CPU model (Armv8.2 + dotprod, no SVE, like Orin's)")
    ap.add_argument("--system-qemu", default=shutil.which("qemu-aarch64"))
    ap.add_argument("--faces", type=int, default=1000)
    ap.add_argument("--thesis-faces", type=int, default=10, help="faces for the thesis models")
    ap.add_argument("--fp16-faces", type=int, default=200, help="at most this many of the subset for FP16")
    ap.add_argument("--out", type=Path, required=True, help="report.json and report.md go here")
    ap.add_argument("--work", type=Path, required=True, help="raw outputs of both sides (kept out of the repository)")
    ap.add_argument(
        "--steps", default="cli,parity,image,video", help="comma-separated subset of cli,parity,image,video"
    )
    ap.add_argument("--video-frames", type=int, default=0, help="only the clip's first N frames (0: all)")
    ap.add_argument("--command", default=" ".join(sys.argv))
    args = ap.parse_args()
    if not (SHARED / "fer2013-publictest").is_dir():
        raise SystemExit(f"{SHARED}: shared data absent; the parity and pipeline steps need it")
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    sides = Sides(args)
    qemu_version = subprocess.run([args.qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    versions = {}
    for side in (X86, ARM):
        sides.run("versions", side, [str(HERE / "worker.py"), "versions", str(work / f"versions-{side}.json")])
        versions[side] = json.loads((work / f"versions-{side}.json").read_text())
    report: dict[str, object] = {
        "host": f"{platform.machine()} {versions[X86]['cpu']}, {os.cpu_count()} CPUs (shared)",
        "qemu": f"{qemu_version} -cpu {args.cpu}",
        "versions": versions,
        "ort_import_with_system_qemu": ort_import_check(args.system_qemu, sides, args),
    }
    run = {"command": args.command, "steps": args.steps.split(",")}
    steps = args.steps.split(",")
    plan = [
        ("parity", lambda: parity(sides, work, args)),
        ("image", lambda: image_run(sides, work)),
        ("models", lambda: cli_text(sides, "models")),
        ("detectors", lambda: cli_text(sides, "detectors")),
        ("video", lambda: video_run(sides, work, args.video_frames)),
    ]
    for key, step in plan:
        if ("cli" if key in ("models", "detectors") else key) in steps:
            report[key] = step()
            write(report, args.out, run, t0, sides)  # after every step: a cut-short run still leaves its figures
    print(args.out / "report.md")


if __name__ == "__main__":
    main()
