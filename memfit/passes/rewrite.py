"""Graph edits shared by the rewrite passes (not a pass itself).

Rewrites keep the name of the tensor that survives at the end of a fused chain: when ``conv ->
relu`` becomes one op, the op writes the relu's output tensor, so graph outputs and the names a
user sees do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from memfit.errors import InternalError
from memfit.ir.core import Graph, Op, Tensor

AFFINE_HOSTS = ("conv2d", "depthwise_conv2d", "fully_connected", "batch_norm")
"""Ops whose per-output-channel scale and shift can absorb a following channel affine."""


def replace_op(
    graph: Graph,
    op: Op,
    *,
    kind: str | None = None,
    inputs: Sequence[Tensor | None] | None = None,
    outputs: Sequence[Tensor] | None = None,
    attrs: dict[str, Any] | None = None,
) -> Op:
    """Swap ``op`` for a changed copy at the same position and with the same name.

    Every tensor in ``outputs`` must have no producer once ``op`` is removed.
    """
    index = graph.ops.index(op)
    graph.remove_op(op)
    return graph.add_op(
        kind or op.kind,
        op.inputs if inputs is None else inputs,
        op.outputs if outputs is None else outputs,
        dict(op.attrs if attrs is None else attrs),
        name=op.name,
        index=index,
    )


def sole_reader(graph: Graph, tensor: Tensor) -> Op | None:
    """The only op reading ``tensor``, if it has exactly one and is not a graph output."""
    if len(tensor.consumers) != 1 or tensor in graph.outputs:
        return None
    return tensor.consumers[0]


def fuse_into_producer(graph: Graph, later: Op, producer: Op, **changes: Any) -> Op:
    """Drop ``later`` and let ``producer`` (changed by ``changes``) write ``later``'s output."""
    graph.remove_op(later)
    return replace_op(graph, producer, outputs=[later.output], **changes)


def bypass(graph: Graph, op: Op) -> bool:
    """Remove an op that passes its first input through unchanged; False if it must stay.

    A graph output keeps its name: the input's producer then writes the output tensor.
    """
    source, result = op.inputs[0], op.output
    if source is None:
        raise InternalError(f"op {op.name} has no input to pass through")
    if result not in graph.outputs:
        graph.remove_op(op)
        graph.replace_all_uses(result, source)
        return True
    producer = source.producer
    if producer is None or sole_reader(graph, source) is not op or len(producer.outputs) != 1:
        return False
    fuse_into_producer(graph, op, producer)
    return True


def absorb_channel_affine(
    graph: Graph, later: Op, host: Op, scale: np.ndarray, shift: np.ndarray
) -> Op:
    """Fold ``y = host(x) * scale + shift`` (per output channel, the last axis) into ``host``.

    ``later`` is the op computing the affine; it is removed and ``host`` writes its output.
    ``scale`` and ``shift`` have one entry per output channel (float64 for accuracy). Constants
    are replaced, never changed in place (they may be shared).
    """
    scale = np.asarray(scale, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)
    inputs = list(host.inputs)
    if host.kind == "batch_norm":
        # x * s * inv + ((bias - mean * inv) * s + t): scale the BN's scale and bias.
        gamma, beta = inputs[1], inputs[2]
        assert gamma is not None and gamma.data is not None
        assert beta is not None and beta.data is not None
        inputs[1] = with_data(graph, host, gamma, gamma.data * scale)
        inputs[2] = with_data(graph, host, beta, beta.data * scale + shift)
        return fuse_into_producer(graph, later, host, inputs=inputs)
    weights, bias = inputs[1], inputs[2] if len(inputs) > 2 else None
    assert weights is not None and weights.data is not None
    w = weights.data.astype(np.float64)
    if host.kind == "depthwise_conv2d":
        w = w * scale  # [1, KH, KW, C*M]: channels last
    else:
        w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))  # [O, ...]
    inputs[1] = with_data(graph, host, weights, w)
    if bias is None:
        new_bias = (shift * np.ones_like(scale)).astype(np.float32)
        inputs = [*inputs[:2], graph.add_constant(f"{host.name}_bias", new_bias)]
    else:
        assert bias.data is not None
        inputs[2] = with_data(graph, host, bias, bias.data.astype(np.float64) * scale + shift)
    return fuse_into_producer(graph, later, host, inputs=inputs)


def with_data(graph: Graph, reader: Op, old: Tensor, data: np.ndarray) -> Tensor:
    """A constant like ``old`` holding ``data`` (cast to its dtype) for ``reader`` to read.

    The tensor itself gets the new array when ``reader`` is its only reader; a shared constant
    is left alone and a new one is added. Arrays are never written in place (graph copies share
    them).
    """
    data = np.ascontiguousarray(data, dtype=old.dtype.numpy)
    if old.consumers == (reader,) and old not in graph.outputs and data.shape == old.shape:
        old.data = data
        return old
    return graph.add_constant(old.name, data, old.quant)
