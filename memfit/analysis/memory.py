"""Memory analysis of a graph: per-step live bytes, the bounds, memfit's plan and TFLM's.

The result object feeds ``memfit analyze`` (table, JSON, plots) and the benchmarks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from memfit.ir.core import Graph
from memfit.planning import MemoryPlan, plan_memory, tflm_greedy
from memfit.planning.arena import align_up


@dataclass(frozen=True)
class StepRow:
    step: int
    op: str
    kind: str
    output_shape: tuple[int, ...]
    live_bytes: int


@dataclass(frozen=True)
class MemoryAnalysis:
    """memfit's plan beside TFLite Micro's method on the same canonical graph."""

    model: str
    plan: MemoryPlan
    baseline: MemoryPlan
    rows: tuple[StepRow, ...]
    planner_seconds: float

    @property
    def peak_bytes(self) -> int:
        return self.plan.arena.size

    @property
    def lower_bound_bytes(self) -> int:
        return self.plan.lower_bound

    @property
    def model_order_lower_bound_bytes(self) -> int:
        return self.baseline.lower_bound

    @property
    def tflm_greedy_bytes(self) -> int:
        return self.baseline.arena.size

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "peak_bytes": self.peak_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "model_order_lower_bound_bytes": self.model_order_lower_bound_bytes,
            "tflm_greedy_bytes": self.tflm_greedy_bytes,
            "planner_seconds": round(self.planner_seconds, 4),
            "schedule_method": self.plan.schedule.method,
            "schedule_optimal": self.plan.schedule.optimal,
            "assignment_algorithm": self.plan.assignment.algorithm,
            "assignment_optimal": self.plan.assignment.optimal,
            "alignment": self.plan.arena.alignment,
            "ops": [
                {
                    "step": r.step,
                    "op": r.op,
                    "kind": r.kind,
                    "output_shape": list(r.output_shape),
                    "live_bytes": r.live_bytes,
                }
                for r in self.rows
            ],
        }


def live_bytes_per_step(plan: MemoryPlan) -> list[int]:
    """Sum of (aligned) bytes of the buffers live at each step of the plan's order."""
    alignment = plan.arena.alignment
    live = [0] * plan.lifetimes.steps
    for buffer in plan.lifetimes.buffers:
        for step in range(buffer.first, buffer.last + 1):
            live[step] += align_up(buffer.size, alignment)
    return live


def analyze_memory(
    graph: Graph,
    alignment: int = 16,
    *,
    as_imported: Graph | None = None,
    plan: MemoryPlan | None = None,
    **plan_options: Any,
) -> MemoryAnalysis:
    """Plan ``graph`` (reordering its ops in place) and compare with TFLite Micro's method.

    The baseline runs on ``as_imported`` when given: the model op for op as its file has it
    (before memfit's canonicalization), which is what TFLite Micro itself would plan. With
    ``plan`` (a plan of ``graph`` made before, e.g. from a plan file, whose graph may be tiled)
    nothing is planned: the analysis reports that plan, beside the baseline of ``as_imported``.
    """
    baseline = tflm_greedy(as_imported if as_imported is not None else graph, alignment)
    start = time.perf_counter()
    if plan is None:
        plan = plan_memory(graph, alignment, **plan_options)
    seconds = time.perf_counter() - start
    ops = {op.name: op for op in graph.ops}
    live = live_bytes_per_step(plan)
    rows = tuple(
        StepRow(step, name, ops[name].kind, ops[name].outputs[0].shape, live[step])
        for step, name in enumerate(plan.schedule.order)
    )
    return MemoryAnalysis(graph.name, plan, baseline, rows, seconds)
