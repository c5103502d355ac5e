"""Which tensors share bytes: every activation maps to a storage root and a byte offset in it.

The planner places storage roots only; a tensor that is not its own root lives at its root's
offset plus its own byte offset. One rule makes aliases today: a reshape's output is a view of
its input (the reshape kernel moves no data, it only renames the shape).

When may a view share bytes with the tensor it views? Exactly when nothing overwrites the shared
bytes while one of the two still has a reader to come: the input dies at the reshape, or both are
read-only from then on. In the current IR every tensor is written once, by its producer, before
anything reads it, and never again, so the second clause always holds and every reshape of an
activation can be a view. A later rewrite that lets an op write over an input in place
(elementwise in place, concat in place) breaks write-once and must keep the condition: an op may
overwrite a root only when the root's lifetime, which already spans every alias of the root
(see ``memfit.planning.lifetimes``), ends at that op. Concat in place will add members at a
nonzero byte offset inside the concat output's root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from memfit.errors import InternalError
from memfit.ir.core import Graph


@dataclass(frozen=True)
class StorageRef:
    """Where a tensor's bytes are: ``offset`` bytes into the storage of tensor ``root``."""

    root: str
    offset: int = 0


@dataclass(frozen=True)
class StorageMap:
    """Every activation tensor name -> its storage root and byte offset in that root."""

    refs: Mapping[str, StorageRef]

    def root(self, name: str) -> str:
        return self.refs[name].root

    def offset(self, name: str) -> int:
        return self.refs[name].offset

    def roots(self) -> tuple[str, ...]:
        """Root names in the order their tensors appear in the map."""
        return tuple(name for name, ref in self.refs.items() if ref.root == name)

    def members(self) -> dict[str, tuple[str, ...]]:
        """Root name -> every tensor stored in it (the root itself first)."""
        groups: dict[str, list[str]] = {root: [] for root in self.roots()}
        for name, ref in self.refs.items():
            groups[ref.root].append(name)
        return {root: tuple(names) for root, names in groups.items()}


def build_storage(graph: Graph, *, reshape_views: bool = True) -> StorageMap:
    """The storage map of ``graph``; with ``reshape_views`` off, every tensor is its own root.

    A reshape's output becomes a view when its input is an activation of the same byte size
    (a reshape of a constant writes a fresh activation; the arena holds no constants). Chains of
    reshapes resolve to the first tensor of the chain.
    """
    refs: dict[str, StorageRef] = {}
    for tensor in graph.activations():
        refs[tensor.name] = StorageRef(tensor.name)
        op = tensor.producer
        if not reshape_views or op is None or op.kind != "reshape":
            continue
        source = op.inputs[0]
        if source is None or source.is_constant or source.nbytes != tensor.nbytes:
            continue
        if source.name not in refs:
            raise InternalError(f"reshape {op.name} reads {source.name} before any op writes it")
        refs[tensor.name] = refs[source.name]
    return StorageMap(refs)
