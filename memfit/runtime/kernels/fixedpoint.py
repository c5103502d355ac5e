"""The integer arithmetic of TFLite's quantized kernels, vectorized with NumPy.

TFLite Micro computes int8 ops in 32-bit (and some in 16-bit) integer arithmetic with fixed-point
multipliers. Everything here reproduces that arithmetic bit for bit on int64 arrays that hold
int32 (or int16) values: where C would wrap a 32-bit sum, ``wrap32`` wraps; where C truncates a
signed division toward zero, ``trunc_div`` does. TFLite Micro is built with the double-rounding
``MultiplyByQuantizedMultiplier`` (gemmlowp's rounding doubling high multiply, then a rounding
right shift); the tests pin that against the interpreter.

The fixed-point transcendental functions follow gemmlowp's ``FixedPoint<int32_t, IntegerBits>``:
a value with ``k`` integer bits is stored as ``raw / 2**(31 - k)``.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1

IntArray = np.ndarray


# ---- scalars: parameters computed once per op (TFLite's Prepare) -------------------------------


def round_half_away(x: float) -> int:
    """C's ``std::round`` (TFLite's ``TfLiteRound``): halves round away from zero, exactly."""
    whole = math.trunc(x)
    if abs(x - whole) >= 0.5:  # x - whole is exact for any double
        whole += 1 if x > 0 else -1
    return whole


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= multiplier * 2**(shift - 31)``.

    ``multiplier`` is in [2**30, 2**31) (0 for a zero or vanishing ``real``); ``shift`` > 0
    means a left shift. The significand rounds half away from zero; when it rounds up to 2**31
    it is halved and the shift grows by one.
    """
    if real == 0.0:
        return 0, 0
    significand, shift = math.frexp(real)
    fixed = round_half_away(significand * (1 << 31))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def frexp_multiplier(real: float) -> tuple[int, int]:
    """The multiplier of TFLite Micro's int8 LOGISTIC/TANH Prepare: frexp and round, no fix-up.

    Unlike ``quantize_multiplier`` a significand that rounds to 2**31 is not halved; the C cast
    to int32 then wraps it to -2**31, which this reproduces.
    """
    significand, shift = math.frexp(real)
    fixed = round_half_away(significand * (1 << 31))
    return (fixed - (1 << 32) if fixed == 1 << 31 else fixed), shift


def downscale_multiplier_to_int16(multiplier: int) -> int:
    """TFLite's ``DownScaleInt32ToInt16Multiplier``: the top 16 bits, rounded, saturated."""
    if multiplier >= INT32_MAX - (1 << 15):
        return INT16_MAX
    return (multiplier + (1 << 15)) >> 16


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """TFLite's ``CalculateInputRadius``: the largest input difference that does not saturate."""
    rescaled = ((1 << integer_bits) - 1) * (1 << (total_bits - integer_bits)) / (1 << left_shift)
    return math.floor(rescaled)


# ---- elementwise integer primitives --------------------------------------------------------


def wrap32(x: IntArray) -> IntArray:
    """Two's-complement wrap of int64 values to int32, as C's 32-bit arithmetic does."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def trunc_div(a: IntArray, b: IntArray | int) -> IntArray:
    """C's integer division (toward zero) for a positive divisor ``b``."""
    return np.where(a >= 0, a // b, -((-a) // b))


def saturating_rounding_doubling_high_mul(a: IntArray | int, b: IntArray | int) -> IntArray:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` for int32: round(a * b / 2**31)."""
    a = np.asarray(a, np.int64)
    product = a * np.asarray(b, np.int64)
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    result = trunc_div(nudged, 1 << 31)
    overflow = (a == INT32_MIN) & (np.asarray(b) == INT32_MIN)
    return np.where(overflow, INT32_MAX, result)


def rounding_divide_by_pot(x: IntArray, exponent: IntArray | int) -> IntArray:
    """gemmlowp's ``RoundingDivideByPOT``: x / 2**exponent, halves rounded away from zero."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(
    x: IntArray, multiplier: IntArray | int, shift: IntArray | int
) -> IntArray:
    """TFLite's double-rounding ``MultiplyByQuantizedMultiplier`` for int32 ``x``.

    ``multiplier`` and ``shift`` may be arrays (per channel) that broadcast against ``x``.
    """
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap32(np.asarray(x, np.int64) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def multiply_by_quantized_multiplier_smaller_than_one(
    x: IntArray, multiplier: int, shift: int
) -> IntArray:
    """``MultiplyByQuantizedMultiplierSmallerThanOneExp`` (shift <= 0): no left shift at all."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -shift)


def multiply_by_quantized_multiplier_greater_than_one(
    x: IntArray, multiplier: int, left_shift: int
) -> IntArray:
    """``MultiplyByQuantizedMultiplierGreaterThanOne`` (shift >= 0): no rounding shift."""
    return saturating_rounding_doubling_high_mul(
        wrap32(np.asarray(x, np.int64) << left_shift), multiplier
    )


def saturating_shift_left(x: IntArray, amount: int, bits: int = 32) -> IntArray:
    """gemmlowp's ``SaturatingRoundingMultiplyByPOT`` for a positive exponent."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    threshold = (1 << (bits - 1 - amount)) - 1
    x = np.asarray(x, np.int64)
    return np.where(x > threshold, high, np.where(x < -threshold, low, x << amount))


def rescale(x: IntArray, exponent: int) -> IntArray:
    """Multiply raw fixed-point values by 2**exponent: saturating up, rounding down."""
    if exponent > 0:
        return saturating_shift_left(x, exponent)
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    return np.asarray(x, np.int64)


def rounding_half_sum(a: IntArray, b: IntArray | int) -> IntArray:
    """gemmlowp's ``RoundingHalfSum`` for int32: (a + b) / 2 rounded away from zero."""
    total = np.asarray(a, np.int64) + b
    return trunc_div(total + np.where(total >= 0, 1, -1), 2)


def count_leading_zeros32(x: IntArray) -> IntArray:
    """Leading zero bits of positive values below 2**32."""
    _, exponent = np.frexp(np.asarray(x, np.float64))  # exact: x < 2**53
    return 32 - exponent.astype(np.int64)


# ---- gemmlowp fixed-point functions --------------------------------------------------------


def constant(value: float, integer_bits: int = 0) -> int:
    """A fixed-point constant as gemmlowp checks it: round(value * 2**fractional_bits)."""
    raw = round_half_away(value * (1 << (31 - integer_bits)))
    return min(max(raw, INT32_MIN), INT32_MAX)


_ONE_Q0 = INT32_MAX  # gemmlowp's One() of a format without integer bits
_EXP_MINUS_ONE_EIGHTH = constant(math.exp(-1.0 / 8.0))
_ONE_THIRD = constant(1.0 / 3.0)
_48_OVER_17 = constant(48.0 / 17.0, 2)
_MINUS_32_OVER_17 = constant(-32.0 / 17.0, 2)
# exp(-2**e) for the bits of the integer part, e = -2 .. 4.
_EXP_BARREL = tuple((e, constant(math.exp(-(2.0**e)))) for e in range(-2, 5))


def _mul(a: IntArray | int, b: IntArray | int) -> IntArray:
    return saturating_rounding_doubling_high_mul(a, b)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: IntArray) -> IntArray:
    """exp(a) for Q0.31 ``a`` in [-1/4, 0): a Taylor expansion around -1/8."""
    x = wrap32(a + (1 << 28))
    x2 = _mul(x, x)
    x3 = _mul(x2, x)
    x4 = _mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap32(_mul(wrap32(x4_over_4 + x3), _ONE_THIRD) + x2), 1)
    return wrap32(_EXP_MINUS_ONE_EIGHTH + _mul(_EXP_MINUS_ONE_EIGHTH, wrap32(x + poly)))


def exp_on_negative_values(a: IntArray, integer_bits: int) -> IntArray:
    """exp(a) for a <= 0 with ``integer_bits`` integer bits; the result is Q0.31."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a = np.asarray(a, np.int64)
    a_mod_quarter_minus_quarter = wrap32((a & (one_quarter - 1)) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_quarter, integer_bits)
    )
    remainder = wrap32(a_mod_quarter_minus_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (fractional_bits + exponent)
            result = np.where(remainder & bit, _mul(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, _ONE_Q0, result)


def _newton_reciprocal_of_half_denominator(a: IntArray) -> IntArray:
    """1 / ((1 + a) / 2) in Q2.29 for Q0.31 ``a`` in [0, 1): three Newton-Raphson steps."""
    half_denominator = rounding_half_sum(a, _ONE_Q0)
    x = wrap32(_48_OVER_17 + _mul(half_denominator, _MINUS_32_OVER_17))
    one_q2 = 1 << 29
    for _ in range(3):
        one_minus = wrap32(one_q2 - _mul(half_denominator, x))
        x = wrap32(x + saturating_shift_left(_mul(x, one_minus), 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a: IntArray) -> IntArray:
    """1 / (1 + a) for Q0.31 ``a`` in [0, 1), Q0.31."""
    return saturating_shift_left(_newton_reciprocal_of_half_denominator(a), 1)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: IntArray) -> IntArray:
    """(1 - a) / (1 + a) for Q0.31 ``a`` in [0, 1), Q0.31."""
    return saturating_shift_left(wrap32(_newton_reciprocal_of_half_denominator(a) - (1 << 29)), 2)


def logistic(a: IntArray, integer_bits: int) -> IntArray:
    """gemmlowp's fixed-point logistic: Q``integer_bits`` in, Q0.31 out."""
    a = np.asarray(a, np.int64)
    positive = a > 0
    magnitude = np.where(positive, a, -a)
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-magnitude, integer_bits))
    if_negative = wrap32(_ONE_Q0 - if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def tanh(a: IntArray, integer_bits: int) -> IntArray:
    """gemmlowp's fixed-point tanh: Q``integer_bits`` in, Q0.31 out."""
    a = np.asarray(a, np.int64)
    negative = a < 0
    non_positive = np.where(negative, a, -a)
    # -tanh(n) for n <= 0 is (1 - e) / (1 + e) with e = exp(2n): doubling n is exact when the
    # value is read with one more integer bit.
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(non_positive, integer_bits + 1)
    )
    return np.where(a == 0, 0, np.where(negative, -t, t))


# ---- 16-bit variants (HARD_SWISH) ----------------------------------------------------------


def saturating_rounding_doubling_high_mul16(a: IntArray, b: IntArray | int) -> IntArray:
    """The int16 ``SaturatingRoundingDoublingHighMul``: round(a * b / 2**15)."""
    a = np.asarray(a, np.int64)
    product = a * np.asarray(b, np.int64)
    result = trunc_div(product + np.where(product >= 0, 1 << 14, 1 - (1 << 14)), 1 << 15)
    return np.where((a == INT16_MIN) & (np.asarray(b) == INT16_MIN), INT16_MAX, result)


def saturating_doubling_high_mul16(a: IntArray, b: IntArray | int) -> IntArray:
    """TFLite's ``SaturatingDoublingHighMul`` (int16): a * b / 2**15 truncated toward zero."""
    a = np.asarray(a, np.int64)
    result = trunc_div(a * np.asarray(b, np.int64), 1 << 15)
    return np.where((a == INT16_MIN) & (np.asarray(b) == INT16_MIN), INT16_MAX, result)


def saturating_left_shift16(x: IntArray, amount: int) -> IntArray:
    """TFLite's int16 ``SaturatingLeftShift``."""
    return np.clip(np.asarray(x, np.int64) << amount, INT16_MIN, INT16_MAX)
