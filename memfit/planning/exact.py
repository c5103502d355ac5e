"""Exact offset assignment with OR-Tools CP-SAT.

Each buffer is a rectangle: its lifetime on the time axis (fixed) and its bytes on the address
axis (the offset is the variable). A NoOverlap2D constraint keeps rectangles apart and the
objective is the arena size. Offsets are counted in units of the alignment, which keeps the
numbers small and makes every offset aligned by construction. A cumulative constraint (at each
step the live sizes fit in the arena) is implied by the packing but lets the solver prune with
the lower bound early. The best heuristic answer is given as a hint and as the upper bound.
"""

from __future__ import annotations

from collections.abc import Sequence

from memfit.planning.assignment import Assignment
from memfit.planning.lifetimes import Buffer, aligned_size, lower_bound

NAME = "exact-cp-sat"
DEFAULT_TIME_LIMIT = 2.0
"""Deterministic time (about seconds on a typical machine) the solver may spend."""
WALL_CLOCK_FACTOR = 10.0


def exact(
    buffers: Sequence[Buffer],
    alignment: int = 16,
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    hint: Assignment | None = None,
    workers: int | None = None,
) -> Assignment | None:
    """The smallest arena CP-SAT finds within ``time_limit`` seconds, or None if it finds none.

    The answer has ``optimal=True`` when the solver proved it minimal. With a ``hint``, the
    solver only searches arenas no larger than the hint's; the hint's own size is a valid
    answer, so the result is never worse than the hint when the solver finds anything.
    Solver answers are not trusted: the suite re-checks them with the independent checker.
    """
    # CP-SAT costs a third of a second to import; only planning pays for it.
    from ortools.sat.python import cp_model

    units = [aligned_size(b, alignment) // alignment for b in buffers]
    floor = lower_bound(buffers, alignment) // alignment
    ceiling = hint.size // alignment if hint is not None else sum(units)
    if floor >= ceiling and hint is not None:
        return Assignment(dict(hint.offsets), hint.size, NAME, optimal=True)

    model = cp_model.CpModel()
    arena = model.new_int_var(floor, ceiling, "arena")
    offsets = {}
    time_intervals = []
    byte_intervals = []
    for buffer, size in zip(buffers, units, strict=True):
        if size == 0:
            continue  # an empty buffer overlaps nothing; it stays at offset 0
        offset = model.new_int_var(0, ceiling - size, f"offset[{buffer.name}]")
        offsets[buffer.name] = offset
        model.add(offset + size <= arena)
        span = buffer.last - buffer.first + 1
        time_intervals.append(
            model.new_fixed_size_interval_var(buffer.first, span, f"time[{buffer.name}]")
        )
        byte_intervals.append(
            model.new_fixed_size_interval_var(offset, size, f"bytes[{buffer.name}]")
        )
        if hint is not None:
            model.add_hint(offset, hint.offsets[buffer.name] // alignment)
    model.add_no_overlap_2d(time_intervals, byte_intervals)
    demands = [size for size in units if size > 0]
    model.add_cumulative(time_intervals, demands, arena)
    model.minimize(arena)

    solver = cp_model.CpSolver()
    # Deterministic work, not wall-clock seconds, bounds the search, and one worker searches
    # (several race each other): the same buffers give the same arena on a busy machine as on
    # an idle one. The wall clock only guards against a very slow machine.
    solver.parameters.max_deterministic_time = time_limit
    solver.parameters.max_time_in_seconds = WALL_CLOCK_FACTOR * time_limit
    solver.parameters.num_workers = workers or 1
    solver.parameters.random_seed = 0
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    placed = {
        b.name: int(solver.value(offsets[b.name])) * alignment if b.name in offsets else 0
        for b in buffers
    }
    # a merely feasible answer may leave the arena variable above the highest buffer end
    size = max(
        (placed[b.name] + width * alignment for b, width in zip(buffers, units, strict=True)),
        default=0,
    )
    return Assignment(placed, size, NAME, optimal=status == cp_model.OPTIMAL)
