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
from memfit.ir.core import Graph, Op


class TilingError(MemfitError):
    """A chain cannot be tiled as asked: the ops do not form a chain, an op cannot be split by
    the method, or the grid is too fine for the maps. Path discovery catches it and moves on to
    the next candidate."""


def describe(op: Op, graph: Graph) -> str:
    """``op 'name' (kind, op i of n in graph 'g')``: where an op is, for error messages."""
    position = next((i for i, o in enumerate(graph.ops) if o is op), None)
    where = f"op {position + 1} of {len(graph.ops)}" if position is not None else "not in the graph"
    return f"op {op.name!r} ({op.kind}, {where} in graph {graph.name!r})"


def resolve_chain(graph: Graph, names: Sequence[str]) -> tuple[Op, ...]:
    """The ops named ``names``, checked to form a chain in that order; raise TilingError if not."""
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
