"""The one optimizer behind ``memfit optimize``: every tiling method weighed by the same numbers.

Candidates, each a rewritten graph with its real, checked arena plan (the C kernels' workspace
included when called inside ``memfit.codegen.plan.kernel_workspace``):

- ``untiled``: memfit's plan of the model as it is (scheduled, in place, packed);
- ``fdt`` / ``ffmt``: path discovery (``memfit.tiling.discovery``) with the methods allowed;
- ``mafat``: several fused groups over the longest run of layers, each on its own grid
  (``memfit.tiling.mafat``), searched for the fastest configuration within the budget;
- ``primitives``: on each of the above, the convolutions' (float32 or int8) primitive and
  layout chosen by the ILP of ``memfit.selection`` (TASO) from costs measured on this machine,
  each layer's workspace counted beside the activations live while it runs: the fastest
  choice that fits the budget, the fastest overall, and the one with the least memory, each
  planned for real in the tiled plan's op order.

Every candidate's latency is predicted by the calibrated cost model on the graph and plan it
really produces; for a primitive selection, the cost model's time of the selected layers is
scaled by the measured time of the chosen primitives over that of memfit's own kernels on the
same layers (conversions included). With a budget, the fastest candidate that fits wins (ties:
the smaller peak); without one, the smallest peak (ties: the faster). When nothing fits, the
smallest peak is returned and the caller reports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memfit.codegen.cost_model import CostModel
from memfit.errors import UsageError
from memfit.ir.core import Graph
from memfit.ir.ops import macs
from memfit.planning import MemoryPlan, plan_memory, plan_memory_quickly
from memfit.tiling.discovery import METHODS as DISCOVERY_METHODS
from memfit.tiling.discovery import OptimizeResult, PeakBuffer, optimize, peak_buffers

METHODS = (*DISCOVERY_METHODS, "mafat", "primitives")
MAX_PROFILED_SHAPES = 64
"""Primitive selection is tried on a candidate only when its convolutions have at most
this many distinct shapes (a fine grid's tiles would each be profiled). Half-memory plans of
GoogLeNet and ResNet-50 (strips over a few layers) have 54; ResNet-50's profiles in about 45 s
with nothing cached."""

PROFILING_TIME_LIMIT = 90.0
"""Seconds from the start of ``choose`` after which no more primitives are profiled (the
micro-benchmarks of a tiled plan's many shapes take a minute or more with nothing cached): the
candidates left get no primitive selection, with a note, and what was measured stays cached."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Candidate:
    """One plan the optimizer weighed."""

    source: str
    graph: Graph
    plan: MemoryPlan
    rewrites: tuple[dict[str, Any], ...]
    extra_macs: int
    predicted_latency_s: float

    @property
    def peak_bytes(self) -> int:
        return self.plan.arena.size

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "peak_bytes": self.peak_bytes,
            "predicted_latency_s": self.predicted_latency_s,
            "extra_macs": self.extra_macs,
            "chains": len(self.rewrites),
        }


@dataclass(frozen=True)
class Decision:
    """The chosen candidate, the untiled one, and every candidate weighed."""

    chosen: Candidate
    untiled: Candidate
    candidates: tuple[Candidate, ...]
    budget: int | None
    untiled_macs: int
    search_seconds: float
    evaluations: int
    notes: tuple[str, ...] = field(default=())

    @property
    def fits_budget(self) -> bool:
        return self.budget is None or self.chosen.peak_bytes <= self.budget

    @property
    def mac_overhead(self) -> float:
        return self.chosen.extra_macs / self.untiled_macs if self.untiled_macs else 0.0

    @property
    def limiting_buffer(self) -> PeakBuffer | None:
        chosen = self.chosen
        return next(iter(peak_buffers(chosen.graph, chosen.plan.lifetimes)), None)

    def to_json(self) -> dict[str, Any]:
        chosen, limiting = self.chosen, self.limiting_buffer
        return {
            "model": self.untiled.graph.name,
            "peak_bytes": chosen.peak_bytes,
            "untiled_peak_bytes": self.untiled.peak_bytes,
            "budget_bytes": self.budget,
            "fits_budget": self.fits_budget,
            "method": chosen.source,
            "mac_overhead": round(self.mac_overhead, 6),
            "untiled_macs": self.untiled_macs,
            "extra_macs": chosen.extra_macs,
            "predicted_latency_s": chosen.predicted_latency_s,
            "untiled_predicted_latency_s": self.untiled.predicted_latency_s,
            "chains": [dict(r) for r in chosen.rewrites],
            "limiting_buffer": limiting.to_json() if limiting else None,
            "lower_bound_bytes": chosen.plan.lower_bound,
            "search_seconds": round(self.search_seconds, 3),
            "evaluations": self.evaluations,
            "candidates": [c.summary() for c in self.candidates],
            "notes": list(self.notes),
        }


def _from_discovery(source: str, result: OptimizeResult, cost_model: CostModel) -> Candidate:
    return Candidate(
        source,
        result.graph,
        result.plan,
        tuple(dict(r) for r in result.rewrites),
        result.extra_macs,
        cost_model.predict(result.graph, result.plan),
    )


def _mafat(
    graph: Graph, budget: int | None, cost_model: CostModel, alignment: int, untiled_macs: int
) -> tuple[Candidate | None, int, str | None]:
    from memfit.tiling import mafat

    layers = mafat.find_run(graph)
    if len(layers) < 2:
        return None, 0, "mafat: no run of two or more layers to fuse"
    run = mafat.Run(graph, layers, cost_model, alignment)
    untiled = run.score(run.untiled).memory
    # Without a budget MAFAT has nothing to trade: ask for the smallest peak it can reach.
    found = mafat.search(run, budget if budget is not None else 1)
    score = found.best or found.smallest
    if score.memory >= untiled:
        return None, len(found.visited), None
    tiled, plan = mafat.real_plan(run, score.configuration)
    records = tuple({**r, "by": "mafat"} for r in run.records(score.configuration))
    extra = sum(macs(op) for op in tiled.ops) - untiled_macs
    candidate = Candidate(
        "mafat", tiled, plan, records, max(extra, 0), cost_model.predict(tiled, plan)
    )
    return candidate, len(found.visited), None


def _with_primitives(
    base: Candidate,
    budget: int | None,
    cost_model: CostModel,
    alignment: int,
    report: Progress,
    cache: Path | None,
    deadline: float,
) -> tuple[list[Candidate], str | None]:
    """``base`` with its convolutions' primitives chosen: the fastest within the budget,
    the fastest, and the least workspace (each distinct selection once)."""
    from memfit.selection import lowering, pareto
    from memfit.selection.ilp import evaluate, solve
    from memfit.selection.problem import activation_plan, build_problem
    from memfit.selection.profile import (
        CostCache,
        ProfilingTimeout,
        conv_job,
        profile_graph,
        selectable_ops,
    )

    ops = selectable_ops(base.graph)
    if not ops:
        return [], None
    activations = activation_plan(base.graph)
    if budget is not None and activations.arena.size > budget:
        return [], None  # no choice of workspace brings it within the budget
    shapes = {conv_job(op, pareto.DEFAULT).key for op in ops}
    if len(shapes) > MAX_PROFILED_SHAPES:
        return [], (
            f"primitives: not tried on the {base.source} plan ({len(shapes)} distinct "
            f"convolution shapes, more than {MAX_PROFILED_SHAPES} to profile)"
        )

    def profiled(done: int, total: int) -> None:
        report(f"profiling primitives for the {base.source} plan: {done}/{total}")

    try:
        costs = profile_graph(base.graph, CostCache(cache), profiled, deadline)
    except ProfilingTimeout:
        return [], (
            f"primitives: not tried on the {base.source} plan: profiling its convolutions "
            f"passed the time limit ({PROFILING_TIME_LIMIT:.0f} s from the start); what was "
            "measured is cached, so running again goes further"
        )
    problem = build_problem(base.graph, costs, plan=activations, per_step=True)
    default = evaluate(problem, {layer.name: pareto.DEFAULT for layer in problem.layers})
    layers_s = sum(cost_model.op_seconds(op) for op in ops)
    report(f"choosing primitives for the {base.source} plan ({len(problem.layers)} layers)")
    solutions = [solve(problem), solve(problem, minimize_memory=True)]
    if budget is not None:
        solutions.insert(0, solve(problem, budget))
    found: list[Candidate] = []
    seen = {tuple(sorted((n, c.label) for n, c in default.assignment.items()))}
    for solution in solutions:
        if solution is None:
            continue
        chosen = solution.evaluation
        key = tuple(sorted((n, c.label) for n, c in chosen.assignment.items()))
        if key in seen:
            continue
        seen.add(key)
        graph = base.graph.copy()
        lowering.mark(graph, chosen.assignment, chosen.nchw_tensors)
        delta = layers_s * (chosen.seconds / default.seconds - 1.0)
        entry = lowering.record(chosen.assignment, chosen.nchw_tensors, delta)
        found.append(
            Candidate(
                f"{base.source}+primitives",
                graph,
                plan_memory_quickly(graph, alignment, reorder=False),
                (*base.rewrites, entry),
                base.extra_macs,
                base.predicted_latency_s + delta,
            )
        )
    return found, None


def _selectable_any(candidates: Sequence[Candidate]) -> bool:
    from memfit.selection.profile import selectable_ops

    return any(selectable_ops(c.graph) for c in candidates)


def choose(
    graph: Graph,
    *,
    budget: int | None = None,
    methods: Sequence[str] = METHODS,
    max_mac_overhead: float | None = None,
    cost_model: CostModel | None = None,
    alignment: int = 16,
    progress: Progress | None = None,
    profile_cache: Path | None = None,
) -> Decision:
    """Weigh every allowed method on ``graph`` (left unchanged) and return the decision
    (``profile_cache``: the primitive cost cache, default ``~/.cache/memfit``)."""
    from memfit.codegen.cost_model import default_cost_model

    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise UsageError(
            f"unknown method(s) {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(METHODS)}"
        )
    start = time.perf_counter()
    deadline = time.monotonic() + PROFILING_TIME_LIMIT
    report = progress or (lambda message: None)
    model = cost_model or default_cost_model()
    notes = []
    if not model.provenance.get("calibrated", True):
        notes.append("latency predicted by an uncalibrated cost model (1 ns per MAC and byte)")
    untiled_macs = sum(macs(op) for op in graph.ops)
    report("planning the untiled graph")
    untiled_graph = graph.copy()
    untiled_plan = plan_memory(untiled_graph, alignment)
    untiled = Candidate(
        "untiled", untiled_graph, untiled_plan, (), 0, model.predict(untiled_graph, untiled_plan)
    )
    candidates: list[Candidate] = [untiled]
    evaluations = 0
    tiling = tuple(m for m in methods if m in DISCOVERY_METHODS)
    if tiling:
        result = optimize(
            graph,
            budget=budget,
            methods=tiling,
            max_mac_overhead=max_mac_overhead,
            alignment=alignment,
            progress=report,
        )
        evaluations += result.evaluations
        if result.timed_out:
            notes.append(
                f"path discovery stopped at its time limit ({result.search_seconds:.0f} s) "
                "with the best plan found by then"
            )
        if result.rewrites:
            candidates.append(_from_discovery("+".join(tiling), result, model))
    if "mafat" in methods:
        report("MAFAT: fused groups over the longest run of layers")
        candidate, visited, note = _mafat(graph, budget, model, alignment, untiled_macs)
        evaluations += visited
        if note:
            notes.append(note)
        overhead_ok = candidate is not None and (
            max_mac_overhead is None or candidate.extra_macs <= max_mac_overhead * untiled_macs
        )
        if candidate is not None and overhead_ok:
            candidates.append(candidate)
    if "primitives" in methods:
        selected: list[Candidate] = []
        for base in candidates:
            more, note = _with_primitives(
                base, budget, model, alignment, report, profile_cache, deadline
            )
            selected += more
            if note:
                notes.append(note)
        if not _selectable_any(candidates):
            notes.append(
                "primitives: no float32 or int8 convolution with constant weights to choose for"
            )
        candidates += selected
    fitting = [c for c in candidates if budget is None or c.peak_bytes <= budget]
    if budget is not None and fitting:
        chosen = min(fitting, key=lambda c: (c.predicted_latency_s, c.peak_bytes))
    else:
        chosen = min(candidates, key=lambda c: (c.peak_bytes, c.predicted_latency_s))
    return Decision(
        chosen=chosen,
        untiled=untiled,
        candidates=tuple(candidates),
        budget=budget,
        untiled_macs=untiled_macs,
        search_seconds=time.perf_counter() - start,
        evaluations=evaluations,
        notes=tuple(notes),
    )


SWEEP_FRACTIONS = (0.5, 0.25)
"""Budgets (fractions of the untiled peak) a sweep takes, after the smallest peak."""


def sweep(
    graph: Graph,
    fractions: Sequence[float] = SWEEP_FRACTIONS,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> Iterator[tuple[float | None, int | None, Decision]]:
    """``choose`` without a budget (the smallest peak), then at each fraction of the untiled
    peak: (fraction, budget, decision), fraction and budget None for the first."""
    untiled_peak = 0
    for fraction in (None, *fractions):
        budget = None if fraction is None else int(untiled_peak * fraction)
        if progress is not None:
            progress(f"budget {budget or 'none (smallest peak)'}")
        decision = choose(graph, budget=budget, progress=progress, **options)
        untiled_peak = decision.untiled.peak_bytes
        yield fraction, budget, decision
