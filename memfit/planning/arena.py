"""Where every activation lives in the one arena."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from memfit.ir.core import Graph


def align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class Placement:
    """A tensor's bytes: ``offset`` into the arena and, for a strided view, byte ``strides``."""

    offset: int
    strides: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ArenaPlan:
    """Offsets of every activation tensor (by name) in one arena of ``size`` bytes, and of
    the temporary of every op that runs in place through one (``temporaries``, by op name:
    the executor runs a pointwise convolution in place block by block through it)."""

    placements: Mapping[str, Placement]
    size: int
    alignment: int = 16
    notes: Mapping[str, str] = field(default_factory=dict)
    temporaries: Mapping[str, int] = field(default_factory=dict)

    def offset(self, name: str) -> int:
        return self.placements[name].offset


def separate_plan(graph: Graph, alignment: int = 16) -> ArenaPlan:
    """The trivial plan: every activation gets a range of its own, nothing is shared."""
    placements: dict[str, Placement] = {}
    cursor = 0
    for t in graph.activations():
        placements[t.name] = Placement(cursor)
        cursor = align_up(cursor + t.nbytes, alignment)
    return ArenaPlan(placements, cursor, alignment)
