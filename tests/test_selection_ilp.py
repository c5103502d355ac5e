"""The primitive-selection ILP and the Pareto front on small hand-made cost tables."""

from __future__ import annotations

import itertools

import numpy as np

from memfit.selection import ilp, pareto
from memfit.selection.ilp import Layer, Link, Option, Problem
from memfit.selection.primitives import NCHW, NHWC, Choice

A_NHWC, A_NCHW = Choice("a", NHWC), Choice("a", NCHW)
B_NHWC, B_NCHW = Choice("b", NHWC), Choice("b", NCHW)
DEFAULT = pareto.DEFAULT
FREE = Option(0.0, 0)


def layer(name: str, options: dict[Choice, tuple[float, int]], convert: float = 0.0) -> Layer:
    return Layer(
        name,
        {c: Option(*v) for c, v in options.items()},
        Option(convert, 100),
        Option(convert, 100),
    )


def brute_force(problem: Problem, budget: int | None) -> ilp.Evaluation | None:
    best = None
    names = [layer.name for layer in problem.layers]
    for combo in itertools.product(*(list(layer.options) for layer in problem.layers)):
        e = ilp.evaluate(problem, dict(zip(names, combo, strict=True)))
        if budget is not None and e.peak_bytes > budget:
            continue
        if best is None or e.seconds < best.seconds - 1e-12:
            best = e
    return best


def test_fastest_choice_per_layer_without_budget() -> None:
    problem = Problem(
        (
            layer("l1", {DEFAULT: (3.0, 10), A_NHWC: (1.0, 50)}),
            layer("l2", {DEFAULT: (2.0, 10), B_NHWC: (1.5, 80)}),
        ),
        (),
        arena_bytes=1000,
    )
    solution = ilp.solve(problem)
    assert solution is not None and solution.optimal
    assert solution.evaluation.assignment == {"l1": A_NHWC, "l2": B_NHWC}
    assert solution.evaluation.peak_bytes == 1080
    assert abs(solution.evaluation.seconds - 2.5) < 1e-9


def test_budget_forces_the_smaller_workspace_where_it_costs_least() -> None:
    problem = Problem(
        (
            layer("l1", {DEFAULT: (3.0, 10), A_NHWC: (1.0, 50)}),
            layer("l2", {DEFAULT: (2.0, 10), B_NHWC: (1.5, 80)}),
        ),
        (),
        arena_bytes=1000,
    )
    solution = ilp.solve(problem, budget_bytes=1060)
    assert solution is not None
    assert solution.evaluation.assignment == {"l1": A_NHWC, "l2": DEFAULT}
    assert ilp.solve(problem, budget_bytes=1009) is None


def test_step_bytes_let_a_layer_take_workspace_where_the_activations_leave_room() -> None:
    layers = (
        layer("l1", {DEFAULT: (3.0, 10), A_NHWC: (1.0, 300)}),
        layer("l2", {DEFAULT: (2.0, 10), B_NHWC: (1.5, 80)}),
    )
    taso = Problem(layers, (), arena_bytes=1000)
    per_step = Problem(layers, (), arena_bytes=1000, step_bytes={"l1": 600, "l2": 1000})
    # Arena + workspace: the large workspace of l1 does not fit; beside l1's live bytes it does.
    assert ilp.solve(taso, 1010) is not None
    assert ilp.solve(taso, 1010).evaluation.assignment == {"l1": DEFAULT, "l2": DEFAULT}
    solution = ilp.solve(per_step, 1010)
    assert solution is not None
    assert solution.evaluation.assignment == {"l1": A_NHWC, "l2": DEFAULT}
    assert solution.evaluation.peak_bytes == 1010  # l2: 1000 live + 10
    smallest = ilp.solve(per_step, minimize_memory=True)
    assert smallest is not None and smallest.evaluation.peak_bytes == 1010
    assert smallest.evaluation.assignment["l1"] == A_NHWC  # free below the peak: the faster
    for budget in (None, 1100, 1010, 1005):
        want = brute_force(per_step, budget)
        got = ilp.solve(per_step, budget)
        assert (got is None) == (want is None)
        assert got is None or want is None or abs(got.evaluation.seconds - want.seconds) < 1e-9


def test_conversions_are_charged_unless_the_tensor_stays_nchw() -> None:
    # each layer alone is faster in NCHW by 1.0, but a conversion costs 0.8 on each side
    problem = Problem(
        (
            layer("l1", {A_NHWC: (2.0, 0), A_NCHW: (1.0, 0)}, convert=0.8),
            layer("l2", {A_NHWC: (2.0, 0), A_NCHW: (1.0, 0)}, convert=0.8),
        ),
        (),
        arena_bytes=0,
    )
    alone = ilp.solve(problem)
    assert alone is not None and alone.evaluation.assignment == {"l1": A_NHWC, "l2": A_NHWC}
    linked = Problem(problem.layers, (Link("t", "l1", ("l2",)),), arena_bytes=0)
    together = ilp.solve(linked)
    assert together is not None
    assert together.evaluation.assignment == {"l1": A_NCHW, "l2": A_NCHW}
    assert together.evaluation.nchw_tensors == {"t"}
    assert abs(together.evaluation.seconds - (1.0 + 1.0 + 0.8 + 0.8)) < 1e-9
    # greedy ignores the conversions and pays them in its real time
    assert abs(pareto.greedy(problem).seconds - 2 * (1.0 + 1.6)) < 1e-9


def test_conversion_buffers_count_as_workspace() -> None:
    problem = Problem(
        (layer("l1", {A_NHWC: (2.0, 0), A_NCHW: (1.0, 0)}, convert=0.1),),
        (),
        arena_bytes=10,
    )
    solution = ilp.solve(problem)
    assert solution is not None and solution.evaluation.workspace_bytes == 200
    small = ilp.solve(problem, budget_bytes=100)
    assert small is not None and small.evaluation.assignment == {"l1": A_NHWC}


def random_problem(rng: np.random.Generator) -> Problem:
    choices = [DEFAULT, A_NHWC, A_NCHW, B_NCHW]
    layers = []
    for i in range(4):
        options = {
            c: (float(rng.integers(1, 50)) / 10, int(rng.integers(0, 6)) * 100)
            for c in choices
            if c == DEFAULT or rng.random() < 0.7
        }
        layers.append(layer(f"l{i}", options, convert=float(rng.integers(0, 10)) / 10))
    links = (Link("t0", "l0", ("l1", "l2")), Link("t2", "l2", ("l3",)))
    return Problem(tuple(layers), links, arena_bytes=1000, other_seconds=0.5)


def test_solver_matches_brute_force_on_random_tables() -> None:
    rng = np.random.default_rng(5)
    for _ in range(15):
        problem = random_problem(rng)
        for budget in (None, 1300, 1150, 1000):
            want = brute_force(problem, budget)
            got = ilp.solve(problem, budget)
            if want is None:
                assert got is None
                continue
            assert got is not None
            assert abs(got.evaluation.seconds - want.seconds) < 1e-6


def test_front_is_monotone_and_matches_brute_force() -> None:
    rng = np.random.default_rng(11)
    for _ in range(8):
        problem = random_problem(rng)
        result = pareto.front(problem)
        points = result.points
        assert result.optimal
        for a, b in itertools.pairwise(points):
            assert b.peak_bytes < a.peak_bytes
            assert b.seconds >= a.seconds - 1e-12
        for point in points:
            best = brute_force(problem, point.peak_bytes)
            assert best is not None and abs(best.seconds - point.seconds) < 1e-6
        smallest = brute_force(problem, points[-1].peak_bytes - 1)
        assert smallest is None
        # no baseline lies below the front
        for baseline in [pareto.greedy(problem), *pareto.singles(problem).values()]:
            fits = [p for p in points if p.peak_bytes <= baseline.peak_bytes]
            assert fits and fits[0].seconds <= baseline.seconds + 1e-9


def test_pick_keeps_the_ends_and_the_half_memory_point() -> None:
    problem = random_problem(np.random.default_rng(3))
    points = pareto.front(problem).points
    chosen = pareto.pick(points, 3)
    assert chosen[0] == points[0] and chosen[-1] == points[-1]
