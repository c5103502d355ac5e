"""Kernels of the accumulating kinds that fused depthwise tiling writes (``memfit.tiling.fdt``),
and spatial tiling when a chain ends in a layer that reduces the whole map
(``memfit.tiling.ffmt``).

A layer whose input channels (or rows and columns) arrive in parts runs as one ``partial_*`` op
per part, each adding its products (or sums) into an accumulator of the full output, and one
``accumulator_output`` that adds the bias, requantizes and applies the activation once (or
``accumulator_average`` that divides by the count, for an average pool).

For int8 layers the accumulator is int32, as in TFLite Micro's kernels: partial sums are exact
(float64 products of int8 values, exact below 2**53) and are wrapped to 32 bits like C's int32
adds. Wrapping commutes with addition modulo 2**32, so the final accumulator equals the one the
untiled kernel would hold, and requantizing it once gives the untiled output bit for bit.
"""

from __future__ import annotations

import numpy as np

from memfit.errors import InternalError
from memfit.ir.core import Op, Quantization, Tensor
from memfit.runtime.kernels import conv, register
from memfit.runtime.kernels import fixedpoint as fp
from memfit.runtime.kernels.common import apply_activation_float
from memfit.runtime.kernels.int8 import _accumulate_conv, accumulate_depthwise, activation_range


def _quant(t: Tensor | None) -> Quantization:
    if t is None or t.quant is None:
        raise InternalError(f"partial kernel given tensor {t!r} without quantization")
    return t.quant


def _add_int32(op: Op, partial: np.ndarray, acc: np.ndarray | None) -> np.ndarray:
    total = partial.reshape(op.output.shape).astype(np.int64)
    if acc is not None:
        total = total + acc.astype(np.int64)
    return fp.wrap32(total).astype(np.int32)


def _add_float(op: Op, partial: np.ndarray, acc: np.ndarray | None) -> np.ndarray:
    total = partial.reshape(op.output.shape)
    if acc is not None:
        total = total + acc
    return total.astype(np.float32)


# ---- float ---------------------------------------------------------------------------------


@register("partial_conv2d")
def partial_conv2d(op: Op, x: np.ndarray, w: np.ndarray, acc: np.ndarray | None) -> np.ndarray:
    return _add_float(op, conv.conv2d(op, x, w, None), acc)


@register("partial_fully_connected")
def partial_fully_connected(
    op: Op, x: np.ndarray, w: np.ndarray, acc: np.ndarray | None
) -> np.ndarray:
    return _add_float(op, conv.fully_connected(op, x, w, None), acc)


@register("partial_depthwise_conv2d")
def partial_depthwise_conv2d(
    op: Op, x: np.ndarray, w: np.ndarray, acc: np.ndarray | None
) -> np.ndarray:
    return _add_float(op, conv.depthwise_sums(op, x, w), acc)


@register("partial_sum_pool")
def partial_sum_pool(op: Op, x: np.ndarray, acc: np.ndarray | None) -> np.ndarray:
    return _add_float(op, x.sum(axis=(1, 2), dtype=np.float64, keepdims=True), acc)


@register("accumulator_average")
def accumulator_average(op: Op, acc: np.ndarray) -> np.ndarray:
    out = (acc.astype(np.float64) / op.attrs["count"]).astype(np.float32)
    return apply_activation_float(out, op.attrs.get("activation", "none"))


@register("accumulator_output")
def accumulator_output(op: Op, acc: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    out = acc if bias is None else acc + bias
    return apply_activation_float(out.astype(np.float32), op.attrs.get("activation", "none"))


# ---- int8 ----------------------------------------------------------------------------------


@register("partial_conv2d", quantized=True)
def partial_conv2d_int8(op: Op, x: np.ndarray, w: np.ndarray, acc: np.ndarray | None) -> np.ndarray:
    zero_point = _quant(op.inputs[0]).zero_point[0]
    return _add_int32(op, _accumulate_conv(x, w, op, zero_point), acc)


@register("partial_fully_connected", quantized=True)
def partial_fully_connected_int8(
    op: Op, x: np.ndarray, w: np.ndarray, acc: np.ndarray | None
) -> np.ndarray:
    """The products of TFLite Micro's int8 FullyConnected (per tensor or per channel)."""
    weights_quant = _quant(op.inputs[1])
    rows = x.reshape(-1, w.shape[1]).astype(np.float64) - _quant(op.inputs[0]).zero_point[0]
    weights = w.astype(np.float64)
    if weights_quant.per_tensor:  # per channel, TFLite ignores the (symmetric) weight zero points
        weights -= weights_quant.zero_point[0]
    return _add_int32(op, (rows @ weights.T).astype(np.int64), acc)


@register("partial_depthwise_conv2d", quantized=True)
def partial_depthwise_conv2d_int8(
    op: Op, x: np.ndarray, w: np.ndarray, acc: np.ndarray | None
) -> np.ndarray:
    zero_point = _quant(op.inputs[0]).zero_point[0]
    return _add_int32(op, accumulate_depthwise(x, w, op, zero_point), acc)


@register("partial_sum_pool", quantized=True)
def partial_sum_pool_int8(op: Op, x: np.ndarray, acc: np.ndarray | None) -> np.ndarray:
    return _add_int32(op, x.astype(np.int64).sum(axis=(1, 2), keepdims=True), acc)


@register("accumulator_average", quantized=True)
def accumulator_average_int8(op: Op, acc: np.ndarray) -> np.ndarray:
    """TFLite's int8 average pool after its sum: divided by the count, rounded half away from
    zero, clamped to the activation (input and output share their quantization)."""
    count = op.attrs["count"]
    total = acc.astype(np.int64)
    half = count // 2
    average = np.where(
        total > 0, fp.trunc_div(total + half, count), fp.trunc_div(total - half, count)
    )
    low, high = activation_range(op.attrs.get("activation", "none"), op.output)
    return np.clip(average, low, high).astype(op.output.dtype.numpy)


@register("accumulator_output", quantized=True)
def accumulator_output_int8(op: Op, acc: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Bias, requantization and activation of TFLite Micro's int8 conv and dense layers.

    The accumulator's scale is the product TFLite Micro forms (input scale times weight scale,
    per channel), so QuantizeMultiplier(scale / output scale) is the layer's own multiplier.
    """
    out = op.output
    acc_quant, out_quant = _quant(op.inputs[0]), _quant(out)
    channels = acc.shape[-1]
    scales = acc_quant.scale if len(acc_quant.scale) > 1 else acc_quant.scale * channels
    pairs = [fp.quantize_multiplier(s / out_quant.scale[0]) for s in scales]
    multipliers = np.asarray([m for m, _ in pairs], np.int64)
    shifts = np.asarray([s for _, s in pairs], np.int64)
    total = acc.astype(np.int64)
    if bias is not None:
        total = fp.wrap32(total + bias.astype(np.int64))
    scaled = fp.multiply_by_quantized_multiplier(total, multipliers, shifts)
    low, high = activation_range(op.attrs.get("activation", "none"), out)
    return np.clip(scaled + out_quant.zero_point[0], low, high).astype(out.dtype.numpy)
