"""Memory planning: op order, buffer lifetimes, and offsets in one arena.

``plan_memory(graph)`` is the entry point: it decides which tensors share bytes and which ops
run in place (``storage``: reshape views; concat, elementwise, depthwise, pooling, pointwise
convolution and accumulation in place; each switchable in ``StorageOptions``;
``storage_choice`` keeps the ones that do not raise the peak),
picks the op order with the lowest peak of live bytes (``schedule``), computes buffer lifetimes
under that order (``lifetimes``, over the storage roots), assigns offsets with every algorithm
(``suite``: ``greedy_by_size``, ``hill_climb``, ``exact``), checks the winner independently
(``checker``) and resolves aliases into an ``ArenaPlan`` the executor runs in (strided views
included). ``MemoryPlan.in_place`` tells the code generator which ops run in place and how.
``tflm_greedy(graph)`` is TensorFlow Lite Micro's plan for the same graph, the baseline to
compare with: no sharing at all.

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
from memfit.planning.schedule import (
    Schedule,
    apply_schedule,
    is_topological,
    model_schedule,
    schedule_ops,
)
from memfit.planning.scratch import in_place_scratch_bytes, register_scratch, scratch_bytes
from memfit.planning.storage import (
    NO_SHARING,
    InPlace,
    StorageMap,
    StorageOptions,
    StorageRef,
    build_storage,
)
from memfit.planning.storage_choice import choose_storage
from memfit.planning.suite import SuiteResult, run_suite

__all__ = [
    "NO_SHARING",
    "TUNED_STORAGE_MAX_OPS",
    "ArenaPlan",
    "Assignment",
    "Buffer",
    "InPlace",
    "Lifetimes",
    "MemoryPlan",
    "Schedule",
    "StorageMap",
    "StorageOptions",
    "StorageRef",
    "SuiteResult",
    "apply_schedule",
    "assemble_plan",
    "build_storage",
    "check_assignment",
    "choose_storage",
    "compute_lifetimes",
    "exact",
    "greedy_by_size",
    "hill_climb",
    "is_topological",
    "lower_bound",
    "model_order",
    "model_schedule",
    "plan_memory",
    "plan_memory_quickly",
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

    @property
    def storage(self) -> StorageMap:
        return self.lifetimes.storage

    @property
    def in_place(self) -> Mapping[str, InPlace]:
        """Op name -> how it shares bytes (views, concat slices, in-place writes)."""
        return self.lifetimes.storage.in_place


TUNED_STORAGE_MAX_OPS = 800
"""Graphs with more ops than this are planned with ``tune_storage`` off where time matters
(the optimizer's candidates, primitive selection): the op-by-op storage choice costs time
quadratic in the ops."""


def plan_memory(
    graph: Graph,
    alignment: int = 16,
    *,
    reorder: bool = True,
    storage: StorageOptions | None = None,
    exact_time_limit: float = DEFAULT_TIME_LIMIT,
    schedule_time_limit: float = 2.0,
    tune_storage: bool = True,
) -> MemoryPlan:
    """Plan the arena of ``graph``: op order, lifetimes, offsets, checked.

    With ``reorder`` the ops of ``graph`` are put in the chosen order in place (only when it
    lowers the peak; the graph computes the same values), so that ``execute(graph, inputs,
    plan.arena)`` runs them in the order the arena was planned for. Without it the model order
    is kept. ``storage`` says which byte sharing may be used (default: all of it); concat in
    place and ops that run in place over an input of another size (strided depthwise
    convolution and pooling, the int8 accumulator output, pointwise convolutions that change
    the channel count) are used where they lower the peak
    (``memfit.planning.storage_choice``), and the plan records what was used
    (``MemoryPlan.storage``). ``schedule_time_limit`` bounds all the op-order searches
    together; the plan depends on the time only if it is reached (``plan.schedule.timed_out``).
    ``exact_time_limit=0`` skips the CP-SAT solver. Without ``tune_storage`` the sharing is
    switched for whole kinds of ops, not op by op (``TUNED_STORAGE_MAX_OPS``).
    """
    shared, schedule = choose_storage(
        graph,
        alignment,
        storage,
        reorder=reorder,
        schedule_time_limit=schedule_time_limit,
        tune=tune_storage,
    )
    apply_schedule(graph, schedule.order)
    lifetimes = compute_lifetimes(graph, schedule.order, storage=shared)
    suite = run_suite(lifetimes.buffers, alignment, exact_time_limit=exact_time_limit)
    return assemble_plan(graph, schedule, lifetimes, suite, alignment)


def plan_memory_quickly(
    graph: Graph,
    alignment: int = 16,
    *,
    reorder: bool = True,
    storage: StorageOptions | None = None,
) -> MemoryPlan:
    """``plan_memory``, with its parts whose time grows fastest with the ops left out on graphs
    of more than ``TUNED_STORAGE_MAX_OPS`` ops (a finely tiled graph): the op-by-op storage
    choice and the CP-SAT placement (about 12 s per plan on 1,332 ops whatever its time limit,
    most of it building the model). Greedy and hill-climbing placement remain, checked."""
    large = len(graph.ops) > TUNED_STORAGE_MAX_OPS
    return plan_memory(
        graph,
        alignment,
        reorder=reorder,
        storage=storage,
        tune_storage=not large,
        exact_time_limit=0.0 if large else DEFAULT_TIME_LIMIT,
    )


def tflm_greedy(graph: Graph, alignment: int = 16) -> MemoryPlan:
    """TensorFlow Lite Micro's plan: model order, no aliasing, greedy by size, as its
    GreedyMemoryPlanner places the same buffers (the non-persistent "head" of its arena)."""
    storage = build_storage(graph, NO_SHARING)
    schedule = model_schedule(graph, alignment, storage=storage)
    lifetimes = compute_lifetimes(graph, schedule.order, storage=storage)
    bound = lower_bound(lifetimes, alignment)
    greedy = greedy_by_size(lifetimes.buffers, alignment)
    check_assignment(lifetimes.buffers, greedy, alignment)
    return assemble_plan(
        graph, schedule, lifetimes, SuiteResult(greedy, (greedy,), bound), alignment
    )


def assemble_plan(
    graph: Graph, schedule: Schedule, lifetimes: Lifetimes, suite: SuiteResult, alignment: int
) -> MemoryPlan:
    """The MemoryPlan of a checked assignment: resolve aliases into arena placements."""
    offsets = suite.best.offsets
    storage = lifetimes.storage
    placements = {
        name: Placement(offsets[ref.root] + ref.offset, ref.strides)
        for name, ref in storage.refs.items()
    }
    scratch = {op: offsets[buffer] for op, buffer in lifetimes.scratch.items()}
    temporaries = {}
    for op in graph.ops:
        if op.name in storage.in_place and op.name in lifetimes.scratch:
            temporary = in_place_scratch_bytes(op)
            if temporary:  # the last bytes of the op's scratch, after its kernel's workspace
                buffer = lifetimes.buffer(lifetimes.scratch[op.name])
                temporaries[op.name] = scratch[op.name] + buffer.size - temporary
    arena = ArenaPlan(placements, suite.best.size, alignment, temporaries=temporaries)
    return MemoryPlan(
        schedule, lifetimes, suite.lower_bound, suite.best, suite.tried, arena, scratch
    )
