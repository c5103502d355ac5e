"""Evaluate ops whose inputs are all constant, and SHAPE of any tensor (shapes are static).

This removes converter leftovers such as SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chains and
ONNX weights computed in-graph (ConstantOfShape and friends).
"""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Graph, Op
from memfit.passes.manager import PassResult, register_pass
from memfit.runtime.kernels import find_kernel, run_kernel


def _foldable(op: Op, graph: Graph) -> bool:
    if any(t.name in {o.name for o in graph.outputs} for t in op.outputs):
        return False
    if op.kind == "shape":
        return True
    inputs = [t for t in op.inputs if t is not None]
    return bool(inputs) and all(t.is_constant for t in inputs) and find_kernel(op) is not None


@register_pass("fold-constants")
def fold_constants(graph: Graph) -> PassResult:
    folded = 0
    for op in list(graph.ops):
        if not _foldable(op, graph):
            continue
        if op.kind == "shape":
            values: tuple[np.ndarray, ...] = (
                np.asarray(op.inputs[0].shape, dtype=op.output.dtype.numpy),  # type: ignore[union-attr]
            )
        else:
            values = run_kernel(op, [None if t is None else t.data for t in op.inputs])
        graph.remove_op(op)
        for tensor, value in zip(op.outputs, values, strict=True):
            tensor.data = np.ascontiguousarray(value).reshape(tensor.shape)
        folded += 1
    if folded:
        graph.prune()
    return PassResult(graph, folded > 0)


@register_pass("prune")
def prune(graph: Graph) -> PassResult:
    return PassResult(graph, graph.prune() > 0)
