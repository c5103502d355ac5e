import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph
from memfit.ir.dtypes import DType
from memfit.planning import plan_memory
from memfit.planning.lifetimes import compute_lifetimes, lower_bound, model_order
from memfit.planning.schedule import apply_schedule, is_topological, schedule_ops
from memfit.tiling.fdt import apply_fdt
from tests.helpers import residual_block
from tests.test_planning_strategies import best_peak, executable_dags, random_dags


def two_branches() -> Graph:
    """x feeds two branches that each blow up (160 bytes) and shrink (16 bytes), then join.

    The model order interleaves the branches, so both big tensors are live together (x 16 +
    a1 160 + b1 160 = 336). Finishing one branch first peaks at 192 (x, a2 and b1, or a1, a2
    and x): the optimum.
    """
    g = Graph("two_branches")

    def tensor(name, floats):
        return g.add_tensor(name, (floats,), DType.FLOAT32)

    x = tensor("x", 4)
    g.inputs.append(x)
    a1, b1, a2, b2, out = (
        tensor("a1", 40),
        tensor("b1", 40),
        tensor("a2", 4),
        tensor("b2", 4),
        tensor("out", 4),
    )
    g.add_op("relu", [x], [a1], name="A1")
    g.add_op("relu", [x], [b1], name="B1")
    g.add_op("relu", [a1], [a2], name="A2")
    g.add_op("relu", [b1], [b2], name="B2")
    g.add_op("add", [a2, b2], [out], name="join")
    g.outputs.append(out)
    return g


def test_golden_two_branches():
    g = two_branches()
    s = schedule_ops(g, 16)
    assert s.model_order_peak == 336
    assert s.peak == 192 == best_peak(g, 16)
    assert s.optimal and s.method in ("greedy", "dynamic programming")
    assert is_topological(g, s.order)
    assert s.order.index("A2") < s.order.index("B1") or s.order.index("B2") < s.order.index("A1")


def test_full_search_beats_greedy_or_matches_it():
    g = two_branches()
    assert schedule_ops(g, 16, max_states=1).peak >= schedule_ops(g, 16).peak


def test_chain_keeps_the_model_order():
    g = residual_block()
    s = schedule_ops(g)
    assert s.order == model_order(g)
    assert s.method == "model order" and s.optimal
    assert s.peak == s.model_order_peak == lower_bound(compute_lifetimes(g), 16)


def test_apply_schedule_reorders_the_graph():
    g = two_branches()
    s = schedule_ops(g, 16)
    assert apply_schedule(g, s.order)
    assert model_order(g) == s.order
    g.topological_check()
    assert not apply_schedule(g, s.order)
    assert lower_bound(compute_lifetimes(g), 16) == 192


def test_is_topological():
    g = two_branches()
    assert is_topological(g, ("B1", "A1", "B2", "A2", "join"))
    assert not is_topological(g, ("A2", "A1", "B1", "B2", "join"))
    assert not is_topological(g, ("A1", "B1", "A2", "B2"))


@settings(max_examples=60, deadline=None)
@given(random_dags(max_ops=7))
def test_random_dags_reach_the_brute_force_optimum(graph):
    s = schedule_ops(graph, 16)
    assert is_topological(graph, s.order)
    assert s.peak == lower_bound(compute_lifetimes(graph, s.order), 16)
    assert s.peak <= s.model_order_peak == lower_bound(compute_lifetimes(graph), 16)
    assert s.optimal
    assert s.peak == best_peak(graph, 16)
    if s.peak == s.model_order_peak:
        assert s.order == model_order(graph)


@settings(max_examples=40, deadline=None)
@given(random_dags(max_ops=14))
def test_beam_search_is_valid_and_never_worse(graph):
    s = schedule_ops(graph, 16, max_states=2)
    assert is_topological(graph, s.order)
    assert s.peak == lower_bound(compute_lifetimes(graph, s.order), 16)
    assert s.peak <= s.model_order_peak


@settings(max_examples=40, deadline=None)
@given(random_dags(max_ops=7))
def test_optimal_claims_of_a_cut_search_are_true(graph):
    s = schedule_ops(graph, 16, max_states=2)
    assert s.peak >= best_peak(graph, 16)
    if s.optimal:
        assert s.peak == best_peak(graph, 16)


def test_graph_without_ops():
    g = Graph("empty")
    x = g.add_tensor("x", (8,), DType.FLOAT32)
    g.inputs.append(x)
    g.outputs.append(x)
    s = schedule_ops(g, 16)
    assert (s.order, s.peak, s.method, s.optimal) == ((), 32, "model order", True)


def tiled_chain(partitions: int = 16, end: str = "conv") -> Graph:
    """A chain of a wide 1x1 convolution, relu, a 3x3 depthwise convolution and relu6 ending in
    a 1x1 convolution (or a concat), cut into channel partitions by FDT: ``partitions``
    branches of four or five ops that the scheduler may interleave in astronomically many
    ways."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("tiled")
    x = b.input("x", (1, 12, 12, 8))
    conv = {"strides": (1, 1), "dilations": (1, 1), "groups": 1, "activation": "none"}

    def layer(y, channels, name, kernel=1, kind="conv2d"):
        shape = (1, kernel, kernel, channels) if kind != "conv2d" else (channels, 1, 1, y.shape[-1])
        attrs = {**conv, "pads": ((kernel - 1) // 2,) * 4}
        if kind != "conv2d":
            attrs = {**attrs, "depth_multiplier": 1}
            del attrs["groups"]
        w = b.constant(f"{name}_w", rng.standard_normal(shape).astype(np.float32))
        return b.op(kind, [y, w, None], attrs, name=name)

    y = layer(x, 4 * partitions, "expand")
    y = b.op("relu", [y], name="relu")
    y = layer(y, 4 * partitions, "dw", kernel=3, kind="depthwise_conv2d")
    y = b.op("relu6", [y], name="relu6")
    names = ["expand", "relu", "dw", "relu6"]
    if end == "conv":
        y = layer(y, 8, "project")
        names.append("project")
    g = b.output(b.op("relu", [y], name="out"))
    apply_fdt(g, names, partitions)
    return g


def test_time_limit_is_honoured_and_gives_the_best_order_so_far():
    g = tiled_chain()
    start = time.monotonic()
    s = schedule_ops(g, 16, max_states=10**6, max_expansions=10**9, time_limit=0.3)
    elapsed = time.monotonic() - start
    assert s.timed_out and not s.optimal
    assert elapsed < 0.3 + 0.5, elapsed
    assert is_topological(g, s.order)
    assert s.peak == lower_bound(compute_lifetimes(g, s.order), 16) <= s.model_order_peak
    # the greedy pass ran before the limit: its order is kept
    greedy = schedule_ops(g, 16, max_states=1)
    assert s.peak <= greedy.peak and not greedy.timed_out


@pytest.mark.parametrize("end", ["conv", "concat"])
def test_tiled_chain_is_scheduled_within_its_work_bound_and_the_same_every_time(end):
    g = tiled_chain(16, end)
    runs = [schedule_ops(g, 16, time_limit=60.0) for _ in range(2)]
    runs.append(schedule_ops(g.copy(), 16, time_limit=60.0))
    assert not any(s.timed_out for s in runs)
    assert runs[0] == runs[1] == runs[2]
    # never worse than the rewrite's own order, partition after partition
    assert runs[0].peak <= runs[0].model_order_peak
    plans = [plan_memory(g.copy(), exact_time_limit=0, schedule_time_limit=60.0) for _ in range(2)]
    assert plans[0].schedule == plans[1].schedule and plans[0].storage == plans[1].storage
    assert plans[0].arena == plans[1].arena


def test_floor_proves_a_chain_optimal_without_searching():
    g = residual_block()
    s = schedule_ops(g, 16, time_limit=0.0)  # no time to search at all
    assert s.optimal and not s.timed_out and s.method == "model order"


@settings(max_examples=80, deadline=None)
@given(st.one_of(random_dags(max_ops=7), executable_dags(max_ops=7)))
def test_floor_is_a_lower_bound(graph):
    """Without time to search, an order is claimed optimal only when it reaches the floor (the
    roots live at some op's step in every order): the claim must be true."""
    s = schedule_ops(graph, 16, time_limit=0.0)
    if s.optimal:
        assert s.peak == best_peak(graph, 16)


@settings(max_examples=60, deadline=None)
@given(random_dags(max_ops=7), st.integers(0, 400))
def test_orders_searched_below_a_bound(graph, below):
    """With ``below``, the search looks only for orders peaking below it: it finds the best one
    if there is one, and otherwise returns the order it had; optimal claims hold."""
    s = schedule_ops(graph, 16, below=below)
    best = best_peak(graph, 16)
    assert is_topological(graph, s.order)
    assert s.peak == lower_bound(compute_lifetimes(graph, s.order), 16) <= s.model_order_peak
    if best < below:
        assert s.peak == best
    if s.optimal:
        assert s.peak == best
