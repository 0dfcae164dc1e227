"""Why an INT8 file answers differently on x86 CPUs without VNNI: layer-by-layer evidence.

Runs a QDQ INT8 model natively and under ``qemu-x86_64 -cpu Haswell`` (onnxruntime's AVX2 kernels) with every
QuantizeLinear output exposed, then recomputes each quantized standard (non-depthwise) Conv from its uint8 input
in numpy twice: with exact int32 sums, and the way ``vpmaddubsw`` sums u8 x s8 products (adjacent pairs along
the NHWC im2col K axis added in saturating int16). Prints, per layer, the share of uint8 outputs each model gets
wrong against each run. Exact matching native and saturating matching AVX2 (each fed that run's own inputs)
pins the difference on the pairwise saturation.

    python benchmarks/int8_saturation.py [MODEL.int8.onnx] [--faces 64]

Without MODEL it quantizes the shipped recipe with int8 weights (U8S8, the file shipped before issue 14); on the
shipped uint8-weight file every ``native~AVX2`` share is 0 (its U8U8 kernels never saturate).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgeemo_export.isa_parity import emulator  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "fer2013-publictest"


def probe(model_path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every QuantizeLinear output of the model on ``x`` (onnxruntime's full optimisation, CPU provider)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    names = [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in names)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x})))


def conv_layers(model: Any) -> list[dict[str, Any]]:
    """Quantized standard Convs: uint8 input/output tensor names, integer weights, bias, scales, zero points."""
    from onnx import helper, numpy_helper

    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def dq(tensor: str) -> tuple[str, np.ndarray, np.ndarray] | None:
        node = producer.get(tensor)
        if node is None or node.op_type != "DequantizeLinear":
            return None
        return node.input[0], init[node.input[1]], init[node.input[2]]

    layers = []
    for n in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        x, w = (dq(n.input[0]), dq(n.input[1])) if n.op_type == "Conv" else (None, None)
        if x is None or w is None or attrs.get("group", 1) != 1:
            continue
        q = next(c for c in consumers[n.output[0]] if c.op_type == "QuantizeLinear")
        bias = dq(n.input[2]) if len(n.input) > 2 else None
        layers.append(
            {
                "name": n.name,
                "x": x[0],
                "x_scale": x[1],
                "x_zp": int(x[2]),
                "w": init[w[0]].astype(np.int64),
                "w_scale": w[1],
                "w_zp": w[2].astype(np.int64),
                "bias": init[bias[0]].astype(np.int64) if bias else 0,
                "y": q.output[0],
                "y_scale": init[q.input[1]],
                "y_zp": int(init[q.input[2]]),
                "strides": attrs.get("strides", [1, 1]),
                "pads": attrs.get("pads", [0, 0, 0, 0]),
            }
        )
    return layers


def recompute(layer: dict[str, Any], x_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The layer's uint8 output with exact and with pairwise-saturating sums, and the largest |pair sum|."""
    w, zx = layer["w"], layer["x_zp"]
    n, c, h, wd = x_u8.shape
    o, _, kh, kw = w.shape
    (sh, sw), p = layer["strides"], layer["pads"]
    xp = np.full((n, c, h + p[0] + p[2], wd + p[1] + p[3]), zx, np.int64)  # im2col pads with the zero point
    xp[:, :, p[0] : p[0] + h, p[1] : p[1] + wd] = x_u8
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    taps = [xp[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] for i in range(kh) for j in range(kw)]
    cols = np.stack(taps, 1).transpose(0, 3, 4, 1, 2).reshape(n * oh * ow, kh * kw * c)  # K = (kh, kw, c)
    wk = (w - layer["w_zp"].reshape(-1, 1, 1, 1)).transpose(0, 2, 3, 1).reshape(o, -1)
    if wk.shape[1] % 2:
        cols, wk = np.pad(cols, ((0, 0), (0, 1))), np.pad(wk, ((0, 0), (0, 1)))
    exact = cols @ wk.T
    pairs = cols.reshape(len(cols), -1, 2)
    sat = np.empty_like(exact)
    worst = 0
    for k in range(o):
        s = (pairs * wk[k].reshape(-1, 2)).sum(-1)  # raw u8 x s8 products, summed in adjacent pairs
        worst = max(worst, int(np.abs(s).max()))
        sat[:, k] = np.clip(s, -32768, 32767).sum(-1)
    scale = (layer["x_scale"] * layer["w_scale"] / layer["y_scale"]).astype(np.float32)

    def requantize(acc: np.ndarray) -> np.ndarray:
        acc = acc - zx * wk.sum(1) + layer["bias"]
        y = np.clip(np.rint(acc * scale) + layer["y_zp"], 0, 255)
        return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)

    return requantize(exact), requantize(sat), worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, nargs="?", help="QDQ INT8 model (default: the U8S8 recipe, built here)")
    ap.add_argument("--faces", type=int, default=64)
    ap.add_argument("--probe", nargs=2, type=Path, help=argparse.SUPPRESS)  # worker: input.npy output.npz
    args = ap.parse_args(argv)
    if args.probe:
        np.savez(args.probe[1], **probe(args.model, np.load(args.probe[0])))
        return 0
    prefix = emulator("Haswell")
    if prefix is None or not (DATA / "labels.csv").is_file():
        print("needs qemu-x86_64 on an x86-64 host and ../shared/data/fer2013-publictest", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from edgeemo_export.int8 import DEFAULT_OPTIONS, quantize_int8

            args.model = Path(tmp) / "u8s8.onnx"
            fp32 = REPO / "models" / "mini-xception" / "model.onnx"
            quantize_int8(fp32, args.model, options=dataclasses.replace(DEFAULT_OPTIONS, weight_type="int8"))
        return report(args.model, args.faces, prefix, Path(tmp))


def report(model_path: Path, faces: int, prefix: list[str], tmp: Path) -> int:
    import cv2
    import onnx

    from edgeemo.runtime.model import EmotionModel

    rows = list(csv.DictReader((DATA / "labels.csv").open()))
    rows = rows[:: max(1, len(rows) // faces)][:faces]
    x = EmotionModel(model_path).preprocess([cv2.imread(str(DATA / r["path"]), cv2.IMREAD_UNCHANGED) for r in rows])
    native = probe(model_path, x)
    np.save(tmp / "x.npy", x)
    cmd = [*prefix, sys.executable, __file__, str(model_path), "--probe", str(tmp / "x.npy"), str(tmp / "avx2.npz")]
    subprocess.run(cmd, check=True, capture_output=True)
    with np.load(tmp / "avx2.npz") as f:
        avx2 = dict(f)
    print(f"{len(x)} faces; share of uint8 outputs that differ")
    print(f"{'layer':50s} {'max|pair|':>9s} {'exact~native':>12s} {'sat~AVX2':>9s} {'native~AVX2':>11s}")
    for layer in conv_layers(onnx.load(str(model_path))):
        exact, _, worst = recompute(layer, native[layer["x"]])
        _, sat, _ = recompute(layer, avx2[layer["x"]])
        a, b = native[layer["y"]], avx2[layer["y"]]
        print(
            f"{layer['name']:50s} {worst:9d} {np.mean(exact != a):12.4f} {np.mean(sat != b):9.4f} "
            f"{np.mean(a != b):11.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
