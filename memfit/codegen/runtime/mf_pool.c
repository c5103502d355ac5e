/* Pooling (max, average) and reductions (mean, max over any axes). */
#include "mf_internal.h"

#define MF_POOL_BLOCK 64

/* The window of output pixel (oh, ow) clipped to the input: rows [*h0, *h1), cols [*w0, *w1). */
static void window(const mf_pool* p, const mf_view* xv, int32_t oh, int32_t ow, int32_t* h0,
                   int32_t* h1, int32_t* w0, int32_t* w1) {
    const int32_t top = oh * p->stride_h - p->pad_top, left = ow * p->stride_w - p->pad_left;
    *h0 = mf_max_i32(top, 0);
    *h1 = mf_min_i32(top + p->kh, xv->h);
    *w0 = mf_max_i32(left, 0);
    *w1 = mf_min_i32(left + p->kw, xv->w);
}

void mf_max_pool2d_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                       const mf_pool* p, const mf_range_f32* act) {
    float best[MF_POOL_BLOCK];
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            for (int32_t ow = 0; ow < yv->w; ow++) {
                int32_t h0, h1, w0, w1;
                window(p, xv, oh, ow, &h0, &h1, &w0, &w1);
                float* out = y + mf_view_offset(yv, n, oh, ow);
                for (int32_t c0 = 0; c0 < yv->c; c0 += MF_POOL_BLOCK) {
                    const int32_t len = mf_min_i32(MF_POOL_BLOCK, yv->c - c0);
                    for (int32_t c = 0; c < len; c++) {
                        best[c] = -INFINITY;
                    }
                    for (int32_t ih = h0; ih < h1; ih++) {
                        for (int32_t iw = w0; iw < w1; iw++) {
                            const float* in = x + mf_view_offset(xv, n, ih, iw) + c0;
                            for (int32_t c = 0; c < len; c++) {
                                best[c] = in[c] > best[c] ? in[c] : best[c];
                            }
                        }
                    }
                    for (int32_t c = 0; c < len; c++) {
                        out[c0 + c] = mf_activate(best[c], act);
                    }
                }
            }
        }
    }
}

/* Averages are summed in double, as the NumPy reference does, and rounded once. */
void mf_avg_pool2d_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                       const mf_pool* p, const mf_range_f32* act) {
    double sums[MF_POOL_BLOCK];
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            for (int32_t ow = 0; ow < yv->w; ow++) {
                int32_t h0, h1, w0, w1;
                window(p, xv, oh, ow, &h0, &h1, &w0, &w1);
                const double count =
                    p->count_include_pad ? (double)(p->kh * p->kw) : (double)((h1 - h0) * (w1 - w0));
                float* out = y + mf_view_offset(yv, n, oh, ow);
                for (int32_t c0 = 0; c0 < yv->c; c0 += MF_POOL_BLOCK) {
                    const int32_t len = mf_min_i32(MF_POOL_BLOCK, yv->c - c0);
                    for (int32_t c = 0; c < len; c++) {
                        sums[c] = 0.0;
                    }
                    for (int32_t ih = h0; ih < h1; ih++) {
                        for (int32_t iw = w0; iw < w1; iw++) {
                            const float* in = x + mf_view_offset(xv, n, ih, iw) + c0;
                            for (int32_t c = 0; c < len; c++) {
                                sums[c] += in[c];
                            }
                        }
                    }
                    for (int32_t c = 0; c < len; c++) {
                        out[c0 + c] = mf_activate((float)(sums[c] / count), act);
                    }
                }
            }
        }
    }
}

void mf_max_pool2d_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_pool* p, const mf_range_s8* act) {
    int8_t best[MF_POOL_BLOCK];
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            for (int32_t ow = 0; ow < yv->w; ow++) {
                int32_t h0, h1, w0, w1;
                window(p, xv, oh, ow, &h0, &h1, &w0, &w1);
                int8_t* out = y + mf_view_offset(yv, n, oh, ow);
                for (int32_t c0 = 0; c0 < yv->c; c0 += MF_POOL_BLOCK) {
                    const int32_t len = mf_min_i32(MF_POOL_BLOCK, yv->c - c0);
                    for (int32_t c = 0; c < len; c++) {
                        best[c] = INT8_MIN;
                    }
                    for (int32_t ih = h0; ih < h1; ih++) {
                        for (int32_t iw = w0; iw < w1; iw++) {
                            const int8_t* in = x + mf_view_offset(xv, n, ih, iw) + c0;
                            for (int32_t c = 0; c < len; c++) {
                                best[c] = in[c] > best[c] ? in[c] : best[c];
                            }
                        }
                    }
                    for (int32_t c = 0; c < len; c++) {
                        out[c0 + c] = (int8_t)mf_clamp_i32(best[c], act->min, act->max);
                    }
                }
            }
        }
    }
}

void mf_avg_pool2d_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_pool* p, const mf_range_s8* act) {
    int32_t sums[MF_POOL_BLOCK];
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            for (int32_t ow = 0; ow < yv->w; ow++) {
                int32_t h0, h1, w0, w1;
                window(p, xv, oh, ow, &h0, &h1, &w0, &w1);
                const int32_t count = p->count_include_pad ? p->kh * p->kw : (h1 - h0) * (w1 - w0);
                int8_t* out = y + mf_view_offset(yv, n, oh, ow);
                for (int32_t c0 = 0; c0 < yv->c; c0 += MF_POOL_BLOCK) {
                    const int32_t len = mf_min_i32(MF_POOL_BLOCK, yv->c - c0);
                    for (int32_t c = 0; c < len; c++) {
                        sums[c] = 0;
                    }
                    for (int32_t ih = h0; ih < h1; ih++) {
                        for (int32_t iw = w0; iw < w1; iw++) {
                            const int8_t* in = x + mf_view_offset(xv, n, ih, iw) + c0;
                            for (int32_t c = 0; c < len; c++) {
                                sums[c] += in[c];
                            }
                        }
                    }
                    for (int32_t c = 0; c < len; c++) {
                        /* Round half away from zero: C division truncates toward zero. */
                        const int32_t s = sums[c];
                        const int32_t average =
                            s > 0 ? (s + count / 2) / count : (s - count / 2) / count;
                        out[c0 + c] = (int8_t)mf_clamp_i32(average, act->min, act->max);
                    }
                }
            }
        }
    }
}

/* ---- reductions ----------------------------------------------------------------------------
 * Every output element reduces the box of x where y's dim is 1 (the reduced axes), walked
 * with an odometer. The reduced box's element count is the product of those x dims. */

typedef struct {
    int32_t rank;
    int32_t out_dims[MF_MAX_RANK];   /* y's dims: the outer odometer */
    int32_t box_dims[MF_MAX_RANK];   /* reduced x dims (1 elsewhere): the inner odometer */
} reduction;

static reduction reduction_of(const mf_nd* xv, const mf_nd* yv) {
    reduction r;
    r.rank = xv->rank;
    for (int32_t d = 0; d < xv->rank; d++) {
        r.out_dims[d] = yv->dims[d];
        r.box_dims[d] = (yv->dims[d] == 1) ? xv->dims[d] : 1;
    }
    return r;
}

/* Advance an index over dims (last axis fastest); returns 0 after the last index. */
static int32_t next_index(int32_t rank, const int32_t* dims, int32_t* index) {
    for (int32_t d = rank - 1; d >= 0; d--) {
        if (++index[d] < dims[d]) {
            return 1;
        }
        index[d] = 0;
    }
    return 0;
}

static int32_t offset_of(int32_t rank, const int32_t* strides, const int32_t* index) {
    int32_t offset = 0;
    for (int32_t d = 0; d < rank; d++) {
        offset += index[d] * strides[d];
    }
    return offset;
}

static int32_t count_of(int32_t rank, const int32_t* dims) {
    int32_t count = 1;
    for (int32_t d = 0; d < rank; d++) {
        count *= dims[d];
    }
    return count;
}

enum { MF_REDUCE_MEAN, MF_REDUCE_MAX };

/* One output element's reduction, starting at x + base. */
static double reduce_f32(const float* x, const mf_nd* xv, const reduction* r, int32_t how) {
    int32_t index[MF_MAX_RANK] = {0};
    double total = how == MF_REDUCE_MEAN ? 0.0 : -INFINITY;
    do {
        const double v = x[offset_of(r->rank, xv->strides, index)];
        total = how == MF_REDUCE_MEAN ? total + v : (v > total ? v : total);
    } while (next_index(r->rank, r->box_dims, index));
    return total;
}

static void reduce_all_f32(const float* x, const mf_nd* xv, float* y, const mf_nd* yv,
                           int32_t how) {
    const reduction r = reduction_of(xv, yv);
    const double count = (double)count_of(r.rank, r.box_dims);
    int32_t index[MF_MAX_RANK] = {0};
    if (count_of(r.rank, r.out_dims) == 0) {
        return;
    }
    do {
        const double v = reduce_f32(x + offset_of(r.rank, xv->strides, index), xv, &r, how);
        y[offset_of(r.rank, yv->strides, index)] = (float)(how == MF_REDUCE_MEAN ? v / count : v);
    } while (next_index(r.rank, r.out_dims, index));
}

void mf_mean_f32(const float* x, const mf_nd* xv, float* y, const mf_nd* yv) {
    reduce_all_f32(x, xv, y, yv, MF_REDUCE_MEAN);
}

void mf_reduce_max_f32(const float* x, const mf_nd* xv, float* y, const mf_nd* yv) {
    reduce_all_f32(x, xv, y, yv, MF_REDUCE_MAX);
}

static int32_t reduce_s8(const int8_t* x, const mf_nd* xv, const reduction* r, int32_t how) {
    int32_t index[MF_MAX_RANK] = {0};
    int32_t total = how == MF_REDUCE_MEAN ? 0 : INT8_MIN;
    do {
        const int32_t v = x[offset_of(r->rank, xv->strides, index)];
        total = how == MF_REDUCE_MEAN ? total + v : mf_max_i32(v, total);
    } while (next_index(r->rank, r->box_dims, index));
    return total;
}

void mf_mean_s8(const int8_t* x, const mf_nd* xv, int8_t* y, const mf_nd* yv,
                const mf_mean_s8_params* p) {
    const reduction r = reduction_of(xv, yv);
    const int32_t count = count_of(r.rank, r.box_dims);
    int32_t index[MF_MAX_RANK] = {0};
    if (count_of(r.rank, r.out_dims) == 0) {
        return;
    }
    do {
        const int32_t total = reduce_s8(x + offset_of(r.rank, xv->strides, index), xv, &r,
                                        MF_REDUCE_MEAN);
        const int32_t centered = mf_wrap32((int64_t)total + (int64_t)p->input_offset * count);
        const int32_t v = mf_mbqm(centered, p->multiplier, p->shift) + p->output_offset;
        y[offset_of(r.rank, yv->strides, index)] = (int8_t)mf_clamp_i32(v, -128, 127);
    } while (next_index(r.rank, r.out_dims, index));
}

void mf_reduce_max_s8(const int8_t* x, const mf_nd* xv, int8_t* y, const mf_nd* yv) {
    const reduction r = reduction_of(xv, yv);
    int32_t index[MF_MAX_RANK] = {0};
    if (count_of(r.rank, r.out_dims) == 0) {
        return;
    }
    do {
        y[offset_of(r.rank, yv->strides, index)] = (int8_t)reduce_s8(
            x + offset_of(r.rank, xv->strides, index), xv, &r, MF_REDUCE_MAX);
    } while (next_index(r.rank, r.out_dims, index));
}

/* ---- pooling in place ----------------------------------------------------------------------
 * As memfit.planning.storage plans it: channel c of batch n is pooled into `channel` (Ho*Wo
 * elements), then stored at the output's channel-c positions, which may be the input's. */

static void pool_inplace_f32(int32_t average, const float* x, const mf_view* xv, float* y,
                             const mf_view* yv, const mf_pool* p, const mf_range_f32* act,
                             float* channel) {
    for (int32_t c = 0; c < yv->c; c++) {
        for (int32_t n = 0; n < yv->n; n++) {
            for (int32_t oh = 0; oh < yv->h; oh++) {
                for (int32_t ow = 0; ow < yv->w; ow++) {
                    int32_t h0, h1, w0, w1;
                    window(p, xv, oh, ow, &h0, &h1, &w0, &w1);
                    double total = average ? 0.0 : -INFINITY;
                    for (int32_t ih = h0; ih < h1; ih++) {
                        for (int32_t iw = w0; iw < w1; iw++) {
                            const double v = x[mf_view_offset(xv, n, ih, iw) + c];
                            total = average ? total + v : (v > total ? v : total);
                        }
                    }
                    if (average) {
                        total /= p->count_include_pad ? (double)(p->kh * p->kw)
                                                      : (double)((h1 - h0) * (w1 - w0));
                    }
                    channel[oh * yv->w + ow] = mf_activate((float)total, act);
                }
            }
            for (int32_t oh = 0; oh < yv->h; oh++) {
                for (int32_t ow = 0; ow < yv->w; ow++) {
                    y[mf_view_offset(yv, n, oh, ow) + c] = channel[oh * yv->w + ow];
                }
            }
        }
    }
}

static void pool_inplace_s8(int32_t average, const int8_t* x, const mf_view* xv, int8_t* y,
                            const mf_view* yv, const mf_pool* p, const mf_range_s8* act,
                            int8_t* channel) {
    for (int32_t c = 0; c < yv->c; c++) {
        for (int32_t n = 0; n < yv->n; n++) {
            for (int32_t oh = 0; oh < yv->h; oh++) {
                for (int32_t ow = 0; ow < yv->w; ow++) {
                    int32_t h0, h1, w0, w1;
                    window(p, xv, oh, ow, &h0, &h1, &w0, &w1);
                    int32_t total = average ? 0 : INT8_MIN;
                    for (int32_t ih = h0; ih < h1; ih++) {
                        for (int32_t iw = w0; iw < w1; iw++) {
                            const int32_t v = x[mf_view_offset(xv, n, ih, iw) + c];
                            total = average ? total + v : mf_max_i32(v, total);
                        }
                    }
                    if (average) {
                        const int32_t count =
                            p->count_include_pad ? p->kh * p->kw : (h1 - h0) * (w1 - w0);
                        total = total > 0 ? (total + count / 2) / count
                                          : (total - count / 2) / count;
                    }
                    channel[oh * yv->w + ow] = (int8_t)mf_clamp_i32(total, act->min, act->max);
                }
            }
            for (int32_t oh = 0; oh < yv->h; oh++) {
                for (int32_t ow = 0; ow < yv->w; ow++) {
                    y[mf_view_offset(yv, n, oh, ow) + c] = channel[oh * yv->w + ow];
                }
            }
        }
    }
}

void mf_max_pool2d_inplace_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                               const mf_pool* p, const mf_range_f32* act, float* channel) {
    pool_inplace_f32(0, x, xv, y, yv, p, act, channel);
}

void mf_avg_pool2d_inplace_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                               const mf_pool* p, const mf_range_f32* act, float* channel) {
    pool_inplace_f32(1, x, xv, y, yv, p, act, channel);
}

void mf_max_pool2d_inplace_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                              const mf_pool* p, const mf_range_s8* act, int8_t* channel) {
    pool_inplace_s8(0, x, xv, y, yv, p, act, channel);
}

void mf_avg_pool2d_inplace_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                              const mf_pool* p, const mf_range_s8* act, int8_t* channel) {
    pool_inplace_s8(1, x, xv, y, yv, p, act, channel);
}
