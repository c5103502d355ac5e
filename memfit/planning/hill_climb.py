"""Hill climbing over the placement order, after TVM's USMP hill_climb.

First fit is only as good as the order it places buffers in. Starting from the greedy-by-size
order, each step perturbs the order, re-runs first fit and keeps the new order unless the arena
grew. Most perturbations move a buffer that reaches the top of the arena (one that sets its
size) to an earlier random position, so it is placed before the buffers that pushed it up; the
rest swap two random buffers to leave plateaus. The random generator is seeded, so a run is
reproducible as long as the time limit does not cut it short.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from memfit.planning.assignment import Assignment, FirstFit
from memfit.planning.greedy_by_size import size_order
from memfit.planning.lifetimes import Buffer, lower_bound

NAME = "hill-climb"
TOP_MOVE_PROBABILITY = 0.75
WORK = 3_000_000
"""Placement steps (a buffer placed or a live neighbour looked at) the search may spend: its
budget counts work, not seconds, so the same buffers give the same answer on a busy machine."""


def hill_climb(
    buffers: Sequence[Buffer],
    alignment: int = 16,
    *,
    iterations: int = 1000,
    work: int = WORK,
    time_limit: float = 20.0,
    seed: int = 0,
) -> Assignment:
    """Improve on greedy by size by perturbing its placement order.

    Stops after ``iterations`` perturbations or as many as ``work`` placement steps allow,
    when the arena reaches the lower bound, or (a safety net that a normal run never reaches)
    after ``time_limit`` seconds.
    """
    packer = FirstFit(buffers, alignment)
    count = len(packer.buffers)
    per_placement = count + sum(len(c) for c in packer.conflicts)
    iterations = min(iterations, max(1, work // max(per_placement, 1)))
    bound = lower_bound(packer.buffers, alignment)
    rng = random.Random(seed)
    deadline = time.monotonic() + time_limit

    order = size_order(packer)
    offsets, size = packer.place(order)
    best_order, best_size = order, size
    for _ in range(iterations):
        if best_size <= bound or count < 2 or time.monotonic() > deadline:
            break
        candidate = list(order)
        if rng.random() < TOP_MOVE_PROBABILITY:
            top = [i for i in range(count) if offsets[i] + packer.sizes[i] == size]
            position = candidate.index(rng.choice(top))
            if position == 0:
                continue
            candidate.insert(rng.randrange(position), candidate.pop(position))
        else:
            a, b = rng.sample(range(count), 2)
            candidate[a], candidate[b] = candidate[b], candidate[a]
        new_offsets, new_size = packer.place(candidate)
        if new_size <= size:
            order, offsets, size = candidate, new_offsets, new_size
            if size < best_size:
                best_order, best_size = order, size
    return packer.assignment(best_order, NAME)
