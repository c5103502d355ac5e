"""The storage map: golden tests for every kind of byte sharing, on tiny hand-built graphs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Quantization
from memfit.ir.dtypes import DType
from memfit.planning import plan_memory
from memfit.planning.arena import separate_plan
from memfit.planning.lifetimes import compute_lifetimes, lower_bound
from memfit.planning.schedule import apply_schedule
from memfit.planning.storage import (
    NO_SHARING,
    InPlace,
    StorageOptions,
    StorageRef,
    build_storage,
)
from memfit.runtime.executor import execute
from memfit.runtime.kernels.conv import depthwise_conv2d
from tests.helpers import CONV, residual_block, small_cnn
from tests.test_planning_strategies import executable_dags, random_topological_order

NONE = {"activation": "none"}
ONLY = {
    "reshape": StorageOptions.only("reshape_views"),
    "concat": StorageOptions.only("concat_in_place"),
    "elementwise": StorageOptions.only("elementwise_in_place"),
    "depthwise": StorageOptions.only("depthwise_in_place"),
    "pool": StorageOptions.only("pool_in_place"),
    "accumulator": StorageOptions.only("accumulator_in_place"),
}


def _conv(b, x, channels, name, seed=0):
    w = np.random.default_rng(seed).standard_normal((channels, 1, 1, x.shape[-1]))
    attrs = {**CONV, "pads": (0, 0, 0, 0), "activation": "none"}
    return b.op(
        "conv2d", [x, b.constant(f"{name}_w", w.astype(np.float32)), None], attrs, name=name
    )


def _depthwise(b, x, name, kernel=3, stride=1, pad=1, dilation=1, multiplier=1):
    channels = x.shape[-1] * multiplier
    w = np.ones((1, kernel, kernel, channels), np.float32)
    attrs = {
        "strides": (stride, stride),
        "dilations": (dilation, dilation),
        "pads": (pad,) * 4,
        "depth_multiplier": multiplier,
        "activation": "none",
    }
    return b.op("depthwise_conv2d", [x, b.constant(f"{name}_w", w), None], attrs, name=name)


def _runs_identically(graph, **options):
    """The graph gives the same outputs in its planned arena as with every tensor apart."""
    rng = np.random.default_rng(0)
    inputs = {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in graph.inputs}
    expected = execute(graph, inputs, separate_plan(graph))
    plan = plan_memory(graph, **options)
    got = execute(graph, inputs, plan.arena)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)
    return plan


# ---- reshape views ---------------------------------------------------------------------------
def test_reshape_output_is_a_view_of_its_input():
    g = small_cnn()
    storage = build_storage(g, ONLY["reshape"])
    assert storage.refs["flatten"] == StorageRef("max_pool2d_2", 0)
    assert storage.root("relu") == "relu"
    assert storage.members()["max_pool2d_2"] == ("max_pool2d_2", "flatten")
    assert "flatten" not in storage.roots()
    assert storage.in_place["flatten"] == InPlace("reshape", (0,), writes=False)
    assert storage.moves_no_data("flatten")


def test_no_sharing_at_all():
    g = small_cnn()
    storage = build_storage(g, NO_SHARING)
    assert set(storage.roots()) == {t.name for t in g.activations()}
    assert storage.in_place == {}


def test_chain_of_reshapes_resolves_to_the_first_tensor():
    b = GraphBuilder()
    x = b.input("x", (2, 6))
    y = b.op("reshape", [x], shape=(3, 4), name="r1")
    z = b.op("reshape", [y], shape=(12,), name="r2")
    g = b.output(b.op("relu", [z], name="act"))
    storage = build_storage(g)
    assert storage.root("r1") == storage.root("r2") == "x"
    # act may not overwrite r2: its bytes are the graph input's
    assert storage.members() == {"x": ("x", "r1", "r2"), "act": ("act",)}


def test_reshape_of_a_constant_gets_its_own_bytes():
    b = GraphBuilder()
    x = b.input("x", (2, 6))
    c = b.constant("c", np.ones((12,), np.float32))
    shaped = b.op("reshape", [c], shape=(2, 6), name="shaped")
    g = b.output(b.op("add", [x, shaped], NONE, name="sum"))
    assert build_storage(g).root("shaped") == "shaped"


# ---- concat in place -------------------------------------------------------------------------
def _two_branch_concat(axis, shape_a=(1, 2, 2, 3), shape_b=(1, 2, 2, 5)):
    b = GraphBuilder()
    x = b.input("x", (1, 2, 2, 2))
    if axis == 3:
        a, c = _conv(b, x, shape_a[3], "a"), _conv(b, x, shape_b[3], "b", seed=1)
    else:
        a = b.op("relu", [b.input("y", shape_a)], name="a")
        c = b.op("relu", [b.input("z", shape_b)], name="b")
    cat = b.op("concat", [a, c], {"axis": axis, **NONE}, name="cat")
    return b.output(b.op("relu", [cat], name="out"))


def test_concat_along_channels_makes_strided_views():
    g = _two_branch_concat(axis=3)
    storage = build_storage(g, ONLY["concat"])
    strides = (2 * 2 * 8 * 4, 2 * 8 * 4, 8 * 4, 4)  # the output's, in bytes
    assert storage.refs["a"] == StorageRef("cat", 0, strides)
    assert storage.refs["b"] == StorageRef("cat", 3 * 4, strides)
    assert storage.refs["cat"] == StorageRef("cat")
    assert storage.in_place == {"cat": InPlace("concat", (0, 1), writes=False)}
    assert storage.moves_no_data("cat")
    plan = _runs_identically(g, storage=ONLY["concat"])
    assert plan.arena.placements["b"].strides == strides


def test_concat_along_the_outermost_axis_makes_contiguous_views():
    g = _two_branch_concat(axis=1, shape_a=(1, 2, 3, 4), shape_b=(1, 1, 3, 4))
    storage = build_storage(g, ONLY["concat"])
    assert storage.refs["a"] == StorageRef("cat", 0)
    assert storage.refs["b"] == StorageRef("cat", 2 * 3 * 4 * 4)


def test_nested_concats_compose():
    b = GraphBuilder()
    x = b.input("x", (1, 2, 2, 2))
    a, c = _conv(b, x, 1, "a"), _conv(b, x, 2, "c", 1)
    inner = b.op("concat", [a, c], {"axis": 3, **NONE}, name="inner")  # (1, 2, 2, 3)
    e = _conv(b, x, 3, "e", 2)
    rows = b.op("concat", [inner, e], {"axis": 1, **NONE}, name="rows")  # (1, 4, 2, 3)
    d = b.op("relu", [b.input("y", (1, 4, 2, 2))], name="d")
    outer = b.op("concat", [rows, d], {"axis": 3, **NONE}, name="outer")  # (1, 4, 2, 5)
    g = b.output(b.op("relu", [outer], name="out"))
    storage = build_storage(g, ONLY["concat"])
    strides = (4 * 2 * 5 * 4, 2 * 5 * 4, 5 * 4, 4)  # outer's
    assert {name: storage.refs[name] for name in ("a", "c", "inner", "e", "rows", "d")} == {
        "a": StorageRef("outer", 0, strides),
        "c": StorageRef("outer", 4, strides),
        "inner": StorageRef("outer", 0, strides),
        "e": StorageRef("outer", 2 * 2 * 5 * 4, strides),  # row 2 of outer
        "rows": StorageRef("outer", 0, strides),
        "d": StorageRef("outer", 3 * 4, strides),
    }
    assert storage.moves_no_data("inner") and storage.moves_no_data("rows")
    assert storage.moves_no_data("outer")
    _runs_identically(g)


def test_reshape_view_cannot_follow_its_input_into_a_strided_slice():
    b = GraphBuilder()
    x = b.input("x", (1, 2, 2, 2))
    a = _conv(b, x, 2, "a")
    flat = b.op("reshape", [a], shape=(1, 8), name="flat")
    cat = b.op("concat", [a, _conv(b, x, 1, "c", 1)], {"axis": 3, **NONE}, name="cat")
    g = b.output(cat, flat)
    storage = build_storage(g)
    assert storage.root("flat") == "a" == storage.root("a")
    assert storage.in_place["cat"] == InPlace("concat", (1,), writes=True)
    _runs_identically(g)


def test_nested_channel_concats_compose_into_one_root():
    # DenseNet: every layer concatenates all earlier features with its own
    b = GraphBuilder()
    x = b.input("x", (1, 2, 2, 2))
    features = _conv(b, x, 2, "f0")
    for i in range(1, 4):
        new = _conv(b, features, 1, f"f{i}", seed=i)
        features = b.op("concat", [features, new], {"axis": 3, **NONE}, name=f"cat{i}")
    g = b.output(b.op("relu", [features], name="out"))
    storage = build_storage(g, ONLY["concat"])
    strides = (2 * 2 * 5 * 4, 2 * 5 * 4, 5 * 4, 4)
    assert storage.refs["cat3"] == StorageRef("cat3")
    assert storage.refs["f0"] == StorageRef("cat3", 0, strides)
    assert storage.refs["cat1"] == StorageRef("cat3", 0, strides)
    assert storage.refs["cat2"] == StorageRef("cat3", 0, strides)
    for i in range(1, 4):
        assert storage.refs[f"f{i}"] == StorageRef("cat3", (1 + i) * 4, strides)
    assert set(storage.roots()) == {"x", "cat3", "out"}


@pytest.mark.parametrize(
    "case", ["graph input", "constant", "graph output", "twice", "other quantization", "relu"]
)
def test_concat_copies_what_cannot_be_a_view(case):
    b = GraphBuilder()
    q1, q2 = Quantization((0.5,), (0,)), Quantization((0.25,), (0,))
    quantized = case == "other quantization"
    dtype = DType.INT8 if quantized else DType.FLOAT32
    x = b.input("x", (1, 2, 2, 2), dtype, q1 if quantized else None)
    a = b.op("relu", [x], name="a", quant=q2 if quantized else None)
    other = {
        "graph input": x,
        "constant": b.constant("k", np.ones((1, 2, 2, 2), dtype.numpy)),
        "twice": a,
    }.get(case, b.op("relu", [x], name="other", quant=q1 if quantized else None))
    activation = "relu" if case == "relu" else "none"
    attrs = {"axis": 3, "activation": activation}
    cat = b.op("concat", [a, other], attrs, name="cat", quant=q1 if quantized else None)
    g = b.output(cat, a) if case == "graph output" else b.output(cat)
    storage = build_storage(g, ONLY["concat"])
    expected = {
        "graph input": (0,),
        "constant": (0,),
        "graph output": (1,),
        "twice": None,
        "other quantization": (1,),
        "relu": None,
    }[case]
    entry = storage.in_place.get("cat")
    assert (entry and entry.inputs) == expected
    if expected is not None:
        assert entry.writes  # the concat copies the other input
        assert not storage.moves_no_data("cat")


def test_concat_input_read_elsewhere_is_still_a_view():
    # the view's other reader runs while the root is live: fine
    b = GraphBuilder()
    x = b.input("x", (1, 2, 2, 2))
    a, c = _conv(b, x, 2, "a"), _conv(b, x, 2, "c", 1)
    cat = b.op("concat", [a, c], {"axis": 3, **NONE}, name="cat")
    side = _conv(b, a, 2, "side", 2)
    g = b.output(b.op("add", [cat, b.op("concat", [side, side], {"axis": 3, **NONE})], NONE))
    storage = build_storage(g)
    assert storage.root("a") == "cat"
    lifetimes = compute_lifetimes(g, storage=storage)
    assert lifetimes.buffer("cat").last >= [op.name for op in g.ops].index("side")


# ---- elementwise in place --------------------------------------------------------------------
def test_activation_overwrites_its_input():
    g = small_cnn()
    storage = build_storage(g, ONLY["elementwise"])
    assert storage.refs["relu"] == StorageRef("conv")
    assert storage.in_place == {"relu": InPlace("elementwise", (0,), writes=True)}
    assert not storage.moves_no_data("relu")


def test_residual_add_reuses_the_input_that_dies_there():
    b = GraphBuilder()
    x = b.input("x", (1, 4, 4, 2))
    skip = _conv(b, x, 2, "skip")  # read by the branch and by the add
    branch = _conv(b, skip, 2, "branch", 1)
    g = b.output(b.op("relu", [b.op("add", [skip, branch], NONE, name="sum")], name="out"))
    storage = build_storage(g, ONLY["elementwise"])
    # skip dies at the add too (its other reader runs before): the first that dies is taken
    assert storage.in_place["sum"] == InPlace("elementwise", (0,), writes=True)
    assert storage.root("sum") == storage.root("out") == "skip"
    _runs_identically(g)


def test_input_read_later_is_not_overwritten():
    b = GraphBuilder()
    x = b.input("x", (1, 4, 4, 2))
    y = _conv(b, x, 2, "y")
    z = _conv(b, x, 2, "z", 1)
    summed = b.op("add", [y, z], NONE, name="sum")
    later = _conv(b, y, 2, "later", 2)  # y is read after the add: neither y's bytes...
    g = b.output(b.op("mul", [summed, later], NONE, name="out"))
    storage = build_storage(g, ONLY["elementwise"])
    # ...nor are they taken, but z dies at the add
    assert storage.in_place["sum"] == InPlace("elementwise", (1,), writes=True)
    assert storage.root("sum") == "z" and storage.root("y") == "y"
    # once z is read later too, nothing dies at the add
    g.add_op("relu", [g.tensors["z"]], [g.add_tensor("z_late", (1, 4, 4, 2), DType.FLOAT32)])
    g.outputs.append(g.tensors["z_late"])
    assert "sum" not in build_storage(g, ONLY["elementwise"]).in_place


def test_reader_in_another_branch_forbids_overwriting_in_any_order():
    # a relu in a parallel branch may run after the add in some order: not in place
    b = GraphBuilder()
    x = b.input("x", (1, 2, 2, 2))
    y = _conv(b, x, 2, "y")
    summed = b.op("add", [y, b.constant("k", np.ones(2, np.float32))], NONE, name="sum")
    side = b.op("relu", [y], name="side")
    g = b.output(summed, side)
    assert build_storage(g).in_place == {}


def test_broadcast_input_is_never_overwritten():
    b = GraphBuilder()
    x = b.input("x", (1, 2, 2, 3))
    big = _conv(b, x, 3, "big")
    small = b.op("mean", [big], {"axes": (1, 2), "keepdims": True}, name="small")
    g = b.output(b.op("mul", [small, big], NONE, name="scaled"))  # squeeze-excite
    storage = build_storage(g)
    assert storage.in_place["scaled"] == InPlace("elementwise", (1,), writes=True)
    assert storage.root("scaled") == "big"


def test_graph_inputs_and_outputs_are_never_overwritten():
    g = residual_block()  # add reads the graph input x and relu (dies there)
    storage = build_storage(g)
    assert storage.root("add") == "conv"  # over relu, which is over conv; never over x
    g.outputs.append(g.tensors["relu"])
    assert build_storage(g).root("add") == "add"


def test_int8_requantization_runs_in_place_and_a_float_one_does_not():
    b = GraphBuilder()
    q = Quantization((0.5,), (3,))
    x = b.input("x", (1, 2, 2, 2), DType.INT8, q)
    y = b.op("relu", [x], name="y")
    requant = b.op("quantize", [y], name="requant", quant=Quantization((0.25,), (0,)))
    f = b.op("dequantize", [requant], dtype=DType.FLOAT32, name="f")
    back = b.op("quantize", [f], dtype=DType.INT8, quant=q, name="back")
    g = b.output(b.op("relu", [back], name="out"))
    storage = build_storage(g)
    assert storage.root("requant") == "y"
    assert "back" not in storage.in_place  # float32 -> int8 changes the element size
    assert storage.root("out") == "back"


# ---- depthwise in place ----------------------------------------------------------------------
def test_depthwise_overwrites_its_input_with_a_one_channel_temporary():
    b = GraphBuilder()
    x = b.input("x", (1, 8, 8, 1))
    expand = _conv(b, x, 8, "expand")
    dw = _depthwise(b, expand, "dw", stride=2)
    g = b.output(_conv(b, dw, 2, "project", 1))
    storage = build_storage(g, ONLY["depthwise"])
    assert storage.refs["dw"] == StorageRef("expand")
    assert storage.in_place == {"dw": InPlace("depthwise", (0,), writes=True)}
    lifetimes = compute_lifetimes(g, storage=storage)
    assert lifetimes.scratch == {"dw": "scratch:dw"}
    assert lifetimes.buffer("scratch:dw").size == 4 * 4 * 4  # Ho*Wo float32
    # the root keeps the input's size while the output lives
    assert lifetimes.buffer("expand").size == 8 * 8 * 8 * 4
    assert lifetimes.buffer("expand").last == 2
    separate = compute_lifetimes(g, storage=build_storage(g, NO_SHARING))
    assert lower_bound(lifetimes) == 256 + 2048 < lower_bound(separate) == 2048 + 512
    assert "scratch:dw" not in {b.name for b in separate.buffers}
    plan = _runs_identically(g)
    assert plan.in_place["dw"].kind == "depthwise" and "dw" in plan.scratch_offsets


@pytest.mark.parametrize(
    ("kernel", "stride", "pad", "dilation", "multiplier", "in_place"),
    [
        (3, 1, 1, 1, 1, True),
        (3, 2, 1, 1, 1, True),
        (3, 2, 0, 1, 1, True),
        (3, 1, 2, 2, 1, True),
        (5, 2, 2, 1, 1, True),
        (1, 1, 1, 1, 1, False),  # the padded output is larger than the input
        (3, 1, 2, 1, 1, False),
        (3, 1, 1, 1, 2, False),  # depth multiplier 2
    ],
)
def test_depthwise_in_place_conditions(kernel, stride, pad, dilation, multiplier, in_place):
    b = GraphBuilder()
    x = b.input("x", (1, 6, 5, 3))
    first = _conv(b, x, 3, "first")
    dw = _depthwise(b, first, "dw", kernel, stride, pad, dilation, multiplier)
    g = b.output(b.op("relu", [dw], name="out"))
    assert ("dw" in build_storage(g, ONLY["depthwise"]).in_place) == in_place


def _channel_by_channel(x: np.ndarray, dw_op, weights: np.ndarray) -> np.ndarray:
    """Depthwise convolution as the in-place C kernel runs it, in one flat buffer that holds x
    and nothing more: for each batch and channel, the output channel goes into a one-channel
    temporary, then over the buffer's output positions of that channel. Returns the output read
    back from the buffer."""
    n, h, w, channels = x.shape
    _, ho, wo, _ = dw_op.output.shape
    one = GraphBuilder()
    single = one.input("x", (1, h, w, 1))
    kernel = one.constant("w", weights[..., :1])
    one_channel = one.op("depthwise_conv2d", [single, kernel, None], dw_op.attrs, name="dw")
    one_op = one.graph.op("dw")
    assert one_channel.shape == (1, ho, wo, 1)
    buffer = x.reshape(-1).copy()
    for b in range(n):
        for c in range(channels):
            image = buffer.reshape(n, h, w, channels)[b : b + 1, :, :, c : c + 1]
            temporary = depthwise_conv2d(one_op, image, weights[..., c : c + 1], None)
            positions = (b * ho * wo + np.arange(ho * wo)) * channels + c
            buffer[positions] = temporary.reshape(-1)
    return buffer[: n * ho * wo * channels].reshape(n, ho, wo, channels)


@settings(max_examples=150, deadline=None)
@given(
    batch=st.integers(1, 2),
    height=st.integers(1, 7),
    width=st.integers(1, 7),
    channels=st.integers(1, 3),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    seed=st.integers(0, 2**16),
)
def test_channel_by_channel_in_place_gives_the_kernel_result(
    batch, height, width, channels, kernel, stride, dilation, pads, seed
):
    """Where the planner runs a depthwise convolution in place, channel by channel in the
    input's own bytes gives exactly what the kernel computes; it refuses exactly where the
    output would not fit in the input's bytes."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", (batch, height, width, channels))
    first = b.op("relu", [x], name="first")
    weights = rng.standard_normal((1, kernel, kernel, channels)).astype(np.float32)
    attrs = {
        "strides": (stride, stride),
        "dilations": (dilation, dilation),
        "pads": pads,
        "depth_multiplier": 1,
        "activation": "none",
    }
    span = (kernel - 1) * dilation + 1
    if height + pads[0] + pads[2] < span or width + pads[1] + pads[3] < span:
        return  # no output
    dw = b.op("depthwise_conv2d", [first, b.constant("w", weights), None], attrs, name="dw")
    g = b.output(b.op("relu", [dw], name="out"))
    _, ho, wo, _ = dw.shape
    in_place = "dw" in build_storage(g, ONLY["depthwise"]).in_place
    assert in_place == (ho * wo <= height * width)
    if in_place:
        image = rng.standard_normal(x.shape).astype(np.float32)
        expected = depthwise_conv2d(g.op("dw"), image, weights, None)
        np.testing.assert_array_equal(_channel_by_channel(image, g.op("dw"), weights), expected)


# ---- options, order independence -------------------------------------------------------------
def test_each_kind_can_be_turned_off():
    g = _two_branch_concat(axis=3)
    assert set(build_storage(g).in_place) == {"cat", "out"}
    assert set(build_storage(g, StorageOptions(concat_in_place=False)).in_place) == {"out"}
    assert set(build_storage(g, StorageOptions(elementwise_in_place=False)).in_place) == {"cat"}
    excluded = StorageOptions(not_in_place=frozenset({"cat"}))
    assert set(build_storage(g, excluded).in_place) == {"out"}


def test_options_round_trip_through_json():
    options = StorageOptions(
        concat_in_place=False, pool_in_place=False, not_in_place=frozenset({"b", "a"})
    )
    assert options.to_json()["not_in_place"] == ["a", "b"]
    assert StorageOptions.from_json(options.to_json()) == options
    with pytest.raises(ValueError, match="unknown"):
        StorageOptions.from_json({"copy_everything": True})


@settings(max_examples=60, deadline=None)
@given(data=st.data(), graph=executable_dags(max_ops=10))
def test_the_map_does_not_depend_on_the_op_order(data, graph):
    before = build_storage(graph)
    apply_schedule(graph, data.draw(random_topological_order(graph)))
    after = build_storage(graph)
    assert dict(after.refs) == dict(before.refs)
    assert dict(after.in_place) == dict(before.in_place)


def test_input_of_two_concats_is_a_view_of_the_first_only():
    b = GraphBuilder()
    x = b.input("x", (1, 2, 2, 2))
    shared, c, d = _conv(b, x, 2, "shared"), _conv(b, x, 1, "c", 1), _conv(b, x, 1, "d", 2)
    first = b.op("concat", [shared, c], {"axis": 3, **NONE}, name="first")
    second = b.op("concat", [d, shared], {"axis": 3, **NONE}, name="second")
    g = b.output(b.op("add", [first, second], NONE, name="sum"))
    storage = build_storage(g, ONLY["concat"])
    assert storage.root("shared") == "first"
    assert storage.in_place["second"] == InPlace("concat", (0,), writes=True)
    _runs_identically(g)
