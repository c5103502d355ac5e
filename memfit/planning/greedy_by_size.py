"""Greedy by size: TensorFlow Lite Micro's GreedyMemoryPlanner, the baseline to beat.

Buffers are placed largest first (aligned sizes; a stable sort, so equal sizes keep the order
the buffers are given in, as TFLite Micro keeps the order it was given its buffers), each at the
lowest offset that fits in the gaps left by the already placed buffers live at a common step.
"""

from __future__ import annotations

from collections.abc import Sequence

from memfit.planning.assignment import Assignment, FirstFit
from memfit.planning.lifetimes import Buffer

NAME = "greedy-by-size"


def size_order(packer: FirstFit) -> list[int]:
    """Buffer indices by aligned size, largest first; ties keep the given order."""
    return sorted(range(len(packer.sizes)), key=lambda i: -packer.sizes[i])


def greedy_by_size(buffers: Sequence[Buffer], alignment: int = 16) -> Assignment:
    """Place buffers largest first, each in the lowest gap that fits."""
    packer = FirstFit(buffers, alignment)
    return packer.assignment(size_order(packer), NAME)
