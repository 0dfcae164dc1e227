"""edgeemo_export/blazeface.py: TFLite sparse-tensor expansion and the folded full-range model (needs TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.export
schema = pytest.importorskip("tensorflow.lite.python.schema_py_generated")

from edgeemo_export.blazeface import ASSET_DIR, VARIANTS, _tflite_outputs, densify, fold_sparse_weights  # noqa: E402

DENSE, CSR = 0, 1


def _sparsity(order, levels, block_map=None):
    meta = []
    for level in levels:
        if level[0] == "dense":
            meta.append(schema.DimensionMetadataT(format=DENSE, denseSize=level[1]))
        else:
            meta.append(
                schema.DimensionMetadataT(
                    format=CSR,
                    arraySegmentsType=schema.SparseIndexVector.Int32Vector,
                    arraySegments=schema.Int32VectorT(values=level[1]),
                    arrayIndicesType=schema.SparseIndexVector.Uint8Vector,
                    arrayIndices=schema.Uint8VectorT(values=level[2]),
                )
            )
    return schema.SparsityParametersT(traversalOrder=order, blockMap=block_map, dimMetadata=meta)


def test_densify_csr_row_and_column_major():
    dense = np.array([[0, 7, 0, 0], [0, 0, 0, 0], [8, 0, 9, 0]], np.float16)
    rows = _sparsity([0, 1], [("dense", 3), ("csr", [0, 1, 1, 3], [1, 0, 2])])
    assert np.array_equal(densify(np.array([7, 8, 9], np.float16), rows, (3, 4)), dense)
    cols = _sparsity([1, 0], [("dense", 4), ("csr", [0, 1, 2, 3, 3], [2, 0, 2])])
    assert np.array_equal(densify(np.array([8, 7, 9], np.float16), cols, (3, 4)), dense)


def test_densify_block_sparse():
    dense = np.array([[1, 0, 2, 3], [0, 4, 0, 0], [0, 0, 5, 0], [0, 0, 0, 6]], np.float32)
    # 2x2 blocks; block rows dense, block columns CSR (blocks (0,0), (0,1), (1,1)), each block stored dense.
    sp = _sparsity([0, 1, 2, 3], [("dense", 2), ("csr", [0, 2, 3], [0, 1, 1]), ("dense", 2), ("dense", 2)], [0, 1])
    values = np.array([1, 0, 0, 4, 2, 3, 0, 0, 5, 0, 0, 6], np.float32)
    assert np.array_equal(densify(values, sp, (4, 4)), dense)


def test_folded_full_range_model_is_exact(astronaut_bgr):
    v = VARIANTS["full"]
    original = (ASSET_DIR / v.tflite).read_bytes()
    folded, n_densify, n_dequantize = fold_sparse_weights(original)
    assert n_densify == 46 and n_dequantize == 182
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(folded, 0))
    op_names = {val: k for k, val in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [op_names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    ops = {codes[op.opcodeIndex] for op in model.subgraphs[0].operators}
    assert "CONV_2D" in ops and not ops & {"DENSIFY", "DEQUANTIZE"}
    import cv2

    x = cv2.resize(astronaut_bgr, (v.size, v.size))[:, :, ::-1].astype(np.float32)[None] / 127.5 - 1
    a, b = _tflite_outputs(ASSET_DIR / v.tflite, x), _tflite_outputs(folded, x)
    for key in a:
        assert np.array_equal(a[key], b[key])  # the same arithmetic on the same weights


@pytest.mark.parametrize("variant", ["short", "full"])
def test_shipped_onnx_matches_tflite(variant, astronaut_bgr):
    import cv2
    import onnxruntime as ort

    v = VARIANTS[variant]
    x = cv2.resize(astronaut_bgr, (v.size, v.size))[:, :, ::-1].astype(np.float32)[None] / 127.5 - 1
    ref = _tflite_outputs(ASSET_DIR / v.tflite, x)
    sess = ort.InferenceSession(str(ASSET_DIR / v.onnx), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(["regressors", "classificators"], {"input": x})
    ref_boxes = next(o for o in ref.values() if o.shape[-1] == 16)
    ref_scores = next(o for o in ref.values() if o.shape[-1] == 1)
    assert np.abs(boxes - ref_boxes).max() < 0.05  # box offsets are in input pixels (0..size)
    assert np.abs(scores - ref_scores).max() < 0.05  # logits
    assert ref_scores.max() > 0  # the astronaut's face is in there
