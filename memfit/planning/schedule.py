"""Memory-aware operator order: the topological order with the lowest peak of live bytes.

In a graph with branches (Inception, DenseNet, SqueezeNet fire modules, residuals) the order of
the ops changes which tensors are live together. The metric is the lower bound of an order
(``memfit.planning.lifetimes.lower_bound``): storage roots and scratch, aligned. Aliasing is in
the model: a root that holds several tensors (reshape views, concat inputs written into their
slices of the output, outputs written in place over an input) is one buffer, allocated by the
first op that writes any of them and freed after the last op that reads any of them, and an op
that runs in place counts its temporary as scratch.

The search is dynamic programming over sets of scheduled ops (Serenity, MLSys 2020). The bytes
live after a set of ops has run depend only on the set, not on the order within it, so for each
set only the order with the lowest peak so far needs keeping; sets are expanded one op at a
time, level by level. Only down-closed sets occur, and an op that every other op depends on or
feeds splits them, so their number grows with the width of the graph between such ops, not with
its length. States whose peak already reaches the best known order's are pruned.

Before it, a greedy pass (one set per level: the op that keeps the peak, then the live bytes,
lowest; ties to the model order) gives the bound to prune with; on a tiled chain it mostly
runs the partitions one after the other, which is close to the best. No order peaks below the
*floor*: at every op's step, the roots it touches and every root written by one of its
ancestors and read by one of its descendants are live whatever the order. An order that
reaches the floor is optimal and ends the search.

The work is bounded by counting, not by the clock, so that a graph always gets the same order:
a level keeps at most ``max_states`` sets, and fewer when the graph is long and wide, so that
the whole search expands about ``max_expansions`` sets (the greedy pass expands one level's
ready ops per level; a level of width w costs about w times that). Once a level is cut the
search is a beam search, and its result is not proven optimal. The time limit is a safety net:
when it passes, the search stops at once and the best complete order found so far is returned.

The result is never worse than the model's own order: if nothing beats it, it is returned.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence
from dataclasses import dataclass

from memfit.errors import InternalError
from memfit.ir.core import Graph
from memfit.planning.arena import align_up
from memfit.planning.lifetimes import compute_lifetimes, lower_bound, model_order, workspace_bytes
from memfit.planning.scratch import ScratchFunction, scratch_bytes
from memfit.planning.storage import StorageMap, build_storage

DEFAULT_MAX_STATES = 4000
DEFAULT_MAX_EXPANSIONS = 100_000
MIN_BEAM = 16
"""A cut search keeps at least this many sets per level, however long the graph."""
DEFAULT_TIME_LIMIT = 2.0
CLOCK_EVERY = 512
"""Expansions between looks at the clock."""


@dataclass(frozen=True)
class Schedule:
    """An op order (op names) and its peak live bytes, beside the model order's.

    ``method`` says where the order comes from: "model order", "dynamic programming" (proven
    optimal), "beam search" or "greedy". ``optimal`` is True when no topological order has a
    lower peak. ``timed_out`` is True when the time limit stopped the search: only then may
    another run give another order.
    """

    order: tuple[str, ...]
    peak: int
    model_order_peak: int
    method: str
    optimal: bool
    timed_out: bool = False


def is_topological(graph: Graph, order: Sequence[str]) -> bool:
    """True when ``order`` names every op once and no op reads a tensor written later."""
    ops = {op.name: op for op in graph.ops}
    if len(order) != len(ops) or set(order) != set(ops):
        return False
    ready = {t.name for t in graph.inputs}
    for name in order:
        op = ops[name]
        if any(t.name not in ready for t in op.activation_inputs):
            return False
        ready.update(t.name for t in op.outputs)
    return True


def apply_schedule(graph: Graph, order: Sequence[str]) -> bool:
    """Reorder ``graph.ops`` to ``order``; returns whether anything moved.

    Ops are removed and re-added through the graph's methods, so they are new ``Op`` objects
    with the same names, kinds, tensors and attributes.
    """
    if tuple(order) == model_order(graph):
        return False
    if not is_topological(graph, order):
        raise InternalError(f"op order {list(order)} is not a topological order of the graph")
    for name in order:
        op = graph.op(name)
        graph.remove_op(op)
        graph.add_op(op.kind, op.inputs, op.outputs, op.attrs, name=op.name)
    return True


class _Problem:
    """The graph reduced to bitmasks: op i is bit i (model order); roots are indices."""

    def __init__(
        self, graph: Graph, storage: StorageMap, scratch: ScratchFunction, alignment: int
    ) -> None:
        self.names = model_order(graph)
        index = {name: i for i, name in enumerate(self.names)}
        root_index = {root: r for r, root in enumerate(storage.roots())}
        self.size = [align_up(graph.tensors[root].nbytes, alignment) for root in storage.roots()]
        self.writers = [0] * len(self.size)
        self.users = [0] * len(self.size)
        self.pinned = [False] * len(self.size)
        for t in graph.outputs:
            if not t.is_constant:
                self.pinned[root_index[storage.root(t.name)]] = True
        # A root holding a graph input is live from step 0, even if an op writes a view of it.
        from_start = {root_index[storage.root(t.name)] for t in graph.inputs}
        self.from_start = [r in from_start for r in range(len(self.size))]
        self.writes: list[list[int]] = []
        self.touches: list[list[int]] = []
        self.preds = [0] * len(self.names)
        self.succs: list[list[int]] = [[] for _ in self.names]
        self.scratch = []
        for i, op in enumerate(graph.ops):
            written = {root_index[storage.root(t.name)] for t in op.outputs}
            read = {root_index[storage.root(t.name)] for t in op.activation_inputs}
            for r in written | read:
                self.users[r] |= 1 << i
            self.touches.append(sorted(written | read))
            written -= from_start
            for r in written:
                self.writers[r] |= 1 << i
            self.writes.append(sorted(written))
            for t in op.activation_inputs:
                if t.producer is not None:
                    self.preds[i] |= 1 << index[t.producer.name]
            self.scratch.append(align_up(workspace_bytes(op, storage, scratch), alignment))
        for i, mask in enumerate(self.preds):
            for j in _bits(mask):
                self.succs[j].append(i)
        # A graph input nothing reads is live at step 0 only.
        self.initial_live = sum(self.size[r] for r in from_start if self.users[r] or self.pinned[r])
        self.first_step_only = sum(
            self.size[r] for r in from_start if not self.users[r] and not self.pinned[r]
        )
        self.initial_ready = sum(1 << i for i, mask in enumerate(self.preds) if not mask)

    def step(self, done: int, live: int, op: int) -> tuple[int, int]:
        """Bytes live while ``op`` runs after the ops in ``done``, and live bytes after it."""
        new = sum(self.size[r] for r in self.writes[op] if not self.writers[r] & done)
        during = live + new + self.scratch[op] + (0 if done else self.first_step_only)
        after = done | 1 << op
        freed = sum(
            self.size[r]
            for r in self.touches[op]
            if not self.pinned[r] and not self.users[r] & ~after
        )
        return during, live + new - freed

    def ready_after(self, done: int, ready: int, op: int) -> int:
        """The ops ready to run after ``op`` joins ``done`` (``ready`` was before)."""
        after = done | 1 << op
        ready &= ~(1 << op)
        for succ in self.succs[op]:
            if not self.preds[succ] & ~after:
                ready |= 1 << succ
        return ready

    def peak_of(self, order: Sequence[int]) -> int:
        if not order:  # no ops: the graph inputs are live at step 0 and nothing else
            return self.initial_live + self.first_step_only
        done, live, peak = 0, self.initial_live, 0
        for op in order:
            during, live = self.step(done, live, op)
            peak = max(peak, during)
            done |= 1 << op
        return peak

    def floor(self) -> int:
        """No order peaks below this: at each op's step, its scratch, the roots it touches and
        the roots that one of its ancestors writes (or that hold a graph input) and one of its
        descendants uses (or that hold a graph output) are live, whatever the order."""
        count = len(self.names)
        ancestors = [0] * count
        for i in range(count):  # the model order is topological
            for j in _bits(self.preds[i]):
                ancestors[i] |= ancestors[j] | 1 << j
        descendants = [0] * count
        for i in reversed(range(count)):
            for j in self.succs[i]:
                descendants[i] |= descendants[j] | 1 << j
        everything = (1 << count) - 1
        live = list(self.scratch)
        for r, size in enumerate(self.size):
            written_before = everything if self.from_start[r] else 0
            for w in _bits(self.writers[r]):
                written_before |= descendants[w]
            used_after = everything if self.pinned[r] else 0
            for u in _bits(self.users[r]):
                used_after |= ancestors[u]
            for i in _bits(written_before & used_after | self.users[r]):
                live[i] += size
        return max(live, default=0)


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


class _OutOfTime(Exception):
    """The time limit passed during a search."""


def _search(
    problem: _Problem, width: int, below: int, deadline: float
) -> tuple[tuple[int, tuple[int, ...]] | None, bool, float]:
    """Search with at most ``width`` sets per level.

    Returns the lowest peak below ``below`` and its order (None if no kept set leads to one),
    whether any level was cut (then neither answer is proven), and the number of sets expanded
    per level reached. Raises _OutOfTime once ``deadline`` passes.
    """
    # a state: set of done ops -> (peak so far, live bytes, ready ops, order as a linked list)
    State = tuple[int, int, int, tuple | None]
    level: dict[int, State] = {0: (0, problem.initial_live, problem.initial_ready, None)}
    truncated = False
    expanded = 0
    for levels in range(1, len(problem.names) + 1):
        if time.monotonic() > deadline:
            raise _OutOfTime
        following: dict[int, State] = {}
        for done, (peak, live, ready, path) in level.items():
            for op in _bits(ready):
                expanded += 1
                if expanded % CLOCK_EVERY == 0 and time.monotonic() > deadline:
                    raise _OutOfTime
                during, live_after = problem.step(done, live, op)
                new_peak = max(peak, during)
                if new_peak >= below:
                    continue
                after = done | 1 << op
                known = following.get(after)
                if known is None or new_peak < known[0]:
                    ready_after = problem.ready_after(done, ready, op)
                    following[after] = (new_peak, live_after, ready_after, (op, path))
        if not following:
            return None, truncated, expanded / levels
        if len(following) > width:
            truncated = True
            kept = heapq.nsmallest(
                width, following.items(), key=lambda item: (item[1][0], item[1][1], item[0])
            )
            following = dict(kept)
        level = following
    ((peak, _, _, path),) = level.values()
    order: list[int] = []
    while path is not None:
        op, path = path
        order.append(op)
    return (peak, tuple(reversed(order))), truncated, expanded / max(len(problem.names), 1)


def schedule_ops(
    graph: Graph,
    alignment: int = 16,
    *,
    storage: StorageMap | None = None,
    scratch: ScratchFunction = scratch_bytes,
    max_states: int = DEFAULT_MAX_STATES,
    max_expansions: int = DEFAULT_MAX_EXPANSIONS,
    time_limit: float = DEFAULT_TIME_LIMIT,
    below: int | None = None,
) -> Schedule:
    """The op order of ``graph`` with the lowest peak of live bytes that the search finds.

    ``storage`` (default ``build_storage(graph)``) and ``scratch`` must be those the arena will
    be planned with, so that the peak here is the lower bound of that plan. ``below``: only
    orders that peak below it are of interest (another candidate already reaches it), so the
    search prunes the rest and, finding none, returns the best order it had before searching.
    The result depends on the time only when ``time_limit`` passes.
    """
    storage = build_storage(graph) if storage is None else storage
    problem = _Problem(graph, storage, scratch, alignment)
    identity = tuple(range(len(problem.names)))
    model_peak = _verified_peak(graph, problem, identity, storage, scratch, alignment)
    floor = problem.floor()
    deadline = time.monotonic() + time_limit

    best_order, best_peak, method = identity, model_peak, "model order"
    optimal = best_peak <= floor or not graph.ops
    timed_out = False
    try:
        width = 1  # the greedy pass first, then the full search
        for name in ("greedy", "dynamic programming"):
            if optimal or width > max_states:
                break
            bound = best_peak if below is None else min(best_peak, below)
            found, truncated, per_level = _search(problem, width, bound, deadline)
            if found is not None:
                best_peak, best_order = found
                method = "beam search" if truncated and width > 1 else name
            # uncut, the search saw every order below its bound
            proven = not truncated and (found is not None or bound == best_peak)
            optimal = proven or best_peak <= floor
            # a set expands about as many ops as the greedy pass's did (one per level: it
            # expanded one level's ready ops); a search with one set per level would repeat it
            expansions_per_set = max(per_level * len(problem.names), 1.0)
            width = max(2, min(max_states, max(MIN_BEAM, int(max_expansions / expansions_per_set))))
    except _OutOfTime:
        optimal, timed_out = best_peak <= floor, True
    peak = _verified_peak(graph, problem, best_order, storage, scratch, alignment)
    order = tuple(problem.names[i] for i in best_order)
    return Schedule(order, peak, model_peak, method, optimal, timed_out)


def model_schedule(
    graph: Graph,
    alignment: int = 16,
    *,
    storage: StorageMap | None = None,
    scratch: ScratchFunction = scratch_bytes,
) -> Schedule:
    """The graph's own op order, with its peak."""
    return fixed_schedule(graph, model_order(graph), alignment, "model order", storage, scratch)


def fixed_schedule(
    graph: Graph,
    order: Sequence[str],
    alignment: int = 16,
    method: str = "given",
    storage: StorageMap | None = None,
    scratch: ScratchFunction = scratch_bytes,
) -> Schedule:
    """A Schedule for an order chosen elsewhere (not claimed optimal)."""
    storage = build_storage(graph) if storage is None else storage

    def peak(names: Sequence[str]) -> int:
        lifetimes = compute_lifetimes(graph, names, storage=storage, scratch=scratch)
        return lower_bound(lifetimes, alignment)

    model_peak = peak(model_order(graph))
    own = model_peak if tuple(order) == model_order(graph) else peak(order)
    return Schedule(tuple(order), own, model_peak, method, optimal=False)


def _verified_peak(
    graph: Graph,
    problem: _Problem,
    order: tuple[int, ...],
    storage: StorageMap,
    scratch: ScratchFunction,
    alignment: int,
) -> int:
    """The lower bound of ``order``, computed both by the search's bookkeeping and from the
    lifetimes; they must agree."""
    names = tuple(problem.names[i] for i in order)
    bound = lower_bound(
        compute_lifetimes(graph, names, storage=storage, scratch=scratch), alignment
    )
    if problem.peak_of(order) != bound:
        raise InternalError(
            f"scheduler bookkeeping says peak {problem.peak_of(order)} for an order whose "
            f"lifetimes give {bound}"
        )
    return bound
