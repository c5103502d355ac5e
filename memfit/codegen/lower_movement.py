"""Lowerings of the ops that only move data: copies, reshapes that could not be views,
transposes, slices, padding and concatenation. They work on any element type, on ``mf_nd``
boxes with free strides."""

from __future__ import annotations

from memfit.codegen import params
from memfit.codegen.constants import c_type
from memfit.codegen.lowering import (
    OpContext,
    c_ints,
    declare_nd,
    declare_tensor_nd,
    lowers,
)
from memfit.codegen.params import c_float
from memfit.errors import InternalError
from memfit.ir.core import Tensor


def _input(context: OpContext, index: int = 0) -> Tensor:
    t = context.op.input(index)
    if t is None:
        raise InternalError(f"op {context.op.name} ({context.op.kind}) has no input {index}")
    return t


def _size(t: Tensor) -> int:
    return t.dtype.itemsize


@lowers("identity", "dropout")
def copy(context: OpContext) -> list[str]:
    x, y = _input(context), context.op.output
    return [
        declare_tensor_nd(context, "xv", x),
        declare_tensor_nd(context, "yv", y),
        f"mf_copy({context.pointer(x)}, &xv, {context.pointer(y)}, &yv, {_size(y)});",
    ]


@lowers("reshape")
def reshape(context: OpContext) -> list[str]:
    """A reshape the plan did not make a view (a view has no code at all)."""
    x, y = _input(context), context.op.output
    return [
        declare_tensor_nd(context, "xv", x),
        declare_tensor_nd(context, "yv", y),
        f"mf_reshape({context.pointer(x)}, &xv, {context.pointer(y)}, &yv, {_size(y)});",
    ]


@lowers("transpose")
def transpose(context: OpContext) -> list[str]:
    x, y = _input(context), context.op.output
    return [
        declare_tensor_nd(context, "xv", x),
        declare_tensor_nd(context, "yv", y),
        f"const int32_t perm[] = {c_ints(context.op.attrs['perm'])};",
        f"mf_transpose({context.pointer(x)}, &xv, {context.pointer(y)}, &yv, perm, {_size(y)});",
    ]


@lowers("strided_slice")
def strided_slice(context: OpContext) -> list[str]:
    """The output as a box of the input's rank: shrunk axes are dims of 1 (stride 0)."""
    op = context.op
    x, y = _input(context), op.output
    shrink = set(op.attrs.get("shrink_axes", ()))
    out_strides = iter(context.strides(y))
    dims, strides = [], []
    for axis, (b, e, s) in enumerate(
        zip(op.attrs["begin"], op.attrs["end"], op.attrs["strides"], strict=True)
    ):
        if axis in shrink:
            dims.append(1)
            strides.append(0)
        else:
            dims.append(len(range(b, e, s)))
            strides.append(next(out_strides))
    return [
        declare_tensor_nd(context, "xv", x),
        declare_nd("yv", dims, strides),
        f"const int32_t begin[] = {c_ints(op.attrs['begin'])};",
        f"const int32_t step[] = {c_ints(op.attrs['strides'])};",
        f"mf_strided_slice({context.pointer(x)}, &xv, {context.pointer(y)}, &yv, begin, step, "
        f"{_size(y)});",
    ]


@lowers("pad")
def pad(context: OpContext) -> list[str]:
    op = context.op
    x, y = _input(context), op.output
    before = [b for b, _ in op.attrs["pads"]]
    (value,) = params.pad_value(op).tolist()
    literal = c_float(value) if y.dtype.value == "float32" else str(int(value))
    return [
        declare_tensor_nd(context, "xv", x),
        declare_tensor_nd(context, "yv", y),
        f"const int32_t before[] = {c_ints(before)};",
        f"const {c_type(y.dtype.numpy)} value = {literal};",
        f"mf_pad({context.pointer(x)}, &xv, {context.pointer(y)}, &yv, before, &value, "
        f"{_size(y)});",
    ]


@lowers("concat")
def concat(context: OpContext) -> list[str]:
    """Each input not already written in place into its slice is copied (or, int8 with other
    quantization than the output, requantized) into its slice of the output."""
    from memfit.codegen.lower_compute import requantize_into

    op = context.op
    y = op.output
    axis = op.attrs["axis"] % len(y.shape)
    placed = set(context.in_place.inputs) if context.in_place is not None else set()
    y_strides = context.strides(y)
    lines: list[str] = []
    start = 0
    for position, x in enumerate(op.inputs):
        if x is None:
            raise InternalError(f"concat {op.name} has an absent input")
        offset = start * y_strides[axis]
        start += x.shape[axis]
        if position in placed:
            lines.append(f"/* input {position} ({x.name}) was written in place */")
            continue
        destination = context.address(y, offset)
        if x.quant != y.quant and y.dtype.value == "int8":
            lines += ["{", *(f"    {s}" for s in requantize_into(context, x, destination)), "}"]
            continue
        lines += [
            "{",
            f"    {declare_tensor_nd(context, 'xv', x)}",
            f"    {declare_nd('yv', x.shape, y_strides)}",
            f"    mf_copy({context.pointer(x)}, &xv, {destination}, &yv, {_size(y)});",
            "}",
        ]
    return lines
