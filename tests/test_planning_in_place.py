"""In-place execution end to end: on random graphs full of concats, elementwise ops, depthwise
and 1x1 convolutions, the executor gives exactly the same outputs inside the planned arena
(views, strided slices, overwritten inputs) as with every tensor in bytes of its own."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.ir.core import Graph
from memfit.planning import NO_SHARING, StorageOptions, plan_memory
from memfit.planning.arena import separate_plan
from memfit.planning.checker import check_assignment
from memfit.planning.lifetimes import compute_lifetimes, lower_bound, model_order
from memfit.planning.schedule import apply_schedule, schedule_ops
from memfit.planning.storage import build_storage
from memfit.runtime.executor import execute
from tests.test_planning_strategies import executable_dags, random_topological_order


def _inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in graph.inputs}


def _assert_same_outputs(graph: Graph, arena, expected) -> None:
    got = execute(graph, _inputs(graph), arena)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=f"output {name}")


@settings(max_examples=150, deadline=None)
@given(executable_dags(max_ops=12))
def test_planned_arena_gives_exactly_the_separate_outputs(graph):
    expected = execute(graph, _inputs(graph), separate_plan(graph))
    plan = plan_memory(graph, exact_time_limit=0.5, schedule_time_limit=0.5)
    check_assignment(plan.lifetimes.buffers, plan.assignment, 16)
    assert plan.lower_bound <= plan.arena.size
    assert plan.schedule.peak == plan.lower_bound
    # the options the plan records rebuild its storage map
    assert build_storage(graph, plan.storage.options) == plan.storage
    _assert_same_outputs(graph, plan.arena, expected)


@settings(max_examples=100, deadline=None)
@given(st.data(), executable_dags(max_ops=12))
def test_storage_holds_in_every_op_order(data, graph):
    """The map is built once, before scheduling: it must hold whatever order the ops run in."""
    expected = execute(graph, _inputs(graph), separate_plan(graph))
    apply_schedule(graph, data.draw(random_topological_order(graph)))
    plan = plan_memory(graph, reorder=False, exact_time_limit=0)
    _assert_same_outputs(graph, plan.arena, expected)


@pytest.mark.parametrize(
    "options",
    [
        StorageOptions(concat_in_place=False),
        StorageOptions(elementwise_in_place=False),
        StorageOptions(depthwise_in_place=False),
        StorageOptions(pool_in_place=False),
        StorageOptions(pointwise_in_place=False),
        StorageOptions(accumulator_in_place=False),
        StorageOptions(reshape_views=False),
        NO_SHARING,
    ],
    ids=[
        "no concat",
        "no elementwise",
        "no depthwise",
        "no pool",
        "no pointwise",
        "no accumulator",
        "no reshape views",
        "nothing",
    ],
)
@settings(max_examples=30, deadline=None)
@given(graph=executable_dags(max_ops=10))
def test_each_kind_alone_off_still_runs(options, graph):
    expected = execute(graph, _inputs(graph), separate_plan(graph))
    plan = plan_memory(graph, storage=options, exact_time_limit=0)
    # the choice only switches single ops off
    assert dataclasses.replace(plan.storage.options, not_in_place=frozenset()) == options
    allowed = {
        "reshape": options.reshape_views,
        "concat": options.concat_in_place,
        "depthwise_conv2d": options.depthwise_in_place,
        "max_pool2d": options.pool_in_place,
        "avg_pool2d": options.pool_in_place,
        "conv2d": options.pointwise_in_place,
        "partial_conv2d": options.accumulator_in_place,
        "accumulator_output": options.accumulator_in_place,
    }
    for op in graph.ops:
        if op.name in plan.in_place:
            assert allowed.get(op.kind, options.elementwise_in_place), op
    _assert_same_outputs(graph, plan.arena, expected)


@settings(max_examples=60, deadline=None)
@given(executable_dags(max_ops=10))
def test_scheduler_counts_a_root_while_any_tensor_in_it_lives(graph):
    """The scheduler's own bookkeeping of live bytes matches the lifetimes of the roots (it
    raises otherwise), and sharing never makes the chosen peak worse than no sharing."""
    storage = build_storage(graph)
    shared = schedule_ops(graph, 16, storage=storage, time_limit=0.5)
    assert shared.peak == lower_bound(compute_lifetimes(graph, shared.order, storage=storage))
    plan = plan_memory(graph.copy(), exact_time_limit=0)
    alone = plan_memory(graph.copy(), storage=NO_SHARING, exact_time_limit=0)
    assert plan.lower_bound <= alone.lower_bound
    assert model_order(graph)  # the graph still has its ops
