"""Fold elementwise ops with per-channel constants into the op that feeds them.

``mul``/``div`` by, and ``add``/``sub`` of, a constant that varies only along the channel
(last) axis is a per-channel affine ``y = x * s + t``. When ``x`` comes from a convolution, a
dense layer or a batch norm (with no fused activation and no other reader), the affine is folded
into its weights and bias (or the batch norm's scale and bias). ONNX models exported from Caffe2
(DenseNet-121, Inception v2) follow every BatchNormalization with such a Mul and Add.
"""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.dtypes import DType
from memfit.passes.manager import PassResult, register_pass
from memfit.passes.rewrite import AFFINE_HOSTS, absorb_channel_affine, sole_reader


def _per_channel(constant: Tensor, x: Tensor) -> np.ndarray | None:
    """The constant as one value per channel of ``x``, if it broadcasts only along channels."""
    data = constant.data
    assert data is not None
    channels = x.shape[-1]
    if data.ndim > len(x.shape) or any(d != 1 for d in data.shape[:-1]):
        return None
    if data.ndim and data.shape[-1] not in (1, channels):
        return None
    return np.broadcast_to(data.astype(np.float64).reshape(-1), (channels,))


def _channel_affine(op: Op, x: Tensor, constant: Tensor) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, shift) such that ``op`` computes ``x * scale + shift``, or None."""
    c = _per_channel(constant, x)
    if c is None:
        return None
    x_first = op.inputs[0] is x
    zeros, ones = np.zeros_like(c), np.ones_like(c)
    if op.kind == "mul":
        return c, zeros
    if op.kind == "add":
        return ones, c
    if op.kind == "sub":
        return (ones, -c) if x_first else (-ones, c)
    if op.kind == "div" and x_first and np.all(c != 0):
        return 1.0 / c, zeros
    return None


def _match(graph: Graph, op: Op) -> tuple[Op, np.ndarray, np.ndarray] | None:
    if op.kind not in ("mul", "add", "sub", "div") or op.attrs.get("activation", "none") != "none":
        return None
    a, b = op.inputs
    if a is None or b is None or a.is_constant == b.is_constant:
        return None
    x, constant = (b, a) if a.is_constant else (a, b)
    if x.dtype is not DType.FLOAT32 or op.output.shape != x.shape:
        return None
    host = x.producer
    if host is None or host.kind not in AFFINE_HOSTS or sole_reader(graph, x) is not op:
        return None
    if host.attrs.get("activation", "none") != "none":
        return None
    if not all(t is None or t.is_constant for t in host.inputs[1:]):
        return None
    affine = _channel_affine(op, x, constant)
    return None if affine is None else (host, *affine)


@register_pass("fold-channel-affine")
def fold_channel_affine(graph: Graph) -> PassResult:
    folded = 0
    for op in list(graph.ops):
        match = _match(graph, op)
        if match is None:
            continue
        host, scale, shift = match
        absorb_channel_affine(graph, op, host, scale, shift)
        folded += 1
    if folded:
        graph.prune()
    return PassResult(graph, folded > 0)
