"""Chains of ops that a fused tiling rewrite may replace, and the error for chains it may not.

A chain is a run of single-output ops linked by one activation each: every op after the first
reads the previous op's output as its only non-constant input, and every output but the last is
read by the next op alone and is not a graph output. Executing such a chain partition by
partition is then invisible to the rest of the graph: only the chain's input and its last output
are shared with other ops. Which op kinds may be inside is up to each tiling method.
"""

from __future__ import annotations

from collections.abc import Sequence

from memfit.errors import MemfitError
from memfit.ir.core import Graph, Op, Tensor


class TilingError(MemfitError):
    """A chain cannot be tiled as asked: the ops do not form a chain, an op cannot be split by
    the method, or the grid is too fine for the maps. Path discovery catches it and moves on to
    the next candidate."""


def describe(op: Op, graph: Graph) -> str:
    """``op 'name' (kind, op i of n in graph 'g')``: where an op is, for error messages."""
    position = next((i for i, o in enumerate(graph.ops) if o is op), None)
    where = f"op {position + 1} of {len(graph.ops)}" if position is not None else "not in the graph"
    return f"op {op.name!r} ({op.kind}, {where} in graph {graph.name!r})"


def _named_ops(graph: Graph, names: Sequence[str]) -> tuple[Op, ...]:
    """The ops of ``graph`` named ``names``, in that order; raise TilingError if a name is
    missing, repeated or none is given."""
    if not names:
        raise TilingError("an empty chain cannot be tiled; name at least one op")
    if len(set(names)) != len(names):
        raise TilingError(f"the chain {list(names)} names an op twice")
    by_name = {op.name: op for op in graph.ops}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise TilingError(
            f"op(s) {', '.join(map(repr, missing))} are not in graph {graph.name!r}; the chain "
            "must name ops of the graph as it is now (after earlier rewrites)"
        )
    ops = tuple(by_name[name] for name in names)
    return ops


def resolve_chain(graph: Graph, names: Sequence[str]) -> tuple[Op, ...]:
    """The ops named ``names``, checked to form a chain in that order; raise TilingError if not."""
    ops = _named_ops(graph, names)
    graph_outputs = {t.name for t in graph.outputs}
    for i, op in enumerate(ops):
        if len(op.outputs) != 1:
            raise TilingError(
                f"{describe(op, graph)} has {len(op.outputs)} outputs; chain ops have one"
            )
        activations = op.activation_inputs
        if len(activations) != 1:
            raise TilingError(
                f"{describe(op, graph)} reads {len(activations)} activations "
                f"({', '.join(t.name for t in activations) or 'none'}); a chain op reads one, "
                "so the chain must end before it"
            )
        if i == 0:
            continue
        previous = ops[i - 1]
        if activations[0] is not previous.output:
            raise TilingError(
                f"{describe(op, graph)} reads {activations[0].name}, not the output "
                f"{previous.output.name} of the op before it in the chain, {previous.name!r}"
            )
        others = [c.name for c in previous.output.consumers if c is not op]
        if others or previous.output.name in graph_outputs:
            readers = ", ".join(others) if others else "the graph outputs"
            raise TilingError(
                f"{previous.output.name}, the output of {describe(previous, graph)} inside the "
                f"chain, is also read by {readers}; end the chain at {previous.name!r}"
            )
    return ops


def resolve_region(graph: Graph, names: Sequence[str]) -> tuple[tuple[Op, ...], Tensor]:
    """The ops named ``names`` and the one tensor they read from outside, checked to form a
    region with one entry and one exit; raise TilingError if not.

    A region generalizes a chain to branches that split and join again (a residual block, an
    inception module): its ops read one activation from outside (the region input) and each
    other's outputs; ``names`` lists them so that every op comes after the ops whose outputs it
    reads, and the last op's output is the only one read outside the region. Every other output
    is read inside the region only, and is not a graph output. A chain is a region.
    """
    ops = _named_ops(graph, names)
    return ops, region_input(graph, ops)


def region_input(graph: Graph, ops: Sequence[Op]) -> Tensor:
    """The one activation the region ``ops`` (in run order) reads from outside; raise
    TilingError if they do not form a region (see ``resolve_region``)."""
    graph_outputs = {t.name for t in graph.outputs}
    inside = {op.name for op in ops}
    produced: set[str] = set()
    entry: Tensor | None = None
    for op in ops:
        if len(op.outputs) != 1:
            raise TilingError(
                f"{describe(op, graph)} has {len(op.outputs)} outputs; chain ops have one"
            )
        if not op.activation_inputs:
            raise TilingError(f"{describe(op, graph)} reads no activation; it cannot be tiled")
        for x in op.activation_inputs:
            if x.name in produced:
                continue
            if x.producer is not None and x.producer.name in inside:
                raise TilingError(
                    f"{describe(op, graph)} reads {x.name} before the chain computes it; list "
                    "the ops in the order they run"
                )
            if entry is not None and x is not entry:
                raise TilingError(
                    f"the chain reads two activations from outside, {entry.name} and {x.name} "
                    f"(by {op.name!r}); a tiled chain or region has one input"
                )
            entry = x
        produced.add(op.output.name)
    assert entry is not None
    for op in ops[:-1]:
        out = op.output
        others = [c.name for c in out.consumers if c.name not in inside]
        if others or out.name in graph_outputs:
            readers = ", ".join(others) if others else "the graph outputs"
            raise TilingError(
                f"{out.name}, the output of {describe(op, graph)} inside the chain, is also "
                f"read by {readers}; end the chain at {op.name!r} or take its readers in"
            )
        if not out.consumers:
            raise TilingError(f"{out.name}, the output of {describe(op, graph)}, is read by none")
    return entry
