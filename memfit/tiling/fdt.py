"""FDT: fused depthwise tiling, a chain of ops rewritten into partitions along the channel axis.

The chain's channels are cut into P partitions like numpy.array_split (the first C mod P are one
channel wider). For partition p with channels [c0, c1) the rewrite emits

- START (layer output partitioning): a copy of the first op, a ``conv2d`` (groups 1) or
  ``fully_connected``, that computes only output channels [c0, c1), with that slice of its
  weights, bias and per-channel quantization; it reads its input whole;
- MIDDLE: a copy of every per-channel op on the slice (activations, quantize/dequantize, binary
  ops with a constant, pooling, depthwise convolution with depth multiplier 1, pad along other
  axes, mean/reduce_max over other axes, reshape keeping the channel axis), with the slice of
  every per-channel constant;
- END, one of
  - LIP (layer input partitioning) when the last op is a ``conv2d`` (groups 1) or
    ``fully_connected``: a ``partial_conv2d``/``partial_fully_connected`` that reads the slice
    with the matching input-channel slice of the weights and adds its products into an
    accumulator of the full output (int32 for int8 layers, float32 for float), and after the
    last partition one ``accumulator_output`` that adds the bias, requantizes and applies the
    activation once;
  - otherwise a ``concat`` along channels of the partitions' last outputs.

The chain's last output keeps its tensor (name, consumers, place among the graph outputs).
Partitions run one after the other, so only the chain input, the output (or accumulator) and
one partition's intermediates are live together. Nothing is computed twice: the MACs of the
partitions add up to the chain's.

The channel axis is the last axis (NHWC, and the feature axis of dense layers) all along the
chain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from memfit.errors import InternalError
from memfit.ir.core import Graph, Op, Quantization, Tensor
from memfit.ir.dtypes import DType
from memfit.ir.ops import infer_shapes
from memfit.tiling import TilingResult
from memfit.tiling.chain import TilingError, describe, resolve_chain

_LAYERS = frozenset({"conv2d", "fully_connected"})
_UNARY = frozenset(
    {
        "relu",
        "relu6",
        "relu_n1_to_1",
        "logistic",
        "tanh",
        "hard_swish",
        "leaky_relu",
        "clamp",
        "identity",
        "dropout",
        "quantize",
        "dequantize",
        "max_pool2d",
        "avg_pool2d",
    }
)
_BINARY = frozenset({"add", "sub", "mul", "div", "maximum", "minimum"})
_REDUCTIONS = frozenset({"mean", "reduce_max"})
# Kinds whose constant inputs hold one value per channel (or one for all): those get sliced.
_PER_CHANNEL_CONSTANTS = frozenset({"depthwise_conv2d", "batch_norm", *_BINARY})
_MIDDLE = frozenset(
    {*_UNARY, *_BINARY, *_REDUCTIONS, "depthwise_conv2d", "batch_norm", "pad", "reshape"}
)
_PARTIAL_KIND = {"conv2d": "partial_conv2d", "fully_connected": "partial_fully_connected"}
_LIP_INPUT_AXIS = {"conv2d": 3, "fully_connected": 1}  # input channels in the layer's weights


def apply_fdt(graph: Graph, ops: Sequence[str], partitions: int) -> TilingResult:
    """Rewrite the chain ``ops`` of ``graph`` (in place) into ``partitions`` channel partitions.

    ``ops`` names consecutive ops: a ``conv2d`` or ``fully_connected`` first, then per-channel
    ops, and optionally a ``conv2d`` or ``fully_connected`` last that consumes the partitions
    (LIP); without one the partitions are concatenated. Raises TilingError, naming the op and
    the reason, when the chain cannot be cut along channels into ``partitions`` parts.
    """
    chain = resolve_chain(graph, ops)
    start = chain[0]
    _check_start(graph, start)
    channels = start.output.shape[-1]
    if not isinstance(partitions, int) or partitions < 2:
        raise TilingError(
            f"FDT needs at least 2 partitions (got {partitions!r}); one partition is the "
            "untiled chain"
        )
    if partitions > channels:
        raise TilingError(
            f"cannot cut the {channels} output channels of {describe(start, graph)} into "
            f"{partitions} non-empty partitions; use at most {channels}"
        )
    lip = len(chain) > 1 and chain[-1].kind in _LAYERS
    middle = chain[1:-1] if lip else chain[1:]
    slots = [_check_middle(graph, op, channels, chain) for op in middle]
    if lip:
        _check_lip(graph, chain[-1], channels)

    position = next(i for i, op in enumerate(graph.ops) if op is start)
    for op in chain:
        graph.remove_op(op)
    rewrite = _Rewrite(graph, position)
    spans = [(int(s[0]), int(s[-1]) + 1) for s in np.array_split(np.arange(channels), partitions)]
    ends: list[Tensor] = []
    accumulator: Tensor | None = None
    for p, (c0, c1) in enumerate(spans):
        current = rewrite.start(start, p, c0, c1)
        for op, slot in zip(middle, slots, strict=True):
            current = rewrite.middle(op, slot, current, p, channels, c0, c1)
        if lip:
            accumulator = rewrite.partial(chain[-1], current, accumulator, p, c0, c1)
        else:
            ends.append(current)
    last = chain[-1]
    if lip:
        rewrite.add(
            "accumulator_output",
            [accumulator, last.input(2)],
            last.output,
            {"activation": last.attrs.get("activation", "none")},
            name=last.name,
        )
    else:
        axis = len(last.output.shape) - 1
        rewrite.add("concat", ends, last.output, {"axis": axis}, name=last.name)
    graph.prune()
    graph.topological_check()
    return TilingResult(
        record={"method": "fdt", "ops": list(ops), "partitions": partitions}, extra_macs=0
    )


# ---- checks --------------------------------------------------------------------------------


def _refuse(op: Op, graph: Graph, reason: str) -> TilingError:
    return TilingError(f"FDT cannot split {describe(op, graph)}: {reason}")


def _check_dtypes(graph: Graph, op: Op) -> None:
    x = op.activation_inputs[0]
    if {x.dtype, op.output.dtype} - {DType.FLOAT32, DType.INT8} or x.dtype != op.output.dtype:
        raise _refuse(
            op,
            graph,
            f"it reads {x.dtype} and writes {op.output.dtype}; FDT splits float32 and int8 layers",
        )


def _check_layer(graph: Graph, op: Op, role: str) -> None:
    if op.kind not in _LAYERS:
        raise _refuse(
            op, graph, f"the {role} of a chain must be a conv2d (groups 1) or fully_connected"
        )
    if op.kind == "conv2d" and op.attrs.get("groups", 1) != 1:
        raise _refuse(
            op,
            graph,
            f"a grouped convolution (groups={op.attrs['groups']}) mixes channels "
            f"within groups; only groups=1 can be the {role} of a chain",
        )
    weights, bias = op.input(1), op.input(2)
    if weights is None or not weights.is_constant or (bias is not None and not bias.is_constant):
        raise _refuse(op, graph, "its weights and bias must be constants to be sliced")
    _check_dtypes(graph, op)


def _check_start(graph: Graph, op: Op) -> None:
    _check_layer(graph, op, "start (the layer whose output channels are partitioned)")


def _check_lip(graph: Graph, op: Op, channels: int) -> None:
    _check_layer(graph, op, "end (the layer that consumes the partitions)")
    if op.inputs[0] is not op.activation_inputs[0]:
        raise _refuse(op, graph, "the chain must flow into its first input, the layer's input")
    x, weights = op.inputs[0], op.inputs[1]
    assert x is not None and weights is not None
    if x.dtype is DType.FLOAT32 and weights.dtype is not DType.FLOAT32:
        raise _refuse(
            op,
            graph,
            "a hybrid layer (float input, quantized weights) quantizes its whole "
            "input with one scale, which a channel slice cannot reproduce",
        )
    features = weights.shape[_LIP_INPUT_AXIS[op.kind]]
    if features != channels and not _flattens_whole_rows(op):
        raise _refuse(
            op,
            graph,
            f"it reads its input flattened ({features} input features, not "
            f"the {channels} channels of the last axis), so a channel slice is not a slice of "
            "its weights",
        )


def _flattens_whole_rows(op: Op) -> bool:
    """A dense layer that reads each batch row of its input flattened (features = H*W*C, the
    last axis fastest): channels [c0, c1) are the weight columns whose feature index falls in
    [c0, c1) modulo C, a gather of its weights rather than a slice."""
    x, weights = op.inputs[0], op.inputs[1]
    assert x is not None and weights is not None
    return (
        op.kind == "fully_connected"
        and len(x.shape) > 2
        and weights.shape[1] == math.prod(x.shape[1:])
    )


def _check_middle(graph: Graph, op: Op, channels: int, chain: Sequence[Op]) -> int:
    """Raise TilingError unless ``op`` acts on each channel alone; return its chain input slot."""
    if op.kind in _LAYERS:
        after = chain[chain.index(op) + 1]
        raise _refuse(
            after,
            graph,
            f"it follows {op.name!r} ({op.kind}), which mixes channels and so "
            f"must end the chain (LIP): {after.name!r} would act on partial sums"
            + ("" if after.kind in _LAYERS else ", and it is not linear")
            + f"; end the chain at {op.name!r}",
        )
    if op.kind not in _MIDDLE:
        raise _refuse(
            op,
            graph,
            "it is not a per-channel op (activations, pooling, depthwise "
            "convolution, binary ops with a constant, pad, mean over other axes, reshape "
            "keeping the channels), so it mixes channels or is not supported inside a chain; "
            "end the chain before it",
        )
    x = op.activation_inputs[0]
    slot = op.inputs.index(x)
    if op.kind == "depthwise_conv2d" and op.attrs.get("depth_multiplier", 1) != 1:
        raise _refuse(op, graph, "a depth multiplier above 1 changes the channel count")
    if op.kind == "pad" and tuple(op.attrs["pads"][-1]) != (0, 0):
        raise _refuse(op, graph, "it pads the channel axis")
    if op.kind in _REDUCTIONS:
        rank = len(x.shape)
        if rank - 1 in {a % rank for a in op.attrs["axes"]}:
            raise _refuse(op, graph, "it reduces over the channel axis")
    if x.shape[-1] != channels or op.output.shape[-1] != channels:
        raise _refuse(
            op,
            graph,
            f"it maps {x.shape} to {op.output.shape}; the last axis must keep its "
            f"{channels} channels",
        )
    if op.kind in _BINARY and op.output.shape != x.shape:
        raise _refuse(op, graph, f"its constant operand broadcasts {x.shape} to {op.output.shape}")
    if op.kind in _PER_CHANNEL_CONSTANTS:
        for t in op.inputs:
            if t is not None and t.is_constant and t.shape and t.shape[-1] not in (1, channels):
                raise _refuse(
                    op,
                    graph,
                    f"its constant {t.name} {t.shape} is neither per channel nor "
                    "one value for all channels",
                )
    return slot


# ---- rewriting -----------------------------------------------------------------------------


def _slice_quant(
    quant: Quantization | None, shape: Sequence[int], axis: int, c0: int, c1: int
) -> Quantization | None:
    """The quantization of indices [c0, c1) along ``axis`` of a tensor of ``shape``.

    Per-tensor parameters, and per-axis ones along another axis, stay as they are.
    """
    rank = len(shape)
    if quant is None or quant.axis is None or quant.axis % rank != axis % rank:
        return quant
    if len(quant.scale) != shape[axis]:
        raise InternalError(f"{len(quant.scale)} scales along an axis of {shape[axis]}")
    return Quantization(quant.scale[c0:c1], quant.zero_point[c0:c1], quant.axis)


def accumulator_quant(layer: Op) -> Quantization | None:
    """The int32 accumulator's quantization: input scale times weight scale, per channel.

    These are the products TFLite Micro forms before QuantizeMultiplier: in float64, except for
    a dense layer with per-tensor weights, whose two scales it multiplies in float32.
    """
    if layer.output.dtype is DType.FLOAT32:
        return None
    x, weights = layer.inputs[0], layer.inputs[1]
    if x is None or x.quant is None or weights is None or weights.quant is None:
        raise InternalError(f"int8 layer {layer.name} without quantization on its input/weights")
    x_scale, w_quant = x.quant.scale[0], weights.quant
    scales: tuple[float, ...]
    if layer.kind == "fully_connected" and w_quant.per_tensor:
        scales = (float(np.float32(x_scale) * np.float32(w_quant.scale[0])),)
    else:
        scales = tuple(x_scale * s for s in w_quant.scale)
    axis = None if len(scales) == 1 else len(layer.output.shape) - 1
    return Quantization(scales, (0,) * len(scales), axis)


class _Rewrite:
    """Adds the partitions' tensors and ops to the graph, in order, from op ``position`` on."""

    def __init__(self, graph: Graph, position: int) -> None:
        self.graph = graph
        self.position = position

    def add(
        self, kind: str, inputs: Sequence[Tensor | None], output: Tensor, attrs: dict, name: str
    ) -> Op:
        op = self.graph.add_op(kind, inputs, [output], attrs, name=name, index=self.position)
        self.position += 1
        if infer_shapes(op)[0] != output.shape:
            raise InternalError(
                f"FDT built {op.name} ({kind}) writing {output.shape}, but it computes "
                f"{infer_shapes(op)[0]}"
            )
        return op

    def constant(self, t: Tensor | None, axis: int, p: int, c0: int, c1: int) -> Tensor | None:
        """Channels [c0, c1) along ``axis`` of constant ``t`` as a new constant."""
        if t is None:
            return None
        index = [slice(None)] * len(t.shape)
        index[axis] = slice(c0, c1)
        assert t.data is not None
        quant = _slice_quant(t.quant, t.shape, axis, c0, c1)
        return self.graph.add_constant(f"{t.name}.p{p}", t.data[tuple(index)], quant)

    def flattened_columns(self, op: Op, p: int, c0: int, c1: int) -> Tensor:
        """The weight columns of a dense layer that flattens its input [N, ..., C], for the
        input's channels [c0, c1) flattened the same way (per-output quantization stays)."""
        x, w = op.inputs[0], op.inputs[1]
        assert x is not None and w is not None and w.data is not None
        grid = w.data.reshape(w.shape[0], *x.shape[1:])
        columns = grid[..., c0:c1].reshape(w.shape[0], -1)
        return self.graph.add_constant(f"{w.name}.p{p}", columns, w.quant)

    def activation(self, like: Tensor, p: int, c0: int, c1: int) -> Tensor:
        """A new tensor for channels [c0, c1) (on the last axis) of activation ``like``."""
        quant = _slice_quant(like.quant, like.shape, -1, c0, c1)
        return self.graph.add_tensor(
            f"{like.name}.p{p}", (*like.shape[:-1], c1 - c0), like.dtype, quant
        )

    def start(self, op: Op, p: int, c0: int, c1: int) -> Tensor:
        x, weights, bias = op.inputs[0], op.inputs[1], op.input(2)
        inputs = [x, self.constant(weights, 0, p, c0, c1), self.constant(bias, 0, p, c0, c1)]
        out = self.activation(op.output, p, c0, c1)
        self.add(op.kind, inputs, out, dict(op.attrs), name=f"{op.name}.p{p}")
        return out

    def middle(
        self, op: Op, slot: int, current: Tensor, p: int, channels: int, c0: int, c1: int
    ) -> Tensor:
        inputs: list[Tensor | None] = []
        for i, t in enumerate(op.inputs):
            if i == slot:
                inputs.append(current)
            elif (
                t is not None
                and op.kind in _PER_CHANNEL_CONSTANTS
                and t.shape
                and t.shape[-1] == channels
            ):
                inputs.append(self.constant(t, -1, p, c0, c1))
            else:
                inputs.append(t)
        out = self.activation(op.output, p, c0, c1)
        self.add(op.kind, inputs, out, dict(op.attrs), name=f"{op.name}.p{p}")
        return out

    def partial(
        self, op: Op, current: Tensor, accumulator: Tensor | None, p: int, c0: int, c1: int
    ) -> Tensor:
        weights: Tensor | None
        if op.kind == "fully_connected" and _flattens_whole_rows(op):
            weights = self.flattened_columns(op, p, c0, c1)
        else:
            weights = self.constant(op.inputs[1], _LIP_INPUT_AXIS[op.kind], p, c0, c1)
        if op.kind == "conv2d":
            attrs = {k: op.attrs[k] for k in ("strides", "dilations", "pads")}
        else:
            attrs = {"keep_num_dims": op.attrs.get("keep_num_dims", False)}
        dtype = DType.FLOAT32 if op.output.dtype is DType.FLOAT32 else DType.INT32
        acc = self.graph.add_tensor(
            f"{op.output.name}.acc{p}", op.output.shape, dtype, accumulator_quant(op)
        )
        self.add(
            _PARTIAL_KIND[op.kind],
            [current, weights, accumulator],
            acc,
            attrs,
            name=f"{op.name}.p{p}",
        )
        return acc
