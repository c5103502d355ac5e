"""The result every offset-assignment algorithm returns, and the first-fit placement they share.

All algorithms have one signature, ``(buffers, alignment) -> Assignment``: buffers are packed
with their sizes rounded up to ``alignment``, so every offset and the arena size are multiples
of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from memfit.planning.lifetimes import Buffer, aligned_size


@dataclass(frozen=True)
class Assignment:
    """Byte offset of every buffer (by name) in an arena of ``size`` bytes.

    ``optimal`` is True when ``size`` is proven minimal for these buffers and this op order
    (it equals the lower bound, or the exact solver proved it).
    """

    offsets: Mapping[str, int]
    size: int
    algorithm: str
    optimal: bool = False


class FirstFit:
    """Places buffers one at a time, each at the lowest offset clear of every buffer already
    placed that is live at a common step (TFLite Micro's gap search).

    Built once per buffer list so that callers trying many placement orders (hill climbing)
    pay for the time-overlap lists only once.
    """

    def __init__(self, buffers: Sequence[Buffer], alignment: int) -> None:
        self.buffers = tuple(buffers)
        self.sizes = [aligned_size(b, alignment) for b in self.buffers]
        by_first = sorted(range(len(self.buffers)), key=lambda i: self.buffers[i].first)
        self.conflicts: list[list[int]] = [[] for _ in self.buffers]
        for k, i in enumerate(by_first):
            bi = self.buffers[i]
            for j in by_first[k + 1 :]:
                if self.buffers[j].first > bi.last:
                    break
                self.conflicts[i].append(j)
                self.conflicts[j].append(i)

    def place(self, placement_order: Sequence[int]) -> tuple[list[int], int]:
        """Offsets (indexed like ``buffers``) and arena size for one placement order."""
        offsets = [-1] * len(self.buffers)
        arena = 0
        for i in placement_order:
            size = self.sizes[i]
            taken = sorted(
                (offsets[j], offsets[j] + self.sizes[j])
                for j in self.conflicts[i]
                if offsets[j] >= 0
            )
            candidate = 0
            for start, end in taken:
                if start - candidate >= size:
                    break
                candidate = max(candidate, end)
            offsets[i] = candidate
            arena = max(arena, candidate + size)
        return offsets, arena

    def assignment(self, placement_order: Sequence[int], algorithm: str) -> Assignment:
        offsets, size = self.place(placement_order)
        names = {b.name: offset for b, offset in zip(self.buffers, offsets, strict=True)}
        return Assignment(names, size, algorithm)
