"""Run every offset-assignment algorithm, keep the smallest arena, check it independently.

Greedy by size first; hill climbing from there; then CP-SAT, hinted with the best so far. A
stage is skipped once an arena reaches the lower bound, since nothing can beat it. Every answer
is re-checked by ``memfit.planning.checker`` (solver answers included), so a bug in any
algorithm stops planning instead of corrupting tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from memfit.planning.assignment import Assignment
from memfit.planning.checker import check_assignment
from memfit.planning.exact import DEFAULT_TIME_LIMIT, exact
from memfit.planning.greedy_by_size import greedy_by_size
from memfit.planning.hill_climb import hill_climb
from memfit.planning.lifetimes import Buffer, lower_bound


@dataclass(frozen=True)
class SuiteResult:
    """The smallest checked assignment, every checked answer in the order tried, the bound."""

    best: Assignment
    tried: tuple[Assignment, ...]
    lower_bound: int


def run_suite(
    buffers: Sequence[Buffer],
    alignment: int = 16,
    *,
    exact_time_limit: float = DEFAULT_TIME_LIMIT,
) -> SuiteResult:
    """Assign offsets to ``buffers`` with every algorithm and keep the smallest arena.

    ``exact_time_limit=0`` skips the solver. Ties go to the algorithm tried first.
    """
    buffers = tuple(buffers)
    bound = lower_bound(buffers, alignment)
    tried: list[Assignment] = []

    def keep(answer: Assignment | None) -> Assignment:
        if answer is not None:
            check_assignment(buffers, answer, alignment)
            tried.append(answer)
        return min(tried, key=lambda a: a.size)

    best = keep(greedy_by_size(buffers, alignment))
    if best.size > bound:
        best = keep(hill_climb(buffers, alignment))
    if best.size > bound and exact_time_limit > 0:
        best = keep(exact(buffers, alignment, time_limit=exact_time_limit, hint=best))
    # A proven optimum from any algorithm makes the best (no larger) answer optimal too.
    if not best.optimal and (best.size <= bound or any(a.optimal for a in tried)):
        best = dataclasses.replace(best, optimal=True)
    return SuiteResult(best, tuple(tried), bound)
