"""Buffer lifetimes of a graph under one op order, and their lower bound.

Steps are positions in the op order. A tensor is live from the step that writes it to the last
step that reads it, both inclusive: an op's inputs and outputs are live together at its step.
Graph inputs are live from step 0, graph outputs to the last step. The buffers to place are the
storage roots of ``memfit.planning.storage`` (a root is live from the first step that writes
any tensor stored in it to the last step that reads any of them) and one scratch buffer per op
that needs workspace, live at that op's step only: the kernel's scratch, plus the temporary an
op needs when the storage map runs it in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from memfit.errors import InternalError
from memfit.ir.core import Graph, Op
from memfit.planning.arena import align_up
from memfit.planning.scratch import ScratchFunction, in_place_scratch_bytes, scratch_bytes
from memfit.planning.storage import StorageMap, build_storage


@dataclass(frozen=True)
class Buffer:
    """``size`` bytes live from step ``first`` to step ``last`` inclusive."""

    name: str
    size: int
    first: int
    last: int

    def __post_init__(self) -> None:
        if self.size < 0 or self.first < 0 or self.last < self.first:
            raise InternalError(f"malformed buffer {self}")

    def overlaps(self, other: Buffer) -> bool:
        """True when the two buffers are live at a common step."""
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Lifetimes:
    """The buffers one op order needs.

    ``buffers`` holds the storage roots in the order of ``graph.tensors`` (the file's tensor
    order, which TFLite Micro's planner breaks ties with) and then the scratch buffers in step
    order; ``scratch`` maps an op name to its scratch buffer's name.
    """

    order: tuple[str, ...]
    buffers: tuple[Buffer, ...]
    storage: StorageMap
    scratch: Mapping[str, str]

    @property
    def steps(self) -> int:
        return len(self.order)

    def buffer(self, name: str) -> Buffer:
        for buffer in self.buffers:
            if buffer.name == name:
                return buffer
        raise KeyError(name)

    def live_at(self, step: int) -> tuple[Buffer, ...]:
        return tuple(b for b in self.buffers if b.first <= step <= b.last)


def model_order(graph: Graph) -> tuple[str, ...]:
    """The op names in the graph's own order."""
    return tuple(op.name for op in graph.ops)


def compute_lifetimes(
    graph: Graph,
    order: Sequence[str] | None = None,
    *,
    storage: StorageMap | None = None,
    scratch: ScratchFunction = scratch_bytes,
) -> Lifetimes:
    """Lifetimes of every storage root and scratch buffer when ops run in ``order``.

    ``order`` is a sequence of op names, a topological order of the graph (default: the model
    order); ``storage`` defaults to ``build_storage(graph)``.
    """
    order = model_order(graph) if order is None else tuple(order)
    storage = build_storage(graph) if storage is None else storage
    ops = {op.name: op for op in graph.ops}
    if sorted(order) != sorted(ops):
        raise InternalError(f"op order {list(order)} is not a permutation of the graph's ops")

    end = max(len(order) - 1, 0)
    first: dict[str, int] = {t.name: 0 for t in graph.inputs}
    last: dict[str, int] = {t.name: 0 for t in graph.inputs}
    scratch_buffers: list[Buffer] = []
    scratch_names: dict[str, str] = {}
    for step, op_name in enumerate(order):
        op = ops[op_name]
        for t in op.activation_inputs:
            if t.name not in first:
                raise InternalError(
                    f"op {op.name} at step {step} reads {t.name} before any op writes it: "
                    "the op order is not topological"
                )
            last[t.name] = step
        for t in op.outputs:
            if t.name in first:
                raise InternalError(f"tensor {t.name} is written twice (again by op {op.name})")
            first[t.name] = last[t.name] = step
        workspace = workspace_bytes(op, storage, scratch)
        if workspace > 0:
            name = _scratch_name(op.name, storage)
            scratch_names[op.name] = name
            scratch_buffers.append(Buffer(name, workspace, step, step))
    for t in graph.outputs:
        if not t.is_constant:
            last[t.name] = end

    roots: list[Buffer] = []
    position = {name: i for i, name in enumerate(graph.tensors)}
    for root, members in sorted(storage.members().items(), key=lambda item: position[item[0]]):
        if any(name not in first for name in members):
            missing = [name for name in members if name not in first]
            raise InternalError(f"tensors {missing} are neither graph inputs nor written by an op")
        roots.append(
            Buffer(
                root,
                graph.tensors[root].nbytes,
                min(first[name] for name in members),
                max(last[name] for name in members),
            )
        )
    return Lifetimes(order, tuple(roots) + tuple(scratch_buffers), storage, scratch_names)


def workspace_bytes(op: Op, storage: StorageMap, scratch: ScratchFunction) -> int:
    """Scratch bytes ``op`` needs at its step: ``scratch(op)``, plus its in-place temporary when
    ``storage`` runs it in place."""
    extra = in_place_scratch_bytes(op) if op.name in storage.in_place else 0
    return scratch(op) + extra


def _scratch_name(op_name: str, storage: StorageMap) -> str:
    name = f"scratch:{op_name}"
    while name in storage.refs:
        name += "'"
    return name


def aligned_size(buffer: Buffer, alignment: int) -> int:
    return align_up(buffer.size, alignment)


def lower_bound(lifetimes: Lifetimes | Iterable[Buffer], alignment: int = 16) -> int:
    """The largest sum of aligned buffer sizes live at one step: no arena can be smaller."""
    buffers = lifetimes.buffers if isinstance(lifetimes, Lifetimes) else tuple(lifetimes)
    if not buffers:
        return 0
    delta = [0] * (max(b.last for b in buffers) + 2)
    for b in buffers:
        size = aligned_size(b, alignment)
        delta[b.first] += size
        delta[b.last + 1] -= size
    peak = live = 0
    for change in delta:
        live += change
        peak = max(peak, live)
    return peak
