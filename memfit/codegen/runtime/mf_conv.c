/* Convolutions: float and int8 conv2d as im2col + register-blocked GEMM (or, for a few output
 * channels per group, a direct convolution), their FDT partial (accumulating) forms,
 * depthwise convolution (also in place), and hybrid conv2d (float activations quantized on the
 * fly, int8 weights). */
#include <string.h>

#include "mf_internal.h"

/* Output pixel m (flat over the output view's n, h, w) -> its coordinates. */
static void pixel_of(const mf_view* yv, int32_t m, int32_t* n, int32_t* oh, int32_t* ow) {
    *ow = m % yv->w;
    m /= yv->w;
    *oh = m % yv->h;
    *n = m / yv->h;
}

/* Output columns [*lo, *hi) of [ow0, ow1) whose tap column j lies inside the input. */
static void valid_columns(const mf_conv* p, int32_t width, int32_t j, int32_t ow0, int32_t ow1,
                          int32_t* lo, int32_t* hi) {
    const int32_t shift = j * p->dilation_w - p->pad_left;
    int32_t a = ow0, b = ow1;
    while (a < b && a * p->stride_w + shift < 0) {
        a++;
    }
    while (b > a && (b - 1) * p->stride_w + shift >= width) {
        b--;
    }
    *lo = a;
    *hi = b;
}

/* Output columns [*lo, *hi) whose every tap column lies inside the input. */
static void interior_columns(const mf_conv* p, int32_t width, int32_t out_width, int32_t* lo,
                             int32_t* hi) {
    int32_t a, b;
    valid_columns(p, width, 0, 0, out_width, lo, hi);
    valid_columns(p, width, p->kw - 1, 0, out_width, &a, &b);
    *lo = mf_max_i32(*lo, a);
    *hi = mf_max_i32(*lo, mf_min_i32(*hi, b));
}

/* ---- direct convolution: few output channels per group, no im2col ---------------------------
 * FDT splits a convolution into partitions of a few output channels each, every one reading the
 * whole input: packing im2col panels for each would cost as much as the multiplies. Here every
 * output pixel's window is read in place instead, as runs of contiguous input (a kernel row's
 * valid taps when the input's pixels are dense and dilation_w is 1, else one tap's channels)
 * dotted with the weights' matching run, vectorized along the run. Interior pixels of an output
 * row go MF_DIRECT_R at a time (one weight load for MF_DIRECT_R inputs); border pixels one at
 * a time with their own valid taps (padding taps are skipped, as TFLite skips them). */

#define MF_DIRECT_OG 4     /* direct when a group computes at most this many output channels */
#define MF_DIRECT_R 4      /* interior output pixels per block (int8) */

/* The geometry of one output row's window runs, shared by float and int8. */
typedef struct {
    int32_t cin, depth, merged; /* merged: a kernel row's valid taps are one contiguous run */
    int32_t ow_lo, ow_hi;       /* output columns whose every tap column is inside the input */
    int32_t step;               /* input elements between consecutive output pixels' windows */
} direct_geometry;

static direct_geometry direct_setup(const mf_view* xv, const mf_view* yv, const mf_conv* p) {
    direct_geometry d;
    d.cin = xv->c / p->groups;
    d.depth = p->kh * p->kw * d.cin;
    d.merged = p->dilation_w == 1 && xv->sw == d.cin;
    d.step = p->stride_w * xv->sw;
    interior_columns(p, xv->w, yv->w, &d.ow_lo, &d.ow_hi);
    return d;
}

/* Tap columns [*jlo, *jhi) of output column ow that lie inside the input. */
static void valid_taps(const mf_conv* p, int32_t width, int32_t ow, int32_t* jlo, int32_t* jhi) {
    const int32_t iw0 = ow * p->stride_w - p->pad_left;
    int32_t a = 0, b = p->kw;
    while (a < b && iw0 + a * p->dilation_w < 0) {
        a++;
    }
    while (b > a && iw0 + (b - 1) * p->dilation_w >= width) {
        b--;
    }
    *jlo = a;
    *jhi = b;
}

/* The window sum of output channel weights w (the layer's [KH][KW][cin] run) at border pixel
 * (n, oh, ow) over tap columns [jlo, jhi), x pointing at the group's first input channel:
 * vectors of MF_VF lanes along the runs, added up at the end with the runs' last len % MF_VF
 * products. (Never inlined: inlined beside the interior blocks, GCC 12 compiled one of the
 * two to scalar code.) */
MF_NOINLINE float border_window_f32(const float* x, const mf_view* xv, const mf_conv* p,
                                    const direct_geometry* d, int32_t n, int32_t oh, int32_t ow,
                                    int32_t jlo, int32_t jhi, const float* restrict w) {
    mf_vf lanes = mf_vf_splat(0.0f);
    float tail = 0.0f;
    const int32_t cin = d->cin;
    const int32_t runs = d->merged ? 1 : jhi - jlo;
    const int32_t len = d->merged ? (jhi - jlo) * cin : cin;
    const int32_t whole = len - len % MF_VF;
    const int32_t iw = ow * p->stride_w - p->pad_left + jlo * p->dilation_w;
    for (int32_t i = 0; i < p->kh; i++) {
        const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
        if (ih < 0 || ih >= xv->h || jhi <= jlo) {
            continue;
        }
        const float* row = x + mf_view_offset(xv, n, ih, iw);
        for (int32_t t = 0; t < runs; t++) {
            const float* restrict a = row + t * p->dilation_w * xv->sw;
            const float* restrict b = w + (i * p->kw + jlo + t) * cin;
            for (int32_t k = 0; k < whole; k += MF_VF) {
                lanes = mf_vf_fma(mf_vf_load(a + k), mf_vf_load(b + k), lanes);
            }
            for (int32_t k = whole; k < len; k++) {
                tail = MF_FMA(a[k], b[k], tail);
            }
        }
    }
    return mf_vf_sum(lanes) + tail;
}

/* An interior window's runs as a table, so that a block of pixels sums them in one loop
 * instead of a loop nest per block (whose set-up cost more than the multiplies on FDT's
 * partitions): entry e of kernel row i's are at [i * per_row, (i + 1) * per_row), in the
 * order the runs are read, each the input offset from the window's origin and the weight
 * offset of `width` consecutive values (MF_VF: whole vectors of the runs, with their last
 * len % MF_VF values as entries of width 1 in `tails`; 1: every value). */
typedef struct {
    int32_t x, w;
} window_entry;

typedef struct {
    const window_entry* vectors;
    const window_entry* tails;
    int32_t vectors_per_row, tails_per_row;
} window_table;

static window_table build_window_table(const mf_view* xv, const mf_conv* p,
                                       const direct_geometry* d, int32_t width,
                                       window_entry* entries) {
    const int32_t runs = d->merged ? 1 : p->kw;
    const int32_t len = d->merged ? p->kw * d->cin : d->cin;
    const int32_t whole = len - len % width;
    window_table table = {entries, entries + p->kh * runs * (whole / width), runs * (whole / width),
                          runs * (len - whole)};
    window_entry* v = entries;
    window_entry* tail = entries + p->kh * table.vectors_per_row;
    for (int32_t i = 0; i < p->kh; i++) {
        for (int32_t t = 0; t < runs; t++) {
            const int32_t x0 = i * p->dilation_h * xv->sh + t * p->dilation_w * xv->sw;
            const int32_t w0 = (i * p->kw + t) * d->cin;
            for (int32_t k = 0; k < len; k++) {
                window_entry e = {x0 + k, w0 + k};
                if (k >= whole) {
                    *tail++ = e;
                } else if (k % width == 0) {
                    *v++ = e;
                }
            }
        }
    }
    return table;
}

/* Kernel rows [*ilo, *ihi) of output row oh that lie inside the input. */
static void valid_kernel_rows(const mf_conv* p, int32_t height, int32_t oh, int32_t* ilo,
                              int32_t* ihi) {
    const int32_t ih0 = oh * p->stride_h - p->pad_top;
    int32_t a = 0, b = p->kh;
    while (a < b && ih0 + a * p->dilation_h < 0) {
        a++;
    }
    while (b > a && ih0 + (b - 1) * p->dilation_h >= height) {
        b--;
    }
    *ilo = a;
    *ihi = b;
}

/* Lane r = the window sum of output channel weights w at interior pixel ow0 + r of an output
 * row whose windows start at x[origin + r * step] (kernel row 0, which may lie outside the
 * input: only rows [ilo, ihi) are read), r < MF_VF. Each pixel sums a vector of MF_VF lanes
 * along the runs, in registers (arrays of lanes were left partly in memory and in scalar code
 * by GCC 12, 3x slower); a weight vector is loaded once for all the pixels. */
MF_INLINE mf_vf window_block_f32(const float* x, int32_t origin, int32_t step,
                                 const window_table* table, int32_t ilo, int32_t ihi,
                                 const float* restrict w) {
    mf_vf lanes[MF_VF];
    float tail[MF_VF];
    MF_UNROLL /* every loop over the pixels: an array indexed at run time stays in memory */
    for (int32_t r = 0; r < MF_VF; r++) {
        lanes[r] = mf_vf_splat(0.0f);
        tail[r] = 0.0f;
    }
    const window_entry* v = table->vectors;
    for (int32_t e = ilo * table->vectors_per_row; e < ihi * table->vectors_per_row; e++) {
        const float* restrict a = x + (origin + v[e].x);
        const mf_vf bv = mf_vf_load(w + v[e].w);
        MF_UNROLL
        for (int32_t r = 0; r < MF_VF; r++) {
            lanes[r] = mf_vf_fma(mf_vf_load(a + r * step), bv, lanes[r]);
        }
    }
    const window_entry* t = table->tails;
    for (int32_t e = ilo * table->tails_per_row; e < ihi * table->tails_per_row; e++) {
        const float* restrict a = x + (origin + t[e].x);
        const float b = w[t[e].w];
        MF_UNROLL
        for (int32_t r = 0; r < MF_VF; r++) {
            tail[r] = MF_FMA(a[r * step], b, tail[r]);
        }
    }
    return mf_vf_add(mf_vf_sums(lanes), mf_vf_load(tail));
}

/* The same for int8: sums of (x + input_offset) * w in int32 over the valid taps. */
MF_INLINE void window_s8(int32_t rows, const int8_t* x, const mf_view* xv, const mf_conv* p,
                         const direct_geometry* d, int32_t n, int32_t oh, int32_t ow0,
                         int32_t jlo, int32_t jhi, const int8_t* restrict w, int32_t offset,
                         int32_t* out) {
    int32_t sums[MF_DIRECT_R] = {0};
    const int32_t cin = d->cin, step = d->step;
    const int32_t runs = d->merged ? 1 : jhi - jlo;
    const int32_t len = d->merged ? (jhi - jlo) * cin : cin;
    const int32_t iw = ow0 * p->stride_w - p->pad_left + jlo * p->dilation_w;
    for (int32_t i = 0; i < p->kh; i++) {
        const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
        if (ih < 0 || ih >= xv->h || jhi <= jlo) {
            continue;
        }
        const int8_t* row = x + mf_view_offset(xv, n, ih, iw);
        for (int32_t t = 0; t < runs; t++) {
            const int8_t* restrict a = row + t * p->dilation_w * xv->sw;
            const int8_t* restrict b = w + (i * p->kw + jlo + t) * cin;
            for (int32_t k = 0; k < len; k++) {
                MF_UNROLL
                for (int32_t r = 0; r < rows; r++) {
                    sums[r] += (int16_t)(a[r * step + k] + offset) * b[k];
                }
            }
        }
    }
    for (int32_t r = 0; r < rows; r++) {
        out[r] = sums[r];
    }
}

/* ---- three columns: a 3-wide kernel, stride 1, its output as wide as its input ----------
 * The common 3x3 "same" convolution (stride_w 1, dilation_w 1, one column of padding on each
 * side) with its shape known here: a tile of consecutive output pixels reads one input pixel
 * per column once for the kernel row's three taps (the tile's columns plus one on each side),
 * and the padding column next to a row's first or last tile is read as zeros instead of
 * sending those pixels down a border path of their own. Any stride_h, dilation_h, pad_top;
 * kernel rows outside the input are skipped. */

static int32_t three_columns(const mf_view* xv, const mf_view* yv, const mf_conv* p,
                             int32_t tile) {
    return p->kw == 3 && p->stride_w == 1 && p->dilation_w == 1 && p->pad_left == 1 &&
           yv->w == xv->w && yv->w >= tile;
}

/* Kernel row i's part of three_column_block_f32. */
MF_INLINE void three_column_row_f32(mf_vf* sums, const float* restrict row, int32_t sw,
                                    int32_t cin, int32_t left, int32_t right,
                                    const float* restrict wi) {
    const float zeros[MF_VF] = {0.0f};
    for (int32_t c = 0; c < cin; c += MF_VF) {
        const mf_vf w0 = mf_vf_load(wi + c), w1 = mf_vf_load(wi + cin + c);
        const mf_vf w2 = mf_vf_load(wi + 2 * cin + c);
        const float* first = left ? row - sw + c : zeros;
        const float* last = right ? row + MF_VF * sw + c : zeros;
        MF_UNROLL
        for (int32_t q = 0; q < MF_VF + 2; q++) {
            const mf_vf v = mf_vf_load(q == 0            ? first
                                       : q == MF_VF + 1 ? last
                                                        : row + (q - 1) * sw + c);
            if (q < MF_VF) {
                sums[q] = mf_vf_fma(v, w0, sums[q]);
            }
            if (q >= 1 && q <= MF_VF) {
                sums[q - 1] = mf_vf_fma(v, w1, sums[q - 1]);
            }
            if (q >= 2) {
                sums[q - 2] = mf_vf_fma(v, w2, sums[q - 2]);
            }
        }
    }
}

/* Lane r = the window sum of output channel weights w ([KH][3][cin], cin whole vectors) at
 * pixel ow0 + r of a row, r < MF_VF: kernel row i's input pixel ow0 + q - 1 at
 * x[origin + i * row_step + (q - 1) * xv->sw] (the column before the row's first pixel, or
 * after its last, as zeros: `left`, `right` say whether it is inside). Each input vector is
 * loaded once for its three taps, against the kernel row's three weight vectors. */
MF_INLINE mf_vf three_column_block_f32(const float* x, const mf_view* xv, int32_t cin,
                                       int32_t origin, int32_t row_step, int32_t ilo,
                                       int32_t ihi, int32_t left, int32_t right,
                                       const float* restrict w) {
    mf_vf sums[MF_VF];
    MF_UNROLL
    for (int32_t r = 0; r < MF_VF; r++) {
        sums[r] = mf_vf_splat(0.0f);
    }
    for (int32_t i = ilo; i < ihi; i++) {
        three_column_row_f32(sums, x + (origin + i * row_step), xv->sw, cin, left, right,
                             w + i * 3 * cin);
    }
    return mf_vf_sums(sums);
}

/* Float conv2d / partial_conv2d with og <= MF_DIRECT_OG: the group's weights unpacked from
 * their panel to [og][K] in the workspace (F32_MR * K floats: room for MF_F32_MR channels),
 * the window table after them (at most K entries of two int32). Interior pixels go MF_VF at a
 * time (a vector of their sums per channel), the last block of a row's interior moved back to
 * end with it (its pixels already stored are not stored again: the accumulator may be the
 * output); border pixels, and interiors narrower than a block, one at a time; over three
 * columns with cin whole vectors, a row's every pixel in blocks. conv2d's
 * activation runs on the vectors; one output channel of dense pixels is stored as a vector (a
 * moved-back block stores its first pixels again, with the same values). */
MF_NOINLINE void direct_f32(const float* x, const mf_view* xv, const float* w_packed,
                            const float* bias, const float* acc, const mf_view* accv, float* y,
                            const mf_view* yv, const mf_conv* p, const mf_range_f32* act,
                            float* workspace) {
    const direct_geometry d = direct_setup(xv, yv, p);
    const int32_t og = yv->c / p->groups, depth = d.depth;
    const int32_t panels = (og + MF_F32_NR - 1) / MF_F32_NR;
    const int32_t three = three_columns(xv, yv, p, MF_VF) && d.cin % MF_VF == 0;
    const int32_t lo = three ? 0 : d.ow_lo, hi = three ? yv->w : d.ow_hi; /* in blocks */
    const int32_t blocks = hi - lo >= MF_VF;
    const int32_t vector_store = act != NULL && og == 1 && yv->sw == 1;
    const window_table table =
        build_window_table(xv, p, &d, MF_VF, (window_entry*)(workspace + og * depth));
    mf_vf sums[MF_DIRECT_OG];
    float lanes[MF_DIRECT_OG][MF_VF];
    for (int32_t g = 0; g < p->groups; g++) {
        const float* panel = w_packed + (size_t)g * panels * depth * MF_F32_NR;
        for (int32_t o = 0; o < og; o++) {
            for (int32_t k = 0; k < depth; k++) {
                workspace[o * depth + k] = panel[k * MF_F32_NR + o];
            }
        }
        const float* xg = x + g * d.cin;
        const int32_t o0 = g * og;
        for (int32_t n = 0; n < yv->n; n++) {
            for (int32_t oh = 0; oh < yv->h; oh++) {
                int32_t ilo, ihi;
                valid_kernel_rows(p, xv->h, oh, &ilo, &ihi);
                int32_t ow = 0;
                while (ow < yv->w) {
                    int32_t first = ow, rows = 1; /* pixels [first, first + rows) computed */
                    if (blocks && ow >= lo && ow < hi) {
                        first = mf_min_i32(ow, hi - MF_VF);
                        rows = MF_VF;
                        const int32_t origin =
                            n * xv->sn + (oh * p->stride_h - p->pad_top) * xv->sh +
                            (first * p->stride_w - (three ? 0 : p->pad_left)) * xv->sw;
                        for (int32_t o = 0; o < og; o++) {
                            const float* w = workspace + o * depth;
                            sums[o] = three ? three_column_block_f32(
                                                  xg, xv, d.cin, origin, p->dilation_h * xv->sh,
                                                  ilo, ihi, first > 0, first + MF_VF < yv->w, w)
                                            : window_block_f32(xg, origin, d.step, &table, ilo,
                                                               ihi, w);
                        }
                    } else {
                        int32_t jlo, jhi;
                        valid_taps(p, xv->w, ow, &jlo, &jhi);
                        for (int32_t o = 0; o < og; o++) {
                            sums[o] = mf_vf_splat(border_window_f32(xg, xv, p, &d, n, oh, ow, jlo,
                                                                    jhi, workspace + o * depth));
                        }
                    }
                    const int32_t skip = ow - first; /* stored already */
                    ow = first + rows;
                    float* out = y + mf_view_offset(yv, n, oh, first) + o0;
                    if (act != NULL) {
                        for (int32_t o = 0; o < og; o++) {
                            sums[o] = mf_vf_activate(sums[o], bias ? bias[o0 + o] : 0.0f, act);
                        }
                        if (vector_store && rows == MF_VF) {
                            mf_vf_store(out, sums[0]);
                            continue;
                        }
                    }
                    for (int32_t o = 0; o < og; o++) {
                        mf_vf_store(lanes[o], sums[o]);
                    }
                    const float* in = acc ? acc + mf_view_offset(accv, n, oh, first) + o0 : NULL;
                    for (int32_t r = skip; r < rows; r++) {
                        float* pixel = out + r * yv->sw;
                        for (int32_t o = 0; o < og; o++) {
                            pixel[o] = in ? in[r * accv->sw + o] + lanes[o][r] : lanes[o][r];
                        }
                    }
                }
            }
        }
    }
}

/* Where int8 convolution sums go: requantized to int8 (conv2d: y8 with bias and q), added to
 * an int32 accumulator (partial_conv2d: y32 = acc + sums, acc may be NULL) or scaled back to
 * float (hybrid conv2d: yf = act(float(sums) * scale + bias_f32)). One of y8, y32, yf is set. */
typedef struct {
    const mf_view* yv;
    int8_t* y8;
    const int32_t* bias;
    const mf_requant_s8* q;
    int32_t* y32;
    const int32_t* acc;
    const mf_view* accv;
    float* yf;
    const float* bias_f32;
    float scale;
    const mf_range_f32* act;
} s8_sink;

/* Where output pixel (n, oh, ow) is: its element offset in the output and in the accumulator. */
typedef struct {
    int32_t y, acc;
} s8_pixel;

static s8_pixel pixel_at(const s8_sink* s, int32_t n, int32_t oh, int32_t ow) {
    s8_pixel at;
    at.y = mf_view_offset(s->yv, n, oh, ow);
    at.acc = s->acc != NULL ? mf_view_offset(s->accv, n, oh, ow) : 0;
    return at;
}

/* Stores the sums of output channels [o0, o0 + count) of the output pixel at `pixel`: channel
 * o0 + j's sum is sums[j * stride]. */
MF_INLINE void store_s8(const s8_sink* s, s8_pixel pixel, int32_t o0, int32_t count,
                        const int32_t* sums, int32_t stride) {
    const int32_t at = pixel.y + o0;
    if (s->y8 != NULL) {
        for (int32_t j = 0; j < count; j++) {
            const int32_t b = s->bias ? s->bias[o0 + j] : 0;
            s->y8[at + j] = mf_requant_one(mf_wrap32((int64_t)sums[j * stride] + b), s->q, o0 + j);
        }
    } else if (s->yf != NULL) {
        for (int32_t j = 0; j < count; j++) {
            float v = (float)sums[j * stride] * s->scale;
            if (s->bias_f32 != NULL) {
                v = v + s->bias_f32[o0 + j];
            }
            s->yf[at + j] = mf_activate(v, s->act);
        }
    } else {
        const int32_t* in = s->acc != NULL ? s->acc + pixel.acc + o0 : NULL;
        for (int32_t j = 0; j < count; j++) {
            const int32_t sum = sums[j * stride];
            s->y32[at + j] = in ? mf_wrap32((int64_t)in[j] + sum) : sum;
        }
    }
}

/* int8 convolution sums into `out`, og <= MF_DIRECT_OG. Never inlined, like direct_f32
 * (inlined into conv_s8, 1.7x slower on micro_speech's FDT partitions). */
MF_NOINLINE void direct_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                           const s8_sink* out, const mf_conv* p, int32_t input_offset) {
    const mf_view* yv = out->yv;
    const direct_geometry d = direct_setup(xv, yv, p);
    const int32_t og = yv->c / p->groups, depth = d.depth;
    int32_t sums[MF_DIRECT_OG][MF_DIRECT_R];
    for (int32_t g = 0; g < p->groups; g++) {
        const int8_t* xg = x + g * d.cin;
        const int32_t o0 = g * og;
        for (int32_t n = 0; n < yv->n; n++) {
            for (int32_t oh = 0; oh < yv->h; oh++) {
                int32_t ow = 0;
                while (ow < yv->w) {
                    int32_t rows = 1;
                    if (ow >= d.ow_lo && ow + MF_DIRECT_R <= d.ow_hi) {
                        rows = MF_DIRECT_R;
                        for (int32_t o = 0; o < og; o++) {
                            window_s8(MF_DIRECT_R, xg, xv, p, &d, n, oh, ow, 0, p->kw,
                                      w + (size_t)(o0 + o) * depth, input_offset, sums[o]);
                        }
                    } else {
                        int32_t jlo, jhi;
                        valid_taps(p, xv->w, ow, &jlo, &jhi);
                        for (int32_t o = 0; o < og; o++) {
                            window_s8(1, xg, xv, p, &d, n, oh, ow, jlo, jhi,
                                      w + (size_t)(o0 + o) * depth, input_offset, sums[o]);
                        }
                    }
                    for (int32_t r = 0; r < rows; r++) {
                        store_s8(out, pixel_at(out, n, oh, ow + r), o0, og, &sums[0][r],
                                 MF_DIRECT_R);
                    }
                    ow += rows;
                }
            }
        }
    }
}

/* ---- int8 direct, short window runs: output pixels as the vectors --------------------------
 * When a window's runs are a few int8 values (micro_speech's FDT partitions: a 10x8 kernel
 * over one channel; person_detect's: 1x1 over 8 channels), the dot products along them are
 * shorter than a vector and compile to scalar code, whichever way the pixels are blocked.
 * Here a chunk of output columns is accumulated row by row, tap by tap, each tap (j, c) one
 * multiply-add over the chunk's pixels. The input rows a chunk reads are widened (offset
 * added, int16, zeros in the padding, which TFLite skips) into a ring of rows in a stack
 * buffer, each laid out by channel, then by column modulo the stride, so that a tap's inputs
 * for consecutive output pixels are consecutive values. A row stays in the ring while the
 * output rows below still read it (kh / stride_h of them: 5 on micro_speech), widened once.
 * The sums are requantized a channel at a time across the chunk's pixels (one multiplier: a
 * loop compilers vectorize). */

#define MF_SHORT_RUN 16     /* direct convolutions with window runs of at most this many values */
#define MF_SPAN_VALUES 2048 /* int16 values of the ring of widened rows */
#define MF_SPAN_PIXELS 64   /* output pixels per chunk */
#define MF_SPAN_LANES 16    /* chunks are computed in whole multiples of this many pixels */
#define MF_RING_ROWS (MF_SPAN_VALUES / MF_SPAN_LANES) /* most rows a ring can have */

/* Rows of the ring: one output row's tap rows are consecutive slots (ih modulo this). */
static int32_t ring_rows(const mf_conv* p) { return (p->kh - 1) * p->dilation_h + 1; }

/* Output pixels per chunk for the short-runs path (a multiple of MF_SPAN_LANES), 0 when the
 * ring of rows spanning MF_SPAN_LANES pixels would not fit. */
static int32_t short_runs_chunk(const mf_conv* p, int32_t cin) {
    const int32_t s = p->stride_w, reach = (p->kw - 1) * p->dilation_w;
    /* a chunk of `pixels` spans cin * s * (pixels - 1 + ceil((reach + 1) / s)) values a row */
    const int32_t pixels = MF_SPAN_VALUES / (ring_rows(p) * cin * s) - (reach + s) / s + 1;
    return mf_min_i32(pixels - pixels % MF_SPAN_LANES, MF_SPAN_PIXELS);
}

/* Output pixels ow0 .. ow0 + cols - 1 of row oh, channels [o0, o0 + og): channel o0 + o's
 * sums at sums[o * MF_SPAN_PIXELS + r]. */
static void store_chunk_s8(const s8_sink* s, int32_t n, int32_t oh, int32_t ow0, int32_t cols,
                           int32_t o0, int32_t og, const int32_t* sums) {
    if (s->y8 == NULL) {
        for (int32_t r = 0; r < cols; r++) {
            store_s8(s, pixel_at(s, n, oh, ow0 + r), o0, og, sums + r, MF_SPAN_PIXELS);
        }
        return;
    }
    const mf_requant_s8* q = s->q;
    const int32_t offset = q->output_offset, lo = q->act.min, hi = q->act.max;
    int8_t values[MF_DIRECT_OG][MF_SPAN_PIXELS];
    for (int32_t o = 0; o < og; o++) {
        const int32_t* restrict a = sums + o * MF_SPAN_PIXELS;
        const uint32_t b = (uint32_t)(s->bias != NULL ? s->bias[o0 + o] : 0);
        const int32_t multiplier = q->multiplier[o0 + o], shift = q->shift[o0 + o];
        int8_t* restrict v = values[o];
        for (int32_t r = 0; r < cols; r++) {
            const int32_t total = (int32_t)((uint32_t)a[r] + b);
            v[r] = (int8_t)mf_clamp_i32(mf_mbqm(total, multiplier, shift) + offset, lo, hi);
        }
    }
    const int32_t step = s->yv->sw;
    int8_t* restrict y = s->y8 + mf_view_offset(s->yv, n, oh, ow0) + o0;
    for (int32_t r = 0; r < cols; r++) {
        for (int32_t o = 0; o < og; o++) {
            y[r * step + o] = values[o][r];
        }
    }
}

/* Tap columns t in [0, width) of the span whose input column iw0 + t lies in [0, in_width):
 * of phase `phase` (t = k * s + phase), k in [*klo, *khi). */
static void span_phase(int32_t iw0, int32_t in_width, int32_t width, int32_t s, int32_t phase,
                       int32_t* klo, int32_t* khi) {
    const int32_t tlo = mf_clamp_i32(-iw0, 0, width);
    const int32_t thi = mf_clamp_i32(in_width - iw0, tlo, width);
    *klo = tlo <= phase ? 0 : (tlo - phase + s - 1) / s;
    *khi = mf_max_i32(*klo, thi <= phase ? 0 : (thi - phase + s - 1) / s);
}

/* dst[k] = src[k * step] + offset, k in [lo, hi); step is a constant in the callers that
 * compilers can vectorize (1, 2, 4, 8: strides of dense one-, two-, four-, eight-channel
 * inputs and of stride 2 over them), else a runtime value. */
MF_INLINE void widen_strided(int32_t step, int16_t* restrict dst, const int8_t* restrict src,
                             int32_t lo, int32_t hi, int32_t offset) {
    for (int32_t k = lo; k < hi; k++) {
        dst[k] = (int16_t)(src[k * step] + offset);
    }
}

/* A chunk's span of one input row: span[(c * s + phase) * phase_len + k] = input column
 * iw0 + k * s + phase, channel c, plus the offset (0 outside the input). */
static void widen_span(const int8_t* row, int32_t xsw, int32_t in_width, int32_t iw0,
                       int32_t width, int32_t s, int32_t cin, int32_t phase_len,
                       int32_t offset, int16_t* span) {
    for (int32_t phase = 0; phase < s; phase++) {
        int32_t klo, khi;
        span_phase(iw0, in_width, width, s, phase, &klo, &khi);
        for (int32_t c = 0; c < cin; c++) {
            int16_t* restrict dst = span + (c * s + phase) * phase_len;
            const int8_t* restrict src = row + phase * xsw + c;
            for (int32_t k = 0; k < klo; k++) {
                dst[k] = 0;
            }
            switch (s * xsw) {
            case 1:
                widen_strided(1, dst, src, klo, khi, offset);
                break;
            case 2:
                widen_strided(2, dst, src, klo, khi, offset);
                break;
            case 4:
                widen_strided(4, dst, src, klo, khi, offset);
                break;
            case 8:
                widen_strided(8, dst, src, klo, khi, offset);
                break;
            default:
                widen_strided(s * xsw, dst, src, klo, khi, offset);
            }
            for (int32_t k = khi; k < phase_len; k++) {
                dst[k] = 0;
            }
        }
    }
}

/* The sums of output channel o's tap (i, j, c) weight w[(o * depth + (i * kw + j) * cin + c) *
 * w_step] (w_step: 1 for conv2d, the channel count for one depthwise channel). */
MF_NOINLINE void short_runs_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                               int32_t w_step, const s8_sink* out, const mf_conv* p,
                               int32_t input_offset, int32_t chunk) {
    const mf_view* yv = out->yv;
    const int32_t cin = xv->c / p->groups, og = yv->c / p->groups;
    const int32_t depth = p->kh * p->kw * cin, s = p->stride_w, rows = ring_rows(p);
    const int32_t reach = (p->kw - 1) * p->dilation_w;
    int16_t ring[MF_SPAN_VALUES];
    int32_t widened[MF_RING_ROWS]; /* the input row in each slot of the ring, -1 for none */
    int32_t sums[MF_DIRECT_OG * MF_SPAN_PIXELS];
    for (int32_t g = 0; g < p->groups; g++) {
        const int8_t* wg = w + (size_t)g * og * depth * w_step;
        for (int32_t n = 0; n < yv->n; n++) {
            for (int32_t ow0 = 0; ow0 < yv->w; ow0 += chunk) {
                const int32_t cols = mf_min_i32(chunk, yv->w - ow0);
                /* whole lanes (an exact count was slower: its last few pixels ran as scalar code);
                 * the pixels past cols are computed from zeros, not stored */
                const int32_t lanes = (cols + MF_SPAN_LANES - 1) / MF_SPAN_LANES * MF_SPAN_LANES;
                const int32_t width = (lanes - 1) * s + reach + 1; /* input columns */
                const int32_t phase_len = lanes - 1 + (reach + s) / s;
                const int32_t row_len = cin * s * phase_len;
                const int32_t iw0 = ow0 * s - p->pad_left;
                const int8_t* xg = x + mf_view_offset(xv, n, 0, iw0) + g * cin;
                for (int32_t t = 0; t < rows; t++) {
                    widened[t] = -1;
                }
                for (int32_t oh = 0; oh < yv->h; oh++) {
                    for (int32_t t = 0; t < og * MF_SPAN_PIXELS; t++) {
                        sums[t] = 0;
                    }
                    for (int32_t i = 0; i < p->kh; i++) {
                        const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                        if (ih < 0 || ih >= xv->h) {
                            continue;
                        }
                        int16_t* span = ring + (ih % rows) * row_len;
                        if (widened[ih % rows] != ih) {
                            widen_span(xg + (size_t)ih * xv->sh, xv->sw, xv->w, iw0, width, s,
                                       cin, phase_len, input_offset, span);
                            widened[ih % rows] = ih;
                        }
                        int32_t phase = 0, k0 = 0; /* of tap column j * dilation_w */
                        for (int32_t j = 0; j < p->kw; j++) {
                            const int16_t* tap = span + phase * phase_len + k0;
                            for (int32_t c = 0; c < cin; c++) {
                                const int16_t* restrict a = tap + c * s * phase_len;
                                for (int32_t o = 0; o < og; o++) {
                                    const int32_t wv =
                                        wg[(o * depth + (i * p->kw + j) * cin + c) * w_step];
                                    int32_t* restrict acc = sums + o * MF_SPAN_PIXELS;
                                    for (int32_t r = 0; r < lanes; r++) {
                                        acc[r] += a[r] * wv;
                                    }
                                }
                            }
                            phase += p->dilation_w;
                            k0 += phase / s;
                            phase %= s;
                        }
                    }
                    store_chunk_s8(out, n, oh, ow0, cols, g * og, og, sums);
                }
            }
        }
    }
}

/* ---- float: im2col into a panel, GEMM on packed weights ------------------------------------
 * The panel holds MF_F32_MR output pixels of one group as ap[k][MF_F32_MR], k = (i, j, c) in
 * the weights' (KH, KW, I/groups) order; taps in the padding and pixels past the end are 0.
 * Packed weights: per group, ceil(og / NR) panels of [K][NR] (channels past og are 0). */

/* An output pixel's coordinates. */
typedef struct {
    int32_t n, oh, ow;
} conv_pixel;

static void pack_pixels_f32(const float* x, const mf_view* xv, const mf_conv* p, int32_t c0,
                            int32_t cin, const conv_pixel* pixels, int32_t rows, float* ap) {
    const int32_t taps = p->kh * p->kw;
    for (int32_t r = 0; r < MF_F32_MR; r++) {
        int32_t n, oh, ow;
        if (r >= rows) {
            for (int32_t k = 0; k < taps * cin; k++) {
                ap[k * MF_F32_MR + r] = 0.0f;
            }
            continue;
        }
        n = pixels[r].n;
        oh = pixels[r].oh;
        ow = pixels[r].ow;
        for (int32_t i = 0; i < p->kh; i++) {
            const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
            for (int32_t j = 0; j < p->kw; j++) {
                const int32_t iw = ow * p->stride_w - p->pad_left + j * p->dilation_w;
                float* dst = ap + (i * p->kw + j) * cin * MF_F32_MR + r;
                if (ih < 0 || ih >= xv->h || iw < 0 || iw >= xv->w) {
                    for (int32_t c = 0; c < cin; c++) {
                        dst[c * MF_F32_MR] = 0.0f;
                    }
                } else {
                    const float* src = x + mf_view_offset(xv, n, ih, iw) + c0;
                    for (int32_t c = 0; c < cin; c++) {
                        dst[c * MF_F32_MR] = src[c];
                    }
                }
            }
        }
    }
}

/* tile[MR][NR] = A B over K, columns [0, width). A's row i is `segments` runs of `run`
 * elements, run s at rows[i] + s * gap, element kk of it at kk * kstep: an im2col panel is one
 * run of K with kstep MF_F32_MR (rows[i] = ap + i); a pixel's window read in place is one run
 * per kernel row (its taps' channels, contiguous in the input) with kstep 1. MR broadcasts and
 * one row of B per step; width (MF_F32_NR or MF_F32_NR / 2) and kstep are constants in each
 * caller, so that a panel holding a group's last few channels (34 output channels: 32 + 2)
 * costs half a panel. (Quarter panels of 8 columns compiled to scalar code with GCC 12.) */
MF_INLINE void gemm_block_f32(int32_t i0, int32_t j0, int32_t rows_n, int32_t cols_n,
                              int32_t kstep, int32_t segments, int32_t run, int32_t gap,
                              const float* const* rows, const float* restrict bp,
                              float* restrict tile) {
    float acc[MF_F32_BLOCK_ROWS * MF_F32_BLOCK_COLS];
    for (int32_t t = 0; t < rows_n * cols_n; t++) {
        acc[t] = 0.0f;
    }
    for (int32_t s = 0; s < segments; s++) {
        const float* restrict bs = bp + (size_t)s * run * MF_F32_NR + j0;
        const int32_t start = s * gap;
        for (int32_t k = 0; k < run; k++) {
            const float* restrict b = bs + k * MF_F32_NR;
            MF_UNROLL
            for (int32_t i = 0; i < rows_n; i++) {
                const float av = rows[i0 + i][start + k * kstep];
                for (int32_t j = 0; j < cols_n; j++) {
                    acc[i * cols_n + j] = MF_FMA(av, b[j], acc[i * cols_n + j]);
                }
            }
        }
    }
    for (int32_t i = 0; i < rows_n; i++) {
        for (int32_t j = 0; j < cols_n; j++) {
            tile[(i0 + i) * MF_F32_NR + j0 + j] = acc[i * cols_n + j];
        }
    }
}

MF_INLINE void gemm_columns_f32(int32_t width, int32_t kstep, int32_t segments, int32_t run,
                                int32_t gap, const float* const* rows, const float* restrict bp,
                                float* restrict tile) {
    const int32_t cols_n = width < MF_F32_BLOCK_COLS ? width : MF_F32_BLOCK_COLS;
    for (int32_t i0 = 0; i0 < MF_F32_MR; i0 += MF_F32_BLOCK_ROWS) {
        for (int32_t j0 = 0; j0 < width; j0 += cols_n) {
            gemm_block_f32(i0, j0, MF_F32_BLOCK_ROWS, cols_n, kstep, segments, run, gap, rows,
                           bp, tile);
        }
    }
}

/* Stores `rows` output pixels from m0 on, computed into `block` ([rows][yv->c]), at their
 * places in y. */
static void store_block(const unsigned char* block, unsigned char* y, const mf_view* yv,
                        int32_t m0, int32_t rows, size_t element_size) {
    for (int32_t r = 0; r < rows; r++) {
        int32_t n, oh, ow;
        pixel_of(yv, m0 + r, &n, &oh, &ow);
        memcpy(y + (size_t)mf_view_offset(yv, n, oh, ow) * element_size,
               block + (size_t)r * yv->c * element_size, (size_t)yv->c * element_size);
    }
}

/* The tile of a panel's first `cols` channels (the rest of the panel is zero weights), A from
 * the im2col panel ap. */
static void gemm_panel_f32(int32_t cols, int32_t depth, const float* ap, const float* bp,
                           float* tile) {
    const float* rows[MF_F32_MR];
    for (int32_t i = 0; i < MF_F32_MR; i++) {
        rows[i] = ap + i;
    }
    if (cols <= MF_F32_NR / 2) {
        gemm_columns_f32(MF_F32_NR / 2, MF_F32_MR, 1, depth, 0, rows, bp, tile);
    } else {
        gemm_columns_f32(MF_F32_NR, MF_F32_MR, 1, depth, 0, rows, bp, tile);
    }
}

/* The same with A's rows read in place: rows[i] points at pixel i's window's first tap; its
 * kernel rows are `segments` runs of `run` elements, `gap` elements apart. */
static void gemm_pixels_f32(int32_t cols, int32_t segments, int32_t run, int32_t gap,
                            const float* const* rows, const float* bp, float* tile) {
    if (cols <= MF_F32_NR / 2) {
        gemm_columns_f32(MF_F32_NR / 2, 1, segments, run, gap, rows, bp, tile);
    } else {
        gemm_columns_f32(MF_F32_NR, 1, segments, run, gap, rows, bp, tile);
    }
}

/* Where a window can be read in place: a kernel row's taps are one contiguous run of the
 * input (one tap, or dense pixels of one group's channels, dilation_w 1). */
static int32_t rows_contiguous(const mf_view* xv, const mf_conv* p, int32_t cin) {
    return p->kw == 1 || (p->dilation_w == 1 && xv->sw == cin);
}

/* Output rows [*lo, *hi) whose every tap row lies inside the input. */
static void interior_rows(const mf_conv* p, int32_t height, int32_t out_height, int32_t* lo,
                          int32_t* hi) {
    int32_t a = 0, b = out_height;
    while (a < b && a * p->stride_h - p->pad_top < 0) {
        a++;
    }
    const int32_t reach = (p->kh - 1) * p->dilation_h - p->pad_top;
    while (b > a && (b - 1) * p->stride_h + reach >= height) {
        b--;
    }
    *lo = a;
    *hi = b;
}

/* A float conv2d / partial_conv2d call, for its tiles. */
typedef struct {
    const float* x;
    const mf_view* xv;
    const float* w_packed;
    const float* bias;
    const float* acc;
    const mf_view* accv;
    float* y;
    const mf_view* yv;
    const mf_conv* p;
    const mf_range_f32* act;
    float* ap;
    int32_t cin, og, depth, panels;
    float* block; /* conv2d in place: the tile's outputs go here first ([rows][yv->c]) */
} conv_f32_call;

/* Output pixels[0 .. rows), all channels: each group's windows
 * read in place or packed into the panel, times each weight panel, stored as conv2d (bias,
 * act) or partial_conv2d (acc, no act) through the output view; with a block (conv2d in
 * place), into the block, which is stored once every group has read its inputs. */
static void tile_f32(const conv_f32_call* k, const conv_pixel* pixels, int32_t rows,
                     int32_t in_place) {
    const mf_conv* p = k->p;
    const int32_t run = p->kw * k->cin, gap = p->dilation_h * k->xv->sh;
    int32_t offsets[MF_F32_MR], acc_offsets[MF_F32_MR], x_offsets[MF_F32_MR];
    float tile[MF_F32_MR * MF_F32_NR];
    for (int32_t r = 0; r < MF_F32_MR; r++) {
        /* In place, rows past the end repeat the last pixel (their sums are not stored). */
        const conv_pixel* q = &pixels[mf_min_i32(r, rows - 1)];
        const int32_t n = q->n, oh = q->oh, ow = q->ow;
        offsets[r] = k->block ? r * k->yv->c : mf_view_offset(k->yv, n, oh, ow);
        acc_offsets[r] = k->acc ? mf_view_offset(k->accv, n, oh, ow) : 0;
        x_offsets[r] = mf_view_offset(k->xv, n, oh * p->stride_h - p->pad_top,
                                      ow * p->stride_w - p->pad_left);
    }
    for (int32_t g = 0; g < p->groups; g++) {
        const float* pixel_rows[MF_F32_MR];
        if (in_place) {
            for (int32_t r = 0; r < MF_F32_MR; r++) {
                pixel_rows[r] = k->x + x_offsets[r] + g * k->cin;
            }
        } else {
            pack_pixels_f32(k->x, k->xv, p, g * k->cin, k->cin, pixels, rows, k->ap);
        }
        for (int32_t panel = 0; panel < k->panels; panel++) {
            const float* bp =
                k->w_packed + ((size_t)g * k->panels + panel) * k->depth * MF_F32_NR;
            const int32_t o0 = g * k->og + panel * MF_F32_NR;
            const int32_t cols = mf_min_i32(MF_F32_NR, k->og - panel * MF_F32_NR);
            if (in_place) {
                gemm_pixels_f32(cols, p->kh, run, gap, pixel_rows, bp, tile);
            } else {
                gemm_panel_f32(cols, k->depth, k->ap, bp, tile);
            }
            for (int32_t r = 0; r < rows; r++) {
                float* out = (k->block ? k->block : k->y) + offsets[r] + o0;
                const float* t = tile + r * MF_F32_NR;
                if (k->act != NULL) {
                    mf_activate_row(t, k->bias ? k->bias + o0 : NULL, k->act, cols, out);
                } else if (k->acc != NULL) {
                    const float* in = k->acc + acc_offsets[r] + o0;
                    for (int32_t j = 0; j < cols; j++) {
                        out[j] = in[j] + t[j];
                    }
                } else {
                    for (int32_t j = 0; j < cols; j++) {
                        out[j] = t[j];
                    }
                }
            }
        }
    }
    if (k->block != NULL) {
        for (int32_t r = 0; r < rows; r++) {
            const conv_pixel* q = &pixels[r];
            memcpy(k->y + mf_view_offset(k->yv, q->n, q->oh, q->ow), k->block + r * k->yv->c,
                   (size_t)k->yv->c * sizeof(float));
        }
    }
}

/* The output pixels in order, in tiles of MF_F32_MR: those whose windows lie inside the input
 * read them in place (when a kernel row's taps are contiguous), the others (borders) are
 * packed, each kind in its own tiles, so that one border pixel does not send a whole tile
 * through im2col. With a block (a 1x1 conv2d in place, every window inside the input), the
 * tiles are consecutive pixels, as the planner's blocks. */
static void conv_f32(const float* x, const mf_view* xv, const float* w_packed, const float* bias,
                     const float* acc, const mf_view* accv, float* y, const mf_view* yv,
                     const mf_conv* p, const mf_range_f32* act, float* ap, float* block) {
    const int32_t cin = xv->c / p->groups, og = yv->c / p->groups;
    const conv_f32_call k = {x,   xv, w_packed, bias, acc, accv, y,  yv, p, act, ap, cin, og,
                             p->kh * p->kw * cin, (og + MF_F32_NR - 1) / MF_F32_NR, block};
    const int32_t contiguous = rows_contiguous(xv, p, cin);
    int32_t oh_lo, oh_hi, ow_lo, ow_hi;
    interior_rows(p, xv->h, yv->h, &oh_lo, &oh_hi);
    interior_columns(p, xv->w, yv->w, &ow_lo, &ow_hi);
    conv_pixel queue[2][MF_F32_MR]; /* [0]: packed, [1]: in place */
    int32_t queued[2] = {0, 0};
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            for (int32_t ow = 0; ow < yv->w; ow++) {
                /* in place (block), the pixels keep their order: one kind of tile */
                const int32_t q = block != NULL ? contiguous
                                                : contiguous && oh >= oh_lo && oh < oh_hi &&
                                                      ow >= ow_lo && ow < ow_hi;
                const conv_pixel pixel = {n, oh, ow};
                queue[q][queued[q]++] = pixel;
                if (queued[q] == MF_F32_MR) {
                    tile_f32(&k, queue[q], MF_F32_MR, q);
                    queued[q] = 0;
                }
            }
        }
    }
    for (int32_t q = 0; q < 2; q++) {
        if (queued[q] > 0) {
            tile_f32(&k, queue[q], queued[q], q);
        }
    }
}

/* ---- float, few input channels per group: output channels as the vectors -----------------
 * FDT's LIP convolution reads one partition's few channels into every output channel: its
 * im2col panels would hold K = KH * KW * cin values per pixel (9 for a 3x3 kernel over one
 * channel), too few to pay for packing them and setting up each GEMM tile. Here a register
 * tile of a few output pixels by a panel's channels (vectors of MF_VF: 2 for 16 channels, 4
 * for 32) is summed tap by tap, each input value broadcast against the tap's row of the packed
 * weights (the panel's [K][MF_F32_NR] as it is), then added to the accumulator. Interior
 * pixels go a tile at a time, the last tile of a row's interior moved back to end with it (its
 * pixels already stored are not stored again: the accumulator is usually the output); border
 * pixels, and interiors narrower than a tile, one at a time with their valid taps. */

#define MF_FEW_CIN 4   /* partial_conv2d this way when a group reads at most this many input
                        * channels (conv2d not: 12% slower on VWW's 3-channel first layer) */
#define MF_FEW_TILE 12 /* vectors of a tile (pixels x vectors per pixel): on resnet8's 3x3 over
                        * one channel into 16, 8 and 16 were 10-25% slower */

/* out = in + sums over count channels. The accumulator is usually the output itself, added to
 * through one pointer then: through two, the loop's overlap check sent it to scalar code. */
MF_INLINE void accumulate_f32(const float* in, const float* restrict sums, int32_t count,
                              float* out) {
    if (in == out) {
        for (int32_t j = 0; j < count; j++) {
            out[j] += sums[j];
        }
    } else {
        for (int32_t j = 0; j < count; j++) {
            out[j] = in[j] + sums[j];
        }
    }
}

/* Stores partial_conv2d's tile of output pixels ow0 .. ow0 + rows - 1 of row oh, batch n (a
 * panel's first `cols` channels, o0 on, as `vectors` vectors per pixel) from pixel `skip` on:
 * the accumulator plus the sums. */
MF_INLINE void few_inputs_store_f32(int32_t rows, int32_t vectors, const mf_vf* tile,
                                    const conv_f32_call* k, int32_t n, int32_t oh, int32_t ow0,
                                    int32_t o0, int32_t cols, int32_t skip) {
    MF_UNROLL
    for (int32_t r = 0; r < rows; r++) {
        if (r < skip) {
            continue;
        }
        float* out = k->y + mf_view_offset(k->yv, n, oh, ow0 + r) + o0;
        const float* in =
            k->acc != NULL ? k->acc + mf_view_offset(k->accv, n, oh, ow0 + r) + o0 : NULL;
        MF_UNROLL
        for (int32_t u = 0; u < vectors; u++) {
            const int32_t c0 = u * MF_VF, count = mf_min_i32(MF_VF, cols - c0);
            const mf_vf sums = tile[r * vectors + u];
            if (count == MF_VF) { /* whole vectors from and to memory, not through an array */
                mf_vf_store(out + c0, in != NULL ? mf_vf_add(mf_vf_load(in + c0), sums) : sums);
            } else if (count > 0) {
                float part[MF_VF];
                mf_vf_store(part, sums);
                for (int32_t j = 0; j < count; j++) {
                    out[c0 + j] = in != NULL ? in[c0 + j] + part[j] : part[j];
                }
            }
        }
    }
}

/* partial_conv2d's border pixel ow of row oh, batch n, group g, over tap columns [jlo, jhi),
 * panel bp's first `cols` channels (o0 on) as `vectors` vectors (a constant in each caller). A
 * kernel row's taps are read as the direct convolution reads them (d: one run when they are
 * contiguous). */
MF_INLINE void few_inputs_pixel_f32(int32_t vectors, const conv_f32_call* k,
                                    const direct_geometry* d, const float* bp, int32_t g,
                                    int32_t n, int32_t oh, int32_t ow, int32_t jlo, int32_t jhi,
                                    int32_t o0, int32_t cols) {
    const mf_conv* p = k->p;
    const mf_view* xv = k->xv;
    const int32_t cin = d->cin;
    const int32_t runs = d->merged ? 1 : jhi - jlo;
    const int32_t len = d->merged ? (jhi - jlo) * cin : cin;
    const int32_t iw = ow * p->stride_w - p->pad_left + jlo * p->dilation_w;
    mf_vf tile[MF_F32_NR / MF_VF];
    MF_UNROLL
    for (int32_t u = 0; u < vectors; u++) {
        tile[u] = mf_vf_splat(0.0f);
    }
    for (int32_t i = 0; i < p->kh; i++) {
        const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
        if (ih < 0 || ih >= xv->h) {
            continue;
        }
        const float* row = k->x + mf_view_offset(xv, n, ih, iw) + g * cin;
        for (int32_t t = 0; t < runs; t++) {
            const float* restrict a = row + t * p->dilation_w * xv->sw;
            const float* restrict b = bp + (size_t)(i * p->kw + jlo + t) * cin * MF_F32_NR;
            for (int32_t e = 0; e < len; e++) {
                const mf_vf v = mf_vf_splat(a[e]);
                MF_UNROLL
                for (int32_t u = 0; u < vectors; u++) {
                    tile[u] = mf_vf_fma(v, mf_vf_load(b + e * MF_F32_NR + u * MF_VF), tile[u]);
                }
            }
        }
    }
    few_inputs_store_f32(1, vectors, tile, k, n, oh, ow, o0, cols, 0);
}

/* partial_conv2d's interior pixels ow0 .. ow0 + rows - 1 of a row whose windows start at
 * x[origin + r * step] (kernel row 0: only rows [ilo, ihi) are read), stored from pixel `skip`
 * on; rows and vectors are constants in each caller (rows * vectors <= MF_FEW_TILE). The
 * window's values come from the table (width 1), each broadcast against its row of the panel. */
MF_INLINE void few_inputs_tile_f32(int32_t rows, int32_t vectors, const conv_f32_call* k,
                                   const window_table* table, int32_t step, const float* bp,
                                   int32_t origin, int32_t ilo, int32_t ihi, int32_t n,
                                   int32_t oh, int32_t ow0, int32_t o0, int32_t cols,
                                   int32_t skip) {
    mf_vf tile[MF_FEW_TILE];
    MF_UNROLL /* every loop over the tile: an array indexed at run time stays in memory */
    for (int32_t t = 0; t < rows * vectors; t++) {
        tile[t] = mf_vf_splat(0.0f);
    }
    const window_entry* entries = table->vectors;
    for (int32_t e = ilo * table->vectors_per_row; e < ihi * table->vectors_per_row; e++) {
        const float* restrict a = k->x + (origin + entries[e].x);
        const float* restrict b = bp + (size_t)entries[e].w * MF_F32_NR;
        mf_vf weights[MF_FEW_TILE];
        MF_UNROLL
        for (int32_t u = 0; u < vectors; u++) {
            weights[u] = mf_vf_load(b + u * MF_VF);
        }
        MF_UNROLL
        for (int32_t r = 0; r < rows; r++) {
            const mf_vf v = mf_vf_splat(a[r * step]);
            MF_UNROLL
            for (int32_t u = 0; u < vectors; u++) {
                tile[r * vectors + u] = mf_vf_fma(v, weights[u], tile[r * vectors + u]);
            }
        }
    }
    few_inputs_store_f32(rows, vectors, tile, k, n, oh, ow0, o0, cols, skip);
}

/* Kernel row i's part of three_column_tile_f32. */
MF_INLINE void three_column_tile_row_f32(int32_t rows, int32_t vectors, mf_vf* tile,
                                         const float* restrict row, int32_t sw, int32_t cin,
                                         int32_t left, int32_t right,
                                         const float* restrict bi) {
    for (int32_t c = 0; c < cin; c++) {
        const float* restrict b = bi + (size_t)c * MF_F32_NR;
        mf_vf weights[3][MF_F32_NR / MF_VF];
        MF_UNROLL
        for (int32_t j = 0; j < 3; j++) {
            MF_UNROLL
            for (int32_t u = 0; u < vectors; u++) {
                weights[j][u] = mf_vf_load(b + (size_t)j * cin * MF_F32_NR + u * MF_VF);
            }
        }
        MF_UNROLL
        for (int32_t q = 0; q < rows + 2; q++) {
            const int32_t inside = q == 0 ? left : (q == rows + 1 ? right : 1);
            const mf_vf v = mf_vf_splat(inside ? row[(q - 1) * sw + c] : 0.0f);
            MF_UNROLL
            for (int32_t j = 0; j < 3; j++) {
                const int32_t r = q - j; /* the pixel whose tap j reads column q */
                if (r < 0 || r >= rows) {
                    continue;
                }
                MF_UNROLL
                for (int32_t u = 0; u < vectors; u++) {
                    tile[r * vectors + u] = mf_vf_fma(v, weights[j][u], tile[r * vectors + u]);
                }
            }
        }
    }
}

/* few_inputs_tile_f32 over three columns (three_columns: the row's every pixel in tiles), the
 * input pixel before the tile's first column or after its last read as zeros where it is
 * padding (`left`, `right` say whether it is inside): each input value of a kernel row is
 * broadcast once against the row's three taps, whose weight vectors are loaded once per kernel
 * row and input channel. */
MF_INLINE void three_column_tile_f32(int32_t rows, int32_t vectors, const conv_f32_call* k,
                                     const float* bp, int32_t origin, int32_t ilo, int32_t ihi,
                                     int32_t left, int32_t right, int32_t n, int32_t oh,
                                     int32_t ow0, int32_t o0, int32_t cols, int32_t skip) {
    const int32_t cin = k->cin, sw = k->xv->sw, row_step = k->p->dilation_h * k->xv->sh;
    mf_vf tile[MF_FEW_TILE];
    MF_UNROLL
    for (int32_t t = 0; t < rows * vectors; t++) {
        tile[t] = mf_vf_splat(0.0f);
    }
    const size_t taps_step = (size_t)3 * cin * MF_F32_NR; /* weights of a kernel row */
    if (ilo == 0 && ihi == 3) { /* a 3x3 kernel away from the top and bottom: unrolled (the
                                 * 1->16 tiles of resnet8's FDT 12% faster) */
        MF_UNROLL
        for (int32_t i = 0; i < 3; i++) {
            three_column_tile_row_f32(rows, vectors, tile, k->x + (origin + i * row_step), sw,
                                      cin, left, right, bp + i * taps_step);
        }
    } else {
        for (int32_t i = ilo; i < ihi; i++) {
            three_column_tile_row_f32(rows, vectors, tile, k->x + (origin + i * row_step), sw,
                                      cin, left, right, bp + i * taps_step);
        }
    }
    few_inputs_store_f32(rows, vectors, tile, k, n, oh, ow0, o0, cols, skip);
}

/* One output row's pixels of a panel `vectors` vectors wide (a constant in each caller). */
MF_INLINE void few_inputs_row_f32(int32_t vectors, const conv_f32_call* k,
                                  const direct_geometry* d, const window_table* table,
                                  const float* bp, int32_t g, int32_t n, int32_t oh, int32_t o0,
                                  int32_t cols) {
    const mf_conv* p = k->p;
    const mf_view* xv = k->xv;
    const int32_t rows = MF_FEW_TILE / vectors;
    const int32_t tiles = d->ow_hi - d->ow_lo >= rows;
    int32_t ilo, ihi;
    valid_kernel_rows(p, xv->h, oh, &ilo, &ihi);
    int32_t ow = 0;
    if (three_columns(xv, k->yv, p, rows)) {
        while (ow < k->yv->w) {
            const int32_t first = mf_min_i32(ow, k->yv->w - rows);
            const int32_t origin = n * xv->sn + (oh * p->stride_h - p->pad_top) * xv->sh +
                                   first * xv->sw + g * d->cin;
            three_column_tile_f32(rows, vectors, k, bp, origin, ilo, ihi, first > 0,
                                  first + rows < k->yv->w, n, oh, first, o0, cols, ow - first);
            ow = first + rows;
        }
        return;
    }
    while (ow < k->yv->w) {
        if (tiles && ow >= d->ow_lo && ow < d->ow_hi) {
            const int32_t first = mf_min_i32(ow, d->ow_hi - rows);
            const int32_t origin = n * xv->sn + (oh * p->stride_h - p->pad_top) * xv->sh +
                                   (first * p->stride_w - p->pad_left) * xv->sw + g * d->cin;
            few_inputs_tile_f32(rows, vectors, k, table, d->step, bp, origin, ilo, ihi, n, oh,
                                first, o0, cols, ow - first);
            ow = first + rows;
        } else {
            int32_t jlo, jhi;
            valid_taps(p, xv->w, ow, &jlo, &jhi);
            few_inputs_pixel_f32(vectors, k, d, bp, g, n, oh, ow, jlo, jhi, o0, cols);
            ow++;
        }
    }
}

/* The window table (width 1) is in the workspace. */
MF_NOINLINE void few_inputs_f32(const float* x, const mf_view* xv, const float* w_packed,
                                const float* acc, const mf_view* accv, float* y,
                                const mf_view* yv, const mf_conv* p, float* workspace) {
    const direct_geometry d = direct_setup(xv, yv, p);
    const int32_t og = yv->c / p->groups, panels = (og + MF_F32_NR - 1) / MF_F32_NR;
    const conv_f32_call k = {x,  xv,      w_packed, NULL, acc, accv, y, yv, p, NULL, NULL, d.cin,
                             og, d.depth, panels,   NULL};
    const window_table table = build_window_table(xv, p, &d, 1, (window_entry*)workspace);
    for (int32_t g = 0; g < p->groups; g++) {
        for (int32_t panel = 0; panel < panels; panel++) {
            const float* bp = w_packed + ((size_t)g * panels + panel) * d.depth * MF_F32_NR;
            const int32_t o0 = g * og + panel * MF_F32_NR;
            const int32_t cols = mf_min_i32(MF_F32_NR, og - panel * MF_F32_NR);
            for (int32_t n = 0; n < yv->n; n++) {
                for (int32_t oh = 0; oh < yv->h; oh++) {
                    if (cols <= MF_F32_NR / 2) {
                        few_inputs_row_f32(MF_F32_NR / 2 / MF_VF, &k, &d, &table, bp, g, n, oh,
                                           o0, cols);
                    } else {
                        few_inputs_row_f32(MF_F32_NR / MF_VF, &k, &d, &table, bp, g, n, oh, o0,
                                           cols);
                    }
                }
            }
        }
    }
}

/* Few output channels per group go the direct way (never inlined: inlined into its callers,
 * GCC 12 compiled its loops up to 2.5x slower, depending on the code around them). */
void mf_conv2d_f32(const float* x, const mf_view* xv, const float* w_packed, const float* bias,
                   float* y, const mf_view* yv, const mf_conv* p, const mf_range_f32* act,
                   float* workspace) {
    if (yv->c / p->groups <= MF_DIRECT_OG) {
        direct_f32(x, xv, w_packed, bias, NULL, NULL, y, yv, p, act, workspace);
    } else {
        conv_f32(x, xv, w_packed, bias, NULL, NULL, y, yv, p, act, workspace, NULL);
    }
}

void mf_conv2d_inplace_f32(const float* x, const mf_view* xv, const float* w_packed,
                           const float* bias, float* y, const mf_view* yv, const mf_conv* p,
                           const mf_range_f32* act, float* workspace, float* block) {
    conv_f32(x, xv, w_packed, bias, NULL, NULL, y, yv, p, act, workspace, block);
}

void mf_partial_conv2d_f32(const float* x, const mf_view* xv, const float* w_packed,
                           const float* acc, const mf_view* accv, float* y, const mf_view* yv,
                           const mf_conv* p, float* workspace) {
    if (yv->c / p->groups <= MF_DIRECT_OG) {
        direct_f32(x, xv, w_packed, NULL, acc, accv, y, yv, p, NULL, workspace);
    } else if (xv->c / p->groups <= MF_FEW_CIN) {
        few_inputs_f32(x, xv, w_packed, acc, accv, y, yv, p, workspace);
    } else {
        conv_f32(x, xv, w_packed, NULL, acc, accv, y, yv, p, NULL, workspace, NULL);
    }
}

/* ---- int8: int16 im2col rows, int32 dot-product GEMM on the weights as they are ------------
 * Each panel row is one output pixel's window with the input offset added ((x - zero point)
 * as int16; taps in the padding are 0, as TFLite skips them), K contiguous, so a tile is
 * MF_S8_MR x MF_S8_NR dot products against weight rows, which compilers turn into
 * multiply-add-pairs (pmaddwd / vpdpwssd). */

static void pack_pixels_s8(const int8_t* x, const mf_view* xv, const mf_view* yv,
                           const mf_conv* p, int32_t input_offset, int32_t c0, int32_t cin,
                           int32_t m0, int32_t rows, int16_t* ap) {
    const int32_t depth = p->kh * p->kw * cin;
    for (int32_t r = 0; r < MF_S8_MR; r++) {
        int16_t* row = ap + r * depth;
        int32_t n, oh, ow;
        if (r >= rows) {
            memset(row, 0, sizeof(int16_t) * (size_t)depth);
            continue;
        }
        pixel_of(yv, m0 + r, &n, &oh, &ow);
        for (int32_t i = 0; i < p->kh; i++) {
            const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
            for (int32_t j = 0; j < p->kw; j++) {
                const int32_t iw = ow * p->stride_w - p->pad_left + j * p->dilation_w;
                int16_t* dst = row + (i * p->kw + j) * cin;
                if (ih < 0 || ih >= xv->h || iw < 0 || iw >= xv->w) {
                    memset(dst, 0, sizeof(int16_t) * (size_t)cin);
                } else {
                    const int8_t* src = x + mf_view_offset(xv, n, ih, iw) + c0;
                    for (int32_t c = 0; c < cin; c++) {
                        dst[c] = (int16_t)(src[c] + input_offset);
                    }
                }
            }
        }
    }
}

/* tile[MR][NR] = sums over K of panel rows times weight rows w[j * depth ...]. */
static void gemm_tile_s8(int32_t depth, const int16_t* restrict ap, const int8_t* restrict w,
                         int32_t* restrict tile) {
    int32_t acc[MF_S8_MR * MF_S8_NR];
    for (int32_t t = 0; t < MF_S8_MR * MF_S8_NR; t++) {
        acc[t] = 0;
    }
    for (int32_t k = 0; k < depth; k++) {
        MF_UNROLL
        for (int32_t i = 0; i < MF_S8_MR; i++) {
            MF_UNROLL
            for (int32_t j = 0; j < MF_S8_NR; j++) {
                acc[i * MF_S8_NR + j] += ap[i * depth + k] * w[j * depth + k];
            }
        }
    }
    for (int32_t t = 0; t < MF_S8_MR * MF_S8_NR; t++) {
        tile[t] = acc[t];
    }
}

/* The tile of fewer than MF_S8_NR output channels at the end of a group. */
static void gemm_edge_s8(int32_t depth, int32_t cols, const int16_t* restrict ap,
                         const int8_t* restrict w, int32_t* restrict tile) {
    for (int32_t j = 0; j < cols; j++) {
        int32_t acc[MF_S8_MR] = {0};
        for (int32_t k = 0; k < depth; k++) {
            MF_UNROLL
            for (int32_t i = 0; i < MF_S8_MR; i++) {
                acc[i] += ap[i * depth + k] * w[j * depth + k];
            }
        }
        for (int32_t i = 0; i < MF_S8_MR; i++) {
            tile[i * MF_S8_NR + j] = acc[i];
        }
    }
}

/* int8 convolution sums (of x + input_offset) into `out`. With `block` (conv2d in place), each
 * tile of MF_S8_MR pixels is computed into it for every group and output channel, then stored
 * into out->y8. */
static void conv_s8(const int8_t* x, const mf_view* xv, const int8_t* w, const s8_sink* out,
                    const mf_conv* p, int32_t input_offset, int16_t* ap, int8_t* block) {
    const mf_view* yv = out->yv;
    const int32_t groups = p->groups;
    const int32_t cin = xv->c / groups, og = yv->c / groups;
    const int32_t depth = p->kh * p->kw * cin;
    const int32_t pixels = yv->n * yv->h * yv->w;
    s8_sink staged = *out; /* in place: the block stands in for the output */
    if (block != NULL) {
        staged.y8 = block;
    }
    const s8_sink* sink = &staged;
    int32_t tile[MF_S8_MR * MF_S8_NR];
    if (og <= MF_DIRECT_OG && block == NULL) {
        const direct_geometry d = direct_setup(xv, yv, p);
        const int32_t chunk = short_runs_chunk(p, cin);
        if ((d.merged ? p->kw * cin : cin) <= MF_SHORT_RUN && chunk >= MF_SPAN_LANES) {
            short_runs_s8(x, xv, w, 1, out, p, input_offset, chunk);
        } else {
            direct_s8(x, xv, w, out, p, input_offset);
        }
        return;
    }
    for (int32_t m0 = 0; m0 < pixels; m0 += MF_S8_MR) {
        const int32_t rows = mf_min_i32(MF_S8_MR, pixels - m0);
        s8_pixel at[MF_S8_MR];
        for (int32_t r = 0; r < rows; r++) {
            int32_t n, oh, ow;
            pixel_of(yv, m0 + r, &n, &oh, &ow);
            if (block != NULL) {
                at[r].y = r * yv->c;
                at[r].acc = 0;
            } else {
                at[r] = pixel_at(out, n, oh, ow);
            }
        }
        for (int32_t g = 0; g < groups; g++) {
            pack_pixels_s8(x, xv, yv, p, input_offset, g * cin, cin, m0, rows, ap);
            for (int32_t j0 = 0; j0 < og; j0 += MF_S8_NR) {
                const int32_t o0 = g * og + j0;
                const int32_t cols = mf_min_i32(MF_S8_NR, og - j0);
                const int8_t* wo = w + (size_t)o0 * depth;
                if (cols == MF_S8_NR) {
                    gemm_tile_s8(depth, ap, wo, tile);
                } else {
                    gemm_edge_s8(depth, cols, ap, wo, tile);
                }
                for (int32_t r = 0; r < rows; r++) {
                    store_s8(sink, at[r], o0, cols, tile + r * MF_S8_NR, 1);
                }
            }
        }
        if (block != NULL) {
            store_block((const unsigned char*)block, (unsigned char*)out->y8, yv, m0, rows, 1);
        }
    }
}

void mf_conv2d_s8(const int8_t* x, const mf_view* xv, const int8_t* w, const int32_t* bias,
                  int8_t* y, const mf_view* yv, const mf_conv* p, const mf_requant_s8* q,
                  int16_t* workspace) {
    s8_sink out = {0};
    out.yv = yv;
    out.y8 = y;
    out.bias = bias;
    out.q = q;
    conv_s8(x, xv, w, &out, p, q->input_offset, workspace, NULL);
}

void mf_conv2d_inplace_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                          const int32_t* bias, int8_t* y, const mf_view* yv, const mf_conv* p,
                          const mf_requant_s8* q, int16_t* workspace, int8_t* block) {
    s8_sink out = {0};
    out.yv = yv;
    out.y8 = y;
    out.bias = bias;
    out.q = q;
    conv_s8(x, xv, w, &out, p, q->input_offset, workspace, block);
}

void mf_partial_conv2d_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                          const int32_t* acc, const mf_view* accv, int32_t* y,
                          const mf_view* yv, const mf_conv* p, int32_t input_offset,
                          int16_t* workspace) {
    s8_sink out = {0};
    out.yv = yv;
    out.y32 = y;
    out.acc = acc;
    out.accv = accv;
    conv_s8(x, xv, w, &out, p, input_offset, workspace, NULL);
}

/* TFLite's SymmetricQuantizeFloats of batch item n of x into a dense [H][W][C] int8 array:
 * values in [-127, 127] at scale (largest magnitude) / 127, which it returns (1 for zeros). */
static float quantize_symmetric(const float* x, const mf_view* xv, int32_t n, int8_t* q) {
    float largest = 0.0f;
    for (int32_t h = 0; h < xv->h; h++) {
        for (int32_t w = 0; w < xv->w; w++) {
            const float* in = x + mf_view_offset(xv, n, h, w);
            for (int32_t c = 0; c < xv->c; c++) {
                const float magnitude = fabsf(in[c]);
                largest = magnitude > largest ? magnitude : largest;
            }
        }
    }
    const float factor = largest > 0.0f ? 127.0f / largest : 0.0f;
    for (int32_t h = 0; h < xv->h; h++) {
        for (int32_t w = 0; w < xv->w; w++) {
            const float* in = x + mf_view_offset(xv, n, h, w);
            int8_t* out = q + (h * xv->w + w) * xv->c;
            for (int32_t c = 0; c < xv->c; c++) {
                /* roundf (halves away from zero) without the library call, so that the loop
                 * vectorizes: |ratio| <= 127 (plus rounding), its whole part and fraction are
                 * exact */
                const float ratio = in[c] * factor;
                int32_t whole = (int32_t)ratio;
                const float fraction = ratio - (float)whole;
                whole += (fraction >= 0.5f) - (fraction <= -0.5f);
                out[c] = (int8_t)mf_clamp_i32(whole, -127, 127);
            }
        }
    }
    return largest > 0.0f ? largest / 127.0f : 1.0f;
}

void mf_conv2d_hybrid_f32(const float* x, const mf_view* xv, const int8_t* w, const float* bias,
                          float* y, const mf_view* yv, const mf_conv* p, float weights_scale,
                          const mf_range_f32* act, int16_t* workspace) {
    const int32_t depth = p->kh * p->kw * (xv->c / p->groups);
    int8_t* quantized = (int8_t*)(workspace + MF_S8_MR * depth);
    const mf_view qv = {1, xv->h, xv->w, xv->c, xv->h * xv->w * xv->c, xv->w * xv->c, xv->c};
    mf_view item = *yv;
    item.n = 1;
    for (int32_t n = 0; n < yv->n; n++) {
        const float input_scale = quantize_symmetric(x, xv, n, quantized);
        s8_sink out = {0};
        out.yv = &item;
        out.yf = y + (size_t)n * yv->sn;
        out.bias_f32 = bias;
        out.scale = input_scale * weights_scale;
        out.act = act;
        conv_s8(quantized, &qv, w, &out, p, 0, workspace, NULL);
    }
}

/* ---- depthwise -----------------------------------------------------------------------------
 * Output row by output row: a chunk of the row (columns x channels, at most MF_DW_ROW values)
 * is accumulated tap by tap, each tap over the columns whose input lies inside the image (no
 * per-pixel bounds checks), channels innermost and contiguous so the loops vectorize; then it
 * is stored (bias, activation / requantization) in one pass. Output channel o reads input
 * channel o / depth_multiplier and weights w[i][j][o]. */

#define MF_DW_ROW 512

/* Channels per chunk (whole input channels' worth when possible), and columns per chunk. */
static void depthwise_chunks(int32_t channels, int32_t mult, int32_t* cb, int32_t* owb) {
    *cb = channels <= MF_DW_ROW ? channels : MF_DW_ROW;
    if (*cb < channels && mult <= MF_DW_ROW) {
        *cb -= *cb % mult;
    }
    *owb = MF_DW_ROW / *cb;
}


/* Float, depth multiplier 1: MF_DW_LANES channels at a time (then 4, then the rest), each of
 * the window's taps inside the input one multiply-add of contiguous inputs and weights (loops
 * of constant length: one vector instruction each). Interior pixels of a row go MF_DIRECT_R at
 * a time: their sums are independent chains of multiply-adds, where one pixel's taps would wait
 * on each other's latency. Channel blocks of the in-place kernel are multiples of MF_DW_LANES
 * where they can be. (The same for int8 was up to 9x slower than the chunked rows below on
 * MobileNetV2's large maps with GCC 12, so int8 keeps them.) */

#define MF_DW_LANES 8

/* The taps' rows [*ilo, *ihi) of output row oh that lie inside the input. */
static void valid_rows(const mf_conv* p, int32_t height, int32_t oh, int32_t* ilo, int32_t* ihi) {
    const int32_t ih0 = oh * p->stride_h - p->pad_top;
    int32_t a = 0, b = p->kh;
    while (a < b && ih0 + a * p->dilation_h < 0) {
        a++;
    }
    while (b > a && ih0 + (b - 1) * p->dilation_h >= height) {
        b--;
    }
    *ilo = a;
    *ihi = b;
}

/* The window of a depthwise output row: what the lanes kernels share. */
typedef struct {
    int32_t n, oh, ilo, ihi; /* the batch, the output row and its tap rows inside the input */
    int32_t channels;        /* weights per tap */
} depthwise_row;

/* sums[r][l] = the window sum of channel c + l at output pixel ow + r (r < rows, l < lanes),
 * over tap rows [ilo, ihi) and tap columns [jlo, jhi); rows and lanes are constants in each
 * caller (rows 1 or MF_DIRECT_R, lanes MF_DW_LANES, 4, or the fewer left, at most 3). */
MF_INLINE void depthwise_lanes_f32(int32_t rows, int32_t lanes, const float* x,
                                   const mf_view* xv, const float* w, const mf_conv* p,
                                   const depthwise_row* d, int32_t ow, int32_t jlo, int32_t jhi,
                                   int32_t c, float sums[MF_DIRECT_R][MF_DW_LANES]) {
    float a[MF_DIRECT_R][MF_DW_LANES] = {{0.0f}};
    const int32_t step = p->stride_w * xv->sw;
    for (int32_t i = d->ilo; i < d->ihi; i++) {
        const int32_t ih = d->oh * p->stride_h - p->pad_top + i * p->dilation_h;
        const float* row = x + mf_view_offset(xv, d->n, ih, ow * p->stride_w - p->pad_left) + c;
        const float* wrow = w + i * p->kw * d->channels + c;
        for (int32_t j = jlo; j < jhi; j++) {
            const float* restrict in = row + j * p->dilation_w * xv->sw;
            const float* restrict wt = wrow + j * d->channels;
            for (int32_t r = 0; r < rows; r++) {
                for (int32_t l = 0; l < lanes; l++) {
                    a[r][l] = MF_FMA(in[r * step + l], wt[l], a[r][l]);
                }
            }
        }
    }
    for (int32_t r = 0; r < rows; r++) {
        for (int32_t l = 0; l < lanes; l++) {
            sums[r][l] = a[r][l];
        }
    }
}

/* Channels [cfirst, last) of output pixels ow .. ow + rows - 1, stored at
 * out[r * stride + c - cfirst]; rows is a constant in each caller. */
MF_INLINE void depthwise_pixels_f32(int32_t rows, const float* x, const mf_view* xv,
                                    const float* w, const float* bias, const mf_conv* p,
                                    const mf_range_f32* act, const depthwise_row* d,
                                    int32_t ow, int32_t jlo, int32_t jhi, int32_t cfirst,
                                    int32_t last, float* out, int32_t stride) {
    float sums[MF_DIRECT_R][MF_DW_LANES];
    int32_t c = cfirst;
    for (; c + MF_DW_LANES <= last; c += MF_DW_LANES) {
        depthwise_lanes_f32(rows, MF_DW_LANES, x, xv, w, p, d, ow, jlo, jhi, c, sums);
        for (int32_t r = 0; r < rows; r++) {
            mf_activate_row(sums[r], bias ? bias + c : NULL, act, MF_DW_LANES,
                            out + (size_t)r * stride + (c - cfirst));
        }
    }
    if (c + 4 <= last) {
        depthwise_lanes_f32(rows, 4, x, xv, w, p, d, ow, jlo, jhi, c, sums);
        for (int32_t r = 0; r < rows; r++) {
            mf_activate_row(sums[r], bias ? bias + c : NULL, act, 4,
                            out + (size_t)r * stride + (c - cfirst));
        }
        c += 4;
    }
    if (c < last) {
        depthwise_lanes_f32(rows, last - c, x, xv, w, p, d, ow, jlo, jhi, c, sums);
        for (int32_t r = 0; r < rows; r++) {
            mf_activate_row(sums[r], bias ? bias + c : NULL, act, last - c,
                            out + (size_t)r * stride + (c - cfirst));
        }
    }
}

/* Output pixels [ow0, ow1) of row oh of batch n, channels [cfirst, cfirst + count), depth
 * multiplier 1, stored at out[(ow - ow0) * stride + c - cfirst]. */
static void depthwise_row_lanes_f32(const float* x, const mf_view* xv, const float* w,
                                    const float* bias, const mf_view* yv, const mf_conv* p,
                                    const mf_range_f32* act, int32_t n, int32_t oh, int32_t ow0,
                                    int32_t ow1, int32_t cfirst, int32_t count, float* out,
                                    int32_t stride) {
    depthwise_row d = {n, oh, 0, 0, yv->c};
    int32_t ow_lo, ow_hi;
    valid_rows(p, xv->h, oh, &d.ilo, &d.ihi);
    interior_columns(p, xv->w, yv->w, &ow_lo, &ow_hi);
    ow_hi = mf_min_i32(ow_hi, ow1);
    int32_t ow = ow0;
    while (ow < ow1) {
        float* o = out + (size_t)(ow - ow0) * stride;
        if (ow >= ow_lo && ow + MF_DIRECT_R <= ow_hi) {
            depthwise_pixels_f32(MF_DIRECT_R, x, xv, w, bias, p, act, &d, ow, 0, p->kw, cfirst,
                                 cfirst + count, o, stride);
            ow += MF_DIRECT_R;
        } else {
            int32_t jlo, jhi;
            valid_taps(p, xv->w, ow, &jlo, &jhi);
            depthwise_pixels_f32(1, x, xv, w, bias, p, act, &d, ow, jlo, jhi, cfirst,
                                 cfirst + count, o, stride);
            ow++;
        }
    }
}

/* Output pixels [first, last) of row oh of batch n, channels [cfirst, cfirst + count), stored
 * at out[(ow - first) * stride + c - cfirst], in chunks of at most MF_DW_ROW accumulators. */
static void depthwise_row_f32(const float* x, const mf_view* xv, const float* w,
                              const float* bias, const mf_view* yv, const mf_conv* p,
                              const mf_range_f32* act, int32_t n, int32_t oh, int32_t first,
                              int32_t last, int32_t cfirst, int32_t count, float* out,
                              int32_t stride) {
    const int32_t channels = yv->c, mult = p->depth_multiplier;
    int32_t cb, owb;
    float acc[MF_DW_ROW];
    if (mult == 1) {
        depthwise_row_lanes_f32(x, xv, w, bias, yv, p, act, n, oh, first, last, cfirst, count,
                                out, stride);
        return;
    }
    depthwise_chunks(count, mult, &cb, &owb);
    for (int32_t c0 = cfirst; c0 < cfirst + count; c0 += cb) {
        const int32_t len = mf_min_i32(cb, cfirst + count - c0);
        for (int32_t ow0 = first; ow0 < last; ow0 += owb) {
            const int32_t ow1 = mf_min_i32(ow0 + owb, last);
            for (int32_t t = 0; t < (ow1 - ow0) * len; t++) {
                acc[t] = 0.0f;
            }
            for (int32_t i = 0; i < p->kh; i++) {
                const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                if (ih < 0 || ih >= xv->h) {
                    continue;
                }
                for (int32_t j = 0; j < p->kw; j++) {
                    int32_t lo, hi;
                    valid_columns(p, xv->w, j, ow0, ow1, &lo, &hi);
                    const float* restrict wt = w + (i * p->kw + j) * channels + c0;
                    for (int32_t ow = lo; ow < hi; ow++) {
                        const int32_t iw = ow * p->stride_w + j * p->dilation_w - p->pad_left;
                        const float* restrict in = x + mf_view_offset(xv, n, ih, iw);
                        float* restrict a = acc + (ow - ow0) * len;
                        if (mult == 1) {
                            const float* restrict in0 = in + c0;
                            for (int32_t c = 0; c < len; c++) {
                                a[c] = MF_FMA(in0[c], wt[c], a[c]);
                            }
                        } else {
                            for (int32_t c = 0; c < len; c++) {
                                a[c] = MF_FMA(in[(c0 + c) / mult], wt[c], a[c]);
                            }
                        }
                    }
                }
            }
            for (int32_t ow = ow0; ow < ow1; ow++) {
                mf_activate_row(acc + (ow - ow0) * len, bias ? bias + c0 : NULL, act, len,
                                out + (size_t)(ow - first) * stride + (c0 - cfirst));
            }
        }
    }
}

void mf_depthwise_conv2d_f32(const float* x, const mf_view* xv, const float* w,
                             const float* bias, float* y, const mf_view* yv, const mf_conv* p,
                             const mf_range_f32* act) {
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            depthwise_row_f32(x, xv, w, bias, yv, p, act, n, oh, 0, yv->w, 0, yv->c,
                              y + mf_view_offset(yv, n, oh, 0), yv->sw);
        }
    }
}

/* One tap of an int8 depthwise row chunk: a[ow][c] += (x + offset) * w over valid columns. */
static void depthwise_tap_s8(const int8_t* restrict x, const mf_view* xv, const mf_conv* p,
                             int32_t n, int32_t ih, int32_t j, int32_t lo, int32_t hi,
                             int32_t ow0, int32_t c0, int32_t len, int32_t offset,
                             const int8_t* restrict wt, int32_t* restrict acc) {
    const int32_t mult = p->depth_multiplier;
    /* With whole input channels in the chunk, each input value meets `mult` weights in a row;
     * otherwise output channel c0 + c reads input channel (c0 + c) / mult, counted. */
    const int32_t whole = mult > 1 && c0 % mult == 0 && len % mult == 0;
    const int32_t inputs = len / mult, first = c0 / mult, phase = c0 % mult;
    for (int32_t ow = lo; ow < hi; ow++) {
        const int32_t iw = ow * p->stride_w + j * p->dilation_w - p->pad_left;
        const int8_t* restrict in = x + mf_view_offset(xv, n, ih, iw);
        int32_t* restrict a = acc + (ow - ow0) * len;
        if (mult == 1) {
            const int8_t* restrict in0 = in + c0;
            for (int32_t c = 0; c < len; c++) {
                a[c] += (int16_t)(in0[c] + offset) * wt[c];
            }
        } else if (whole) {
            for (int32_t ic = 0; ic < inputs; ic++) {
                const int16_t v = (int16_t)(in[first + ic] + offset);
                int32_t* restrict am = a + ic * mult;
                const int8_t* restrict wm = wt + ic * mult;
                for (int32_t m = 0; m < mult; m++) {
                    am[m] += v * wm[m];
                }
            }
        } else {
            int32_t ic = first, m = phase;
            for (int32_t c = 0; c < len; c++) {
                a[c] += (int16_t)(in[ic] + offset) * wt[c];
                if (++m == mult) {
                    m = 0;
                    ic++;
                }
            }
        }
    }
}


/* Output pixels [first, last) of row oh of batch n, channels [cfirst, cfirst + count), stored
 * at out[(ow - first) * stride + c - cfirst]. */
static void depthwise_row_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                             const int32_t* bias, const mf_view* yv, const mf_conv* p,
                             const mf_requant_s8* q, int32_t n, int32_t oh, int32_t first,
                             int32_t last, int32_t cfirst, int32_t count, int8_t* out,
                             int32_t stride) {
    const int32_t channels = yv->c, mult = p->depth_multiplier;
    int32_t cb, owb;
    int32_t acc[MF_DW_ROW];
    depthwise_chunks(count, mult, &cb, &owb);
    for (int32_t c0 = cfirst; c0 < cfirst + count; c0 += cb) {
        const int32_t len = mf_min_i32(cb, cfirst + count - c0);
        for (int32_t ow0 = first; ow0 < last; ow0 += owb) {
            const int32_t ow1 = mf_min_i32(ow0 + owb, last);
            for (int32_t t = 0; t < (ow1 - ow0) * len; t++) {
                acc[t] = 0;
            }
            for (int32_t i = 0; i < p->kh; i++) {
                const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                if (ih < 0 || ih >= xv->h) {
                    continue;
                }
                for (int32_t j = 0; j < p->kw; j++) {
                    int32_t lo, hi;
                    valid_columns(p, xv->w, j, ow0, ow1, &lo, &hi);
                    depthwise_tap_s8(x, xv, p, n, ih, j, lo, hi, ow0, c0, len, q->input_offset,
                                     w + (i * p->kw + j) * channels + c0, acc);
                }
            }
            for (int32_t ow = ow0; ow < ow1; ow++) {
                mf_requant_channels(acc + (ow - ow0) * len, bias, q, c0, len,
                                    out + (size_t)(ow - first) * stride + (c0 - cfirst));
            }
        }
    }
}

/* ---- int8 depthwise, channel by channel: each channel's plane a one-channel convolution ----
 * With few channels (FDT's depthwise partitions) the chunked rows above are vectors of a few
 * channels with a row's setup paid for every few multiplies; in place, the channels go one by
 * one anyway. Depth multiplier 1 then goes plane by plane instead: each channel's plane is a
 * one-channel convolution summed the short-runs way (output pixels as the vectors, weights
 * read at a stride of the channel count), maps one pixel wide (1-D convolutions along H, as in
 * audio models) convolved along H as if it were W. In place, batch item n of channel c is
 * computed into the one-channel temporary (Ho*Wo), then stored over input channel c: the
 * channel-by-channel order the planner proved safe. */

#define MF_PLANE_CHANNELS 16  /* out of place plane by plane with at most this many channels */
#define MF_PLANE_MIN_WIDTH 32 /* in place plane by plane on maps at least this wide (or 1) */

/* A one-channel convolution's geometry for the planes of depthwise p (H as W when the map is
 * one pixel wide: *along_h); its short-runs chunk, 0 when it has none. */
static int32_t plane_geometry(const mf_view* xv, const mf_view* yv, const mf_conv* p,
                              mf_conv* plane, int32_t* along_h) {
    *plane = *p;
    plane->groups = 1;
    plane->depth_multiplier = 1;
    *along_h = xv->w == 1 && yv->w == 1 && p->kw == 1 && p->pad_left == 0;
    if (*along_h) {
        plane->kh = 1;
        plane->kw = p->kh;
        plane->stride_h = 1;
        plane->stride_w = p->stride_h;
        plane->dilation_h = 1;
        plane->dilation_w = p->dilation_h;
        plane->pad_top = 0;
        plane->pad_left = p->pad_top;
    }
    if (p->depth_multiplier != 1) {
        return 0;
    }
    const int32_t chunk = short_runs_chunk(plane, 1);
    return chunk >= MF_SPAN_LANES ? chunk : 0;
}

/* Channel 0 of v, its H as W when along_h. */
static mf_view plane_view(const mf_view* v, int32_t along_h) {
    mf_view plane = *v;
    plane.c = 1;
    if (along_h) {
        plane.h = 1;
        plane.w = v->h;
        plane.sw = v->sh;
        plane.sh = v->h * v->sh;
    }
    return plane;
}

/* Every channel plane by plane, into y, or with `channel` (in place) through it. */
static void depthwise_planes_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                                const int32_t* bias, int8_t* y, const mf_view* yv,
                                const mf_conv* plane, int32_t along_h, int32_t chunk,
                                const mf_requant_s8* q, int8_t* channel) {
    const mf_view xp = plane_view(xv, along_h), yp = plane_view(yv, along_h);
    mf_view item = xp; /* in place: batch item n of a channel */
    item.n = 1;
    const mf_view dense = {1, yp.h, yp.w, 1, yp.h * yp.w, yp.w, 1};
    for (int32_t c = 0; c < yv->c; c++) {
        mf_requant_s8 qc = *q;
        qc.multiplier += c;
        qc.shift += c;
        s8_sink out = {0};
        out.bias = bias != NULL ? bias + c : NULL;
        out.q = &qc;
        if (channel == NULL) {
            out.yv = &yp;
            out.y8 = y + c;
            short_runs_s8(x + c, &xp, w + c, yv->c, &out, plane, q->input_offset, chunk);
            continue;
        }
        out.yv = &dense;
        out.y8 = channel;
        for (int32_t n = 0; n < yv->n; n++) {
            short_runs_s8(x + (size_t)n * xv->sn + c, &item, w + c, yv->c, &out, plane,
                          q->input_offset, chunk);
            for (int32_t oh = 0; oh < yv->h; oh++) {
                for (int32_t ow = 0; ow < yv->w; ow++) {
                    y[mf_view_offset(yv, n, oh, ow) + c] = channel[oh * yv->w + ow];
                }
            }
        }
    }
}

void mf_depthwise_conv2d_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                            const int32_t* bias, int8_t* y, const mf_view* yv, const mf_conv* p,
                            const mf_requant_s8* q) {
    mf_conv plane;
    int32_t along_h;
    const int32_t chunk = plane_geometry(xv, yv, p, &plane, &along_h);
    if (chunk > 0 && yv->c <= MF_PLANE_CHANNELS) {
        depthwise_planes_s8(x, xv, w, bias, y, yv, &plane, along_h, chunk, q, NULL);
        return;
    }
    for (int32_t n = 0; n < yv->n; n++) {
        for (int32_t oh = 0; oh < yv->h; oh++) {
            depthwise_row_s8(x, xv, w, bias, yv, p, q, n, oh, 0, yv->w, 0, yv->c,
                             y + mf_view_offset(yv, n, oh, 0), yv->sw);
        }
    }
}

/* ---- depthwise in place -------------------------------------------------------------------
 * Output channel c over input channel c (memfit.planning.storage), chosen by how many channels a
 * block of mf_inplace.c can hold in the one-channel temporary:
 *  - float, blocks of MF_DW_LANES or MF_DW_LANES / 2 channels or all of them, each run of
 *    pixels computed as above, straight into the output or through the ring: contiguous vectors
 *    of channels;
 *  - float, fewer (small maps with many channels at stride 1, where the vectors would be a few
 *    lanes wide): channel by channel, the output plane of channel c (batch n) accumulated row by
 *    row, tap by tap over valid columns, into `channel`, then copied to the output's channel-c
 *    positions;
 *  - int8, one block of all channels where out of place would run rows (more than
 *    MF_PLANE_CHANNELS): the rows above (blocks of a few int8 channels were up to 2x slower
 *    than channel by channel);
 *  - int8 otherwise channel by channel: plane by plane (above) with depth multiplier 1, else
 *    the way below.
 * Measured side by side (tests' kernels, x86-64): a strided 3x3 on 48x48x64 int8 is 8x faster
 * in one block than channel by channel (as fast as out of place); at stride 1 on 12x12x64 int8
 * channel by channel stays about 8x slower than out of place. */

static void depthwise_by_channel_f32(const float* x, const mf_view* xv, const float* w,
                                     const float* bias, float* y, const mf_view* yv,
                                     const mf_conv* p, const mf_range_f32* act, float* channel) {
    const int32_t channels = yv->c, sw = p->stride_w;
    float acc[MF_DW_ROW];
    for (int32_t c = 0; c < channels; c++) {
        for (int32_t n = 0; n < yv->n; n++) {
            for (int32_t oh = 0; oh < yv->h; oh++) {
                for (int32_t ow0 = 0; ow0 < yv->w; ow0 += MF_DW_ROW) {
                    const int32_t ow1 = mf_min_i32(ow0 + MF_DW_ROW, yv->w);
                    for (int32_t t = 0; t < ow1 - ow0; t++) {
                        acc[t] = 0.0f;
                    }
                    for (int32_t i = 0; i < p->kh; i++) {
                        const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                        if (ih < 0 || ih >= xv->h) {
                            continue;
                        }
                        for (int32_t j = 0; j < p->kw; j++) {
                            int32_t lo, hi;
                            valid_columns(p, xv->w, j, ow0, ow1, &lo, &hi);
                            const float wt = w[(i * p->kw + j) * channels + c];
                            const int32_t iw0 = j * p->dilation_w - p->pad_left;
                            const float* row = x + mf_view_offset(xv, n, ih, 0) + c;
                            for (int32_t ow = lo; ow < hi; ow++) {
                                acc[ow - ow0] = MF_FMA(row[(ow * sw + iw0) * xv->sw], wt,
                                                       acc[ow - ow0]);
                            }
                        }
                    }
                    for (int32_t ow = ow0; ow < ow1; ow++) {
                        channel[oh * yv->w + ow] =
                            mf_activate(acc[ow - ow0] + (bias ? bias[c] : 0.0f), act);
                    }
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

static void depthwise_by_channel_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                                    const int32_t* bias, int8_t* y, const mf_view* yv,
                                    const mf_conv* p, const mf_requant_s8* q, int8_t* channel) {
    const int32_t channels = yv->c, sw = p->stride_w, offset = q->input_offset;
    int32_t acc[MF_DW_ROW];
    for (int32_t c = 0; c < channels; c++) {
        for (int32_t n = 0; n < yv->n; n++) {
            for (int32_t oh = 0; oh < yv->h; oh++) {
                for (int32_t ow0 = 0; ow0 < yv->w; ow0 += MF_DW_ROW) {
                    const int32_t ow1 = mf_min_i32(ow0 + MF_DW_ROW, yv->w);
                    for (int32_t t = 0; t < ow1 - ow0; t++) {
                        acc[t] = bias ? bias[c] : 0;
                    }
                    for (int32_t i = 0; i < p->kh; i++) {
                        const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                        if (ih < 0 || ih >= xv->h) {
                            continue;
                        }
                        for (int32_t j = 0; j < p->kw; j++) {
                            int32_t lo, hi;
                            valid_columns(p, xv->w, j, ow0, ow1, &lo, &hi);
                            const int32_t wt = w[(i * p->kw + j) * channels + c];
                            const int32_t iw0 = j * p->dilation_w - p->pad_left;
                            const int8_t* row = x + mf_view_offset(xv, n, ih, 0) + c;
                            for (int32_t ow = lo; ow < hi; ow++) {
                                acc[ow - ow0] += (row[(ow * sw + iw0) * xv->sw] + offset) * wt;
                            }
                        }
                    }
                    for (int32_t ow = ow0; ow < ow1; ow++) {
                        channel[oh * yv->w + ow] = mf_requant_one(acc[ow - ow0], q, c);
                    }
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

typedef struct {
    const void* x;
    const mf_view* xv;
    const void* w;
    const void* bias;
    const mf_view* yv;
    const mf_conv* p;
    const void* quantization; /* mf_range_f32 or mf_requant_s8 */
} depthwise_context;

static void depthwise_pixels_inplace_f32(const void* context, int32_t n, int32_t oh,
                                         int32_t ow0, int32_t ow1, int32_t c0, int32_t len,
                                         void* out, int32_t stride) {
    const depthwise_context* k = (const depthwise_context*)context;
    depthwise_row_f32((const float*)k->x, k->xv, (const float*)k->w, (const float*)k->bias,
                      k->yv, k->p, (const mf_range_f32*)k->quantization, n, oh, ow0, ow1, c0,
                      len, (float*)out, stride);
}

static void depthwise_pixels_inplace_s8(const void* context, int32_t n, int32_t oh,
                                        int32_t ow0, int32_t ow1, int32_t c0, int32_t len,
                                        void* out, int32_t stride) {
    const depthwise_context* k = (const depthwise_context*)context;
    depthwise_row_s8((const int8_t*)k->x, k->xv, (const int8_t*)k->w, (const int32_t*)k->bias,
                     k->yv, k->p, (const mf_requant_s8*)k->quantization, n, oh, ow0, ow1, c0,
                     len, (int8_t*)out, stride);
}

void mf_depthwise_conv2d_inplace_f32(const float* x, const mf_view* xv, const float* w,
                                     const float* bias, float* y, const mf_view* yv,
                                     const mf_conv* p, const mf_range_f32* act, float* channel) {
    const depthwise_context context = {x, xv, w, bias, yv, p, act};
    mf_inplace op = {xv, yv, sizeof(float), p->stride_h, p->stride_w, p->pad_top,
                     p->pad_left, MF_DW_LANES, depthwise_pixels_inplace_f32, &context};
    const int32_t most = mf_inplace_block_channels(&op, x, y);
    if (most >= MF_DW_LANES / 2) {
        op.lanes = most >= MF_DW_LANES ? MF_DW_LANES : MF_DW_LANES / 2;
        mf_channelwise_inplace(&op, most, x, y, channel);
    } else {
        depthwise_by_channel_f32(x, xv, w, bias, y, yv, p, act, channel);
    }
}

void mf_depthwise_conv2d_inplace_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                                    const int32_t* bias, int8_t* y, const mf_view* yv,
                                    const mf_conv* p, const mf_requant_s8* q, int8_t* channel) {
    mf_conv plane;
    int32_t along_h;
    const int32_t chunk = plane_geometry(xv, yv, p, &plane, &along_h);
    if (chunk == 0 || yv->c > MF_PLANE_CHANNELS) { /* rows out of place */
        const depthwise_context context = {x, xv, w, bias, yv, p, q};
        const mf_inplace op = {xv, yv, sizeof(int8_t), p->stride_h, p->stride_w, p->pad_top,
                               p->pad_left, 1, depthwise_pixels_inplace_s8, &context};
        const int32_t most = mf_inplace_block_channels(&op, x, y);
        if (most >= yv->c) {
            mf_channelwise_inplace(&op, most, x, y, channel);
            return;
        }
    }
    /* planes pay a call's setup per channel: on person_detect's maps 24 pixels wide and less
     * (64 to 256 channels) up to 1.5x slower than rows; one pixel wide, 6x faster */
    if (chunk > 0 && (along_h || yv->w >= MF_PLANE_MIN_WIDTH)) {
        depthwise_planes_s8(x, xv, w, bias, y, yv, &plane, along_h, chunk, q, channel);
    } else {
        depthwise_by_channel_s8(x, xv, w, bias, y, yv, p, q, channel);
    }
}
