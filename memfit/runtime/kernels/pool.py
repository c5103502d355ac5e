"""Pooling and reductions (float)."""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Op
from memfit.runtime.kernels import register
from memfit.runtime.kernels.common import apply_activation_float, out_hw, pad_nhwc, windows


@register("max_pool2d")
def max_pool2d(op: Op, x: np.ndarray) -> np.ndarray:
    kernel = op.attrs["kernel"]
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = pad_nhwc(x, op.attrs["pads"], fill)
    win = windows(xp, kernel, op.attrs["strides"], (1, 1), out_hw(op))
    out = win.max(axis=(-2, -1))
    return apply_activation_float(out, op.attrs.get("activation", "none"))


@register("avg_pool2d")
def avg_pool2d(op: Op, x: np.ndarray) -> np.ndarray:
    kernel = op.attrs["kernel"]
    pads = op.attrs["pads"]
    win = windows(pad_nhwc(x, pads, 0.0), kernel, op.attrs["strides"], (1, 1), out_hw(op))
    sums = win.sum(axis=(-2, -1), dtype=np.float64)
    if op.attrs.get("count_include_pad", False):
        counts = np.full(out_hw(op), kernel[0] * kernel[1], dtype=np.float64)
    else:
        ones = pad_nhwc(np.ones((1, *x.shape[1:3], 1)), pads, 0.0)
        counts = windows(ones, kernel, op.attrs["strides"], (1, 1), out_hw(op)).sum(axis=(-2, -1))[
            0, :, :, 0
        ]
    out = (sums / counts[None, :, :, None]).astype(np.float32)
    return apply_activation_float(out, op.attrs.get("activation", "none"))


@register("mean")
def mean(op: Op, x: np.ndarray) -> np.ndarray:
    out = x.mean(axis=tuple(op.attrs["axes"]), dtype=np.float64)
    return out.astype(np.float32).reshape(op.output.shape)


@register("reduce_max")
def reduce_max(op: Op, x: np.ndarray) -> np.ndarray:
    return x.max(axis=tuple(op.attrs["axes"])).reshape(op.output.shape)
