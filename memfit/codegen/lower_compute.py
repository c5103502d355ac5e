"""Lowerings of the ops that compute: convolutions, dense layers, LSTMs, pooling, reductions,
elementwise arithmetic, activations, normalizations and (de)quantization, float and int8.

Which kernel runs an op, and every parameter struct it takes, come from
``memfit.codegen.params`` (the Python side of memfit_runtime.h: int8 multipliers and shifts
derived exactly as TFLite Micro's Prepare derives them). This module decides the operands:
pointers and views of the planned tensors, and the scratch.
"""

from __future__ import annotations

import math

from memfit.codegen import params
from memfit.codegen.lowering import (
    OpContext,
    declare_nd,
    declare_tensor_nd,
    declare_view,
    lowers,
    unsupported,
)
from memfit.codegen.params import c_float
from memfit.codegen.views import View
from memfit.errors import InternalError
from memfit.ir.core import Op, Tensor
from memfit.ir.ops import ACCUMULATOR_INPUT
from memfit.runtime.kernels import is_hybrid, is_quantized
from memfit.runtime.kernels.int8 import activation_range
from memfit.runtime.kernels.lstm import GATES


def _input(context: OpContext, index: int = 0) -> Tensor:
    t = context.op.input(index)
    if t is None:
        raise InternalError(f"op {context.op.name} ({context.op.kind}) has no input {index}")
    return t


def _kernel(context: OpContext) -> str:
    """The runtime function that runs the op."""
    in_place = context.in_place is not None and context.in_place.kind in (
        "depthwise",
        "pool",
        "pointwise",
    )
    return params.kernel_name(context.op, in_place)


def _int8(context: OpContext) -> bool:
    """True when the op computes on int8 (its float counterpart is the other branch)."""
    return is_quantized(context.op)


def _struct(context: OpContext, name: str, struct: params.Struct) -> str:
    """A local parameter struct; its arrays (per-channel multipliers, shifts) are constants."""
    text = params.initializer(struct, lambda field, data: context.array(data, field))
    return f"const {struct.C_TYPE} {name} = {text};"


def _io_views(context: OpContext, x: Tensor, y: Tensor) -> list[str]:
    return [declare_view("xv", context.view(x)), declare_view("yv", context.view(y))]


def _quantization(context: OpContext) -> tuple[str, str]:
    """The int8 requantization (``q``) or the float activation (``act``) of a layer."""
    if _int8(context):
        return _struct(context, "q", params.requant(context.op)), "&q"
    return _struct(context, "act", params.float_activation(context.op)), "&act"


# ---- convolutions and dense layers ---------------------------------------------------------


@lowers("conv2d")
def conv2d(context: OpContext) -> list[str]:
    op = context.op
    if op.attrs.get("primitive") is not None:  # chosen by memfit.selection
        from memfit.selection.lowering import lower

        if context.in_place is not None:
            raise unsupported(op, context.graph, "its chosen primitive cannot run in place")
        return lower(context)
    if is_hybrid(op):
        return _hybrid_conv2d(context)
    x, y, bias = _input(context), op.output, op.input(2)
    kernel = _kernel(context)
    declaration, quantization = _quantization(context)
    if _int8(context):
        weights, workspace = context.pointer(_input(context, 1)), context.scratch("int16_t")
    else:
        weights = context.array(params.packed_conv_weights(op), "weights, packed")
        workspace = context.scratch("float")
    if context.in_place is not None:  # pointwise, through a one-block temporary
        workspace += f", {context.temporary('int8_t' if _int8(context) else 'float')}"
    return [
        *_io_views(context, x, y),
        _struct(context, "geometry", params.conv(op)),
        declaration,
        f"{kernel}({context.pointer(x)}, &xv, {weights}, {context.pointer(bias)}, "
        f"{context.pointer(y)}, &yv, &geometry, {quantization}, {workspace});",
    ]


def _hybrid_conv2d(context: OpContext) -> list[str]:
    """Float activations, int8 weights: the input is quantized at run time (TFLite's hybrid)."""
    op = context.op
    x, w, y, bias = _input(context), _input(context, 1), op.output, op.input(2)
    scale = c_float(params.hybrid_weights_scale(op))
    return [
        *_io_views(context, x, y),
        _struct(context, "geometry", params.conv(op)),
        _struct(context, "act", params.float_activation(op)),
        f"{_kernel(context)}({context.pointer(x)}, &xv, {context.pointer(w)}, "
        f"{context.pointer(bias)}, {context.pointer(y)}, &yv, &geometry, {scale}, &act, "
        f"{context.scratch('int16_t')});",
    ]


@lowers("depthwise_conv2d")
def depthwise_conv2d(context: OpContext) -> list[str]:
    op = context.op
    x, w, y, bias = _input(context), _input(context, 1), op.output, op.input(2)
    kernel = _kernel(context)
    declaration, quantization = _quantization(context)
    operands = (
        f"{context.pointer(x)}, &xv, {context.pointer(w)}, {context.pointer(bias)}, "
        f"{context.pointer(y)}, &yv, &geometry, {quantization}"
    )
    if context.in_place is not None:  # through a one-channel temporary
        operands += f", {context.temporary('int8_t' if _int8(context) else 'float')}"
    return [
        *_io_views(context, x, y),
        _struct(context, "geometry", params.conv(op)),
        declaration,
        f"{kernel}({operands});",
    ]


def _dense_views(context: OpContext, x: Tensor, y: Tensor, depth: int) -> list[str]:
    """Views of a dense layer: one row of ``depth`` inputs per position. An input flattened by
    the layer (its last axis is not ``depth``) is viewed as [rows, depth]: it must be dense."""
    views = []
    for name, tensor, width in (("xv", x, depth), ("yv", y, y.shape[-1])):
        view = context.view(tensor)
        if tensor.shape[-1] != width:
            if not view.contiguous:
                raise unsupported(
                    context.op, context.graph, f"it flattens the strided tensor {tensor.name}"
                )
            rows = math.prod(tensor.shape) // width
            view = View(view.offset, (1, 1, rows, width), (rows * width, rows * width, width))
        views.append(declare_view(name, view))
    return views


@lowers("fully_connected")
def fully_connected(context: OpContext) -> list[str]:
    op = context.op
    x, w, y, bias = _input(context), _input(context, 1), op.output, op.input(2)
    kernel = _kernel(context)
    declaration, quantization = _quantization(context)
    return [
        *_dense_views(context, x, y, w.shape[1]),
        declaration,
        f"{kernel}({context.pointer(x)}, &xv, {context.pointer(w)}, {context.pointer(bias)}, "
        f"{context.pointer(y)}, &yv, {quantization});",
    ]


# ---- recurrent layers ----------------------------------------------------------------------


@lowers("lstm")
def lstm(context: OpContext) -> list[str]:
    """The weights go as a struct of pointers to the model's constants, per gate (NULL where
    the op has no such input); the state inputs are not passed: every run starts from zero."""
    op = context.op
    x, y = _input(context), op.output
    int8 = _int8(context)
    suffix = "s8" if int8 else "f32"

    def pointer(index: int | None) -> str:
        return "NULL" if index is None else context.pointer(op.input(index))

    fields = dict(params.LSTM_WEIGHTS)
    if int8:
        del fields["peephole"], fields["layer_norm"]
    weights = [
        "{" + ", ".join(pointer(by_gate.get(g)) for g in GATES) + "}" for by_gate in fields.values()
    ]
    if not int8:
        weights += [pointer(index) for index in params.LSTM_PROJECTION.values()]
    struct = params.lstm_s8(op) if int8 else params.lstm_f32(op)
    return [
        *_io_views(context, x, y),
        f"const mf_lstm_weights_{suffix} weights = {{{', '.join(weights)}}};",
        _struct(context, "p", struct),
        f"{_kernel(context)}({context.pointer(x)}, &xv, &weights, {context.pointer(y)}, &yv, "
        f"&p, {context.scratch('int16_t' if int8 else 'float')});",
    ]


# ---- fused depthwise tiling: partial layers and their accumulator --------------------------


def _accumulator(context: OpContext) -> tuple[list[str], str]:
    """The running accumulator (``ACCUMULATOR_INPUT``), or NULL for the first partition."""
    acc = context.op.input(ACCUMULATOR_INPUT[context.op.kind])
    if acc is None:
        return [], "NULL, NULL"
    return [declare_view("accv", context.view(acc))], f"{context.pointer(acc)}, &accv"


@lowers("partial_conv2d")
def partial_conv2d(context: OpContext) -> list[str]:
    op = context.op
    x, w, y = _input(context), _input(context, 1), op.output
    kernel = _kernel(context)
    declarations, acc = _accumulator(context)
    lines = [
        *_io_views(context, x, y),
        *declarations,
        _struct(context, "geometry", params.conv(op)),
    ]
    if _int8(context):
        input_offset, _ = params.partial_offsets(op)
        return [
            *lines,
            f"{kernel}({context.pointer(x)}, &xv, {context.pointer(w)}, {acc}, "
            f"{context.pointer(y)}, &yv, &geometry, {input_offset}, "
            f"{context.scratch('int16_t')});",
        ]
    weights = context.array(params.packed_conv_weights(op), "weights, packed")
    return [
        *lines,
        f"{kernel}({context.pointer(x)}, &xv, {weights}, {acc}, {context.pointer(y)}, &yv, "
        f"&geometry, {context.scratch('float')});",
    ]


@lowers("partial_fully_connected")
def partial_fully_connected(context: OpContext) -> list[str]:
    op = context.op
    x, w, y = _input(context), _input(context, 1), op.output
    declarations, acc = _accumulator(context)
    operands = f"{context.pointer(x)}, &xv, {context.pointer(w)}, {acc}, {context.pointer(y)}, &yv"
    if _int8(context):
        operands += ", {}, {}".format(*params.partial_offsets(op))
    return [
        *_dense_views(context, x, y, w.shape[1]),
        *declarations,
        f"{_kernel(context)}({operands});",
    ]


@lowers("accumulator_output")
def accumulator_output(context: OpContext) -> list[str]:
    op = context.op
    acc, y, bias = _input(context), op.output, op.input(1)
    declaration, quantization = _quantization(context)
    return [
        declare_view("accv", context.view(acc)),
        declare_view("yv", context.view(y)),
        declaration,
        f"{_kernel(context)}({context.pointer(acc)}, &accv, {context.pointer(bias)}, "
        f"{context.pointer(y)}, &yv, {quantization});",
    ]


@lowers("partial_depthwise_conv2d")
def partial_depthwise_conv2d(context: OpContext) -> list[str]:
    op = context.op
    x, w, y = _input(context), _input(context, 1), op.output
    declarations, acc = _accumulator(context)
    operands = (
        f"{context.pointer(x)}, &xv, {context.pointer(w)}, {acc}, {context.pointer(y)}, &yv, "
        "&geometry"
    )
    if _int8(context):
        operands += f", {params.partial_offsets(op)[0]}"
    return [
        *_io_views(context, x, y),
        *declarations,
        _struct(context, "geometry", params.conv(op)),
        f"{_kernel(context)}({operands});",
    ]


@lowers("partial_sum_pool")
def partial_sum_pool(context: OpContext) -> list[str]:
    x, y = _input(context), context.op.output
    declarations, acc = _accumulator(context)
    return [
        *_io_views(context, x, y),
        *declarations,
        f"{_kernel(context)}({context.pointer(x)}, &xv, {acc}, {context.pointer(y)}, &yv);",
    ]


@lowers("accumulator_average")
def accumulator_average(context: OpContext) -> list[str]:
    op = context.op
    acc, y = _input(context), op.output
    act = params.range_s8(op) if _int8(context) else params.float_activation(op)
    return [
        declare_view("accv", context.view(acc)),
        declare_view("yv", context.view(y)),
        _struct(context, "act", act),
        f"{_kernel(context)}({context.pointer(acc)}, &accv, {context.pointer(y)}, &yv, "
        f"{op.attrs['count']}, &act);",
    ]


# ---- pooling and reductions ----------------------------------------------------------------


@lowers("max_pool2d", "avg_pool2d")
def pool(context: OpContext) -> list[str]:
    op = context.op
    x, y = _input(context), op.output
    if _int8(context):
        bounds = activation_range(op.attrs.get("activation", "none"), y)
        activation = _struct(context, "act", params.RangeS8(*bounds))
    else:
        activation = _struct(context, "act", params.float_activation(op))
    operands = f"{context.pointer(x)}, &xv, {context.pointer(y)}, &yv, &geometry, &act"
    if context.in_place is not None:  # through a one-channel temporary
        operands += f", {context.temporary('int8_t' if _int8(context) else 'float')}"
    return [
        *_io_views(context, x, y),
        _struct(context, "geometry", params.pool(op)),
        activation,
        f"{_kernel(context)}({operands});",
    ]


@lowers("mean", "reduce_max")
def reduce(context: OpContext) -> list[str]:
    """The output as a box of the input's rank: reduced axes are dims of 1."""
    op = context.op
    x, y = _input(context), op.output
    axes = {a % len(x.shape) for a in op.attrs["axes"]}
    if op.attrs.get("keepdims", True):
        dims, strides = list(y.shape), list(context.strides(y))
    else:
        kept = iter(zip(y.shape, context.strides(y), strict=True))
        dims, strides = [], []
        for axis in range(len(x.shape)):
            dim, stride = (1, 0) if axis in axes else next(kept)
            dims.append(dim)
            strides.append(stride)
    lines = [declare_tensor_nd(context, "xv", x), declare_nd("yv", dims, strides)]
    call = f"{_kernel(context)}({context.pointer(x)}, &xv, {context.pointer(y)}, &yv"
    if op.kind == "mean" and _int8(context):
        return [*lines, _struct(context, "p", params.mean_s8(op)), f"{call}, &p);"]
    return [*lines, f"{call});"]


# ---- elementwise ---------------------------------------------------------------------------


@lowers("add", "sub", "mul", "div", "maximum", "minimum")
def binary(context: OpContext) -> list[str]:
    """Inputs broadcast to the output: each view has the output's dims or 1 on every axis."""
    op = context.op
    a, b, y = _input(context), _input(context, 1), op.output
    lines = [
        declare_view("av", context.view(a)),
        declare_view("bv", context.view(b)),
        declare_view("yv", context.view(y)),
    ]
    call = (
        f"{_kernel(context)}({context.pointer(a)}, &av, {context.pointer(b)}, &bv, "
        f"{context.pointer(y)}, &yv"
    )
    if not _int8(context):
        return [*lines, _struct(context, "act", params.float_activation(op)), f"{call}, &act);"]
    if op.kind in ("add", "sub"):
        return [*lines, _struct(context, "p", params.add_s8(op)), f"{call}, &p);"]
    if op.kind == "mul":
        return [*lines, _struct(context, "p", params.mul_s8(op)), f"{call}, &p);"]
    return [*lines, f"{call});"]


@lowers("relu", "relu6", "relu_n1_to_1", "clamp")
def clamp(context: OpContext) -> list[str]:
    op = context.op
    x, y = _input(context), op.output
    operands = f"{context.pointer(x)}, &xv, {context.pointer(y)}, &yv"
    if _int8(context):
        return [
            *_io_views(context, x, y),
            _struct(context, "p", params.requantize_s8(op)),
            f"{_kernel(context)}({operands}, &p);",
        ]
    low, high = params.clamp_bounds(op)
    return [
        *_io_views(context, x, y),
        f"{_kernel(context)}({operands}, {c_float(low)}, {c_float(high)});",
    ]


_INT8_UNARY = {
    "logistic": params.sigmoid_s8,
    "tanh": params.sigmoid_s8,
    "hard_swish": params.hard_swish_s8,
    "leaky_relu": params.leaky_relu_s8,
}


@lowers("logistic", "tanh", "hard_swish", "leaky_relu")
def unary(context: OpContext) -> list[str]:
    op = context.op
    x, y = _input(context), op.output
    call = f"{_kernel(context)}({context.pointer(x)}, &xv, {context.pointer(y)}, &yv"
    if _int8(context):
        return [
            *_io_views(context, x, y),
            _struct(context, "p", _INT8_UNARY[op.kind](op)),
            f"{call}, &p);",
        ]
    if op.kind == "leaky_relu":
        return [*_io_views(context, x, y), f"{call}, {c_float(op.attrs['alpha'])});"]
    return [*_io_views(context, x, y), f"{call});"]


@lowers("batch_norm")
def batch_norm(context: OpContext) -> list[str]:
    op = context.op
    x, y = _input(context), op.output
    scale, bias, mean, var = (context.pointer(_input(context, i)) for i in range(1, 5))
    return [
        *_io_views(context, x, y),
        f"{_kernel(context)}({context.pointer(x)}, &xv, {scale}, {bias}, {mean}, {var}, "
        f"{context.pointer(y)}, &yv, {c_float(op.attrs['epsilon'])});",
    ]


@lowers("quantize", "dequantize")
def quantize(context: OpContext) -> list[str]:
    """float <-> int8, and int8 -> int8 requantization."""
    op = context.op
    x, y = _input(context), op.output
    kernel = _kernel(context)
    operands = f"{context.pointer(x)}, &xv, {context.pointer(y)}, &yv"
    if kernel == "mf_requantize_s8":
        return requantize_into(context, x, context.pointer(y), context.view(y))
    scale, zero_point = params.quantization(y if op.kind == "quantize" else x)
    return [*_io_views(context, x, y), f"{kernel}({operands}, {c_float(scale)}, {zero_point});"]


def requantize_into(
    context: OpContext, x: Tensor, destination: str, view: View | None = None
) -> list[str]:
    """int8 ``x`` requantized to the op's output's quantization, stored at ``destination``
    with ``view`` (default: ``x``'s dims in the output's strides, a concat slice). This is the
    QUANTIZE op TFLite would insert: it is built as one and given to ``params``."""
    y = context.op.output
    if view is None:
        rank = len(x.shape)
        dims = (1,) * (4 - rank) + tuple(x.shape)
        strides = (0,) * (4 - rank) + tuple(context.strides(y))
        view = View(0, dims, strides[:3])  # type: ignore[arg-type]
    requantization = Op("quantize", f"{context.op.name}/requantize {x.name}", [x], [y])
    return [
        declare_view("xv", context.view(x)),
        declare_view("yv", view),
        _struct(context, "p", params.requantize_s8(requantization)),
        f"mf_requantize_s8({context.pointer(x)}, &xv, {destination}, &yv, &p);",
    ]


# ---- normalization over channels -----------------------------------------------------------


@lowers("softmax")
def softmax(context: OpContext) -> list[str]:
    op = context.op
    x, y = _input(context), op.output
    if op.attrs.get("axis", -1) % len(x.shape) != len(x.shape) - 1:
        raise unsupported(op, context.graph, "its axis is not the last")
    operands = f"{context.pointer(x)}, &xv, {context.pointer(y)}, &yv"
    if _int8(context):
        return [
            *_io_views(context, x, y),
            _struct(context, "p", params.softmax_s8(op)),
            f"{_kernel(context)}({operands}, &p);",
        ]
    beta = c_float(op.attrs.get("beta", 1.0))
    return [*_io_views(context, x, y), f"{_kernel(context)}({operands}, {beta});"]


@lowers("lrn")
def lrn(context: OpContext) -> list[str]:
    op = context.op
    x, y = _input(context), op.output
    a = op.attrs
    return [
        *_io_views(context, x, y),
        f"{_kernel(context)}({context.pointer(x)}, &xv, {context.pointer(y)}, &yv, "
        f"{a['radius']}, {c_float(a['bias'])}, {c_float(a['alpha'])}, {c_float(a['beta'])});",
    ]
