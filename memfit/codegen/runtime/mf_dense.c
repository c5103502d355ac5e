/* Dense layers (fully_connected), their FDT partial form, and accumulator outputs.
 *
 * A dense layer is mostly a matrix-vector product bound by reading the weights, so the
 * weights stay in their [N][K] layout and each row of x meets MF_FC_ROWS weight rows at a
 * time: independent dot products over contiguous K that compilers vectorize. */
#include "mf_internal.h"

#define MF_FC_ROWS 4
#define MF_FC_LANES 16 /* float partial sums per dot product (a fixed summation order) */

/* Position r (flat over n, h, w) of a view -> element offset. */
static int32_t row_offset(const mf_view* v, int32_t r) {
    const int32_t w = r % v->w;
    r /= v->w;
    return mf_view_offset(v, r / v->h, r % v->h, w);
}

static int32_t rows_of(const mf_view* v) { return v->n * v->h * v->w; }

/* out[j] = dot(x, w[j]) for j < count (<= MF_FC_ROWS), float. */
static void dots_f32(int32_t depth, int32_t count, const float* restrict x,
                     const float* restrict w, float* restrict out) {
    float lanes[MF_FC_ROWS][MF_FC_LANES] = {{0.0f}};
    const int32_t whole = depth - depth % MF_FC_LANES;
    if (count == MF_FC_ROWS) {
        for (int32_t k = 0; k < whole; k += MF_FC_LANES) {
            MF_UNROLL
            for (int32_t j = 0; j < MF_FC_ROWS; j++) {
                for (int32_t l = 0; l < MF_FC_LANES; l++) {
                    lanes[j][l] = MF_FMA(x[k + l], w[(size_t)j * depth + k + l], lanes[j][l]);
                }
            }
        }
    } else {
        for (int32_t j = 0; j < count; j++) {
            for (int32_t k = 0; k < whole; k += MF_FC_LANES) {
                for (int32_t l = 0; l < MF_FC_LANES; l++) {
                    lanes[j][l] = MF_FMA(x[k + l], w[(size_t)j * depth + k + l], lanes[j][l]);
                }
            }
        }
    }
    for (int32_t j = 0; j < count; j++) {
        float sum = 0.0f;
        for (int32_t l = 0; l < MF_FC_LANES; l++) {
            sum += lanes[j][l];
        }
        for (int32_t k = whole; k < depth; k++) {
            sum = MF_FMA(x[k], w[(size_t)j * depth + k], sum);
        }
        out[j] = sum;
    }
}

/* out[j] = sum((x + x_offset) * (w[j] + w_offset)) for j < count, int32 (wrapping). Computed
 * as sum(x*w) + w_offset*sum(x) + x_offset*sum(w) + K*x_offset*w_offset: equal modulo 2^32. */
static void dots_s8(int32_t depth, int32_t count, const int8_t* restrict x, int32_t x_offset,
                    const int8_t* restrict w, int32_t w_offset, int32_t* restrict out) {
    int32_t products[MF_FC_ROWS] = {0}, weight_sums[MF_FC_ROWS] = {0};
    int32_t x_sum = 0;
    for (int32_t k = 0; k < depth; k++) {
        x_sum += x[k];
    }
    if (count == MF_FC_ROWS) {
        for (int32_t k = 0; k < depth; k++) {
            MF_UNROLL
            for (int32_t j = 0; j < MF_FC_ROWS; j++) {
                products[j] += (int16_t)x[k] * w[(size_t)j * depth + k];
                weight_sums[j] += w[(size_t)j * depth + k];
            }
        }
    } else {
        for (int32_t j = 0; j < count; j++) {
            for (int32_t k = 0; k < depth; k++) {
                products[j] += (int16_t)x[k] * w[(size_t)j * depth + k];
                weight_sums[j] += w[(size_t)j * depth + k];
            }
        }
    }
    for (int32_t j = 0; j < count; j++) {
        const int64_t total = (int64_t)products[j] + (int64_t)w_offset * x_sum +
                              (int64_t)x_offset * weight_sums[j] +
                              (int64_t)depth * x_offset * w_offset;
        out[j] = mf_wrap32(total);
    }
}

void mf_fully_connected_f32(const float* x, const mf_view* xv, const float* w, const float* bias,
                            float* y, const mf_view* yv, const mf_range_f32* act) {
    const int32_t depth = xv->c, units = yv->c;
    float sums[MF_FC_ROWS];
    for (int32_t r = 0; r < rows_of(xv); r++) {
        const float* in = x + row_offset(xv, r);
        float* out = y + row_offset(yv, r);
        for (int32_t j0 = 0; j0 < units; j0 += MF_FC_ROWS) {
            const int32_t count = mf_min_i32(MF_FC_ROWS, units - j0);
            dots_f32(depth, count, in, w + (size_t)j0 * depth, sums);
            for (int32_t j = 0; j < count; j++) {
                out[j0 + j] = mf_activate(sums[j] + (bias ? bias[j0 + j] : 0.0f), act);
            }
        }
    }
}

void mf_fully_connected_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                           const int32_t* bias, int8_t* y, const mf_view* yv,
                           const mf_requant_s8* q) {
    const int32_t depth = xv->c, units = yv->c;
    int32_t sums[MF_FC_ROWS];
    for (int32_t r = 0; r < rows_of(xv); r++) {
        const int8_t* in = x + row_offset(xv, r);
        int8_t* out = y + row_offset(yv, r);
        for (int32_t j0 = 0; j0 < units; j0 += MF_FC_ROWS) {
            const int32_t count = mf_min_i32(MF_FC_ROWS, units - j0);
            dots_s8(depth, count, in, q->input_offset, w + (size_t)j0 * depth, q->weights_offset,
                    sums);
            for (int32_t j = 0; j < count; j++) {
                const int32_t b = bias ? bias[j0 + j] : 0;
                out[j0 + j] = mf_requant_one(mf_wrap32((int64_t)sums[j] + b), q, j0 + j);
            }
        }
    }
}

void mf_dot_rows_f32(const float* x, int32_t depth, const float* w, int32_t rows,
                     const float* prior, float* out) {
    float sums[MF_FC_ROWS];
    for (int32_t j0 = 0; j0 < rows; j0 += MF_FC_ROWS) {
        const int32_t count = mf_min_i32(MF_FC_ROWS, rows - j0);
        dots_f32(depth, count, x, w + (size_t)j0 * depth, sums);
        for (int32_t j = 0; j < count; j++) {
            out[j0 + j] = prior ? prior[j0 + j] + sums[j] : sums[j];
        }
    }
}

void mf_dot_rows_s8(const int8_t* x, int32_t depth, int32_t x_offset, const int8_t* w,
                    int32_t w_offset, int32_t rows, const int32_t* prior, int32_t* out) {
    int32_t sums[MF_FC_ROWS];
    for (int32_t j0 = 0; j0 < rows; j0 += MF_FC_ROWS) {
        const int32_t count = mf_min_i32(MF_FC_ROWS, rows - j0);
        dots_s8(depth, count, x, x_offset, w + (size_t)j0 * depth, w_offset, sums);
        for (int32_t j = 0; j < count; j++) {
            out[j0 + j] = prior ? mf_wrap32((int64_t)prior[j0 + j] + sums[j]) : sums[j];
        }
    }
}

void mf_partial_fully_connected_f32(const float* x, const mf_view* xv, const float* w,
                                    const float* acc, const mf_view* accv, float* y,
                                    const mf_view* yv) {
    for (int32_t r = 0; r < rows_of(xv); r++) {
        mf_dot_rows_f32(x + row_offset(xv, r), xv->c, w, yv->c,
                        acc ? acc + row_offset(accv, r) : NULL, y + row_offset(yv, r));
    }
}

void mf_partial_fully_connected_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                                   const int32_t* acc, const mf_view* accv, int32_t* y,
                                   const mf_view* yv, int32_t input_offset,
                                   int32_t weights_offset) {
    for (int32_t r = 0; r < rows_of(xv); r++) {
        mf_dot_rows_s8(x + row_offset(xv, r), xv->c, input_offset, w, weights_offset, yv->c,
                       acc ? acc + row_offset(accv, r) : NULL, y + row_offset(yv, r));
    }
}

/* Usually in place (the accumulator is the output): there, with no tanh or sigmoid, the values
 * go through one pointer, so that the loop vectorizes without an overlap check. */
void mf_accumulator_output_f32(const float* acc, const mf_view* accv, const float* bias,
                               float* y, const mf_view* yv, const mf_range_f32* act) {
    const float lo = act->min, hi = act->max;
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t h = 0; h < yv->h; h++) {
            for (int32_t w = 0; w < yv->w; w++) {
                const float* in = acc + mf_view_offset(accv, n, h, w);
                float* out = y + mf_view_offset(yv, n, h, w);
                if (in == out && act->fn == MF_FN_NONE) {
                    for (int32_t c = 0; c < yv->c; c++) {
                        const float v = out[c] + (bias ? bias[c] : 0.0f);
                        out[c] = v < lo ? lo : (v > hi ? hi : v);
                    }
                } else {
                    for (int32_t c = 0; c < yv->c; c++) {
                        out[c] = mf_activate(in[c] + (bias ? bias[c] : 0.0f), act);
                    }
                }
            }
        }
    }
}

void mf_accumulator_output_s8(const int32_t* acc, const mf_view* accv, const int32_t* bias,
                              int8_t* y, const mf_view* yv, const mf_requant_s8* q) {
    for (int32_t r = 0; r < rows_of(yv); r++) {
        const int32_t* in = acc + row_offset(accv, r);
        int8_t* out = y + row_offset(yv, r);
        for (int32_t c = 0; c < yv->c; c++) {
            const int32_t b = bias ? bias[c] : 0;
            out[c] = mf_requant_one(mf_wrap32((int64_t)in[c] + b), q, c);
        }
    }
}
