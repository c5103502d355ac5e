"""int8 kernels against hand-computed fixed-point cases and TFLite Micro, op by op.

Each TFLite Micro comparison builds a one-op .tflite model (tests/tflite_builder.py), runs it
in the interpreter and in memfit, and requires identical outputs. Elementwise ops get all 256
int8 inputs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite_micro.python.tflite_micro import runtime

from memfit.api import load, run
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Quantization
from memfit.ir.dtypes import DType
from memfit.runtime.kernels import fixedpoint as fp
from tests.tflite_builder import Operator as Op
from tests.tflite_builder import T, binary, build, unary

ALL_INT8 = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)


def tflm(model: bytes, *inputs: np.ndarray) -> np.ndarray:
    interpreter = runtime.Interpreter.from_bytes(model, arena_size=1 << 22)
    for i, x in enumerate(inputs):
        interpreter.set_input(x, i)
    interpreter.invoke()
    return interpreter.get_output(0)


def memfit(model: bytes, tmp_path: Path, *inputs: np.ndarray) -> np.ndarray:
    path = tmp_path / "model.tflite"
    path.write_bytes(model)
    graph = load(path)
    return next(
        iter(run(graph, dict(zip((t.name for t in graph.inputs), inputs, strict=True))).values())
    )


def assert_same_as_tflm(model: bytes, tmp_path: Path, *inputs: np.ndarray) -> np.ndarray:
    expected = tflm(model, *inputs)
    got = memfit(model, tmp_path, *inputs)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    return got


def q(scale: float, zero_point: int = 0, dtype: str = "int8") -> dict:
    return {"dtype": dtype, "scale": [scale], "zero_point": [zero_point]}


def random_int8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-128, 128, size=shape).astype(np.int8)


# ---- fixed-point helpers, by hand ----------------------------------------------------------


@pytest.mark.parametrize(
    ("real", "expected"),
    [
        (0.0, (0, 0)),
        (0.5, (1 << 30, 0)),
        (0.25, (1 << 30, -1)),
        (1.0, (1 << 30, 1)),
        (3.0, (3 << 29, 2)),
        (0.375, (3 << 29, -1)),
        (1 - 2**-40, (1 << 30, 1)),  # the significand rounds up to 2**31: halve it, shift + 1
        (2**-40, (0, 0)),  # below 2**-31: flushed to zero
    ],
)
def test_quantize_multiplier(real: float, expected: tuple[int, int]) -> None:
    assert fp.quantize_multiplier(real) == expected


def test_round_half_away_is_exact() -> None:
    assert [fp.round_half_away(v) for v in (2.5, -2.5, 1.4999999999999998, -0.5, 0.5)] == [
        3,
        -3,
        1,
        -1,
        1,
    ]
    assert fp.round_half_away(0.49999999999999994) == 0  # x + 0.5 would round up to 1.0


def test_saturating_rounding_doubling_high_mul() -> None:
    half = 1 << 30  # 0.5 in Q0.31
    got = fp.saturating_rounding_doubling_high_mul(np.array([1, -1, 3, -3, half]), half)
    # 0.5 -> 1 and 1.5 -> 2 round up; -0.5 -> 0 and -1.5 -> -1 round toward zero.
    assert got.tolist() == [1, 0, 2, -1, 1 << 29]
    assert fp.saturating_rounding_doubling_high_mul(fp.INT32_MIN, fp.INT32_MIN) == fp.INT32_MAX


def test_rounding_divide_by_power_of_two() -> None:
    got = fp.rounding_divide_by_pot(np.array([5, -5, 4, -4, 7, 6, -6]), 1)
    assert got.tolist() == [3, -3, 2, -2, 4, 3, -3]
    assert fp.rounding_divide_by_pot(np.array([6, -6, 7, -7]), 2).tolist() == [2, -2, 2, -2]


def test_multiply_by_quantized_multiplier_rounds_twice() -> None:
    multiplier, shift = fp.quantize_multiplier(0.375)
    # 1 * 0.375: the high multiply gives 1.25 -> 1, the shift 0.5 -> 1 (one rounding gives 0).
    assert fp.multiply_by_quantized_multiplier(np.array([1]), multiplier, shift).tolist() == [1]
    m, s = fp.quantize_multiplier(0.3)
    assert fp.multiply_by_quantized_multiplier(np.array([100, -100]), m, s).tolist() == [30, -30]
    m, s = fp.quantize_multiplier(3.0)  # a left shift
    assert fp.multiply_by_quantized_multiplier(np.array([7, -7]), m, s).tolist() == [21, -21]


def test_fixed_point_functions_approximate_their_reals() -> None:
    a = np.array([0, -(1 << 26), -(3 << 25), -(31 << 26)])  # 0, -1, -1.5, -31 in Q5.26
    exp = fp.exp_on_negative_values(a, 5) / 2**31
    np.testing.assert_allclose(exp, np.exp([0, -1, -1.5, -31]), atol=1e-6)
    x = np.array([0, 1 << 27, -(1 << 27), 5 << 27])  # 0, 1, -1, 5 in Q4.27
    np.testing.assert_allclose(
        fp.logistic(x, 4) / 2**31, 1 / (1 + np.exp([0, -1, 1, -5])), atol=1e-6
    )
    np.testing.assert_allclose(fp.tanh(x, 4) / 2**31, np.tanh([0, 1, -1, 5]), atol=1e-6)
    assert fp.logistic(np.array([0]), 4)[0] == 1 << 30


def test_gemmlowp_constants() -> None:
    assert fp.constant(math.exp(-0.125)) == 1895147668
    assert fp.constant(48 / 17, 2) == 1515870810
    assert fp.constant(math.exp(-16)) == 242


# ---- elementwise ops against TFLite Micro --------------------------------------------------


def test_double_rounding_matches_tflm(tmp_path: Path) -> None:
    """Requantizing by 0.375 separates double from single rounding: pins the variant."""
    model = unary("QUANTIZE", [1, 256], q(0.375, 0), q(1.0, 0))
    got = assert_same_as_tflm(model, tmp_path, ALL_INT8)
    assert got[0, 128 + 1] == 1  # 0.375 rounds to 1 with double rounding


def test_quantize_float_rounds_halves_away(tmp_path: Path) -> None:
    below_half = np.nextafter(np.float32(0.5), np.float32(0))
    x = np.array([[below_half, -below_half, 1.5, -1.5, 2.5, -2.5, 300.0, -300.0]], np.float32)
    model = unary("QUANTIZE", [1, 8], {"dtype": "float32"}, q(1.0, 0))
    got = assert_same_as_tflm(model, tmp_path, x)
    assert got.tolist() == [[0, 0, 2, -2, 3, -3, 127, -128]]


@pytest.mark.parametrize(
    ("scale", "zero_point"), [(0.1, 0), (0.0387, -2), (0.3, 25), (0.011, -128)]
)
def test_logistic(tmp_path: Path, scale: float, zero_point: int) -> None:
    model = unary("LOGISTIC", [1, 256], q(scale, zero_point), q(1 / 256, -128))
    assert_same_as_tflm(model, tmp_path, ALL_INT8)


@pytest.mark.parametrize(("scale", "zero_point"), [(0.1, 0), (0.05, -7), (0.4, 30)])
def test_tanh(tmp_path: Path, scale: float, zero_point: int) -> None:
    model = unary("TANH", [1, 256], q(scale, zero_point), q(1 / 128, 0))
    assert_same_as_tflm(model, tmp_path, ALL_INT8)


@pytest.mark.parametrize(
    ("in_q", "out_q"),
    [((0.05, 3), (0.04, -100)), ((0.2, -10), (0.1, -60)), ((0.004, 0), (0.003, -120))],
)
def test_hard_swish(tmp_path: Path, in_q: tuple, out_q: tuple) -> None:
    model = unary("HARD_SWISH", [1, 256], q(*in_q), q(*out_q))
    assert_same_as_tflm(model, tmp_path, ALL_INT8)


@pytest.mark.parametrize("alpha", [0.1, 0.01, 0.3])
def test_leaky_relu(tmp_path: Path, alpha: float) -> None:
    model = unary(
        "LEAKY_RELU", [1, 256], q(0.05, 10), q(0.03, -50), "LeakyReluOptions", Alpha=alpha
    )
    assert_same_as_tflm(model, tmp_path, ALL_INT8)


@pytest.mark.parametrize("opcode", ["RELU", "RELU6"])
def test_relu(tmp_path: Path, opcode: str) -> None:
    model = unary(opcode, [1, 256], q(0.05, -20), q(0.025, -128))
    assert_same_as_tflm(model, tmp_path, ALL_INT8)


def test_relu_n1_to_1_matches_litert(tmp_path: Path) -> None:
    """TFLite Micro has no int8 RELU_N1_TO_1: LiteRT's builtin kernel is the reference."""
    model = unary("RELU_N1_TO_1", [1, 256], q(0.02, -20), q(0.01, 3))
    interpreter = Interpreter(
        model_content=model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], ALL_INT8)
    interpreter.invoke()
    expected = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(memfit(model, tmp_path, ALL_INT8), expected)


@pytest.mark.parametrize(
    ("in_q", "out_dtype", "beta"),
    [((0.1, 5), "int8", 1.0), ((0.5, -10), "int8", 0.5), ((0.03, 0), "int16", 1.0)],
)
def test_softmax(tmp_path: Path, in_q: tuple, out_dtype: str, beta: float) -> None:
    out = q(1 / 256, -128) if out_dtype == "int8" else q(1 / 65536, -32768, "int16")
    model = unary("SOFTMAX", [6, 10], q(*in_q), out, "SoftmaxOptions", Beta=beta)
    x = random_int8(np.random.default_rng(0), (6, 10))
    x[0] = 127  # ties
    x[1, :5] = -128  # differences beyond the exp range
    assert_same_as_tflm(model, tmp_path, x)


# ---- binary ops ----------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("activation", [0, 1, 3])  # none, relu, relu6
def test_binary(tmp_path: Path, opcode: str, activation: int) -> None:
    options = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[opcode]
    shapes = ([2, 4, 4, 8], [2, 4, 4, 8], [2, 4, 4, 8])
    model = binary(
        opcode,
        shapes,
        q(0.07, -3),
        q(0.031, 12),
        q(0.09, -40),
        options,
        FusedActivationFunction=activation,
    )
    rng = np.random.default_rng(activation)
    assert_same_as_tflm(
        model, tmp_path, random_int8(rng, (2, 4, 4, 8)), random_int8(rng, (2, 4, 4, 8))
    )


@pytest.mark.parametrize("opcode", ["ADD", "SUB", "MUL"])
def test_binary_broadcast(tmp_path: Path, opcode: str) -> None:
    options = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[opcode]
    model = binary(
        opcode,
        ([1, 3, 5, 4], [1, 1, 5, 1], [1, 3, 5, 4]),
        q(0.2, 0),
        q(0.05, -1),
        q(0.1, 2),
        options,
    )
    rng = np.random.default_rng(1)
    assert_same_as_tflm(
        model, tmp_path, random_int8(rng, (1, 3, 5, 4)), random_int8(rng, (1, 1, 5, 1))
    )


# ---- reductions and pooling ----------------------------------------------------------------


def _mean_model(shape: list, axes: list, out_shape: list, keep_dims: bool, out_q: dict) -> bytes:
    tensors = [
        T("x", shape, **q(0.06, -9)),
        T("axes", [len(axes)], "int32", data=np.array(axes, np.int32)),
        T("y", out_shape, **out_q),
    ]
    ops = [Op("MEAN", [0, 1], [2], "ReducerOptions", {"KeepDims": keep_dims})]
    return build(tensors, ops, [0], [2])


@pytest.mark.parametrize(
    ("shape", "axes", "out_shape", "keep_dims", "out_q"),
    [
        ([1, 7, 7, 16], [1, 2], [1, 1, 1, 16], True, q(0.06, -9)),  # special path, same params
        ([1, 7, 7, 16], [1, 2], [1, 1, 1, 16], True, q(0.02, 5)),  # special path, rescaled
        ([1, 7, 7, 16], [1, 2], [1, 16], False, q(0.06, -9)),  # general, same params: divide
        ([1, 7, 7, 16], [1, 2], [1, 16], False, q(0.02, 5)),  # general, rescaled
        ([2, 5, 6], [-1], [2, 5], False, q(0.05, 3)),
        ([2, 5, 6], [1], [2, 1, 6], True, q(0.06, -9)),
    ],
)
def test_mean(
    tmp_path: Path, shape: list, axes: list, out_shape: list, keep_dims: bool, out_q: dict
) -> None:
    model = _mean_model(shape, axes, out_shape, keep_dims, out_q)
    assert_same_as_tflm(model, tmp_path, random_int8(np.random.default_rng(2), tuple(shape)))


@pytest.mark.parametrize("opcode", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("padding", [0, 1])  # SAME, VALID
def test_pool(tmp_path: Path, opcode: str, padding: int) -> None:
    out_shape = [1, 4, 3, 5] if padding == 0 else [1, 3, 2, 5]
    model = unary(
        opcode,
        [1, 7, 6, 5],
        q(0.1, -4),
        {**q(0.1, -4), "shape": out_shape},
        "Pool2DOptions",
        Padding=padding,
        StrideW=2,
        StrideH=2,
        FilterWidth=3,
        FilterHeight=3,
        FusedActivationFunction=1,
    )
    assert_same_as_tflm(model, tmp_path, random_int8(np.random.default_rng(3), (1, 7, 6, 5)))


# ---- convolutions and dense layers ---------------------------------------------------------


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-127, 128, size=shape).astype(np.int8)


@pytest.mark.parametrize(
    ("stride", "dilation", "padding", "in_channels"),
    [(1, 1, 0, 3), (2, 1, 0, 4), (1, 2, 1, 3), (2, 1, 1, 6)],
)
def test_conv2d(tmp_path: Path, stride: int, dilation: int, padding: int, in_channels: int) -> None:
    rng = np.random.default_rng(stride * 10 + dilation)
    groups = 2 if in_channels == 6 else 1
    out_channels, hw = 8, 9
    w = _weights(rng, (out_channels, 3, 3, in_channels // groups))
    w_scales = rng.uniform(0.001, 0.01, out_channels).tolist()
    bias = rng.integers(-2000, 2000, out_channels).astype(np.int32)
    size = (hw + stride - 1) // stride if padding == 0 else (hw - 2 * dilation - 1) // stride + 1
    tensors = [
        T("x", [1, hw, hw, in_channels], **q(0.05, -7)),
        T("w", w.shape, "int8", w_scales, [0] * out_channels, w, axis=0),
        T("b", [out_channels], "int32", [0.05 * s for s in w_scales], [0] * out_channels, bias),
        T("y", [1, size, size, out_channels], **q(0.08, 11)),
    ]
    options = {
        "Padding": padding,
        "StrideW": stride,
        "StrideH": stride,
        "DilationWFactor": dilation,
        "DilationHFactor": dilation,
        "FusedActivationFunction": 3,
    }
    model = build(tensors, [Op("CONV_2D", [0, 1, 2], [3], "Conv2DOptions", options)], [0], [3])
    assert_same_as_tflm(model, tmp_path, random_int8(rng, (1, hw, hw, in_channels)))


@pytest.mark.parametrize(
    ("multiplier", "stride", "padding", "dilation"),
    [(1, 1, 0, 1), (2, 2, 0, 1), (3, 1, 1, 1), (1, 1, 0, 2)],
)
def test_depthwise_conv2d(
    tmp_path: Path, multiplier: int, stride: int, padding: int, dilation: int
) -> None:
    rng = np.random.default_rng(multiplier)
    channels, hw = 4, 8
    out_channels = channels * multiplier
    w = _weights(rng, (1, 3, 3, out_channels))
    w_scales = rng.uniform(0.002, 0.02, out_channels).tolist()
    bias = rng.integers(-500, 500, out_channels).astype(np.int32)
    size = (hw + stride - 1) // stride if padding == 0 else (hw - 3) // stride + 1
    tensors = [
        T("x", [1, hw, hw, channels], **q(0.04, 20)),
        T("w", w.shape, "int8", w_scales, [0] * out_channels, w, axis=3),
        T("b", [out_channels], "int32", [0.04 * s for s in w_scales], [0] * out_channels, bias),
        T("y", [1, size, size, out_channels], **q(0.06, -3)),
    ]
    options = {
        "Padding": padding,
        "StrideW": stride,
        "StrideH": stride,
        "DepthMultiplier": multiplier,
        "FusedActivationFunction": 1,
        "DilationWFactor": dilation,
        "DilationHFactor": dilation,
    }
    ops = [Op("DEPTHWISE_CONV_2D", [0, 1, 2], [3], "DepthwiseConv2DOptions", options)]
    assert_same_as_tflm(
        build(tensors, ops, [0], [3]), tmp_path, random_int8(rng, (1, hw, hw, channels))
    )


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("keep_num_dims", [False, True])
def test_fully_connected(tmp_path: Path, per_channel: bool, keep_num_dims: bool) -> None:
    rng = np.random.default_rng(4)
    units, depth = 10, 24
    w = _weights(rng, (units, depth))
    w_scales = rng.uniform(0.001, 0.01, units).tolist() if per_channel else [0.0041]
    bias_scales = [0.07 * s for s in w_scales]
    out_shape = [2, 3, units] if keep_num_dims else [6, units]
    tensors = [
        T("x", [2, 3, depth], **q(0.07, 4)),
        T("w", w.shape, "int8", w_scales, [0] * len(w_scales), w, axis=0),
        T("b", [units], "int32", bias_scales, [0] * len(w_scales), rng.integers(-999, 999, units)),
        T("y", out_shape, **q(0.2, -5)),
    ]
    options = {"KeepNumDims": keep_num_dims, "FusedActivationFunction": 0}
    ops = [Op("FULLY_CONNECTED", [0, 1, 2], [3], "FullyConnectedOptions", options)]
    assert_same_as_tflm(build(tensors, ops, [0], [3]), tmp_path, random_int8(rng, (2, 3, depth)))


# ---- data movement with quantization -------------------------------------------------------


def test_concatenation_with_equal_parameters_is_a_copy(tmp_path: Path) -> None:
    tensors = [
        T("a", [1, 2, 2, 3], **q(0.1, 2)),
        T("b", [1, 2, 2, 5], **q(0.1, 2)),
        T("y", [1, 2, 2, 8], **q(0.1, 2)),
    ]
    ops = [Op("CONCATENATION", [0, 1], [2], "ConcatenationOptions", {"Axis": 3})]
    rng = np.random.default_rng(5)
    assert_same_as_tflm(
        build(tensors, ops, [0, 1], [2]),
        tmp_path,
        random_int8(rng, (1, 2, 2, 3)),
        random_int8(rng, (1, 2, 2, 5)),
    )


def test_concatenation_requantizes_inputs_with_other_parameters(tmp_path: Path) -> None:
    """memfit requantizes like a QUANTIZE op would; TFLite Micro itself only copies bytes."""
    concat = [
        T("a", [1, 4], **q(0.3, -10)),
        T("b", [1, 3], **q(0.1, 2)),
        T("y", [1, 7], **q(0.1, 2)),
    ]
    model = build(
        concat, [Op("CONCATENATION", [0, 1], [2], "ConcatenationOptions", {"Axis": 1})], [0, 1], [2]
    )
    # The reference: TFLite Micro's QUANTIZE of input a to the output's parameters.
    requant = unary("QUANTIZE", [1, 4], q(0.3, -10), q(0.1, 2))
    a = np.array([[-128, -10, 0, 127]], np.int8)
    b = np.array([[5, -6, 7]], np.int8)
    got = memfit(model, tmp_path, a, b)
    np.testing.assert_array_equal(got, np.concatenate([tflm(requant, a), b], axis=1))


def test_pad_uses_the_zero_point(tmp_path: Path) -> None:
    tensors = [
        T("x", [1, 2, 3, 2], **q(0.1, 7)),
        T("p", [4, 2], "int32", data=np.array([[0, 0], [1, 2], [2, 0], [0, 1]], np.int32)),
        T("y", [1, 5, 5, 3], **q(0.1, 7)),
    ]
    model = build(tensors, [Op("PAD", [0, 1], [2])], [0], [2])
    assert_same_as_tflm(model, tmp_path, random_int8(np.random.default_rng(6), (1, 2, 3, 2)))


@pytest.mark.parametrize(("include_pad", "expected"), [(False, 10), (True, 4)])
def test_avg_pool_count_include_pad(include_pad: bool, expected: int) -> None:
    """TFLite never counts padding; an imported ONNX pool may ask to (40 / 9 rounds to 4)."""
    quant = Quantization((0.1,), (0,))
    b = GraphBuilder()
    x = b.input("x", (1, 2, 2, 1), DType.INT8, quant)
    attrs = {
        "kernel": (3, 3),
        "strides": (1, 1),
        "pads": (1, 1, 1, 1),
        "activation": "none",
        "count_include_pad": include_pad,
    }
    graph = b.output(b.op("avg_pool2d", [x], attrs, quant=quant))
    (out,) = run(graph, np.full((1, 2, 2, 1), 10, np.int8)).values()
    assert (out == expected).all()
