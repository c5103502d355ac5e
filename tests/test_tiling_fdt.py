"""FDT (fused depthwise tiling): invariants on hand-built chains, golden text, numbers, peaks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memfit import api
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph, Quantization, Tensor
from memfit.ir.dtypes import DType
from memfit.ir.ops import macs
from memfit.ir.printer import format_graph
from memfit.planning import check_assignment, plan_memory
from memfit.runtime.executor import execute
from memfit.tiling import apply_rewrites
from memfit.tiling.chain import TilingError
from memfit.tiling.fdt import apply_fdt
from tests.helpers import SHARED_MODELS, graph_inputs

CONV = {"strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 1, 1), "groups": 1}
POOL = {"kernel": (2, 2), "strides": (1, 1), "pads": (0, 0, 1, 1)}
MIDDLE = (
    "relu",
    "relu6",
    "logistic",
    "tanh",
    "hard_swish",
    "leaky_relu",
    "add_const",
    "sub_const",
    "mul_const",
    "div_const",
    "maximum_scalar",
    "clamp",
    "identity",
    "batch_norm",
    "max_pool2d",
    "avg_pool2d",
    "depthwise",
    "pad",
    "quantize",
)
ENDS = (
    "conv",
    "fc",
    "concat",
    "mean_concat",
    "mean_fc",
    "max_reshape_fc",
    "dequantize_concat",
)


class _Chain:
    """Builds float or int8 chains: a START layer, per-channel ops, one of the ends.

    int8 tensors get per-tensor activation parameters and per-channel weight parameters (per
    tensor for the dense layers when ``per_tensor_dense``), with scales that keep the values
    inside the int8 range, so the comparisons see real values rather than saturation.
    """

    def __init__(self, dtype: DType, seed: int, per_tensor_dense: bool = False) -> None:
        self.rng = np.random.default_rng(seed)
        self.b = GraphBuilder("chain")
        self.int8 = dtype is DType.INT8
        self.per_tensor_dense = per_tensor_dense
        self.names: list[str] = []

    def act_quant(self, scale: float, zero_point: int = 0) -> Quantization | None:
        return Quantization((scale,), (zero_point,)) if self.int8 else None

    def input(self, shape: tuple[int, ...]) -> Tensor:
        dtype = DType.INT8 if self.int8 else DType.FLOAT32
        return self.b.input("x", shape, dtype, self.act_quant(0.05, -3))

    def _scale(self, t: Tensor) -> float:
        return t.quant.scale[0] if t.quant is not None else 1.0

    def op(
        self, kind: str, inputs: list, attrs: dict, quant: Quantization | None = None, **options
    ) -> Tensor:
        name = f"{kind}{len(self.b.graph.ops)}"
        self.names.append(name)
        return self.b.op(kind, inputs, attrs, quant=quant, name=name, **options)

    def weights(self, name: str, shape: tuple[int, ...], axis: int | None) -> Tensor:
        if not self.int8:
            data = self.rng.standard_normal(shape).astype(np.float32) / math.sqrt(
                math.prod(shape) / shape[0 if axis is None else axis]
            )
            return self.b.constant(name, data)
        data = self.rng.integers(-127, 128, shape).astype(np.int8)
        channels = 1 if axis is None else shape[axis]
        scales = tuple(float(s) for s in self.rng.uniform(0.002, 0.01, channels))
        return self.b.constant(name, data, Quantization(scales, (0,) * channels, axis))

    def bias(self, x: Tensor, weights: Tensor, channels: int) -> Tensor:
        if not self.int8:
            return self.b.constant("b", self.rng.standard_normal(channels).astype(np.float32))
        assert weights.quant is not None
        scales = tuple(self._scale(x) * s for s in weights.quant.scale)
        data = self.rng.integers(-3000, 3000, channels).astype(np.int32)
        return self.b.constant(
            "b", data, Quantization(scales, (0,) * len(scales), None if len(scales) == 1 else 0)
        )

    def layer_quant(self, x: Tensor, weights: Tensor, fan_in: int) -> Quantization | None:
        if not self.int8:
            return None
        assert weights.quant is not None
        spread = self._scale(x) * float(np.mean(weights.quant.scale)) * math.sqrt(fan_in) * 80
        return self.act_quant(spread / 40, int(self.rng.integers(-20, 20)))

    def conv(self, x: Tensor, out_channels: int, activation: str = "none") -> Tensor:
        w = self.weights("w", (out_channels, 3, 3, x.shape[-1]), 0)
        b = self.bias(x, w, out_channels)
        attrs = {**CONV, "activation": activation}
        return self.op("conv2d", [x, w, b], attrs, self.layer_quant(x, w, 9 * x.shape[-1]))

    def dense(self, x: Tensor, out_features: int, activation: str = "none") -> Tensor:
        axis = None if self.per_tensor_dense else 0
        w = self.weights("fw", (out_features, x.shape[-1]), axis)
        b = self.bias(x, w, out_features)
        attrs = {"activation": activation, "keep_num_dims": False}
        return self.op("fully_connected", [x, w, b], attrs, self.layer_quant(x, w, x.shape[-1]))

    def middle(self, kind: str, x: Tensor) -> Tensor:
        c = x.shape[-1]
        q = x.quant
        if kind in ("relu", "relu6"):
            return self.op(kind, [x], {}, q)
        if kind == "logistic":
            return self.op(kind, [x], {}, self.act_quant(1 / 256, -128))
        if kind == "tanh":
            return self.op(kind, [x], {}, self.act_quant(1 / 128, 0))
        if kind == "hard_swish":
            return self.op(kind, [x], {}, self.act_quant(self._scale(x) * 0.7, -60))
        if kind == "leaky_relu":
            return self.op(kind, [x], {"alpha": 0.2}, q)
        if self.int8 and kind in ("div_const", "batch_norm"):  # no int8 kernels: stand-ins
            kind = {"div_const": "sub_const", "batch_norm": "mul_const"}[kind]
        if kind in ("add_const", "sub_const", "mul_const", "div_const"):
            if self.int8:
                data = self.rng.integers(-100, 100, (1, 1, 1, c)).astype(np.int8)
                const = self.b.constant("k", data, self.act_quant(0.02, 5))
            else:
                data = self.rng.uniform(0.5, 2.0, c) * self.rng.choice((-1, 1), c)
                const = self.b.constant("k", data.astype(np.float32))
            scale = self._scale(x) * (0.05 if kind == "mul_const" else 1.5)
            # the chain's tensor is the second operand of an add, the first of the others
            inputs = [const, x] if kind == "add_const" else [x, const]
            return self.op(kind[:3], inputs, {"activation": "none"}, self.act_quant(scale, 2))
        if kind == "maximum_scalar":  # a constant of one value broadcasts to every channel
            data = np.full((1, 1, 1, 1), -3 if self.int8 else -0.1, x.dtype.numpy)
            return self.op("maximum", [x, self.b.constant("k", data, q)], {}, q)
        if kind == "clamp":
            bound = 50 if self.int8 else 0.5
            return self.op(kind, [x], {"min": -bound, "max": bound}, q)
        if kind == "identity":
            return self.op(kind, [x], {}, q)
        if kind == "batch_norm":
            params = [self.rng.uniform(0.5, 2.0, c).astype(np.float32) for _ in range(4)]
            consts = [self.b.constant(name, v) for name, v in zip("sbmv", params, strict=True)]
            return self.op(kind, [x, *consts], {"epsilon": 1e-3})
        if kind in ("max_pool2d", "avg_pool2d"):
            return self.op(kind, [x], {**POOL, "activation": "none"}, q)
        if kind == "depthwise":
            w = self.weights("dw", (1, 3, 3, c), 3)
            b = self.bias(x, w, c)
            attrs = {**CONV, "depth_multiplier": 1, "activation": "relu"}
            return self.op("depthwise_conv2d", [x, w, b], attrs, self.layer_quant(x, w, 9))
        if kind == "pad":
            return self.op(kind, [x], {"pads": ((0, 0), (1, 0), (0, 2), (0, 0))}, q)
        if kind == "quantize":
            if not self.int8:
                return self.op("relu", [x], {})
            return self.op(kind, [x], {}, self.act_quant(self._scale(x) * 1.3, 7))
        raise AssertionError(kind)

    def end(self, kind: str, x: Tensor, out_channels: int) -> Tensor:
        if kind == "conv":
            return self.conv(x, out_channels, "relu6")
        if kind == "fc":
            return self.dense(x, out_channels, "relu")
        if kind == "concat":
            return x
        if kind == "dequantize_concat":
            if self.int8:
                return self.op("dequantize", [x], {}, dtype=DType.FLOAT32)
            return self.op("relu", [x], {})
        if kind == "max_reshape_fc":
            pooled = self.op("reduce_max", [x], {"axes": (1, 2), "keepdims": True}, x.quant)
            flat = self.op("reshape", [pooled], {}, x.quant, shape=(1, x.shape[-1]))
            return self.dense(flat, out_channels)
        pooled = self.op("mean", [x], {"axes": (1, 2), "keepdims": kind == "mean_concat"}, x.quant)
        return pooled if kind == "mean_concat" else self.dense(pooled, out_channels)


def build(
    middle: tuple[str, ...],
    end: str,
    channels: int,
    dtype: DType = DType.FLOAT32,
    seed: int = 0,
    hw: int = 5,
    in_channels: int = 3,
    per_tensor_dense: bool = False,
) -> tuple[Graph, list[str]]:
    """START conv (or dense for an "fc" end without spatial ops) -> middle -> end."""
    chain = _Chain(dtype, seed, per_tensor_dense)
    if end == "fc" and not middle:
        x = chain.input((1, in_channels * hw))
        y = chain.dense(x, channels, "relu")
    else:
        x = chain.input((1, hw, hw, in_channels))
        y = chain.conv(x, channels, "relu")
    for kind in middle:
        y = chain.middle(kind, y)
    y = chain.end(end, y, 4)
    return chain.b.output(y), chain.names


def _assert_same(tiled: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    assert tiled.keys() == reference.keys()
    for name, expected in reference.items():
        if expected.dtype == np.float32:
            # The partitions sum the products in another order: relative to the output's scale.
            scale = float(np.abs(expected).max()) or 1.0
            np.testing.assert_allclose(tiled[name], expected, rtol=1e-5, atol=1e-5 * scale)
        else:
            np.testing.assert_array_equal(tiled[name], expected)


def _check_rewrite(graph: Graph, names: list[str], partitions: int, reorder: bool = True) -> Graph:
    """Tile a copy of ``graph``; check numbers (plain and in the planned arena), MACs, plan.

    ``reorder=False`` keeps the rewrite's op order (partition after partition) instead of
    searching for a better one, which takes seconds on a hundred ops.
    """
    inputs = graph_inputs(graph, seed=1)
    reference = execute(graph, inputs)
    tiled = graph.copy()
    result = apply_fdt(tiled, names, partitions)
    assert result.record == {"method": "fdt", "ops": names, "partitions": partitions}
    assert result.extra_macs == 0
    assert sum(map(macs, tiled.ops)) == sum(map(macs, graph.ops))
    assert [t.name for t in tiled.outputs] == [t.name for t in graph.outputs]
    _assert_same(execute(tiled, inputs), reference)
    plan = plan_memory(tiled, exact_time_limit=0, reorder=reorder)
    check_assignment(plan.lifetimes.buffers, plan.assignment, plan.arena.alignment)
    _assert_same(execute(tiled, inputs, plan.arena), reference)
    return tiled


# ---- every supported kind, both ends, float and int8 ---------------------------------------


@pytest.mark.parametrize("dtype", [DType.FLOAT32, DType.INT8], ids=str)
@pytest.mark.parametrize("end", ENDS)
def test_every_middle_kind_with_every_end(dtype, end):
    graph, names = build(MIDDLE, end, channels=7, dtype=dtype)
    tiled = _check_rewrite(graph, names, 3)
    kinds = [op.kind for op in tiled.ops]
    if end in ("conv", "fc", "mean_fc", "max_reshape_fc"):
        assert kinds.count("accumulator_output") == 1
        assert kinds[-1] == "accumulator_output"
    else:
        assert kinds[-1] == "concat"


@pytest.mark.parametrize("dtype", [DType.FLOAT32, DType.INT8], ids=str)
@pytest.mark.parametrize("per_tensor_dense", [False, True])
def test_dense_pair(dtype, per_tensor_dense):
    """fully_connected -> fully_connected: LOP then LIP, as in a stack of dense layers."""
    graph, names = build((), "fc", channels=9, dtype=dtype, per_tensor_dense=per_tensor_dense)
    assert [op.kind for op in graph.ops] == ["fully_connected", "fully_connected"]
    tiled = _check_rewrite(graph, names, 4)
    assert [op.kind for op in tiled.ops] == ["fully_connected", "partial_fully_connected"] * 4 + [
        "accumulator_output"
    ]


def test_int8_dense_per_tensor_accumulator_scale_is_tflite_micros_product():
    """TFLite Micro multiplies per-tensor dense scales in float32 (per channel, and for
    convolutions, in float64); the accumulator's scale must be that product so that the one
    requantization uses the layer's own multiplier. (The two products differ in the last bits
    of the multiplier: outputs rarely show it, so it is checked here.)"""
    chain = _Chain(DType.INT8, 3, per_tensor_dense=True)
    y = chain.dense(chain.input((64, 48)), 24, "relu")
    y = chain.dense(y, 256)
    graph = chain.b.output(y)
    tiled = _check_rewrite(graph, chain.names, 5)
    layer = graph.op(chain.names[-1])
    product = np.float32(layer.inputs[0].quant.scale[0]) * np.float32(
        layer.inputs[1].quant.scale[0]
    )
    acc = tiled.op(f"{chain.names[-1]}.p0").output
    assert acc.quant == Quantization((float(product),), (0,))


def test_int8_partitions_carry_their_channels_quantization():
    graph, names = build(("depthwise",), "conv", channels=5, dtype=DType.INT8)
    tiled = graph.copy()
    apply_fdt(tiled, names, 2)
    start = graph.op(names[0]).inputs[1]
    first, second = tiled.op(f"{names[0]}.p0").inputs[1], tiled.op(f"{names[0]}.p1").inputs[1]
    assert (
        first.quant.scale == start.quant.scale[:3] and second.quant.scale == start.quant.scale[3:]
    )
    np.testing.assert_array_equal(second.data, start.data[3:])
    acc = tiled.op(f"{names[-1]}.p1").output
    assert acc.dtype is DType.INT32 and acc.quant.zero_point == (0,) * 4
    x_scale = graph.op(names[-1]).inputs[0].quant.scale[0]
    w_scales = graph.op(names[-1]).inputs[1].quant.scale
    assert acc.quant.scale == tuple(x_scale * s for s in w_scales)
    # the partition's own input is its slice of the activation, with the same parameters
    assert tiled.op(f"{names[-1]}.p1").inputs[0].quant == graph.op(names[-1]).inputs[0].quant


def test_uneven_split_like_array_split():
    graph, names = build(("relu",), "concat", channels=10)
    tiled = _check_rewrite(graph, names, 4)
    widths = [tiled.op(f"{names[0]}.p{p}").output.shape[-1] for p in range(4)]
    assert widths == [3, 3, 2, 2]


def test_replay_from_record():
    graph, names = build(("relu", "max_pool2d"), "conv", channels=6)
    tiled = graph.copy()
    record = apply_fdt(tiled, names, 3).record
    replayed = apply_rewrites(graph.copy(), [record])
    assert format_graph(replayed) == format_graph(tiled)


# ---- golden text ---------------------------------------------------------------------------


def _tiny() -> Graph:
    b = GraphBuilder("tiny")
    x = b.input("x", (1, 4, 4, 2))
    w1 = b.constant("w1", np.ones((3, 1, 1, 2), np.float32))
    y = b.op(
        "conv2d", [x, w1, None], {**CONV, "pads": (0, 0, 0, 0), "activation": "none"}, name="expand"
    )
    y = b.op("relu", [y], name="relu")
    w2 = b.constant("w2", np.ones((2, 1, 1, 3), np.float32))
    bias = b.constant("b2", np.ones(2, np.float32))
    y = b.op(
        "conv2d",
        [y, w2, bias],
        {**CONV, "pads": (0, 0, 0, 0), "activation": "relu6"},
        name="project",
    )
    return b.output(y)


def test_golden_p2():
    graph = _tiny()
    conv = "dilations=(1, 1), groups=1, pads=(0, 0, 0, 0), strides=(1, 1)"
    assert format_graph(graph) == (
        "graph tiny(%x: float32[1,4,4,2]) -> (%project) {\n"
        f"  %expand: float32[1,4,4,3] = conv2d(%x, @w1:float32[3,1,1,2], _) "
        f"{{activation=none, {conv}}}\n"
        "  %relu: float32[1,4,4,3] = relu(%expand)\n"
        f"  %project: float32[1,4,4,2] = conv2d(%relu, @w2:float32[2,1,1,3], @b2:float32[2]) "
        f"{{activation=relu6, {conv}}}\n"
        "}\n"
    )
    apply_fdt(graph, ["expand", "relu", "project"], 2)
    partial = "dilations=(1, 1), pads=(0, 0, 0, 0), strides=(1, 1)"
    assert format_graph(graph) == (
        "graph tiny(%x: float32[1,4,4,2]) -> (%project) {\n"
        f"  %expand.p0: float32[1,4,4,2] = conv2d(%x, @w1.p0:float32[2,1,1,2], _) "
        f"{{activation=none, {conv}}}\n"
        "  %relu.p0: float32[1,4,4,2] = relu(%expand.p0)\n"
        "  %project.acc0: float32[1,4,4,2] = partial_conv2d(%relu.p0, @w2.p0:float32[2,1,1,2], "
        f"_) {{{partial}}}\n"
        f"  %expand.p1: float32[1,4,4,1] = conv2d(%x, @w1.p1:float32[1,1,1,2], _) "
        f"{{activation=none, {conv}}}\n"
        "  %relu.p1: float32[1,4,4,1] = relu(%expand.p1)\n"
        "  %project.acc1: float32[1,4,4,2] = partial_conv2d(%relu.p1, @w2.p1:float32[2,1,1,1], "
        f"%project.acc0) {{{partial}}}\n"
        "  %project: float32[1,4,4,2] = accumulator_output(%project.acc1, @b2:float32[2]) "
        "{activation=relu6}\n"
        "}\n"
    )
    assert set(graph.tensors) == {
        "x",
        "project",
        "w1.p0",
        "w1.p1",
        "w2.p0",
        "w2.p1",
        "b2",
        "expand.p0",
        "expand.p1",
        "relu.p0",
        "relu.p1",
        "project.acc0",
        "project.acc1",
    }


def test_golden_concat_end():
    graph = _tiny()
    apply_fdt(graph, ["expand", "relu"], 2)
    assert format_graph(graph).splitlines()[4:6] == [
        "  %relu.p1: float32[1,4,4,1] = relu(%expand.p1)",
        "  %relu: float32[1,4,4,3] = concat(%relu.p0, %relu.p1) {axis=3}",
    ]


# ---- the peak goes down where the intermediate is wide -------------------------------------


def _wide_conv(dtype: DType) -> tuple[Graph, list[str]]:
    """conv 16 -> 256 channels, relu, conv 256 -> 16, 1x1, on 16x16."""
    chain = _Chain(dtype, 0)
    x = chain.input((1, 16, 16, 16))
    attrs = {**CONV, "pads": (0, 0, 0, 0)}
    y = x
    for channels, activation in ((256, "none"), (16, "none")):
        w = chain.weights("w", (channels, 1, 1, y.shape[-1]), 0)
        quant = chain.layer_quant(y, w, y.shape[-1])
        y = chain.op(
            "conv2d", [y, w, chain.bias(y, w, channels)], {**attrs, "activation": activation}, quant
        )
        if channels == 256:
            y = chain.middle("relu", y)
    return chain.b.output(y), chain.names


def _wide_dense(dtype: DType) -> tuple[Graph, list[str]]:
    """dense 64 -> 1024, relu, dense 1024 -> 64."""
    chain = _Chain(dtype, 0)
    y = chain.dense(chain.input((1, 64)), 1024)
    y = chain.middle("relu", y)
    y = chain.dense(y, 64)
    return chain.b.output(y), chain.names


@pytest.mark.parametrize("dtype", [DType.FLOAT32, DType.INT8], ids=str)
@pytest.mark.parametrize("wide", [_wide_conv, _wide_dense], ids=["conv", "dense"])
def test_peak_goes_down(dtype, wide):
    """Untiled, the wide map and the chain input are live together. Tiled, at most the input,
    two accumulators (the one read and the one written) and one partition's two
    intermediates."""
    graph, names = wide(dtype)
    before = plan_memory(graph.copy(), exact_time_limit=0).arena.size
    tiled = _check_rewrite(graph, names, 8)
    after = plan_memory(tiled, exact_time_limit=0).arena.size
    accumulator = tiled.op(f"{names[-1]}.p0").output.nbytes
    intermediate = tiled.op(f"{names[0]}.p0").output.nbytes
    bound = graph.inputs[0].nbytes + 2 * accumulator + 2 * intermediate
    assert after <= bound < before, (before, bound, after)


# ---- chains FDT must refuse ----------------------------------------------------------------


def _refused(graph: Graph, names: list[str], partitions: int, *words: str) -> None:
    text = format_graph(graph)
    with pytest.raises(TilingError) as info:
        apply_fdt(graph, names, partitions)
    for word in words:
        assert word in str(info.value)
    assert format_graph(graph) == text, "a refused rewrite must leave the graph as it was"


def test_refuses_an_op_that_mixes_channels_in_the_middle():
    b = GraphBuilder("g")
    x = b.input("x", (1, 4, 4, 2))
    y = b.op(
        "conv2d",
        [x, b.constant("w", np.ones((4, 1, 1, 2), np.float32)), None],
        {**CONV, "pads": (0, 0, 0, 0), "activation": "none"},
        name="conv",
    )
    y = b.op("softmax", [y], {"axis": -1, "beta": 1.0}, name="softmax")
    y = b.op("relu", [y], name="relu")
    _refused(b.output(y), ["conv", "softmax", "relu"], 2, "'softmax'", "mixes channels")


def test_refuses_grouped_convolution():
    b = GraphBuilder("g")
    x = b.input("x", (1, 4, 4, 4))
    w = b.constant("w", np.ones((4, 1, 1, 2), np.float32))
    y = b.op(
        "conv2d",
        [x, w, None],
        {**CONV, "pads": (0, 0, 0, 0), "groups": 2, "activation": "none"},
        name="grouped",
    )
    y = b.op("relu", [y], name="relu")
    _refused(b.output(y), ["grouped", "relu"], 2, "'grouped'", "groups=2")


def test_refuses_nonlinear_op_after_lip():
    graph, names = build(("relu",), "conv", channels=4)
    b = GraphBuilder()
    b.graph = graph
    y = b.op("relu", [graph.outputs[0]], name="after")
    graph.outputs = [y]
    _refused(
        graph,
        [*names, "after"],
        2,
        "'after'",
        "partial sums",
        "not linear",
        f"end the chain at {names[-1]!r}",
    )


def test_refuses_more_partitions_than_channels():
    graph, names = build(("relu",), "conv", channels=4)
    _refused(graph, names, 5, "4 output channels", "at most 4")
    _refused(graph, names, 1, "at least 2")


def _conv_then(
    kind: str, attrs: dict, channels: int = 4, shape: tuple[int, ...] | None = None
) -> tuple[GraphBuilder, Tensor]:
    """conv 2 -> ``channels`` on 3x3, then one op of ``kind``."""
    b = GraphBuilder("g")
    x = b.input("x", (1, 3, 3, 2))
    w = b.constant(
        "w", np.random.default_rng(0).standard_normal((channels, 1, 1, 2)).astype(np.float32)
    )
    y = b.op(
        "conv2d", [x, w, None], {**CONV, "pads": (0, 0, 0, 0), "activation": "none"}, name="conv"
    )
    return b, b.op(kind, [y], attrs, name=kind, shape=shape)


@pytest.mark.parametrize(
    ("kind", "attrs", "reason"),
    [
        ("pad", {"pads": ((0, 0), (0, 0), (0, 0), (1, 0))}, "pads the channel axis"),
        ("mean", {"axes": (3,), "keepdims": True}, "reduces over the channel axis"),
        ("lrn", {"radius": 1, "bias": 1.0, "alpha": 1.0, "beta": 0.5}, "not a per-channel op"),
        ("transpose", {"perm": (0, 3, 1, 2)}, "not a per-channel op"),
    ],
)
def test_refuses_ops_that_do_not_keep_channels_apart(kind, attrs, reason):
    b, y = _conv_then(kind, attrs)
    _refused(b.output(y), ["conv", kind], 2, f"'{kind}'", reason)


def test_refuses_depth_multiplier():
    b = GraphBuilder("g")
    x = b.input("x", (1, 3, 3, 2))
    w = b.constant("w", np.ones((4, 1, 1, 2), np.float32))
    y = b.op(
        "conv2d", [x, w, None], {**CONV, "pads": (0, 0, 0, 0), "activation": "none"}, name="conv"
    )
    dw = b.constant("dw", np.ones((1, 3, 3, 8), np.float32))
    y = b.op(
        "depthwise_conv2d",
        [y, dw, None],
        {**CONV, "depth_multiplier": 2, "activation": "none"},
        name="dw",
    )
    _refused(b.output(y), ["conv", "dw"], 2, "'dw'", "depth multiplier")


def test_refuses_a_chain_that_does_not_start_with_a_layer():
    b = GraphBuilder("g")
    x = b.input("x", (1, 3, 3, 2))
    w = b.constant("w", np.ones((1, 3, 3, 2), np.float32))
    y = b.op(
        "depthwise_conv2d",
        [x, w, None],
        {**CONV, "depth_multiplier": 1, "activation": "none"},
        name="dw",
    )
    _refused(b.output(y), ["dw"], 2, "'dw'", "start", "conv2d (groups 1) or fully_connected")


def test_refuses_lip_dense_layer_behind_a_reshape_that_mixes_channels():
    """A reshape of [1, 3, 3, C] to [1, 36] before a dense layer: the reshape ends the chain."""
    rng = np.random.default_rng(0)

    def conv_then_dense(reshape_to: tuple[int, ...], features: int) -> Graph:
        b, y = _conv_then("reshape", {}, channels=4, shape=reshape_to)
        fw = b.constant("fw", rng.standard_normal((2, features)).astype(np.float32))
        return b.output(b.op("fully_connected", [y, fw, None], {"activation": "none"}, name="fc"))

    # [1, 3, 3, 4] -> [9, 4] keeps the channels on the last axis: a dense layer per position
    _check_rewrite(conv_then_dense((9, 4), 4), ["conv", "reshape", "fc"], 2)
    _refused(
        conv_then_dense((1, 36), 36),
        ["conv", "reshape", "fc"],
        2,
        "'reshape'",
        "last axis must keep",
    )


@pytest.mark.parametrize("dtype", [DType.FLOAT32, DType.INT8], ids=str)
@pytest.mark.parametrize("partitions", [2, 3])
def test_lip_dense_layer_that_flattens_its_input(dtype, partitions):
    """A dense layer with H*W*C weight columns flattens a [1, H, W, C] map itself (as in
    micro_speech): each partition's columns are gathered from every position."""
    chain = _Chain(dtype, seed=3)
    x = chain.input((1, 3, 4, 2))
    y = chain.conv(x, 5, "relu")
    w = chain.weights("fw", (3, 3 * 4 * 5), 0)
    bias = chain.bias(y, w, 3)
    attrs = {"activation": "none", "keep_num_dims": False}
    y = chain.op("fully_connected", [y, w, bias], attrs, chain.layer_quant(y, w, 60))
    _check_rewrite(chain.b.output(y), chain.names, partitions)


def test_refuses_chain_whose_intermediate_is_read_elsewhere():
    graph, names = build(("relu",), "conv", channels=4)
    graph.outputs.append(graph.op(names[1]).output)
    _refused(graph, names, 2, "also read by")


# ---- random chains -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    middle=st.lists(st.sampled_from(MIDDLE), max_size=4).map(tuple),
    end=st.sampled_from(ENDS),
    channels=st.integers(2, 24),
    data=st.data(),
    dtype=st.sampled_from([DType.FLOAT32, DType.INT8]),
    seed=st.integers(0, 2**16),
)
def test_random_chains_compute_the_same(middle, end, channels, data, dtype, seed):
    partitions = data.draw(st.integers(2, min(16, channels)), label="partitions")
    graph, names = build(middle, end, channels, dtype, seed, hw=4)
    tiled = _check_rewrite(graph, names, partitions, reorder=False)
    spans = [tiled.op(f"{names[0]}.p{p}").output.shape[-1] for p in range(partitions)]
    assert spans == [len(s) for s in np.array_split(np.arange(channels), partitions)]


# ---- real models ---------------------------------------------------------------------------

MODELS = SHARED_MODELS


def _model(source: str) -> Graph:
    if not source.startswith("zoo:") and not Path(source).exists():
        pytest.skip(f"{source} is not available")
    return api.load(source)


def _check_real(source: str, names: list[str], partitions: int) -> None:
    graph = _model(source)
    before = plan_memory(graph.copy(), exact_time_limit=0).arena.size
    tiled = _check_rewrite(graph, names, partitions)
    assert plan_memory(tiled, exact_time_limit=0).arena.size < before


def test_vww_int8_peak_chain():
    """MobileNetV1 0.25: the expanding pointwise conv at 48x48 and the stride-2 depthwise after
    it hold the peak; cut into channel partitions they no longer do."""
    vww = str(MODELS / "mlperf_tiny_vww_int8.tflite")
    _check_real(vww, ["conv_2d_2", "depthwise_conv_2d_3"], 4)


@pytest.mark.slow
def test_mobilenetv2_int8_peak_chain():
    """The expansion of block 1 (16 -> 96 channels at 112x112) holds the peak."""
    _check_real("zoo:mobilenetv2-int8", ["block1/expand", "block1/depthwise"], 8)


def test_chain_interleaved_with_another_branch():
    """Ops of other branches between the chain's ops keep running, on the same values."""
    b = GraphBuilder("branches")
    x = b.input("x", (1, 4, 4, 3))
    rng = np.random.default_rng(0)
    w1 = b.constant("w1", rng.standard_normal((6, 1, 1, 3)).astype(np.float32))
    y = b.op(
        "conv2d", [x, w1, None], {**CONV, "pads": (0, 0, 0, 0), "activation": "none"}, name="expand"
    )
    other = b.op("relu6", [x], name="other")
    y = b.op("relu", [y], name="relu")
    w2 = b.constant("w2", rng.standard_normal((2, 1, 1, 6)).astype(np.float32))
    y = b.op(
        "conv2d",
        [y, w2, None],
        {**CONV, "pads": (0, 0, 0, 0), "activation": "none"},
        name="project",
    )
    tiled = _check_rewrite(b.output(y, other), ["expand", "relu", "project"], 3)
    assert tiled.op("other").inputs[0] is tiled.inputs[0]
