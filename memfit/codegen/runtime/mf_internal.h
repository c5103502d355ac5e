/* Helpers shared by the runtime's .c files: integer fixed point exactly as TFLite computes it,
 * clamps, and the register-tile sizes of the GEMMs. Not part of the generated code's API. */
#ifndef MF_INTERNAL_H
#define MF_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "memfit_runtime.h"

/* Float GEMM tiles: MF_F32_MR output pixels x MF_F32_NR output channels. NR is also the panel
 * width of packed conv weights (memfit.codegen.params.F32_NR must equal it). */
#define MF_F32_MR 8
#define MF_F32_NR 32
/* int8 GEMM tiles: MF_S8_MR pixels (their int16 im2col rows are the workspace) x MF_S8_NR
 * output channels (memfit.codegen.params.S8_MR must equal MF_S8_MR). */
#define MF_S8_MR 4
#define MF_S8_NR 4

/* The float tiles' sums are kept in registers a block at a time: all of them where the target
 * has 32 vector registers of 16 floats (AVX-512), else MF_F32_BLOCK_ROWS rows x
 * MF_F32_BLOCK_COLS columns per pass over K (8 vectors of 8 floats: with 16 registers, as
 * AVX2 has, the whole 8 x 32 tile spilled its sums to memory at every multiply-add; on an AMD
 * EPYC resnet8_f32 ran in 727 us so, 526 us in blocks of 4 x 16 and 437 us in blocks of
 * 8 x 8). Each sum still adds its products in the same order. */
#if !defined(MF_F32_BLOCK_ROWS) && defined(__AVX512F__)
#define MF_F32_BLOCK_ROWS MF_F32_MR
#define MF_F32_BLOCK_COLS MF_F32_NR
#elif !defined(MF_F32_BLOCK_ROWS)
#define MF_F32_BLOCK_ROWS 8
#define MF_F32_BLOCK_COLS 8
#endif

/* Unrolling hint for the GEMM register tiles (GCC and Clang know it; others ignore it). */
#if defined(__GNUC__)
#define MF_UNROLL _Pragma("GCC unroll 32")
#define MF_NO_UNROLL _Pragma("GCC unroll 1")
#else
#define MF_UNROLL
#define MF_NO_UNROLL
#endif

/* Inlining for the register tiles' helpers, whose loops must be compiled together with their
 * callers' (GCC 12 left some out of line, called once per multiply-add, in fully unrolled
 * tiles), and against it where inlining slowed the code around. */
#if defined(__GNUC__)
#define MF_INLINE static inline __attribute__((always_inline))
#define MF_NOINLINE static __attribute__((noinline))
#else
#define MF_INLINE static inline
#define MF_NOINLINE static
#endif

/* A fused multiply-add where the target has one in hardware (fmaf would be a slow library
 * call elsewhere); a multiply and an add otherwise. */
#if defined(FP_FAST_FMAF)
#define MF_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define MF_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* ---- float vectors ---------------------------------------------------------------------
 * MF_VF floats as one value, for register tiles that must stay in registers: with GCC or
 * Clang a vector_size type (the target's vector registers, or pairs of them, or scalars where
 * it has none), where the auto-vectorizer left some of a tile's sums in memory or in scalar
 * code (GCC 12); elsewhere (or built with -DMF_NO_VECTOR_TYPES) a struct of an array, the same
 * code a lane at a time. Only the helpers below touch the lanes, so that both compile from one
 * source and sum in one order. */
#define MF_VF 8 /* 32 bytes (mf_vf_sum assumes 8): GCC 12 spilled tiles of 64-byte vectors */

#if defined(__GNUC__) && !defined(MF_NO_VECTOR_TYPES)
#define MF_VECTOR_TYPES 1
#else
#define MF_VECTOR_TYPES 0
#endif

#if MF_VECTOR_TYPES
typedef float mf_vf __attribute__((vector_size(MF_VF * sizeof(float))));
#define MF_LANE(v, l) ((v)[l])
#else
typedef struct {
    float lane[MF_VF];
} mf_vf;
#define MF_LANE(v, l) ((v).lane[l])
#endif

MF_INLINE mf_vf mf_vf_load(const float* p) {
    mf_vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

MF_INLINE void mf_vf_store(float* p, mf_vf v) { memcpy(p, &v, sizeof v); }

/* (As vector operations with vector types: their loops over the lanes were sometimes left as
 * scalar code around arrays of vectors.) */
MF_INLINE mf_vf mf_vf_splat(float value) {
#if MF_VECTOR_TYPES
    const mf_vf v = {value, value, value, value, value, value, value, value}; /* MF_VF */
    return v;
#else
    mf_vf v;
    for (int32_t l = 0; l < MF_VF; l++) {
        MF_LANE(v, l) = value;
    }
    return v;
#endif
}

MF_INLINE mf_vf mf_vf_add(mf_vf a, mf_vf b) {
#if MF_VECTOR_TYPES
    return a + b;
#else
    mf_vf v;
    for (int32_t l = 0; l < MF_VF; l++) {
        MF_LANE(v, l) = MF_LANE(a, l) + MF_LANE(b, l);
    }
    return v;
#endif
}

/* a * b + c, lane by lane. With vector types, the lanes written out as one vector: as a loop,
 * GCC 12 sometimes vectorized it with a run-time overlap check and a scalar fallback, or left
 * it out of line, in large unrolled tiles. */
MF_INLINE mf_vf mf_vf_fma(mf_vf a, mf_vf b, mf_vf c) {
#if MF_VECTOR_TYPES
#define MF_FMA_LANE(l) MF_FMA(a[l], b[l], c[l])
    const mf_vf v = {MF_FMA_LANE(0), MF_FMA_LANE(1), MF_FMA_LANE(2), MF_FMA_LANE(3),
                     MF_FMA_LANE(4), MF_FMA_LANE(5), MF_FMA_LANE(6), MF_FMA_LANE(7)}; /* MF_VF */
#undef MF_FMA_LANE
    return v;
#else
    mf_vf v;
    for (int32_t l = 0; l < MF_VF; l++) {
        MF_LANE(v, l) = MF_FMA(MF_LANE(a, l), MF_LANE(b, l), MF_LANE(c, l));
    }
    return v;
#endif
}

/* The sum of the lanes: the upper half added to the lower, and so on down to one. (With vector
 * types, the halves as vectors: a loop over the lanes went through memory, one at a time.) */
static inline float mf_vf_sum(mf_vf v) {
#if MF_VECTOR_TYPES
    typedef float mf_vf4 __attribute__((vector_size(4 * sizeof(float))));
    typedef float mf_vf2 __attribute__((vector_size(2 * sizeof(float))));
    mf_vf4 lo4, hi4;
    mf_vf2 lo2, hi2;
    memcpy(&lo4, &v, sizeof lo4);
    memcpy(&hi4, (const char*)&v + sizeof lo4, sizeof hi4);
    const mf_vf4 sum4 = lo4 + hi4;
    memcpy(&lo2, &sum4, sizeof lo2);
    memcpy(&hi2, (const char*)&sum4 + sizeof lo2, sizeof hi2);
    const mf_vf2 sum2 = lo2 + hi2;
    return sum2[0] + sum2[1];
#else
    float lanes[MF_VF];
    memcpy(lanes, &v, sizeof lanes);
    for (int32_t width = MF_VF / 2; width > 0; width /= 2) {
        for (int32_t l = 0; l < width; l++) {
            lanes[l] += lanes[l + width];
        }
    }
    return lanes[0];
#endif
}

/* Lane r of the result is mf_vf_sum(v[r]), r < MF_VF, summed in the same order: the upper
 * halves added to the lower ones as the lanes of pairs, then of fours, of vectors are brought
 * together (14 shuffles and 7 adds for 8 sums instead of 8 reductions of 4 steps each). Where
 * the compiler has no __builtin_shufflevector, lane by lane. */
#if MF_VECTOR_TYPES && defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define MF_SHUFFLE 1
#endif
#endif

static inline mf_vf mf_vf_sums(const mf_vf* v) {
#if defined(MF_SHUFFLE)
    mf_vf pairs[MF_VF / 2], fours[MF_VF / 4];
    for (int32_t p = 0; p < MF_VF / 2; p++) { /* lanes l + (l + 4) of v[2p], v[2p + 1] */
        const mf_vf a = v[2 * p], b = v[2 * p + 1];
        pairs[p] = __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11) +
                   __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15);
    }
    for (int32_t f = 0; f < MF_VF / 4; f++) { /* then (l, l + 2) of each of four vectors */
        const mf_vf a = pairs[2 * f], b = pairs[2 * f + 1];
        fours[f] = __builtin_shufflevector(a, b, 0, 1, 8, 9, 2, 3, 10, 11) +
                   __builtin_shufflevector(a, b, 4, 5, 12, 13, 6, 7, 14, 15);
    }
    return __builtin_shufflevector(fours[0], fours[1], 0, 1, 2, 3, 8, 9, 10, 11) +
           __builtin_shufflevector(fours[0], fours[1], 4, 5, 6, 7, 12, 13, 14, 15);
#else
    mf_vf sums;
    for (int32_t r = 0; r < MF_VF; r++) {
        MF_LANE(sums, r) = mf_vf_sum(v[r]);
    }
    return sums;
#endif
}

static inline int32_t mf_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t mf_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t mf_clamp_i32(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* Output columns [lo, hi) whose input column ow * stride + offset lies in [0, width) (the
 * convolution primitives' border handling). */
static inline void mf_valid_columns(int32_t out_width, int32_t width, int32_t stride,
                                    int32_t offset, int32_t* lo, int32_t* hi) {
    int32_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int32_t last = width - 1 - offset < 0 ? -1 : (width - 1 - offset) / stride;
    *lo = mf_min_i32(first, out_width);
    *hi = mf_max_i32(*lo, mf_min_i32(last + 1, out_width));
}

/* Two's-complement wrap of a 64-bit value to 32 bits (C's int32 arithmetic, without UB). */
static inline int32_t mf_wrap32(int64_t x) { return (int32_t)(uint32_t)(uint64_t)x; }

/* gemmlowp's SaturatingRoundingDoublingHighMul: round(a * b / 2^31), halves away from zero,
 * saturating the one overflow (a == b == INT32_MIN). Written on the magnitude with logical
 * shifts only, so that loops of it vectorize (no 64-bit division or arithmetic shift). */
static inline int32_t mf_srdhm(int32_t a, int32_t b) {
    const int64_t ab = (int64_t)a * (int64_t)b;
    const uint64_t magnitude = ab >= 0 ? (uint64_t)ab + (1u << 30)
                                       : (uint64_t)(-ab) + ((1u << 30) - 1u);
    const uint64_t high = magnitude >> 31;
    const int32_t q = (int32_t)(high > 0x7FFFFFFFu ? 0x7FFFFFFFu : high);
    return ab >= 0 ? q : -q;
}

/* gemmlowp's RoundingDivideByPOT: x / 2^exponent, halves away from zero (0 <= exponent <= 31). */
static inline int32_t mf_rdbpot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)((1u << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite's double-rounding MultiplyByQuantizedMultiplier (shift > 0: left). */
static inline int32_t mf_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return mf_rdbpot(mf_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* Requantize one accumulator of output channel o. */
static inline int8_t mf_requant_one(int32_t acc, const mf_requant_s8* q, int32_t o) {
    const int32_t v = mf_mbqm(acc, q->multiplier[o], q->shift[o]) + q->output_offset;
    return (int8_t)mf_clamp_i32(v, q->act.min, q->act.max);
}

/* out[j] = requantized (acc[j] + bias[o0 + j]) of output channels o0 .. o0 + count - 1 (bias
 * may be NULL); a loop compilers vectorize. */
static inline void mf_requant_channels(const int32_t* restrict acc, const int32_t* bias,
                                       const mf_requant_s8* q, int32_t o0, int32_t count,
                                       int8_t* restrict out) {
    const int32_t* restrict multiplier = q->multiplier + o0;
    const int32_t* restrict shift = q->shift + o0;
    const int32_t offset = q->output_offset, lo = q->act.min, hi = q->act.max;
    if (bias != NULL) {
        const int32_t* restrict b = bias + o0;
        for (int32_t j = 0; j < count; j++) {
            const int32_t total = (int32_t)((uint32_t)acc[j] + (uint32_t)b[j]);
            out[j] = (int8_t)mf_clamp_i32(mf_mbqm(total, multiplier[j], shift[j]) + offset, lo, hi);
        }
    } else {
        for (int32_t j = 0; j < count; j++) {
            out[j] = (int8_t)mf_clamp_i32(mf_mbqm(acc[j], multiplier[j], shift[j]) + offset, lo, hi);
        }
    }
}

/* One row of a partial dense layer without views (mf_dense.c): out[j] = prior[j] (if not NULL;
 * int8 wrapping) + dot(x, w[j]) over `depth` values for the first `rows` rows of w, int8 with
 * the offsets added to x and w. The partial dense layers run it per row, the LSTM per block of
 * cells. `out` may be `prior`. */
void mf_dot_rows_f32(const float* x, int32_t depth, const float* w, int32_t rows,
                     const float* prior, float* out);
void mf_dot_rows_s8(const int8_t* x, int32_t depth, int32_t x_offset, const int8_t* w,
                    int32_t w_offset, int32_t rows, const int32_t* prior, int32_t* out);

/* The LSTM's integer gate functions (mf_lstm.c), exactly as TFLite's int16 LOGISTIC and TANH:
 * int16 in at scale 2^-12 (sigmoid) or 2^power (tanh), Q0.15 out. */
int16_t mf_sigmoid_s16(int32_t x);
int16_t mf_tanh_s16(int32_t x, int32_t power);

/* Float activation of one value. */
static inline float mf_activate(float v, const mf_range_f32* act) {
    v = v < act->min ? act->min : (v > act->max ? act->max : v);
    if (act->fn == MF_FN_TANH) {
        return tanhf(v);
    }
    if (act->fn == MF_FN_SIGMOID) {
        return (float)(1.0 / (1.0 + exp(-(double)v)));
    }
    return v;
}

/* act(v + bias), lane by lane. A clamp alone on vector types goes through lane masks: written
 * on the lanes (or through an array) GCC 12 compiled it to scalar code. */
static inline mf_vf mf_vf_activate(mf_vf v, float bias, const mf_range_f32* act) {
    if (act->fn == MF_FN_NONE) {
        v = mf_vf_add(v, mf_vf_splat(bias));
#if MF_VECTOR_TYPES
        typedef int32_t mf_vi __attribute__((vector_size(MF_VF * sizeof(int32_t))));
        const mf_vf lo = mf_vf_splat(act->min), hi = mf_vf_splat(act->max);
        const mf_vi below = v < lo, above = v > hi; /* lanes of all ones where true */
        v = (mf_vf)(((mf_vi)v & ~below) | ((mf_vi)lo & below));
        return (mf_vf)(((mf_vi)v & ~above) | ((mf_vi)hi & above));
#else
        for (int32_t l = 0; l < MF_VF; l++) {
            const float x = MF_LANE(v, l);
            MF_LANE(v, l) = x < act->min ? act->min : (x > act->max ? act->max : x);
        }
        return v;
#endif
    }
    for (int32_t l = 0; l < MF_VF; l++) {
        MF_LANE(v, l) = mf_activate(MF_LANE(v, l) + bias, act);
    }
    return v;
}

/* Elements in a view; offset of (n, h, w) in a view. */
static inline int32_t mf_view_offset(const mf_view* v, int32_t n, int32_t h, int32_t w) {
    return n * v->sn + h * v->sh + w * v->sw;
}

/* A channel-wise op run in place (mf_inplace.c): compute_pixels writes output pixels
 * [ow0, ow1) of row oh of batch n, channels [c0, c0 + len), to out[(ow - ow0) * stride + c - c0],
 * reading the input only. */
typedef void (*mf_pixels_fn)(const void* context, int32_t n, int32_t oh, int32_t ow0, int32_t ow1,
                             int32_t c0, int32_t len, void* out, int32_t stride);
typedef struct {
    const mf_view* xv;
    const mf_view* yv;
    int32_t element_size;
    int32_t stride_h, stride_w;  /* output pixel (oh, ow) reads input rows from */
    int32_t pad_top, pad_left;   /* oh * stride_h - pad_top, columns from ow * stride_w - pad_left */
    int32_t lanes;               /* blocks of a multiple of this many channels when they fit */
    mf_pixels_fn compute_pixels;
    const void* context;
} mf_inplace;

/* The most channels a block of mf_channelwise_inplace can hold (0 for an empty output). */
int32_t mf_inplace_block_channels(const mf_inplace* op, const void* x, const void* y);
/* Runs op with y over x (output channel c over input channel c) in blocks of at most `most`
 * channels, mf_inplace_block_channels(op, x, y); scratch: Ho*Wo elements. */
void mf_channelwise_inplace(const mf_inplace* op, int32_t most, const void* x, void* y,
                            void* scratch);

/* out[j] = act(acc[j] + bias[j]) (bias may be NULL); a clamp loop compilers vectorize when the
 * activation is a clamp alone. */
static inline void mf_activate_row(const float* restrict acc, const float* restrict bias,
                                   const mf_range_f32* act, int32_t count, float* restrict out) {
    if (act->fn == MF_FN_NONE) {
        const float lo = act->min, hi = act->max;
        for (int32_t j = 0; j < count; j++) {
            float v = acc[j] + (bias != NULL ? bias[j] : 0.0f);
            v = v < lo ? lo : v;
            out[j] = v > hi ? hi : v;
        }
    } else {
        for (int32_t j = 0; j < count; j++) {
            out[j] = mf_activate(acc[j] + (bias != NULL ? bias[j] : 0.0f), act);
        }
    }
}

#endif /* MF_INTERNAL_H */
