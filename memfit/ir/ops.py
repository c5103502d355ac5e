"""The operator set: attributes, shape inference and MAC counts for every op kind.

Canonical kinds and their attributes (4-D activations are NHWC):

=====================  ============================================================================
conv2d                 x, w[O,KH,KW,I/groups], bias?; strides(sh,sw), dilations(dh,dw),
                       pads(top,left,bottom,right), groups, activation
depthwise_conv2d       x, w[1,KH,KW,C*M], bias?; strides, dilations, pads, depth_multiplier,
                       activation
fully_connected        x[..., K], w[N,K], bias?; activation, keep_num_dims
matmul                 a[..., M, K], b[..., K, N] (float only)
max_pool2d/avg_pool2d  x; kernel(kh,kw), strides, pads, activation, count_include_pad (avg only)
mean / reduce_max      x; axes, keepdims
add/sub/mul/div        a, b (numpy broadcasting); activation
maximum/minimum        a, b
concat                 *xs; axis, activation
reshape                x (output shape is the output tensor's shape; shape-giving inputs folded)
transpose              x; perm
pad                    x; pads ((before, after) per dim), value (real value, default 0)
strided_slice          x; begin, end, strides (one per dim, already resolved), shrink_axes
softmax                x; axis (= last), beta
logistic/tanh/relu/relu6/relu_n1_to_1/hard_swish/identity/dropout   x
leaky_relu             x; alpha
clamp                  x; min, max
lrn                    x; radius, bias, alpha, beta (TFLite: x / (bias + alpha*sum_sq)^beta over
                       channels [c-radius, c+radius])
batch_norm             x, scale, bias, mean, var; epsilon  (folded away at import where possible)
quantize/dequantize    x (parameters are on the tensors); quantize also does int8->int8 requant
lstm                   TFLite UNIDIRECTIONAL_SEQUENCE_LSTM, inputs in TFLite order (24, None where
                       absent); time_major, cell_clip, proj_clip, activation, intermediates
shape                  x -> int32[rank]                          (folded away at import)
pack                   *xs; axis                                 (folded away at import)
=====================  ============================================================================

``activation`` is one of none, relu, relu6, relu_n1_to_1, tanh, sigmoid.

Accumulating kinds, written by fused depthwise tiling (``memfit.tiling.fdt``) to split a layer's
input channels into partitions. The accumulator is float32 for float layers; for int8 layers it
is int32 and holds sum((x - x_zero_point) * w), its quantization scale per output channel being
the input scale times the weight scale (zero point 0):

=========================  ========================================================================
partial_conv2d             x[N,H,W,Cs], w[O,KH,KW,Cs], acc?; strides, dilations, pads -> acc plus
                           the convolution of the channel slice (no bias; groups 1)
partial_fully_connected    x[..., Ks], w[N,Ks], acc?; keep_num_dims -> acc plus x @ w.T (no bias)
accumulator_output         acc, bias?; activation -> the layer's output: acc + bias, requantized
                           to the output tensor's quantization for int8, then the activation
=========================  ========================================================================

Spatial tiling (``memfit.tiling.ffmt``) ends a chain in a layer that reduces the whole map (a
global average pool, a convolution whose kernel covers the map) the same way: each tile adds
its rows and columns into an accumulator of the layer's output, and one op after the last tile
finishes it. A conv2d of that kind is ``partial_conv2d`` on the tile with the kernel's slice
and then ``accumulator_output``; the others are:

=========================  ========================================================================
partial_depthwise_conv2d   x[N,H,W,C], w[1,KH,KW,C], acc?; strides, dilations, pads -> acc plus
                           the depthwise convolution (depth multiplier 1, no bias); int8
                           accumulators hold sum((x - x_zero_point) * w) at input scale times
                           weight scale, per channel
partial_sum_pool           x[N,H,W,C], acc? -> acc[N,1,1,C] plus the sum of x over H and W (int8:
                           int32 sums of the stored values, zero point included, as TFLite's
                           average pool adds them)
accumulator_average        acc; count, activation -> acc / count (int8: rounded half away from
                           zero, as TFLite's average pool, in the output's quantization, which is
                           the input's), then the activation
=========================  ========================================================================

``ACCUMULATOR_INPUT`` gives the position of each accumulating kind's ``acc`` input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from memfit.errors import ShapeError
from memfit.ir.core import Op, Shape

ACTIVATIONS = ("none", "relu", "relu6", "relu_n1_to_1", "tanh", "sigmoid")


def conv_out(size: int, kernel: int, stride: int, dilation: int, pad_total: int) -> int:
    effective = (kernel - 1) * dilation + 1
    return (size + pad_total - effective) // stride + 1


def _in(op: Op, i: int) -> Shape:
    t = op.inputs[i]
    if t is None:
        raise ShapeError(f"op {op.name} ({op.kind}) is missing input {i}")
    return t.shape


def _conv2d(op: Op) -> list[Shape]:
    n, h, w, _ = _in(op, 0)
    o, kh, kw, _ = _in(op, 1)
    (sh, sw), (dh, dw) = op.attrs["strides"], op.attrs["dilations"]
    top, left, bottom, right = op.attrs["pads"]
    return [(n, conv_out(h, kh, sh, dh, top + bottom), conv_out(w, kw, sw, dw, left + right), o)]


def _depthwise(op: Op) -> list[Shape]:
    n, h, w, _ = _in(op, 0)
    _, kh, kw, oc = _in(op, 1)
    (sh, sw), (dh, dw) = op.attrs["strides"], op.attrs["dilations"]
    top, left, bottom, right = op.attrs["pads"]
    return [(n, conv_out(h, kh, sh, dh, top + bottom), conv_out(w, kw, sw, dw, left + right), oc)]


def _pool(op: Op) -> list[Shape]:
    n, h, w, c = _in(op, 0)
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["strides"]
    top, left, bottom, right = op.attrs["pads"]
    return [(n, conv_out(h, kh, sh, 1, top + bottom), conv_out(w, kw, sw, 1, left + right), c)]


def _fully_connected(op: Op) -> list[Shape]:
    x = _in(op, 0)
    n, k = _in(op, 1)
    if op.attrs.get("keep_num_dims", False):
        return [(*x[:-1], n)]
    return [(math.prod(x) // k, n)]


def _sum_pool(op: Op) -> list[Shape]:
    n, _, _, c = _in(op, 0)
    return [(n, 1, 1, c)]


def _accumulating(layer: Callable[[Op], list[Shape]], slot: int = 2) -> Callable[[Op], list[Shape]]:
    """The shape function of a partial layer: the layer's, and the accumulator input's (input
    ``slot``) if any."""

    def shapes(op: Op) -> list[Shape]:
        out = layer(op)
        acc = op.input(slot)
        if acc is not None and acc.shape != out[0]:
            raise ShapeError(
                f"op {op.name} ({op.kind}) accumulates into {acc.name} of shape {acc.shape}, "
                f"but computes shape {out[0]}"
            )
        return out

    return shapes


def _matmul(op: Op) -> list[Shape]:
    a, b = _in(op, 0), _in(op, 1)
    batch = broadcast_shapes(a[:-2], b[:-2])
    return [(*batch, a[-2], b[-1])]


def broadcast_shapes(*shapes: Sequence[int]) -> Shape:
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeError(f"shapes {', '.join(map(str, shapes))} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _binary(op: Op) -> list[Shape]:
    return [broadcast_shapes(_in(op, 0), _in(op, 1))]


def _same(op: Op) -> list[Shape]:
    return [_in(op, 0)]


def _reduce(op: Op) -> list[Shape]:
    x = _in(op, 0)
    axes = {a % len(x) for a in op.attrs["axes"]}
    if op.attrs.get("keepdims", True):
        return [tuple(1 if i in axes else d for i, d in enumerate(x))]
    return [tuple(d for i, d in enumerate(x) if i not in axes)]


def _concat(op: Op) -> list[Shape]:
    shapes = [t.shape for t in op.inputs if t is not None]
    axis = op.attrs["axis"] % len(shapes[0])
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return [tuple(out)]


def _declared(op: Op) -> list[Shape]:
    return [t.shape for t in op.outputs]


def _transpose(op: Op) -> list[Shape]:
    x = _in(op, 0)
    return [tuple(x[p] for p in op.attrs["perm"])]


def _pad(op: Op) -> list[Shape]:
    x = _in(op, 0)
    return [tuple(d + b + a for d, (b, a) in zip(x, op.attrs["pads"], strict=True))]


def _strided_slice(op: Op) -> list[Shape]:
    x = _in(op, 0)
    shape = [
        len(range(b, e, s))
        for b, e, s in zip(op.attrs["begin"], op.attrs["end"], op.attrs["strides"], strict=True)
    ]
    shrink = set(op.attrs.get("shrink_axes", ()))
    del x
    return [tuple(d for i, d in enumerate(shape) if i not in shrink)]


def _shape(op: Op) -> list[Shape]:
    return [(len(_in(op, 0)),)]


def _pack(op: Op) -> list[Shape]:
    shapes = [t.shape for t in op.inputs if t is not None]
    axis = op.attrs["axis"] % (len(shapes[0]) + 1)
    out = list(shapes[0])
    out.insert(axis, len(shapes))
    return [tuple(out)]


SHAPE_FUNCTIONS: dict[str, Callable[[Op], list[Shape]]] = {
    "conv2d": _conv2d,
    "depthwise_conv2d": _depthwise,
    "fully_connected": _fully_connected,
    "matmul": _matmul,
    "max_pool2d": _pool,
    "avg_pool2d": _pool,
    "mean": _reduce,
    "reduce_max": _reduce,
    "add": _binary,
    "sub": _binary,
    "mul": _binary,
    "div": _binary,
    "maximum": _binary,
    "minimum": _binary,
    "concat": _concat,
    "reshape": _declared,
    "transpose": _transpose,
    "pad": _pad,
    "strided_slice": _strided_slice,
    "softmax": _same,
    "logistic": _same,
    "tanh": _same,
    "relu": _same,
    "relu6": _same,
    "relu_n1_to_1": _same,
    "hard_swish": _same,
    "leaky_relu": _same,
    "clamp": _same,
    "identity": _same,
    "dropout": _same,
    "lrn": _same,
    "batch_norm": _same,
    "quantize": _same,
    "dequantize": _same,
    "lstm": _declared,
    "shape": _shape,
    "pack": _pack,
    "partial_conv2d": _accumulating(_conv2d),
    "partial_fully_connected": _accumulating(_fully_connected),
    "accumulator_output": _same,
    "partial_depthwise_conv2d": _accumulating(_depthwise, 2),
    "partial_sum_pool": _accumulating(_sum_pool, 1),
    "accumulator_average": _same,
}

SUPPORTED_KINDS = frozenset(SHAPE_FUNCTIONS)

ACCUMULATOR_INPUT = {
    "partial_conv2d": 2,
    "partial_fully_connected": 2,
    "partial_depthwise_conv2d": 2,
    "partial_sum_pool": 1,
}
"""The input of each accumulating kind that holds the running accumulator (None at first)."""


def infer_shapes(op: Op) -> list[Shape]:
    """Output shapes of ``op`` from its input shapes and attributes."""
    return SHAPE_FUNCTIONS[op.kind](op)


def macs(op: Op) -> int:
    """Multiply-accumulates of one execution of ``op`` (0 for ops that do none)."""
    if op.kind in ("conv2d", "partial_conv2d"):
        _, kh, kw, cin = _in(op, 1)
        return math.prod(op.output.shape) * kh * kw * cin
    if op.kind in ("depthwise_conv2d", "partial_depthwise_conv2d"):
        _, kh, kw, _ = _in(op, 1)
        return math.prod(op.output.shape) * kh * kw
    if op.kind in ("fully_connected", "partial_fully_connected"):
        return math.prod(op.output.shape) * _in(op, 1)[1]
    if op.kind == "matmul":
        return math.prod(op.output.shape) * _in(op, 0)[-1]
    if op.kind == "lstm":
        x = _in(op, 0)
        n_cell = _in(op, 2)[0]  # input_to_forget_weights [n_cell, n_input]
        n_output = _in(op, 6)[1]  # recurrent_to_forget_weights [n_cell, n_output]
        steps = math.prod(x[:-1])
        projection = _in(op, 16)[0] * n_cell if op.input(16) is not None else 0
        return steps * (4 * n_cell * (x[-1] + n_output) + projection)
    return 0
