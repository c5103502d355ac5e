"""The memory/latency Pareto front of primitive selection, and its baselines.

``front`` walks the front with the epsilon-constraint method: the fastest assignment without a
budget, then again and again the fastest whose peak is below the last point's, until none
fits; every point is optimal for its budget (when the solver proves it) and the points'
memory falls while their time rises. ``greedy`` is the fastest primitive per layer, conversions
and memory ignored; ``single`` runs one (primitive, layout) everywhere it applies and memfit's
default kernel elsewhere. All of them are evaluated by ``ilp.evaluate``, the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memfit.errors import InternalError
from memfit.selection.ilp import Evaluation, Problem, Solution, evaluate, solve
from memfit.selection.primitives import NHWC, Choice

DEFAULT = Choice("default", NHWC)
MAX_POINTS = 40


@dataclass(frozen=True)
class Front:
    points: tuple[Evaluation, ...]
    """Fastest first; peak strictly falling, time never falling."""
    solver_seconds: tuple[float, ...]
    """Wall time of each solve (the last: the one that found no smaller point)."""
    optimal: bool
    """Every solve proved optimal."""


def front(problem: Problem, max_points: int = MAX_POINTS) -> Front:
    points: list[Evaluation] = []
    times: list[float] = []
    optimal = True
    budget: int | None = None
    while len(points) < max_points:
        solution: Solution | None = solve(problem, budget)
        if solution is None:
            break
        times.append(solution.solver_seconds)
        optimal &= solution.optimal
        point = solution.evaluation
        if points and not (point.peak_bytes < points[-1].peak_bytes):
            raise InternalError("the front's memory did not fall")
        if points and point.seconds < points[-1].seconds - 1e-12:
            optimal = False  # an earlier solve was not optimal: keep the better point only
            points.pop()
        points.append(point)
        budget = point.peak_bytes - 1
    return Front(tuple(points), tuple(times), optimal)


def greedy(problem: Problem) -> Evaluation:
    return evaluate(
        problem,
        {
            layer.name: min(layer.options, key=lambda c: (layer.options[c].seconds, c))
            for layer in problem.layers
        },
    )


def single(problem: Problem, choice: Choice) -> Evaluation:
    return evaluate(
        problem,
        {layer.name: choice if choice in layer.options else DEFAULT for layer in problem.layers},
    )


def singles(problem: Problem) -> dict[str, Evaluation]:
    """Every (primitive, layout) of the problem, used everywhere it applies."""
    every = sorted({c for layer in problem.layers for c in layer.options})
    return {c.label: single(problem, c) for c in every}


def pick(points: Sequence[Evaluation], count: int) -> list[Evaluation]:
    """At most ``count`` points of a front to measure: the fastest, the smallest, the fastest
    with at most half the fastest's memory, and the rest spread over memory."""
    if len(points) <= count:
        return list(points)
    chosen = {0, len(points) - 1}
    half = [i for i, p in enumerate(points) if 2 * p.peak_bytes <= points[0].peak_bytes]
    if half:
        chosen.add(half[0])
    step = (len(points) - 1) / max(1, count - 1)
    i = 1
    while len(chosen) < count and i < count:
        chosen.add(round(i * step))
        i += 1
    return [points[i] for i in sorted(chosen)][:count]
