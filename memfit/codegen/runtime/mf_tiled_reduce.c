/* Spatial tiles of a layer that reduces the whole map (memfit.tiling.ffmt): each tile adds its
 * part into an accumulator of the layer's output, and one op after the last tile finishes it.
 *
 * Every kernel here starts its output from acc (or zero when acc is NULL: the first tile) and
 * then adds, element by element, so y may be acc itself (same view). */
#include "mf_internal.h"

/* Element offset of (n, h, w) in v, or -1 when acc is absent. */
static int32_t acc_offset(const void* acc, const mf_view* v, int32_t n, int32_t h, int32_t w) {
    return acc != NULL ? mf_view_offset(v, n, h, w) : -1;
}

/* The taps of output position (oh, ow) that fall inside x: rows [*i0, *i1), columns
 * [*j0, *j1) of the kernel. */
static void taps_inside(const mf_conv* p, const mf_view* xv, int32_t oh, int32_t ow, int32_t* i0,
                        int32_t* i1, int32_t* j0, int32_t* j1) {
    const int32_t top = oh * p->stride_h - p->pad_top, left = ow * p->stride_w - p->pad_left;
    *i0 = 0, *i1 = p->kh, *j0 = 0, *j1 = p->kw;
    while (*i0 < *i1 && top + *i0 * p->dilation_h < 0) ++*i0;
    while (*i1 > *i0 && top + (*i1 - 1) * p->dilation_h >= xv->h) --*i1;
    while (*j0 < *j1 && left + *j0 * p->dilation_w < 0) ++*j0;
    while (*j1 > *j0 && left + (*j1 - 1) * p->dilation_w >= xv->w) --*j1;
}

/* x's pixel under tap (i, j) of output position (oh, ow), batch n. */
static int32_t tap_pixel(const mf_conv* p, const mf_view* xv, int32_t n, int32_t oh, int32_t ow,
                         int32_t i, int32_t j) {
    return mf_view_offset(xv, n, oh * p->stride_h - p->pad_top + i * p->dilation_h,
                          ow * p->stride_w - p->pad_left + j * p->dilation_w);
}

void mf_partial_depthwise_conv2d_f32(const float* x, const mf_view* xv, const float* w,
                                     const float* acc, const mf_view* accv, float* y,
                                     const mf_view* yv, const mf_conv* p) {
    const int32_t channels = yv->c;
    int32_t i0, i1, j0, j1;
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            for (int32_t ow = 0; ow < yv->w; ow++) {
                float* out = y + mf_view_offset(yv, n, oh, ow);
                const int32_t a = acc_offset(acc, accv, n, oh, ow);
                for (int32_t c = 0; c < channels; c++) out[c] = a >= 0 ? acc[a + c] : 0.0f;
                taps_inside(p, xv, oh, ow, &i0, &i1, &j0, &j1);
                for (int32_t i = i0; i < i1; i++) {
                    for (int32_t j = j0; j < j1; j++) {
                        const float* in = x + tap_pixel(p, xv, n, oh, ow, i, j);
                        const float* tap = w + (size_t)(i * p->kw + j) * channels;
                        for (int32_t c = 0; c < channels; c++) {
                            out[c] = MF_FMA(in[c], tap[c], out[c]);
                        }
                    }
                }
            }
        }
    }
}

void mf_partial_depthwise_conv2d_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                                    const int32_t* acc, const mf_view* accv, int32_t* y,
                                    const mf_view* yv, const mf_conv* p, int32_t input_offset) {
    const int32_t channels = yv->c;
    int32_t i0, i1, j0, j1;
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            for (int32_t ow = 0; ow < yv->w; ow++) {
                int32_t* out = y + mf_view_offset(yv, n, oh, ow);
                const int32_t a = acc_offset(acc, accv, n, oh, ow);
                for (int32_t c = 0; c < channels; c++) out[c] = a >= 0 ? acc[a + c] : 0;
                taps_inside(p, xv, oh, ow, &i0, &i1, &j0, &j1);
                for (int32_t i = i0; i < i1; i++) {
                    for (int32_t j = j0; j < j1; j++) {
                        const int8_t* in = x + tap_pixel(p, xv, n, oh, ow, i, j);
                        const int8_t* tap = w + (size_t)(i * p->kw + j) * channels;
                        for (int32_t c = 0; c < channels; c++) {
                            out[c] = mf_wrap32((int64_t)out[c] + (in[c] + input_offset) * tap[c]);
                        }
                    }
                }
            }
        }
    }
}

void mf_partial_sum_pool_f32(const float* x, const mf_view* xv, const float* acc,
                             const mf_view* accv, float* y, const mf_view* yv) {
    const int32_t channels = yv->c;
    for (int32_t n = 0; n < yv->n; n++) {
        float* out = y + mf_view_offset(yv, n, 0, 0);
        const int32_t a = acc_offset(acc, accv, n, 0, 0);
        for (int32_t c = 0; c < channels; c++) {
            out[c] = a >= 0 ? acc[a + c] : 0.0f;
        }
        for (int32_t h = 0; h < xv->h; h++) {
            for (int32_t w = 0; w < xv->w; w++) {
                const float* in = x + mf_view_offset(xv, n, h, w);
                for (int32_t c = 0; c < channels; c++) {
                    out[c] += in[c];
                }
            }
        }
    }
}

void mf_partial_sum_pool_s8(const int8_t* x, const mf_view* xv, const int32_t* acc,
                            const mf_view* accv, int32_t* y, const mf_view* yv) {
    const int32_t channels = yv->c;
    for (int32_t n = 0; n < yv->n; n++) {
        int32_t* out = y + mf_view_offset(yv, n, 0, 0);
        const int32_t a = acc_offset(acc, accv, n, 0, 0);
        for (int32_t c = 0; c < channels; c++) {
            out[c] = a >= 0 ? acc[a + c] : 0;
        }
        for (int32_t h = 0; h < xv->h; h++) {
            for (int32_t w = 0; w < xv->w; w++) {
                const int8_t* in = x + mf_view_offset(xv, n, h, w);
                for (int32_t c = 0; c < channels; c++) {
                    out[c] = mf_wrap32((int64_t)out[c] + in[c]);
                }
            }
        }
    }
}

/* Position r (flat over n, h, w) of a view -> element offset. */
static int32_t position(const mf_view* v, int32_t r) {
    const int32_t w = r % v->w;
    r /= v->w;
    return mf_view_offset(v, r / v->h, r % v->h, w);
}

void mf_accumulator_average_f32(const float* acc, const mf_view* accv, float* y,
                                const mf_view* yv, int32_t count, const mf_range_f32* act) {
    for (int32_t r = 0; r < yv->n * yv->h * yv->w; r++) {
        const float* in = acc + position(accv, r);
        float* out = y + position(yv, r);
        for (int32_t c = 0; c < yv->c; c++) {
            out[c] = mf_activate(in[c] / (float)count, act);
        }
    }
}

void mf_accumulator_average_s8(const int32_t* acc, const mf_view* accv, int8_t* y,
                               const mf_view* yv, int32_t count, const mf_range_s8* act) {
    const int64_t half = count / 2;
    for (int32_t r = 0; r < yv->n * yv->h * yv->w; r++) {
        const int32_t* in = acc + position(accv, r);
        int8_t* out = y + position(yv, r);
        for (int32_t c = 0; c < yv->c; c++) {
            const int64_t sum = in[c];
            const int64_t average = sum > 0 ? (sum + half) / count : (sum - half) / count;
            out[c] = (int8_t)(average < act->min ? act->min : average > act->max ? act->max
                                                                                  : average);
        }
    }
}
