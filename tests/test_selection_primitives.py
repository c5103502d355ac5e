"""The convolution primitives of mf_primitives.c and mf_primitives_s8.c against memfit's NumPy
kernels.

The primitives and layout conversions are compiled once into a shared library (the generated
Makefile's flags and -Wall -Wextra -Werror) and called through ctypes on random layers of many
shapes (stride, padding, dilation, groups, odd sizes), in NHWC (also with inputs and outputs
that are channel slices of wider pixels, like concatenation slices) and NCHW. float32 layers
match within a tight tolerance; int8 layers (per-channel weight scales, nonzero input zero
points, int32 bias, fused activations) match bit for bit. The workspace is filled with a canary
first, twice with two canaries (an int8 primitive may write the canary's value): the bytes the
primitive touches must be exactly the formula's.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from memfit.codegen import params
from memfit.codegen.program import CFLAGS
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Op, Quantization
from memfit.ir.dtypes import DType
from memfit.runtime.kernels import run_kernel
from memfit.selection import primitives
from memfit.selection.primitives import NCHW, NHWC, Choice

RUNTIME = Path(params.__file__).resolve().parent / "runtime"
CANARIES = (0xA5, 0x5A)
POISON = np.float32(-7.25e11)
POISON_S8 = np.int8(77)


class MfPrimConv(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_int32)
        for name in (*primitives.Geometry.__dataclass_fields__, "x_pixel_stride", "y_pixel_stride")
    ]


class MfRangeF32(ctypes.Structure):
    _fields_ = [("min", ctypes.c_float), ("max", ctypes.c_float), ("fn", ctypes.c_int32)]


class MfRangeS8(ctypes.Structure):
    _fields_ = [("min", ctypes.c_int32), ("max", ctypes.c_int32)]


class MfRequantS8(ctypes.Structure):
    _fields_ = [
        ("input_offset", ctypes.c_int32),
        ("weights_offset", ctypes.c_int32),
        ("output_offset", ctypes.c_int32),
        ("act", MfRangeS8),
        ("multiplier", ctypes.c_void_p),
        ("shift", ctypes.c_void_p),
    ]


def quantization_struct(op: Op) -> tuple[ctypes.Structure, tuple[np.ndarray, ...]]:
    """The op's mf_requant_s8 or mf_range_f32, and the arrays it points into (keep them)."""
    if primitives.layer_dtype(op) is not DType.INT8:
        act = params.float_activation(op)
        return MfRangeF32(act.min, act.max, act.fn), ()
    r = params.requant(op)
    multiplier = np.ascontiguousarray(r.multiplier, np.int32)
    shift = np.ascontiguousarray(r.shift, np.int32)
    struct = MfRequantS8(
        r.input_offset,
        r.weights_offset,
        r.output_offset,
        MfRangeS8(r.act.min, r.act.max),
        multiplier.ctypes.data,
        shift.ctypes.data,
    )
    return struct, (multiplier, shift)


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("primitives") / "libprimitives.so"
    sources = [str(RUNTIME / f) for f in ("mf_primitives.c", "mf_primitives_s8.c", "mf_layout.c")]
    flags = [*CFLAGS, "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared"]
    result = subprocess.run(
        ["cc", *flags, f"-I{RUNTIME}", "-o", str(out), *sources, "-lm"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(out))


def ptr(a: np.ndarray | None) -> ctypes.c_void_p | None:
    return None if a is None else ctypes.c_void_p(a.ctypes.data)


# (n, h, w, cin, cout, kh, kw, stride, dilation, pads (t, l, b, r), groups)
CASES = [
    (1, 9, 11, 3, 5, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (2, 8, 7, 4, 37, 3, 3, (1, 1), (1, 1), (0, 1, 2, 0), 1),
    (1, 7, 6, 5, 40, 3, 3, (1, 1), (1, 1), (0, 0, 0, 0), 1),
    (2, 8, 7, 4, 37, 3, 2, (2, 1), (1, 1), (0, 1, 1, 0), 1),
    (1, 12, 10, 6, 9, 3, 3, (1, 2), (2, 3), (2, 3, 2, 1), 3),
    (1, 12, 10, 6, 9, 3, 3, (1, 1), (2, 1), (2, 1, 2, 1), 3),
    (1, 7, 7, 16, 70, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),
    (2, 5, 3, 8, 12, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 4),
    (1, 10, 9, 8, 8, 5, 4, (3, 2), (1, 1), (2, 1, 2, 2), 2),
    (1, 5, 6, 33, 64, 1, 1, (2, 2), (1, 1), (0, 0, 0, 0), 1),
    (3, 4, 4, 2, 3, 2, 2, (1, 1), (1, 1), (1, 1, 0, 0), 1),
    (1, 13, 17, 7, 11, 5, 5, (1, 1), (1, 1), (2, 2, 2, 2), 1),
    # one output channel (an FDT partition): int8 direct sums a kernel row as one run
    (1, 13, 11, 1, 1, 10, 8, (2, 2), (1, 1), (4, 3, 5, 4), 1),
    (2, 9, 8, 6, 1, 3, 3, (1, 1), (2, 1), (2, 1, 2, 1), 1),
    (1, 12, 10, 4, 1, 3, 3, (1, 1), (1, 2), (1, 2, 1, 2), 1),
]

DEPTHWISE_CASES = [
    (1, 9, 11, 5, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),
    (2, 8, 7, 4, 3, 3, 2, (2, 1), (2, 1), (0, 2, 1, 0)),
    (1, 6, 6, 16, 1, 5, 5, (2, 2), (1, 1), (2, 2, 2, 2)),
]


def conv_op(case: tuple, activation: str, rng: np.random.Generator) -> Op:
    n, h, w, cin, cout, kh, kw, stride, dilation, pads, groups = case
    b = GraphBuilder()
    x = b.input("x", (n, h, w, cin))
    weights = b.constant("w", rng.standard_normal((cout, kh, kw, cin // groups)).astype("f4"))
    bias = b.constant("b", rng.standard_normal(cout).astype(np.float32))
    attrs = {"strides": stride, "dilations": dilation, "pads": pads, "groups": groups}
    b.op("conv2d", [x, weights, bias], {**attrs, "activation": activation})
    return b.graph.ops[-1]


def depthwise_op(case: tuple, rng: np.random.Generator) -> Op:
    n, h, w, c, multiplier, kh, kw, stride, dilation, pads = case
    b = GraphBuilder()
    x = b.input("x", (n, h, w, c))
    weights = b.constant("w", rng.standard_normal((1, kh, kw, c * multiplier)).astype("f4"))
    bias = b.constant("b", rng.standard_normal(c * multiplier).astype(np.float32))
    attrs = {"strides": stride, "dilations": dilation, "pads": pads, "depth_multiplier": multiplier}
    b.op("depthwise_conv2d", [x, weights, bias], {**attrs, "activation": "relu"})
    return b.graph.ops[-1]


def run_primitive(
    lib: ctypes.CDLL, op: Op, choice: Choice, x: np.ndarray, slack: int, canary: int
) -> tuple[np.ndarray, int]:
    """(output NHWC, workspace bytes touched, as the last byte that is not ``canary``). NHWC
    pixels get ``slack`` extra elements on both sides (input and output), like concatenation
    slices; the output's must stay poisoned."""
    g = primitives.geometry(op)
    int8 = primitives.layer_dtype(op) is DType.INT8
    poison, dtype = (POISON_S8, np.int8) if int8 else (POISON, np.float32)
    out_shape = op.output.shape
    if choice.layout == NCHW:
        xin = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        y = np.full((out_shape[0], out_shape[3], out_shape[1], out_shape[2]), poison, dtype)
        x_stride, y_stride = g.c, g.m
    else:
        wide = np.full((*x.shape[:3], g.c + 2 * slack), poison, dtype)
        wide[..., slack : slack + g.c] = x
        xin = wide[..., slack:]
        y = np.full((*out_shape[:3], g.m + 2 * slack), poison, dtype)
        x_stride, y_stride = g.c + 2 * slack, g.m + 2 * slack
    size = primitives.workspace_bytes(op, choice)
    workspace = np.full(size + 64, canary, np.uint8)
    geometry = MfPrimConv(*vars(g).values(), x_stride, y_stride)
    quantization, _arrays = quantization_struct(op)
    name = primitives.PRIMITIVES[choice.primitive].c_function(choice.layout, int8)
    function = getattr(lib, name)
    function.restype = None
    weights = primitives.arrange_weights(op, choice)
    assert weights.dtype == dtype
    function(
        ptr(xin),
        ptr(weights),
        ptr(op.input(2).data),  # type: ignore[union-attr]
        ctypes.c_void_p(y.ctypes.data + (slack * y.itemsize if choice.layout == NHWC else 0)),
        ctypes.byref(geometry),
        ctypes.byref(quantization),
        ptr(workspace),
    )
    touched = np.flatnonzero(workspace != canary)
    extent = int(touched[-1]) + 1 if touched.size else 0
    if choice.layout == NCHW:
        return y.transpose(0, 2, 3, 1), extent
    outside = np.ones(y.shape, bool)
    outside[..., slack : slack + g.m] = False
    assert (y[outside] == poison).all(), f"{choice.label} wrote outside its output slice"
    return y[..., slack : slack + g.m], extent


def check(lib: ctypes.CDLL, op: Op, rng: np.random.Generator) -> list[Choice]:
    """Every non-default choice of ``op`` against the NumPy kernel; returns them."""
    xt = op.inputs[0]
    assert xt is not None
    int8 = primitives.layer_dtype(op) is DType.INT8
    if int8:
        x = rng.integers(-128, 128, xt.shape).astype(np.int8)
    else:
        x = rng.standard_normal(xt.shape).astype(np.float32)
    want = run_kernel(op, [x, op.input(1).data, op.input(2).data])[0]  # type: ignore[union-attr]
    tested = [c for c in primitives.choices(op) if c.primitive != "default"]
    assert tested
    for choice in tested:
        runs = [run_primitive(lib, op, choice, x, 3, canary) for canary in CANARIES]
        got, extent = runs[0][0], max(e for _, e in runs)
        if int8:
            np.testing.assert_array_equal(got, want, err_msg=f"{choice.label} on {op.attrs}")
        else:
            scale = max(float(np.abs(want).max()), 1e-30)
            np.testing.assert_allclose(
                got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=f"{choice.label} on {op.attrs}"
            )
        assert extent == primitives.workspace_bytes(op, choice), choice.label
    return tested


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("activation", ["none", "relu6"])
def test_conv_primitives_match_numpy(lib: ctypes.CDLL, case: tuple, activation: str) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((case, activation)).encode()))
    check(lib, conv_op(case, activation, rng), rng)


@pytest.mark.parametrize("case", DEPTHWISE_CASES)
def test_depthwise_primitive_matches_numpy(lib: ctypes.CDLL, case: tuple) -> None:
    rng = np.random.default_rng(7)
    check(lib, depthwise_op(case, rng), rng)


def test_random_layers(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(2005)
    for _ in range(12):
        groups = int(rng.choice([1, 1, 2]))
        k = int(rng.integers(1, 6))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pads = tuple(int(v) for v in rng.integers(0, k, 4))
        case = (
            int(rng.integers(1, 3)), int(rng.integers(k, 12)), int(rng.integers(k, 12)),
            2 * int(rng.integers(1, 5)), 2 * int(rng.integers(1, 20)), k, k, stride,
            (1, 1), pads, groups,
        )  # fmt: skip
        check(lib, conv_op(case, "relu", rng), rng)


def test_which_primitives_apply() -> None:
    rng = np.random.default_rng(0)
    three = conv_op(CASES[0], "none", rng)
    assert {c.primitive for c in primitives.choices(three)} == {
        "default", "direct", "im2col", "im2row", "kn2row", "kn2row_acc", "winograd"
    }  # fmt: skip
    one = conv_op(CASES[6], "none", rng)
    assert "gemm1x1" in {c.primitive for c in primitives.choices(one)}
    strided_one = conv_op(CASES[9], "none", rng)
    names = {c.primitive for c in primitives.choices(strided_one)}
    assert "gemm1x1" not in names and "kn2row" not in names


@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (2, 33, 35, 40)])
def test_layout_conversions_round_trip(lib: ctypes.CDLL, shape: tuple) -> None:
    n, h, w, c = shape
    x = np.random.default_rng(1).standard_normal((n, h, w, c + 2)).astype(np.float32)
    nchw = np.empty((n, c, h, w), np.float32)
    lib.mf_nhwc_to_nchw_f32(ptr(x), n, h, w, c, c + 2, ptr(nchw))
    np.testing.assert_array_equal(nchw, x[..., :c].transpose(0, 3, 1, 2))
    back = np.full((n, h, w, c + 2), POISON, np.float32)
    lib.mf_nchw_to_nhwc_f32(ptr(nchw), n, h, w, c, ptr(back), c + 2)
    np.testing.assert_array_equal(back[..., :c], x[..., :c])
    assert (back[..., c:] == POISON).all()


# ---- int8 -------------------------------------------------------------------------------------


def int8_conv_op(
    case: tuple, activation: str, rng: np.random.Generator, input_zero_point: int | None = None
) -> Op:
    """An int8 conv2d as TFLite quantizes one: per-channel weight scales (axis 0), int32 bias,
    an input zero point (random unless given) and an output scale that spreads the results."""
    n, h, w, cin, cout, kh, kw, stride, dilation, pads, groups = case
    zero_point = int(rng.integers(-128, 100)) if input_zero_point is None else input_zero_point
    x_scale = float(np.float32(np.exp(rng.uniform(np.log(0.005), np.log(0.1)))))
    w_scales = np.exp(rng.uniform(np.log(0.002), np.log(0.02), cout)).astype(np.float32)
    depth = kh * kw * cin // groups
    y_scale = x_scale * float(w_scales.mean()) * 100 * np.sqrt(depth)
    b = GraphBuilder()
    x = b.input("x", (n, h, w, cin), DType.INT8, Quantization((x_scale,), (zero_point,)))
    weights = b.constant(
        "w",
        rng.integers(-127, 128, (cout, kh, kw, cin // groups)).astype(np.int8),
        Quantization(tuple(float(s) for s in w_scales), (0,) * cout, 0),
    )
    bias = b.constant("b", rng.integers(-5000, 5000, cout).astype(np.int32))
    attrs = {"strides": stride, "dilations": dilation, "pads": pads, "groups": groups}
    y_quant = Quantization((float(np.float32(y_scale)),), (int(rng.integers(-20, 20)),))
    b.op("conv2d", [x, weights, bias], {**attrs, "activation": activation}, quant=y_quant)
    return b.graph.ops[-1]


INT8_PRIMITIVES = {"direct", "im2col", "im2row", "kn2row", "kn2row_acc", "gemm1x1"}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("activation", ["none", "relu6"])
def test_int8_primitives_bit_exact(lib: ctypes.CDLL, case: tuple, activation: str) -> None:
    rng = np.random.default_rng(zlib.crc32(repr(("int8", case, activation)).encode()))
    check(lib, int8_conv_op(case, activation, rng), rng)


@pytest.mark.parametrize("zero_point", [-128, 0, 127])
def test_int8_extreme_zero_points(lib: ctypes.CDLL, zero_point: int) -> None:
    """The padding value (the zero point) at both ends of the int8 range, and 0."""
    rng = np.random.default_rng(zero_point + 1000)
    check(lib, int8_conv_op(CASES[1], "relu", rng, zero_point), rng)
    check(lib, int8_conv_op(CASES[7], "none", rng, zero_point), rng)


def test_int8_random_layers(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(2006)
    seen: set[str] = set()
    for _ in range(16):
        groups = int(rng.choice([1, 1, 2]))
        k = int(rng.integers(1, 6))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        dilation = (int(rng.integers(1, 3)), 1) if k > 1 else (1, 1)
        pads = tuple(int(v) for v in rng.integers(0, k, 4))
        h = int(rng.integers(dilation[0] * (k - 1) + 1, 14))
        case = (
            int(rng.integers(1, 3)), h, int(rng.integers(k, 14)),
            2 * int(rng.integers(1, 6)), 2 * int(rng.integers(1, 40)), k, k, stride,
            dilation, pads, groups,
        )  # fmt: skip
        activation = str(rng.choice(["none", "relu", "relu6"]))
        seen |= {c.primitive for c in check(lib, int8_conv_op(case, activation, rng), rng)}
    assert seen >= INT8_PRIMITIVES - {"gemm1x1"}


def test_which_primitives_apply_to_int8() -> None:
    rng = np.random.default_rng(0)
    three = int8_conv_op(CASES[0], "none", rng)
    assert {c.primitive for c in primitives.choices(three)} == {"default"} | INT8_PRIMITIVES - {
        "gemm1x1"
    }
    one = int8_conv_op(CASES[6], "none", rng)
    assert {c.primitive for c in primitives.choices(one)} == {"default"} | INT8_PRIMITIVES


def test_int8_workspace_formulas() -> None:
    """int8 columns and rows are a byte per element, int32 accumulators four."""
    op = int8_conv_op(CASES[4], "none", np.random.default_rng(1))  # 12x10x6 -> 9, K 3, groups 3
    g = primitives.geometry(op)
    bytes_of = {c.primitive: primitives.workspace_bytes(op, c) for c in primitives.choices(op)}
    assert bytes_of["im2col"] == bytes_of["im2row"] == 3 * 3 * 2 * g.oh * g.ow
    assert bytes_of["direct"] == 0
    stride_one = int8_conv_op(CASES[5], "none", np.random.default_rng(1))
    g = primitives.geometry(stride_one)
    kn2row = primitives.workspace_bytes(stride_one, Choice("kn2row", NHWC))
    assert kn2row == 4 * 3 * 3 * 3 * g.h * g.w
    assert primitives.workspace_bytes(stride_one, Choice("kn2row_acc", NCHW)) == 4 * 3 * g.oh * g.ow


@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (2, 33, 35, 40)])
def test_int8_layout_conversions_round_trip(lib: ctypes.CDLL, shape: tuple) -> None:
    n, h, w, c = shape
    x = np.random.default_rng(2).integers(-128, 128, (n, h, w, c + 2)).astype(np.int8)
    nchw = np.empty((n, c, h, w), np.int8)
    lib.mf_nhwc_to_nchw_s8(ptr(x), n, h, w, c, c + 2, ptr(nchw))
    np.testing.assert_array_equal(nchw, x[..., :c].transpose(0, 3, 1, 2))
    back = np.full((n, h, w, c + 2), POISON_S8, np.int8)
    lib.mf_nchw_to_nhwc_s8(ptr(nchw), n, h, w, c, ptr(back), c + 2)
    np.testing.assert_array_equal(back[..., :c], x[..., :c])
    assert (back[..., c:] == POISON_S8).all()
