"""Helpers shared by the float kernels."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from memfit.errors import InternalError
from memfit.ir.core import Op


def apply_activation_float(x: np.ndarray, activation: str) -> np.ndarray:
    if activation == "none":
        return x
    if activation == "relu":
        return np.maximum(x, 0, dtype=x.dtype)
    if activation == "relu6":
        return np.clip(x, 0, 6).astype(x.dtype)
    if activation == "relu_n1_to_1":
        return np.clip(x, -1, 1).astype(x.dtype)
    if activation == "tanh":
        return np.tanh(x).astype(x.dtype)
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)
    raise InternalError(f"unknown fused activation {activation!r}")


def pad_nhwc(x: np.ndarray, pads: tuple[int, int, int, int], value: float | int) -> np.ndarray:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def windows(
    x: np.ndarray,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """Sliding windows of padded NHWC ``x`` as a view [N, Ho, Wo, C, KH, KW]."""
    kh, kw = kernel
    (sh, sw), (dh, dw) = strides, dilations
    ho, wo = out_hw
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    view = sliding_window_view(x, (span_h, span_w), axis=(1, 2))
    return view[:, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw, :, ::dh, ::dw]


def out_hw(op: Op) -> tuple[int, int]:
    shape = op.output.shape
    return shape[1], shape[2]
