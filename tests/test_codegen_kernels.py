"""The C runtime's kernels against the NumPy kernels, op by op.

The runtime is compiled once per session (with the generated Makefile's flags,
``memfit.codegen.program.CFLAGS``, and ``-Wall -Wextra -Werror``) into a
shared library and every kernel is called through ctypes with the parameters
``memfit.codegen.params`` computes from an IR op, on random shapes (strides, dilation,
padding, groups, odd sizes) and on strided views (outputs written into a slice of a larger
buffer, whose other bytes must stay untouched). int8 results must equal the NumPy kernels'
exactly; float results within 1e-5 relative. ``test_clean_under_sanitizers`` runs this file
again against a build with -fsanitize=address,undefined.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import os
import shutil
import subprocess
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from memfit.codegen import params
from memfit.codegen.program import CFLAGS
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Op, Quantization
from memfit.ir.dtypes import DType
from memfit.runtime.kernels import run_kernel
from memfit.runtime.kernels.lstm import GATES, sigmoid_int16, tanh_int16
from tests.test_lstm import (
    FLOAT_CASES,
    FLOAT_VARIANT_CASES,
    INT8_CASES,
    _random_input,
    _random_lstm,
)
from tests.test_lstm import _run as _run_lstm

RUNTIME = Path(params.__file__).resolve().parent / "runtime"
SANITIZED = os.environ.get("MEMFIT_KERNELS_SANITIZED") == "1"
CC = os.environ.get("CC", "cc")
FLAGS = [*CFLAGS, "-Wall", "-Wextra", "-Werror"]
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]
POISON = {np.dtype(np.float32): np.float32(-7.25e11), np.dtype(np.int8): np.int8(-77)}
POISON[np.dtype(np.int32)] = np.int32(-123456789)
FLOAT_TOLERANCE = 1e-5


# ---- ctypes mirrors of the header ----------------------------------------------------------


class MfView(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in ("n", "h", "w", "c", "sn", "sh", "sw")]


MAX_RANK = 6


class MfNd(ctypes.Structure):
    _fields_ = [
        ("rank", ctypes.c_int32),
        ("dims", ctypes.c_int32 * MAX_RANK),
        ("strides", ctypes.c_int32 * MAX_RANK),
    ]


_STRUCTS: dict[type, type] = {}


def ctypes_struct(cls: type) -> type:
    """The ctypes mirror of a params dataclass, field for field."""
    if cls not in _STRUCTS:
        fields = []
        for field in dataclasses.fields(cls):
            kind = {"int": ctypes.c_int32, "float": ctypes.c_float}.get(str(field.type))
            if str(field.type) == "np.ndarray":
                kind = ctypes.POINTER(ctypes.c_int32)
            elif kind is None:
                kind = ctypes_struct(getattr(params, str(field.type)))
            fields.append((field.name, kind))
        _STRUCTS[cls] = type(cls.__name__, (ctypes.Structure,), {"_fields_": fields})
    return _STRUCTS[cls]


def struct(value: params.Struct) -> ctypes.Structure:
    """``value`` as its C struct; arrays it points to are kept alive on the result."""
    mirror = ctypes_struct(type(value))()
    keep = []
    for field in dataclasses.fields(value):
        v = getattr(value, field.name)
        if isinstance(v, params.Struct):
            setattr(mirror, field.name, struct(v))
        elif isinstance(v, np.ndarray):
            array = np.ascontiguousarray(v, np.int32)
            keep.append(array)
            setattr(mirror, field.name, array.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)))
        else:
            setattr(mirror, field.name, v)
    mirror._keep = keep  # type: ignore[attr-defined]
    return mirror


def view(a: np.ndarray) -> MfView:
    """The mf_view of an array of rank <= 4 (leading dims of 1), channels contiguous."""
    assert a.ndim <= 4
    shape = (1,) * (4 - a.ndim) + a.shape
    strides = (0,) * (4 - a.ndim) + tuple(s // a.itemsize for s in a.strides)
    assert shape[3] == 1 or strides[3] == 1, "channels must be contiguous"
    return MfView(*shape, *strides[:3])


def nd(a: np.ndarray) -> MfNd:
    assert a.ndim <= MAX_RANK
    dims = (ctypes.c_int32 * MAX_RANK)(*a.shape)
    strides = (ctypes.c_int32 * MAX_RANK)(*(s // a.itemsize for s in a.strides))
    return MfNd(a.ndim, dims, strides)


def ptr(a: np.ndarray | None) -> ctypes.c_void_p | None:
    """A pointer to a's first element that keeps ``a`` alive (arguments are often temporaries)."""
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


def ref(s: ctypes.Structure) -> ctypes._CArgObject:
    return ctypes.byref(s)


def f32(value: float) -> ctypes.c_float:
    return ctypes.c_float(value)


# ---- the library -----------------------------------------------------------------------------


def _layout_source() -> str:
    """C that records sizeof and every field offset of each params struct, to check the
    ctypes mirrors (and so params' field order) against the header."""
    structs = [cls for cls in vars(params).values() if _is_struct(cls)]
    lines = ["#include <stddef.h>", '#include "memfit_runtime.h"']
    for cls in structs:
        values = [f"sizeof({cls.C_TYPE})"]
        values += [f"offsetof({cls.C_TYPE}, {f.name})" for f in dataclasses.fields(cls)]
        lines.append(f"const size_t layout_{cls.C_TYPE}[] = {{{', '.join(values)}}};")
    return "\n".join(lines) + "\n"


def _is_struct(cls: object) -> bool:
    return isinstance(cls, type) and issubclass(cls, params.Struct) and cls is not params.Struct


def _build_runtime(tmp_path_factory: pytest.TempPathFactory, *defines: str) -> ctypes.CDLL:
    if shutil.which(CC) is None:
        pytest.skip(f"no C compiler ({CC})")
    folder = tmp_path_factory.mktemp("runtime")
    layout = folder / "layout.c"
    layout.write_text(_layout_source())
    out = folder / "libmemfit_runtime.so"
    flags = [*FLAGS, *defines, *(SANITIZE_FLAGS if SANITIZED else []), "-fPIC", "-shared"]
    sources = [str(p) for p in sorted(RUNTIME.glob("*.c"))]
    command = [CC, *flags, f"-I{RUNTIME}", "-o", str(out), *sources, str(layout), "-lm"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(out))


@pytest.fixture(scope="session")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    return _build_runtime(tmp_path_factory)


@pytest.fixture(scope="session")
def lib_without_vector_types(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """The runtime as compilers without GCC's vector extensions build it (mf_vf a struct)."""
    return _build_runtime(tmp_path_factory, "-DMF_NO_VECTOR_TYPES")


def call(lib: ctypes.CDLL, name: str, *args: object) -> None:
    function = getattr(lib, name)
    function.restype = None
    function(*args)


# ---- building ops and data -------------------------------------------------------------------


def generator(*key: object) -> np.random.Generator:
    """A random generator seeded by the test case (stable across runs and processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def q(scale: float, zero_point: int = 0) -> Quantization:
    return Quantization((float(np.float32(scale)),), (int(zero_point),))


def per_channel(scales: np.ndarray) -> Quantization:
    return Quantization(tuple(float(s) for s in scales.astype(np.float32)), (0,) * len(scales), 0)


def random_q(rng: np.random.Generator, low: float = 0.005, high: float = 0.1) -> Quantization:
    return q(math.exp(rng.uniform(math.log(low), math.log(high))), rng.integers(-128, 128))


def int8(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.integers(-128, 128, size=tuple(shape)).astype(np.int8)


def floats(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.standard_normal(tuple(shape)).astype(np.float32)


def single_op(
    kind: str,
    inputs: Sequence[tuple[np.ndarray, Quantization | None, bool]],
    attrs: dict,
    *,
    dtype: DType | None = None,
    quant: Quantization | None = None,
    shape: Sequence[int] | None = None,
) -> Op:
    """One op; inputs are (data, quantization, is_constant); None data: absent input."""
    b = GraphBuilder()
    tensors = []
    for i, (data, qz, constant) in enumerate(inputs):
        if data is None:
            tensors.append(None)
        elif constant:
            tensors.append(b.constant(f"c{i}", data, qz))
        else:
            tensors.append(b.input(f"x{i}", data.shape, DType.from_numpy(data.dtype), qz))
    b.op(kind, tensors, attrs, dtype=dtype, quant=quant, shape=shape)
    return b.graph.ops[-1]


def expected(op: Op, *arrays: np.ndarray | None) -> np.ndarray:
    return run_kernel(op, list(arrays))[0]


def output_buffer(
    shape: Sequence[int], dtype: np.dtype, rng: np.random.Generator, strided: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(parent, view): the view is the whole parent, or a box inside a larger poisoned parent
    (extra channels on both sides and extra columns), like a concatenation slice."""
    shape = tuple(shape)
    if not strided:
        parent = np.full(shape, POISON[np.dtype(dtype)], dtype)
        return parent, parent
    before = int(rng.integers(1, 4))
    extra = (0,) * (len(shape) - 2) + (int(rng.integers(0, 3)), before + 2)
    parent = np.full(
        tuple(d + e for d, e in zip(shape, extra, strict=True)), POISON[np.dtype(dtype)], dtype
    )
    box = (*tuple(slice(0, d) for d in shape[:-1]), slice(before, before + shape[-1]))
    return parent, parent[box]


def strided_input(data: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``data`` that is a strided box inside a larger array."""
    _parent, box = output_buffer(data.shape, data.dtype, rng, True)
    box[...] = data
    return box


def assert_untouched(parent: np.ndarray, box: np.ndarray) -> None:
    """Every element of ``parent`` outside ``box`` still holds the poison."""
    outside = np.ones(parent.shape, bool)
    offset = (box.ctypes.data - parent.ctypes.data) // parent.itemsize
    index = np.unravel_index(offset, parent.shape)
    outside[tuple(slice(i, i + d) for i, d in zip(index, box.shape, strict=True))] = False
    assert (parent[outside] == POISON[parent.dtype]).all(), "a kernel wrote outside its view"


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    scale = float(np.abs(want).max()) if want.size else 0.0
    np.testing.assert_allclose(
        got, want, rtol=FLOAT_TOLERANCE, atol=FLOAT_TOLERANCE * max(scale, 1e-30)
    )


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def workspace(op: Op) -> np.ndarray | None:
    nbytes = params.workspace_bytes(op)
    return np.zeros(nbytes, np.uint8) if nbytes else None


# ---- layout ------------------------------------------------------------------------------------


def test_params_structs_match_the_header(lib: ctypes.CDLL) -> None:
    structs = [cls for cls in vars(params).values() if _is_struct(cls)]
    assert len(structs) >= 12
    for cls in structs:
        mirror = ctypes_struct(cls)
        fields = dataclasses.fields(cls)
        table = (ctypes.c_size_t * (1 + len(fields))).in_dll(lib, f"layout_{cls.C_TYPE}")
        assert table[0] == ctypes.sizeof(mirror), cls.C_TYPE
        for i, field in enumerate(fields, start=1):
            assert table[i] == getattr(mirror, field.name).offset, f"{cls.C_TYPE}.{field.name}"
    assert ctypes.sizeof(MfView) == 28 and ctypes.sizeof(MfNd) == 4 * (1 + 2 * MAX_RANK)


def test_c_float_literals_are_exact() -> None:
    for value in (0.1, 1e-30, 3.4e38, -2.5, 6.0):
        text = params.c_float(value)
        assert text.endswith("f")
        assert np.float32(float(text[:-1])) == np.float32(value)
    assert params.c_float(math.inf) == "INFINITY"


# ---- convolutions ---------------------------------------------------------------------------

# (n, h, w, cin, cout, kh, kw, stride, dilation, pads, groups)
CONV_CASES = [
    (1, 9, 11, 3, 5, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (2, 8, 7, 4, 37, 3, 2, (2, 1), (1, 1), (0, 1, 1, 0), 1),
    (1, 12, 10, 6, 9, 3, 3, (1, 2), (2, 3), (2, 3, 2, 1), 3),
    (1, 7, 7, 16, 70, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),
    (1, 10, 9, 8, 8, 5, 4, (3, 2), (1, 1), (2, 1, 2, 2), 2),
    (1, 5, 6, 33, 64, 1, 1, (2, 2), (1, 1), (0, 0, 0, 0), 1),
    (3, 4, 4, 2, 3, 2, 2, (1, 1), (1, 1), (1, 1, 0, 0), 1),
    # 1x1, pixels read in place: groups of 34 channels (a panel and a half panel), 35 pixels
    (1, 5, 7, 36, 136, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 4),
    # 1x1 with padding: through the im2col panel
    (1, 6, 5, 8, 20, 1, 1, (2, 2), (1, 1), (1, 1, 0, 0), 1),
    # interior windows read in place (kernel rows dilated), borders packed, in separate tiles
    (2, 12, 13, 4, 20, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (1, 11, 12, 5, 9, 3, 3, (1, 1), (2, 1), (2, 1, 2, 1), 1),
]


def conv_attrs(case: tuple, activation: str) -> dict:
    *_, stride, dilation, pads, groups = case
    return {
        "strides": stride,
        "dilations": dilation,
        "pads": pads,
        "groups": groups,
        "activation": activation,
    }


def _check_conv2d_f32(
    lib: ctypes.CDLL, rng: np.random.Generator, case: tuple, activation: str, strided: bool
) -> None:
    """One float conv2d of ``case`` through memfit's kernel, against the NumPy executor, with
    nothing outside the output touched."""
    n, h, w, cin, cout, kh, kw, *_ = case
    groups = case[-1]
    x, weights, bias = (
        floats(rng, (n, h, w, cin)),
        floats(rng, (cout, kh, kw, cin // groups)),
        floats(rng, (cout,)),
    )
    op = single_op(
        "conv2d",
        [(x, None, False), (weights, None, True), (bias, None, True)],
        conv_attrs(case, activation),
    )
    want = expected(op, x, weights, bias)
    xin = strided_input(x, rng) if strided else x
    parent, y = output_buffer(want.shape, np.float32, rng, strided)
    call(
        lib,
        params.kernel_name(op),
        ptr(xin),
        ref(view(xin)),
        ptr(params.packed_conv_weights(op)),
        ptr(bias),
        ptr(y),
        ref(view(y)),
        ref(struct(params.conv(op))),
        ref(struct(params.float_activation(op))),
        ptr(workspace(op)),
    )
    assert_close(y, want)
    assert_untouched(parent, y)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize(("activation", "strided"), [("none", False), ("relu6", True)])
def test_conv2d_f32(lib: ctypes.CDLL, case: tuple, activation: str, strided: bool) -> None:
    rng = generator("conv2d_f32", case, activation)
    _check_conv2d_f32(lib, rng, case, activation, strided)


def quantized_conv(
    rng: np.random.Generator, case: tuple, activation: str, kind: str = "conv2d"
) -> tuple[Op, list[np.ndarray]]:
    n, h, w, cin, cout, kh, kw, *_ = case
    groups = case[-1]
    x, weights = int8(rng, (n, h, w, cin)), int8(rng, (cout, kh, kw, cin // groups))
    weights[0, 0, 0, 0] = -128  # the extreme weight TFLite allows
    xq = random_q(rng)
    wscales = np.exp(rng.uniform(np.log(0.002), np.log(0.02), cout))
    depth = kh * kw * cin // groups
    yq = q(xq.scale[0] * float(wscales.mean()) * 40 * math.sqrt(depth), rng.integers(-20, 20))
    bias = rng.integers(-5000, 5000, cout).astype(np.int32)
    op = single_op(
        kind,
        [(x, xq, False), (weights, per_channel(wscales), True), (bias, None, True)],
        conv_attrs(case, activation),
        quant=yq,
    )
    return op, [x, weights, bias]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize(("activation", "strided"), [("none", True), ("relu", False)])
def test_conv2d_s8(lib: ctypes.CDLL, case: tuple, activation: str, strided: bool) -> None:
    rng = generator("conv2d_s8", case, activation)
    op, (x, weights, bias) = quantized_conv(rng, case, activation)
    want = expected(op, x, weights, bias)
    assert len(np.unique(want)) > 10  # the scales leave a real range of outputs
    xin = strided_input(x, rng) if strided else x
    parent, y = output_buffer(want.shape, np.int8, rng, strided)
    call(
        lib,
        params.kernel_name(op),
        ptr(xin),
        ref(view(xin)),
        ptr(weights),
        ptr(bias),
        ptr(y),
        ref(view(y)),
        ref(struct(params.conv(op))),
        ref(struct(params.requant(op))),
        ptr(workspace(op)),
    )
    assert_same(y, want)
    assert_untouched(parent, y)


# Few output channels per group (at most 4): the direct path, without im2col, of conv2d and
# partial_conv2d (FDT's output-channel partitions). Border and interior pixels, blocks of
# interior pixels (8 float, 4 int8), a row's last float block moved back to end with its
# interior, whole-row runs (dense input, dilation 1) and per-tap runs, runs that are not whole
# vectors;
# int8 runs of at most 16 values (all but the 37-channel case, and the 16-channel 3x3 only
# strided) go tap by tap over chunks of output pixels instead.
# (n, h, w, cin, cout, kh, kw, stride, dilation, pads, groups)
DIRECT_CASES = [
    (1, 9, 13, 16, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (1, 4, 29, 16, 2, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (1, 49, 40, 1, 1, 10, 8, (2, 2), (1, 1), (4, 3, 5, 3), 1),
    (2, 7, 11, 5, 3, 3, 2, (2, 1), (1, 1), (0, 1, 1, 0), 1),
    (1, 12, 10, 6, 2, 3, 3, (1, 2), (2, 3), (2, 3, 2, 1), 1),
    (1, 10, 9, 9, 12, 5, 4, (3, 2), (1, 1), (2, 1, 2, 2), 3),
    (1, 6, 17, 37, 4, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),
    (1, 5, 5, 3, 1, 7, 7, (1, 1), (1, 1), (3, 3, 3, 3), 1),
    (1, 8, 8, 4, 2, 3, 3, (1, 1), (1, 1), (0, 0, 0, 0), 2),
    # short window runs (int8 sums output pixels tap by tap): rows longer than a chunk of 64
    # pixels, a 1x1 over 8 channels, stride 2 with a leftover column and padding on every side
    (2, 3, 70, 8, 2, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),
    (1, 9, 141, 1, 3, 3, 4, (2, 2), (1, 1), (1, 1, 2, 2), 1),
    # ... their ring of widened input rows: kernel rows 2 apart (5 slots, rows read by 3 output
    # rows each), two chunks (64 + 11 columns) each starting the ring afresh, batch 2
    (2, 9, 75, 2, 2, 3, 2, (1, 1), (2, 1), (2, 1, 2, 0), 1),
]


@pytest.mark.parametrize("case", DIRECT_CASES)
@pytest.mark.parametrize("strided", [False, True])
def test_conv2d_direct(lib: ctypes.CDLL, case: tuple, strided: bool) -> None:
    """conv2d computing at most 4 output channels per group, float and int8."""
    rng = generator("conv2d direct", case, strided)
    assert case[4] // case[-1] <= 4  # output channels per group
    _check_conv2d_f32(lib, rng, case, "relu6", strided)

    op, (x, weights, bias) = quantized_conv(rng, case, "none")
    want = expected(op, x, weights, bias)
    xin = strided_input(x, rng) if strided else x
    parent, y8 = output_buffer(want.shape, np.int8, rng, strided)
    call(
        lib,
        params.kernel_name(op),
        ptr(xin),
        ref(view(xin)),
        ptr(weights),
        ptr(bias),
        ptr(y8),
        ref(view(y8)),
        ref(struct(params.conv(op))),
        ref(struct(params.requant(op))),
        ptr(workspace(op)),
    )
    assert_same(y8, want)
    assert_untouched(parent, y8)


# partial_conv2d reading at most 4 input channels into more than 4 outputs (FDT's LIP
# partitions; float sums register tiles of a few pixels by a panel's channels): panels of 16
# and 32 channels, two panels, channels that are not whole vectors, a row's last tile moved
# back to end with its interior (in place: its first pixels are not added twice), stride,
# dilation, padding on every side.
FEW_INPUTS_CASES = [
    (1, 32, 32, 1, 16, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (1, 9, 31, 1, 16, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (2, 6, 19, 2, 32, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (1, 9, 13, 2, 7, 3, 3, (2, 2), (1, 1), (1, 1, 1, 1), 1),
    (2, 7, 11, 3, 40, 3, 2, (1, 2), (2, 1), (2, 0, 1, 1), 1),
    (1, 5, 30, 4, 20, 1, 5, (1, 1), (1, 1), (0, 2, 0, 2), 1),
]


@pytest.mark.parametrize("case", [c for c in DIRECT_CASES if c[-1] == 1] + FEW_INPUTS_CASES)
@pytest.mark.parametrize("quantized", [False, True])
def test_partial_conv2d_direct(lib: ctypes.CDLL, case: tuple, quantized: bool) -> None:
    """partial_conv2d with at most 4 output channels or at most 4 input channels, the first
    partition (no accumulator, output strided) and a later one (accumulating in place)."""
    _check_partial_conv2d(lib, generator("partial conv2d direct", case, quantized), case, quantized)


# Three columns (a 3-wide kernel, stride_w 1, dilation_w 1, one column of padding each side,
# output as wide as input): float tiles of consecutive pixels across the whole row, the
# padding column beside a row's first and last tile read as zeros. conv2d with at most 4
# outputs (input channels whole vectors): a row of exactly one block, a last block moved back,
# stride_h 2 with dilation_h 2 and uneven top/bottom padding over two batches, groups, a kernel
# 5 rows high; partial_conv2d over at most 4 inputs: a row of exactly one tile (6 pixels for 16
# channels), two panels, 32 channels (3-pixel tiles), 20 (not whole vectors), a 1x3 kernel.
# Rows too narrow for one block or tile go the general way.
# (n, h, w, cin, cout, kh, kw, stride, dilation, pads, groups)
THREE_COLUMN_DIRECT_CASES = [
    (1, 5, 8, 8, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (1, 7, 19, 16, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (2, 9, 12, 24, 3, 3, 3, (2, 1), (2, 1), (2, 1, 0, 1), 1),
    (1, 6, 10, 32, 4, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 2),
    (1, 6, 9, 8, 2, 5, 3, (1, 1), (1, 1), (2, 1, 2, 1), 1),
    (1, 3, 5, 8, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
]
THREE_COLUMN_FEW_INPUTS_CASES = [
    (1, 6, 6, 1, 16, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (1, 7, 13, 3, 48, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (2, 8, 9, 2, 32, 3, 3, (2, 1), (3, 1), (3, 1, 1, 1), 1),
    (1, 5, 11, 4, 20, 3, 3, (1, 1), (1, 1), (0, 1, 2, 1), 1),
    (1, 4, 7, 1, 16, 1, 3, (1, 1), (1, 1), (0, 1, 0, 1), 1),
    (1, 4, 5, 1, 16, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
]


@pytest.mark.parametrize("case", THREE_COLUMN_DIRECT_CASES)
@pytest.mark.parametrize("strided", [False, True])
def test_conv2d_three_columns(lib: ctypes.CDLL, case: tuple, strided: bool) -> None:
    """Float conv2d over three columns with at most 4 outputs per group, input and output
    dense or strided."""
    assert case[4] // case[-1] <= 4 and case[3] // case[-1] % 8 == 0
    _check_conv2d_f32(lib, generator("conv2d three columns", case, strided), case, "relu6", strided)


@pytest.mark.parametrize("case", THREE_COLUMN_DIRECT_CASES + THREE_COLUMN_FEW_INPUTS_CASES)
def test_partial_conv2d_three_columns(lib: ctypes.CDLL, case: tuple) -> None:
    """Float partial_conv2d over three columns (the first partition, then one accumulating in
    place: pixels of a moved-back tile are not added twice)."""
    _check_partial_conv2d(lib, generator("partial conv2d three columns", case), case, False)


@pytest.mark.parametrize(
    "case",
    [
        DIRECT_CASES[1],
        DIRECT_CASES[3],
        *FEW_INPUTS_CASES[1:3],
        THREE_COLUMN_DIRECT_CASES[2],
        *THREE_COLUMN_FEW_INPUTS_CASES[1:3],
    ],
)
def test_float_tiles_without_vector_types(
    lib_without_vector_types: ctypes.CDLL, case: tuple
) -> None:
    """The float direct and few-inputs tiles with mf_vf a struct of an array, as compilers
    without GCC's vector extensions get them: whole and partial vectors, tiles moved back."""
    rng = generator("no vector types", case)
    if case in DIRECT_CASES or case in THREE_COLUMN_DIRECT_CASES:
        _check_conv2d_f32(lib_without_vector_types, rng, case, "relu6", False)
    _check_partial_conv2d(lib_without_vector_types, rng, case, False)


def _check_partial_conv2d(
    lib: ctypes.CDLL, rng: np.random.Generator, case: tuple, quantized: bool
) -> None:
    n, h, w, cin, cout, kh, kw, *_ = case
    attrs = {k: v for k, v in conv_attrs(case, "none").items() if k not in ("groups", "activation")}
    acc_dtype = np.int32 if quantized else np.float32
    xq = random_q(rng) if quantized else None
    wq = q(0.01, 0) if quantized else None
    acc = None
    for _ in range(2):
        if quantized:
            x, weights = int8(rng, (n, h, w, cin)), int8(rng, (cout, kh, kw, cin))
            weights[0, 0, 0, 0] = -128
        else:
            x, weights = floats(rng, (n, h, w, cin)), floats(rng, (cout, kh, kw, cin))
        xin = strided_input(x, rng)
        inputs = [(x, xq, False), (weights, wq, True)]
        if acc is not None:
            inputs.append((np.ascontiguousarray(acc), None, False))
        op = single_op(
            "partial_conv2d", inputs, attrs, dtype=DType.INT32 if quantized else DType.FLOAT32
        )
        partial = expected(op, x, weights, None if acc is None else np.ascontiguousarray(acc))
        if acc is None:
            parent, out = output_buffer(partial.shape, acc_dtype, rng, True)
        else:
            parent, out = None, acc
        extra = [ctypes.c_int32(params.partial_offsets(op)[0])] if quantized else []
        call(
            lib,
            params.kernel_name(op),
            ptr(xin),
            ref(view(xin)),
            ptr(weights if quantized else params.packed_conv_weights(op)),
            ptr(acc),
            None if acc is None else ref(view(acc)),
            ptr(out),
            ref(view(out)),
            ref(struct(params.conv(op))),
            *extra,
            ptr(workspace(op)),
        )
        (assert_same if quantized else assert_close)(out, partial)
        if parent is not None:
            assert_untouched(parent, out)
        acc = out


# (n, h, w, c, multiplier, kh, kw, stride, dilation, pads)
DEPTHWISE_CASES = [
    (1, 9, 8, 5, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),
    (2, 10, 7, 70, 1, 3, 3, (2, 2), (1, 1), (0, 0, 1, 1)),
    (1, 8, 9, 3, 2, 3, 2, (1, 2), (2, 1), (2, 1, 2, 0)),
    (1, 6, 6, 4, 3, 5, 5, (2, 1), (1, 1), (2, 2, 2, 2)),
    (1, 7, 9, 14, 1, 3, 3, (1, 1), (1, 2), (2, 1, 2, 1)),
    # maps one pixel wide (int8 planes convolved along H as if it were W), batch 2, stride,
    # dilation, padding above and below; a row wider than a chunk of 64 pixels
    (2, 28, 1, 16, 1, 5, 1, (1, 1), (1, 1), (0, 0, 0, 0)),
    (1, 31, 1, 20, 1, 10, 1, (2, 1), (1, 1), (3, 0, 2, 0)),
    (1, 30, 1, 6, 1, 3, 1, (1, 1), (2, 1), (2, 0, 2, 0)),
    (2, 5, 67, 3, 1, 3, 3, (1, 2), (1, 1), (1, 1, 1, 1)),
]


def depthwise_op(
    rng: np.random.Generator, case: tuple, quantized: bool, activation: str
) -> tuple[Op, list[np.ndarray]]:
    n, h, w, c, mult, kh, kw, stride, dilation, pads = case
    attrs = {
        "strides": stride,
        "dilations": dilation,
        "pads": pads,
        "depth_multiplier": mult,
        "activation": activation,
    }
    if not quantized:
        x, weights, bias = (
            floats(rng, (n, h, w, c)),
            floats(rng, (1, kh, kw, c * mult)),
            floats(rng, (c * mult,)),
        )
        op = single_op(
            "depthwise_conv2d", [(x, None, False), (weights, None, True), (bias, None, True)], attrs
        )
        return op, [x, weights, bias]
    x, weights = int8(rng, (n, h, w, c)), int8(rng, (1, kh, kw, c * mult))
    xq = random_q(rng)
    wscales = np.exp(rng.uniform(np.log(0.002), np.log(0.02), c * mult))
    yq = q(xq.scale[0] * float(wscales.mean()) * 40 * math.sqrt(kh * kw), rng.integers(-20, 20))
    bias = rng.integers(-3000, 3000, c * mult).astype(np.int32)
    wq = Quantization(tuple(float(s) for s in wscales.astype(np.float32)), (0,) * (c * mult), 3)
    op = single_op(
        "depthwise_conv2d",
        [(x, xq, False), (weights, wq, True), (bias, None, True)],
        attrs,
        quant=yq,
    )
    return op, [x, weights, bias]


def depthwise_args(op: Op, quantized: bool) -> ctypes.Structure:
    return struct(params.requant(op) if quantized else params.float_activation(op))


@pytest.mark.parametrize("case", DEPTHWISE_CASES)
@pytest.mark.parametrize("quantized", [False, True])
def test_depthwise_conv2d(lib: ctypes.CDLL, case: tuple, quantized: bool) -> None:
    rng = generator("depthwise", case, quantized)
    op, (x, weights, bias) = depthwise_op(rng, case, quantized, "relu6")
    want = expected(op, x, weights, bias)
    xin = strided_input(x, rng)
    parent, y = output_buffer(want.shape, want.dtype, rng, True)
    call(
        lib,
        params.kernel_name(op),
        ptr(xin),
        ref(view(xin)),
        ptr(weights),
        ptr(bias),
        ptr(y),
        ref(view(y)),
        ref(struct(params.conv(op))),
        ref(depthwise_args(op, quantized)),
    )
    (assert_same if quantized else assert_close)(y, want)
    assert_untouched(parent, y)


# In place (mf_inplace.c), output pixels go straight into the output while their bytes lie below
# the input still to be read (a strided op's pixels after its first few), else through a ring of
# pixels in the one-channel temporary, in blocks of as many channels as it holds: all of them
# (strided maps; stride 1 when the map has about as many rows as channels), blocks of 8 and a
# shorter last one, blocks of 4. Float with fewer than 4 channels a block, int8 unless a block
# holds all channels and out of place would run rows too (more than 16 channels), channel by
# channel (int8 with depth multiplier 1 plane by plane through the temporary).
DEPTHWISE_IN_PLACE_CASES = [c for c in DEPTHWISE_CASES if c[4] == 1] + [
    (1, 17, 17, 8, 1, 3, 3, (2, 2), (1, 1), (0, 0, 0, 0)),
    (2, 16, 15, 12, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),
    (1, 12, 12, 40, 1, 5, 5, (1, 1), (1, 1), (2, 2, 2, 2)),
    (1, 20, 19, 45, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),
    (2, 10, 11, 30, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),
    (1, 14, 13, 27, 1, 3, 3, (2, 2), (1, 1), (1, 1, 1, 1)),
    (1, 7, 7, 21, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),
    # every channel in one block, int8 too: strided with padding (straight into the output
    # after the first row), odd channels in batches of 2 at stride 1, dilated, stride (2, 1)
    (1, 24, 26, 32, 1, 3, 3, (2, 2), (1, 1), (1, 1, 1, 1)),
    (2, 21, 23, 37, 1, 3, 3, (2, 2), (1, 1), (0, 1, 1, 1)),
    (2, 20, 22, 17, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),
    (1, 30, 30, 24, 1, 3, 3, (1, 1), (2, 2), (2, 2, 2, 2)),
    (1, 19, 18, 33, 1, 3, 3, (2, 1), (1, 1), (1, 0, 1, 2)),
]


def temporary(op: Op, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(parent, channel): the in-place temporary of the size the planner reserves, inside a
    poisoned parent with room after it (a kernel writing past it shows there)."""
    from memfit.planning.scratch import in_place_scratch_bytes

    _, ho, wo, _ = op.output.shape
    parent = np.full(ho * wo + 64, POISON[np.dtype(dtype)], dtype)
    channel = parent[: ho * wo]
    assert channel.nbytes == in_place_scratch_bytes(op)
    return parent, channel


def check_depthwise_in_place(lib: ctypes.CDLL, case: tuple, quantized: bool) -> None:
    rng = generator("depthwise in place", case, quantized)
    op, (x, weights, bias) = depthwise_op(rng, case, quantized, "none")
    want = expected(op, x, weights, bias)
    buffer = x.copy()
    y = np.ndarray(want.shape, want.dtype, buffer=buffer)
    assert want.size <= x.size
    parent, channel = temporary(op, want.dtype)
    call(
        lib,
        params.kernel_name(op, in_place=True),
        ptr(buffer),
        ref(view(buffer)),
        ptr(weights),
        ptr(bias),
        ptr(buffer),
        ref(view(y)),
        ref(struct(params.conv(op))),
        ref(depthwise_args(op, quantized)),
        ptr(channel),
    )
    (assert_same if quantized else assert_close)(y, want)
    assert_untouched(parent, channel)


@pytest.mark.parametrize("case", DEPTHWISE_IN_PLACE_CASES)
@pytest.mark.parametrize("quantized", [False, True])
def test_depthwise_conv2d_in_place(lib: ctypes.CDLL, case: tuple, quantized: bool) -> None:
    """The output overwrites the input's buffer channel by channel, as the planner lays it out
    (output contiguous from the same start), with only Ho*Wo elements of temporary."""
    check_depthwise_in_place(lib, case, quantized)


# ---- dense layers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "depth", "units"), [(1, 7, 3), (3, 64, 10), (2, 1000, 37), (5, 33, 4)]
)
def test_fully_connected_f32(lib: ctypes.CDLL, rows: int, depth: int, units: int) -> None:
    rng = generator("fc f32", rows, depth, units)
    x, weights, bias = (
        floats(rng, (rows, depth)),
        floats(rng, (units, depth)),
        floats(rng, (units,)),
    )
    op = single_op(
        "fully_connected",
        [(x, None, False), (weights, None, True), (bias, None, True)],
        {"activation": "relu"},
    )
    want = expected(op, x, weights, bias)
    parent, y = output_buffer(want.shape, np.float32, rng, True)
    call(
        lib,
        params.kernel_name(op),
        ptr(x),
        ref(view(x)),
        ptr(weights),
        ptr(bias),
        ptr(y),
        ref(view(y)),
        ref(struct(params.float_activation(op))),
    )
    assert_close(y, want)
    assert_untouched(parent, y)


@pytest.mark.parametrize(("rows", "depth", "units"), [(1, 7, 3), (3, 64, 10), (2, 1000, 37)])
@pytest.mark.parametrize("per_tensor", [False, True])
def test_fully_connected_s8(
    lib: ctypes.CDLL, rows: int, depth: int, units: int, per_tensor: bool
) -> None:
    rng = generator("fc s8", rows, depth, units, per_tensor)
    x, weights = int8(rng, (rows, depth)), int8(rng, (units, depth))
    xq = random_q(rng)
    if per_tensor:  # with a weights zero point, which TFLite honours per tensor
        wq, wscale = q(0.01, int(rng.integers(-5, 6))), 0.01
    else:
        wscales = np.exp(rng.uniform(np.log(0.002), np.log(0.02), units))
        wq, wscale = per_channel(wscales), float(wscales.mean())
    yq = q(xq.scale[0] * wscale * 40 * math.sqrt(depth), rng.integers(-20, 20))
    bias = rng.integers(-5000, 5000, units).astype(np.int32)
    op = single_op(
        "fully_connected",
        [(x, xq, False), (weights, wq, True), (bias, None, True)],
        {"activation": "none"},
        quant=yq,
    )
    want = expected(op, x, weights, bias)
    parent, y = output_buffer(want.shape, np.int8, rng, True)
    call(
        lib,
        params.kernel_name(op),
        ptr(x),
        ref(view(x)),
        ptr(weights),
        ptr(bias),
        ptr(y),
        ref(view(y)),
        ref(struct(params.requant(op))),
    )
    assert_same(y, want)
    assert_untouched(parent, y)


# ---- fused depthwise tiling: partial layers and accumulator outputs ---------------------------


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("first", [True, False])
def test_partial_conv2d_and_accumulator_output(
    lib: ctypes.CDLL, quantized: bool, first: bool
) -> None:
    """Two partitions of a conv's input channels accumulate (the second in place into the
    accumulator) and the accumulator output gives the untiled layer."""
    rng = generator("partial conv", quantized, first)
    case = (1, 9, 8, 6, 11, 3, 3, (1, 2), (1, 1), (1, 1, 1, 0), 1)
    if quantized:
        layer, (x, weights, bias) = quantized_conv(rng, case, "relu")
    else:
        x, weights, bias = floats(rng, (1, 9, 8, 6)), floats(rng, (11, 3, 3, 6)), floats(rng, (11,))
        layer = single_op(
            "conv2d",
            [(x, None, False), (weights, None, True), (bias, None, True)],
            conv_attrs(case, "relu"),
        )
    want = expected(layer, x, weights, bias)
    attrs = {k: v for k, v in conv_attrs(case, "none").items() if k not in ("groups", "activation")}
    xq = layer.inputs[0].quant
    wq = layer.inputs[1].quant
    acc_dtype = np.int32 if quantized else np.float32
    acc = None
    for c0, c1 in ((0, 4), (4, 6)):
        part_w = np.ascontiguousarray(weights[..., c0:c1])
        part_x = strided_input(np.ascontiguousarray(x[..., c0:c1]), rng)
        inputs = [(np.ascontiguousarray(part_x), xq, False), (part_w, wq, True)]
        if acc is not None:
            inputs.append((acc.copy(), None, False))
        op = single_op(
            "partial_conv2d", inputs, attrs, dtype=DType.INT32 if quantized else DType.FLOAT32
        )
        partial = expected(
            op, np.ascontiguousarray(part_x), part_w, None if acc is None else acc.copy()
        )
        out = np.full(partial.shape, POISON[np.dtype(acc_dtype)], acc_dtype) if acc is None else acc
        extra = [ctypes.c_int32(params.partial_offsets(op)[0])] if quantized else []
        weights_arg = part_w if quantized else params.packed_conv_weights(op)
        call(
            lib,
            params.kernel_name(op),
            ptr(part_x),
            ref(view(part_x)),
            ptr(weights_arg),
            ptr(acc),
            None if acc is None else ref(view(acc)),
            ptr(out),
            ref(view(out)),
            ref(struct(params.conv(op))),
            *extra,
            ptr(workspace(op)),
        )
        (assert_same if quantized else assert_close)(out, partial)
        acc = out
    assert acc is not None
    acc_q = None
    if quantized:
        acc_q = Quantization(tuple(xq.scale[0] * s for s in wq.scale), (0,) * 11, 3)
    out_op = single_op(
        "accumulator_output",
        [(acc, acc_q, False), (bias, None, True)],
        {"activation": "relu"},
        dtype=DType.INT8 if quantized else DType.FLOAT32,
        quant=layer.output.quant,
    )
    parent, y = output_buffer(want.shape, want.dtype, rng, True)
    args = struct(params.requant(out_op) if quantized else params.float_activation(out_op))
    call(
        lib,
        params.kernel_name(out_op),
        ptr(acc),
        ref(view(acc)),
        ptr(bias),
        ptr(y),
        ref(view(y)),
        ref(args),
    )
    compare = assert_same if quantized else assert_close
    compare(y, want)  # the untiled layer
    compare(y, expected(out_op, acc, bias))  # the NumPy accumulator_output
    assert_untouched(parent, y)


@pytest.mark.parametrize("quantized", [False, True])
def test_accumulator_output_in_place(lib: ctypes.CDLL, quantized: bool) -> None:
    """The output written over its accumulator: float element over element, int8 into the
    first bytes of the int32 buffer (narrowing), as memfit.planning.storage plans them."""
    rng = generator("accumulator output in place", quantized)
    shape = (2, 5, 3, 7)
    bias = rng.integers(-3000, 3000, 7).astype(np.int32) if quantized else floats(rng, (7,))
    if quantized:
        acc = rng.integers(-200000, 200000, shape).astype(np.int32)
        acc_q = Quantization(tuple(0.001 * (1 + i / 7) for i in range(7)), (0,) * 7, 3)
        op = single_op(
            "accumulator_output",
            [(acc, acc_q, False), (bias, None, True)],
            {"activation": "relu6"},
            dtype=DType.INT8,
            quant=q(0.7, -9),
        )
        args = struct(params.requant(op))
    else:
        acc = floats(rng, shape)
        op = single_op(
            "accumulator_output", [(acc, None, False), (bias, None, True)], {"activation": "relu"}
        )
        args = struct(params.float_activation(op))
    want = expected(op, acc, bias)
    buffer = acc.copy()
    y = np.ndarray(want.shape, want.dtype, buffer=buffer)
    call(
        lib,
        params.kernel_name(op),
        ptr(buffer),
        ref(view(buffer)),
        ptr(bias),
        ptr(buffer),
        ref(view(y)),
        ref(args),
    )
    (assert_same if quantized else assert_close)(y, want)


@pytest.mark.parametrize("activation", ["none", "relu6", "tanh"])
def test_accumulator_output_f32_in_place(lib: ctypes.CDLL, activation: str) -> None:
    """The float accumulator output over its own accumulator (as FDT plans it), against NumPy."""
    rng = generator("accumulator output in place", activation)
    acc, bias = floats(rng, (2, 5, 7, 19)), floats(rng, (19,))
    op = single_op(
        "accumulator_output", [(acc, None, False), (bias, None, True)], {"activation": activation}
    )
    want = expected(op, acc, bias)
    y = acc.copy()
    call(
        lib,
        params.kernel_name(op),
        ptr(y),
        ref(view(y)),
        ptr(bias),
        ptr(y),
        ref(view(y)),
        ref(struct(params.float_activation(op))),
    )
    assert_close(y, want)


@pytest.mark.parametrize("quantized", [False, True])
def test_partial_fully_connected(lib: ctypes.CDLL, quantized: bool) -> None:
    rng = generator("partial fc", quantized)
    rows, units = 2, 9
    acc_dtype = np.int32 if quantized else np.float32
    acc = None
    for depth in (13, 40):
        if quantized:
            x, weights = int8(rng, (rows, depth)), int8(rng, (units, depth))
            xq, wq = random_q(rng), q(0.01, 3)
        else:
            x, weights = floats(rng, (rows, depth)), floats(rng, (units, depth))
            xq = wq = None
        inputs = [(x, xq, False), (weights, wq, True)]
        if acc is not None:
            inputs.append((acc.copy(), None, False))
        op = single_op(
            "partial_fully_connected", inputs, {}, dtype=DType.INT32 if quantized else DType.FLOAT32
        )
        partial = expected(op, x, weights, None if acc is None else acc.copy())
        parent, out = output_buffer(partial.shape, acc_dtype, rng, True)
        extra = [ctypes.c_int32(v) for v in params.partial_offsets(op)] if quantized else []
        call(
            lib,
            params.kernel_name(op),
            ptr(x),
            ref(view(x)),
            ptr(weights),
            ptr(acc),
            None if acc is None else ref(view(acc)),
            ptr(out),
            ref(view(out)),
            *extra,
        )
        (assert_same if quantized else assert_close)(out, partial)
        assert_untouched(parent, out)
        acc = np.ascontiguousarray(out)


# ---- pooling and reductions ---------------------------------------------------------------------

# (n, h, w, c, kernel, stride, pads, count_include_pad)
POOL_CASES = [
    (1, 9, 9, 5, (3, 3), (2, 2), (1, 1, 1, 1), False),
    (2, 8, 7, 70, (2, 3), (2, 1), (0, 1, 0, 1), True),
    (1, 7, 7, 3, (7, 7), (1, 1), (0, 0, 0, 0), False),
]


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("kind", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("quantized", [False, True])
def test_pool(lib: ctypes.CDLL, case: tuple, kind: str, quantized: bool) -> None:
    rng = generator(kind, case, quantized)
    n, h, w, c, kernel, stride, pads, include = case
    attrs = {
        "kernel": kernel,
        "strides": stride,
        "pads": pads,
        "activation": "relu",
        "count_include_pad": include,
    }
    if quantized:
        x, xq = int8(rng, (n, h, w, c)), random_q(rng)
        op = single_op(kind, [(x, xq, False)], attrs, quant=xq)
        act = struct(params.range_s8(op))
    else:
        x = floats(rng, (n, h, w, c))
        op = single_op(kind, [(x, None, False)], attrs)
        act = struct(params.float_activation(op))
    want = expected(op, x)
    xin = strided_input(x, rng)
    parent, y = output_buffer(want.shape, want.dtype, rng, True)
    call(
        lib,
        params.kernel_name(op),
        ptr(xin),
        ref(view(xin)),
        ptr(y),
        ref(view(y)),
        ref(struct(params.pool(op))),
        ref(act),
    )
    (assert_same if quantized else assert_close)(y, want)
    assert_untouched(parent, y)


POOL_IN_PLACE_CASES = [c for c in POOL_CASES if c[0] * c[1] * c[2] > 1] + [
    (1, 23, 23, 16, (3, 3), (2, 2), (0, 0, 0, 0), False),
    (2, 14, 13, 9, (3, 3), (1, 1), (1, 1, 1, 1), False),
    (1, 12, 12, 40, (3, 3), (1, 1), (1, 1, 1, 1), True),
    # FFMT tiles of ResNet's stem pooling (with and without the padding above): every channel
    # at once, straight into the output after the first row; more channels than a block of
    # the row kernels (64); odd channels in batches of 2; a 2x2 window without padding
    (1, 22, 30, 64, (3, 3), (2, 2), (1, 1, 1, 1), False),
    (1, 15, 28, 20, (3, 3), (2, 2), (0, 1, 1, 1), False),
    (1, 18, 18, 130, (3, 3), (2, 2), (1, 1, 1, 1), True),
    (2, 11, 13, 37, (3, 3), (2, 2), (1, 1, 1, 1), True),
    (1, 16, 17, 24, (2, 2), (2, 2), (0, 0, 0, 1), False),
]


def check_pool_in_place(
    lib: ctypes.CDLL, case: tuple, kind: str, quantized: bool, activation: str = "none"
) -> None:
    rng = generator(kind, "in place", case, quantized)
    n, h, w, c, kernel, stride, pads, include = case
    attrs = {"kernel": kernel, "strides": stride, "pads": pads, "count_include_pad": include}
    attrs["activation"] = activation
    if quantized:
        x, xq = int8(rng, (n, h, w, c)), random_q(rng)
        op = single_op(kind, [(x, xq, False)], attrs, quant=xq)
        act = struct(params.range_s8(op))
    else:
        x = floats(rng, (n, h, w, c))
        op = single_op(kind, [(x, None, False)], attrs)
        act = struct(params.float_activation(op))
    want = expected(op, x)
    buffer = x.copy()
    y = np.ndarray(want.shape, want.dtype, buffer=buffer)
    parent, channel = temporary(op, want.dtype)
    call(
        lib,
        params.kernel_name(op, in_place=True),
        ptr(buffer),
        ref(view(buffer)),
        ptr(buffer),
        ref(view(y)),
        ref(struct(params.pool(op))),
        ref(act),
        ptr(channel),
    )
    (assert_same if quantized else assert_close)(y, want)
    assert_untouched(parent, channel)


@pytest.mark.parametrize("case", POOL_IN_PLACE_CASES)
@pytest.mark.parametrize("kind", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("quantized", [False, True])
def test_pool_in_place(lib: ctypes.CDLL, case: tuple, kind: str, quantized: bool) -> None:
    """The output overwrites the input's buffer channel by channel (contiguous from the same
    start), through a one-channel temporary of the size the planner reserves."""
    check_pool_in_place(lib, case, kind, quantized, "relu" if case[3] % 2 else "none")


@pytest.mark.parametrize("case", [POOL_IN_PLACE_CASES[-3], POOL_IN_PLACE_CASES[5]])
@pytest.mark.parametrize("kind", ["max_pool2d", "avg_pool2d"])
def test_pool_in_place_without_vector_types(
    lib_without_vector_types: ctypes.CDLL, case: tuple, kind: str
) -> None:
    check_pool_in_place(lib_without_vector_types, case, kind, False)


@pytest.mark.parametrize(
    "case", [DEPTHWISE_IN_PLACE_CASES[-4], DEPTHWISE_IN_PLACE_CASES[-3], DEPTHWISE_CASES[1]]
)
def test_depthwise_in_place_without_vector_types(
    lib_without_vector_types: ctypes.CDLL, case: tuple
) -> None:
    check_depthwise_in_place(lib_without_vector_types, case, False)


def keepdims_view(y: np.ndarray, x: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """y (reduced, maybe without the reduced axes) as an array of x's rank."""
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return y.reshape(shape)


@pytest.mark.parametrize(
    ("shape", "axes", "keepdims"),
    [
        ((2, 7, 5, 9), (1, 2), False),
        ((1, 6, 4, 3), (1, 2), True),
        ((2, 3, 4, 5), (3,), True),
        ((3, 5, 2), (0, 2), False),
        ((1, 1, 4, 6), (-1,), False),
    ],
)
@pytest.mark.parametrize("kind", ["mean", "reduce_max"])
@pytest.mark.parametrize("quantized", [False, True])
def test_reductions(
    lib: ctypes.CDLL, shape: tuple, axes: tuple, keepdims: bool, kind: str, quantized: bool
) -> None:
    rng = generator(kind, shape, axes, quantized)
    attrs = {"axes": axes, "keepdims": keepdims}
    resolved = tuple(a % len(shape) for a in axes)
    if quantized:
        x, xq = int8(rng, shape), random_q(rng)
        op = single_op(kind, [(x, xq, False)], attrs, quant=random_q(rng) if kind == "mean" else xq)
    else:
        x = floats(rng, shape)
        op = single_op(kind, [(x, None, False)], attrs)
    want = expected(op, x)
    y = np.full(want.shape, POISON[want.dtype], want.dtype)
    yk = keepdims_view(y, x, resolved)
    extra = [ref(struct(params.mean_s8(op)))] if quantized and kind == "mean" else []
    call(lib, params.kernel_name(op), ptr(x), ref(nd(x)), ptr(yk), ref(nd(yk)), *extra)
    (assert_same if quantized else assert_close)(y, want)


# ---- elementwise ------------------------------------------------------------------------------

BROADCASTS = [
    ((2, 5, 6, 7), (2, 5, 6, 7)),
    ((1, 4, 3, 9), (1, 1, 1, 9)),
    ((1, 4, 3, 9), (1, 1, 1, 1)),
    ((1, 1, 1, 8), (2, 3, 4, 8)),
    ((3, 4, 1, 5), (3, 1, 6, 1)),
    ((6, 10), (10,)),
]


def operands(
    rng: np.random.Generator, shapes: tuple, make: object
) -> tuple[np.ndarray, np.ndarray]:
    a, b = (make(rng, s) for s in shapes)  # type: ignore[operator]
    return a, b


def padded(a: np.ndarray, rank: int) -> np.ndarray:
    return a.reshape((1,) * (rank - a.ndim) + a.shape)


@pytest.mark.parametrize("shapes", BROADCASTS)
@pytest.mark.parametrize("kind", ["add", "sub", "mul", "div", "maximum", "minimum"])
def test_binary_f32(lib: ctypes.CDLL, shapes: tuple, kind: str) -> None:
    rng = generator(kind, shapes)
    a, b = operands(rng, shapes, floats)
    if kind == "div":
        b = np.where(np.abs(b) < 0.1, 0.5, b).astype(np.float32)
    attrs = {"activation": "relu6"} if kind in ("add", "mul") else {}
    op = single_op(kind, [(a, None, False), (b, None, False)], attrs)
    want = expected(op, a, b)
    parent, y = output_buffer(want.shape, np.float32, rng, True)
    rank = want.ndim
    call(
        lib,
        params.kernel_name(op),
        ptr(a),
        ref(view(padded(a, rank))),
        ptr(b),
        ref(view(padded(b, rank))),
        ptr(y),
        ref(view(y)),
        ref(struct(params.float_activation(op))),
    )
    assert_close(y, want)
    assert_untouched(parent, y)


def test_binary_f32_in_place(lib: ctypes.CDLL) -> None:
    rng = generator("add in place")
    a, b = floats(rng, (1, 4, 5, 6)), floats(rng, (1, 1, 1, 6))
    op = single_op("add", [(a, None, False), (b, None, False)], {"activation": "tanh"})
    want = expected(op, a, b)
    call(
        lib,
        "mf_add_f32",
        ptr(a),
        ref(view(a)),
        ptr(b),
        ref(view(b)),
        ptr(a),
        ref(view(a)),
        ref(struct(params.float_activation(op))),
    )
    assert_close(a, want)


@pytest.mark.parametrize("shapes", BROADCASTS)
@pytest.mark.parametrize("kind", ["add", "sub", "mul", "maximum", "minimum"])
def test_binary_s8(lib: ctypes.CDLL, shapes: tuple, kind: str) -> None:
    rng = generator(kind, shapes, "s8")
    a, b = operands(rng, shapes, int8)
    same = kind in ("maximum", "minimum")  # TFLite: one quantization for all three
    aq = random_q(rng)
    bq, yq = (aq, aq) if same else (random_q(rng), random_q(rng, 0.01, 0.2))
    attrs = {} if same else {"activation": "relu"}
    op = single_op(kind, [(a, aq, False), (b, bq, False)], attrs, quant=yq)
    want = expected(op, a, b)
    parent, y = output_buffer(want.shape, np.int8, rng, True)
    rank = want.ndim
    extra = [] if same else [ref(struct(params.mul_s8(op) if kind == "mul" else params.add_s8(op)))]
    call(
        lib,
        params.kernel_name(op),
        ptr(a),
        ref(view(padded(a, rank))),
        ptr(b),
        ref(view(padded(b, rank))),
        ptr(y),
        ref(view(y)),
        *extra,
    )
    assert_same(y, want)
    assert_untouched(parent, y)


UNARY_F32 = {
    "relu": {},
    "relu6": {},
    "relu_n1_to_1": {},
    "clamp": {"min": -0.5, "max": 1.25},
    "logistic": {},
    "tanh": {},
    "hard_swish": {},
    "leaky_relu": {"alpha": 0.1},
}


@pytest.mark.parametrize("kind", sorted(UNARY_F32))
def test_unary_f32(lib: ctypes.CDLL, kind: str) -> None:
    rng = generator(kind, "f32")
    x = (floats(rng, (2, 5, 3, 7)) * 4).astype(np.float32)
    op = single_op(kind, [(x, None, False)], UNARY_F32[kind])
    want = expected(op, x)
    xin = strided_input(x, rng)
    parent, y = output_buffer(want.shape, np.float32, rng, True)
    name = params.kernel_name(op)
    extra: list = []
    if name == "mf_clamp_f32":
        extra = [f32(v) for v in params.clamp_bounds(op)]
    elif kind == "leaky_relu":
        extra = [f32(op.attrs["alpha"])]
    call(lib, name, ptr(xin), ref(view(xin)), ptr(y), ref(view(y)), *extra)
    assert_close(y, want)
    assert_untouched(parent, y)


def test_batch_norm_f32(lib: ctypes.CDLL) -> None:
    rng = generator("batch norm")
    x = floats(rng, (1, 4, 5, 6))
    scale, bias, mean = floats(rng, (6,)), floats(rng, (6,)), floats(rng, (6,))
    var = rng.uniform(0.1, 2.0, 6).astype(np.float32)
    constants = [(v, None, True) for v in (scale, bias, mean, var)]
    op = single_op("batch_norm", [(x, None, False), *constants], {"epsilon": 1e-3})
    want = expected(op, x, scale, bias, mean, var)
    parent, y = output_buffer(want.shape, np.float32, rng, True)
    call(
        lib,
        "mf_batch_norm_f32",
        ptr(x),
        ref(view(x)),
        ptr(scale),
        ptr(bias),
        ptr(mean),
        ptr(var),
        ptr(y),
        ref(view(y)),
        f32(op.attrs["epsilon"]),
    )
    assert_close(y, want)
    assert_untouched(parent, y)


ALL_INT8 = np.arange(-128, 128, dtype=np.int8).reshape(1, 2, 4, 32)
UNARY_S8 = {
    "relu": {},
    "relu6": {},
    "relu_n1_to_1": {},
    "clamp": {"min": -20.5, "max": 90.0},
    "quantize": {},
    "leaky_relu": {"alpha": 0.2},
    "logistic": {},
    "tanh": {},
    "hard_swish": {},
}


def unary_s8_params(op: Op) -> params.Struct:
    name = params.kernel_name(op)
    if name == "mf_requantize_s8":
        return params.requantize_s8(op)
    if op.kind == "leaky_relu":
        return params.leaky_relu_s8(op)
    if op.kind == "hard_swish":
        return params.hard_swish_s8(op)
    return params.sigmoid_s8(op)


@pytest.mark.parametrize("kind", sorted(UNARY_S8))
@pytest.mark.parametrize("trial", range(4))
def test_unary_s8_on_every_value(lib: ctypes.CDLL, kind: str, trial: int) -> None:
    rng = generator(kind, trial, "s8")
    xq = random_q(rng, 0.002, 0.2)
    yq = {"logistic": q(1 / 256, -128), "tanh": q(1 / 128, 0)}.get(kind, random_q(rng, 0.002, 0.2))
    if kind == "relu6":
        yq = xq
    x = ALL_INT8
    op = single_op(kind, [(x, xq, False)], UNARY_S8[kind], quant=yq)
    want = expected(op, x)
    parent, y = output_buffer(want.shape, np.int8, rng, True)
    call(
        lib,
        params.kernel_name(op),
        ptr(x),
        ref(view(x)),
        ptr(y),
        ref(view(y)),
        ref(struct(unary_s8_params(op))),
    )
    assert_same(y, want)
    assert_untouched(parent, y)


def test_int8_unary_in_place(lib: ctypes.CDLL) -> None:
    x = ALL_INT8.copy()
    op = single_op("tanh", [(x, q(0.05, 3), False)], {}, quant=q(1 / 128))
    want = expected(op, x)
    call(
        lib,
        "mf_tanh_s8",
        ptr(x),
        ref(view(x)),
        ptr(x),
        ref(view(x)),
        ref(struct(params.sigmoid_s8(op))),
    )
    assert_same(x, want)


@pytest.mark.parametrize("power", [None, -12, -11, -13, -9])
def test_lstm_gate_functions_on_every_int16(lib: ctypes.CDLL, power: int | None) -> None:
    """The int8 LSTM's sigmoid (power None) and tanh at input scale 2^power, on every input:
    a one-unit error here rarely shows in an LSTM's int8 output, so it is checked alone."""
    x = np.arange(-(1 << 15), 1 << 15, dtype=np.int64)
    if power is None:
        function, arguments, want = lib.mf_sigmoid_s16, (), sigmoid_int16(x)
    else:
        function, arguments, want = lib.mf_tanh_s16, (power,), tanh_int16(x, power)
    function.restype = ctypes.c_int16
    got = np.array([function(int(v), *arguments) for v in x], np.int16)
    assert_same(got, want)


def lstm_weights(op: Op) -> ctypes.Structure:
    """``mf_lstm_weights_f32`` / ``_s8`` of ``op``: per field, a pointer per gate (or one)."""
    int8 = params.is_quantized(op)
    per_gate = dict(params.LSTM_WEIGHTS)
    if int8:
        del per_gate["peephole"], per_gate["layer_norm"]
    single = {} if int8 else params.LSTM_PROJECTION

    def pointer(index: int | None) -> ctypes.c_void_p | None:
        t = None if index is None else op.input(index)
        return None if t is None else ptr(t.data)

    fields = [(name, ctypes.c_void_p * len(GATES)) for name in per_gate]
    fields += [(name, ctypes.c_void_p) for name in single]
    mirror = type("MfLstmWeights", (ctypes.Structure,), {"_fields_": fields})()
    for name, by_gate in per_gate.items():
        setattr(
            mirror, name, (ctypes.c_void_p * len(GATES))(*(pointer(by_gate.get(g)) for g in GATES))
        )
    for name, index in single.items():
        setattr(mirror, name, pointer(index))
    return mirror


LSTM_KERNEL_CASES = {
    **{f"int8 {case}": {**options, "int8": True} for case, options in INT8_CASES.items()},
    **{
        f"float {case}": options for case, options in {**FLOAT_CASES, **FLOAT_VARIANT_CASES}.items()
    },
}


@pytest.mark.parametrize("case", LSTM_KERNEL_CASES)
def test_lstm_touches_exactly_its_workspace(lib: ctypes.CDLL, case: str) -> None:
    """Every LSTM variant against the NumPy kernel, on a strided output (the cell state may
    wait in the output's next step), and writing exactly ``params.workspace_bytes`` bytes of
    its workspace, with NULL for none (the bytes after it keep the canary)."""
    rng = generator("lstm", case)
    op = _random_lstm(rng, **LSTM_KERNEL_CASES[case])
    int8 = params.is_quantized(op)
    x = _random_input(rng, op)
    want = _run_lstm(op, x)
    size = params.workspace_bytes(op)
    extents = []
    for canary in (0x00, 0xA5):
        parent, y = output_buffer(want.shape, want.dtype, rng, True)
        space = np.full(size + 64, canary, np.uint8)
        kernel_params = params.lstm_s8(op) if int8 else params.lstm_f32(op)
        call(
            lib,
            f"mf_lstm_{'s8' if int8 else 'f32'}",
            ptr(x),
            ref(view(x)),
            ref(lstm_weights(op)),
            ptr(y),
            ref(view(y)),
            ref(struct(kernel_params)),
            ptr(space) if size else None,
        )
        (assert_same if int8 else assert_close)(y, want)
        assert_untouched(parent, y)
        touched = np.flatnonzero(space != canary)
        extents.append(int(touched[-1]) + 1 if touched.size else 0)
    assert max(extents) == size


# ---- softmax, LRN, quantize/dequantize --------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 10), (2, 3, 4, 37), (1, 1000)])
@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_softmax_f32(lib: ctypes.CDLL, shape: tuple, beta: float) -> None:
    rng = generator("softmax f32", shape, beta)
    x = (floats(rng, shape) * 5).astype(np.float32)
    op = single_op("softmax", [(x, None, False)], {"beta": beta})
    want = expected(op, x)
    parent, y = output_buffer(want.shape, np.float32, rng, True)
    call(lib, "mf_softmax_f32", ptr(x), ref(view(x)), ptr(y), ref(view(y)), f32(beta))
    assert_close(y, want)
    assert_untouched(parent, y)


@pytest.mark.parametrize("shape", [(1, 10), (2, 3, 4, 37), (1, 1000), (1, 256)])
@pytest.mark.parametrize("out_dtype", [DType.INT8, DType.INT16])
@pytest.mark.parametrize("trial", range(3))
def test_softmax_s8(lib: ctypes.CDLL, shape: tuple, out_dtype: DType, trial: int) -> None:
    rng = generator("softmax s8", shape, out_dtype, trial)
    x = int8(rng, shape)
    if shape == (1, 256):
        x = ALL_INT8.reshape(shape)
    xq = random_q(rng, 0.01, 0.5)
    yq = q(1 / 256, -128) if out_dtype is DType.INT8 else q(1 / 32768, -32768)
    op = single_op(
        "softmax", [(x, xq, False)], {"beta": [1.0, 0.7, 2.0][trial]}, dtype=out_dtype, quant=yq
    )
    want = expected(op, x)
    y = np.full(want.shape, -5, want.dtype)
    call(
        lib,
        params.kernel_name(op),
        ptr(x),
        ref(view(x)),
        ptr(y),
        ref(view(y)),
        ref(struct(params.softmax_s8(op))),
    )
    assert_same(y, want)


@pytest.mark.parametrize(
    ("radius", "channels", "beta"), [(2, 19, 0.75), (1, 3, 0.6), (3, 4, 0.75), (2, 1, 1.0)]
)
def test_lrn_f32(lib: ctypes.CDLL, radius: int, channels: int, beta: float) -> None:
    """The running window sum and the square-root path of beta 0.75, also with fewer channels
    than the window."""
    rng = generator(f"lrn{radius}{channels}")
    x = (floats(rng, (2, 5, 4, channels)) * 3).astype(np.float32)
    attrs = {"radius": radius, "bias": 1.0, "alpha": float(np.float32(2e-4)), "beta": beta}
    op = single_op("lrn", [(x, None, False)], attrs)
    want = expected(op, x)
    parent, y = output_buffer(want.shape, np.float32, rng, True)
    call(
        lib,
        "mf_lrn_f32",
        ptr(x),
        ref(view(x)),
        ptr(y),
        ref(view(y)),
        ctypes.c_int32(radius),
        f32(1.0),
        f32(attrs["alpha"]),
        f32(beta),
    )
    assert_close(y, want)
    assert_untouched(parent, y)


def test_quantize_and_dequantize(lib: ctypes.CDLL) -> None:
    rng = generator("quantize")
    x = (floats(rng, (2, 3, 5, 8)) * 3).astype(np.float32)
    x.flat[:6] = [0.25, -0.25, 0.75, -1e9, 1e9, 0.0]  # halves, saturation
    yq = q(0.5, -3)
    quantize = single_op("quantize", [(x, None, False)], {}, dtype=DType.INT8, quant=yq)
    want = expected(quantize, x)
    y = np.zeros(want.shape, np.int8)
    scale, zero_point = params.quantization(quantize.output)
    call(
        lib,
        params.kernel_name(quantize),
        ptr(x),
        ref(view(x)),
        ptr(y),
        ref(view(y)),
        f32(scale),
        ctypes.c_int32(zero_point),
    )
    assert_same(y, want)
    dequantize = single_op("dequantize", [(y, q(0.0371, 5), False)], {}, dtype=DType.FLOAT32)
    want = expected(dequantize, y)
    back = np.zeros(want.shape, np.float32)
    scale, zero_point = params.quantization(dequantize.inputs[0])
    call(
        lib,
        params.kernel_name(dequantize),
        ptr(y),
        ref(view(y)),
        ptr(back),
        ref(view(back)),
        f32(scale),
        ctypes.c_int32(zero_point),
    )
    assert_same(back, want)


# ---- data movement -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.int8])
@pytest.mark.parametrize(
    ("shape", "perm"),
    [
        ((2, 3, 4, 5), (0, 3, 1, 2)),
        ((1, 4, 4, 3, 6), (0, 1, 2, 4, 3)),
        ((5, 7), (1, 0)),
        ((1, 5, 6, 4, 7, 1), (0, 1, 2, 4, 3, 5)),  # a channel shuffle, as ONNX models lower it
        ((3, 1, 4, 2, 1), (2, 1, 4, 0, 3)),
        ((2, 6), (0, 1)),
    ],
)
def test_transpose(lib: ctypes.CDLL, dtype: type, shape: tuple, perm: tuple) -> None:
    rng = generator("transpose", shape, perm, dtype)
    x = strided_input(floats(rng, shape).astype(dtype), rng)
    op = single_op("transpose", [(np.ascontiguousarray(x), None, False)], {"perm": perm})
    want = expected(op, np.ascontiguousarray(x))
    parent, y = output_buffer(want.shape, want.dtype, rng, True)
    call(
        lib,
        "mf_transpose",
        ptr(x),
        ref(nd(x)),
        ptr(y),
        ref(nd(y)),
        ptr(np.asarray(perm, np.int32)),
        ctypes.c_int32(x.itemsize),
    )
    assert_same(y, want)
    assert_untouched(parent, y)


@pytest.mark.parametrize(
    ("begin", "end", "steps", "shrink"),
    [
        ((0, 1, 0, 2), (1, 5, 6, 7), (1, 2, 1, 1), ()),
        ((0, 4, 5, 6), (1, 0, -1, 1), (1, -1, -2, -2), (0,)),
        ((0, 0, 2, 0), (1, 6, 3, 8), (1, 1, 1, 3), (2,)),
    ],
)
def test_strided_slice(
    lib: ctypes.CDLL, begin: tuple, end: tuple, steps: tuple, shrink: tuple
) -> None:
    rng = generator("slice", begin, end, steps)
    x = floats(rng, (1, 6, 7, 8))
    op = single_op(
        "strided_slice",
        [(x, None, False)],
        {"begin": begin, "end": end, "strides": steps, "shrink_axes": shrink},
    )
    want = expected(op, x)
    unshrunk = [  # the sliced shape before dropping shrunk axes, as the NumPy kernel slices
        len(range(*slice(b, e if e >= 0 else None, s).indices(d)))
        for b, e, s, d in zip(begin, end, steps, x.shape, strict=True)
    ]
    y = np.full(want.shape, POISON[want.dtype], want.dtype)
    yk = y.reshape(unshrunk)
    call(
        lib,
        "mf_strided_slice",
        ptr(x),
        ref(nd(x)),
        ptr(yk),
        ref(nd(yk)),
        ptr(np.asarray(begin, np.int32)),
        ptr(np.asarray(steps, np.int32)),
        ctypes.c_int32(4),
    )
    assert_same(y, want)


@pytest.mark.parametrize("quantized", [False, True])
def test_pad(lib: ctypes.CDLL, quantized: bool) -> None:
    rng = generator("pad", quantized)
    pads = ((0, 0), (1, 2), (0, 3), (2, 1))
    if quantized:
        x, xq = int8(rng, (1, 4, 5, 3)), q(0.05, 7)
        op = single_op("pad", [(x, xq, False)], {"pads": pads, "value": 0.5}, quant=xq)
    else:
        x = floats(rng, (1, 4, 5, 3))
        op = single_op("pad", [(x, None, False)], {"pads": pads, "value": -1.5})
    want = expected(op, x)
    parent, y = output_buffer(want.shape, want.dtype, rng, True)
    before = np.asarray([b for b, _ in pads], np.int32)
    call(
        lib,
        "mf_pad",
        ptr(x),
        ref(nd(x)),
        ptr(y),
        ref(nd(y)),
        ptr(before),
        ptr(params.pad_value(op)),
        ctypes.c_int32(params.element_size(op)),
    )
    assert_same(y, want)
    assert_untouched(parent, y)


@pytest.mark.parametrize("axis", [3, 1, 0])
def test_concat(lib: ctypes.CDLL, axis: int) -> None:
    rng = generator("concat", axis)
    shapes = [(2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)]
    xs = []
    for i, shape in enumerate(shapes):
        s = list(shape)
        s[axis] += i
        xs.append(strided_input(floats(rng, s), rng) if i == 1 else floats(rng, s))
    op = single_op("concat", [(np.ascontiguousarray(x), None, False) for x in xs], {"axis": axis})
    want = expected(op, *[np.ascontiguousarray(x) for x in xs])
    parent, y = output_buffer(want.shape, want.dtype, rng, True)
    pointers = (ctypes.c_void_p * 3)(*[x.ctypes.data for x in xs])
    views = (MfNd * 3)(*[nd(x) for x in xs])
    call(
        lib,
        "mf_concat",
        pointers,
        views,
        ctypes.c_int32(3),
        ctypes.c_int32(axis),
        ptr(y),
        ref(nd(y)),
        ctypes.c_int32(4),
    )
    assert_same(y, want)
    assert_untouched(parent, y)


def test_reshape_and_copy(lib: ctypes.CDLL) -> None:
    rng = generator("reshape")
    x = strided_input(int8(rng, (2, 3, 4, 5)), rng)
    op = single_op("reshape", [(np.ascontiguousarray(x), None, False)], {}, shape=(6, 20))
    want = expected(op, np.ascontiguousarray(x))
    parent, y = output_buffer(want.shape, want.dtype, rng, True)
    call(lib, "mf_reshape", ptr(x), ref(nd(x)), ptr(y), ref(nd(y)), ctypes.c_int32(1))
    assert_same(y, want)
    assert_untouched(parent, y)
    contiguous = np.zeros(want.shape, np.int8)
    call(
        lib,
        "mf_reshape",
        ptr(want),
        ref(nd(want)),
        ptr(contiguous),
        ref(nd(contiguous)),
        ctypes.c_int32(1),
    )
    assert_same(contiguous, want)
    copy = np.zeros(x.shape, np.int8)
    call(lib, "mf_copy", ptr(x), ref(nd(x)), ptr(copy), ref(nd(copy)), ctypes.c_int32(1))
    assert_same(copy, np.ascontiguousarray(x))


# ---- sanitizers ----------------------------------------------------------------------------------


def _sanitizer_runtime(folder: Path) -> str | None:
    """The ASan runtime to preload into Python, if this compiler can build and run with it."""
    probe = folder / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    built = subprocess.run(
        [CC, *SANITIZE_FLAGS, "-o", str(folder / "probe"), str(probe)], capture_output=True
    )
    if built.returncode != 0 or subprocess.run([str(folder / "probe")]).returncode != 0:
        return None
    found = subprocess.run([CC, "-print-file-name=libasan.so"], capture_output=True, text=True)
    path = found.stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def test_clean_under_sanitizers(tmp_path: Path) -> None:
    """Every test above, against the runtime built with -fsanitize=address,undefined (any
    out-of-bounds access, e.g. past a workspace of exactly workspace_bytes, or undefined
    behaviour aborts the run)."""
    if SANITIZED:
        pytest.skip("this is the sanitized run")
    if shutil.which(CC) is None:
        pytest.skip(f"no C compiler ({CC})")
    runtime = _sanitizer_runtime(tmp_path)
    if runtime is None:
        pytest.skip("the sanitizer runtime is unavailable")
    env = {
        **os.environ,
        "MEMFIT_KERNELS_SANITIZED": "1",
        "LD_PRELOAD": runtime,
        "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        __file__,
        "-q",
        "-x",
        "-s",  # a sanitizer report goes to stderr as the process aborts
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-k",
        "not sanitizers",
    ]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, cwd=Path(__file__).parent.parent
    )
    if result.returncode != 0:
        pytest.fail(f"sanitized run failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    assert " passed" in result.stdout
