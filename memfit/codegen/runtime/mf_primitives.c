/* The convolution primitives of mf_primitives.h: direct, im2col / im2row + GEMM, kn2row (and
 * its accumulating variant), Winograd F(2x2, 3x3), 1x1 as GEMM and depthwise, float32, NHWC
 * and NCHW. Workspace sizes here and in memfit.selection.primitives must agree; the tests
 * check both against the bytes the code touches. */
#include <string.h>

#include "mf_internal.h"
#include "mf_primitives.h"

/* ---- a GEMM every primitive shares ---------------------------------------------------------
 * C[M][N] (+)= A[M][K] B[K][N], row-major with leading dimensions lda, ldb, ldc. Register
 * tiles of GEMM_MR x GEMM_NR (rows of A broadcast against one row of B per step), K in blocks
 * of GEMM_KC so that a panel of B stays in cache while every row block of A passes it. */
#if defined(__AVX512F__)
#define GEMM_MR 6
#define GEMM_NR 32
#else /* 16 vector registers (AVX2): 6 x 32 spilled; 8 x 16 ran 21 -> 25 GMAC/s on an AMD EPYC */
#define GEMM_MR 8
#define GEMM_NR 16
#endif
#define GEMM_KC 256

static void gemm_tile_full(int32_t kc, const float* restrict a, int32_t lda, const float* restrict b,
                           int32_t ldb, float* restrict c, int32_t ldc, int load) {
    float acc[GEMM_MR][GEMM_NR];
    for (int32_t i = 0; i < GEMM_MR; i++) {
        for (int32_t j = 0; j < GEMM_NR; j++) {
            acc[i][j] = load ? c[i * ldc + j] : 0.0f;
        }
    }
    for (int32_t k = 0; k < kc; k++) {
        const float* restrict row = b + (size_t)k * ldb;
        MF_UNROLL
        for (int32_t i = 0; i < GEMM_MR; i++) {
            const float av = a[(size_t)i * lda + k];
            for (int32_t j = 0; j < GEMM_NR; j++) {
                acc[i][j] = MF_FMA(av, row[j], acc[i][j]);
            }
        }
    }
    for (int32_t i = 0; i < GEMM_MR; i++) {
        for (int32_t j = 0; j < GEMM_NR; j++) {
            c[i * ldc + j] = acc[i][j];
        }
    }
}

static void gemm_tile_edge(int32_t rows, int32_t cols, int32_t kc, const float* a, int32_t lda,
                           const float* b, int32_t ldb, float* c, int32_t ldc, int load) {
    for (int32_t i = 0; i < rows; i++) {
        float acc[GEMM_NR];
        for (int32_t j = 0; j < cols; j++) {
            acc[j] = load ? c[(size_t)i * ldc + j] : 0.0f;
        }
        for (int32_t k = 0; k < kc; k++) {
            const float av = a[(size_t)i * lda + k];
            const float* row = b + (size_t)k * ldb;
            for (int32_t j = 0; j < cols; j++) {
                acc[j] = MF_FMA(av, row[j], acc[j]);
            }
        }
        for (int32_t j = 0; j < cols; j++) {
            c[(size_t)i * ldc + j] = acc[j];
        }
    }
}

static void gemm_f32(int32_t m, int32_t n, int32_t k, const float* a, int32_t lda, const float* b,
                     int32_t ldb, float* c, int32_t ldc, int accumulate) {
    for (int32_t k0 = 0; k0 < k; k0 += GEMM_KC) {
        const int32_t kc = mf_min_i32(GEMM_KC, k - k0);
        const int load = accumulate || k0 > 0;
        for (int32_t j0 = 0; j0 < n; j0 += GEMM_NR) {
            const int32_t cols = mf_min_i32(GEMM_NR, n - j0);
            const float* bp = b + (size_t)k0 * ldb + j0;
            for (int32_t i0 = 0; i0 < m; i0 += GEMM_MR) {
                const int32_t rows = mf_min_i32(GEMM_MR, m - i0);
                const float* ap = a + (size_t)i0 * lda + k0;
                float* cp = c + (size_t)i0 * ldc + j0;
                if (rows == GEMM_MR && cols == GEMM_NR) {
                    gemm_tile_full(kc, ap, lda, bp, ldb, cp, ldc, load);
                } else {
                    gemm_tile_edge(rows, cols, kc, ap, lda, bp, ldb, cp, ldc, load);
                }
            }
        }
    }
}

/* ---- bias and activation after the arithmetic ----------------------------------------------- */

static inline float clamp_f32(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* y[pixel][o] = act(y + bias[o]) over `pixels` NHWC pixels `stride` elements apart. */
static void finish_nhwc(float* y, int32_t pixels, int32_t m, int32_t stride, const float* bias,
                        const mf_range_f32* act) {
    const float lo = act->min, hi = act->max;
    for (int32_t q = 0; q < pixels; q++) {
        float* out = y + (size_t)q * stride;
        if (act->fn == MF_FN_NONE) {
            for (int32_t o = 0; o < m; o++) {
                out[o] = clamp_f32(out[o] + (bias ? bias[o] : 0.0f), lo, hi);
            }
        } else {
            for (int32_t o = 0; o < m; o++) {
                out[o] = mf_activate(out[o] + (bias ? bias[o] : 0.0f), act);
            }
        }
    }
}

/* y[image][o][...] = act(y + bias[o]) over planes of `plane` elements. */
static void finish_nchw(float* y, int32_t images, int32_t m, int32_t plane, const float* bias,
                        const mf_range_f32* act) {
    const float lo = act->min, hi = act->max;
    for (int32_t q = 0; q < images * m; q++) {
        float* out = y + (size_t)q * plane;
        const float b = bias ? bias[q % m] : 0.0f;
        if (act->fn == MF_FN_NONE) {
            for (int32_t i = 0; i < plane; i++) {
                out[i] = clamp_f32(out[i] + b, lo, hi);
            }
        } else {
            for (int32_t i = 0; i < plane; i++) {
                out[i] = mf_activate(out[i] + b, act);
            }
        }
    }
}

/* ---- direct ---------------------------------------------------------------------------------
 * NHWC weights [groups][KH][KW][C/groups][M/groups] (output channels innermost, vectorized);
 * NCHW weights [M][C/groups][KH][KW] (as ONNX), output columns innermost. */

MF_PRIMITIVE(mf_prim_direct_nhwc_f32) {
    (void)workspace;
    const int32_t cin = p->c / p->groups, og = p->m / p->groups;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t oh = 0; oh < p->oh; oh++) {
            for (int32_t ow = 0; ow < p->ow; ow++) {
                float* restrict out = y + ((size_t)(n * p->oh + oh) * p->ow + ow) * p->y_pixel_stride;
                for (int32_t o = 0; o < p->m; o++) {
                    out[o] = 0.0f;
                }
                for (int32_t i = 0; i < p->kh; i++) {
                    const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                    if (ih < 0 || ih >= p->h) {
                        continue;
                    }
                    for (int32_t j = 0; j < p->kw; j++) {
                        const int32_t iw = ow * p->stride_w - p->pad_left + j * p->dilation_w;
                        if (iw < 0 || iw >= p->w) {
                            continue;
                        }
                        const float* xp =
                            x + ((size_t)(n * p->h + ih) * p->w + iw) * p->x_pixel_stride;
                        for (int32_t g = 0; g < p->groups; g++) {
                            const float* restrict wp =
                                w + ((size_t)(g * p->kh + i) * p->kw + j) * cin * og;
                            float* restrict acc = out + g * og;
                            for (int32_t c = 0; c < cin; c++) {
                                const float xv = xp[g * cin + c];
                                const float* restrict wc = wp + (size_t)c * og;
                                for (int32_t o = 0; o < og; o++) {
                                    acc[o] = MF_FMA(xv, wc[o], acc[o]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    finish_nhwc(y, p->n * p->oh * p->ow, p->m, p->y_pixel_stride, bias, act);
}

MF_PRIMITIVE(mf_prim_direct_nchw_f32) {
    (void)workspace;
    const int32_t cin = p->c / p->groups, og = p->m / p->groups;
    const size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t o = 0; o < p->m; o++) {
            float* restrict plane = y + ((size_t)n * p->m + o) * out_plane;
            memset(plane, 0, sizeof(float) * out_plane);
            const int32_t g = o / og;
            for (int32_t c = 0; c < cin; c++) {
                const float* xplane = x + ((size_t)n * p->c + g * cin + c) * in_plane;
                for (int32_t i = 0; i < p->kh; i++) {
                    for (int32_t j = 0; j < p->kw; j++) {
                        const float wv = w[(((size_t)o * cin + c) * p->kh + i) * p->kw + j];
                        const int32_t offset = j * p->dilation_w - p->pad_left;
                        int32_t lo, hi;
                        mf_valid_columns(p->ow, p->w, p->stride_w, offset, &lo, &hi);
                        for (int32_t oh = 0; oh < p->oh; oh++) {
                            const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                            if (ih < 0 || ih >= p->h) {
                                continue;
                            }
                            const float* restrict row = xplane + (size_t)ih * p->w + offset;
                            float* restrict out = plane + (size_t)oh * p->ow;
                            for (int32_t ow = lo; ow < hi; ow++) {
                                out[ow] = MF_FMA(wv, row[ow * p->stride_w], out[ow]);
                            }
                        }
                    }
                }
            }
        }
    }
    finish_nchw(y, p->n, p->m, (int32_t)out_plane, bias, act);
}

/* ---- im2col (NCHW) and im2row (NHWC) + GEMM --------------------------------------------------
 * im2col: col[(c, i, j)][output pixel], GEMM weights[M/g][K] x col; weights as direct NCHW.
 * im2row: row[output pixel][(i, j, c)], GEMM row x weights[K][M/g]; weights as direct NHWC. */

MF_PRIMITIVE(mf_prim_im2col_nchw_f32) {
    const int32_t cin = p->c / p->groups, og = p->m / p->groups;
    const int32_t depth = cin * p->kh * p->kw, pixels = p->oh * p->ow;
    const size_t in_plane = (size_t)p->h * p->w;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            for (int32_t c = 0; c < cin; c++) {
                const float* xplane = x + ((size_t)n * p->c + g * cin + c) * in_plane;
                for (int32_t i = 0; i < p->kh; i++) {
                    for (int32_t j = 0; j < p->kw; j++) {
                        float* col = workspace + ((size_t)(c * p->kh + i) * p->kw + j) * pixels;
                        const int32_t offset = j * p->dilation_w - p->pad_left;
                        int32_t lo, hi;
                        mf_valid_columns(p->ow, p->w, p->stride_w, offset, &lo, &hi);
                        for (int32_t oh = 0; oh < p->oh; oh++) {
                            float* out = col + (size_t)oh * p->ow;
                            const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                            if (ih < 0 || ih >= p->h) {
                                memset(out, 0, sizeof(float) * (size_t)p->ow);
                                continue;
                            }
                            const float* row = xplane + (size_t)ih * p->w + offset;
                            for (int32_t ow = 0; ow < lo; ow++) {
                                out[ow] = 0.0f;
                            }
                            for (int32_t ow = lo; ow < hi; ow++) {
                                out[ow] = row[ow * p->stride_w];
                            }
                            for (int32_t ow = hi; ow < p->ow; ow++) {
                                out[ow] = 0.0f;
                            }
                        }
                    }
                }
            }
            float* out = y + ((size_t)n * p->m + g * og) * pixels;
            gemm_f32(og, pixels, depth, w + (size_t)g * og * depth, depth, workspace, pixels, out,
                     pixels, 0);
        }
    }
    finish_nchw(y, p->n, p->m, pixels, bias, act);
}

MF_PRIMITIVE(mf_prim_im2row_nhwc_f32) {
    const int32_t cin = p->c / p->groups, og = p->m / p->groups;
    const int32_t depth = cin * p->kh * p->kw, pixels = p->oh * p->ow;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            for (int32_t oh = 0; oh < p->oh; oh++) {
                for (int32_t ow = 0; ow < p->ow; ow++) {
                    float* row = workspace + ((size_t)oh * p->ow + ow) * depth;
                    for (int32_t i = 0; i < p->kh; i++) {
                        const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                        for (int32_t j = 0; j < p->kw; j++) {
                            const int32_t iw = ow * p->stride_w - p->pad_left + j * p->dilation_w;
                            float* dst = row + (i * p->kw + j) * cin;
                            if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w) {
                                memset(dst, 0, sizeof(float) * (size_t)cin);
                            } else {
                                const float* src = x + ((size_t)(n * p->h + ih) * p->w + iw) *
                                                           p->x_pixel_stride + g * cin;
                                memcpy(dst, src, sizeof(float) * (size_t)cin);
                            }
                        }
                    }
                }
            }
            float* out = y + (size_t)n * pixels * p->y_pixel_stride + g * og;
            gemm_f32(pixels, og, depth, workspace, depth, w + (size_t)g * depth * og, og, out,
                     p->y_pixel_stride, 0);
        }
    }
    finish_nhwc(y, p->n * pixels, p->m, p->y_pixel_stride, bias, act);
}

/* ---- kn2row (stride 1) -----------------------------------------------------------------------
 * Tap (i, j) is a 1x1 convolution of the whole input; its product at input pixel (ih, iw) adds
 * to output pixel (ih + pad_top - i * dilation_h, iw + pad_left - j * dilation_w).
 * NHWC weights as direct NHWC ([g][KH][KW][C/g][M/g]); NCHW weights [g][KH][KW][M/g][C/g]. */

/* out (+)= the tap's product `t` (one image, one group), NHWC. */
static void shift_add_nhwc(const float* t, int32_t og, const mf_prim_conv* p, int32_t i,
                           int32_t j, float* out) {
    const int32_t offset = j * p->dilation_w - p->pad_left;
    int32_t lo, hi;
    mf_valid_columns(p->ow, p->w, 1, offset, &lo, &hi);
    for (int32_t oh = 0; oh < p->oh; oh++) {
        const int32_t ih = oh - p->pad_top + i * p->dilation_h;
        if (ih < 0 || ih >= p->h) {
            continue;
        }
        for (int32_t ow = lo; ow < hi; ow++) {
            const float* restrict src = t + ((size_t)ih * p->w + ow + offset) * og;
            float* restrict dst = out + ((size_t)oh * p->ow + ow) * p->y_pixel_stride;
            for (int32_t o = 0; o < og; o++) {
                dst[o] += src[o];
            }
        }
    }
}

static void shift_add_nchw(const float* t, int32_t og, const mf_prim_conv* p, int32_t i,
                           int32_t j, float* out) {
    const int32_t offset = j * p->dilation_w - p->pad_left;
    const size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
    int32_t lo, hi;
    mf_valid_columns(p->ow, p->w, 1, offset, &lo, &hi);
    for (int32_t o = 0; o < og; o++) {
        for (int32_t oh = 0; oh < p->oh; oh++) {
            const int32_t ih = oh - p->pad_top + i * p->dilation_h;
            if (ih < 0 || ih >= p->h) {
                continue;
            }
            const float* restrict src = t + o * in_plane + (size_t)ih * p->w + offset;
            float* restrict dst = out + o * out_plane + (size_t)oh * p->ow;
            for (int32_t ow = lo; ow < hi; ow++) {
                dst[ow] += src[ow];
            }
        }
    }
}

static void zero_output_nhwc(float* y, const mf_prim_conv* p) {
    for (int32_t q = 0; q < p->n * p->oh * p->ow; q++) {
        memset(y + (size_t)q * p->y_pixel_stride, 0, sizeof(float) * (size_t)p->m);
    }
}

/* The product of tap `tap` of group g of image n into t: [H*W][M/g] (NHWC) or [M/g][H*W]. */
static void tap_product_nhwc(const float* x, const float* w, const mf_prim_conv* p, int32_t n,
                             int32_t g, int32_t tap, float* t) {
    const int32_t cin = p->c / p->groups, og = p->m / p->groups, pixels = p->h * p->w;
    const float* xg = x + (size_t)n * pixels * p->x_pixel_stride + g * cin;
    const float* wt = w + ((size_t)g * p->kh * p->kw + tap) * cin * og;
    gemm_f32(pixels, og, cin, xg, p->x_pixel_stride, wt, og, t, og, 0);
}

static void tap_product_nchw(const float* x, const float* w, const mf_prim_conv* p, int32_t n,
                             int32_t g, int32_t tap, float* t) {
    const int32_t cin = p->c / p->groups, og = p->m / p->groups, pixels = p->h * p->w;
    const float* xg = x + ((size_t)n * p->c + g * cin) * pixels;
    const float* wt = w + ((size_t)g * p->kh * p->kw + tap) * og * cin;
    gemm_f32(og, pixels, cin, wt, cin, xg, pixels, t, pixels, 0);
}

MF_PRIMITIVE(mf_prim_kn2row_nhwc_f32) {
    const int32_t og = p->m / p->groups, taps = p->kh * p->kw;
    const size_t product = (size_t)p->h * p->w * og;
    zero_output_nhwc(y, p);
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            for (int32_t tap = 0; tap < taps; tap++) {
                tap_product_nhwc(x, w, p, n, g, tap, workspace + tap * product);
            }
            float* out = y + (size_t)n * p->oh * p->ow * p->y_pixel_stride + g * og;
            for (int32_t tap = 0; tap < taps; tap++) {
                shift_add_nhwc(workspace + tap * product, og, p, tap / p->kw, tap % p->kw, out);
            }
        }
    }
    finish_nhwc(y, p->n * p->oh * p->ow, p->m, p->y_pixel_stride, bias, act);
}

MF_PRIMITIVE(mf_prim_kn2row_acc_nhwc_f32) {
    const int32_t og = p->m / p->groups, taps = p->kh * p->kw;
    zero_output_nhwc(y, p);
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            float* out = y + (size_t)n * p->oh * p->ow * p->y_pixel_stride + g * og;
            for (int32_t tap = 0; tap < taps; tap++) {
                tap_product_nhwc(x, w, p, n, g, tap, workspace);
                shift_add_nhwc(workspace, og, p, tap / p->kw, tap % p->kw, out);
            }
        }
    }
    finish_nhwc(y, p->n * p->oh * p->ow, p->m, p->y_pixel_stride, bias, act);
}

MF_PRIMITIVE(mf_prim_kn2row_nchw_f32) {
    const int32_t og = p->m / p->groups, taps = p->kh * p->kw;
    const size_t product = (size_t)p->h * p->w * og, out_plane = (size_t)p->oh * p->ow;
    memset(y, 0, sizeof(float) * (size_t)p->n * p->m * out_plane);
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            for (int32_t tap = 0; tap < taps; tap++) {
                tap_product_nchw(x, w, p, n, g, tap, workspace + tap * product);
            }
            float* out = y + ((size_t)n * p->m + g * og) * out_plane;
            for (int32_t tap = 0; tap < taps; tap++) {
                shift_add_nchw(workspace + tap * product, og, p, tap / p->kw, tap % p->kw, out);
            }
        }
    }
    finish_nchw(y, p->n, p->m, (int32_t)out_plane, bias, act);
}

MF_PRIMITIVE(mf_prim_kn2row_acc_nchw_f32) {
    const int32_t og = p->m / p->groups, taps = p->kh * p->kw;
    const size_t out_plane = (size_t)p->oh * p->ow;
    memset(y, 0, sizeof(float) * (size_t)p->n * p->m * out_plane);
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            float* out = y + ((size_t)n * p->m + g * og) * out_plane;
            for (int32_t tap = 0; tap < taps; tap++) {
                tap_product_nchw(x, w, p, n, g, tap, workspace);
                shift_add_nchw(workspace, og, p, tap / p->kw, tap % p->kw, out);
            }
        }
    }
    finish_nchw(y, p->n, p->m, (int32_t)out_plane, bias, act);
}

/* ---- Winograd F(2x2, 3x3) --------------------------------------------------------------------
 * Per image: v[xi][tile][c] = (B^T d B)[xi] for every 4x4 input tile d; m[xi] = v[xi] u[xi]
 * (u: the weights transformed, G g G^T, [16][C][M], by memfit.selection.primitives); each 2x2
 * output tile is A^T m A. */

#define WINOGRAD_BLOCK 64

/* v[xi][j] = (B^T d B)[xi] for `count` channels at once: d[16][WINOGRAD_BLOCK]. */
static void winograd_input_block(float d[16][WINOGRAD_BLOCK], int32_t count, float* v,
                                 size_t step) {
    for (int32_t k = 0; k < count; k++) {
        float t[16];
        for (int32_t j = 0; j < 4; j++) {
            t[0 * 4 + j] = d[0 * 4 + j][k] - d[2 * 4 + j][k];
            t[1 * 4 + j] = d[1 * 4 + j][k] + d[2 * 4 + j][k];
            t[2 * 4 + j] = d[2 * 4 + j][k] - d[1 * 4 + j][k];
            t[3 * 4 + j] = d[1 * 4 + j][k] - d[3 * 4 + j][k];
        }
        for (int32_t r = 0; r < 4; r++) {
            v[(r * 4 + 0) * step + k] = t[r * 4 + 0] - t[r * 4 + 2];
            v[(r * 4 + 1) * step + k] = t[r * 4 + 1] + t[r * 4 + 2];
            v[(r * 4 + 2) * step + k] = t[r * 4 + 2] - t[r * 4 + 1];
            v[(r * 4 + 3) * step + k] = t[r * 4 + 1] - t[r * 4 + 3];
        }
    }
}

/* out[4][j] = (A^T m A) of `count` output channels at once; m[xi] at m + xi * step. */
static void winograd_output_block(const float* m, size_t step, int32_t count,
                                  float out[4][WINOGRAD_BLOCK]) {
    for (int32_t k = 0; k < count; k++) {
        float t[8];
        for (int32_t j = 0; j < 4; j++) {
            const float m0 = m[(0 * 4 + j) * step + k], m1 = m[(1 * 4 + j) * step + k];
            const float m2 = m[(2 * 4 + j) * step + k], m3 = m[(3 * 4 + j) * step + k];
            t[0 * 4 + j] = m0 + m1 + m2;
            t[1 * 4 + j] = m1 - m2 - m3;
        }
        for (int32_t r = 0; r < 2; r++) {
            out[r * 2 + 0][k] = t[r * 4 + 0] + t[r * 4 + 1] + t[r * 4 + 2];
            out[r * 2 + 1][k] = t[r * 4 + 1] - t[r * 4 + 2] - t[r * 4 + 3];
        }
    }
}

static void winograd_f32(const float* x, const float* u, const float* bias, float* y,
                         const mf_prim_conv* p, const mf_range_f32* act, float* workspace,
                         int nchw) {
    const int32_t th = (p->oh + 1) / 2, tw = (p->ow + 1) / 2, tiles = th * tw;
    const int32_t c = p->c, m = p->m;
    const size_t vstep = (size_t)tiles * c, mstep = (size_t)tiles * m;
    float* v = workspace;
    float* prod = workspace + 16 * vstep;
    const size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
    float d[16][WINOGRAD_BLOCK];
    float out[4][WINOGRAD_BLOCK];
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t t = 0; t < tiles; t++) {
            const int32_t ih0 = (t / tw) * 2 - p->pad_top, iw0 = (t % tw) * 2 - p->pad_left;
            for (int32_t c0 = 0; c0 < c; c0 += WINOGRAD_BLOCK) {
                const int32_t count = mf_min_i32(WINOGRAD_BLOCK, c - c0);
                for (int32_t r = 0; r < 4; r++) {
                    for (int32_t s = 0; s < 4; s++) {
                        const int32_t ih = ih0 + r, iw = iw0 + s;
                        float* row = d[r * 4 + s];
                        if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w) {
                            memset(row, 0, sizeof(float) * WINOGRAD_BLOCK);
                        } else if (nchw) {
                            const float* src = x + ((size_t)n * c + c0) * in_plane +
                                               (size_t)ih * p->w + iw;
                            for (int32_t k = 0; k < count; k++) {
                                row[k] = src[k * in_plane];
                            }
                        } else {
                            memcpy(row,
                                   x + ((size_t)(n * p->h + ih) * p->w + iw) * p->x_pixel_stride + c0,
                                   sizeof(float) * (size_t)count);
                        }
                    }
                }
                winograd_input_block(d, count, v + (size_t)t * c + c0, vstep);
            }
        }
        for (int32_t xi = 0; xi < 16; xi++) {
            gemm_f32(tiles, m, c, v + xi * vstep, c, u + (size_t)xi * c * m, m, prod + xi * mstep,
                     m, 0);
        }
        for (int32_t t = 0; t < tiles; t++) {
            const int32_t oh0 = (t / tw) * 2, ow0 = (t % tw) * 2;
            for (int32_t o0 = 0; o0 < m; o0 += WINOGRAD_BLOCK) {
                const int32_t count = mf_min_i32(WINOGRAD_BLOCK, m - o0);
                winograd_output_block(prod + (size_t)t * m + o0, mstep, count, out);
                for (int32_t r = 0; r < 2; r++) {
                    for (int32_t s = 0; s < 2; s++) {
                        const int32_t oh = oh0 + r, ow = ow0 + s;
                        if (oh >= p->oh || ow >= p->ow) {
                            continue;
                        }
                        const float* value = out[r * 2 + s];
                        if (nchw) {
                            float* dst = y + ((size_t)n * m + o0) * out_plane + (size_t)oh * p->ow + ow;
                            for (int32_t k = 0; k < count; k++) {
                                dst[k * out_plane] = value[k];
                            }
                        } else {
                            float* dst =
                                y + ((size_t)(n * p->oh + oh) * p->ow + ow) * p->y_pixel_stride + o0;
                            memcpy(dst, value, sizeof(float) * (size_t)count);
                        }
                    }
                }
            }
        }
    }
    if (nchw) {
        finish_nchw(y, p->n, m, (int32_t)out_plane, bias, act);
    } else {
        finish_nhwc(y, p->n * p->oh * p->ow, m, p->y_pixel_stride, bias, act);
    }
}

MF_PRIMITIVE(mf_prim_winograd_nhwc_f32) { winograd_f32(x, w, bias, y, p, act, workspace, 0); }

MF_PRIMITIVE(mf_prim_winograd_nchw_f32) { winograd_f32(x, w, bias, y, p, act, workspace, 1); }

/* ---- 1x1 as GEMM -----------------------------------------------------------------------------
 * NHWC: y[pixels][M/g] = x[pixels][C/g] w[C/g][M/g] (weights [g][C/g][M/g]);
 * NCHW: y[M/g][pixels] = w[M/g][C/g] x[C/g][pixels] (weights [M][C/g]). */

MF_PRIMITIVE(mf_prim_gemm1x1_nhwc_f32) {
    (void)workspace;
    const int32_t cin = p->c / p->groups, og = p->m / p->groups, pixels = p->h * p->w;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            gemm_f32(pixels, og, cin, x + (size_t)n * pixels * p->x_pixel_stride + g * cin,
                     p->x_pixel_stride, w + (size_t)g * cin * og, og,
                     y + (size_t)n * pixels * p->y_pixel_stride + g * og, p->y_pixel_stride, 0);
        }
    }
    finish_nhwc(y, p->n * pixels, p->m, p->y_pixel_stride, bias, act);
}

MF_PRIMITIVE(mf_prim_gemm1x1_nchw_f32) {
    (void)workspace;
    const int32_t cin = p->c / p->groups, og = p->m / p->groups, pixels = p->h * p->w;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t g = 0; g < p->groups; g++) {
            gemm_f32(og, pixels, cin, w + (size_t)g * og * cin, cin,
                     x + ((size_t)n * p->c + g * cin) * pixels, pixels,
                     y + ((size_t)n * p->m + g * og) * pixels, pixels, 0);
        }
    }
    finish_nchw(y, p->n, p->m, pixels, bias, act);
}

/* ---- depthwise -------------------------------------------------------------------------------
 * Output channel o reads input channel o / multiplier. NHWC weights [KH][KW][M] (as memfit's IR
 * and TFLite); NCHW weights [M][KH][KW]. */

MF_PRIMITIVE(mf_prim_depthwise_nhwc_f32) {
    (void)workspace;
    const int32_t multiplier = p->m / p->c;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t oh = 0; oh < p->oh; oh++) {
            for (int32_t ow = 0; ow < p->ow; ow++) {
                float* restrict out = y + ((size_t)(n * p->oh + oh) * p->ow + ow) * p->y_pixel_stride;
                for (int32_t o = 0; o < p->m; o++) {
                    out[o] = 0.0f;
                }
                for (int32_t i = 0; i < p->kh; i++) {
                    const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                    if (ih < 0 || ih >= p->h) {
                        continue;
                    }
                    for (int32_t j = 0; j < p->kw; j++) {
                        const int32_t iw = ow * p->stride_w - p->pad_left + j * p->dilation_w;
                        if (iw < 0 || iw >= p->w) {
                            continue;
                        }
                        const float* restrict xp =
                            x + ((size_t)(n * p->h + ih) * p->w + iw) * p->x_pixel_stride;
                        const float* restrict wp = w + (size_t)(i * p->kw + j) * p->m;
                        if (multiplier == 1) {
                            for (int32_t o = 0; o < p->m; o++) {
                                out[o] = MF_FMA(xp[o], wp[o], out[o]);
                            }
                        } else {
                            for (int32_t o = 0; o < p->m; o++) {
                                out[o] = MF_FMA(xp[o / multiplier], wp[o], out[o]);
                            }
                        }
                    }
                }
            }
        }
    }
    finish_nhwc(y, p->n * p->oh * p->ow, p->m, p->y_pixel_stride, bias, act);
}

MF_PRIMITIVE(mf_prim_depthwise_nchw_f32) {
    (void)workspace;
    const int32_t multiplier = p->m / p->c;
    const size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
    for (int32_t n = 0; n < p->n; n++) {
        for (int32_t o = 0; o < p->m; o++) {
            float* restrict plane = y + ((size_t)n * p->m + o) * out_plane;
            memset(plane, 0, sizeof(float) * out_plane);
            const float* xplane = x + ((size_t)n * p->c + o / multiplier) * in_plane;
            for (int32_t i = 0; i < p->kh; i++) {
                for (int32_t j = 0; j < p->kw; j++) {
                    const float wv = w[((size_t)o * p->kh + i) * p->kw + j];
                    const int32_t offset = j * p->dilation_w - p->pad_left;
                    int32_t lo, hi;
                    mf_valid_columns(p->ow, p->w, p->stride_w, offset, &lo, &hi);
                    for (int32_t oh = 0; oh < p->oh; oh++) {
                        const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                        if (ih < 0 || ih >= p->h) {
                            continue;
                        }
                        const float* restrict row = xplane + (size_t)ih * p->w + offset;
                        float* restrict out = plane + (size_t)oh * p->ow;
                        for (int32_t ow = lo; ow < hi; ow++) {
                            out[ow] = MF_FMA(wv, row[ow * p->stride_w], out[ow]);
                        }
                    }
                }
            }
        }
    }
    finish_nchw(y, p->n, p->m, (int32_t)out_plane, bias, act);
}
