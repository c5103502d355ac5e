"""Give randomly initialized networks the weights statistics of trained ones.

A trained network's convolutions carry a folded batch norm: each output channel is scaled and
shifted so that, over the training data, it has mean ``beta`` and standard deviation ``gamma``.
Random He-initialized weights without it drift layer by layer (activations explode, vanish or
saturate ReLU6). Folding measured statistics fixes that: layer by layer, the raw output of every
convolution and dense layer is measured on a batch of seeded inputs, and the layer's weights and
bias are rescaled exactly as folding a batch norm with those statistics would.

A classifier needs more than scale. Global pooling leaves features whose variation between inputs
is small beside their common part, and a random dense layer on them picks the same class for every
input, or, once quantized, a class decided by rounding noise. A trained classifier reads the
directions in which features really vary; here each class's weights are a random mixture of the
batch's centred features, so they lie in those directions, and each class's logit is folded like
a batch norm to mean 0 and spread ``LOGIT_STD`` over the batch, so that no class is favoured.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from memfit.errors import InternalError
from memfit.ir.core import Graph, Op
from memfit.runtime.kernels import run_kernel
from memfit.runtime.kernels.common import apply_activation_float
from memfit.zoo.layers import OUTPUT_CHANNEL_AXIS

LOGIT_STD = 3.0
"""Spread of a classifier's logits over inputs: confident but not one-hot predictions."""


def _is_classifier(op: Op) -> bool:
    return op.kind == "fully_connected" and any(c.kind == "softmax" for c in op.output.consumers)


def _batch_norm_fold(
    raw: np.ndarray, gamma: np.ndarray, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel scale and shift that give ``raw`` mean ``beta`` and spread ``gamma``."""
    flat = raw.reshape(-1, raw.shape[-1]).astype(np.float64)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    # A dead channel stays dead rather than dividing by 0.
    scale = gamma / np.where(std > 0, std, 1.0)
    return scale, beta - mean * scale


def _readout(features: np.ndarray, classes: int, rng: np.random.Generator) -> np.ndarray:
    """Classifier weights [classes, K] that read how ``features`` [batch, K] vary."""
    x = features.reshape(features.shape[0], -1).astype(np.float64)
    return rng.standard_normal((classes, x.shape[0])) @ (x - x.mean(axis=0))


def fold_batch_statistics(
    graph: Graph, inputs: Mapping[str, np.ndarray], rng: np.random.Generator
) -> None:
    """Set every layer's weights and bias (in place) from statistics on the batch ``inputs``.

    ``graph`` is built for the batch (statistics are taken over batch and spatial positions).
    Each layer is measured after the layers before it have been set, as in the trained network.
    """
    values: dict[str, np.ndarray] = dict(inputs)
    for op in graph.ops:
        args = [
            None if t is None else (t.data if t.is_constant else values[t.name]) for t in op.inputs
        ]
        if op.kind not in OUTPUT_CHANNEL_AXIS:
            results = run_kernel(op, args)
            values.update((t.name, v) for t, v in zip(op.outputs, results, strict=True))
            continue
        weights, bias = op.inputs[1], op.inputs[2]
        if weights is None or bias is None or weights.data is None or bias.data is None:
            raise InternalError(f"zoo layer {op.name} needs constant weights and a bias")
        channels = weights.data.shape[OUTPUT_CHANNEL_AXIS[op.kind]]
        if _is_classifier(op):
            # Every class equally likely: logits centred, with the same spread.
            weights.data = _readout(args[0], channels, rng).astype(np.float32)  # type: ignore[arg-type]
            gamma, beta = np.full(channels, LOGIT_STD), np.zeros(channels)
        else:
            gamma = rng.uniform(0.5, 1.5, size=(channels,))
            beta = rng.normal(0.0, 0.25, size=(channels,))
        linear = Op(op.kind, op.name, op.inputs, op.outputs, {**op.attrs, "activation": "none"})
        (raw,) = run_kernel(linear, [args[0], weights.data, None])
        scale, shift = _batch_norm_fold(raw, gamma, beta)
        shape = [1] * weights.data.ndim
        shape[OUTPUT_CHANNEL_AXIS[op.kind]] = -1
        weights.data = (weights.data * scale.reshape(shape)).astype(np.float32)
        bias.data = shift.astype(np.float32)
        folded = (raw * scale + shift).astype(np.float32)
        values[op.output.name] = apply_activation_float(folded, op.attrs.get("activation", "none"))


def copy_constants(source: Graph, target: Graph) -> None:
    """Give ``target`` the constant data of the same-named constants of ``source``."""
    for tensor in target.constants():
        data = source.tensors[tensor.name].data
        if data is None or data.shape != tensor.shape:
            raise InternalError(f"constant {tensor.name} differs between the two builds")
        tensor.data = data
