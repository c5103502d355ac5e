"""Fold ``batch_norm`` into the convolution or dense layer that feeds it.

``conv(x) -> batch_norm`` becomes one ``conv2d`` (or ``depthwise_conv2d``/``fully_connected``)
whose weights and bias carry the normalization: per output channel, ``inv = scale /
sqrt(var + epsilon)`` multiplies the weights and ``(bias - mean) * inv + beta`` is the new bias.
A batch norm whose input comes from anything else (a concat, a pool, a graph input), or whose
producer has other readers or a fused activation, stays as it is.
"""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Graph, Op
from memfit.ir.dtypes import DType
from memfit.passes.manager import PassResult, register_pass
from memfit.passes.rewrite import absorb_channel_affine, sole_reader

_LINEAR = ("conv2d", "depthwise_conv2d", "fully_connected")


def batch_norm_affine(op: Op) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, shift) with ``batch_norm(x) == x * scale + shift`` (float64)."""
    gamma, beta, mean, var = (t.data.astype(np.float64) for t in op.inputs[1:5])  # type: ignore[union-attr]
    inv = gamma / np.sqrt(var + op.attrs["epsilon"])
    return inv, beta - mean * inv


def _host(graph: Graph, bn: Op) -> Op | None:
    x = bn.inputs[0]
    if x is None or x.dtype is not DType.FLOAT32:
        return None
    if not all(t is not None and t.is_constant for t in bn.inputs[1:5]):
        return None
    host = x.producer
    if host is None or host.kind not in _LINEAR or sole_reader(graph, x) is not bn:
        return None
    if host.attrs.get("activation", "none") != "none" or not host.inputs[1].is_constant:  # type: ignore[union-attr]
        return None
    bias = host.input(2)
    return host if bias is None or bias.is_constant else None


@register_pass("fold-batch-norm")
def fold_batch_norm(graph: Graph) -> PassResult:
    folded = 0
    for bn in [op for op in graph.ops if op.kind == "batch_norm"]:
        host = _host(graph, bn)
        if host is None:
            continue
        scale, shift = batch_norm_affine(bn)
        absorb_channel_affine(graph, bn, host, scale, shift)
        folded += 1
    if folded:
        graph.prune()
    return PassResult(graph, folded > 0)
