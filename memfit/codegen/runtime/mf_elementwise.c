/* Elementwise kernels: binary arithmetic with broadcasting, activations, int8 rescaling,
 * quantize/dequantize and batch normalization. All may run in place (y == an input). */
#include "mf_internal.h"

/* ---- iteration ------------------------------------------------------------------------------
 * A binary op walks the output's rows of channels; an input whose dim is 1 where the output's
 * is not is broadcast along that axis (stride 0), channels included. */

typedef struct {
    int32_t sn, sh, sw, sc;   /* element strides, 0 on broadcast axes */
} operand;

static operand operand_of(const mf_view* v, const mf_view* yv) {
    operand o;
    o.sn = (v->n == 1 && yv->n != 1) ? 0 : v->sn;
    o.sh = (v->h == 1 && yv->h != 1) ? 0 : v->sh;
    o.sw = (v->w == 1 && yv->w != 1) ? 0 : v->sw;
    o.sc = (v->c == 1 && yv->c != 1) ? 0 : 1;
    return o;
}

static int32_t operand_offset(const operand* o, int32_t n, int32_t h, int32_t w) {
    return n * o->sn + h * o->sh + w * o->sw;
}

enum { MF_ADD, MF_SUB, MF_MUL, MF_DIV, MF_MAX, MF_MIN };

/* One row of `len` channels, with the channel stride of each input 0 or 1 specialised so that
 * the loops vectorize. */
#define MF_ROW_LOOP(expr)                                                                   \
    do {                                                                                    \
        if (sa == 1 && sb == 1) {                                                           \
            for (int32_t c = 0; c < len; c++) { const float u = a[c], v = b[c]; y[c] = (expr); } \
        } else if (sa == 1) {                                                               \
            const float v = b[0];                                                           \
            for (int32_t c = 0; c < len; c++) { const float u = a[c]; y[c] = (expr); }        \
        } else if (sb == 1) {                                                               \
            const float u = a[0];                                                           \
            for (int32_t c = 0; c < len; c++) { const float v = b[c]; y[c] = (expr); }        \
        } else {                                                                            \
            const float u = a[0], v = b[0];                                                 \
            for (int32_t c = 0; c < len; c++) { y[c] = (expr); }                              \
        }                                                                                   \
    } while (0)

static void binary_row_f32(int32_t how, const float* a, int32_t sa, const float* b, int32_t sb,
                           float* y, int32_t len) {
    switch (how) {
    case MF_ADD: MF_ROW_LOOP(u + v); break;
    case MF_SUB: MF_ROW_LOOP(u - v); break;
    case MF_MUL: MF_ROW_LOOP(u * v); break;
    case MF_DIV: MF_ROW_LOOP(u / v); break;
    case MF_MAX: MF_ROW_LOOP(u > v ? u : v); break;
    default: MF_ROW_LOOP(u < v ? u : v); break;
    }
}

#undef MF_ROW_LOOP

static void binary_f32(int32_t how, const float* a, const mf_view* av, const float* b,
                       const mf_view* bv, float* y, const mf_view* yv, const mf_range_f32* act) {
    const operand oa = operand_of(av, yv), ob = operand_of(bv, yv);
    const int32_t plain = act->fn == MF_FN_NONE && act->min == -INFINITY && act->max == INFINITY;
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                float* out = y + mf_view_offset(yv, n, h, w);
                binary_row_f32(how, a + operand_offset(&oa, n, h, w), oa.sc,
                               b + operand_offset(&ob, n, h, w), ob.sc, out, yv->c);
                if (!plain && act->fn == MF_FN_NONE) { /* a clamp alone: vectorizable */
                    const float lo = act->min, hi = act->max;
                    for (int32_t c = 0; c < yv->c; c++) {
                        const float v = out[c] < lo ? lo : out[c];
                        out[c] = v > hi ? hi : v;
                    }
                } else if (!plain) {
                    for (int32_t c = 0; c < yv->c; c++) {
                        out[c] = mf_activate(out[c], act);
                    }
                }
            }
        }
    }
}

void mf_add_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv, float* y,
                const mf_view* yv, const mf_range_f32* act) {
    binary_f32(MF_ADD, a, av, b, bv, y, yv, act);
}
void mf_sub_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv, float* y,
                const mf_view* yv, const mf_range_f32* act) {
    binary_f32(MF_SUB, a, av, b, bv, y, yv, act);
}
void mf_mul_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv, float* y,
                const mf_view* yv, const mf_range_f32* act) {
    binary_f32(MF_MUL, a, av, b, bv, y, yv, act);
}
void mf_div_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv, float* y,
                const mf_view* yv, const mf_range_f32* act) {
    binary_f32(MF_DIV, a, av, b, bv, y, yv, act);
}
void mf_maximum_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv,
                    float* y, const mf_view* yv, const mf_range_f32* act) {
    binary_f32(MF_MAX, a, av, b, bv, y, yv, act);
}
void mf_minimum_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv,
                    float* y, const mf_view* yv, const mf_range_f32* act) {
    binary_f32(MF_MIN, a, av, b, bv, y, yv, act);
}

/* ---- int8 binary ---------------------------------------------------------------------------- */

typedef struct {
    int32_t how;
    const mf_add_s8_params* add;
    const mf_mul_s8_params* mul;
} binary_s8_op;

/* MultiplyByQuantizedMultiplierSmallerThanOne: no left shift (shift <= 0). */
static int32_t mbqm_small(int32_t x, int32_t multiplier, int32_t shift) {
    return shift > 0 ? mf_mbqm(x, multiplier, shift) : mf_rdbpot(mf_srdhm(x, multiplier), -shift);
}

static int8_t binary_one_s8(const binary_s8_op* op, int32_t u, int32_t v) {
    if (op->how == MF_ADD || op->how == MF_SUB) {
        const mf_add_s8_params* p = op->add;
        const int32_t a = mbqm_small((u + p->a_offset) * (1 << p->left_shift), p->a_multiplier,
                                     p->a_shift);
        const int32_t b = mbqm_small((v + p->b_offset) * (1 << p->left_shift), p->b_multiplier,
                                     p->b_shift);
        const int32_t raw = mf_wrap32(op->how == MF_ADD ? (int64_t)a + b : (int64_t)a - b);
        const int32_t out =
            mbqm_small(raw, p->output_multiplier, p->output_shift) + p->output_offset;
        return (int8_t)mf_clamp_i32(out, p->act.min, p->act.max);
    }
    if (op->how == MF_MUL) {
        const mf_mul_s8_params* p = op->mul;
        const int32_t product = (u + p->a_offset) * (v + p->b_offset);
        const int32_t out = mf_mbqm(product, p->multiplier, p->shift) + p->output_offset;
        return (int8_t)mf_clamp_i32(out, p->act.min, p->act.max);
    }
    if (op->how == MF_MAX) {
        return (int8_t)(u > v ? u : v);
    }
    return (int8_t)(u < v ? u : v);
}

static void binary_s8(const binary_s8_op* op, const int8_t* a, const mf_view* av,
                      const int8_t* b, const mf_view* bv, int8_t* y, const mf_view* yv) {
    const operand oa = operand_of(av, yv), ob = operand_of(bv, yv);
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                const int8_t* ra = a + operand_offset(&oa, n, h, w);
                const int8_t* rb = b + operand_offset(&ob, n, h, w);
                int8_t* out = y + mf_view_offset(yv, n, h, w);
                for (int32_t c = 0; c < yv->c; c++) {
                    out[c] = binary_one_s8(op, ra[c * oa.sc], rb[c * ob.sc]);
                }
            }
        }
    }
}

void mf_add_s8(const int8_t* a, const mf_view* av, const int8_t* b, const mf_view* bv,
               int8_t* y, const mf_view* yv, const mf_add_s8_params* p) {
    const binary_s8_op op = {MF_ADD, p, NULL};
    binary_s8(&op, a, av, b, bv, y, yv);
}
void mf_sub_s8(const int8_t* a, const mf_view* av, const int8_t* b, const mf_view* bv,
               int8_t* y, const mf_view* yv, const mf_add_s8_params* p) {
    const binary_s8_op op = {MF_SUB, p, NULL};
    binary_s8(&op, a, av, b, bv, y, yv);
}
void mf_mul_s8(const int8_t* a, const mf_view* av, const int8_t* b, const mf_view* bv,
               int8_t* y, const mf_view* yv, const mf_mul_s8_params* p) {
    const binary_s8_op op = {MF_MUL, NULL, p};
    binary_s8(&op, a, av, b, bv, y, yv);
}
void mf_maximum_s8(const int8_t* a, const mf_view* av, const int8_t* b, const mf_view* bv,
                   int8_t* y, const mf_view* yv) {
    const binary_s8_op op = {MF_MAX, NULL, NULL};
    binary_s8(&op, a, av, b, bv, y, yv);
}
void mf_minimum_s8(const int8_t* a, const mf_view* av, const int8_t* b, const mf_view* bv,
                   int8_t* y, const mf_view* yv) {
    const binary_s8_op op = {MF_MIN, NULL, NULL};
    binary_s8(&op, a, av, b, bv, y, yv);
}

/* ---- float unary ----------------------------------------------------------------------------- */

enum { MF_CLAMP, MF_LOGISTIC, MF_TANH, MF_HARD_SWISH, MF_LEAKY_RELU };

static void unary_f32(int32_t how, const float* x, const mf_view* xv, float* y,
                      const mf_view* yv, float lo, float hi) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                const float* in = x + mf_view_offset(xv, n, h, w);
                float* out = y + mf_view_offset(yv, n, h, w);
                const int32_t len = yv->c;
                switch (how) {
                case MF_CLAMP:
                    for (int32_t c = 0; c < len; c++) {
                        const float v = in[c];
                        out[c] = v < lo ? lo : (v > hi ? hi : v);
                    }
                    break;
                case MF_LOGISTIC: /* in double, as the reference */
                    for (int32_t c = 0; c < len; c++) {
                        out[c] = (float)(1.0 / (1.0 + exp(-(double)in[c])));
                    }
                    break;
                case MF_TANH:
                    for (int32_t c = 0; c < len; c++) {
                        out[c] = tanhf(in[c]);
                    }
                    break;
                case MF_HARD_SWISH:
                    for (int32_t c = 0; c < len; c++) {
                        const float v = in[c], r = v + 3.0f;
                        out[c] = v * (r < 0.0f ? 0.0f : (r > 6.0f ? 6.0f : r)) / 6.0f;
                    }
                    break;
                default: /* leaky relu, alpha in lo */
                    for (int32_t c = 0; c < len; c++) {
                        const float v = in[c];
                        out[c] = v >= 0.0f ? v : v * lo;
                    }
                    break;
                }
            }
        }
    }
}

void mf_clamp_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv, float min,
                  float max) {
    unary_f32(MF_CLAMP, x, xv, y, yv, min, max);
}
void mf_logistic_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv) {
    unary_f32(MF_LOGISTIC, x, xv, y, yv, 0.0f, 0.0f);
}
void mf_tanh_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv) {
    unary_f32(MF_TANH, x, xv, y, yv, 0.0f, 0.0f);
}
void mf_hard_swish_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv) {
    unary_f32(MF_HARD_SWISH, x, xv, y, yv, 0.0f, 0.0f);
}
void mf_leaky_relu_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                       float alpha) {
    unary_f32(MF_LEAKY_RELU, x, xv, y, yv, alpha, 0.0f);
}

/* inv = scale / sqrt(var + epsilon); y = x * inv + (bias - mean * inv), all in float. */
void mf_batch_norm_f32(const float* x, const mf_view* xv, const float* scale, const float* bias,
                       const float* mean, const float* var, float* y, const mf_view* yv,
                       float epsilon) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                const float* in = x + mf_view_offset(xv, n, h, w);
                float* out = y + mf_view_offset(yv, n, h, w);
                for (int32_t c = 0; c < yv->c; c++) {
                    const float inv = scale[c] / sqrtf(var[c] + epsilon);
                    const float product = in[c] * inv;
                    const float shift = bias[c] - mean[c] * inv;
                    out[c] = product + shift;
                }
            }
        }
    }
}

/* ---- int8 unary: a table of the 256 results, then a lookup --------------------------------- */

static void apply_table_s8(const int8_t* table, const int8_t* x, const mf_view* xv, int8_t* y,
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

void mf_requantize_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_requantize_s8_params* p) {
    int8_t table[256];
    for (int32_t v = -128; v < 128; v++) {
        const int32_t out = mf_mbqm(v + p->input_offset, p->multiplier, p->shift) + p->output_offset;
        table[v + 128] = (int8_t)mf_clamp_i32(out, p->act.min, p->act.max);
    }
    apply_table_s8(table, x, xv, y, yv);
}

void mf_leaky_relu_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_leaky_relu_s8_params* p) {
    int8_t table[256];
    for (int32_t v = -128; v < 128; v++) {
        const int32_t centered = v + p->input_offset;
        const int32_t scaled = centered >= 0
                                   ? mf_mbqm(centered, p->identity_multiplier, p->identity_shift)
                                   : mf_mbqm(centered, p->alpha_multiplier, p->alpha_shift);
        table[v + 128] = (int8_t)mf_clamp_i32(scaled + p->output_offset, -128, 127);
    }
    apply_table_s8(table, x, xv, y, yv);
}

/* 16-bit fixed point of HARD_SWISH. */
static int32_t srdhm16(int32_t a, int32_t b) { /* round(a * b / 2^15), saturating */
    if (a == INT16_MIN && b == INT16_MIN) {
        return INT16_MAX;
    }
    const int32_t ab = a * b;
    return (ab + (ab >= 0 ? (1 << 14) : 1 - (1 << 14))) / (1 << 15);
}
static int32_t sdhm16(int32_t a, int32_t b) { /* a * b / 2^15 truncated, saturating */
    if (a == INT16_MIN && b == INT16_MIN) {
        return INT16_MAX;
    }
    return (a * b) / (1 << 15);
}
static int32_t saturating_left_shift16(int32_t x, int32_t amount) {
    const int64_t shifted = (int64_t)x * ((int64_t)1 << amount);
    return shifted < INT16_MIN ? INT16_MIN : (shifted > INT16_MAX ? INT16_MAX : (int32_t)shifted);
}

void mf_hard_swish_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_hard_swish_s8_params* p) {
    int8_t table[256];
    for (int32_t v = -128; v < 128; v++) {
        const int32_t hires = (v + p->input_offset) * (1 << 7);
        const int32_t preshift = srdhm16(hires, p->output_multiplier);
        int32_t reluish = hires;
        if (p->reluish_shift > 0) {
            reluish = saturating_left_shift16(reluish, p->reluish_shift - 1);
        }
        reluish = srdhm16(reluish, p->reluish_multiplier);
        if (p->reluish_shift > 0) {
            reluish = saturating_left_shift16(reluish, 1);
        }
        if (p->reluish_shift < 0) {
            reluish = mf_rdbpot(reluish, -p->reluish_shift);
        }
        reluish = (reluish + (1 << 15)) >> 1; /* [-1, 1] -> [0, 1] */
        const int32_t product = sdhm16(reluish, preshift);
        const int32_t out = mf_rdbpot(product, -p->output_shift) + p->output_offset;
        table[v + 128] = (int8_t)mf_clamp_i32(out, -128, 127);
    }
    apply_table_s8(table, x, xv, y, yv);
}

/* ---- quantize / dequantize ------------------------------------------------------------------ */

void mf_quantize_f32_s8(const float* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                        float scale, int32_t zero_point) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                const float* in = x + mf_view_offset(xv, n, h, w);
                int8_t* out = y + mf_view_offset(yv, n, h, w);
                for (int32_t c = 0; c < yv->c; c++) {
                    /* roundf: halves away from zero, as TfLiteRound; clamp before converting */
                    const float v = roundf(in[c] / scale) + (float)zero_point;
                    out[c] = (int8_t)(!(v >= -128.0f) ? -128 : (v > 127.0f ? 127 : (int32_t)v));
                }
            }
        }
    }
}

void mf_dequantize_s8_f32(const int8_t* x, const mf_view* xv, float* y, const mf_view* yv,
                          float scale, int32_t zero_point) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                const int8_t* in = x + mf_view_offset(xv, n, h, w);
                float* out = y + mf_view_offset(yv, n, h, w);
                for (int32_t c = 0; c < yv->c; c++) {
                    out[c] = (float)(in[c] - zero_point) * scale;
                }
            }
        }
    }
}
