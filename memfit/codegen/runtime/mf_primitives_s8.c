/* The int8 convolution primitives of mf_primitives.h: direct, im2col / im2row + GEMM, kn2row
 * (and its accumulating variant) and 1x1 as GEMM, NHWC and NCHW. Each computes what
 * mf_conv2d_s8 computes (TFLite Micro's int8 conv): int32 sums of (x + input_offset) * w over
 * the taps inside the input, plus bias, requantized per output channel by the runtime's
 * mf_requant_one / mf_requant_channels. Integer sums do not depend on their order, so every
 * primitive is bit-exact with the others. Weights are arranged as for the float primitives
 * (memfit.selection.primitives.arrange_weights), as int8. Workspace sizes here and in
 * memfit.selection.primitives must agree; the tests check both against the bytes touched. */
#include <string.h>

#include "mf_internal.h"
#include "mf_primitives.h"

/* ---- a GEMM every primitive shares ---------------------------------------------------------
 * sums[M][N] = sum over k of (A[m][k] + a_offset) * (B[k][n] + b_offset), int8 A and B
 * row-major with leading dimensions lda and ldb (one of the offsets is the input offset, the
 * other 0), in register tiles of GEMM_MR x GEMM_NR over the whole depth; each tile goes to a
 * sink: added into int32 accumulators, or requantized to int8 outputs. */
#define GEMM_MR 4
#define GEMM_NR 16

typedef struct {
    int32_t* acc;                /* int32 sink: acc[m * ld + n] (+)= sums (when acc != NULL) */
    int32_t accumulate;          /* int32 sink: add to acc (else overwrite it) */
    int8_t* y;                   /* int8 sink: y[m * ld + n] = requantized sums + bias */
    int32_t ld;
    const int32_t* bias;         /* may be NULL */
    const mf_requant_s8* q;
    int32_t channel0;            /* the output channel of row 0 (channels_in_rows) or column 0 */
    int32_t channels_in_rows;    /* NCHW: A is the weights, rows are output channels */
} gemm_sink;

static inline int32_t add_wrap(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static void store_tile(const int32_t* tile, int32_t i0, int32_t j0, int32_t rows, int32_t cols,
                       const gemm_sink* s) {
    for (int32_t i = 0; i < rows; i++) {
        const int32_t* t = tile + i * GEMM_NR;
        const size_t at = (size_t)(i0 + i) * s->ld + j0;
        if (s->acc != NULL) {
            int32_t* restrict c = s->acc + at;
            for (int32_t j = 0; j < cols; j++) {
                c[j] = s->accumulate ? add_wrap(c[j], t[j]) : t[j];
            }
        } else if (s->channels_in_rows) {
            const int32_t o = s->channel0 + i0 + i;
            const int32_t b = s->bias != NULL ? s->bias[o] : 0;
            for (int32_t j = 0; j < cols; j++) {
                s->y[at + j] = mf_requant_one(add_wrap(t[j], b), s->q, o);
            }
        } else {
            mf_requant_channels(t, s->bias, s->q, s->channel0 + j0, cols, s->y + at);
        }
    }
}

static void gemm_tile_full(int32_t depth, const int8_t* restrict a, int32_t lda, int32_t a_offset,
                           const int8_t* restrict b, int32_t ldb, int32_t b_offset,
                           int32_t* restrict tile) {
    int32_t acc[GEMM_MR][GEMM_NR];
    memset(acc, 0, sizeof acc);
    for (int32_t k = 0; k < depth; k++) {
        const int8_t* restrict row = b + (size_t)k * ldb;
        int16_t bv[GEMM_NR];
        for (int32_t j = 0; j < GEMM_NR; j++) {
            bv[j] = (int16_t)(row[j] + b_offset);
        }
        MF_UNROLL
        for (int32_t i = 0; i < GEMM_MR; i++) {
            const int16_t av = (int16_t)(a[(size_t)i * lda + k] + a_offset);
            for (int32_t j = 0; j < GEMM_NR; j++) {
                acc[i][j] += av * bv[j];
            }
        }
    }
    memcpy(tile, acc, sizeof acc);
}

static void gemm_tile_edge(int32_t rows, int32_t cols, int32_t depth, const int8_t* a,
                           int32_t lda, int32_t a_offset, const int8_t* b, int32_t ldb,
                           int32_t b_offset, int32_t* tile) {
    for (int32_t i = 0; i < rows; i++) {
        int32_t acc[GEMM_NR] = {0};
        for (int32_t k = 0; k < depth; k++) {
            const int32_t av = a[(size_t)i * lda + k] + a_offset;
            const int8_t* row = b + (size_t)k * ldb;
            for (int32_t j = 0; j < cols; j++) {
                acc[j] += av * (row[j] + b_offset);
            }
        }
        memcpy(tile + i * GEMM_NR, acc, sizeof(int32_t) * (size_t)cols);
    }
}

static void gemm_s8(int32_t m, int32_t n, int32_t depth, const int8_t* a, int32_t lda,
                    int32_t a_offset, const int8_t* b, int32_t ldb, int32_t b_offset,
                    const gemm_sink* sink) {
    int32_t tile[GEMM_MR * GEMM_NR];
    for (int32_t j0 = 0; j0 < n; j0 += GEMM_NR) {
        const int32_t cols = mf_min_i32(GEMM_NR, n - j0);
        for (int32_t i0 = 0; i0 < m; i0 += GEMM_MR) {
            const int32_t rows = mf_min_i32(GEMM_MR, m - i0);
            const int8_t* ap = a + (size_t)i0 * lda;
            if (rows == GEMM_MR && cols == GEMM_NR) {
                gemm_tile_full(depth, ap, lda, a_offset, b + j0, ldb, b_offset, tile);
            } else {
                gemm_tile_edge(rows, cols, depth, ap, lda, a_offset, b + j0, ldb, b_offset, tile);
            }
            store_tile(tile, i0, j0, rows, cols, sink);
        }
    }
}

/* Requantizes int32 sums to the output: NHWC `pixels` rows of `count` channels from channel
 * o0 (sums dense, outputs `stride` apart), or NCHW `count` planes of `pixels` from channel o0. */
static void requant_nhwc(const int32_t* sums, int32_t pixels, int32_t count, const int32_t* bias,
                         const mf_requant_s8* q, int32_t o0, int8_t* y, int32_t stride) {
    for (int32_t r = 0; r < pixels; r++) {
        mf_requant_channels(sums + (size_t)r * count, bias, q, o0, count, y + (size_t)r * stride);
    }
}

static void requant_nchw(const int32_t* sums, int32_t pixels, int32_t count, const int32_t* bias,
                         const mf_requant_s8* q, int32_t o0, int8_t* y) {
    for (int32_t o = 0; o < count; o++) {
        const int32_t b = bias != NULL ? bias[o0 + o] : 0;
        for (int32_t r = 0; r < pixels; r++) {
            const size_t at = (size_t)o * pixels + r;
            y[at] = mf_requant_one(add_wrap(sums[at], b), q, o0 + o);
        }
    }
}

/* ---- direct ---------------------------------------------------------------------------------
 * NHWC weights [groups][KH][KW][C/groups][M/groups]; NCHW weights [M][C/groups][KH][KW]. Sums
 * of DIRECT_BLOCK output channels (NHWC) or output columns (NCHW) at a time on the stack. */
#define DIRECT_BLOCK 64

/* One output channel over a dense input (groups 1, pixels of exactly C channels, no column
 * dilation): a kernel row's taps inside the map are one contiguous run of x and of w, so each
 * row is a single dot product the compiler vectorizes (an FDT partition of one channel). */
static void direct_one_channel_s8(const int8_t* x, const int8_t* w, const int32_t* bias,
                                  int8_t* y, const mf_prim_conv* p, const mf_requant_s8* q) {
    const int32_t cin = p->c, offset = q->input_offset;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t oh = 0; oh < p->oh; oh++) {
            for (int32_t ow = 0; ow < p->ow; ow++) {
                const int32_t left = ow * p->stride_w - p->pad_left;
                const int32_t j0 = mf_max_i32(0, -left), j1 = mf_min_i32(p->kw, p->w - left);
                int32_t sum = 0;
                for (int32_t i = 0; i < p->kh && j0 < j1; i++) {
                    const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                    if (ih < 0 || ih >= p->h) {
                        continue;
                    }
                    const int8_t* restrict xp =
                        x + ((size_t)(n * p->h + ih) * p->w + left + j0) * (size_t)cin;
                    const int8_t* restrict wp = w + ((size_t)i * p->kw + j0) * (size_t)cin;
                    const int32_t length = (j1 - j0) * cin;
                    int32_t row = 0;
                    for (int32_t k = 0; k < length; k++) {
                        row += (xp[k] + offset) * wp[k];
                    }
                    sum = add_wrap(sum, row);
                }
                int8_t* out = y + ((size_t)(n * p->oh + oh) * p->ow + ow) * p->y_pixel_stride;
                mf_requant_channels(&sum, bias, q, 0, 1, out);
            }
        }
    }
}

MF_PRIMITIVE_S8(mf_prim_direct_nhwc_s8) {
    (void)workspace;
    const int32_t cin = p->c / p->groups, og = p->m / p->groups, offset = q->input_offset;
    if (p->m == 1 && p->groups == 1 && p->x_pixel_stride == p->c && p->dilation_w == 1) {
        direct_one_channel_s8(x, w, bias, y, p, q);
        return;
    }
    int32_t sums[DIRECT_BLOCK];
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t oh = 0; oh < p->oh; oh++) {
            for (int32_t ow = 0; ow < p->ow; ow++) {
                int8_t* out = y + ((size_t)(n * p->oh + oh) * p->ow + ow) * p->y_pixel_stride;
                for (int32_t g = 0; g < p->groups; g++) {
                    for (int32_t o0 = 0; o0 < og; o0 += DIRECT_BLOCK) {
                        const int32_t count = mf_min_i32(DIRECT_BLOCK, og - o0);
                        memset(sums, 0, sizeof(int32_t) * (size_t)count);
                        for (int32_t i = 0; i < p->kh; i++) {
                            const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                            if (ih < 0 || ih >= p->h) {
                                continue;
                            }
                            for (int32_t j = 0; j < p->kw; j++) {
                                const int32_t iw =
                                    ow * p->stride_w - p->pad_left + j * p->dilation_w;
                                if (iw < 0 || iw >= p->w) {
                                    continue;
                                }
                                const int8_t* xp =
                                    x + ((size_t)(n * p->h + ih) * p->w + iw) * p->x_pixel_stride +
                                    g * cin;
                                const int8_t* wp =
                                    w + ((size_t)(g * p->kh + i) * p->kw + j) * cin * og + o0;
                                for (int32_t c = 0; c < cin; c++) {
                                    const int32_t xv = xp[c] + offset;
                                    const int8_t* restrict wc = wp + (size_t)c * og;
                                    for (int32_t o = 0; o < count; o++) {
                                        sums[o] += xv * wc[o];
                                    }
                                }
                            }
                        }
                        mf_requant_channels(sums, bias, q, g * og + o0, count, out + g * og + o0);
                    }
                }
            }
        }
    }
}

MF_PRIMITIVE_S8(mf_prim_direct_nchw_s8) {
    (void)workspace;
    const int32_t cin = p->c / p->groups, og = p->m / p->groups, offset = q->input_offset;
    const size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
    int32_t sums[DIRECT_BLOCK];
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t o = 0; o < p->m; o++) {
            int8_t* plane = y + ((size_t)n * p->m + o) * out_plane;
            const int32_t b = bias != NULL ? bias[o] : 0;
            const int8_t* xg = x + ((size_t)n * p->c + (o / og) * cin) * in_plane;
            for (int32_t oh = 0; oh < p->oh; oh++) {
                for (int32_t ow0 = 0; ow0 < p->ow; ow0 += DIRECT_BLOCK) {
                    const int32_t ow1 = mf_min_i32(ow0 + DIRECT_BLOCK, p->ow);
                    memset(sums, 0, sizeof(int32_t) * (size_t)(ow1 - ow0));
                    for (int32_t c = 0; c < cin; c++) {
                        for (int32_t i = 0; i < p->kh; i++) {
                            const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                            if (ih < 0 || ih >= p->h) {
                                continue;
                            }
                            for (int32_t j = 0; j < p->kw; j++) {
                                const int32_t wv =
                                    w[(((size_t)o * cin + c) * p->kh + i) * p->kw + j];
                                const int32_t shift = j * p->dilation_w - p->pad_left;
                                int32_t lo, hi;
                                mf_valid_columns(p->ow, p->w, p->stride_w, shift, &lo, &hi);
                                lo = mf_max_i32(lo, ow0);
                                hi = mf_min_i32(hi, ow1);
                                const int8_t* row = xg + c * in_plane + (size_t)ih * p->w + shift;
                                for (int32_t ow = lo; ow < hi; ow++) {
                                    sums[ow - ow0] += (row[ow * p->stride_w] + offset) * wv;
                                }
                            }
                        }
                    }
                    for (int32_t ow = ow0; ow < ow1; ow++) {
                        plane[(size_t)oh * p->ow + ow] =
                            mf_requant_one(add_wrap(sums[ow - ow0], b), q, o);
                    }
                }
            }
        }
    }
}

/* ---- im2col (NCHW) and im2row (NHWC) + GEMM --------------------------------------------------
 * The columns / rows are int8 with the input zero point in padding taps (so that x + offset is
 * 0 there, as if the tap were skipped); the GEMM adds the offset. Weights as direct. */

MF_PRIMITIVE_S8(mf_prim_im2col_nchw_s8) {
    const int32_t cin = p->c / p->groups, og = p->m / p->groups;
    const int32_t depth = cin * p->kh * p->kw, pixels = p->oh * p->ow;
    const size_t in_plane = (size_t)p->h * p->w;
    const int8_t zero = (int8_t)-q->input_offset;
    int8_t* cols = workspace;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            for (int32_t c = 0; c < cin; c++) {
                const int8_t* xplane = x + ((size_t)n * p->c + g * cin + c) * in_plane;
                for (int32_t i = 0; i < p->kh; i++) {
                    for (int32_t j = 0; j < p->kw; j++) {
                        int8_t* col = cols + ((size_t)(c * p->kh + i) * p->kw + j) * pixels;
                        const int32_t shift = j * p->dilation_w - p->pad_left;
                        int32_t lo, hi;
                        mf_valid_columns(p->ow, p->w, p->stride_w, shift, &lo, &hi);
                        for (int32_t oh = 0; oh < p->oh; oh++) {
                            int8_t* out = col + (size_t)oh * p->ow;
                            const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                            if (ih < 0 || ih >= p->h) {
                                memset(out, zero, (size_t)p->ow);
                                continue;
                            }
                            const int8_t* row = xplane + (size_t)ih * p->w + shift;
                            memset(out, zero, (size_t)lo);
                            for (int32_t ow = lo; ow < hi; ow++) {
                                out[ow] = row[ow * p->stride_w];
                            }
                            memset(out + hi, zero, (size_t)(p->ow - hi));
                        }
                    }
                }
            }
            const gemm_sink sink = {NULL, 0, y + ((size_t)n * p->m + g * og) * pixels, pixels, bias,
                                    q, g * og, 1};
            gemm_s8(og, pixels, depth, w + (size_t)g * og * depth, depth, 0, cols, pixels,
                    q->input_offset, &sink);
        }
    }
}

MF_PRIMITIVE_S8(mf_prim_im2row_nhwc_s8) {
    const int32_t cin = p->c / p->groups, og = p->m / p->groups;
    const int32_t depth = cin * p->kh * p->kw, pixels = p->oh * p->ow;
    const int8_t zero = (int8_t)-q->input_offset;
    int8_t* rows = workspace;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            for (int32_t oh = 0; oh < p->oh; oh++) {
                for (int32_t ow = 0; ow < p->ow; ow++) {
                    int8_t* row = rows + ((size_t)oh * p->ow + ow) * depth;
                    for (int32_t i = 0; i < p->kh; i++) {
                        const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                        for (int32_t j = 0; j < p->kw; j++) {
                            const int32_t iw = ow * p->stride_w - p->pad_left + j * p->dilation_w;
                            int8_t* dst = row + (i * p->kw + j) * cin;
                            if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w) {
                                memset(dst, zero, (size_t)cin);
                            } else {
                                memcpy(dst,
                                       x + ((size_t)(n * p->h + ih) * p->w + iw) *
                                               p->x_pixel_stride + g * cin,
                                       (size_t)cin);
                            }
                        }
                    }
                }
            }
            const gemm_sink sink = {NULL, 0, y + (size_t)n * pixels * p->y_pixel_stride + g * og,
                                    p->y_pixel_stride, bias, q, g * og, 0};
            gemm_s8(pixels, og, depth, rows, depth, q->input_offset, w + (size_t)g * depth * og,
                    og, 0, &sink);
        }
    }
}

/* ---- kn2row (stride 1) -----------------------------------------------------------------------
 * Tap (i, j) is a 1x1 convolution of the whole input; output pixel (oh, ow) takes its product
 * at input pixel (oh - pad_top + i * dilation_h, ow - pad_left + j * dilation_w) when that is
 * inside the input. NHWC weights [g][KH][KW][C/g][M/g]; NCHW weights [g][KH][KW][M/g][C/g]. */

/* The int32 product of tap `tap` of group g of image n: [H*W][M/g] (NHWC) or [M/g][H*W]. */
static void tap_product(const int8_t* x, const int8_t* w, const mf_prim_conv* p,
                        const mf_requant_s8* q, int32_t n, int32_t g, int32_t tap, int nchw,
                        int32_t* product) {
    const int32_t cin = p->c / p->groups, og = p->m / p->groups, pixels = p->h * p->w;
    const int8_t* wt = w + ((size_t)g * p->kh * p->kw + tap) * cin * og;
    if (nchw) {
        const gemm_sink sink = {product, 0, NULL, pixels, NULL, q, 0, 0};
        gemm_s8(og, pixels, cin, wt, cin, 0, x + ((size_t)n * p->c + g * cin) * pixels, pixels,
                q->input_offset, &sink);
    } else {
        const gemm_sink sink = {product, 0, NULL, og, NULL, q, 0, 0};
        gemm_s8(pixels, og, cin, x + (size_t)n * pixels * p->x_pixel_stride + g * cin,
                p->x_pixel_stride, q->input_offset, wt, og, 0, &sink);
    }
}

static void kn2row_s8(const int8_t* x, const int8_t* w, const int32_t* bias, int8_t* y,
                      const mf_prim_conv* p, const mf_requant_s8* q, int32_t* products,
                      int nchw) {
    const int32_t og = p->m / p->groups, taps = p->kh * p->kw;
    const size_t product = (size_t)p->h * p->w * og, out_plane = (size_t)p->oh * p->ow;
    int32_t sums[DIRECT_BLOCK];
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            for (int32_t tap = 0; tap < taps; tap++) {
                tap_product(x, w, p, q, n, g, tap, nchw, products + tap * product);
            }
            /* Output pixel by pixel (NHWC: DIRECT_BLOCK channels; NCHW: one channel). */
            const int32_t block = nchw ? 1 : DIRECT_BLOCK;
            for (int32_t o0 = 0; o0 < og; o0 += block) {
                const int32_t count = mf_min_i32(block, og - o0);
                for (int32_t oh = 0; oh < p->oh; oh++) {
                    for (int32_t ow = 0; ow < p->ow; ow++) {
                        memset(sums, 0, sizeof(int32_t) * (size_t)count);
                        for (int32_t tap = 0; tap < taps; tap++) {
                            const int32_t ih = oh - p->pad_top + (tap / p->kw) * p->dilation_h;
                            const int32_t iw = ow - p->pad_left + (tap % p->kw) * p->dilation_w;
                            if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w) {
                                continue;
                            }
                            const size_t pixel = (size_t)ih * p->w + iw;
                            const int32_t* t = products + tap * product;
                            if (nchw) {
                                sums[0] = add_wrap(sums[0], t[(size_t)o0 * p->h * p->w + pixel]);
                            } else {
                                const int32_t* src = t + pixel * og + o0;
                                for (int32_t o = 0; o < count; o++) {
                                    sums[o] = add_wrap(sums[o], src[o]);
                                }
                            }
                        }
                        const int32_t o = g * og + o0;
                        if (nchw) {
                            int8_t* out = y + ((size_t)n * p->m + o) * out_plane;
                            requant_nchw(sums, 1, 1, bias, q, o, out + (size_t)oh * p->ow + ow);
                        } else {
                            int8_t* out =
                                y + ((size_t)(n * p->oh + oh) * p->ow + ow) * p->y_pixel_stride;
                            mf_requant_channels(sums, bias, q, o, count, out + o);
                        }
                    }
                }
            }
        }
    }
}

MF_PRIMITIVE_S8(mf_prim_kn2row_nhwc_s8) { kn2row_s8(x, w, bias, y, p, q, workspace, 0); }

MF_PRIMITIVE_S8(mf_prim_kn2row_nchw_s8) { kn2row_s8(x, w, bias, y, p, q, workspace, 1); }

/* Accumulating: for each tap and output row, the output pixels whose tap is inside the input
 * read one contiguous run of input pixels, so the tap's 1x1 GEMM over that run adds straight
 * into the accumulator; no product is kept. */
static void kn2row_acc_s8(const int8_t* x, const int8_t* w, const int32_t* bias, int8_t* y,
                          const mf_prim_conv* p, const mf_requant_s8* q, int32_t* acc,
                          int nchw) {
    const int32_t cin = p->c / p->groups, og = p->m / p->groups;
    const int32_t in_plane = p->h * p->w, out_plane = p->oh * p->ow;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            memset(acc, 0, sizeof(int32_t) * (size_t)og * out_plane);
            for (int32_t i = 0; i < p->kh; i++) {
                for (int32_t j = 0; j < p->kw; j++) {
                    const int8_t* wt = w + ((size_t)(g * p->kh + i) * p->kw + j) * cin * og;
                    const int32_t shift = j * p->dilation_w - p->pad_left;
                    int32_t lo, hi;
                    mf_valid_columns(p->ow, p->w, 1, shift, &lo, &hi);
                    for (int32_t oh = 0; oh < p->oh && lo < hi; oh++) {
                        const int32_t ih = oh - p->pad_top + i * p->dilation_h;
                        if (ih < 0 || ih >= p->h) {
                            continue;
                        }
                        const int32_t first = ih * p->w + lo + shift; /* input pixel of lo */
                        if (nchw) {
                            const gemm_sink sink = {acc + oh * p->ow + lo, 1, NULL, out_plane,
                                                    NULL, q, 0, 0};
                            gemm_s8(og, hi - lo, cin, wt, cin, 0,
                                    x + ((size_t)n * p->c + g * cin) * in_plane + first, in_plane,
                                    q->input_offset, &sink);
                        } else {
                            const gemm_sink sink = {acc + (size_t)(oh * p->ow + lo) * og, 1,
                                                    NULL, og, NULL, q, 0, 0};
                            gemm_s8(hi - lo, og, cin,
                                    x + ((size_t)n * in_plane + first) * p->x_pixel_stride +
                                        g * cin,
                                    p->x_pixel_stride, q->input_offset, wt, og, 0, &sink);
                        }
                    }
                }
            }
            if (nchw) {
                requant_nchw(acc, out_plane, og, bias, q, g * og,
                             y + ((size_t)n * p->m + g * og) * out_plane);
            } else {
                requant_nhwc(acc, out_plane, og, bias, q, g * og,
                             y + (size_t)n * out_plane * p->y_pixel_stride + g * og,
                             p->y_pixel_stride);
            }
        }
    }
}

MF_PRIMITIVE_S8(mf_prim_kn2row_acc_nhwc_s8) { kn2row_acc_s8(x, w, bias, y, p, q, workspace, 0); }

MF_PRIMITIVE_S8(mf_prim_kn2row_acc_nchw_s8) { kn2row_acc_s8(x, w, bias, y, p, q, workspace, 1); }

/* ---- 1x1 as GEMM -----------------------------------------------------------------------------
 * NHWC: y[pixels][M/g] = x[pixels][C/g] w[C/g][M/g] (weights [g][C/g][M/g]);
 * NCHW: y[M/g][pixels] = w[M/g][C/g] x[C/g][pixels] (weights [M][C/g]); requantized per tile. */

MF_PRIMITIVE_S8(mf_prim_gemm1x1_nhwc_s8) {
    (void)workspace;
    const int32_t cin = p->c / p->groups, og = p->m / p->groups, pixels = p->h * p->w;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            const gemm_sink sink = {NULL, 0, y + (size_t)n * pixels * p->y_pixel_stride + g * og,
                                    p->y_pixel_stride, bias, q, g * og, 0};
            gemm_s8(pixels, og, cin, x + (size_t)n * pixels * p->x_pixel_stride + g * cin,
                    p->x_pixel_stride, q->input_offset, w + (size_t)g * cin * og, og, 0, &sink);
        }
    }
}

MF_PRIMITIVE_S8(mf_prim_gemm1x1_nchw_s8) {
    (void)workspace;
    const int32_t cin = p->c / p->groups, og = p->m / p->groups, pixels = p->h * p->w;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            const gemm_sink sink = {NULL, 0, y + ((size_t)n * p->m + g * og) * pixels, pixels, bias,
                                    q, g * og, 1};
            gemm_s8(og, pixels, cin, w + (size_t)g * og * cin, cin, 0,
                    x + ((size_t)n * p->c + g * cin) * pixels, pixels, q->input_offset, &sink);
        }
    }
}
