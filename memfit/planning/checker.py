"""The independent check every offset assignment must pass before anyone uses it.

It shares no code with the planners: it looks only at the buffers (true sizes, not rounded) and
the offsets, and proves that every buffer has an aligned offset, lies inside the arena, and
shares no byte with any buffer live at a common step. A failure is a bug in a planner, so it
raises InternalError naming both buffers, their steps and their byte ranges.
"""

from __future__ import annotations

from collections.abc import Sequence

from memfit.errors import InternalError
from memfit.planning.assignment import Assignment
from memfit.planning.lifetimes import Buffer


def _describe(buffer: Buffer, offset: int) -> str:
    return (
        f"{buffer.name!r} (steps {buffer.first}..{buffer.last}, "
        f"bytes [{offset}, {offset + buffer.size}))"
    )


def check_assignment(buffers: Sequence[Buffer], assignment: Assignment, alignment: int) -> None:
    """Raise InternalError unless ``assignment`` is a valid placement of ``buffers``."""
    source = f"plan from {assignment.algorithm}"
    names = [b.name for b in buffers]
    if len(set(names)) != len(names):
        raise InternalError(f"{source}: buffer names are not unique")
    missing = [name for name in names if name not in assignment.offsets]
    extra = sorted(set(assignment.offsets) - set(names))
    if missing or extra:
        raise InternalError(f"{source}: offsets missing for {missing}, given for unknown {extra}")
    for b in buffers:
        offset = assignment.offsets[b.name]
        if offset % alignment:
            raise InternalError(
                f"{source}: buffer {_describe(b, offset)} is not aligned to {alignment} bytes"
            )
        if offset < 0 or offset + b.size > assignment.size:
            raise InternalError(
                f"{source}: buffer {_describe(b, offset)} lies outside the "
                f"{assignment.size}-byte arena"
            )

    # Sweep over buffers by first step: each needs comparing only with those that start
    # before it ends.
    by_first = sorted((b for b in buffers if b.size > 0), key=lambda b: b.first)
    for k, a in enumerate(by_first):
        a_start = assignment.offsets[a.name]
        for b in by_first[k + 1 :]:
            if b.first > a.last:
                break
            b_start = assignment.offsets[b.name]
            if a_start < b_start + b.size and b_start < a_start + a.size:
                raise InternalError(
                    f"{source}: buffers {_describe(a, a_start)} and {_describe(b, b_start)} "
                    f"are both live at step {max(a.first, b.first)} and overlap in bytes"
                )
