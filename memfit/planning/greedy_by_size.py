"""Greedy by size: TensorFlow Lite Micro's GreedyMemoryPlanner, the baseline to beat.

Buffers are placed largest first (aligned sizes), each at the lowest offset that fits in the
gaps left by the already placed buffers live at a common step. Among equal sizes the buffer
given last goes first: TFLite Micro fills its sort array from the back and sorts it stably, and
it is given the tensors in index order, then the scratch buffers. With buffers in tensor order
(``Lifetimes.buffers``) this reproduces its arena size exactly; e.g. the MLPerf Tiny visual
wake words int8 model needs 73,728 bytes this way and 64,512 with the ties the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

from memfit.planning.assignment import Assignment, FirstFit
from memfit.planning.lifetimes import Buffer

NAME = "greedy-by-size"


def size_order(packer: FirstFit) -> list[int]:
    """Buffer indices by aligned size, largest first; among ties the last given first."""
    return sorted(reversed(range(len(packer.sizes))), key=lambda i: -packer.sizes[i])


def greedy_by_size(buffers: Sequence[Buffer], alignment: int = 16) -> Assignment:
    """Place buffers largest first, each in the lowest gap that fits."""
    packer = FirstFit(buffers, alignment)
    return packer.assignment(size_order(packer), NAME)
