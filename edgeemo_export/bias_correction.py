"""Empirical bias correction of a QDQ model (after Nagel et al. 2019, "Data-free quantization").

Quantizing weights and activations shifts the mean of each convolution's output channels a little; through a
dozen layers those shifts add up and flip close calls. For every quantized convolution, in graph order, the
mean output per channel of the QDQ model is compared with the float model's on the calibration tensors and the
difference is taken out of the int32 bias (one bias step = the bias's own quantization scale). Convolutions
without a bias get a zero bias before quantization (:func:`add_zero_biases`) so they can be corrected too.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import numpy_helper

from edgeemo_export.calibration import intermediate_outputs

log = logging.getLogger(__name__)


def add_zero_biases(model: onnx.ModelProto) -> int:
    """Give each Conv with constant weights and no bias a zero bias (in place); returns how many."""
    init = {i.name: i for i in model.graph.initializer}
    added = 0
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in init:
            continue
        if len(node.input) > 2 and node.input[2]:
            continue
        name = f"{node.input[1]}_zero_bias"
        if name not in init:
            bias = numpy_helper.from_array(np.zeros(init[node.input[1]].dims[0], np.float32), name)
            model.graph.initializer.append(bias)
            init[name] = bias
        if len(node.input) == 2:
            node.input.append(name)
        else:
            node.input[2] = name
        added += 1
    return added


def correct_biases(
    quantized: onnx.ModelProto, reference: onnx.ModelProto, calibration: np.ndarray, input_name: str
) -> int:
    """Shift int32 conv biases of ``quantized`` (in place) so its per-channel output means match ``reference``."""
    producer = {o: n for n in quantized.graph.node for o in n.output}
    init = {i.name: i for i in quantized.graph.initializer}
    # Match convolutions by node name: the quantizer drops a Relu after a Conv and gives the Conv the Relu's
    # output name, so the same tensor name may mean pre-Relu here and post-Relu in the reference.
    ref_output = {n.name: n.output[0] for n in reference.graph.node if n.op_type == "Conv"}
    targets = []
    for node in quantized.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3 or node.name not in ref_output:
            continue
        dq = producer.get(node.input[2])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in init:
            continue
        if init[dq.input[0]].data_type != onnx.TensorProto.INT32:
            continue
        targets.append((node.output[0], ref_output[node.name], dq.input[0], dq.input[1]))
    if not targets:
        return 0
    ref_means = _channel_means(reference, calibration, input_name, [r for _, r, _, _ in targets])
    for tensor, ref_tensor, bias_name, scale_name in targets:
        q_mean = _channel_means(quantized, calibration, input_name, [tensor])[tensor]
        delta = q_mean - ref_means[ref_tensor]
        scale = numpy_helper.to_array(init[scale_name]).astype(np.float64)
        bias = numpy_helper.to_array(init[bias_name]).astype(np.int64)
        steps = np.rint(delta / scale).astype(np.int64)
        new = np.clip(bias - steps, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
        init[bias_name].CopyFrom(numpy_helper.from_array(new, bias_name))
    log.info("bias correction: %d convolutions", len(targets))
    return len(targets)


def _channel_means(
    model: onnx.ModelProto, calibration: np.ndarray, input_name: str, tensors: list[str]
) -> dict[str, np.ndarray]:
    sums: dict[str, np.ndarray] = {}
    count = 0
    for batch in intermediate_outputs(model, calibration, input_name, tensors):
        for t, v in batch.items():
            s = v.astype(np.float64).mean(axis=(2, 3)).sum(axis=0)
            sums[t] = sums[t] + s if t in sums else s
        count += len(next(iter(batch.values())))
    return {t: s / count for t, s in sums.items()}
