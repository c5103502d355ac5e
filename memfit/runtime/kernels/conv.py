"""Convolutions and dense layers."""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Op
from memfit.runtime.kernels import register
from memfit.runtime.kernels.common import apply_activation_float, out_hw, pad_nhwc, windows


@register("conv2d")
def conv2d(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    groups = op.attrs.get("groups", 1)
    o, kh, kw, cin_g = w.shape
    xp = pad_nhwc(x, op.attrs["pads"], 0.0)
    win = windows(xp, (kh, kw), op.attrs["strides"], op.attrs["dilations"], out_hw(op))
    og = o // groups
    parts = []
    for g in range(groups):
        wg = w[g * og : (g + 1) * og]  # [og, kh, kw, cin_g]
        xg = win[:, :, :, g * cin_g : (g + 1) * cin_g]  # [n, ho, wo, cin_g, kh, kw]
        parts.append(np.einsum("nhwcij,oijc->nhwo", xg, wg, optimize=True))
    out = parts[0] if groups == 1 else np.concatenate(parts, axis=-1)
    if bias is not None:
        out = out + bias
    return apply_activation_float(out.astype(np.float32), op.attrs.get("activation", "none"))


@register("depthwise_conv2d")
def depthwise_conv2d(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    _, kh, kw, _oc = w.shape
    mult = op.attrs.get("depth_multiplier", 1)
    if mult > 1:
        x = np.repeat(x, mult, axis=-1)
    xp = pad_nhwc(x, op.attrs["pads"], 0.0)
    win = windows(xp, (kh, kw), op.attrs["strides"], op.attrs["dilations"], out_hw(op))
    out = np.einsum("nhwcij,ijc->nhwc", win, w[0], optimize=True)
    if bias is not None:
        out = out + bias
    return apply_activation_float(out.astype(np.float32), op.attrs.get("activation", "none"))


@register("fully_connected")
def fully_connected(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    out = x.reshape(-1, w.shape[1]) @ w.T
    if bias is not None:
        out = out + bias
    out = apply_activation_float(out.astype(np.float32), op.attrs.get("activation", "none"))
    return out.reshape(op.output.shape)


@register("matmul")
def matmul(op: Op, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a, b).astype(np.float32)
