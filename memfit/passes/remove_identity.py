"""Drop ops that compute nothing at inference: identity and dropout."""

from __future__ import annotations

from memfit.ir.core import Graph
from memfit.passes.manager import PassResult, register_pass

_NO_OPS = ("identity", "dropout")


@register_pass("remove-identity")
def remove_identity(graph: Graph) -> PassResult:
    removed = 0
    for op in list(graph.ops):
        if op.kind not in _NO_OPS:
            continue
        source, result = op.inputs[0], op.output
        assert source is not None
        if result in graph.outputs and (source in graph.inputs or source in graph.outputs):
            continue  # keep a graph input wired straight to an output distinct
        graph.remove_op(op)
        graph.replace_all_uses(result, source)
        removed += 1
    if removed:
        graph.prune()
    return PassResult(graph, removed > 0)
