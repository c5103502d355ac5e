"""Path discovery: which chains of ops to tile, how, and into how many parts (the FDT flow).

One round:

1. plan the graph as it is and find the step where the live bytes peak;
2. take the largest buffer live there that is neither a model input nor output nor under
   ``BASE_FRACTION`` of the largest; its producer is the *base*;
3. grow the longest run of single-producer/single-consumer ops through the base
   (``memfit.tiling.chain``) and cut it into candidate chains around the base, keeping those
   whose start and end tensors are no larger than the base's buffer (no larger rather than
   smaller, so that a run of layers of one size, as in DS-CNN, can still be cut where it
   starts from a smaller map or ends in one);
4. for every method (FDT with 2 to 64 partitions, FFMT in strips and in square grids), rewrite
   a copy of the graph with the candidate and plan it for real;
5. keep the candidate with the lowest peak (ties: FDT, then the lower peak over the rewritten
   ops, which later rounds would have to beat, then the shorter chain, fewer partitions), apply
   it, and go on while the peak falls.

When no candidate of the largest buffer makes progress, the next buffers at the peak are tried
as bases. Progress is judged by (peak, steps at the peak), so that a model whose peak is reached
at several steps can flatten them one after the other; in the end the shortest prefix of
rewrites that reaches the lowest peak is kept.

With a budget the search stops at the first round where a candidate fits; among those that
fit, the one with the least recomputed MACs wins. ``max_mac_overhead`` rejects candidates that
would bring the recomputed MACs of the whole plan above that fraction of the untiled MACs (0
keeps only rewrites without recompute, such as FDT).

Search-time planning is cheap and deterministic (no time limit anywhere): the op order the full
planner chose for the untiled graph, with every rewrite's ops where its chain was; the storage
maps with concat and depthwise in place each on and off; the peak of live bytes of the real
lifetimes, which the offsets reach or nearly reach. Candidates are pruned by a bound none of
their plans can beat: the live bytes at the steps the rewrite does not touch, and the chain's
input and (half its) output or accumulator with every buffer live across the chain.
Evaluations are cached. The final plan of the chosen graph comes from the full planner
(``memfit.planning.plan_memory``: storage choice, offsets by every algorithm, checked), in the
same op order.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memfit.errors import UsageError
from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.dtypes import DType
from memfit.ir.ops import macs
from memfit.planning import (
    TUNED_STORAGE_MAX_OPS,
    Lifetimes,
    MemoryPlan,
    StorageMap,
    StorageOptions,
    assemble_plan,
    compute_lifetimes,
    model_schedule,
    plan_memory,
    run_suite,
)
from memfit.planning.arena import align_up
from memfit.planning.lifetimes import Buffer
from memfit.planning.storage import StorageBuilder
from memfit.planning.storage_choice import all_resizing
from memfit.tiling import TilingResult, apply_rewrites
from memfit.tiling.chain import TilingError, region_input
from memfit.tiling.fdt import apply_fdt
from memfit.tiling.ffmt import apply_ffmt, reduces_map

METHODS = ("fdt", "ffmt")
FDT_PARTITIONS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
FFMT_STRIPS = tuple((n, 1) for n in (2, 3, 4, 6, 8, 12, 16, 24, 32))
FFMT_GRIDS = tuple((n, n) for n in (2, 3, 4, 6, 8, 12, 16))
BASE_FRACTION = 0.05
"""Buffers under this fraction of the largest buffer at the peak are not tried as bases."""
MAX_BASES = 3
"""Peak buffers tried as bases in one round before the search gives up."""
MAX_ROUNDS = 32
MAX_FLAT_ROUNDS = 8
"""Rounds in a row that may keep the peak (flattening equal steps) before the search stops."""
TIME_LIMIT = 45.0
"""Seconds the rounds of one ``optimize`` call may take; then the best path so far is kept."""
MIN_GAIN = 0.005
"""A rewrite that lowers the peak must lower it by this fraction at least."""
MAX_CHAIN_OPS = 16
MAX_REGION_OPS = 48
"""Ops a region with branches may hold (several residual blocks)."""
FULL_PLANNER_OPS = TUNED_STORAGE_MAX_OPS
_LAYERS = ("conv2d", "fully_connected")
"""Ops a candidate chain may hold on each side of its base."""

Progress = Callable[[str], None]


# ---- what the search works with ------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One rewrite to try: ``method`` on the chain ``ops`` with ``partitions`` (FDT) or
    ``grid`` (FFMT, rows x cols)."""

    method: str
    ops: tuple[str, ...]
    partitions: int = 0
    grid: tuple[int, int] = (1, 1)

    @property
    def parts(self) -> int:
        return self.partitions if self.method == "fdt" else self.grid[0] * self.grid[1]

    def record(self) -> dict[str, Any]:
        if self.method == "fdt":
            return {"method": "fdt", "ops": list(self.ops), "partitions": self.partitions}
        return {"method": "ffmt", "ops": list(self.ops), "grid": list(self.grid)}

    def tie_key(self) -> tuple[int, int, int]:
        """Among equal peaks: FDT (no recompute) first, then shorter chains, fewer parts."""
        return (0 if self.method == "fdt" else 1, len(self.ops), self.parts)

    def apply(self, graph: Graph) -> TilingResult:
        if self.method == "fdt":
            return apply_fdt(graph, self.ops, self.partitions)
        return apply_ffmt(graph, self.ops, self.grid)

    def describe(self) -> str:
        size = f"P={self.partitions}" if self.method == "fdt" else "x".join(map(str, self.grid))
        return f"{self.method.upper()} {size} over {len(self.ops)} ops from {self.ops[0]!r}"


@dataclass(frozen=True)
class PeakBuffer:
    """A buffer live at the peak step: the tensor stored there (or an op's scratch), the op
    that writes it (None for a model input) and its bytes."""

    tensor: str
    producer: str | None
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "producer": self.producer, "bytes": self.size}


@dataclass(frozen=True)
class _Plan:
    """A search-time plan: the graph's op order, the best of a few storage maps, and the peak
    of live bytes of its lifetimes."""

    peak: int
    steps_at_peak: int
    lifetimes: Lifetimes
    live: tuple[int, ...]

    @property
    def key(self) -> tuple[int, int]:
        return (self.peak, self.steps_at_peak)


@dataclass(frozen=True)
class _Evaluation:
    """A candidate, the MACs it recomputes, its plan, and the peak over the ops it wrote."""

    candidate: Candidate
    extra_macs: int
    plan: _Plan
    local_peak: int

    def rank(self) -> tuple[Any, ...]:
        method, length, parts = self.candidate.tie_key()
        return (
            self.plan.peak,
            method,
            self.local_peak,
            length,
            parts,
            self.plan.steps_at_peak,
            self.extra_macs,
        )


@dataclass(frozen=True)
class _Group:
    """The candidates of one chain and one method, in the order to try them (growing parts),
    and bounds none of them can plan below: ``local`` over the steps of the rewritten ops (the
    chain's input and output or accumulator, and every buffer live across the chain), and
    ``bound`` over the whole graph (``local``, or the steps the rewrite does not touch)."""

    candidates: tuple[Candidate, ...]
    bound: int
    local: int

    def order(self) -> tuple[Any, ...]:
        """Sorts groups by the best rank any of their candidates could have."""
        method, length, parts = self.candidates[0].tie_key()
        return (self.bound, method, self.local, length, parts)


@dataclass(frozen=True)
class OptimizeResult:
    """What ``optimize`` found: the rewritten graph (ops in the plan's order) and its plan.

    ``rewrites`` replays on the untiled canonical graph (``memfit.tiling.apply_rewrites``).
    ``limiting_buffer`` is the largest buffer at the peak step of ``plan``: what would have to
    shrink for the peak to fall further (reported when a budget is not met).
    """

    graph: Graph
    plan: MemoryPlan
    rewrites: tuple[Mapping[str, Any], ...]
    untiled_peak_bytes: int
    untiled_macs: int
    extra_macs: int
    budget: int | None
    limiting_buffer: PeakBuffer | None
    search_seconds: float
    evaluations: int
    timed_out: bool = False

    @property
    def peak_bytes(self) -> int:
        return self.plan.arena.size

    @property
    def mac_overhead(self) -> float:
        """Recomputed MACs as a fraction of the untiled model's MACs."""
        return self.extra_macs / self.untiled_macs if self.untiled_macs else 0.0

    @property
    def fits_budget(self) -> bool:
        return self.budget is None or self.peak_bytes <= self.budget

    def chains(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rewrites]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.graph.name,
            "peak_bytes": self.peak_bytes,
            "untiled_peak_bytes": self.untiled_peak_bytes,
            "budget_bytes": self.budget,
            "fits_budget": self.fits_budget,
            "mac_overhead": round(self.mac_overhead, 6),
            "untiled_macs": self.untiled_macs,
            "extra_macs": self.extra_macs,
            "chains": self.chains(),
            "limiting_buffer": self.limiting_buffer.to_json() if self.limiting_buffer else None,
            "lower_bound_bytes": self.plan.lower_bound,
            "search_seconds": round(self.search_seconds, 3),
            "evaluations": self.evaluations,
            "timed_out": self.timed_out,
        }


# ---- the entry point -----------------------------------------------------------------------


def optimize(
    graph: Graph,
    *,
    budget: int | None = None,
    methods: Sequence[str] = METHODS,
    max_mac_overhead: float | None = None,
    alignment: int = 16,
    progress: Progress | None = None,
    time_limit: float = TIME_LIMIT,
) -> OptimizeResult:
    """Find the rewrites that lower the peak of ``graph`` most (or, with ``budget``, the first
    plan that fits it), and plan the rewritten graph. ``graph`` is left unchanged.

    The rounds stop after ``time_limit`` seconds (checked between candidate evaluations), with
    the best rewrites found so far; ``OptimizeResult.timed_out`` says whether that happened."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise UsageError(
            f"unknown tiling method(s) {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(METHODS)}"
        )
    if max_mac_overhead is not None and max_mac_overhead < 0:
        raise UsageError(f"max MAC overhead {max_mac_overhead} is negative; use 0 or more")
    if budget is not None and budget <= 0:
        raise UsageError(f"budget {budget} bytes: give a positive number of bytes")
    start = time.perf_counter()
    report = progress or (lambda message: None)
    report("planning the untiled graph")
    untiled_graph = graph.copy()
    untiled = plan_memory(untiled_graph, alignment)  # puts its ops in the chosen order
    search = _Search(untiled_graph, max_mac_overhead, alignment, report, start + time_limit)
    # The search is greedy, round by round: the method that wins a round (FDT on a tie) can
    # lead to a worse end than the other alone, so with both allowed each is searched alone too.
    # FFMT over regions with branches comes last, with the time the chains left: a region that
    # wins an early round can spend the recompute allowance that chains would have spent
    # better, and there are many more regions than chains to evaluate.
    method_sets = [(tuple(methods), False)]
    if len(methods) > 1:
        method_sets += [((method,), False) for method in methods]
    if "ffmt" in methods:
        method_sets.append((tuple(methods), True))
    plan_graph, plan = untiled_graph, untiled
    rewrites: list[dict[str, Any]] = []
    extra = 0
    target = budget
    while budget is None or plan.arena.size > budget:
        found = _best_path([search.run(target, *m) for m in method_sets], target)
        if not found.records or found.records == rewrites:
            break
        report(f"final plan with {len(found.records)} rewrite(s)")
        tiled = apply_rewrites(untiled_graph.copy(), found.records)
        tiled_plan = final_plan(tiled, alignment)
        if tiled_plan.arena.size >= plan.arena.size:
            break
        plan_graph, plan, rewrites, extra = tiled, tiled_plan, found.records, found.extra_macs
        if target is None or found.peak > target:
            break
        # The search judged by live bytes and the offsets left gaps: ask for that much less.
        target -= plan.arena.size - plan.lower_bound
        if target <= 0:
            break
    return OptimizeResult(
        graph=plan_graph,
        plan=plan,
        rewrites=tuple(rewrites),
        untiled_peak_bytes=untiled.arena.size,
        untiled_macs=search.untiled_macs,
        extra_macs=extra,
        budget=budget,
        limiting_buffer=next(iter(peak_buffers(plan_graph, plan.lifetimes, alignment)), None),
        search_seconds=time.perf_counter() - start,
        evaluations=search.evaluations,
        timed_out=search.timed_out,
    )


def peak_buffers(graph: Graph, lifetimes: Lifetimes, alignment: int = 16) -> list[PeakBuffer]:
    """The buffers live at the first step where the live bytes peak, largest first."""
    live = _live_profile(lifetimes, alignment)
    step = live.index(max(live))
    at_peak = sorted(
        (b for b in lifetimes.buffers if b.first <= step <= b.last),
        key=lambda b: (-b.size, b.name),
    )
    result = []
    for buffer in at_peak:
        scratch_of = next(
            (op for op, name in lifetimes.scratch.items() if name == buffer.name), None
        )
        if scratch_of is not None:
            result.append(PeakBuffer(buffer.name, scratch_of, buffer.size))
            continue
        producer = graph.tensors[buffer.name].producer
        result.append(PeakBuffer(buffer.name, producer.name if producer else None, buffer.size))
    return result


def final_plan(graph: Graph, alignment: int = 16) -> MemoryPlan:
    """The plan of a rewritten graph, in its op order (where the rewrites put every tile).

    Up to ``FULL_PLANNER_OPS`` ops this is ``plan_memory`` without reordering: the storage
    choice op by op, then every offset algorithm. Its op-by-op storage choice costs time
    quadratic in the ops, so larger graphs keep the storage map of the search and get the same
    offset algorithms (greedy, hill climbing, CP-SAT), checked.
    """
    if len(graph.ops) <= FULL_PLANNER_OPS:
        return plan_memory(graph, alignment, reorder=False)
    storage = quick_plan(graph, alignment).lifetimes.storage
    schedule = model_schedule(graph, alignment, storage=storage)
    lifetimes = compute_lifetimes(graph, schedule.order, storage=storage)
    suite = run_suite(lifetimes.buffers, alignment)
    return assemble_plan(graph, schedule, lifetimes, suite, alignment)


# ---- search-time planning ------------------------------------------------------------------


def _live_profile(lifetimes: Lifetimes, alignment: int) -> list[int]:
    """Aligned bytes live at every step."""
    delta = [0] * (lifetimes.steps + 1)
    for b in lifetimes.buffers:
        size = align_up(b.size, alignment)
        delta[b.first] += size
        delta[b.last + 1] -= size
    live, total = [], 0
    for change in delta[:-1]:
        total += change
        live.append(total)
    return live or [0]


def _in_larger_root(graph: Graph, op: Op, storage: StorageMap) -> bool:
    """True when ``op`` (not a concat) shares a root larger than its output or than the input
    it overwrites: that root stays live longer than the smaller of the two would."""
    entry = storage.in_place.get(op.name)
    if entry is None or entry.kind == "concat":
        return False
    root = graph.tensors[storage.root(op.output.name)].nbytes
    overwritten = op.inputs[entry.inputs[0]]
    return root > op.output.nbytes or (overwritten is not None and root > overwritten.nbytes)


def quick_plan(graph: Graph, alignment: int = 16) -> _Plan:
    """Plan ``graph`` in its own op order, cheaply and deterministically: every kind of sharing,
    then with concat in place off, with the ops that overwrite an input of another size or
    share a larger root (and so keep the larger bytes live longer; also those that do so once
    the others are off) off, and with both off, as ``memfit.planning.storage_choice`` starts;
    the lowest peak wins (ties to more sharing). The op-by-op switching that follows there is
    left to the final plan."""
    builder = StorageBuilder(graph)
    full = builder.build()
    concats = frozenset(op.name for op in graph.ops if op.kind == "concat")
    resized = all_resizing(builder, StorageOptions()) | frozenset(
        op.name for op in graph.ops if _in_larger_root(graph, op, full)
    )
    best: _Plan | None = None
    for off in ((), (concats,), (resized,), (concats, resized)):
        if any(not group for group in off):
            continue
        storage = builder.build(StorageOptions(not_in_place=frozenset().union(*off)))
        lifetimes = compute_lifetimes(graph, storage=storage)
        live = _live_profile(lifetimes, alignment)
        peak = max(live)
        found = _Plan(peak, live.count(peak), lifetimes, tuple(live))
        if best is None or found.key < best.key:
            best = found
    assert best is not None
    return best


# ---- the search ----------------------------------------------------------------------------


class _Search:
    """Rounds of candidate evaluation on ``graph`` (the untiled graph, in the planner's op
    order); ``run`` may be called again with another target, reusing cached evaluations."""

    def __init__(
        self,
        graph: Graph,
        max_mac_overhead: float | None,
        alignment: int,
        report: Progress,
        deadline: float = math.inf,
    ) -> None:
        self.original = graph
        self.deadline = deadline
        self.timed_out = False
        self.methods: tuple[str, ...] = METHODS
        self.regions = True
        self.alignment = alignment
        self.report = report
        self.untiled_macs = sum(macs(op) for op in graph.ops)
        self.mac_allowance = (
            None if max_mac_overhead is None else max_mac_overhead * self.untiled_macs
        )
        self.evaluations = 0
        self._cache: dict[str, _Evaluation | None] = {}
        self._extra: dict[str, int | None] = {}

    def run(self, budget: int | None, methods: tuple[str, ...], regions: bool = True) -> _Path:
        """The rewrites by ``methods`` that first bring the peak within ``budget``, or those
        that lower it most; FFMT over regions with branches only if ``regions``."""
        self.methods = methods
        self.regions = regions
        graph = self.original.copy()
        plan = quick_plan(graph, self.alignment)
        applied: list[_Evaluation] = []
        path = [plan.peak]  # the peak after each prefix of ``applied``
        for round_number in range(1, MAX_ROUNDS + 1):
            if budget is not None and plan.peak <= budget:
                break
            if self._late():
                break
            if len(path) - 1 - path.index(min(path)) >= MAX_FLAT_ROUNDS:
                break
            self.report(
                f"round {round_number}: peak {plan.peak:,} bytes live, "
                f"{self.evaluations} plans evaluated"
            )
            chosen = self._round(graph, plan, applied, budget)
            if chosen is None:
                break
            chosen.candidate.apply(graph)
            applied.append(chosen)
            plan = chosen.plan
            path.append(plan.peak)
        keep = path.index(min(path))
        kept = [e.candidate for e in applied[:keep]]
        return self._coarsen(kept, path[keep], sum(e.extra_macs for e in applied[:keep]))

    def _late(self) -> bool:
        """Whether the time limit has passed (remembered in ``timed_out``)."""
        if time.perf_counter() > self.deadline:
            self.timed_out = True
        return self.timed_out

    def _coarsen(self, chosen: list[Candidate], peak: int, extra: int) -> _Path:
        """``chosen`` with each rewrite that no later one refers to cut as coarsely as keeps
        the peak and the recomputed MACs (the rounds prefer the lower peak over the rewritten
        ops, which a finer cut gives, but fewer parts cost less once the peak is elsewhere)."""
        for i in range(len(chosen)):
            if self._referenced(chosen, i):
                continue
            for coarser in _coarser(chosen[i]):
                trial = [*chosen[:i], coarser, *chosen[i + 1 :]]
                replayed = self._replay(trial)
                if replayed is not None and replayed[0] <= peak and replayed[1] <= extra:
                    chosen, (peak, extra) = trial, replayed
                    break
        return _Path([c.record() for c in chosen], extra, peak)

    def _replay(self, candidates: list[Candidate]) -> tuple[int, int] | None:
        """The peak and recomputed MACs of ``candidates`` applied in order (None if one cannot
        be applied)."""
        graph = self.original.copy()
        extra = 0
        try:
            for candidate in candidates:
                extra += candidate.apply(graph).extra_macs
        except TilingError:
            return None
        self.evaluations += 1
        return quick_plan(graph, self.alignment).peak, extra

    def _referenced(self, candidates: list[Candidate], index: int) -> bool:
        """Whether a rewrite after ``candidates[index]`` names an op that it created."""
        graph = self.original.copy()
        for candidate in candidates[:index]:
            candidate.apply(graph)
        before = {op.name for op in graph.ops}
        candidates[index].apply(graph)
        created = {op.name for op in graph.ops} - before
        return any(created.intersection(c.ops) for c in candidates[index + 1 :])

    def _round(
        self, graph: Graph, plan: _Plan, applied: list[_Evaluation], budget: int | None
    ) -> _Evaluation | None:
        """The rewrite to apply next, or None when nothing makes progress."""
        io = {t.name for t in graph.inputs} | {t.name for t in graph.outputs}
        at_peak = peak_buffers(graph, plan.lifetimes, self.alignment)
        largest = max((b.size for b in at_peak if b.tensor not in io), default=0)
        bases = [
            b
            for b in at_peak
            if b.tensor in graph.tensors
            and b.producer is not None
            and b.tensor not in io
            and b.size >= BASE_FRACTION * largest
        ]
        prefix = [e.candidate.record() for e in applied]
        extra = sum(e.extra_macs for e in applied)
        for base in bases[:MAX_BASES]:
            producer = graph.tensors[base.tensor].producer
            assert producer is not None
            groups = self._groups(graph, plan, producer, base.size)
            context = _Context(graph, plan, prefix, extra)
            if budget is not None:
                fitting = self._first_fit(context, groups, budget)
                if fitting is not None:
                    return fitting
            best = self._lowest(context, groups)
            if best is not None:
                return best
        return None

    # ---- candidates ------------------------------------------------------------------------
    def _groups(self, graph: Graph, plan: _Plan, base: Op, limit: int) -> list[_Group]:
        """Every chain through ``base`` whose ends are no larger than ``limit`` bytes, by every
        method, sorted by their bound (lowest first)."""
        run = _run_through(graph, base, MAX_CHAIN_OPS)
        at = run.index(base)
        steps = {op.name: i for i, op in enumerate(graph.ops)}
        storage = plan.lifetimes.storage
        best_before = [0] * (len(plan.live) + 1)  # max live bytes before step s
        for s, live in enumerate(plan.live):
            best_before[s + 1] = max(best_before[s], live)
        best_after = [0] * (len(plan.live) + 1)  # max live bytes from step s on
        for s in reversed(range(len(plan.live))):
            best_after[s] = max(best_after[s + 1], plan.live[s])
        spans: list[tuple[Sequence[Op], Tensor]] = []
        for i in range(at + 1):
            for j in range(max(at, i + 1), len(run)):
                spans.append((run[i : j + 1], run[i].activation_inputs[0]))
        if "ffmt" in self.methods and self.regions:
            spans += _regions_through(graph, base, MAX_REGION_OPS)
        buffers = {b.name: b for b in plan.lifetimes.buffers}
        groups = []
        for chain, start in spans:
            end = chain[-1].output
            if start.nbytes > limit or end.nbytes > limit:
                continue
            names = tuple(op.name for op in chain)
            first = min(steps[n] for n in names)
            last = max(steps[n] for n in names)
            ends = {storage.root(start.name), storage.root(end.name)}
            through = sum(
                align_up(b.size, self.alignment)
                for b in plan.lifetimes.buffers
                if b.first < first and b.last > last and b.name not in ends
            )
            after = best_after[last + 1]
            if storage.root(end.name) != end.name:
                after = self._after(plan, buffers, end, last)
            outside = max(best_before[first], after)
            inside = through + align_up(start.nbytes, self.alignment)
            for method, sizes in self._sizes(chain):
                if method == "fdt" and chain[-1].kind in _LAYERS:
                    item = 4 if end.dtype is DType.INT8 else end.dtype.itemsize
                    end_bytes = end.size * item  # the accumulator
                else:
                    end_bytes = end.nbytes // 2  # half the output is written by then
                local = inside + align_up(end_bytes, self.alignment)
                candidates = tuple(
                    Candidate(method, names, partitions=size)
                    if method == "fdt"
                    else Candidate(method, names, grid=size)
                    for size in sizes
                )
                groups.append(_Group(candidates, max(outside, local), local))
        groups.sort(key=_Group.order)
        return groups

    def _after(self, plan: _Plan, buffers: dict[str, Buffer], end: Tensor, last: int) -> int:
        """The most bytes live after step ``last`` once a chain ending there is rewritten.
        When the chain's output was stored in place inside a larger root (a global pool over
        the last map) that root stays live after the chain until the output dies; the rewrite
        writes the output on its own, so those steps hold only the output's bytes."""
        rest = plan.live[last + 1 :]
        root = buffers.get(plan.lifetimes.storage.root(end.name))
        if root is None or root.last <= last or root.size <= end.nbytes:
            return max(rest, default=0)
        freed = align_up(root.size, self.alignment) - align_up(end.nbytes, self.alignment)
        steps = enumerate(rest, last + 1)
        return max((live - (freed if s <= root.last else 0) for s, live in steps), default=0)

    def _sizes(self, chain: Sequence[Op]) -> Iterable[tuple[str, Sequence[Any]]]:
        """(method, partition counts or grids from coarse to fine) that may apply to
        ``chain``; whether they do is up to the rewrite. Only counts that make the largest part
        smaller than the count before do are kept (64 channels in 48 partitions leave parts of
        two channels, as 32 partitions do)."""
        linear = all(a.output.consumers == (b,) for a, b in itertools.pairwise(chain))
        if "fdt" in self.methods and chain[0].kind in _LAYERS and linear:
            partitions = _shrinking_parts(FDT_PARTITIONS, chain[0].output.shape[-1])
            if partitions:
                yield "fdt", partitions
        last = chain[-1]
        tiled = last.activation_inputs[0] if reduces_map(last) else last.output
        if "ffmt" in self.methods and len(tiled.shape) == 4:
            _, rows, cols, _ = tiled.shape
            strips = [(n, 1) for n in _shrinking_parts([g[0] for g in FFMT_STRIPS], rows)]
            sides = _shrinking_parts([g[0] for g in FFMT_GRIDS], min(rows, cols))
            for sizes in (strips, [(n, n) for n in sides]):
                if sizes:
                    yield "ffmt", sizes

    # ---- evaluation ------------------------------------------------------------------------
    def _evaluate(self, context: _Context, candidate: Candidate) -> _Evaluation | None:
        """Rewrite a copy of the graph with ``candidate`` and plan it; None when the chain
        cannot be tiled so or recomputes more MACs than allowed."""
        key = json.dumps([context.prefix, candidate.record()])
        if key in self._cache:
            return self._cache[key]
        trial = context.graph.copy()
        position = next(i for i, op in enumerate(trial.ops) if op.name == candidate.ops[0])
        try:
            result = candidate.apply(trial)
        except TilingError:
            self._cache[key] = None
            return None
        evaluation = None
        allowed = self.mac_allowance
        if allowed is None or context.extra_macs + result.extra_macs <= allowed:
            self.evaluations += 1
            plan = quick_plan(trial, self.alignment)
            written = len(trial.ops) - len(context.graph.ops) + len(candidate.ops)
            local = max(plan.live[position : position + written])
            evaluation = _Evaluation(candidate, result.extra_macs, plan, local)
        self._cache[key] = evaluation
        return evaluation

    def _extra_macs(self, context: _Context, candidate: Candidate) -> int | None:
        """The MACs ``candidate`` recomputes (None if it cannot be applied), without planning."""
        key = json.dumps([context.prefix, candidate.record()])
        if key in self._cache:
            known = self._cache[key]
            return None if known is None else known.extra_macs
        if key not in self._extra:
            try:
                self._extra[key] = candidate.apply(context.graph.copy()).extra_macs
            except TilingError:
                self._extra[key] = None
        return self._extra[key]

    def _lowest(self, context: _Context, groups: list[_Group]) -> _Evaluation | None:
        """The candidate with the lowest peak among those that make progress."""
        best: _Evaluation | None = None
        for group in groups:
            if best is not None and group.order()[:3] > best.rank()[:3]:
                break  # sorted by what they could reach: no later group can do better
            previous: tuple[int, int] | None = None
            for candidate in group.candidates:
                if self._late():
                    return best
                found = self._evaluate(context, candidate)
                if found is None:
                    if previous is None:
                        continue  # too few channels or rows for no size yet: try the next
                    break
                if _progress(found.plan, context.plan) and (
                    best is None or found.rank() < best.rank()
                ):
                    best = found
                score = (found.plan.peak, found.local_peak)
                if found.local_peak <= group.local or (previous is not None and score >= previous):
                    break  # finer cuts cannot go below the bound, or stopped helping
                previous = score
        return best

    def _first_fit(
        self, context: _Context, groups: list[_Group], budget: int
    ) -> _Evaluation | None:
        """Among candidates that bring the peak within ``budget``, one that recomputes the
        fewest MACs (ties as in ``_lowest``); None if none fits."""
        possible = [g for g in groups if g.bound <= budget]
        fitting: list[_Evaluation] = []
        # The coarsest FDT cut that fits recomputes nothing: no other candidate beats it.
        for group in possible:
            if group.candidates[0].method != "fdt":
                continue
            for candidate in group.candidates:
                found = self._evaluate(context, candidate)
                if found is not None and found.plan.peak <= budget:
                    fitting.append(found)
                    break
        if fitting:
            return min(fitting, key=_fit_rank)
        trials = []
        for group in possible:
            if group.candidates[0].method == "fdt":
                continue
            for candidate in group.candidates:
                extra = self._extra_macs(context, candidate)
                if extra is not None:
                    trials.append((extra, candidate.tie_key(), candidate))
        for _, _, candidate in sorted(trials, key=lambda t: (t[0], t[1])):
            if self._late():
                return None
            found = self._evaluate(context, candidate)
            if found is not None and found.plan.peak <= budget:
                return found
        return None


@dataclass(frozen=True)
class _Path:
    """What one search found: the rewrites (records, in order), the MACs they recompute and
    the peak of live bytes they reach."""

    records: list[dict[str, Any]]
    extra_macs: int
    peak: int


def _best_path(paths: list[_Path], budget: int | None) -> _Path:
    """The path that fits ``budget`` with the fewest recomputed MACs, else the lowest peak."""
    fitting = [p for p in paths if budget is not None and p.peak <= budget]
    if fitting:
        return min(fitting, key=lambda p: (p.extra_macs, p.peak, len(p.records)))
    return min(paths, key=lambda p: (p.peak, p.extra_macs, len(p.records)))


@dataclass(frozen=True)
class _Context:
    """The graph a round works on, its plan, the rewrites applied to reach it and the MACs
    they recompute."""

    graph: Graph
    plan: _Plan
    prefix: list[dict[str, Any]]
    extra_macs: int


def _shrinking_parts(counts: Iterable[int], size: int) -> list[int]:
    """The counts (ascending) that cut ``size`` into parts whose largest is smaller than with
    every smaller count."""
    kept: list[int] = []
    for count in sorted(counts):
        if count <= size and (not kept or -(-size // count) < -(-size // kept[-1])):
            kept.append(count)
    return kept


def _coarser(candidate: Candidate) -> list[Candidate]:
    """The same chain by the same method in fewer parts, coarsest first."""
    if candidate.method == "fdt":
        return [
            dataclasses.replace(candidate, partitions=p)
            for p in FDT_PARTITIONS
            if p < candidate.partitions
        ]
    grids = sorted(
        (g for g in FFMT_STRIPS + FFMT_GRIDS if g[0] * g[1] < candidate.parts),
        key=lambda g: (g[0] * g[1], g),
    )
    return [dataclasses.replace(candidate, grid=g) for g in grids]


def _progress(new: _Plan, old: _Plan) -> bool:
    """Whether a rewrite gets on: it lowers the peak by ``MIN_GAIN`` of it at least, or keeps
    the peak and reaches it at fewer steps (one of several equal layers flattened)."""
    if new.peak == old.peak:
        return new.steps_at_peak < old.steps_at_peak
    return new.peak <= old.peak * (1 - MIN_GAIN)


def _fit_rank(evaluation: _Evaluation) -> tuple[Any, ...]:
    return (evaluation.extra_macs, *evaluation.candidate.tie_key(), evaluation.plan.peak)


def _run_through(graph: Graph, base: Op, reach: int) -> list[Op]:
    """The longest run of chain-linked ops through ``base`` (at most ``reach`` on each side):
    each op's output is read by the next op alone, which reads no other activation."""
    outputs = {t.name for t in graph.outputs}

    def single(op: Op) -> bool:
        return len(op.outputs) == 1 and len(op.activation_inputs) == 1

    def linked(a: Op, b: Op) -> bool:
        out = a.output
        return (
            single(a)
            and single(b)
            and out.name not in outputs
            and out.consumers == (b,)
            and b.activation_inputs[0] is out
        )

    if not single(base):
        return [base]
    run = [base]
    while len(run) <= reach:
        producer = run[0].activation_inputs[0].producer
        if producer is None or not linked(producer, run[0]):
            break
        run.insert(0, producer)
    below = 0
    while below < reach:
        consumers = run[-1].output.consumers
        if len(consumers) != 1 or not linked(run[-1], consumers[0]):
            break
        run.append(consumers[0])
        below += 1
    return run


def _regions_through(graph: Graph, base: Op, reach: int) -> list[tuple[Sequence[Op], Tensor]]:
    """The runs of consecutive ops (in the op order) through ``base``, at most ``reach`` ops
    long, that form a region with branches (``memfit.tiling.chain.region_input``: a residual
    block, an inception module), each with the tensor it reads. Chains are left to
    ``_run_through``."""
    at = graph.ops.index(base)
    found: list[tuple[Sequence[Op], Tensor]] = []
    for i in range(max(0, at - reach + 1), at + 1):
        for j in range(at, min(len(graph.ops), i + reach)):
            ops = graph.ops[i : j + 1]
            if all(len(op.activation_inputs) == 1 for op in ops) and all(
                len(op.output.consumers) == 1 for op in ops[:-1]
            ):
                continue  # a chain, or nothing joins
            try:
                found.append((ops, region_input(graph, ops)))
            except TilingError:
                continue
    return found


__all__ = [
    "FDT_PARTITIONS",
    "FFMT_GRIDS",
    "FFMT_STRIPS",
    "METHODS",
    "Candidate",
    "OptimizeResult",
    "PeakBuffer",
    "optimize",
    "peak_buffers",
    "quick_plan",
]
