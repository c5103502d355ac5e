"""Memory planning: op order, buffer lifetimes, and offsets in one arena.

``plan_memory(graph)`` is the entry point: it picks the op order with the lowest peak of live
bytes (``schedule``), computes buffer lifetimes under that order (``lifetimes``, over the storage
roots of ``storage``), assigns offsets with every algorithm (``suite``: ``greedy_by_size``,
``hill_climb``, ``exact``), checks the winner independently (``checker``) and resolves aliases
into an ``ArenaPlan`` the executor runs in. ``tflm_greedy(graph)`` is TensorFlow Lite Micro's
plan for the same graph, the baseline to compare with.

Each algorithm is usable on its own::

    lifetimes = compute_lifetimes(graph)
    assignment = greedy_by_size(lifetimes.buffers, alignment=16)
    check_assignment(lifetimes.buffers, assignment, alignment=16)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from memfit.ir.core import Graph
from memfit.planning.arena import ArenaPlan, Placement
from memfit.planning.assignment import Assignment
from memfit.planning.checker import check_assignment
from memfit.planning.exact import DEFAULT_TIME_LIMIT, exact
from memfit.planning.greedy_by_size import greedy_by_size
from memfit.planning.hill_climb import hill_climb
from memfit.planning.lifetimes import (
    Buffer,
    Lifetimes,
    compute_lifetimes,
    lower_bound,
    model_order,
)
from memfit.planning.schedule import Schedule, apply_schedule, is_topological, schedule_ops
from memfit.planning.scratch import register_scratch, scratch_bytes
from memfit.planning.storage import StorageMap, StorageRef, build_storage
from memfit.planning.suite import SuiteResult, run_suite

__all__ = [
    "ArenaPlan",
    "Assignment",
    "Buffer",
    "Lifetimes",
    "MemoryPlan",
    "Schedule",
    "StorageMap",
    "StorageRef",
    "SuiteResult",
    "apply_schedule",
    "assemble_plan",
    "build_storage",
    "check_assignment",
    "compute_lifetimes",
    "exact",
    "greedy_by_size",
    "hill_climb",
    "is_topological",
    "lower_bound",
    "model_order",
    "plan_memory",
    "register_scratch",
    "run_suite",
    "schedule_ops",
    "scratch_bytes",
    "tflm_greedy",
]


@dataclass(frozen=True)
class MemoryPlan:
    """Everything planning decided for one graph.

    ``arena`` places every activation tensor (aliases at their root's offset plus their own
    byte offset) and is valid for the ops run in ``schedule.order``, which is the graph's op
    order once ``plan_memory`` has returned. ``scratch_offsets`` maps an op name to the offset
    of its scratch buffer. ``tried`` holds every algorithm's checked answer.
    """

    schedule: Schedule
    lifetimes: Lifetimes
    lower_bound: int
    assignment: Assignment
    tried: tuple[Assignment, ...]
    arena: ArenaPlan
    scratch_offsets: Mapping[str, int]


def plan_memory(
    graph: Graph,
    alignment: int = 16,
    *,
    reorder: bool = True,
    reshape_views: bool = True,
    exact_time_limit: float = DEFAULT_TIME_LIMIT,
    schedule_time_limit: float = 2.0,
) -> MemoryPlan:
    """Plan the arena of ``graph``: op order, lifetimes, offsets, checked.

    With ``reorder`` the ops of ``graph`` are put in the chosen order in place (only when it
    lowers the peak; the graph computes the same values), so that ``execute(graph, inputs,
    plan.arena)`` runs them in the order the arena was planned for. Without it the model order
    is kept. ``reshape_views`` lets a reshape's output share its input's bytes.
    ``exact_time_limit=0`` skips the CP-SAT solver.
    """
    storage = build_storage(graph, reshape_views=reshape_views)
    if reorder:
        schedule = schedule_ops(graph, alignment, storage=storage, time_limit=schedule_time_limit)
        apply_schedule(graph, schedule.order)
    else:
        schedule = _model_schedule(graph, alignment, storage)
    lifetimes = compute_lifetimes(graph, schedule.order, storage=storage)
    suite = run_suite(lifetimes.buffers, alignment, exact_time_limit=exact_time_limit)
    return assemble_plan(graph, schedule, lifetimes, suite, alignment)


def tflm_greedy(graph: Graph, alignment: int = 16) -> MemoryPlan:
    """TensorFlow Lite Micro's plan: model order, no aliasing, greedy by size, as its
    GreedyMemoryPlanner places the same buffers (the non-persistent "head" of its arena)."""
    storage = build_storage(graph, reshape_views=False)
    schedule = _model_schedule(graph, alignment, storage)
    lifetimes = compute_lifetimes(graph, schedule.order, storage=storage)
    bound = lower_bound(lifetimes, alignment)
    greedy = greedy_by_size(lifetimes.buffers, alignment)
    check_assignment(lifetimes.buffers, greedy, alignment)
    return assemble_plan(
        graph, schedule, lifetimes, SuiteResult(greedy, (greedy,), bound), alignment
    )


def _model_schedule(graph: Graph, alignment: int, storage: StorageMap) -> Schedule:
    order = model_order(graph)
    peak = lower_bound(compute_lifetimes(graph, order, storage=storage), alignment)
    return Schedule(order, peak, peak, "model order", optimal=False)


def assemble_plan(
    graph: Graph, schedule: Schedule, lifetimes: Lifetimes, suite: SuiteResult, alignment: int
) -> MemoryPlan:
    """The MemoryPlan of a checked assignment: resolve aliases into arena placements."""
    offsets = suite.best.offsets
    storage = lifetimes.storage
    placements = {
        name: Placement(offsets[ref.root] + ref.offset) for name, ref in storage.refs.items()
    }
    arena = ArenaPlan(placements, suite.best.size, alignment)
    scratch = {op: offsets[buffer] for op, buffer in lifetimes.scratch.items()}
    return MemoryPlan(
        schedule, lifetimes, suite.lower_bound, suite.best, suite.tried, arena, scratch
    )
