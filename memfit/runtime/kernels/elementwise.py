"""Elementwise, activation and normalization kernels (float)."""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Op
from memfit.runtime.kernels import register
from memfit.runtime.kernels.common import apply_activation_float

_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


@register(*_BINARY)
def binary(op: Op, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = _BINARY[op.kind](a, b)
    if op.output.dtype.value == "float32":
        out = apply_activation_float(out.astype(np.float32), op.attrs.get("activation", "none"))
    return out.astype(op.output.dtype.numpy)


@register("relu", "relu6", "relu_n1_to_1")
def relu(op: Op, x: np.ndarray) -> np.ndarray:
    return apply_activation_float(x, op.kind)


@register("logistic")
def logistic(op: Op, x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


@register("tanh")
def tanh(op: Op, x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


@register("hard_swish")
def hard_swish(op: Op, x: np.ndarray) -> np.ndarray:
    return (x * np.clip(x + 3.0, 0.0, 6.0) / 6.0).astype(np.float32)


@register("leaky_relu")
def leaky_relu(op: Op, x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, x * np.float32(op.attrs["alpha"])).astype(np.float32)


@register("clamp")
def clamp(op: Op, x: np.ndarray) -> np.ndarray:
    return np.clip(x, op.attrs["min"], op.attrs["max"]).astype(x.dtype)


@register("identity", "dropout")
def identity(op: Op, x: np.ndarray) -> np.ndarray:
    return x


@register("softmax")
def softmax(op: Op, x: np.ndarray) -> np.ndarray:
    axis = op.attrs.get("axis", -1)
    z = x.astype(np.float64) * op.attrs.get("beta", 1.0)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


@register("lrn")
def lrn(op: Op, x: np.ndarray) -> np.ndarray:
    radius = op.attrs["radius"]
    sq = np.square(x.astype(np.float64))
    c = x.shape[-1]
    padded = np.pad(sq, [(0, 0)] * (x.ndim - 1) + [(radius, radius)])
    sums = sum(padded[..., i : i + c] for i in range(2 * radius + 1))
    denom = np.power(op.attrs["bias"] + op.attrs["alpha"] * sums, op.attrs["beta"])
    return (x / denom).astype(np.float32)


@register("batch_norm")
def batch_norm(
    op: Op, x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray
) -> np.ndarray:
    inv = scale / np.sqrt(var + op.attrs["epsilon"])
    return (x * inv + (bias - mean * inv)).astype(np.float32)
