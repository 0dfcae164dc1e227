"""Soak run: push many frames through the video pipeline and record the process's resident memory (RSS).

The source is the shipped sample clip (a real face: scikit-image's astronaut, moving) looped by remuxing its
packets with shifted timestamps into one long H.264 file (no re-encoding, so the file is made in seconds).
Every frame goes through the real :class:`~edgeemo.video.run.VideoRun`: threaded PyAV decode, detector,
tracker, one classifier call per frame, smoothing, and the JSON-lines and CSV sinks (written to a temporary
folder). No video is written and no timeline is kept: a timeline holds every frame's result by design, so it
grows with the run and would hide a leak.

RSS (``VmRSS`` from /proc/self/status) is sampled every ``--every`` frames. The report gives start (first
sample after warm-up), max, end and the least-squares slope over the samples after warm-up, in MiB per
10,000 frames, and a PNG of the curve.

    python benchmarks/soak.py --frames 100000 --every 1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "astronaut.mp4"
RESULTS = REPO / "benchmarks" / "results"


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def looped_clip(source: Path, frames: int, dest: Path) -> int:
    """Write ``source`` repeated until it holds at least ``frames`` frames; returns the frame count."""
    import av

    with av.open(str(source)) as probe:
        per_loop = sum(1 for p in probe.demux(video=0) if p.size)
    loops = -(-frames // per_loop)
    with av.open(str(dest), "w", format="mp4") as out:
        out_stream = None
        offset = 0
        for _ in range(loops):
            with av.open(str(source)) as src:
                stream = src.streams.video[0]
                if out_stream is None:
                    out_stream = out.add_stream_from_template(stream)
                last = 0
                for packet in src.demux(stream):
                    if packet.dts is None or not packet.size:
                        continue
                    dur = packet.duration or 0
                    packet.pts = (packet.pts or 0) + offset
                    packet.dts += offset
                    last = max(last, packet.pts + dur)
                    packet.stream = out_stream
                    out.mux(packet)
                offset = last
    return loops * per_loop


def fit_slope(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return 0.0
    return float(np.polyfit(x, y, 1)[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000, help="frames to process")
    ap.add_argument("--every", type=int, default=1000, help="sample RSS every N frames")
    ap.add_argument("--warmup", type=float, default=0.05, help="fraction of the run before 'start' is taken")
    ap.add_argument("--detector", default="blazeface")
    ap.add_argument("--detect-every", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    ap.add_argument("--png", type=Path, default=RESULTS / "soak_rss.png")
    args = ap.parse_args(argv)

    from edgeemo.pipeline import Pipeline
    from edgeemo.video.run import VideoOptions, VideoOutputs, VideoRun

    samples: list[tuple[int, float, float]] = [(0, 0.0, rss_mib())]
    with tempfile.TemporaryDirectory(prefix="edgeemo-soak-") as tmp:
        clip = Path(tmp) / "looped.mp4"
        t0 = time.perf_counter()
        total = looped_clip(SAMPLE, args.frames, clip)
        print(f"looped clip: {total} frames, {clip.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f} s")
        outputs = VideoOutputs(jsonl=Path(tmp) / "faces.jsonl", csv=Path(tmp) / "faces.csv")
        with Pipeline(detector=args.detector) as pipe:
            samples.append((0, 0.0, rss_mib()))  # model and detector loaded

            def progress(done: int, elapsed: float) -> None:
                if done % args.every == 0:
                    samples.append((done, elapsed, rss_mib()))
                    if done % (args.every * 10) == 0:
                        rate = done / elapsed
                        print(
                            f"{done:>7} frames {elapsed:7.0f} s {rate:6.1f} fps  RSS {samples[-1][2]:.1f} MiB",
                            flush=True,
                        )
                if done >= args.frames:
                    run.stop()

            run = VideoRun(pipe, clip, outputs, VideoOptions(detect_every=args.detect_every), progress=progress)
            summary = run.run()
            jsonl_lines = sum(1 for _ in outputs.jsonl.open())  # type: ignore[union-attr]
    frames = np.array([s[0] for s in samples[2:]], dtype=float)
    rss = np.array([s[2] for s in samples[2:]], dtype=float)
    warm = frames >= args.warmup * args.frames
    steady_x, steady_y = frames[warm], rss[warm]
    slope = fit_slope(steady_x, steady_y) * 10_000
    report = {
        "command": "python benchmarks/soak.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "source": f"{SAMPLE.name} looped to {total} frames (640x480 H.264)",
        "detector": args.detector,
        "detect_every": args.detect_every,
        "frames": summary.frames,
        "faces": summary.faces,
        "jsonl_lines": jsonl_lines,
        "seconds": round(summary.seconds, 1),
        "fps": round(summary.fps, 1),
        "corrupt": summary.corrupt,
        "rss_mib": {
            "before_model": round(samples[0][2], 1),
            "after_load": round(samples[1][2], 1),
            "start": round(float(steady_y[0]), 1) if len(steady_y) else None,
            "max": round(float(rss.max()), 1),
            "end": round(float(rss[-1]), 1),
            "slope_per_10k_frames": round(slope, 3),
            "warmup_frames": int(args.warmup * args.frames),
        },
        "samples": [{"frame": f, "seconds": round(t, 2), "rss_mib": round(r, 2)} for f, t, r in samples[2:]],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(frames, rss, report, args.png)
    r = report["rss_mib"]
    print(
        f"{summary.frames} frames in {summary.seconds:.0f} s ({summary.fps:.1f} fps); RSS start {r['start']} MiB, "
        f"max {r['max']}, end {r['end']}, slope {r['slope_per_10k_frames']} MiB/10k frames -> {args.out}, {args.png}"
    )
    return 0


def plot(frames: np.ndarray, rss: np.ndarray, report: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = report["rss_mib"]
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    ax.plot(frames, rss, lw=1.2, color="tab:blue", label="RSS")
    ax.axvline(r["warmup_frames"], color="grey", ls=":", lw=1, label="end of warm-up")
    ax.set_xlabel("frames processed")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(0, max(rss.max() * 1.15, 1))
    ax.set_title(
        f"edgeemo soak: {report['frames']} frames at {report['fps']} fps; start {r['start']}, max {r['max']}, "
        f"end {r['end']} MiB; slope {r['slope_per_10k_frames']} MiB/10k frames",
        fontsize=8,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
