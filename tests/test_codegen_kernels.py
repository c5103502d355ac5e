"""The C runtime's kernels against the NumPy kernels, op by op.

The runtime is compiled once per session (``cc -O2 -std=c99 -Wall -Wextra -Werror``) into a
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
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from memfit.codegen import params
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Op, Quantization
from memfit.ir.dtypes import DType
from memfit.runtime.kernels import run_kernel

RUNTIME = Path(params.__file__).resolve().parent / "runtime"
SANITIZED = os.environ.get("MEMFIT_KERNELS_SANITIZED") == "1"
CC = os.environ.get("CC", "cc")
FLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror"]
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


@pytest.fixture(scope="session")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if shutil.which(CC) is None:
        pytest.skip(f"no C compiler ({CC})")
    folder = tmp_path_factory.mktemp("runtime")
    layout = folder / "layout.c"
    layout.write_text(_layout_source())
    out = folder / "libmemfit_runtime.so"
    flags = [*FLAGS, *(SANITIZE_FLAGS if SANITIZED else []), "-fPIC", "-shared"]
    sources = [str(p) for p in sorted(RUNTIME.glob("*.c"))]
    command = [CC, *flags, f"-I{RUNTIME}", "-o", str(out), *sources, str(layout), "-lm"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(out))


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


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize(("activation", "strided"), [("none", False), ("relu6", True)])
def test_conv2d_f32(lib: ctypes.CDLL, case: tuple, activation: str, strided: bool) -> None:
    rng = generator("conv2d_f32", case, activation)
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
