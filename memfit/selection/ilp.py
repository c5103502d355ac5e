"""The primitive-selection ILP (TASO): one primitive and layout per layer, minimum total time
under a memory budget.

Variables (CP-SAT, integers: nanoseconds and bytes):

- ``x[l, c]``: layer ``l`` runs choice ``c`` (exactly one per layer);
- ``keep[t]``: tensor ``t`` between layers (a ``Link``: one producer, every consumer a
  selectable layer) is stored NCHW, which it is exactly when its producer and all its consumers
  run NCHW; otherwise it is NHWC, and a layer running NCHW converts its input into its workspace
  (``convert_in[l]``) and its output out of it (``convert_out[l]``), paying the measured time;
- ``W``: the workspace, at least every layer's primitive workspace plus its conversion buffers;
- ``P``: the peak, at least the arena and, for every layer, the activation bytes live while it
  runs (``Problem.step_bytes``; the whole arena where not given) plus its workspace.

Minimise the sum of the chosen primitives' and conversions' times subject to ``P <= budget``.
Without step bytes this is TASO's ``arena + W <= budget``; with them a layer may take a large
workspace where the activations leave room for it (what the arena planner, which places every
op's workspace as a buffer of its own, can use). ``evaluate`` computes time and memory of any
assignment without the solver; every answer is re-checked with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memfit.errors import InternalError
from memfit.selection.primitives import NCHW, Choice

NANOSECONDS = 1e9
TIME_LIMIT_S = 10.0


@dataclass(frozen=True)
class Option:
    seconds: float
    workspace_bytes: int


@dataclass(frozen=True)
class Layer:
    name: str
    options: Mapping[Choice, Option]
    input_conversion: Option
    """NHWC -> NCHW of the layer's input: time and buffer bytes."""
    output_conversion: Option
    """NCHW -> NHWC of its output."""


@dataclass(frozen=True)
class Link:
    """A tensor that may stay NCHW: its producer and every consumer are layers."""

    tensor: str
    producer: str
    consumers: tuple[str, ...]


@dataclass(frozen=True)
class Problem:
    layers: tuple[Layer, ...]
    links: tuple[Link, ...]
    arena_bytes: int
    """The activation arena, without workspace."""
    other_seconds: float = 0.0
    """Time of everything else in the model (added to every assignment's time)."""
    step_bytes: Mapping[str, int] = field(default_factory=dict)
    """Layer name -> activation bytes live while it runs (the arena for a layer not in it)."""

    def live_bytes(self, layer: str) -> int:
        return self.step_bytes.get(layer, self.arena_bytes)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise InternalError(f"no layer {name}")


@dataclass(frozen=True)
class Evaluation:
    """Time and memory of one assignment, computed without a solver."""

    assignment: Mapping[str, Choice]
    seconds: float
    workspace_bytes: int
    peak_bytes: int
    """The arena, or the most any layer needs: its live activations plus its workspace."""
    nchw_tensors: frozenset[str]
    conversions: int
    other_seconds: float
    """The part of ``seconds`` outside the layers (``Problem.other_seconds``)."""


def evaluate(problem: Problem, assignment: Mapping[str, Choice]) -> Evaluation:
    """Time and memory of ``assignment`` (layer name -> choice), by the model's rules."""
    nchw = {name for name, choice in assignment.items() if choice.layout == NCHW}
    kept = frozenset(
        link.tensor
        for link in problem.links
        if link.producer in nchw and all(c in nchw for c in link.consumers)
    )
    input_kept = {c for link in problem.links if link.tensor in kept for c in link.consumers}
    output_kept = {link.producer for link in problem.links if link.tensor in kept}
    seconds, workspace, conversions = problem.other_seconds, 0, 0
    peak = problem.arena_bytes
    for layer in problem.layers:
        choice = assignment[layer.name]
        option = layer.options[choice]
        seconds += option.seconds
        need = option.workspace_bytes
        if layer.name in nchw:
            if layer.name not in input_kept:
                seconds += layer.input_conversion.seconds
                need += layer.input_conversion.workspace_bytes
                conversions += 1
            if layer.name not in output_kept:
                seconds += layer.output_conversion.seconds
                need += layer.output_conversion.workspace_bytes
                conversions += 1
        workspace = max(workspace, need)
        peak = max(peak, problem.live_bytes(layer.name) + need)
    return Evaluation(
        dict(assignment),
        seconds,
        workspace,
        peak,
        kept,
        conversions,
        problem.other_seconds,
    )


@dataclass(frozen=True)
class Solution:
    evaluation: Evaluation
    solver_seconds: float
    optimal: bool


def solve(
    problem: Problem,
    budget_bytes: int | None = None,
    *,
    minimize_memory: bool = False,
    time_limit_s: float = TIME_LIMIT_S,
) -> Solution | None:
    """The fastest assignment whose peak (``Evaluation.peak_bytes``) is within ``budget_bytes``
    (None: infeasible). With ``minimize_memory``, the smallest peak instead (ties broken by
    time)."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    x: dict[tuple[str, Choice], cp_model.IntVar] = {}
    nchw: dict[str, Any] = {}
    for layer in problem.layers:
        for choice in layer.options:
            x[layer.name, choice] = model.new_bool_var(f"x[{layer.name},{choice.label}]")
        model.add_exactly_one(x[layer.name, c] for c in layer.options)
        nchw[layer.name] = sum(x[layer.name, c] for c in layer.options if c.layout == NCHW)
    kept_input: dict[str, cp_model.IntVar] = {}
    kept_output: dict[str, cp_model.IntVar] = {}
    for link in problem.links:
        keep = model.new_bool_var(f"keep[{link.tensor}]")
        members = [link.producer, *link.consumers]
        for member in members:
            model.add(keep <= nchw[member])
        model.add(keep >= sum(nchw[m] for m in members) - (len(members) - 1))
        kept_output[link.producer] = keep
        for consumer in link.consumers:
            kept_input[consumer] = keep
    largest = max(
        (
            max(o.workspace_bytes for o in layer.options.values())
            + layer.input_conversion.workspace_bytes
            + layer.output_conversion.workspace_bytes
            for layer in problem.layers
        ),
        default=0,
    )
    workspace = model.new_int_var(0, largest, "W")
    peak = model.new_int_var(problem.arena_bytes, problem.arena_bytes + largest, "P")
    time_terms = []
    for layer in problem.layers:
        need = [x[layer.name, c] * o.workspace_bytes for c, o in layer.options.items()]
        time_terms += [
            x[layer.name, c] * round(o.seconds * NANOSECONDS) for c, o in layer.options.items()
        ]
        for kept, conversion, name in (
            (kept_input.get(layer.name), layer.input_conversion, "in"),
            (kept_output.get(layer.name), layer.output_conversion, "out"),
        ):
            convert = model.new_bool_var(f"convert_{name}[{layer.name}]")
            # NCHW and not kept -> convert (and converting only then: it costs time)
            model.add(convert >= nchw[layer.name] - (kept if kept is not None else 0))
            model.add(convert <= nchw[layer.name])
            if kept is not None:
                model.add(convert <= 1 - kept)
            need.append(convert * conversion.workspace_bytes)
            time_terms.append(convert * round(conversion.seconds * NANOSECONDS))
        model.add(workspace >= sum(need))
        model.add(peak >= problem.live_bytes(layer.name) + sum(need))
    if budget_bytes is not None:
        model.add(peak <= budget_bytes)
    total_time = sum(time_terms)
    if minimize_memory:
        bound = sum(
            max(round(o.seconds * NANOSECONDS) for o in layer.options.values())
            + round(
                (layer.input_conversion.seconds + layer.output_conversion.seconds) * NANOSECONDS
            )
            for layer in problem.layers
        )
        model.minimize(peak * (bound + 1) + total_time)
    else:
        model.minimize(total_time)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = 2
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    assignment = {
        layer.name: next(c for c in layer.options if solver.value(x[layer.name, c]))
        for layer in problem.layers
    }
    evaluation = evaluate(problem, assignment)
    _recheck(evaluation, solver.value(workspace), solver.value(total_time), budget_bytes)
    return Solution(evaluation, solver.wall_time, status == cp_model.OPTIMAL)


def _recheck(
    evaluation: Evaluation, solver_workspace: int, solver_time_ns: int, budget_bytes: int | None
) -> None:
    """The solver's answer, checked outside it: the assignment's own time is the solver's (to
    the rounding of each term), its workspace within the solver's bound, and the budget holds."""
    terms = len(evaluation.assignment) * 3
    own = evaluation.seconds - evaluation.other_seconds
    if abs(own * NANOSECONDS - solver_time_ns) > terms:
        raise InternalError(
            f"the solver's time {solver_time_ns / NANOSECONDS:.9g} s is not the assignment's "
            f"{own:.9g} s"
        )
    if evaluation.workspace_bytes > solver_workspace:
        raise InternalError(
            f"the solver's workspace {solver_workspace} B is below the assignment's "
            f"{evaluation.workspace_bytes} B"
        )
    if budget_bytes is not None and evaluation.peak_bytes > budget_bytes:
        raise InternalError(
            f"the solver's assignment needs {evaluation.peak_bytes} B, over the budget "
            f"{budget_bytes} B"
        )
