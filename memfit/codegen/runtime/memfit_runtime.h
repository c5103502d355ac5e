/* memfit C runtime: the kernels generated models call.
 *
 * Conventions (every kernel follows them):
 *  - C99, no malloc, no static buffers: all activation memory is in the caller's arena; a kernel
 *    that needs a workspace receives a pointer to it (planned as a scratch buffer).
 *  - Activations are NHWC views described by mf_view: dims in elements and the byte-free
 *    element strides of N, H and W; the channel stride is always 1 (channels are contiguous).
 *    A view may be strided (e.g. a slice of a concatenation's output written in place), so
 *    kernels must address elements through the strides, never assume h*W*C + w*C + c.
 *    Tensors of rank < 4 are passed as views with leading dims of 1.
 *  - Weights and biases are const arrays in the TFLite layouts memfit's IR uses:
 *    conv2d [O][KH][KW][I/groups], depthwise [1][KH][KW][C*M], fully_connected [N][K].
 *  - int8 kernels reproduce TensorFlow Lite Micro's reference kernels bit for bit
 *    (per-channel multiplier/shift from QuantizeMultiplier, double-rounding
 *    MultiplyByQuantizedMultiplier, activation clamps); the generator computes every
 *    multiplier and shift in Python (memfit/runtime/kernels/fixedpoint.py) and emits them as
 *    constants, so the C side never touches floating point for int8 models.
 *  - Function names: mf_<kind>_<f32|s8>(...), e.g. mf_conv2d_s8, mf_add_f32.
 */
#ifndef MEMFIT_RUNTIME_H
#define MEMFIT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t n, h, w, c;      /* dims */
    int32_t sn, sh, sw;      /* element strides of N, H, W (channel stride is 1) */
} mf_view;

/* Output activation range after requantization / float activation. */
typedef struct {
    int32_t min, max;        /* int8: clamp range in the quantized domain */
} mf_range_s8;

typedef struct {
    float min, max;          /* float: -INFINITY/INFINITY when no activation */
} mf_range_f32;

#endif /* MEMFIT_RUNTIME_H */
