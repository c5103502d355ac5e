"""plan_memory end to end: the executor gives the same numbers in the planned arena."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph
from memfit.planning import plan_memory, scratch, tflm_greedy
from memfit.planning.arena import separate_plan
from memfit.planning.checker import check_assignment
from memfit.planning.lifetimes import model_order
from memfit.planning.storage import contiguous_strides
from memfit.runtime.executor import execute
from tests.helpers import residual_block, small_cnn
from tests.test_planning_strategies import executable_dags, random_dags


def _conv(b, x, out_channels, kernel, name, rng):
    w = b.constant(
        f"{name}_w",
        rng.standard_normal((out_channels, kernel, kernel, x.shape[-1])).astype(np.float32),
    )
    pad = kernel // 2
    attrs = {
        "strides": (1, 1),
        "dilations": (1, 1),
        "pads": (pad,) * 4,
        "groups": 1,
        "activation": "relu",
    }
    return b.op("conv2d", [x, w, None], attrs, name=name)


def inception(seed: int = 0) -> Graph:
    """An Inception-style module whose model order interleaves the branches.

    Each branch widens to 16 channels before narrowing, so running the branches one after the
    other keeps one wide tensor live at a time; the model order keeps three.
    """
    rng = np.random.default_rng(seed)
    b = GraphBuilder("inception")
    x = b.input("x", (1, 8, 8, 4))
    wide = [_conv(b, x, 16, 1, f"wide{i}", rng) for i in range(3)]
    narrow = [_conv(b, w, 4, 3, f"narrow{i}", rng) for i, w in enumerate(wide)]
    pooled = b.op(
        "max_pool2d", [x], {"kernel": (3, 3), "strides": (1, 1), "pads": (1, 1, 1, 1)}, name="pool"
    )
    y = b.op("concat", [*narrow, pooled], {"axis": 3, "activation": "none"}, name="cat")
    y = b.op("reshape", [y], shape=(1, 8 * 8 * 16), name="flat")
    fw = b.constant("fw", rng.standard_normal((10, 8 * 8 * 16)).astype(np.float32))
    return b.output(b.op("fully_connected", [y, fw, None], {"activation": "none"}, name="fc"))


@pytest.mark.parametrize("build", [small_cnn, residual_block, inception])
def test_planned_arena_gives_the_same_numbers(build):
    g = build()
    x = np.random.default_rng(7).standard_normal(g.inputs[0].shape).astype(np.float32)
    expected = execute(g, {"x": x}, separate_plan(g))
    plan = plan_memory(g)
    assert model_order(g) == plan.schedule.order  # the graph now runs in the planned order
    assert set(plan.arena.placements) == {t.name for t in g.activations()}
    got = execute(g, {"x": x}, plan.arena)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    check_assignment(plan.lifetimes.buffers, plan.assignment, 16)
    assert plan.lower_bound <= plan.assignment.size == plan.arena.size
    assert plan.arena.size <= tflm_greedy(g).arena.size < separate_plan(g).size


def test_inception_schedule_beats_the_model_order():
    g = inception()
    baseline = tflm_greedy(g)
    plan = plan_memory(g)
    assert plan.schedule.peak < plan.schedule.model_order_peak
    assert plan.schedule.optimal
    assert plan.arena.size < baseline.arena.size
    assert plan.assignment.optimal


def test_reorder_off_keeps_the_model_order():
    g = inception()
    before = model_order(g)
    plan = plan_memory(g, reorder=False)
    assert model_order(g) == before == plan.schedule.order
    assert plan.schedule.method == "model order"


def test_reshape_view_shares_the_root_offset():
    g = small_cnn()
    plan = plan_memory(g)
    assert plan.arena.offset("flatten") == plan.arena.offset("max_pool2d_2")
    assert tflm_greedy(g).arena.offset("flatten") != tflm_greedy(g).arena.offset("max_pool2d_2")


def test_tflm_baseline_is_greedy_in_model_order():
    g = inception()
    before = model_order(g)
    baseline = tflm_greedy(g)
    assert model_order(g) == before
    assert baseline.assignment.algorithm == "greedy-by-size"
    assert [a.algorithm for a in baseline.tried] == ["greedy-by-size"]
    assert baseline.lower_bound == baseline.schedule.peak


def test_scratch_gets_an_offset_of_its_own(monkeypatch):
    monkeypatch.setattr(scratch, "SCRATCH", {"conv2d": lambda op: 1000})
    g = residual_block()
    x = np.ones(g.inputs[0].shape, np.float32)
    expected = execute(g, {"x": x})
    plan = plan_memory(g)
    assert set(plan.scratch_offsets) == {"conv"}
    assert plan.lower_bound == 576 * 2 + 1008  # x, conv and the conv's scratch at step 0
    assert plan.arena.size == plan.lower_bound
    np.testing.assert_array_equal(execute(g, {"x": x}, plan.arena)["add"], expected["add"])


def _tensor_spans(graph):
    """Per tensor (not per root) first and last step, straight from the graph's op order."""
    end = len(graph.ops) - 1
    spans = {t.name: [0, 0] for t in graph.inputs}
    for step, op in enumerate(graph.ops):
        for t in op.activation_inputs:
            spans[t.name][1] = step
        for t in op.outputs:
            spans[t.name] = [step, step]
    for t in graph.outputs:
        spans[t.name][1] = end
    return spans


def _byte_set(tensor, placement):
    """Every arena byte the tensor's view touches (strided views included)."""
    itemsize = tensor.dtype.itemsize
    strides = placement.strides or contiguous_strides(tensor.shape, itemsize)
    starts = np.full(tensor.shape, placement.offset, dtype=np.int64)
    for axis, stride in enumerate(strides):
        shape = [1] * len(tensor.shape)
        shape[axis] = tensor.shape[axis]
        starts = starts + np.arange(tensor.shape[axis]).reshape(shape) * stride
    return set((starts.reshape(-1, 1) + np.arange(itemsize)).reshape(-1).tolist())


@settings(max_examples=60, deadline=None)
@given(st.one_of(random_dags(max_ops=10), executable_dags(max_ops=10)))
def test_arena_keeps_live_tensors_apart(graph):
    """Tensors live at a common step share bytes only inside one storage root (the executor
    tests prove sharing inside a root right)."""
    plan = plan_memory(graph, exact_time_limit=1.0)
    assert plan.lower_bound <= plan.arena.size
    assert plan.schedule.peak == plan.lower_bound <= plan.schedule.model_order_peak
    spans = _tensor_spans(graph)
    tensors = list(graph.activations())
    touched = {t.name: _byte_set(t, plan.arena.placements[t.name]) for t in tensors}
    for i, a in enumerate(tensors):
        assert min(touched[a.name], default=0) >= 0
        assert max(touched[a.name], default=0) < max(plan.arena.size, 1)
        for b in tensors[i + 1 :]:
            live_together = spans[a.name][0] <= spans[b.name][1] and (
                spans[b.name][0] <= spans[a.name][1]
            )
            if live_together and touched[a.name] & touched[b.name]:
                assert plan.storage.root(a.name) == plan.storage.root(b.name), (a, b)


@pytest.mark.parametrize("build", [small_cnn, residual_block, inception])
def test_quick_planning_of_a_large_graph_skips_the_slow_parts(build, monkeypatch):
    """Above TUNED_STORAGE_MAX_OPS ops (lowered to 1 here) plan_memory_quickly neither switches
    sharing op by op nor calls CP-SAT; its plan still runs right and is no better than the full
    one; at or below the limit it is the full plan."""
    import memfit.planning as planning
    import memfit.planning.storage_choice as storage_choice
    import memfit.planning.suite as suite

    g = build()
    x = np.random.default_rng(3).standard_normal(g.inputs[0].shape).astype(np.float32)
    expected = execute(g, {"x": x}, separate_plan(g))
    full = plan_memory(g.copy(), reorder=False)
    assert planning.plan_memory_quickly(g.copy(), reorder=False).arena.size == full.arena.size

    def refuse(*args, **kwargs):
        raise AssertionError("a slow part ran")

    monkeypatch.setattr(planning, "TUNED_STORAGE_MAX_OPS", 1)
    monkeypatch.setattr(suite, "exact", refuse)
    monkeypatch.setattr(storage_choice._Toggles, "share_more", refuse)
    quick = planning.plan_memory_quickly(g, reorder=False)
    check_assignment(quick.lifetimes.buffers, quick.assignment, 16)
    assert quick.arena.size >= full.arena.size
    got = execute(g, {"x": x}, quick.arena)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
