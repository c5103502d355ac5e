"""Hypothesis strategies and brute-force references shared by the planning tests (no tests here)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from hypothesis import strategies as st

from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph, Quantization, Tensor
from memfit.ir.dtypes import DType
from memfit.planning.assignment import FirstFit
from memfit.planning.lifetimes import Buffer, compute_lifetimes, lower_bound


@st.composite
def buffer_lists(draw: st.DrawFn, max_buffers: int = 12, max_step: int = 10) -> list[Buffer]:
    """Random buffers: sizes not multiples of any alignment, zero sizes included."""
    count = draw(st.integers(1, max_buffers))
    buffers = []
    for i in range(count):
        first = draw(st.integers(0, max_step))
        length = draw(st.integers(0, 4))
        size = draw(st.integers(0, 300))
        buffers.append(Buffer(f"b{i}", size, first, first + length))
    return buffers


def brute_force_arena(buffers: Sequence[Buffer], alignment: int) -> int:
    """The optimal arena size: first fit in the best of all placement orders.

    First fit in order of the optimal offsets puts every buffer at or below its optimal offset,
    so the minimum over all orders is the optimum. Only for a handful of buffers.
    """
    packer = FirstFit(buffers, alignment)
    return min(packer.place(order)[1] for order in itertools.permutations(range(len(buffers))))


@st.composite
def random_dags(draw: st.DrawFn, max_ops: int = 8) -> Graph:
    """A random graph of float tensors with branches, joins, reshapes and unread outputs.

    Op kinds are nominal (planning only reads kinds to find reshapes); shapes are 1-D.
    """
    graph = Graph("random")
    inputs = [
        graph.add_tensor(f"in{i}", (draw(st.integers(1, 64)),), DType.FLOAT32)
        for i in range(draw(st.integers(1, 2)))
    ]
    graph.inputs.extend(inputs)
    tensors = list(inputs)
    for i in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(["add", "concat", "relu", "reshape"]))
        arity = 2 if kind in ("add", "concat") else 1
        sources = [draw(st.sampled_from(tensors)) for _ in range(arity)]
        # a reshape keeps the byte size, so that it becomes a view
        shape = (1, sources[0].shape[0]) if kind == "reshape" else (draw(st.integers(1, 64)),)
        out = graph.add_tensor(f"t{i}", shape, DType.FLOAT32)
        graph.add_op(kind, sources, [out], name=f"op{i}")
        tensors.append(out)
    unread = [t for t in tensors[len(inputs) :] if not t.consumers]
    graph.outputs.extend(unread or [tensors[-1]])
    extra = draw(st.sampled_from(tensors))
    if extra not in graph.outputs:
        graph.outputs.append(extra)
    return graph


def topological_orders(graph: Graph) -> Iterator[tuple[str, ...]]:
    """Every topological order of the graph's ops (exponentially many: tiny graphs only)."""
    preds = {
        op.name: {t.producer.name for t in op.activation_inputs if t.producer is not None}
        for op in graph.ops
    }

    def extend(done: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if len(done) == len(preds):
            yield done
            return
        for name in preds:
            if name not in done and preds[name] <= set(done):
                yield from extend((*done, name))

    yield from extend(())


def best_peak(graph: Graph, alignment: int) -> int:
    """The lowest lower bound over every topological order."""
    return min(
        lower_bound(compute_lifetimes(graph, order), alignment)
        for order in topological_orders(graph)
    )


@st.composite
def random_topological_order(draw: st.DrawFn, graph: Graph) -> tuple[str, ...]:
    """Any topological order of the graph's ops."""
    waiting = {
        op.name: {t.producer.name for t in op.activation_inputs if t.producer is not None}
        for op in graph.ops
    }
    order: list[str] = []
    while waiting:
        ready = sorted(name for name, preds in waiting.items() if not preds - set(order))
        name = draw(st.sampled_from(ready))
        order.append(name)
        del waiting[name]
    return tuple(order)


@st.composite
def executable_dags(draw: st.DrawFn, max_ops: int = 10) -> Graph:
    """A random float NHWC graph the executor runs, full of in-place chances and traps: 1x1
    convolutions, activations, binary ops (same shape or broadcast), depthwise convolutions
    (strides, padding, dilation), concats along H, W or C (nested, repeated inputs, graph
    inputs among them), reshapes, max and average pools (strided or same size), partial
    convolutions adding into an accumulator (any tensor of the right shape) and accumulator
    outputs; tensors read again later; several outputs."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    b = GraphBuilder("random_in_place")
    tensors = [
        b.input(
            f"in{i}", (1, draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 4)))
        )
        for i in range(draw(st.integers(1, 2)))
    ]

    conv_attrs = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "groups": 1}

    def constant(name: str, shape: tuple[int, ...]) -> Tensor:
        return b.constant(name, rng.standard_normal(shape).astype(np.float32))

    for i in range(draw(st.integers(1, max_ops))):
        name = f"t{i}"
        # mostly grow from the newest tensors (chains that die where they are read), sometimes
        # read an old one again (a tensor that stays live)
        if draw(st.booleans()):
            x = tensors[-1 - draw(st.integers(0, min(2, len(tensors) - 1)))]
        else:
            x = draw(st.sampled_from(tensors))
        _, h, w, c = x.shape
        kind = draw(
            st.sampled_from(
                [
                    "conv",
                    "unary",
                    "binary",
                    "depthwise",
                    "depthwise",
                    "concat",
                    "reshape",
                    "pool",
                    "accumulate",
                    "accumulator_output",
                ]
            )
        )
        if kind == "conv":
            out_c = draw(st.integers(1, 4))
            weights = constant(f"{name}_w", (out_c, 1, 1, c))
            attrs = {**conv_attrs, "activation": "none"}
            y = b.op("conv2d", [x, weights, None], attrs, name=name)
        elif kind == "unary":
            y = b.op(draw(st.sampled_from(["relu", "relu6", "tanh", "logistic"])), [x], name=name)
        elif kind == "binary":
            same = [t for t in tensors if t.shape == x.shape]
            other = draw(st.sampled_from([*same, None]))
            if other is None:  # broadcast a per-channel constant or a pooled activation
                other = constant(f"{name}_k", (c,))
            operands = [x, other] if draw(st.booleans()) else [other, x]
            op_kind = draw(st.sampled_from(["add", "sub", "mul", "maximum", "minimum"]))
            attrs = {"activation": "none"} if op_kind in ("add", "sub", "mul") else {}
            y = b.op(op_kind, operands, attrs, name=name)
        elif kind == "depthwise":
            k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
            pads = draw(st.tuples(*[st.integers(0, 1)] * 4))
            span = (k - 1) * d + 1
            if h + pads[0] + pads[2] < span or w + pads[1] + pads[3] < span:
                continue
            attrs = {
                "strides": (s, s),
                "dilations": (d, d),
                "pads": pads,
                "depth_multiplier": 1,
                "activation": draw(st.sampled_from(["none", "relu"])),
            }
            weights, bias = constant(f"{name}_w", (1, k, k, c)), constant(f"{name}_b", (c,))
            y = b.op("depthwise_conv2d", [x, weights, bias], attrs, name=name)
        elif kind == "concat":
            axis = draw(st.sampled_from([1, 2, 3]))
            fits = [
                t for t in tensors if all(t.shape[k] == x.shape[k] for k in range(4) if k != axis)
            ]
            parts = [x]
            for j in range(draw(st.integers(1, 2))):
                if draw(st.booleans()):
                    parts.append(draw(st.sampled_from(fits)))
                elif axis == 3:  # a fresh branch with its own channel count
                    out_c = draw(st.integers(1, 3))
                    weights = constant(f"{name}_{j}_w", (out_c, 1, 1, c))
                    attrs = {**conv_attrs, "activation": "none"}
                    parts.append(b.op("conv2d", [x, weights, None], attrs, name=f"{name}_{j}"))
                else:
                    parts.append(b.op("relu", [x], name=f"{name}_{j}"))
            if draw(st.booleans()):
                parts.reverse()
            y = b.op("concat", parts, {"axis": axis, "activation": "none"}, name=name)
        elif kind == "reshape":
            shape = draw(st.sampled_from([(1, w, h, c), (1, 1, h * w, c), (1, h * w * c, 1, 1)]))
            y = b.op("reshape", [x], shape=shape, name=name)
        elif kind == "accumulate":
            accumulators = [t for t in tensors if t.shape[:3] == x.shape[:3]]
            acc = draw(st.sampled_from([*accumulators, None]))
            out_c = acc.shape[-1] if acc is not None else draw(st.integers(1, 4))
            attrs = {k: conv_attrs[k] for k in ("strides", "dilations", "pads")}
            weights = constant(f"{name}_w", (out_c, 1, 1, c))
            y = b.op("partial_conv2d", [x, weights, acc], attrs, name=name)
        elif kind == "accumulator_output":
            bias = draw(st.sampled_from([None, constant(f"{name}_b", (c,))]))
            attrs = {"activation": draw(st.sampled_from(["none", "relu"]))}
            y = b.op("accumulator_output", [x, bias], attrs, name=name)
        else:
            pool = draw(st.sampled_from(["max_pool2d", "avg_pool2d"]))
            if draw(st.booleans()):
                attrs = {"kernel": (3, 3), "strides": (1, 1), "pads": (1, 1, 1, 1)}
            elif h < 2 or w < 2:
                continue
            else:
                attrs = {"kernel": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0)}
            y = b.op(pool, [x], attrs, name=name)
        tensors.append(y)
    if not b.graph.ops:
        tensors.append(b.op("relu", [tensors[0]], name="only"))
    produced = [t for t in tensors if t.producer is not None]
    unread = [t for t in produced if not t.consumers]
    b.graph.outputs.extend(unread or [produced[-1]])
    extra = draw(st.sampled_from(produced))
    if extra not in b.graph.outputs:
        b.graph.outputs.append(extra)
    return b.graph


def accumulating_graph(dtype: DType = DType.FLOAT32, partitions: int = 3, read_again: str = ""):
    """x -> per partition a 1x1 conv of a channel slice, accumulated by partial_conv2d ops, then
    accumulator_output: what FDT writes, built by hand. ``read_again`` names a tensor that a
    second graph output reads as well (so it cannot be overwritten)."""
    int8 = dtype is DType.INT8
    rng = np.random.default_rng(0)
    b = GraphBuilder("lip")
    quant = Quantization((0.05,), (-3,)) if int8 else None
    x = b.input("x", (1, 4, 4, 2 * partitions), dtype, quant)
    attrs = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0)}
    acc = None
    acc_dtype = DType.INT32 if int8 else DType.FLOAT32
    acc_quant = Quantization((0.05 * 0.01,), (0,)) if int8 else None
    for p in range(partitions):
        part = b.op(
            "strided_slice",
            [x],
            {
                "begin": (0, 0, 0, 2 * p),
                "end": (1, 4, 4, 2 * p + 2),
                "strides": (1, 1, 1, 1),
                "shrink_axes": (),
            },
            name=f"slice{p}",
            quant=quant,
        )
        part = b.op("relu", [part], name=f"relu{p}", quant=quant)
        if int8:
            data = rng.integers(-127, 128, (3, 1, 1, 2)).astype(np.int8)
            weights = b.constant(f"w{p}", data, Quantization((0.01,), (0,)))
        else:
            weights = b.constant(f"w{p}", rng.standard_normal((3, 1, 1, 2)).astype(np.float32))
        acc = b.op(
            "partial_conv2d",
            [part, weights, acc],
            attrs,
            dtype=acc_dtype,
            quant=acc_quant,
            name=f"acc{p}",
        )
    bias_data = rng.integers(-50, 50, 3).astype(np.int32) if int8 else np.ones(3, np.float32)
    bias = b.constant("bias", bias_data, acc_quant)
    out_quant = Quantization((0.02,), (1,)) if int8 else None
    out = b.op(
        "accumulator_output",
        [acc, bias],
        {"activation": "relu"},
        dtype=dtype,
        quant=out_quant,
        name="out",
    )
    outputs = [out]
    if read_again:
        tensor = b.graph.tensors[read_again]
        outputs.append(b.op("relu" if not int8 else "identity", [tensor], name="again"))
    return b.output(*outputs)
