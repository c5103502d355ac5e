"""Drop ops that compute nothing at inference: identity and dropout.

A graph output keeps its name: when the op writes one, the op before it writes that tensor
instead (an identity between a graph input and an output, or after a value that has other
readers, stays).
"""

from __future__ import annotations

from memfit.ir.core import Graph
from memfit.passes.manager import PassResult, register_pass
from memfit.passes.rewrite import bypass

_NO_OPS = ("identity", "dropout")


@register_pass("remove-identity")
def remove_identity(graph: Graph) -> PassResult:
    removed = sum(bypass(graph, op) for op in list(graph.ops) if op.kind in _NO_OPS)
    if removed:
        graph.prune()
    return PassResult(graph, removed > 0)
