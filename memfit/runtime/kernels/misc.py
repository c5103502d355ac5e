"""Data movement kernels; they work on any dtype."""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Op
from memfit.runtime.kernels import register


@register("reshape")
def reshape(op: Op, x: np.ndarray, *_shape_inputs: np.ndarray | None) -> np.ndarray:
    return x.reshape(op.output.shape)


@register("transpose")
def transpose(op: Op, x: np.ndarray, *_perm: np.ndarray | None) -> np.ndarray:
    return x.transpose(op.attrs["perm"])


@register("pad")
def pad(op: Op, x: np.ndarray, *_pads: np.ndarray | None) -> np.ndarray:
    value = op.attrs.get("value", 0.0)
    quant = op.output.quant
    if quant is not None and op.output.dtype.value != "float32":
        # Quantized PAD pads with the quantized real value (TFLite: the output zero point).
        value = quant.zero_point[0] + round(value / quant.scale[0])
    return np.pad(x, op.attrs["pads"], constant_values=value)


@register("concat")
def concat(op: Op, *xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs, axis=op.attrs["axis"])


@register("strided_slice")
def strided_slice(op: Op, x: np.ndarray, *_params: np.ndarray | None) -> np.ndarray:
    index = tuple(
        slice(b, e if e >= 0 else None, s)
        for b, e, s in zip(op.attrs["begin"], op.attrs["end"], op.attrs["strides"], strict=True)
    )
    return x[index].reshape(op.output.shape)


@register("shape")
def shape(op: Op, x: np.ndarray) -> np.ndarray:
    return np.asarray(x.shape, dtype=op.output.dtype.numpy)


@register("pack")
def pack(op: Op, *xs: np.ndarray) -> np.ndarray:
    return np.stack(xs, axis=op.attrs["axis"]).astype(op.output.dtype.numpy)


@register("quantize")
def quantize(op: Op, x: np.ndarray) -> np.ndarray:
    q = op.output.quant
    assert q is not None
    info = np.iinfo(op.output.dtype.numpy)
    ratio = x.astype(np.float32) / np.float32(q.scale[0])
    whole = np.trunc(ratio)  # TfLiteRound: halves away from zero (ratio - whole is exact)
    scaled = whole + np.where(np.abs(ratio - whole) >= 0.5, np.sign(ratio), 0)
    return np.clip(scaled + q.zero_point[0], info.min, info.max).astype(op.output.dtype.numpy)


@register("dequantize")
def dequantize(op: Op, x: np.ndarray) -> np.ndarray:
    q = op.inputs[0].quant  # type: ignore[union-attr]
    assert q is not None
    return ((x.astype(np.int32) - q.zero_point[0]) * np.float32(q.scale[0])).astype(np.float32)
