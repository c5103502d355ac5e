/* Softmax, LRN, and the int8 logistic/tanh: gemmlowp-style fixed point, as TFLite Micro
 * computes them. A fixed-point value with k integer bits is stored as raw / 2^(31 - k); every
 * function below follows memfit/runtime/kernels/fixedpoint.py step for step (the spec). */
#include "mf_internal.h"

/* Fixed-point constants round(value * 2^(31 - integer bits)), computed by fixedpoint.constant. */
#define MF_FX_ONE INT32_MAX                 /* 1.0 in Q0.31 (saturated) */
#define MF_FX_EXP_MINUS_ONE_EIGHTH 1895147668 /* exp(-1/8), Q0.31 */
#define MF_FX_ONE_THIRD 715827883            /* 1/3, Q0.31 */
#define MF_FX_48_OVER_17 1515870810          /* 48/17, Q2.29 */
#define MF_FX_MINUS_32_OVER_17 (-1010580540) /* -32/17, Q2.29 */

/* exp(-2^e) in Q0.31 for e = -2 .. 4 (the bits of an exponent's integer part). */
static const int32_t exp_barrel[7] = {1672461947, 1302514674, 790015084, 290630308,
                                      39332535,   720401,     242};

static int32_t wrap_add(int32_t a, int32_t b) { return mf_wrap32((int64_t)a + b); }
static int32_t wrap_sub(int32_t a, int32_t b) { return mf_wrap32((int64_t)a - b); }

/* gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent. */
static int32_t saturating_shift_left(int32_t x, int32_t amount) {
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - amount)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << amount);
}

/* Multiply raw fixed point by 2^exponent: saturating up, rounding down. */
static int32_t rescale(int32_t x, int32_t exponent) {
    if (exponent > 0) {
        return saturating_shift_left(x, exponent);
    }
    if (exponent < 0) {
        return mf_rdbpot(x, -exponent);
    }
    return x;
}

/* exp(a) for Q0.31 a in [-1/4, 0): a Taylor expansion around -1/8. */
static int32_t exp_quarter(int32_t a) {
    const int32_t x = wrap_add(a, 1 << 28);
    const int32_t x2 = mf_srdhm(x, x);
    const int32_t x3 = mf_srdhm(x2, x);
    const int32_t x4 = mf_srdhm(x2, x2);
    const int32_t x4_over_4 = mf_rdbpot(x4, 2);
    const int32_t poly =
        mf_rdbpot(wrap_add(mf_srdhm(wrap_add(x4_over_4, x3), MF_FX_ONE_THIRD), x2), 1);
    return wrap_add(MF_FX_EXP_MINUS_ONE_EIGHTH,
                    mf_srdhm(MF_FX_EXP_MINUS_ONE_EIGHTH, wrap_add(x, poly)));
}

/* exp(a) for a <= 0 with `integer_bits` integer bits; Q0.31 result. */
static int32_t exp_on_negative_values(int32_t a, int32_t integer_bits) {
    const int32_t fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = 1 << (fractional_bits - 2);
    const int32_t a_mod_quarter_minus_quarter = wrap_sub(a & (one_quarter - 1), one_quarter);
    int32_t result = exp_quarter(rescale(a_mod_quarter_minus_quarter, integer_bits));
    const int32_t remainder = wrap_sub(a_mod_quarter_minus_quarter, a);
    for (int32_t e = -2; e <= 4; e++) {
        if (integer_bits > e && (remainder & (1 << (fractional_bits + e)))) {
            result = mf_srdhm(result, exp_barrel[e + 2]);
        }
    }
    if (integer_bits > 5 && a < -(1 << (36 - integer_bits))) {
        result = 0;
    }
    return a == 0 ? MF_FX_ONE : result;
}

/* 1 / ((1 + a) / 2) in Q2.29 for Q0.31 a in [0, 1): three Newton-Raphson steps. */
static int32_t newton_reciprocal_of_half_denominator(int32_t a) {
    const int64_t total = (int64_t)a + MF_FX_ONE;
    const int32_t half_denominator = (int32_t)((total + (total >= 0 ? 1 : -1)) / 2);
    int32_t x = wrap_add(MF_FX_48_OVER_17, mf_srdhm(half_denominator, MF_FX_MINUS_32_OVER_17));
    for (int32_t i = 0; i < 3; i++) {
        const int32_t one_minus = wrap_sub(1 << 29, mf_srdhm(half_denominator, x));
        x = wrap_add(x, saturating_shift_left(mf_srdhm(x, one_minus), 2));
    }
    return x;
}

static int32_t one_over_one_plus_x(int32_t a) {
    return saturating_shift_left(newton_reciprocal_of_half_denominator(a), 1);
}

static int32_t one_minus_x_over_one_plus_x(int32_t a) {
    return saturating_shift_left(wrap_sub(newton_reciprocal_of_half_denominator(a), 1 << 29), 2);
}

/* Fixed-point logistic / tanh: Q`integer_bits` in, Q0.31 out. */
static int32_t fx_logistic(int32_t a, int32_t integer_bits) {
    if (a == 0) {
        return 1 << 30;
    }
    const int32_t minus_magnitude = a > 0 ? -a : a;
    const int32_t if_positive = one_over_one_plus_x(exp_on_negative_values(minus_magnitude,
                                                                            integer_bits));
    return a > 0 ? if_positive : wrap_sub(MF_FX_ONE, if_positive);
}

/* (Negated without wrapping, as the reference: the result is int64.) */
static int64_t fx_tanh(int32_t a, int32_t integer_bits) {
    if (a == 0) {
        return 0;
    }
    const int32_t non_positive = a < 0 ? a : -a;
    const int32_t t =
        one_minus_x_over_one_plus_x(exp_on_negative_values(non_positive, integer_bits + 1));
    return a < 0 ? -(int64_t)t : t;
}

/* RoundingDivideByPOT for exponents that may exceed 31 (the result is then 0 or -1). */
static int32_t rdbpot64(int64_t x, int32_t exponent) {
    const int64_t mask = ((int64_t)1 << exponent) - 1;
    const int64_t remainder = x & mask;
    const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (int32_t)((x >> exponent) + (remainder > threshold ? 1 : 0));
}

/* ---- int8 logistic and tanh ------------------------------------------------------------------ */

#define MF_SIGMOID_INPUT_INTEGER_BITS 4

static void apply_table(const int8_t* table, const int8_t* x, const mf_view* xv, int8_t* y,
                        const mf_view* yv) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                const int8_t* in = x + mf_view_offset(xv, n, h, w);
                int8_t* out = y + mf_view_offset(yv, n, h, w);
                for (int32_t c = 0; c < yv->c; c++) {
                    out[c] = table[in[c] + 128];
                }
            }
        }
    }
}

static void sigmoid_s8(int32_t tanh, const int8_t* x, const mf_view* xv, int8_t* y,
                       const mf_view* yv, const mf_sigmoid_s8_params* p) {
    int8_t table[256];
    for (int32_t v = -128; v < 128; v++) {
        const int32_t centered = v + p->input_offset;
        int32_t out;
        if (centered <= -p->radius) {
            out = -128;
        } else if (centered >= p->radius) {
            out = 127;
        } else {
            const int32_t q4 = mf_mbqm(centered, p->multiplier, p->shift);
            out = tanh ? rdbpot64(fx_tanh(q4, MF_SIGMOID_INPUT_INTEGER_BITS), 24)
                       : mf_rdbpot(fx_logistic(q4, MF_SIGMOID_INPUT_INTEGER_BITS), 23) - 128;
            out = mf_clamp_i32(out, -128, 127);
        }
        table[v + 128] = (int8_t)out;
    }
    apply_table(table, x, xv, y, yv);
}

void mf_logistic_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                    const mf_sigmoid_s8_params* p) {
    sigmoid_s8(0, x, xv, y, yv, p);
}

void mf_tanh_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                const mf_sigmoid_s8_params* p) {
    sigmoid_s8(1, x, xv, y, yv, p);
}

/* ---- softmax ---------------------------------------------------------------------------------- */

#define MF_SOFTMAX_DIFF_INTEGER_BITS 5
#define MF_SOFTMAX_ACCUMULATION_INTEGER_BITS 12

static int32_t count_leading_zeros32(uint32_t x) {
    int32_t zeros = 0;
    for (uint32_t bit = 0x80000000u; bit != 0 && !(x & bit); bit >>= 1) {
        zeros++;
    }
    return zeros;
}

/* exp(x - max) of one input, or -1 when the difference is below diff_min (contributes 0). */
static int32_t softmax_exp(int32_t diff, const mf_softmax_s8_params* p) {
    if (diff < p->diff_min) {
        return -1;
    }
    const int32_t rescaled =
        mf_srdhm((int32_t)((uint32_t)diff << p->left_shift), p->multiplier);
    return exp_on_negative_values(rescaled, MF_SOFTMAX_DIFF_INTEGER_BITS);
}

/* One row of channels; out_bits 8 or 16, results written through store(). */
static void softmax_row_s8(const int8_t* in, int32_t len, const mf_softmax_s8_params* p,
                           int32_t out_bits, int8_t* out8, int16_t* out16) {
    int32_t max = INT8_MIN;
    for (int32_t c = 0; c < len; c++) {
        max = mf_max_i32(max, in[c]);
    }
    uint32_t total = 0; /* wraps like the reference's int32 sum */
    for (int32_t c = 0; c < len; c++) {
        const int32_t e = softmax_exp(in[c] - max, p);
        if (e >= 0) {
            total += (uint32_t)rescale(e, -MF_SOFTMAX_ACCUMULATION_INTEGER_BITS);
        }
    }
    /* 1 / total as a Q0.31 mantissa and a power of two. */
    const int32_t headroom_plus_one = count_leading_zeros32(total);
    const int32_t bits_over_unit = MF_SOFTMAX_ACCUMULATION_INTEGER_BITS - headroom_plus_one;
    const int32_t shifted = (int32_t)((int64_t)(uint32_t)(total << headroom_plus_one) -
                                      ((int64_t)1 << 31));
    const int32_t reciprocal = one_over_one_plus_x(shifted);
    const int32_t exponent = bits_over_unit + 31 - out_bits;
    const int32_t low = out_bits == 8 ? INT8_MIN : INT16_MIN;
    const int32_t high = out_bits == 8 ? INT8_MAX : INT16_MAX;
    for (int32_t c = 0; c < len; c++) {
        const int32_t e = softmax_exp(in[c] - max, p);
        int32_t v = low;
        if (e >= 0) {
            v = mf_clamp_i32(rdbpot64(mf_srdhm(reciprocal, e), exponent) + low, low, high);
        }
        if (out_bits == 8) {
            out8[c] = (int8_t)v;
        } else {
            out16[c] = (int16_t)v;
        }
    }
}

void mf_softmax_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                   const mf_softmax_s8_params* p) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                softmax_row_s8(x + mf_view_offset(xv, n, h, w), yv->c, p, 8,
                               y + mf_view_offset(yv, n, h, w), NULL);
            }
        }
    }
}

void mf_softmax_s8_s16(const int8_t* x, const mf_view* xv, int16_t* y, const mf_view* yv,
                       const mf_softmax_s8_params* p) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                softmax_row_s8(x + mf_view_offset(xv, n, h, w), yv->c, p, 16, NULL,
                               y + mf_view_offset(yv, n, h, w));
            }
        }
    }
}

/* Float softmax in double, as the reference: exp(beta * (x - max)) / sum. */
void mf_softmax_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv, float beta) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                const float* in = x + mf_view_offset(xv, n, h, w);
                float* out = y + mf_view_offset(yv, n, h, w);
                double max = -INFINITY, sum = 0.0;
                for (int32_t c = 0; c < yv->c; c++) {
                    const double z = (double)in[c] * beta;
                    max = z > max ? z : max;
                }
                for (int32_t c = 0; c < yv->c; c++) {
                    sum += exp((double)in[c] * beta - max);
                }
                for (int32_t c = 0; c < yv->c; c++) {
                    out[c] = (float)(exp((double)in[c] * beta - max) / sum);
                }
            }
        }
    }
}

/* ---- LRN ----------------------------------------------------------------------------------- */

/* LRN across channels: y = x / (bias + alpha * sum of x^2 over the 2*radius+1 nearest
 * channels)^beta. Per pixel, a running sum (in double: adding and removing one square per
 * channel) writes each channel's base into y; a second loop, which vectorizes, raises it to
 * -beta and scales x. beta = 0.75 (AlexNet, GoogLeNet) is d^-3/4 = 1 / (sqrt(d) sqrt(sqrt(d))),
 * square roots instead of pow. */
void mf_lrn_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv, int32_t radius,
                float bias, float alpha, float beta) {
    const int32_t channels = yv->c;
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                const float* in = x + mf_view_offset(xv, n, h, w);
                float* out = y + mf_view_offset(yv, n, h, w);
                double sum = 0.0;
                for (int32_t k = 0; k < radius && k < channels; k++) {
                    sum += (double)in[k] * in[k];
                }
                for (int32_t c = 0; c < channels; c++) {
                    if (c + radius < channels) {
                        sum += (double)in[c + radius] * in[c + radius];
                    }
                    if (c - radius - 1 >= 0) {
                        sum -= (double)in[c - radius - 1] * in[c - radius - 1];
                    }
                    out[c] = (float)((double)bias + (double)alpha * (sum > 0.0 ? sum : 0.0));
                }
                if (beta == 0.75f) {
                    for (int32_t c = 0; c < channels; c++) {
                        const float root = sqrtf(out[c]);
                        out[c] = in[c] / (root * sqrtf(root));
                    }
                } else {
                    for (int32_t c = 0; c < channels; c++) {
                        out[c] = in[c] * powf(out[c], -beta);
                    }
                }
            }
        }
    }
}
