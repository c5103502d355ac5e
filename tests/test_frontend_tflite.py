"""The TFLite frontend: operator mapping, shapes, LSTM import, and the errors a user can reach.

Numerical checks run small generated models (tests/tflite_builder.py) in memfit and in LiteRT's
builtin reference kernels (no XNNPACK delegate) or TFLite Micro.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite_micro.python.tflite_micro import runtime

from memfit.api import load, run
from memfit.errors import (
    ModelFormatError,
    ShapeError,
    UnsupportedModelError,
    UnsupportedOpError,
    UsageError,
)
from memfit.frontends.tflite import load_tflite
from memfit.ir.core import Quantization
from memfit.ir.dtypes import DType
from tests.helpers import SHARED_MODELS
from tests.tflite_builder import Operator as Op
from tests.tflite_builder import T, build

MODELS = SHARED_MODELS


def write(tmp_path: Path, model: bytes, name: str = "model") -> Path:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(model)
    return path


def litert(model: bytes, *inputs: np.ndarray) -> list[np.ndarray]:
    interpreter = Interpreter(
        model_content=model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def memfit_outputs(path: Path, *inputs: np.ndarray) -> list[np.ndarray]:
    graph = load(path)
    feeds = dict(zip((t.name for t in graph.inputs), inputs, strict=True))
    return list(run(graph, feeds).values())


def const(name: str, values: list | np.ndarray, dtype: str = "int32") -> T:
    data = np.asarray(values, dtype=dtype)
    return T(name, list(data.shape), dtype, data=data)


# ---- the shared models ---------------------------------------------------------------------


def test_graph_is_named_after_the_file_and_same_padding_becomes_explicit() -> None:
    graph = load_tflite(MODELS / "mlperf_tiny_kws_int8.tflite")
    assert graph.name == "mlperf_tiny_kws_int8"
    first = graph.ops[0]
    assert first.kind == "conv2d"
    # 49x10 input, 10x4 kernel, stride 2, SAME: 25x5 output, padding 9 rows (4 + 5), 2 columns.
    assert first.attrs["pads"] == (4, 1, 5, 1)
    assert first.attrs["strides"] == (2, 2)
    assert first.attrs["activation"] == "relu"
    weights = first.inputs[1]
    assert weights is not None and weights.data is not None and weights.dtype is DType.INT8
    assert weights.quant is not None and weights.quant.axis == 0 and len(weights.quant.scale) == 64
    reshape = next(op for op in graph.ops if op.kind == "reshape")
    assert len(reshape.inputs) == 1  # the shape operand is dropped: the output shape is static


def test_batch_dimension_left_dynamic_by_the_converter_defaults_to_the_file_shape() -> None:
    graph = load_tflite(MODELS / "mlperf_tiny_ad_int8.tflite")  # signature [-1, 640]
    assert graph.inputs[0].shape == (1, 640)


def test_dtln_lstm_maps_all_24_inputs_and_its_intermediates() -> None:
    graph = load_tflite(MODELS / "tflm_dtln_int8.tflite")
    lstm = [op for op in graph.ops if op.kind == "lstm"]
    assert len(lstm) == 2
    op = lstm[0]
    assert len(op.inputs) == 24
    absent = [i for i, t in enumerate(op.inputs) if t is None]
    assert absent == [9, 10, 11, 16, 17, 20, 21, 22, 23]  # no peepholes, projection, layer norm
    assert op.attrs["time_major"] is False
    assert op.attrs["activation"] == "tanh"
    assert op.attrs["asymmetric_quantize_inputs"] is False
    assert isinstance(op.attrs["cell_clip"], float) and isinstance(op.attrs["proj_clip"], float)
    intermediates = op.attrs["intermediates"]
    assert len(intermediates) == 5 and intermediates[:4] == (None, None, None, None)
    assert isinstance(intermediates[4], Quantization)
    hidden, cell = op.inputs[18], op.inputs[19]
    assert hidden is not None and cell is not None
    assert hidden.dtype is DType.INT8 and cell.dtype is DType.INT16
    # The state starts where TFLite Micro resets it: the zero point (real value 0).
    assert hidden.data is not None and (hidden.data == hidden.quant.zero_point[0]).all()
    assert op.output.shape == (1, 1, 128)


def test_float_lstm_attributes() -> None:
    graph = load_tflite(MODELS / "tflm_mnist_lstm_f32.tflite")
    (op,) = [op for op in graph.ops if op.kind == "lstm"]
    assert op.output.shape == (1, 28, 20)
    assert op.attrs["intermediates"] == ()
    assert op.inputs[18] is not None and op.inputs[18].data is not None


# ---- operator mapping against LiteRT (float) -----------------------------------------------


def test_convolution_chain_matches_litert(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(6, 3, 3, 4)).astype(np.float32)
    w2 = rng.normal(size=(1, 3, 3, 12)).astype(np.float32)
    tensors = [
        T("x", [1, 9, 9, 4], "float32"),
        const("pads", [[0, 0], [1, 0], [0, 1], [0, 0]]),
        T("padded", [1, 10, 10, 4], "float32"),
        T("w1", w1.shape, "float32", data=w1),
        const("b1", rng.normal(size=6), "float32"),
        T("c1", [1, 5, 5, 6], "float32"),
        T("w2", w2.shape, "float32", data=w2),
        const("b2", rng.normal(size=12), "float32"),
        T("c2", [1, 3, 3, 12], "float32"),
        T("p1", [1, 2, 2, 12], "float32"),
        T("p2", [1, 1, 1, 12], "float32"),
    ]
    ops = [
        Op("PAD", [0, 1], [2]),
        Op(
            "CONV_2D",
            [2, 3, 4],
            [5],
            "Conv2DOptions",
            {
                "Padding": 0,
                "StrideW": 2,
                "StrideH": 2,
                "FusedActivationFunction": 3,
                "DilationWFactor": 1,
                "DilationHFactor": 1,
            },
        ),
        Op(
            "DEPTHWISE_CONV_2D",
            [5, 6, 7],
            [8],
            "DepthwiseConv2DOptions",
            {
                "Padding": 1,
                "StrideW": 1,
                "StrideH": 1,
                "DepthMultiplier": 2,
                "DilationWFactor": 1,
                "DilationHFactor": 1,
            },
        ),
        Op(
            "MAX_POOL_2D",
            [8],
            [9],
            "Pool2DOptions",
            {"Padding": 0, "StrideW": 2, "StrideH": 2, "FilterWidth": 2, "FilterHeight": 2},
        ),
        Op(
            "AVERAGE_POOL_2D",
            [9],
            [10],
            "Pool2DOptions",
            {"Padding": 1, "StrideW": 1, "StrideH": 1, "FilterWidth": 2, "FilterHeight": 2},
        ),
    ]
    model = build(tensors, ops, [0], [10])
    x = rng.normal(size=(1, 9, 9, 4)).astype(np.float32)
    (expected,) = litert(model, x)
    (got,) = memfit_outputs(write(tmp_path, model), x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_shape_and_slicing_ops_match_litert(tmp_path: Path) -> None:
    """STRIDED_SLICE (masks, negative stride, shrink), SLICE, SQUEEZE, EXPAND_DIMS, TRANSPOSE,
    CONCATENATION, PACK, PADV2, MEAN, FULLY_CONNECTED keep_num_dims and activations."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    tensors = [
        T("x", [2, 6, 3], "float32"),  # 0
        const("begin", [0, -1, 0]),
        const("end", [0, 0, 3]),
        const("strides", [1, -2, 1]),  # 1-3
        T("sliced", [2, 3, 3], "float32"),  # 4: x[:, ::-2, :]
        const("perm", [1, 0, 2]),
        T("transposed", [3, 2, 3], "float32"),  # 5, 6
        T("expanded", [3, 1, 2, 3], "float32"),
        T("squeezed", [3, 2, 3], "float32"),  # 7, 8
        const("sbegin", [0, 1, 0]),
        const("ssize", [-1, 1, 2]),
        T("sl", [3, 1, 2], "float32"),
        const("axes", [1]),
        T("mean", [3, 3], "float32"),  # 12, 13
        T("packed", [2, 3, 3], "float32"),  # 14 = pack(mean, mean) on axis 0
        T("w", w.shape, "float32", data=w),
        T("fc", [3, 2, 5], "float32"),  # 15, 16
        T("cat", [3, 2, 8], "float32"),  # 17 = concat(fc, squeezed) axis 2
        const("pads", [[1, 0], [0, 0], [0, 1]]),
        const("pad_value", [-3.5], "float32"),  # 18, 19
        T("padded", [4, 2, 9], "float32"),  # 20
        T("act", [4, 2, 9], "float32"),  # 21
        const("sb", [0, 0]),
        const("se", [0, 2]),
        const("ss", [1, 1]),  # 22-24
        T("shrunk", [2], "float32"),  # 25: mean[0, 0:2] (shrink axis 0)
    ]
    ops = [
        Op(
            "STRIDED_SLICE",
            [0, 1, 2, 3],
            [4],
            "StridedSliceOptions",
            {"BeginMask": 0b001, "EndMask": 0b011},
        ),
        Op("TRANSPOSE", [4, 5], [6]),
        Op("EXPAND_DIMS", [6, 12], [7]),  # axis from the constant [1]
        Op("SQUEEZE", [7], [8], "SqueezeOptions", {"SqueezeDims": [1]}),
        Op("SLICE", [8, 9, 10], [11]),
        Op("MEAN", [8, 12], [13], "ReducerOptions", {"KeepDims": False}),
        Op("PACK", [13, 13], [14], "PackOptions", {"ValuesCount": 2, "Axis": 0}),
        Op("FULLY_CONNECTED", [8, 15, -1], [16], "FullyConnectedOptions", {"KeepNumDims": True}),
        Op("CONCATENATION", [16, 8], [17], "ConcatenationOptions", {"Axis": 2}),
        Op("PADV2", [17, 18, 19], [20]),
        Op("HARD_SWISH", [20], [21]),
        Op("STRIDED_SLICE", [13, 22, 23, 24], [25], "StridedSliceOptions", {"ShrinkAxisMask": 1}),
    ]
    model = build(tensors, ops, [0], [21, 11, 14, 25])
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    expected = litert(model, x)
    got = memfit_outputs(write(tmp_path, model), x)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_reshape_to_a_shape_computed_in_the_graph(tmp_path: Path) -> None:
    """The converter's SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chain: only the reshape stays."""
    tensors = [
        T("x", [2, 3, 4], "float32"),
        T("shape", [3], "int32"),
        const("b", [0]),
        const("e", [1]),
        const("s", [1]),
        T("batch", [], "int32"),
        const("minus_one", -1),
        T("target", [2], "int32"),
        T("y", [2, 12], "float32"),
    ]
    ops = [
        Op("SHAPE", [0], [1], "ShapeOptions", {"OutType": 2}),
        Op("STRIDED_SLICE", [1, 2, 3, 4], [5], "StridedSliceOptions", {"ShrinkAxisMask": 1}),
        Op("PACK", [5, 6], [7], "PackOptions", {"ValuesCount": 2, "Axis": 0}),
        Op("RESHAPE", [0, 7], [8]),
    ]
    model = build(tensors, ops, [0], [8])
    path = write(tmp_path, model)
    assert [op.kind for op in load(path).ops] == ["reshape"]
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(memfit_outputs(path, x)[0], litert(model, x)[0])


def test_strided_slice_parameters_shorter_than_the_rank(tmp_path: Path) -> None:
    """x[1:2, -2::-1] of a rank-3 input: the last axis is taken whole."""
    tensors = [
        T("x", [2, 5, 4], "float32"),
        const("begin", [1, -2]),
        const("end", [2, 0]),
        const("strides", [1, -1]),
        T("y", [1, 4, 4], "float32"),
    ]
    options = {"EndMask": 0b10}
    ops = [Op("STRIDED_SLICE", [0, 1, 2, 3], [4], "StridedSliceOptions", options)]
    model = build(tensors, ops, [0], [4])
    x = np.arange(40, dtype=np.float32).reshape(2, 5, 4)
    np.testing.assert_array_equal(memfit_outputs(write(tmp_path, model), x)[0], x[1:2, -2::-1])
    np.testing.assert_array_equal(litert(model, x)[0], x[1:2, -2::-1])


def test_concatenation_with_a_fused_activation_is_refused(tmp_path: Path) -> None:
    tensors = [T("a", [2], "float32"), T("b", [2], "float32"), T("y", [4], "float32")]
    options = {"Axis": 0, "FusedActivationFunction": 1}
    model = build(
        tensors, [Op("CONCATENATION", [0, 1], [2], "ConcatenationOptions", options)], [0, 1], [2]
    )
    with pytest.raises(UnsupportedOpError, match="CONCATENATION: a fused activation"):
        load(write(tmp_path, model))


@pytest.mark.parametrize(
    ("opcode", "options", "fields"),
    [
        ("ADD", "AddOptions", {"FusedActivationFunction": 1}),
        ("SUB", "SubOptions", {"FusedActivationFunction": 0}),
        ("MUL", "MulOptions", {"FusedActivationFunction": 3}),
        ("DIV", "DivOptions", {"FusedActivationFunction": 0}),
        ("MAXIMUM", None, {}),
        ("MINIMUM", None, {}),
    ],
)
def test_binary_ops_match_litert(
    tmp_path: Path, opcode: str, options: str | None, fields: dict
) -> None:
    tensors = [
        T("a", [2, 3, 4], "float32"),
        T("b", [1, 3, 1], "float32"),
        T("y", [2, 3, 4], "float32"),
    ]
    model = build(tensors, [Op(opcode, [0, 1], [2], options, fields)], [0, 1], [2])
    rng = np.random.default_rng(2)
    a = rng.normal(size=(2, 3, 4)).astype(np.float32)
    b = (rng.normal(size=(1, 3, 1)) + 3).astype(np.float32)
    (expected,) = litert(model, a, b)
    (got,) = memfit_outputs(write(tmp_path, model), a, b)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("opcode", "options", "fields"),
    [
        ("LOGISTIC", None, {}),
        ("TANH", None, {}),
        ("RELU", None, {}),
        ("RELU6", None, {}),
        ("RELU_N1_TO_1", None, {}),
        ("HARD_SWISH", None, {}),
        ("LEAKY_RELU", "LeakyReluOptions", {"Alpha": 0.2}),
        ("SOFTMAX", "SoftmaxOptions", {"Beta": 0.7}),
    ],
)
def test_unary_ops_match_litert(
    tmp_path: Path, opcode: str, options: str | None, fields: dict
) -> None:
    tensors = [T("x", [3, 7], "float32"), T("y", [3, 7], "float32")]
    model = build(tensors, [Op(opcode, [0], [1], options, fields)], [0], [1])
    x = (np.random.default_rng(3).normal(size=(3, 7)) * 4).astype(np.float32)
    (expected,) = litert(model, x)
    (got,) = memfit_outputs(write(tmp_path, model), x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_float16_weights_are_widened_and_their_dequantize_dropped(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    w = rng.normal(size=(4, 6)).astype(np.float16)
    tensors = [
        T("x", [2, 6], "float32"),
        T("w16", [4, 6], "float16", data=w),
        T("w", [4, 6], "float32"),
        T("y", [2, 4], "float32"),
    ]
    ops = [Op("DEQUANTIZE", [1], [2]), Op("FULLY_CONNECTED", [0, 2, -1], [3])]
    model = build(tensors, ops, [0], [3])
    path = write(tmp_path, model)
    assert [op.kind for op in load(path).ops] == ["fully_connected"]
    x = rng.normal(size=(2, 6)).astype(np.float32)
    np.testing.assert_allclose(memfit_outputs(path, x)[0], litert(model, x)[0], rtol=1e-5)


def test_quantize_dequantize_pipeline_matches_tflite_micro(tmp_path: Path) -> None:
    w = np.random.default_rng(5).integers(-127, 128, size=(3, 8)).astype(np.int8)
    tensors = [
        T("x", [2, 8], "float32"),
        T("xq", [2, 8], "int8", [0.05], [3]),
        T("w", [3, 8], "int8", [0.02], [0], w),
        T("yq", [2, 3], "int8", [0.1], [-4]),
        T("y", [2, 3], "float32"),
    ]
    ops = [
        Op("QUANTIZE", [0], [1]),
        Op("FULLY_CONNECTED", [1, 2, -1], [3]),
        Op("DEQUANTIZE", [3], [4]),
    ]
    model = build(tensors, ops, [0], [4])
    x = np.random.default_rng(6).normal(size=(2, 8)).astype(np.float32)
    interpreter = runtime.Interpreter.from_bytes(model, arena_size=1 << 20)
    interpreter.set_input(x, 0)
    interpreter.invoke()
    np.testing.assert_array_equal(
        memfit_outputs(write(tmp_path, model), x)[0], interpreter.get_output(0)
    )


# ---- shapes ---------------------------------------------------------------------------------


def _sequence_model(signature: list[int], shape: list[int]) -> bytes:
    w = np.ones((4, 40), np.float32)
    tensors = [
        T("x", shape, "float32", signature=signature),
        T("w", [4, 40], "float32", data=w),
        T("y", [*shape[:-1], 4], "float32", signature=[*signature[:-1], 4]),
    ]
    ops = [Op("FULLY_CONNECTED", [0, 1, -1], [2], "FullyConnectedOptions", {"KeepNumDims": True})]
    return build(tensors, ops, [0], [2])


def test_dynamic_dimension_asks_for_input_shape(tmp_path: Path) -> None:
    path = write(tmp_path, _sequence_model([-1, -1, 40], [1, 1, 40]))
    with pytest.raises(ShapeError, match=r"--input-shape x=1,1,40"):
        load(path)


def test_input_shapes_fix_dynamic_dimensions(tmp_path: Path) -> None:
    path = write(tmp_path, _sequence_model([-1, -1, 40], [1, 1, 40]))
    graph = load(path, {"x": (2, 5, 40)})
    assert graph.inputs[0].shape == (2, 5, 40)
    assert graph.outputs[0].shape == (2, 5, 4)
    x = np.ones((2, 5, 40), np.float32)
    np.testing.assert_allclose(run(graph, x)["y"], np.full((2, 5, 4), 40.0))


def test_zero_dimension_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(ShapeError, match="unknown or dynamic"):
        load(write(tmp_path, _sequence_model([1, 0, 40], [1, 0, 40])))


def test_input_shape_must_keep_fixed_dimensions(tmp_path: Path) -> None:
    path = write(tmp_path, _sequence_model([-1, -1, 40], [1, 1, 40]))
    with pytest.raises(ShapeError, match="keep the fixed ones"):
        load(path, {"x": (1, 5, 41)})
    with pytest.raises(UsageError, match="model's inputs are x"):
        load(path, {"input": (1, 5, 40)})


def test_declared_shape_that_disagrees_is_an_error(tmp_path: Path) -> None:
    tensors = [
        T("x", [1, 8], "float32"),
        T("w", [3, 8], "float32", data=np.ones((3, 8), np.float32)),
        T("y", [1, 4], "float32"),
    ]
    model = build(tensors, [Op("FULLY_CONNECTED", [0, 1, -1], [2])], [0], [2])
    with pytest.raises(ShapeError, match=r"#0 \(FULLY_CONNECTED\).*\[1, 3\].*\[1, 4\]"):
        load(write(tmp_path, model))


# ---- errors ---------------------------------------------------------------------------------


def test_truncated_file(tmp_path: Path) -> None:
    raw = (MODELS / "mlperf_tiny_kws_int8.tflite").read_bytes()
    for length in (len(raw) // 2, 4096, 64, 12):
        with pytest.raises(ModelFormatError, match="corrupt or truncated"):
            load(write(tmp_path, raw[:length], f"cut{length}"))


def test_random_bytes(tmp_path: Path) -> None:
    noise = np.random.default_rng(7).integers(0, 256, 5000).astype(np.uint8).tobytes()
    with pytest.raises(ModelFormatError, match="not a TFLite flatbuffer"):
        load(write(tmp_path, noise, "noise"))
    with pytest.raises(ModelFormatError):  # the identifier is right, the rest is noise
        load(write(tmp_path, noise[:4] + b"TFL3" + noise[8:], "noise_tfl3"))


def test_unsupported_ops_are_all_listed(tmp_path: Path) -> None:
    tensors = [
        T("x", [4], "float32"),
        T("e", [4], "float32"),
        T("r", [4], "float32"),
        T("y", [4], "float32"),
    ]
    ops = [Op("EXP", [0], [1]), Op("RELU", [1], [2]), Op("FLOOR", [2], [3])]
    with pytest.raises(UnsupportedOpError) as info:
        load(write(tmp_path, build(tensors, ops, [0], [3])))
    message = str(info.value)
    assert "2 operator(s)" in message
    assert "EXP (node '#0 (e)')" in message and "FLOOR (node '#2 (y)')" in message
    assert "RELU" not in message.split("Supported")[0]


def test_patched_opcode_in_a_shared_model_is_refused(tmp_path: Path) -> None:
    """Turn the SOFTMAX of a real model into an op memfit does not know, in a copy of its bytes."""
    import tflite

    raw = bytearray((MODELS / "mlperf_tiny_kws_int8.tflite").read_bytes())
    model = tflite.Model.GetRootAsModel(raw, 0)
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if code.BuiltinCode() == tflite.BuiltinOperator.SOFTMAX:
            table = code._tab
            for slot, value in ((4, tflite.BuiltinOperator.LOG_SOFTMAX),):
                offset = table.Offset(slot)
                assert offset
                raw[table.Pos + offset] = value  # deprecated_builtin_code (int8)
            offset = table.Offset(10)  # builtin_code (int32)
            if offset:
                raw[table.Pos + offset : table.Pos + offset + 4] = int(
                    tflite.BuiltinOperator.LOG_SOFTMAX
                ).to_bytes(4, "little")
    with pytest.raises(UnsupportedOpError, match=r"LOG_SOFTMAX \(node '#12 \("):
        load(write(tmp_path, bytes(raw)))


def test_unsupported_tensor_type(tmp_path: Path) -> None:
    tensors = [T("x", [4], "float64"), T("y", [4], "float64")]
    model = build(tensors, [Op("RELU", [0], [1])], [0], [1])
    with pytest.raises(UnsupportedModelError, match="'x' has type FLOAT64"):
        load(write(tmp_path, model))


def test_several_subgraphs(tmp_path: Path) -> None:
    tensors = [T("x", [4], "float32"), T("y", [4], "float32")]
    model = build(tensors, [Op("RELU", [0], [1])], [0], [1], subgraphs=2)
    with pytest.raises(UnsupportedModelError, match="2 subgraphs"):
        load(write(tmp_path, model))


def test_quantized_ops_without_integer_kernels_are_refused(tmp_path: Path) -> None:
    q = {"scale": [0.1], "zero_point": [0]}
    tensors = [T("a", [4], "int8", **q), T("b", [4], "int8", **q), T("y", [4], "int8", **q)]
    with pytest.raises(UnsupportedOpError, match="div on quantized int8"):
        load(write(tmp_path, build(tensors, [Op("DIV", [0, 1], [2])], [0, 1], [2])))
    tensors16 = [T("a", [4], "int16", **q), T("b", [4], "int16", **q), T("y", [4], "int16", **q)]
    with pytest.raises(UnsupportedOpError, match="re-quantize the model to int8"):
        load(write(tmp_path, build(tensors16, [Op("ADD", [0, 1], [2])], [0, 1], [2]), "add16"))
