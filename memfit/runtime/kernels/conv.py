"""Convolutions and dense layers."""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Op
from memfit.runtime.kernels import register
from memfit.runtime.kernels.common import apply_activation_float, out_hw, pad_nhwc, windows

_BLOCK_BYTES = 1 << 24
"""Size of the float64 operand blocks the kernels below convert at a time (16 MiB)."""


# The float kernels accumulate in float64 and round once to float32. The result then no longer
# depends on how BLAS blocks a product (output channels with equal weights give equal values;
# a float32 GEMM can round them apart, which a softmax over logits of 1e9 turns into a wrong
# answer) and stays closer to the exact value than any float32 reference runtime.


@register("conv2d")
def conv2d(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    groups = op.attrs.get("groups", 1)
    o, kh, kw, cin_g = w.shape
    xp = pad_nhwc(x, op.attrs["pads"], 0.0)
    win = windows(xp, (kh, kw), op.attrs["strides"], op.attrs["dilations"], out_hw(op))
    n, ho, wo = win.shape[:3]  # win: [n, ho, wo, c, kh, kw]
    og, depth = o // groups, cin_g * kh * kw
    rows = max(1, _BLOCK_BYTES // (8 * depth * wo * n))  # output rows per im2col block
    out = np.empty((n, ho, wo, o), np.float64)
    for g in range(groups):
        # [og, c*kh*kw] in the (c, kh, kw) order of a window
        wg = w[g * og : (g + 1) * og].transpose(0, 3, 1, 2).reshape(og, depth).astype(np.float64)
        for r in range(0, ho, rows):
            cols = win[:, r : r + rows, :, g * cin_g : (g + 1) * cin_g].astype(np.float64)
            product = cols.reshape(-1, depth) @ wg.T
            out[:, r : r + rows, :, g * og : (g + 1) * og] = product.reshape(n, -1, wo, og)
    if bias is not None:
        out += bias
    return apply_activation_float(out.astype(np.float32), op.attrs.get("activation", "none"))


@register("depthwise_conv2d")
def depthwise_conv2d(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    out = depthwise_sums(op, x, w)
    if bias is not None:
        out += bias
    return apply_activation_float(out.astype(np.float32), op.attrs.get("activation", "none"))


def depthwise_sums(op: Op, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The float64 sums of a depthwise convolution, tap by tap in a fixed order (no bias)."""
    _, kh, kw, oc = w.shape
    mult = op.attrs.get("depth_multiplier", 1)
    if mult > 1:
        x = np.repeat(x, mult, axis=-1)
    xp = pad_nhwc(x, op.attrs["pads"], 0.0)
    (sh, sw), (dh, dw) = op.attrs["strides"], op.attrs["dilations"]
    ho, wo = out_hw(op)
    out = np.zeros((x.shape[0], ho, wo, oc), np.float64)
    for i in range(kh):  # one strided view per kernel tap, in a fixed order
        for j in range(kw):
            tap = xp[
                :,
                i * dh : i * dh + (ho - 1) * sh + 1 : sh,
                j * dw : j * dw + (wo - 1) * sw + 1 : sw,
            ]
            out += tap * w[0, i, j].astype(np.float64)
    return out


@register("fully_connected")
def fully_connected(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    depth = w.shape[1]
    a = x.reshape(-1, depth).astype(np.float64)
    rows = max(1, _BLOCK_BYTES // (8 * depth))  # weight rows per block
    out = np.empty((a.shape[0], w.shape[0]), np.float64)
    for r in range(0, w.shape[0], rows):
        out[:, r : r + rows] = a @ w[r : r + rows].astype(np.float64).T
    if bias is not None:
        out += bias
    out = apply_activation_float(out.astype(np.float32), op.attrs.get("activation", "none"))
    return out.reshape(op.output.shape)


@register("matmul")
def matmul(op: Op, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)
