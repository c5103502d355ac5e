/* memfit C runtime: the library of convolution primitives that primitive selection (TASO,
 * memfit.selection) chooses from, layer by layer, and the layout conversions between them.
 *
 * Every primitive has the same signature:
 *
 *   void mf_prim_<primitive>_<layout>_f32(const float* x, const float* w, const float* bias,
 *                                          float* y, const mf_prim_conv* p,
 *                                          const mf_range_f32* act, float* workspace);
 *
 *  - x and y are in the primitive's layout: NHWC (channels contiguous, consecutive pixels
 *    p->x_pixel_stride / p->y_pixel_stride elements apart, so that an output can be a channel
 *    slice of a concatenation) or NCHW (dense).
 *  - w is the layer's weights arranged for the primitive by
 *    memfit.selection.primitives.arrange_weights (a constant array); bias may be NULL.
 *  - workspace holds exactly memfit.selection.primitives.workspace_bytes bytes (NULL when 0);
 *    the tests fill it with a canary and check that the primitive touches all of it and not a
 *    byte more.
 *  - y must not alias x.
 *
 * The int8 primitives (those below with an _s8 twin) compute exactly what mf_conv2d_s8 and
 * TensorFlow Lite Micro's int8 conv compute: int32 sums of (x + q->input_offset) * w over the
 * taps inside the input (padding taps add nothing), plus bias, requantized per output channel
 * (mf_requant_s8). Their signature:
 *
 *   void mf_prim_<primitive>_<layout>_s8(const int8_t* x, const int8_t* w,
 *                                         const int32_t* bias, int8_t* y,
 *                                         const mf_prim_conv* p, const mf_requant_s8* q,
 *                                         void* workspace);
 *
 * with the same conventions; a workspace of int32 accumulators needs 4-byte alignment.
 * Winograd has no int8 version: its transforms multiply by halves, so it cannot reproduce the
 * integer sums exactly in int8/int32 without a different weight format and a narrower range.
 */
#ifndef MF_PRIMITIVES_H
#define MF_PRIMITIVES_H

#include <stdint.h>

#include "memfit_runtime.h"

/* One convolution layer, all of it. */
typedef struct {
    int32_t n, h, w, c;          /* input dims */
    int32_t oh, ow, m;           /* output dims: height, width, channels */
    int32_t kh, kw;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;
    int32_t groups;              /* depthwise: groups == c, m == c * depth multiplier */
    int32_t x_pixel_stride;      /* NHWC: elements from one input pixel to the next (>= c) */
    int32_t y_pixel_stride;      /* NHWC: elements from one output pixel to the next (>= m) */
} mf_prim_conv;

#define MF_PRIMITIVE(name)                                                                   \
    void name(const float* x, const float* w, const float* bias, float* y,                    \
              const mf_prim_conv* p, const mf_range_f32* act, float* workspace)

/* direct: the seven loops, no workspace. */
MF_PRIMITIVE(mf_prim_direct_nhwc_f32);
MF_PRIMITIVE(mf_prim_direct_nchw_f32);
/* im2col + GEMM (NCHW): workspace K*K*(C/groups)*OH*OW floats. */
MF_PRIMITIVE(mf_prim_im2col_nchw_f32);
/* im2row + GEMM (NHWC): workspace OH*OW*K*K*(C/groups) floats. */
MF_PRIMITIVE(mf_prim_im2row_nhwc_f32);
/* kn2row (stride 1): one 1x1 GEMM per kernel tap over the whole input, all K*K products kept,
 * then shifted and added: workspace K*K*(M/groups)*H*W floats. */
MF_PRIMITIVE(mf_prim_kn2row_nhwc_f32);
MF_PRIMITIVE(mf_prim_kn2row_nchw_f32);
/* kn2row, accumulating: each tap's product is added into the output at once: workspace
 * (M/groups)*H*W floats. */
MF_PRIMITIVE(mf_prim_kn2row_acc_nhwc_f32);
MF_PRIMITIVE(mf_prim_kn2row_acc_nchw_f32);
/* Winograd F(2x2, 3x3) (3x3, stride 1, dilation 1, one group): transformed input
 * [16][tiles][C] and products [16][tiles][M]: workspace 16*tiles*(C+M) floats,
 * tiles = ceil(OH/2)*ceil(OW/2) per image. */
MF_PRIMITIVE(mf_prim_winograd_nhwc_f32);
MF_PRIMITIVE(mf_prim_winograd_nchw_f32);
/* 1x1, stride 1, no padding: the convolution is one GEMM per group, no workspace. */
MF_PRIMITIVE(mf_prim_gemm1x1_nhwc_f32);
MF_PRIMITIVE(mf_prim_gemm1x1_nchw_f32);
/* depthwise (groups == c), direct, no workspace. */
MF_PRIMITIVE(mf_prim_depthwise_nhwc_f32);
MF_PRIMITIVE(mf_prim_depthwise_nchw_f32);

#define MF_PRIMITIVE_S8(name)                                                                \
    void name(const int8_t* x, const int8_t* w, const int32_t* bias, int8_t* y,               \
              const mf_prim_conv* p, const mf_requant_s8* q, void* workspace)

/* int8 (mf_primitives_s8.c). Workspace bytes: */
/* direct: none. */
MF_PRIMITIVE_S8(mf_prim_direct_nhwc_s8);
MF_PRIMITIVE_S8(mf_prim_direct_nchw_s8);
/* im2col (NCHW) / im2row (NHWC) + GEMM: the int8 columns / rows, padding taps holding the input
 * zero point: K*K*(C/groups)*OH*OW bytes. */
MF_PRIMITIVE_S8(mf_prim_im2col_nchw_s8);
MF_PRIMITIVE_S8(mf_prim_im2row_nhwc_s8);
/* kn2row (stride 1): every tap's int32 product: 4*K*K*(M/groups)*H*W bytes. */
MF_PRIMITIVE_S8(mf_prim_kn2row_nhwc_s8);
MF_PRIMITIVE_S8(mf_prim_kn2row_nchw_s8);
/* kn2row accumulating (stride 1): each tap's 1x1 GEMM adds, row of output pixels by row, into
 * an int32 accumulator of the output, requantized at the end: 4*(M/groups)*OH*OW bytes. */
MF_PRIMITIVE_S8(mf_prim_kn2row_acc_nhwc_s8);
MF_PRIMITIVE_S8(mf_prim_kn2row_acc_nchw_s8);
/* 1x1, stride 1, no padding: one GEMM per group, requantized as it goes: none. */
MF_PRIMITIVE_S8(mf_prim_gemm1x1_nhwc_s8);
MF_PRIMITIVE_S8(mf_prim_gemm1x1_nchw_s8);

/* Layout conversions of an [n, h, w, c] activation. NHWC pixels are pixel_stride elements
 * apart (>= c); NCHW is dense. */
void mf_nhwc_to_nchw_f32(const float* x, int32_t n, int32_t h, int32_t w, int32_t c,
                         int32_t pixel_stride, float* y);
void mf_nchw_to_nhwc_f32(const float* x, int32_t n, int32_t h, int32_t w, int32_t c, float* y,
                         int32_t pixel_stride);
void mf_nhwc_to_nchw_s8(const int8_t* x, int32_t n, int32_t h, int32_t w, int32_t c,
                        int32_t pixel_stride, int8_t* y);
void mf_nchw_to_nhwc_s8(const int8_t* x, int32_t n, int32_t h, int32_t w, int32_t c, int8_t* y,
                        int32_t pixel_stride);

#endif /* MF_PRIMITIVES_H */
