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


/* Output pixels [ow0, ow1) of row oh of batch n of a pooling, channels [c0, c0 + len), stored at
 * out[(ow - ow0) * stride + c - c0]. Windows are clipped to the input; channels are innermost
 * and contiguous so the loops vectorize. Float averages are summed in double, as the NumPy
 * reference does, and rounded once; float maxima are exact in either. */
static void pool_pixels_f32(int32_t average, const float* x, const mf_view* xv, const mf_pool* p,
                            const mf_range_f32* act, int32_t n, int32_t oh, int32_t ow0,
                            int32_t ow1, int32_t c0, int32_t len, float* out, int32_t stride) {
    double sums[MF_POOL_BLOCK];
    float best[MF_POOL_BLOCK];
    for (int32_t ow = ow0; ow < ow1; ow++) {
        int32_t h0, h1, w0, w1;
        window(p, xv, oh, ow, &h0, &h1, &w0, &w1);
        const double count =
            p->count_include_pad ? (double)(p->kh * p->kw) : (double)((h1 - h0) * (w1 - w0));
        for (int32_t b0 = 0; b0 < len; b0 += MF_POOL_BLOCK) {
            const int32_t block = mf_min_i32(MF_POOL_BLOCK, len - b0);
            float* dst = out + (size_t)(ow - ow0) * stride + b0;
            if (average) {
                for (int32_t c = 0; c < block; c++) {
                    sums[c] = 0.0;
                }
            } else {
                for (int32_t c = 0; c < block; c++) {
                    best[c] = -INFINITY;
                }
            }
            for (int32_t ih = h0; ih < h1; ih++) {
                for (int32_t iw = w0; iw < w1; iw++) {
                    const float* restrict in = x + mf_view_offset(xv, n, ih, iw) + c0 + b0;
                    if (average) {
                        for (int32_t c = 0; c < block; c++) {
                            sums[c] += in[c];
                        }
                    } else {
                        for (int32_t c = 0; c < block; c++) {
                            best[c] = in[c] > best[c] ? in[c] : best[c];
                        }
                    }
                }
            }
            if (average) {
                for (int32_t c = 0; c < block; c++) {
                    best[c] = (float)(sums[c] / count);
                }
            }
            mf_activate_row(best, NULL, act, block, dst);
        }
    }
}

static void pool_pixels_s8(int32_t average, const int8_t* x, const mf_view* xv, const mf_pool* p,
                           const mf_range_s8* act, int32_t n, int32_t oh, int32_t ow0,
                           int32_t ow1, int32_t c0, int32_t len, int8_t* out, int32_t stride) {
    int32_t acc[MF_POOL_BLOCK];
    for (int32_t ow = ow0; ow < ow1; ow++) {
        int32_t h0, h1, w0, w1;
        window(p, xv, oh, ow, &h0, &h1, &w0, &w1);
        const int32_t count = p->count_include_pad ? p->kh * p->kw : (h1 - h0) * (w1 - w0);
        for (int32_t b0 = 0; b0 < len; b0 += MF_POOL_BLOCK) {
            const int32_t block = mf_min_i32(MF_POOL_BLOCK, len - b0);
            int8_t* dst = out + (size_t)(ow - ow0) * stride + b0;
            for (int32_t c = 0; c < block; c++) {
                acc[c] = average ? 0 : INT8_MIN;
            }
            for (int32_t ih = h0; ih < h1; ih++) {
                for (int32_t iw = w0; iw < w1; iw++) {
                    const int8_t* restrict in = x + mf_view_offset(xv, n, ih, iw) + c0 + b0;
                    if (average) {
                        for (int32_t c = 0; c < block; c++) {
                            acc[c] += in[c];
                        }
                    } else {
                        for (int32_t c = 0; c < block; c++) {
                            acc[c] = in[c] > acc[c] ? in[c] : acc[c];
                        }
                    }
                }
            }
            for (int32_t c = 0; c < block; c++) {
                /* Averages round half away from zero: C division truncates toward zero. */
                const int32_t s = acc[c];
                const int32_t v =
                    !average ? s : (s > 0 ? (s + count / 2) / count : (s - count / 2) / count);
                dst[c] = (int8_t)mf_clamp_i32(v, act->min, act->max);
            }
        }
    }
}

void mf_max_pool2d_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                       const mf_pool* p, const mf_range_f32* act) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            pool_pixels_f32(0, x, xv, p, act, n, oh, 0, yv->w, 0, yv->c,
                            y + mf_view_offset(yv, n, oh, 0), yv->sw);
        }
    }
}

void mf_avg_pool2d_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                       const mf_pool* p, const mf_range_f32* act) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            pool_pixels_f32(1, x, xv, p, act, n, oh, 0, yv->w, 0, yv->c,
                            y + mf_view_offset(yv, n, oh, 0), yv->sw);
        }
    }
}

void mf_max_pool2d_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_pool* p, const mf_range_s8* act) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            pool_pixels_s8(0, x, xv, p, act, n, oh, 0, yv->w, 0, yv->c,
                           y + mf_view_offset(yv, n, oh, 0), yv->sw);
        }
    }
}

void mf_avg_pool2d_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_pool* p, const mf_range_s8* act) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            pool_pixels_s8(1, x, xv, p, act, n, oh, 0, yv->w, 0, yv->c,
                           y + mf_view_offset(yv, n, oh, 0), yv->sw);
        }
    }
}

/* ---- reductions ----------------------------------------------------------------------------
 * Every output element reduces the box of x where y's dim is 1 (the reduced axes). When the
 * last axis is kept (a mean over H and W in NHWC), rows of it are reduced together, in chunks
 * of MF_REDUCE_ROW, contiguous and vectorizable; otherwise element by element. */

#define MF_REDUCE_ROW 256

enum { MF_REDUCE_MEAN, MF_REDUCE_MAX };

typedef struct {
    int32_t rank;                    /* axes walked by the odometers */
    int32_t out_dims[MF_MAX_RANK];   /* y's dims (the outer walk) */
    int32_t box_dims[MF_MAX_RANK];   /* reduced x dims, 1 elsewhere (the inner walk) */
    int32_t row;                     /* length of the kept last axis, or 1 */
    int32_t count;                   /* elements reduced into each output */
} reduction;

static reduction reduction_of(const mf_nd* xv, const mf_nd* yv) {
    reduction r;
    const int32_t last = xv->rank - 1;
    const int32_t rows = xv->rank > 0 && yv->dims[last] == xv->dims[last] &&
                         xv->strides[last] == 1 && yv->strides[last] == 1;
    r.rank = rows ? last : xv->rank;
    r.row = rows ? xv->dims[last] : 1;
    r.count = 1;
    for (int32_t d = 0; d < r.rank; d++) {
        r.out_dims[d] = yv->dims[d];
        r.box_dims[d] = (yv->dims[d] == 1) ? xv->dims[d] : 1;
        r.count *= r.box_dims[d];
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

static ptrdiff_t offset_of(int32_t rank, const int32_t* strides, const int32_t* index) {
    ptrdiff_t offset = 0;
    for (int32_t d = 0; d < rank; d++) {
        offset += (ptrdiff_t)index[d] * strides[d];
    }
    return offset;
}

static int32_t empty(const mf_nd* v) {
    for (int32_t d = 0; d < v->rank; d++) {
        if (v->dims[d] <= 0) {
            return 1;
        }
    }
    return 0;
}

/* Float: sums in double (as the NumPy reference), maxima in float. */
static void reduce_f32(int32_t how, const float* x, const mf_nd* xv, float* y, const mf_nd* yv) {
    const reduction r = reduction_of(xv, yv);
    double acc[MF_REDUCE_ROW];
    int32_t out[MF_MAX_RANK] = {0};
    if (empty(xv)) {
        return;
    }
    do {
        const float* base = x + offset_of(r.rank, xv->strides, out);
        float* dst = y + offset_of(r.rank, yv->strides, out);
        for (int32_t c0 = 0; c0 < r.row; c0 += MF_REDUCE_ROW) {
            const int32_t len = mf_min_i32(MF_REDUCE_ROW, r.row - c0);
            int32_t box[MF_MAX_RANK] = {0};
            for (int32_t c = 0; c < len; c++) {
                acc[c] = how == MF_REDUCE_MEAN ? 0.0 : -INFINITY;
            }
            do {
                const float* in = base + offset_of(r.rank, xv->strides, box) + c0;
                if (how == MF_REDUCE_MEAN) {
                    for (int32_t c = 0; c < len; c++) {
                        acc[c] += in[c];
                    }
                } else {
                    for (int32_t c = 0; c < len; c++) {
                        acc[c] = in[c] > acc[c] ? in[c] : acc[c];
                    }
                }
            } while (next_index(r.rank, r.box_dims, box));
            for (int32_t c = 0; c < len; c++) {
                dst[c0 + c] = (float)(how == MF_REDUCE_MEAN ? acc[c] / r.count : acc[c]);
            }
        }
    } while (next_index(r.rank, r.out_dims, out));
}

void mf_mean_f32(const float* x, const mf_nd* xv, float* y, const mf_nd* yv) {
    reduce_f32(MF_REDUCE_MEAN, x, xv, y, yv);
}

void mf_reduce_max_f32(const float* x, const mf_nd* xv, float* y, const mf_nd* yv) {
    reduce_f32(MF_REDUCE_MAX, x, xv, y, yv);
}

/* int8: sums in int32 (exact), then TFLite Micro's MEAN rescale; or the maximum. */
static void reduce_s8(int32_t how, const int8_t* x, const mf_nd* xv, int8_t* y, const mf_nd* yv,
                      const mf_mean_s8_params* p) {
    const reduction r = reduction_of(xv, yv);
    int32_t acc[MF_REDUCE_ROW];
    int32_t out[MF_MAX_RANK] = {0};
    if (empty(xv)) {
        return;
    }
    do {
        const int8_t* base = x + offset_of(r.rank, xv->strides, out);
        int8_t* dst = y + offset_of(r.rank, yv->strides, out);
        for (int32_t c0 = 0; c0 < r.row; c0 += MF_REDUCE_ROW) {
            const int32_t len = mf_min_i32(MF_REDUCE_ROW, r.row - c0);
            int32_t box[MF_MAX_RANK] = {0};
            for (int32_t c = 0; c < len; c++) {
                acc[c] = how == MF_REDUCE_MEAN ? 0 : INT8_MIN;
            }
            do {
                const int8_t* in = base + offset_of(r.rank, xv->strides, box) + c0;
                if (how == MF_REDUCE_MEAN) {
                    for (int32_t c = 0; c < len; c++) {
                        acc[c] += in[c];
                    }
                } else {
                    for (int32_t c = 0; c < len; c++) {
                        acc[c] = mf_max_i32(in[c], acc[c]);
                    }
                }
            } while (next_index(r.rank, r.box_dims, box));
            for (int32_t c = 0; c < len; c++) {
                int32_t v = acc[c];
                if (how == MF_REDUCE_MEAN) {
                    const int32_t centered =
                        mf_wrap32((int64_t)v + (int64_t)p->input_offset * r.count);
                    v = mf_clamp_i32(mf_mbqm(centered, p->multiplier, p->shift) + p->output_offset,
                                     -128, 127);
                }
                dst[c0 + c] = (int8_t)v;
            }
        }
    } while (next_index(r.rank, r.out_dims, out));
}

void mf_mean_s8(const int8_t* x, const mf_nd* xv, int8_t* y, const mf_nd* yv,
                const mf_mean_s8_params* p) {
    reduce_s8(MF_REDUCE_MEAN, x, xv, y, yv, p);
}

void mf_reduce_max_s8(const int8_t* x, const mf_nd* xv, int8_t* y, const mf_nd* yv) {
    reduce_s8(MF_REDUCE_MAX, x, xv, y, yv, NULL);
}

/* ---- pooling in place ----------------------------------------------------------------------
 * As memfit.planning.storage plans it, output channel c over input channel c: pixels in order,
 * straight into the output or through the planner's one-channel temporary (mf_inplace.c). */

typedef struct {
    int32_t average;
    const void* x;
    const mf_view* xv;
    const mf_pool* p;
    const void* act;
} pool_context;

static void pool_pixels_inplace_f32(const void* context, int32_t n, int32_t oh, int32_t ow0,
                                    int32_t ow1, int32_t c0, int32_t len, void* out,
                                    int32_t stride) {
    const pool_context* k = (const pool_context*)context;
    pool_pixels_f32(k->average, (const float*)k->x, k->xv, k->p, (const mf_range_f32*)k->act, n,
                    oh, ow0, ow1, c0, len, (float*)out, stride);
}

static void pool_pixels_inplace_s8(const void* context, int32_t n, int32_t oh, int32_t ow0,
                                   int32_t ow1, int32_t c0, int32_t len, void* out,
                                   int32_t stride) {
    const pool_context* k = (const pool_context*)context;
    pool_pixels_s8(k->average, (const int8_t*)k->x, k->xv, k->p, (const mf_range_s8*)k->act, n,
                   oh, ow0, ow1, c0, len, (int8_t*)out, stride);
}

static void pool_inplace(int32_t average, int32_t element_size, mf_pixels_fn pixels,
                         const void* x, const mf_view* xv, void* y, const mf_view* yv,
                         const mf_pool* p, const void* act, void* channel) {
    const pool_context context = {average, x, xv, p, act};
    const mf_inplace op = {xv, yv, element_size, p->stride_h, p->stride_w, p->pad_top,
                           p->pad_left, 1, pixels, &context};
    mf_channelwise_inplace(&op, mf_inplace_block_channels(&op, x, y), x, y, channel);
}

void mf_max_pool2d_inplace_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                               const mf_pool* p, const mf_range_f32* act, float* channel) {
    pool_inplace(0, sizeof(float), pool_pixels_inplace_f32, x, xv, y, yv, p, act, channel);
}

void mf_avg_pool2d_inplace_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                               const mf_pool* p, const mf_range_f32* act, float* channel) {
    pool_inplace(1, sizeof(float), pool_pixels_inplace_f32, x, xv, y, yv, p, act, channel);
}

void mf_max_pool2d_inplace_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                              const mf_pool* p, const mf_range_s8* act, int8_t* channel) {
    pool_inplace(0, sizeof(int8_t), pool_pixels_inplace_s8, x, xv, y, yv, p, act, channel);
}

void mf_avg_pool2d_inplace_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                              const mf_pool* p, const mf_range_s8* act, int8_t* channel) {
    pool_inplace(1, sizeof(int8_t), pool_pixels_inplace_s8, x, xv, y, yv, p, act, channel);
}
