"""Pointwise (1x1) convolution in place: where the storage map lets the output overwrite its
input, where it refuses, and that the executor, which runs it block by block through its
temporary inside the arena, gives what the separate plan gives (and wrong numbers for a wrong
offset)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.codegen import params
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph, Quantization
from memfit.planning import NO_SHARING, StorageOptions, plan_memory
from memfit.planning.arena import ArenaPlan, Placement, separate_plan
from memfit.planning.lifetimes import compute_lifetimes
from memfit.planning.scratch import pointwise_block_pixels
from memfit.planning.storage import InPlace, StorageRef, build_storage, pointwise_input_offset
from memfit.planning.storage_choice import resizing
from memfit.runtime.executor import execute
from tests.helpers import graph_inputs
from tests.test_tiling_ffmt import ChainBuilder

POINTWISE = StorageOptions.only("pointwise_in_place")


def _pointwise_chain(
    cin: int,
    cout: int,
    quantized: bool,
    shape: tuple[int, int, int] = (1, 6, 5),
    stride: int = 1,
    activation: str = "relu",
) -> Graph:
    """x -> conv 3x3 (cin channels, "conv2d0") -> conv 1x1 (cout, "conv2d1") -> conv 3x3."""
    chain = ChainBuilder((*shape, 3), quantized, seed=cin * 7 + cout)
    chain.conv(cin, activation="relu")
    chain.conv(cout, kernel=1, stride=stride, pads=(0, 0, 0, 0), activation=activation)
    chain.conv(2)
    return chain.finish()


def _same_outputs(graph: Graph, arena: ArenaPlan) -> bool:
    inputs = graph_inputs(graph)
    expected = execute(graph, inputs, separate_plan(graph))
    got = execute(graph, inputs, arena)
    return all(np.array_equal(got[name], value) for name, value in expected.items())


# ---- the storage map -----------------------------------------------------------------------
@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_fewer_channels_write_over_the_start_of_the_input(quantized):
    g = _pointwise_chain(8, 5, quantized)
    storage = build_storage(g, POINTWISE)
    assert storage.refs["conv2d1"] == StorageRef("conv2d0")
    assert storage.in_place == {"conv2d1": InPlace("pointwise", (0,), writes=True)}
    lifetimes = compute_lifetimes(g, storage=storage)
    itemsize = 1 if quantized else 4
    block = pointwise_block_pixels(g.op("conv2d1"))
    assert lifetimes.buffer("scratch:conv2d1").size == block * 5 * itemsize
    assert lifetimes.buffer("conv2d0").size == 6 * 5 * 8 * itemsize  # the input's root
    plan = plan_memory(g, storage=POINTWISE)
    assert plan.in_place["conv2d1"].kind == "pointwise"
    assert "conv2d1" in plan.arena.temporaries
    assert _same_outputs(g, plan.arena)


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_more_channels_take_the_input_to_the_end_of_the_output(quantized):
    g = _pointwise_chain(4, 10, quantized)
    storage = build_storage(g, POINTWISE)
    itemsize = 1 if quantized else 4
    gap = 6 * 5 * (10 - 4) * itemsize
    assert storage.refs["conv2d0"] == StorageRef("conv2d1", gap)
    assert storage.refs["conv2d1"] == StorageRef("conv2d1")
    assert storage.in_place["conv2d1"] == InPlace("pointwise", (0,), writes=True)
    plan = plan_memory(g, storage=POINTWISE)
    assert plan.arena.offset("conv2d0") == plan.arena.offset("conv2d1") + gap
    assert _same_outputs(g, plan.arena)


def test_a_strided_pointwise_convolution_runs_in_place_where_its_writes_stay_behind():
    # stride 2 on 6x5 gives 3x3 output pixels; output pixel p reads input pixel q(p) >= 2p
    # (q = 0, 2, 4, 10, ...), and the input (30 pixels) is larger than the output, so both
    # start at the root's start: storing pixels [0, p) must stay below input pixel q(p),
    # p*Cout <= q(p)*Cin. Twice the channels fit, three times do not (p = 1: 12 > 2*4).
    for cout, fits in ((4, True), (8, True), (12, False)):
        g = _pointwise_chain(4, cout, True, stride=2)
        assert ("conv2d1" in build_storage(g, POINTWISE).in_place) == fits
        if fits:
            assert _same_outputs(g, plan_memory(g, storage=POINTWISE).arena)


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_no_wider_output_may_start_inside_a_larger_root(quantized):
    """After a strided depthwise convolution in place (its output is the start of its input's
    root), a pointwise convolution to as many channels writes over that output, in the same
    root, which then stays live at the larger size: the storage choice weighs it."""
    chain = ChainBuilder((1, 8, 6, 3), quantized, seed=8)
    chain.conv(8)
    chain.depthwise(stride=2, pads=(1, 1, 1, 1))
    chain.conv(8, kernel=1, pads=(0, 0, 0, 0))
    chain.conv(2)
    g = chain.finish()
    storage = build_storage(g, StorageOptions.only("depthwise_in_place", "pointwise_in_place"))
    assert storage.refs["depthwise_conv2d1"] == StorageRef("conv2d0")
    assert storage.refs["conv2d2"] == StorageRef("conv2d0")
    assert storage.in_place["conv2d2"].kind == "pointwise"
    assert "conv2d2" in resizing(g, storage)
    assert _same_outputs(g, plan_memory(g).arena)
    wider = ChainBuilder((1, 8, 6, 3), quantized, seed=8)
    wider.conv(8)
    wider.depthwise(stride=2, pads=(1, 1, 1, 1))
    wider.conv(12, kernel=1, pads=(0, 0, 0, 0))
    wider.conv(2)
    g = wider.finish()
    storage = build_storage(g, StorageOptions.only("depthwise_in_place", "pointwise_in_place"))
    assert "conv2d2" not in storage.in_place  # it would need bytes before the root's start


def test_input_read_by_a_later_op_is_not_overwritten():
    chain = ChainBuilder((1, 6, 5, 3), seed=1)
    x = chain.conv(6)
    y = chain.conv(4, kernel=1, pads=(0, 0, 0, 0))
    b = chain.b
    g = b.output(b.op("concat", [x, y], {"axis": 3, "activation": "none"}, name="cat"))
    assert "conv2d1" not in build_storage(g, POINTWISE).in_place


def test_a_graph_input_or_a_padded_or_wider_kernel_is_not_overwritten():
    chain = ChainBuilder((1, 6, 5, 8), seed=2)
    chain.conv(4, kernel=1, pads=(0, 0, 0, 0))
    assert build_storage(chain.finish(), POINTWISE).in_place == {}  # reads the graph input
    padded = ChainBuilder((1, 6, 5, 3), seed=3)
    padded.conv(8)
    padded.conv(4, kernel=1, pads=(1, 1, 1, 1))
    padded.conv(2)
    assert build_storage(padded.finish(), POINTWISE).in_place == {}
    wide = ChainBuilder((1, 6, 5, 3), seed=4)
    wide.conv(8)
    wide.conv(4, kernel=3)
    wide.conv(2)
    assert build_storage(wide.finish(), POINTWISE).in_place == {}


def test_one_block_of_output_pixels_is_not_worth_it():
    # 2x2 float pixels: one block of 8 is the whole output
    assert build_storage(_pointwise_chain(8, 4, False, (1, 2, 2)), POINTWISE).in_place == {}
    # int8 blocks hold 4 pixels: 2x3 pixels are two blocks
    assert "conv2d1" in build_storage(_pointwise_chain(8, 4, True, (1, 2, 3)), POINTWISE).in_place


def test_a_hybrid_layer_is_not_split_into_blocks():
    """Float activations with int8 weights: TFLite quantizes each batch item with one scale
    from its largest value, so a block alone gives another result."""
    b = GraphBuilder()
    x = b.input("x", (1, 4, 4, 3))
    w0 = b.constant("w0", np.ones((6, 1, 1, 3), np.float32))
    attrs = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "groups": 1}
    y = b.op("conv2d", [x, w0, None], {**attrs, "activation": "none"}, name="first")
    weights = np.ones((4, 1, 1, 6), np.int8)
    w1 = b.constant("w1", weights, Quantization((0.1,), (0,)))
    y = b.op("conv2d", [y, w1, None], {**attrs, "activation": "none"}, name="hybrid")
    g = b.output(b.op("relu", [y], name="out"))
    assert pointwise_input_offset(g.op("hybrid")) is None
    assert "first" not in build_storage(g, POINTWISE).in_place  # reads the graph input


def test_the_option_turns_it_off_and_a_plan_file_rebuilds_it():
    g = _pointwise_chain(8, 5, True)
    assert build_storage(g, StorageOptions(pointwise_in_place=False)).in_place == {}
    full = build_storage(g)
    assert full.in_place["conv2d1"].kind == "pointwise"
    assert StorageOptions.from_json(full.options.to_json()) == full.options
    written_before = {k: v for k, v in full.options.to_json().items() if k != "pointwise_in_place"}
    assert not StorageOptions.from_json(written_before).pointwise_in_place


# ---- the executor: block by block in the arena ---------------------------------------------
def test_a_wrong_input_offset_gives_wrong_numbers():
    """The input of a pointwise convolution to more channels must sit at the end of the root:
    moved to its start, the first block overwrites input pixels not yet read."""
    g = _pointwise_chain(4, 10, False)
    plan = plan_memory(g, storage=POINTWISE)
    assert _same_outputs(g, plan.arena)
    placements = dict(plan.arena.placements)
    placements["conv2d0"] = Placement(plan.arena.offset("conv2d1"))
    wrong = dataclasses.replace(plan.arena, placements=placements)
    assert not _same_outputs(g, wrong)


def test_a_temporary_over_the_input_gives_wrong_numbers():
    g = _pointwise_chain(8, 5, True)
    plan = plan_memory(g, storage=POINTWISE)
    unread = plan.arena.offset("conv2d0") + 8 * 8  # input pixel 8: read by the third block
    wrong = dataclasses.replace(plan.arena, temporaries={"conv2d1": unread})
    assert not _same_outputs(g, wrong)


@settings(max_examples=60, deadline=None)
@given(
    quantized=st.booleans(),
    batch=st.integers(1, 2),
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    cin=st.integers(1, 9),
    cout=st.integers(1, 9),
    stride=st.integers(1, 3),
    activation=st.sampled_from(["none", "relu", "relu6"]),
)
def test_in_place_gives_the_separate_outputs(
    quantized, batch, height, width, cin, cout, stride, activation
):
    """Wherever the rule applies, running block by block in the planned arena (poisoned, so
    reading bytes nobody wrote shows too) gives exactly the separate plan's outputs; with
    stride 1 it applies whenever there is more than one block."""
    g = _pointwise_chain(cin, cout, quantized, (batch, height, width), stride, activation)
    op = g.op("conv2d1")
    in_place = "conv2d1" in build_storage(g, POINTWISE).in_place
    if stride == 1:
        assert in_place == (batch * height * width > pointwise_block_pixels(op))
    if in_place:
        assert _same_outputs(g, plan_memory(g, storage=POINTWISE).arena)


def test_the_blocks_are_the_c_kernels_tiles():
    g = _pointwise_chain(8, 5, True)
    assert pointwise_block_pixels(g.op("conv2d1")) == params.S8_MR
    g = _pointwise_chain(8, 5, False)
    assert pointwise_block_pixels(g.op("conv2d1")) == params.F32_MR


# ---- the storage choice --------------------------------------------------------------------
def test_more_channels_in_place_is_left_out_where_it_raises_the_peak():
    """A large input, then a small map that a pointwise convolution widens: in place, the wide
    root would be live beside the large input, so the plan keeps them apart."""
    chain = ChainBuilder((1, 16, 16, 8), True, seed=5)
    chain.conv(4, stride=2)  # 2,048 -> 256 bytes
    chain.conv(32, kernel=1, pads=(0, 0, 0, 0))  # 256 -> 2,048 bytes
    chain.conv(2)
    g = chain.finish()
    assert "conv2d1" in build_storage(g).in_place
    plan = plan_memory(g)
    apart = plan_memory(g, storage=StorageOptions(pointwise_in_place=False))
    assert "conv2d1" not in plan.in_place
    assert plan.arena.size == apart.arena.size


def test_pointwise_in_place_lowers_a_depthwise_separable_peak():
    chain = ChainBuilder((1, 10, 5, 1), True, seed=6)
    chain.conv(16)
    for _ in range(2):
        chain.depthwise()
        chain.conv(16, kernel=1, pads=(0, 0, 0, 0), activation="relu")
    g = chain.finish()
    plan = plan_memory(g)
    without = plan_memory(g, storage=StorageOptions(pointwise_in_place=False))
    assert {e.kind for e in plan.in_place.values()} >= {"pointwise", "depthwise"}
    assert plan.arena.size < without.arena.size == 2 * 800
    assert plan.arena.size < plan_memory(g, storage=NO_SHARING).arena.size
    assert _same_outputs(g, plan.arena)
