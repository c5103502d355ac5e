"""The convolution primitives of mf_primitives.c against memfit's NumPy kernels.

The primitives and layout conversions are compiled once into a shared library (the generated
Makefile's flags and -Wall -Wextra -Werror) and called through ctypes on random layers of many
shapes (stride, padding, dilation, groups, odd sizes), in NHWC (also with inputs and outputs
that are channel slices of wider pixels, like concatenation slices) and NCHW. The workspace is
filled with a canary first: the bytes the primitive touches must be exactly the formula's.
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
from memfit.ir.core import Op
from memfit.runtime.kernels import run_kernel
from memfit.selection import primitives
from memfit.selection.primitives import NCHW, NHWC, Choice

RUNTIME = Path(params.__file__).resolve().parent / "runtime"
CANARY = 0xA5
POISON = np.float32(-7.25e11)


class MfPrimConv(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_int32)
        for name in (*primitives.Geometry.__dataclass_fields__, "x_pixel_stride", "y_pixel_stride")
    ]


class MfRangeF32(ctypes.Structure):
    _fields_ = [("min", ctypes.c_float), ("max", ctypes.c_float), ("fn", ctypes.c_int32)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("primitives") / "libprimitives.so"
    sources = [str(RUNTIME / "mf_primitives.c"), str(RUNTIME / "mf_layout.c")]
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
    lib: ctypes.CDLL, op: Op, choice: Choice, x: np.ndarray, slack: int
) -> tuple[np.ndarray, int]:
    """(output NHWC, workspace bytes touched). NHWC pixels get ``slack`` extra elements on
    both sides (input and output), like concatenation slices; the output's must stay poisoned."""
    g = primitives.geometry(op)
    out_shape = op.output.shape
    if choice.layout == NCHW:
        xin = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        y = np.full((out_shape[0], out_shape[3], out_shape[1], out_shape[2]), POISON, np.float32)
        x_stride, y_stride = g.c, g.m
    else:
        wide = np.full((*x.shape[:3], g.c + 2 * slack), POISON, np.float32)
        wide[..., slack : slack + g.c] = x
        xin = wide[..., slack:]
        y = np.full((*out_shape[:3], g.m + 2 * slack), POISON, np.float32)
        x_stride, y_stride = g.c + 2 * slack, g.m + 2 * slack
    size = primitives.workspace_bytes(op, choice)
    workspace = np.full(size + 64, CANARY, np.uint8)
    geometry = MfPrimConv(*vars(g).values(), x_stride, y_stride)
    act = params.float_activation(op)
    function = getattr(lib, primitives.PRIMITIVES[choice.primitive].c_function(choice.layout))
    function.restype = None
    weights = primitives.arrange_weights(op, choice)
    function(
        ptr(xin),
        ptr(weights),
        ptr(op.input(2).data),  # type: ignore[union-attr]
        ctypes.c_void_p(y.ctypes.data + (slack * 4 if choice.layout == NHWC else 0)),
        ctypes.byref(geometry),
        ctypes.byref(MfRangeF32(act.min, act.max, act.fn)),
        ptr(workspace),
    )
    touched = np.flatnonzero(workspace != CANARY)
    extent = int(touched[-1]) + 1 if touched.size else 0
    if choice.layout == NCHW:
        return y.transpose(0, 2, 3, 1), extent
    outside = np.ones(y.shape, bool)
    outside[..., slack : slack + g.m] = False
    assert (y[outside] == POISON).all(), f"{choice.label} wrote outside its output slice"
    return y[..., slack : slack + g.m], extent


def check(lib: ctypes.CDLL, op: Op, rng: np.random.Generator) -> None:
    x = rng.standard_normal(op.inputs[0].shape).astype(np.float32)  # type: ignore[union-attr]
    want = run_kernel(op, [x, op.input(1).data, op.input(2).data])[0]  # type: ignore[union-attr]
    tested = [c for c in primitives.choices(op) if c.primitive != "default"]
    assert tested
    for choice in tested:
        got, extent = run_primitive(lib, op, choice, x, slack=3)
        scale = max(float(np.abs(want).max()), 1e-30)
        np.testing.assert_allclose(
            got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=f"{choice.label} on {op.attrs}"
        )
        assert extent == primitives.workspace_bytes(op, choice), choice.label


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
