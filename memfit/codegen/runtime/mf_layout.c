/* Layout conversions between NHWC (memfit's activations) and NCHW (primitives that work on
 * channel planes), float32 and int8, in blocks of pixels and channels so that both sides stay
 * in cache. */
#include "mf_primitives.h"

#define BLOCK 32

#define MF_LAYOUT_CONVERSIONS(T, SUFFIX)                                                       \
    void mf_nhwc_to_nchw_##SUFFIX(const T* x, int32_t n, int32_t h, int32_t w, int32_t c,     \
                                  int32_t pixel_stride, T* y) {                                \
        const int32_t pixels = h * w;                                                          \
        for (int32_t b = 0; b < n; b++) {                                                      \
            const T* src = x + (size_t)b * pixels * pixel_stride;                              \
            T* dst = y + (size_t)b * pixels * c;                                               \
            for (int32_t q0 = 0; q0 < pixels; q0 += BLOCK) {                                   \
                const int32_t q1 = q0 + BLOCK < pixels ? q0 + BLOCK : pixels;                  \
                for (int32_t c0 = 0; c0 < c; c0 += BLOCK) {                                    \
                    const int32_t c1 = c0 + BLOCK < c ? c0 + BLOCK : c;                        \
                    for (int32_t ch = c0; ch < c1; ch++) {                                     \
                        for (int32_t q = q0; q < q1; q++) {                                    \
                            dst[(size_t)ch * pixels + q] = src[(size_t)q * pixel_stride + ch]; \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void mf_nchw_to_nhwc_##SUFFIX(const T* x, int32_t n, int32_t h, int32_t w, int32_t c,     \
                                  T* y, int32_t pixel_stride) {                                \
        const int32_t pixels = h * w;                                                          \
        for (int32_t b = 0; b < n; b++) {                                                      \
            const T* src = x + (size_t)b * pixels * c;                                         \
            T* dst = y + (size_t)b * pixels * pixel_stride;                                    \
            for (int32_t q0 = 0; q0 < pixels; q0 += BLOCK) {                                   \
                const int32_t q1 = q0 + BLOCK < pixels ? q0 + BLOCK : pixels;                  \
                for (int32_t c0 = 0; c0 < c; c0 += BLOCK) {                                    \
                    const int32_t c1 = c0 + BLOCK < c ? c0 + BLOCK : c;                        \
                    for (int32_t q = q0; q < q1; q++) {                                        \
                        for (int32_t ch = c0; ch < c1; ch++) {                                 \
                            dst[(size_t)q * pixel_stride + ch] = src[(size_t)ch * pixels + q]; \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

MF_LAYOUT_CONVERSIONS(float, f32)
MF_LAYOUT_CONVERSIONS(int8_t, s8)
