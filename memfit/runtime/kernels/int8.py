"""int8 kernels that reproduce TFLite Micro's reference kernels bit for bit.

Each kernel first derives the op's fixed-point parameters from the tensors' scales and zero
points exactly as TFLite Micro's Prepare does (the same float32 or float64 arithmetic, the same
``QuantizeMultiplier``), then evaluates with ``memfit.runtime.kernels.fixedpoint``. Sums of
int8 products are computed with float64 matrix products, which are exact below 2**53 and so
equal TFLite's int32 accumulators whenever those do not overflow (TFLite Micro assumes they do
not). Elementwise functions of one int8 input are evaluated on all 256 possible inputs and
looked up.

Where TFLite Micro ignores quantization parameters it expects to match (CONCATENATION, the
output of int8 TANH, RELU6), the comments say what memfit does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from memfit.errors import InternalError
from memfit.ir.core import Op, Quantization, Tensor
from memfit.runtime.kernels import fixedpoint as fp
from memfit.runtime.kernels import register
from memfit.runtime.kernels.common import apply_activation_float, out_hw, pad_nhwc, windows

# ---- parameters ----------------------------------------------------------------------------


def _quant(t: Tensor | None) -> Quantization:
    if t is None or t.quant is None:
        raise InternalError(f"quantized kernel given tensor {t!r} without quantization")
    return t.quant


def _input(op: Op, index: int) -> Tensor:
    t = op.input(index)
    if t is None:
        raise InternalError(f"op {op.name} ({op.kind}) has no input {index}")
    return t


def _scale(t: Tensor | None) -> float:
    return _quant(t).scale[0]


def _zero_point(t: Tensor | None) -> int:
    return _quant(t).zero_point[0]


def _limits(t: Tensor) -> tuple[int, int]:
    info = np.iinfo(t.dtype.numpy)
    return int(info.min), int(info.max)


def _quantize_real(value: float, t: Tensor) -> int:
    """zero_point + round(value / scale), divided and rounded in float32 as TFLite does."""
    ratio = float(np.float32(value) / np.float32(_scale(t)))
    return _zero_point(t) + fp.round_half_away(ratio)


def activation_range(activation: str, output: Tensor) -> tuple[int, int]:
    """TFLite's ``CalculateActivationRangeQuantized`` for a fused activation."""
    low, high = _limits(output)
    if activation == "relu":
        return max(low, _quantize_real(0.0, output)), high
    if activation == "relu6":
        return max(low, _quantize_real(0.0, output)), min(high, _quantize_real(6.0, output))
    if activation == "relu_n1_to_1":
        return max(low, _quantize_real(-1.0, output)), min(high, _quantize_real(1.0, output))
    return low, high  # none, and (as TFLite does) tanh/sigmoid: no clamping


def _store(values: np.ndarray, low: int, high: int, output: Tensor) -> np.ndarray:
    return np.clip(values, low, high).astype(output.dtype.numpy).reshape(output.shape)


def _channel_multipliers(
    input_scale: float, weights: Quantization, output_scale: float, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel: QuantizeMultiplier(input_scale * weight_scale / output_scale).

    TFLite computes this product in float64 for convolutions and per-channel dense layers,
    broadcasting a single weight scale over the channels.
    """
    scales = weights.scale if len(weights.scale) > 1 else weights.scale * channels
    pairs = [fp.quantize_multiplier(input_scale * s / output_scale) for s in scales]
    multipliers, shifts = zip(*pairs, strict=True)
    return np.asarray(multipliers, np.int64), np.asarray(shifts, np.int64)


def _requantize(
    acc: np.ndarray,
    multiplier: np.ndarray | int,
    shift: np.ndarray | int,
    output: Tensor,
    activation: str,
) -> np.ndarray:
    """acc (int32 accumulators) -> output: scale, add the zero point, clamp to the activation."""
    low, high = activation_range(activation, output)
    scaled = fp.multiply_by_quantized_multiplier(acc, multiplier, shift) + _zero_point(output)
    return _store(scaled, low, high, output)


def _by_table(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Apply an int8 -> integer function through a table of its 256 values."""
    table = fn(np.arange(-128, 128, dtype=np.int64))
    return table[x.astype(np.int64) + 128]


def _check_int8(op: Op) -> None:
    for t in (*op.inputs[:1], *op.outputs):
        if t is not None and t.dtype.value != "int8":
            raise InternalError(f"op {op.name} ({op.kind}): int8 kernel given {t.dtype} {t.name}")


# ---- convolutions and dense layers ---------------------------------------------------------


def _accumulate_conv(x: np.ndarray, w: np.ndarray, op: Op, input_zero_point: int) -> np.ndarray:
    """int32 accumulators sum(w * (x - zp)) of a convolution with groups, as int64."""
    groups = op.attrs.get("groups", 1)
    o, kh, kw, cin_g = w.shape
    strides, dilations = op.attrs["strides"], op.attrs["dilations"]
    # Padding with the zero point makes padded taps contribute (zp - zp) * w = 0, which is
    # what TFLite's "skip taps outside the image" computes.
    shifted = pad_nhwc(x, op.attrs["pads"], input_zero_point).astype(np.float64)
    shifted -= input_zero_point
    og = o // groups
    parts = []
    for g in range(groups):
        xg = shifted[..., g * cin_g : (g + 1) * cin_g]
        wg = w[g * og : (g + 1) * og].astype(np.float64)
        if (kh, kw) == (1, 1) and tuple(strides) == (1, 1):
            parts.append(xg @ wg.reshape(og, cin_g).T)
            continue
        win = windows(xg, (kh, kw), strides, dilations, out_hw(op))
        parts.append(np.einsum("nhwcij,oijc->nhwo", win, wg, optimize=True))
    acc = parts[0] if groups == 1 else np.concatenate(parts, axis=-1)
    return acc.astype(np.int64)


@register("conv2d", quantized=True)
def conv2d(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """TFLite Micro's ``ConvPerChannel`` (int8 in and out, int8 weights, int32 bias)."""
    if x.dtype == np.float32:
        return _hybrid_conv2d(op, x, w, bias)
    _check_int8(op)
    xt, wt, out = _input(op, 0), _input(op, 1), op.output
    acc = _accumulate_conv(x, w, op, _zero_point(xt))
    if bias is not None:
        acc = fp.wrap32(acc + bias.astype(np.int64))
    multipliers, shifts = _channel_multipliers(_scale(xt), _quant(wt), _scale(out), w.shape[0])
    return _requantize(acc, multipliers, shifts, out, op.attrs.get("activation", "none"))


def _symmetric_quantize(x: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """TFLite's ``SymmetricQuantizeFloats``: int8 values in [-127, 127] and their scale."""
    largest = np.float32(np.abs(x).max())
    if largest == 0:
        return np.zeros(x.shape, np.int64), np.float32(1.0)
    ratio = x * (np.float32(127.0) / largest)  # float32, as TFLite multiplies
    whole = np.trunc(ratio)
    rounded = whole + np.where(np.abs(ratio - whole) >= 0.5, np.sign(ratio), 0)
    return np.clip(rounded, -127, 127).astype(np.int64), largest / np.float32(127.0)


def _hybrid_conv2d(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """TFLite's hybrid CONV_2D (float input, int8 weights quantized per tensor).

    Each batch item is quantized symmetrically to int8 at run time, convolved in integers and
    scaled back: float(acc) * (input_scale * weight_scale) + bias, then the activation.
    """
    wq = _quant(op.inputs[1])
    if not wq.per_tensor or wq.zero_point[0] != 0:
        raise InternalError(f"op {op.name}: hybrid conv2d needs symmetric per-tensor weights")
    result = np.empty(op.output.shape, np.float32)
    for n in range(x.shape[0]):
        values, scale = _symmetric_quantize(x[n : n + 1])
        acc = _accumulate_conv(values, w, op, 0).astype(np.float32)
        out = acc * (scale * np.float32(wq.scale[0]))
        if bias is not None:
            out = out + bias.astype(np.float32)
        result[n] = apply_activation_float(out, op.attrs.get("activation", "none"))[0]
    return result


def accumulate_depthwise(x: np.ndarray, w: np.ndarray, op: Op, zero_point: int) -> np.ndarray:
    """int32 accumulators sum((x - zp) * w) of a depthwise convolution (wrapping like C)."""
    _, kh, kw, channels = w.shape
    multiplier = op.attrs.get("depth_multiplier", 1)
    if multiplier > 1:  # output channel c reads input channel c // multiplier
        x = np.repeat(x, multiplier, axis=-1)
    (sh, sw), (dh, dw) = op.attrs["strides"], op.attrs["dilations"]
    ho, wo = out_hw(op)
    shifted = pad_nhwc(x, op.attrs["pads"], zero_point).astype(np.int32) - np.int32(zero_point)
    acc = np.zeros((x.shape[0], ho, wo, channels), np.int32)  # int32 wraps like C
    taps = w[0].astype(np.int32)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + (ho - 1) * sh + 1, sh)
            cols = slice(j * dw, j * dw + (wo - 1) * sw + 1, sw)
            acc += shifted[:, rows, cols, :] * taps[i, j]
    return acc


@register("depthwise_conv2d", quantized=True)
def depthwise_conv2d(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """TFLite Micro's ``DepthwiseConvPerChannel``, including a depth multiplier."""
    _check_int8(op)
    xt, wt, out = _input(op, 0), _input(op, 1), op.output
    channels = w.shape[-1]
    acc64 = accumulate_depthwise(x, w, op, _zero_point(xt)).astype(np.int64)
    if bias is not None:
        acc64 = fp.wrap32(acc64 + bias.astype(np.int64))
    multipliers, shifts = _channel_multipliers(_scale(xt), _quant(wt), _scale(out), channels)
    return _requantize(acc64, multipliers, shifts, out, op.attrs.get("activation", "none"))


@register("fully_connected", quantized=True)
def fully_connected(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """TFLite Micro's ``FullyConnected`` (per tensor) or ``FullyConnectedPerChannel``."""
    _check_int8(op)
    xt, wt, out = _input(op, 0), _input(op, 1), op.output
    wq = _quant(wt)
    rows = x.reshape(-1, w.shape[1]).astype(np.float64) - _zero_point(xt)
    if wq.per_tensor:
        # Per tensor, TFLite multiplies the two scales in float32 before widening.
        product = float(np.float32(_scale(xt)) * np.float32(wq.scale[0]))
        multiplier, shift = fp.quantize_multiplier(product / _scale(out))
        weights = w.astype(np.float64) - wq.zero_point[0]
        scale: tuple[np.ndarray | int, np.ndarray | int] = (multiplier, shift)
    else:  # per channel: symmetric weights, TFLite ignores their zero points
        weights = w.astype(np.float64)
        scale = _channel_multipliers(_scale(xt), wq, _scale(out), w.shape[0])
    acc = (rows @ weights.T).astype(np.int64)
    if bias is not None:
        acc = fp.wrap32(acc + bias.astype(np.int64))
    return _requantize(acc, *scale, out, op.attrs.get("activation", "none"))


# ---- pooling and reductions ----------------------------------------------------------------


@register("avg_pool2d", quantized=True)
def avg_pool2d(op: Op, x: np.ndarray) -> np.ndarray:
    """Average of the in-bounds window, rounded half away from zero; no rescaling."""
    _check_int8(op)
    kernel, strides, pads = op.attrs["kernel"], op.attrs["strides"], op.attrs["pads"]
    sums = windows(pad_nhwc(x.astype(np.int64), pads, 0), kernel, strides, (1, 1), out_hw(op))
    sums = sums.sum(axis=(-2, -1))
    if op.attrs.get("count_include_pad", False):  # not in TFLite; ONNX may ask for it
        counts = np.full(out_hw(op), kernel[0] * kernel[1], np.int64)[None, :, :, None]
    else:
        ones = pad_nhwc(np.ones((1, *x.shape[1:3], 1), np.int64), pads, 0)
        counts = windows(ones, kernel, strides, (1, 1), out_hw(op)).sum(axis=(-2, -1))
    half = counts // 2
    average = np.where(
        sums > 0, fp.trunc_div(sums + half, counts), fp.trunc_div(sums - half, counts)
    )
    low, high = activation_range(op.attrs.get("activation", "none"), op.output)
    return _store(average, low, high, op.output)


@register("max_pool2d", quantized=True)
def max_pool2d(op: Op, x: np.ndarray) -> np.ndarray:
    _check_int8(op)
    low_value = np.iinfo(x.dtype).min
    padded = pad_nhwc(x, op.attrs["pads"], low_value)
    win = windows(padded, op.attrs["kernel"], op.attrs["strides"], (1, 1), out_hw(op))
    low, high = activation_range(op.attrs.get("activation", "none"), op.output)
    return _store(win.max(axis=(-2, -1)).astype(np.int64), low, high, op.output)


@register("mean", quantized=True)
def mean(op: Op, x: np.ndarray) -> np.ndarray:
    """TFLite Micro's int8 MEAN.

    The sum of (x - zero point) is rescaled by a multiplier into which 1/count is folded;
    TFLite Micro uses this arithmetic on its 4-D (H, W) path and on its general path alike.
    """
    _check_int8(op)
    xt, out = _input(op, 0), op.output
    axes = tuple(op.attrs["axes"])
    resolved = tuple(sorted({a % x.ndim for a in axes}))
    count = int(np.prod([x.shape[a] for a in resolved]))
    total = x.astype(np.int64).sum(axis=resolved)
    multiplier, shift = fp.quantize_multiplier(_scale(xt) / _scale(out))
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << extra) // count
    scaled = fp.multiply_by_quantized_multiplier(
        fp.wrap32(total - _zero_point(xt) * count), multiplier, shift - extra
    )
    return _store(scaled + _zero_point(out), -128, 127, out)


# ---- elementwise binary --------------------------------------------------------------------

_ADD_LEFT_SHIFT = 20  # int8 inputs are scaled up by 2**20 before rescaling


def _add_or_sub(op: Op, a: np.ndarray, b: np.ndarray, sign: int) -> np.ndarray:
    """ADD/SUB: both inputs, scaled up by 2**20, are rescaled to twice the larger input scale,
    combined, then rescaled to the output (multipliers derived in float64)."""
    at, bt, out = op.inputs[0], op.inputs[1], op.output
    twice_max = 2.0 * max(_scale(at), _scale(bt))
    reals = (
        _scale(at) / twice_max,
        _scale(bt) / twice_max,
        twice_max / ((1 << _ADD_LEFT_SHIFT) * _scale(out)),
    )
    (m1, s1), (m2, s2), (mo, so) = (fp.quantize_multiplier(r) for r in reals)
    scaled_a = fp.multiply_by_quantized_multiplier_smaller_than_one(
        (a.astype(np.int64) - _zero_point(at)) << _ADD_LEFT_SHIFT, m1, s1
    )
    scaled_b = fp.multiply_by_quantized_multiplier_smaller_than_one(
        (b.astype(np.int64) - _zero_point(bt)) << _ADD_LEFT_SHIFT, m2, s2
    )
    raw = fp.wrap32(scaled_a + sign * scaled_b)
    result = fp.multiply_by_quantized_multiplier_smaller_than_one(raw, mo, so) + _zero_point(out)
    low, high = activation_range(op.attrs.get("activation", "none"), out)
    return _store(result, low, high, out)


@register("add", quantized=True)
def add(op: Op, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _check_int8(op)
    return _add_or_sub(op, a, b, 1)


@register("sub", quantized=True)
def sub(op: Op, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _check_int8(op)
    return _add_or_sub(op, a, b, -1)


@register("mul", quantized=True)
def mul(op: Op, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _check_int8(op)
    at, bt, out = op.inputs[0], op.inputs[1], op.output
    multiplier, shift = fp.quantize_multiplier(_scale(at) * _scale(bt) / _scale(out))
    product = (a.astype(np.int64) - _zero_point(at)) * (b.astype(np.int64) - _zero_point(bt))
    return _requantize(product, multiplier, shift, out, op.attrs.get("activation", "none"))


@register("concat", quantized=True)
def concat(op: Op, *xs: np.ndarray) -> np.ndarray:
    """Inputs quantized like the output are copied; others are requantized first.

    TFLite requires equal parameters here and TFLite Micro copies the bytes regardless; an
    input with other parameters is converted as a QUANTIZE (requantize) op would convert it.
    """
    out = op.output
    parts = []
    for t, x in zip(op.inputs, xs, strict=True):
        if t is not None and t.quant == out.quant:
            parts.append(x)
        else:
            parts.append(_requantize_tensor(x, t, out))
    return np.concatenate(parts, axis=op.attrs["axis"])


def _requantize_tensor(x: np.ndarray, source: Tensor | None, output: Tensor) -> np.ndarray:
    """TFLite's ``Requantize``: (x - zp_in) * (s_in / s_out) + zp_out, clamped to the type."""
    multiplier, shift = fp.quantize_multiplier(_scale(source) / _scale(output))
    scaled = fp.multiply_by_quantized_multiplier(
        x.astype(np.int64) - _zero_point(source), multiplier, shift
    )
    low, high = _limits(output)
    return np.clip(scaled + _zero_point(output), low, high).astype(output.dtype.numpy)


@register("quantize", quantized=True)
def quantize(op: Op, x: np.ndarray) -> np.ndarray:
    """Integer to integer QUANTIZE: a requantization (float input uses the float kernel)."""
    return _requantize_tensor(x, op.inputs[0], op.output).reshape(op.output.shape)


# ---- elementwise unary ---------------------------------------------------------------------


def _relu_x(op: Op, x: np.ndarray, low_real: float, high_real: float | None) -> np.ndarray:
    """Requantize to the output, then clamp to [low_real, high_real] on the output's scale."""
    _check_int8(op)
    xt, out = _input(op, 0), op.output
    multiplier, shift = fp.quantize_multiplier(_scale(xt) / _scale(out))
    low = max(-128, _quantize_real(low_real, out))
    high = 127 if high_real is None else min(127, _quantize_real(high_real, out))

    def table(v: np.ndarray) -> np.ndarray:
        scaled = fp.multiply_by_quantized_multiplier(v - _zero_point(xt), multiplier, shift)
        return np.clip(scaled + _zero_point(out), low, high)

    return _by_table(table, x).astype(np.int8)


@register("relu", quantized=True)
def relu(op: Op, x: np.ndarray) -> np.ndarray:
    """TFLite Micro's int8 RELU."""
    return _relu_x(op, x, 0.0, None)


@register("relu_n1_to_1", quantized=True)
def relu_n1_to_1(op: Op, x: np.ndarray) -> np.ndarray:
    """int8 RELU_N1_TO_1 as TFLite (LiteRT) computes it; TFLite Micro has no int8 version."""
    return _relu_x(op, x, -1.0, 1.0)


@register("relu6", quantized=True)
def relu6(op: Op, x: np.ndarray) -> np.ndarray:
    """TFLite Micro's int8 RELU6 clamps to [0, 6] on the *input's* scale and does not rescale.

    (The converter gives RELU6 equal input and output parameters; LiteRT, unlike TFLite Micro,
    requantizes to the output's.)
    """
    _check_int8(op)
    xt = _input(op, 0)
    six = min(max(_quantize_real(6.0, xt), -128), 127)
    return np.clip(x, _zero_point(xt), six).astype(np.int8)


@register("leaky_relu", quantized=True)
def leaky_relu(op: Op, x: np.ndarray) -> np.ndarray:
    _check_int8(op)
    xt, out = _input(op, 0), op.output
    alpha_real = float(
        np.float32(_scale(xt)) * np.float32(op.attrs["alpha"]) / np.float32(_scale(out))
    )
    identity_real = float(np.float32(_scale(xt)) / np.float32(_scale(out)))
    m_alpha, s_alpha = fp.quantize_multiplier(alpha_real)
    m_identity, s_identity = fp.quantize_multiplier(identity_real)

    def table(v: np.ndarray) -> np.ndarray:
        centered = v - _zero_point(xt)
        scaled = np.where(
            centered >= 0,
            fp.multiply_by_quantized_multiplier(centered, m_identity, s_identity),
            fp.multiply_by_quantized_multiplier(centered, m_alpha, s_alpha),
        )
        return np.clip(scaled + _zero_point(out), -128, 127)

    return _by_table(table, x).astype(np.int8)


_SIGMOID_INPUT_INTEGER_BITS = 4  # int8 LOGISTIC and TANH read the input as Q4.27


def _sigmoid_input(xt: Tensor) -> tuple[int, int, int]:
    """Multiplier, shift and saturation radius of int8 LOGISTIC/TANH inputs."""
    bits = _SIGMOID_INPUT_INTEGER_BITS
    multiplier, shift = fp.frexp_multiplier(_scale(xt) * (1 << (31 - bits)))
    return multiplier, shift, fp.input_radius(bits, shift)


@register("logistic", quantized=True)
def logistic(op: Op, x: np.ndarray) -> np.ndarray:
    """int8 LOGISTIC; the output is on TFLite's fixed scale 1/256, zero point -128."""
    _check_int8(op)
    xt = _input(op, 0)
    multiplier, shift, radius = _sigmoid_input(xt)

    def table(v: np.ndarray) -> np.ndarray:
        centered = v - _zero_point(xt)
        q4 = fp.multiply_by_quantized_multiplier(centered, multiplier, shift)
        q0 = fp.logistic(q4, _SIGMOID_INPUT_INTEGER_BITS)
        scaled = np.clip(fp.rounding_divide_by_pot(q0, 23) - 128, -128, 127)
        return np.where(centered <= -radius, -128, np.where(centered >= radius, 127, scaled))

    return _by_table(table, x).astype(np.int8)


@register("tanh", quantized=True)
def tanh(op: Op, x: np.ndarray) -> np.ndarray:
    """int8 TANH; the output is on TFLite's fixed scale 1/128, zero point 0."""
    _check_int8(op)
    xt = _input(op, 0)
    multiplier, shift, radius = _sigmoid_input(xt)

    def table(v: np.ndarray) -> np.ndarray:
        centered = v - _zero_point(xt)
        q4 = fp.multiply_by_quantized_multiplier(centered, multiplier, shift)
        q0 = fp.tanh(q4, _SIGMOID_INPUT_INTEGER_BITS)
        scaled = np.clip(fp.rounding_divide_by_pot(q0, 24), -128, 127)
        return np.where(centered <= -radius, -128, np.where(centered >= radius, 127, scaled))

    return _by_table(table, x).astype(np.int8)


@register("hard_swish", quantized=True)
def hard_swish(op: Op, x: np.ndarray) -> np.ndarray:
    """TFLite's int8 HARD_SWISH: x * relu6(x + 3) / 6 in 16-bit fixed point."""
    _check_int8(op)
    xt, out = _input(op, 0), op.output
    hires_scale = np.float32(1.0 / 128.0) * np.float32(_scale(xt))
    output_m32, output_exponent = fp.quantize_multiplier(
        float(hires_scale / np.float32(_scale(out)))
    )
    reluish_m32, reluish_exponent = fp.quantize_multiplier(
        float(hires_scale / (np.float32(3.0) / np.float32(32768.0)))
    )
    output_m16 = fp.downscale_multiplier_to_int16(output_m32)
    reluish_m16 = fp.downscale_multiplier_to_int16(reluish_m32)

    def table(v: np.ndarray) -> np.ndarray:
        hires = (v - _zero_point(xt)) * (1 << 7)
        preshift_output = fp.saturating_rounding_doubling_high_mul16(hires, output_m16)
        reluish = hires
        if reluish_exponent > 0:
            reluish = fp.saturating_left_shift16(reluish, reluish_exponent - 1)
        reluish = fp.saturating_rounding_doubling_high_mul16(reluish, reluish_m16)
        if reluish_exponent > 0:
            reluish = fp.saturating_left_shift16(reluish, 1)
        if reluish_exponent < 0:
            reluish = fp.rounding_divide_by_pot(reluish, -reluish_exponent)
        reluish = (reluish + (1 << 15)) >> 1  # [-1, 1] -> [0, 1]
        product = fp.saturating_doubling_high_mul16(reluish, preshift_output)
        result = fp.rounding_divide_by_pot(product, -output_exponent) + _zero_point(out)
        return np.clip(result, -128, 127)

    return _by_table(table, x).astype(np.int8)


# ---- softmax -------------------------------------------------------------------------------

_SCALED_DIFF_INTEGER_BITS = 5
_ACCUMULATION_INTEGER_BITS = 12


@register("softmax", quantized=True)
def softmax(op: Op, x: np.ndarray) -> np.ndarray:
    """TFLite Micro's int8 SOFTMAX (gemmlowp fixed point), int8 or int16 output."""
    xt, out = _input(op, 0), op.output
    if xt.dtype.value != "int8" or out.dtype.value not in ("int8", "int16"):
        raise InternalError(f"op {op.name}: softmax kernel given {xt} -> {out}")
    beta_real = min(
        op.attrs.get("beta", 1.0) * _scale(xt) * (1 << (31 - _SCALED_DIFF_INTEGER_BITS)),
        (1 << 31) - 1.0,
    )
    multiplier, left_shift = fp.quantize_multiplier(beta_real)
    diff_min = -fp.input_radius(_SCALED_DIFF_INTEGER_BITS, left_shift)

    values = x.astype(np.int64)
    diff = values - values.max(axis=-1, keepdims=True)
    inside = diff >= diff_min
    rescaled = fp.multiply_by_quantized_multiplier_greater_than_one(
        np.where(inside, diff, 0), multiplier, left_shift
    )
    exps = fp.exp_on_negative_values(rescaled, _SCALED_DIFF_INTEGER_BITS)
    accumulated = fp.rescale(exps, -_ACCUMULATION_INTEGER_BITS)
    total = fp.wrap32(np.where(inside, accumulated, 0).sum(axis=-1, keepdims=True))

    # 1 / total as a Q0.31 mantissa and a power of two (TFLite's GetReciprocal).
    headroom_plus_one = fp.count_leading_zeros32(total)
    bits_over_unit = _ACCUMULATION_INTEGER_BITS - headroom_plus_one
    shifted = ((total << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    reciprocal = fp.one_over_one_plus_x_for_x_in_0_1(shifted)

    out_bits = out.dtype.itemsize * 8
    exponent = bits_over_unit + 31 - out_bits
    scaled = fp.rounding_divide_by_pot(
        fp.saturating_rounding_doubling_high_mul(reciprocal, exps), exponent
    )
    low, high = _limits(out)
    result = np.where(inside, np.clip(scaled + low, low, high), low)
    return result.astype(out.dtype.numpy)
