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
from memfit.runtime.kernels import run_kernel
from tests.helpers import CONV, graph_inputs, residual_block, small_cnn
from tests.test_planning_strategies import (
    accumulating_graph,
    executable_dags,
    random_topological_order,
)

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


# ---- slice views -----------------------------------------------------------------------------
def _slice(b, x, begin, end, name, steps=None, shrink=()):
    steps = steps or (1,) * len(begin)
    attrs = {"begin": begin, "end": end, "strides": steps, "shrink_axes": shrink}
    return b.op("strided_slice", [x], attrs, name=name)


def _windows_graph():
    """Two overlapping 2-D windows of a graph input, each through a 1x1 conv, concatenated."""
    b = GraphBuilder()
    x = b.input("x", (1, 5, 6, 3))
    left = _slice(b, x, (0, 0, 0, 0), (1, 5, 4, 3), "left")
    right = _slice(b, x, (0, 1, 2, 0), (1, 4, 6, 3), "right")
    a = _conv(b, left, 2, "a")
    c = _conv(b, right, 2, "c", seed=1)
    flat_a = b.op("reshape", [a], shape=(1, 40), name="flat_a")
    flat_c = b.op("reshape", [c], shape=(1, 24), name="flat_c")
    return b.output(b.op("concat", [flat_a, flat_c], {"axis": 1, **NONE}, name="cat"))


def test_slice_output_is_a_strided_view_of_its_input():
    g = _windows_graph()
    storage = build_storage(g, StorageOptions.only("slice_views"))
    assert storage.refs["left"] == StorageRef("x", 0, (360, 72, 12, 4))
    # (row 1, column 2): 1*18 + 2*3 floats in
    assert storage.refs["right"] == StorageRef("x", (18 + 6) * 4, (360, 72, 12, 4))
    assert storage.in_place["left"] == InPlace("slice", (0,), writes=False)
    assert storage.moves_no_data("right")
    assert build_storage(g, NO_SHARING).root("left") == "left"


def test_slice_views_run_as_the_copies_did():
    plan = _runs_identically(_windows_graph())
    assert plan.storage.root("left") == plan.storage.root("right") == "x"


def test_slice_of_a_view_composes_and_rows_stay_contiguous():
    b = GraphBuilder()
    x = b.input("x", (1, 6, 4, 2))
    rows = _slice(b, b.op("relu", [x], name="r"), (0, 2, 0, 0), (1, 6, 4, 2), "rows")
    inner = _slice(b, rows, (0, 1, 1, 0), (1, 3, 3, 2), "inner", steps=(1, 1, 1, 1))
    g = b.output(b.op("relu", [inner], name="out"))
    storage = build_storage(g, StorageOptions.only("slice_views"))
    assert storage.refs["rows"] == StorageRef("r", 2 * 8 * 4)  # whole rows: contiguous
    # (row 2+1, column 1) of r, under r's strides
    assert storage.refs["inner"] == StorageRef("r", (3 * 8 + 2) * 4, (128, 32, 8, 4))
    _runs_identically(g)


@pytest.mark.parametrize(
    ("steps", "shrink", "view"),
    [
        ((1, 2, 1, 1), (), True),  # every other row: a view with twice the row stride
        ((1, 1, 1, 2), (), False),  # every other channel: kernels need channels contiguous
        ((1, 1, 1, 1), (1,), True),  # one row, its axis dropped
    ],
)
def test_slice_view_conditions(steps, shrink, view):
    b = GraphBuilder()
    x = b.input("x", (1, 4, 4, 4))
    end = (1, 2, 4, 4) if shrink else (1, 4, 4, 4)
    part = _slice(b, b.op("relu", [x], name="r"), (0, 1, 0, 0), end, "part", steps, shrink)
    g = b.output(b.op("relu", [part], name="out"))
    assert (build_storage(g).root("part") == "r") == view
    _runs_identically(g)


def test_slice_that_is_a_graph_output_is_copied():
    b = GraphBuilder()
    x = b.input("x", (1, 4, 4, 2))
    g = b.output(_slice(b, b.op("relu", [x], name="r"), (0, 1, 1, 0), (1, 3, 3, 2), "part"))
    assert build_storage(g).root("part") == "part"


def test_elementwise_never_overwrites_a_window_of_a_larger_root():
    b = GraphBuilder()
    x = b.input("x", (1, 4, 4, 2))
    r = b.op("relu", [x], name="r")
    part = _slice(b, r, (0, 1, 1, 0), (1, 3, 3, 2), "part")
    g = b.output(b.op("relu", [part], name="out"))
    storage = build_storage(g)
    assert storage.root("part") == "r" and storage.root("out") == "out"


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


def _channel_by_channel(x: np.ndarray, op) -> np.ndarray:
    """A depthwise convolution or pooling as the in-place C kernel runs it, in one flat buffer
    that holds x and nothing more: for each batch and channel, the output channel goes into a
    one-channel temporary (the op's kernel on that channel alone), then over the buffer's output
    positions of that channel. Returns the output read back from the buffer."""
    n, h, w, channels = x.shape
    _, ho, wo, _ = op.output.shape
    buffer = x.reshape(-1).copy()
    for b in range(n):
        for c in range(channels):
            image = buffer.reshape(n, h, w, channels)[b : b + 1, :, :, c : c + 1]
            temporary = _one_channel(op, c, image)
            positions = (b * ho * wo + np.arange(ho * wo)) * channels + c
            buffer[positions] = temporary.reshape(-1)
    return buffer[: n * ho * wo * channels].reshape(n, ho, wo, channels)


def _one_channel(op, c: int, image: np.ndarray) -> np.ndarray:
    """``op`` on channel ``c`` alone (``image`` is that channel, [1, H, W, 1])."""
    one = GraphBuilder()
    x = op.inputs[0]
    single = one.input("x", image.shape, x.dtype, x.quant)
    inputs = [single]
    if op.kind == "depthwise_conv2d":
        weights = op.inputs[1].data[..., c : c + 1]
        inputs += [one.constant("w", weights), None]
    one.op(op.kind, inputs, op.attrs, name="one", quant=op.output.quant)
    one_op = one.graph.op("one")
    assert one_op.output.shape == (1, *op.output.shape[1:3], 1)
    return run_kernel(one_op, [image, *(t.data if t is not None else None for t in inputs[1:])])[0]


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["depthwise_conv2d", "max_pool2d", "avg_pool2d", "int8 avg_pool2d"]),
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
    kind, batch, height, width, channels, kernel, stride, dilation, pads, seed
):
    """Where the planner runs a depthwise convolution or a pooling in place, channel by channel
    in the input's own bytes gives exactly what the kernel computes; it refuses exactly where
    the output would not fit in the input's bytes."""
    rng = np.random.default_rng(seed)
    int8 = kind.startswith("int8")
    kind = kind.removeprefix("int8 ")
    quant = Quantization((0.1,), (3,)) if int8 else None
    b = GraphBuilder()
    x = b.input("x", (batch, height, width, channels), DType.INT8 if int8 else DType.FLOAT32, quant)
    first = b.op("relu", [x], name="first", quant=quant)
    if kind != "depthwise_conv2d":
        dilation = 1
        pads = tuple(min(p, kernel - 1) for p in pads)  # a window of padding alone has no value
    span = (kernel - 1) * dilation + 1
    if height + pads[0] + pads[2] < span or width + pads[1] + pads[3] < span:
        return  # no output
    if kind == "depthwise_conv2d":
        weights = rng.standard_normal((1, kernel, kernel, channels)).astype(np.float32)
        attrs = {
            "strides": (stride, stride),
            "dilations": (dilation, dilation),
            "pads": pads,
            "depth_multiplier": 1,
            "activation": "none",
        }
        inputs = [first, b.constant("w", weights), None]
    else:
        attrs = {"kernel": (kernel, kernel), "strides": (stride, stride), "pads": pads}
        inputs = [first]
    out = b.op(kind, inputs, {**attrs, "activation": "none"}, name="op", quant=quant)
    g = b.output(b.op("relu", [out], name="out", quant=quant))
    _, ho, wo, _ = out.shape
    options = ONLY["depthwise" if kind == "depthwise_conv2d" else "pool"]
    in_place = "op" in build_storage(g, options).in_place
    assert in_place == (ho * wo <= height * width)
    if in_place:
        if int8:
            image = rng.integers(-128, 128, x.shape).astype(np.int8)
        else:
            image = rng.standard_normal(x.shape).astype(np.float32)
        op = g.op("op")
        args = [image, *(t.data if t is not None else None for t in op.inputs[1:])]
        np.testing.assert_array_equal(_channel_by_channel(image, op), run_kernel(op, args)[0])


# ---- pooling in place ------------------------------------------------------------------------
def _pool(b, x, kind, name, kernel=2, stride=2, pad=0):
    attrs = {
        "kernel": (kernel, kernel),
        "strides": (stride, stride),
        "pads": (pad,) * 4,
        "activation": "none",
    }
    return b.op(kind, [x], attrs, name=name)


@pytest.mark.parametrize("kind", ["max_pool2d", "avg_pool2d"])
def test_pooling_overwrites_its_input_with_a_one_channel_temporary(kind):
    b = GraphBuilder()
    x = b.input("x", (1, 8, 8, 1))
    expand = _conv(b, x, 8, "expand")
    pooled = _pool(b, expand, kind, "pool")
    g = b.output(_conv(b, pooled, 2, "project", 1))
    storage = build_storage(g, ONLY["pool"])
    assert storage.refs["pool"] == StorageRef("expand")
    assert storage.in_place == {"pool": InPlace("pool", (0,), writes=True)}
    lifetimes = compute_lifetimes(g, storage=storage)
    assert lifetimes.buffer("scratch:pool").size == 4 * 4 * 4  # Ho*Wo float32
    assert lifetimes.buffer("expand").size == 8 * 8 * 8 * 4
    assert "pool" not in build_storage(g, StorageOptions(pool_in_place=False)).in_place
    plan = _runs_identically(g)
    assert plan.in_place["pool"].kind == "pool" and "pool" in plan.scratch_offsets


@pytest.mark.parametrize(
    ("kernel", "stride", "pad", "in_place"),
    [
        (2, 2, 0, True),
        (3, 1, 1, True),  # same size
        (3, 2, 1, True),
        (2, 1, 1, False),  # the padded output is larger than the input
    ],
)
def test_pooling_in_place_conditions(kernel, stride, pad, in_place):
    b = GraphBuilder()
    x = b.input("x", (1, 6, 5, 3))
    first = _conv(b, x, 3, "first")
    pooled = _pool(b, first, "max_pool2d", "pool", kernel, stride, pad)
    g = b.output(b.op("relu", [pooled], name="out"))
    assert ("pool" in build_storage(g, ONLY["pool"]).in_place) == in_place


# ---- accumulation in place (fused depthwise tiling's LIP end) ---------------------------------
@pytest.mark.parametrize("dtype", [DType.FLOAT32, DType.INT8], ids=str)
def test_partial_layers_accumulate_in_place(dtype):
    g = accumulating_graph(dtype)
    storage = build_storage(g, ONLY["accumulator"])
    # the first partition starts the accumulator; the others add into it where it is
    assert "acc0" not in storage.in_place
    assert storage.in_place["acc1"] == InPlace("elementwise", (2,), writes=True)
    assert storage.in_place["acc2"] == InPlace("elementwise", (2,), writes=True)
    assert storage.root("acc1") == storage.root("acc2") == "acc0"
    # the channel slices feed every output element: never overwritten
    assert all(storage.root(f"relu{p}") == f"relu{p}" for p in range(3))
    # the output over the accumulator: same size in float32, a quarter of it in int8
    kind = "elementwise" if dtype is DType.FLOAT32 else "narrowing"
    assert storage.in_place["out"] == InPlace(kind, (0,), writes=True)
    assert storage.refs["out"] == StorageRef("acc0")
    assert storage.members()["acc0"] == ("acc0", "acc1", "acc2", "out")
    assert build_storage(g, StorageOptions(accumulator_in_place=False)).roots().count("acc0") == 1
    assert "acc1" not in build_storage(g, StorageOptions(accumulator_in_place=False)).in_place
    _runs_identically_typed(g)


@pytest.mark.parametrize("dtype", [DType.FLOAT32, DType.INT8], ids=str)
@pytest.mark.parametrize("read_again", ["acc0", "acc1", "acc2", "relu1"])
def test_accumulator_read_elsewhere_is_not_overwritten(dtype, read_again):
    g = accumulating_graph(dtype, read_again=read_again)
    storage = build_storage(g)
    overwritten_by = {"acc0": "acc1", "acc1": "acc2", "acc2": "out"}.get(read_again)
    if overwritten_by is not None:
        assert overwritten_by not in storage.in_place
        assert storage.root(overwritten_by) == overwritten_by
    accumulators = {storage.root(f"acc{p}") for p in range(3)}
    assert all(storage.root(f"relu{p}") not in accumulators for p in range(3))
    _runs_identically_typed(g)


def test_accumulator_output_with_wider_elements_is_not_in_place():
    b = GraphBuilder()
    x = b.input("x", (1, 2, 2, 2), DType.INT8, Quantization((0.5,), (0,)))
    acc = b.op("relu", [x], name="acc", quant=x.quant)
    wide = Quantization((1.0,), (0,))
    out = b.op("accumulator_output", [acc, None], NONE, dtype=DType.INT32, name="out", quant=wide)
    assert "out" not in build_storage(b.output(out)).in_place


def _runs_identically_typed(graph):
    """``_runs_identically`` for float and int8 inputs."""
    inputs = graph_inputs(graph)
    expected = execute(graph, inputs, separate_plan(graph))
    plan = plan_memory(graph, exact_time_limit=0)
    got = execute(graph, inputs, plan.arena)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)
    return plan


def _narrow_in_order(op, acc: np.ndarray, bias: np.ndarray, order) -> np.ndarray:
    """accumulator_output as a C loop over elements in ``order`` runs it in place: one buffer
    holds the accumulator; element i is read from its bytes, requantized alone, and stored at
    byte offset i * itemsize of the output. Returns the output read back from the buffer."""
    out = op.output
    buffer = bytearray(acc.tobytes())
    size = out.dtype.itemsize
    for i in order:
        value = np.frombuffer(buffer, acc.dtype, count=1, offset=i * acc.dtype.itemsize)[0]
        alone = np.zeros(acc.shape, acc.dtype)
        alone.flat[i] = value
        element = run_kernel(op, [alone, bias])[0].flat[i]
        buffer[i * size : (i + 1) * size] = np.asarray(element, out.dtype.numpy).tobytes()
    return np.frombuffer(bytes(buffer[: out.nbytes]), out.dtype.numpy).reshape(out.shape)


@settings(max_examples=100, deadline=None)
@given(
    shape=st.sampled_from([(1, 1), (1, 7), (2, 5), (1, 3, 2, 4), (1, 2, 2, 9)]),
    per_channel=st.booleans(),
    activation=st.sampled_from(["none", "relu", "relu6"]),
    seed=st.integers(0, 2**16),
)
def test_narrowing_in_ascending_order_gives_the_kernel_result(shape, per_channel, activation, seed):
    """The int8 accumulator output is stored in the first quarter of the int32 accumulator's
    bytes: element i lands in bytes of accumulator element i // 4 <= i, read already when the
    kernel goes in ascending element order, so the result is the kernel's."""
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    scales = tuple(float(s) for s in rng.uniform(1e-4, 1e-3, channels if per_channel else 1))
    b = GraphBuilder()
    acc_quant = Quantization(scales, (0,) * len(scales), len(shape) - 1 if per_channel else None)
    acc_in = b.input("acc", shape, DType.INT32, acc_quant)
    acc = b.op("relu", [acc_in], name="acc", quant=acc_quant)
    bias = b.constant("bias", rng.integers(-500, 500, channels).astype(np.int32), acc_quant)
    out_quant = Quantization((float(rng.uniform(0.01, 0.1)),), (int(rng.integers(-20, 20)),))
    g = b.output(
        b.op(
            "accumulator_output",
            [acc, bias],
            {"activation": activation},
            dtype=DType.INT8,
            name="out",
            quant=out_quant,
        )
    )
    assert build_storage(g).in_place["out"] == InPlace("narrowing", (0,), writes=True)
    op = g.op("out")
    values = rng.integers(-(2**20), 2**20, shape).astype(np.int32)
    expected = run_kernel(op, [values, bias.data])[0]
    ascending = range(values.size)
    np.testing.assert_array_equal(_narrow_in_order(op, values, bias.data, ascending), expected)


def test_narrowing_in_another_order_would_read_overwritten_bytes():
    """Why the order matters: going down, output element 4 is stored over accumulator element
    1 before that is read."""
    b = GraphBuilder()
    quant = Quantization((1e-3,), (0,))
    acc = b.op("relu", [b.input("acc", (1, 8), DType.INT32, quant)], name="acc", quant=quant)
    g = b.output(
        b.op(
            "accumulator_output",
            [acc, None],
            {"activation": "none"},
            dtype=DType.INT8,
            name="out",
            quant=Quantization((0.01,), (0,)),
        )
    )
    op = g.op("out")
    values = np.arange(1, 9, dtype=np.int32).reshape(1, 8) * 100  # outputs 10, 20, ..., 80
    expected = run_kernel(op, [values, None])[0]
    np.testing.assert_array_equal(_narrow_in_order(op, values, None, range(8)), expected)
    descending = _narrow_in_order(op, values, None, reversed(range(8)))
    assert not np.array_equal(descending, expected)


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
