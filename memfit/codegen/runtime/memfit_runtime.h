/* memfit C runtime: the kernels generated models call.
 *
 * Conventions (every kernel follows them):
 *  - C99, no malloc, no static buffers: all activation memory is in the caller's arena; a kernel
 *    that needs a workspace receives a pointer to it (planned as a scratch buffer; its exact
 *    size in bytes is memfit.codegen.params.workspace_bytes(op)).
 *  - Activations are NHWC views described by mf_view: dims in elements and the byte-free
 *    element strides of N, H and W; the channel stride is always 1 (channels are contiguous).
 *    A view may be strided (e.g. a slice of a concatenation's output written in place), so
 *    kernels must address elements through the strides, never assume h*W*C + w*C + c.
 *    Tensors of rank < 4 are passed as views with leading dims of 1.
 *    Data-movement kernels (copy, reshape, transpose, pad, strided slice, concat) and general
 *    reductions take mf_nd instead: up to MF_MAX_RANK dims, every stride free (also the last).
 *  - Weights and biases are const arrays in the TFLite layouts memfit's IR uses:
 *    conv2d [O][KH][KW][I/groups], depthwise [1][KH][KW][C*M], fully_connected [N][K].
 *    One exception, for speed: float conv2d / partial_conv2d take their weights pre-packed by
 *    memfit.codegen.params.packed_conv_weights(op) (panels of MF_F32_NR output channels).
 *  - int8 kernels reproduce TensorFlow Lite Micro's reference kernels bit for bit
 *    (per-channel multiplier/shift from QuantizeMultiplier, double-rounding
 *    MultiplyByQuantizedMultiplier, activation clamps); the generator computes every
 *    multiplier and shift in Python (memfit/codegen/params.py, from
 *    memfit/runtime/kernels/fixedpoint.py) and emits them as constants, so the C side never
 *    touches floating point for int8 models.
 *  - Function names: mf_<kind>_<f32|s8>(...), e.g. mf_conv2d_s8, mf_add_f32. Arguments come in
 *    the order: inputs (pointer, view), constants, output (pointer, view), parameters,
 *    workspace.
 *  - Unless a kernel says otherwise, an elementwise kernel may run in place: its output may be
 *    exactly one of its inputs (same pointer, same view). Other kernels need disjoint output.
 *  - Speed: the kernels are plain C99 written so that compilers vectorize them (no intrinsics).
 *    Build with -O3 -march=native (the generated Makefile's flags; on a microcontroller the
 *    target's -mcpu) for the fast paths: float conv2d is an im2col + register-blocked GEMM on
 *    packed weights, int8 conv2d / fully_connected a blocked int16 x int8 -> int32 GEMM.
 *    -O2 without a target ISA is correct but mostly scalar (GCC 12: 1.7x slower on int8
 *    MobileNets, 2x on float networks).
 */
#ifndef MEMFIT_RUNTIME_H
#define MEMFIT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/* ---- descriptors ------------------------------------------------------------------------- */

typedef struct {
    int32_t n, h, w, c;      /* dims */
    int32_t sn, sh, sw;      /* element strides of N, H, W (channel stride is 1) */
} mf_view;

#define MF_MAX_RANK 6

/* A general strided box of any rank up to MF_MAX_RANK (element strides, may be 0 or negative). */
typedef struct {
    int32_t rank;
    int32_t dims[MF_MAX_RANK];
    int32_t strides[MF_MAX_RANK];
} mf_nd;

/* Output activation range after requantization / float activation. */
typedef struct {
    int32_t min, max;        /* int8: clamp range in the quantized domain */
} mf_range_s8;

/* Float fused activation: clamp to [min, max], then fn (MF_FN_NONE, MF_FN_TANH or
 * MF_FN_SIGMOID; TFLite never combines a clamp with tanh/sigmoid). An initializer {min, max}
 * leaves fn at MF_FN_NONE. No activation: {-INFINITY, INFINITY}. */
typedef struct {
    float min, max;          /* float: -INFINITY/INFINITY when no activation */
    int32_t fn;
} mf_range_f32;

#define MF_FN_NONE 0
#define MF_FN_TANH 1
#define MF_FN_SIGMOID 2

/* Convolution geometry. Bottom/right padding is implied by the output view's size. */
typedef struct {
    int32_t kh, kw;              /* kernel size */
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;
    int32_t groups;              /* conv2d: groups (1 for a dense convolution); others 1 */
    int32_t depth_multiplier;    /* depthwise: output channels per input channel; others 1 */
} mf_conv;

/* Pooling geometry. */
typedef struct {
    int32_t kh, kw;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t count_include_pad;   /* avg pool: divide by kh*kw also at borders (ONNX) */
} mf_pool;

/* Requantization of int32 accumulators to int8 (conv2d, depthwise, fully_connected,
 * accumulator_output): out = clamp(output_offset + MBQM(acc, multiplier[o], shift[o]), act),
 * where acc = bias[o] + sum((x + input_offset) * (w + weights_offset)). */
typedef struct {
    int32_t input_offset;        /* minus the input zero point */
    int32_t weights_offset;      /* minus the weights zero point: per-tensor fully_connected;
                                    0 elsewhere (TFLite ignores per-channel weight zero points) */
    int32_t output_offset;       /* the output zero point */
    mf_range_s8 act;             /* fused activation, in the output's quantized domain */
    const int32_t* multiplier;   /* one per output channel, in [2^30, 2^31) or 0 */
    const int32_t* shift;        /* one per output channel; > 0 shifts left */
} mf_requant_s8;

/* int8 ADD / SUB (TFLite's scheme): both inputs, offset and shifted left by left_shift, are
 * rescaled to a common scale (multipliers < 1), added or subtracted, then rescaled to the
 * output. */
typedef struct {
    int32_t a_offset, b_offset;  /* minus the inputs' zero points */
    int32_t left_shift;          /* 20 */
    int32_t a_multiplier, a_shift;
    int32_t b_multiplier, b_shift;
    int32_t output_multiplier, output_shift;
    int32_t output_offset;
    mf_range_s8 act;
} mf_add_s8_params;

/* int8 MUL: out = clamp(output_offset + MBQM((a + a_offset) * (b + b_offset)), act). */
typedef struct {
    int32_t a_offset, b_offset, output_offset;
    int32_t multiplier, shift;
    mf_range_s8 act;
} mf_mul_s8_params;

/* One-input int8 rescale: out = clamp(output_offset + MBQM(x + input_offset), act). This is
 * int8 QUANTIZE (requantization), RELU, RELU_N1_TO_1 and RELU6 (TFLite Micro's RELU6 does not
 * rescale: multiplier 2^30, shift 1 is the identity). */
typedef struct {
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;
    mf_range_s8 act;
} mf_requantize_s8_params;

/* int8 LEAKY_RELU: x >= zero point scales by the identity multiplier, else by alpha's. */
typedef struct {
    int32_t input_offset, output_offset;
    int32_t identity_multiplier, identity_shift;
    int32_t alpha_multiplier, alpha_shift;
} mf_leaky_relu_s8_params;

/* int8 LOGISTIC and TANH: the input is rescaled to Q4.27 (multiplier, shift) and saturates
 * beyond +-radius. LOGISTIC's output has scale 1/256 and zero point -128, TANH's 1/128 and 0. */
typedef struct {
    int32_t input_offset;
    int32_t multiplier, shift;
    int32_t radius;
} mf_sigmoid_s8_params;

/* int8 HARD_SWISH in 16-bit fixed point (multipliers already downscaled to int16). */
typedef struct {
    int32_t input_offset, output_offset;
    int32_t output_multiplier, output_shift;    /* shift <= 0 */
    int32_t reluish_multiplier, reluish_shift;  /* shift may be either sign */
} mf_hard_swish_s8_params;

/* int8 SOFTMAX over channels (gemmlowp fixed point, exp of differences from the max). */
typedef struct {
    int32_t multiplier, left_shift;   /* beta * input scale, as Q5.26 */
    int32_t diff_min;                 /* differences below this give 0 */
} mf_softmax_s8_params;

/* int8 MEAN: out = clamp(output_offset + MBQM(sum(x) + input_offset * count), -128, 127);
 * 1/count is folded into the multiplier. */
typedef struct {
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;
} mf_mean_s8_params;

/* ---- convolutions and dense layers --------------------------------------------------------
 * w_packed (float conv2d): params.packed_conv_weights(op). bias may be NULL. y must not alias x.
 * Workspaces: params.workspace_bytes(op) bytes, any 4-byte alignment. */

void mf_conv2d_f32(const float* x, const mf_view* xv, const float* w_packed, const float* bias,
                   float* y, const mf_view* yv, const mf_conv* p, const mf_range_f32* act,
                   float* workspace);
void mf_conv2d_s8(const int8_t* x, const mf_view* xv, const int8_t* w, const int32_t* bias,
                  int8_t* y, const mf_view* yv, const mf_conv* p, const mf_requant_s8* q,
                  int16_t* workspace);

/* Pointwise (1x1, unpadded) conv2d in place, as memfit.planning.storage plans it: y may alias
 * x, its bytes starting at or before x's so that storing output pixels [0, p) never reaches
 * an input pixel still to be read. Output pixels go in flat (n, h, w) order, one GEMM tile
 * (MF_F32_MR / MF_S8_MR pixels: memfit.planning.scratch.pointwise_block_pixels) at a time,
 * computed into `block` (that many pixels of yv->c outputs, the planner's in-place scratch)
 * and then stored. */
void mf_conv2d_inplace_f32(const float* x, const mf_view* xv, const float* w_packed,
                           const float* bias, float* y, const mf_view* yv, const mf_conv* p,
                           const mf_range_f32* act, float* workspace, float* block);
void mf_conv2d_inplace_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                          const int32_t* bias, int8_t* y, const mf_view* yv, const mf_conv* p,
                          const mf_requant_s8* q, int16_t* workspace, int8_t* block);

void mf_depthwise_conv2d_f32(const float* x, const mf_view* xv, const float* w,
                             const float* bias, float* y, const mf_view* yv, const mf_conv* p,
                             const mf_range_f32* act);
void mf_depthwise_conv2d_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                            const int32_t* bias, int8_t* y, const mf_view* yv, const mf_conv* p,
                            const mf_requant_s8* q);

/* Depthwise in place (depth multiplier 1, as memfit.planning.storage plans it): y may alias x
 * so that output channel c lies on input channel c's positions. `channel` is the planner's
 * in-place scratch (Ho*Wo elements): float, a ring of output rows for blocks of channels (as
 * pooling in place) where a block holds a vector of channels; else, and int8 always, one
 * channel's output plane at a time (batch by batch), stored once computed; a block touches no
 * other channel. */
void mf_depthwise_conv2d_inplace_f32(const float* x, const mf_view* xv, const float* w,
                                     const float* bias, float* y, const mf_view* yv,
                                     const mf_conv* p, const mf_range_f32* act, float* channel);
void mf_depthwise_conv2d_inplace_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                                    const int32_t* bias, int8_t* y, const mf_view* yv,
                                    const mf_conv* p, const mf_requant_s8* q, int8_t* channel);

/* Dense: every (n, h, w) position of xv is a row of xv->c = K inputs; yv has the same number
 * of positions, with yv->c = N outputs (the IR's [rows, K] -> [rows, N], leading dims of 1). */
void mf_fully_connected_f32(const float* x, const mf_view* xv, const float* w, const float* bias,
                            float* y, const mf_view* yv, const mf_range_f32* act);
void mf_fully_connected_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                           const int32_t* bias, int8_t* y, const mf_view* yv,
                           const mf_requant_s8* q);

/* Hybrid conv2d (TFLite's dynamic-range quantization): float activations, int8 weights
 * quantized per tensor, symmetric, at weights_scale. Each batch item of x is quantized
 * symmetrically to int8 (scale: its largest magnitude / 127, as TFLite's
 * SymmetricQuantizeFloats), convolved in int32 like mf_conv2d_s8, and scaled back:
 * y = act(float(acc) * (input scale * weights_scale) + bias). Workspace: the int16 im2col panel
 * of mf_conv2d_s8, then the quantized batch item (H * W * C int8). */
void mf_conv2d_hybrid_f32(const float* x, const mf_view* xv, const int8_t* w, const float* bias,
                          float* y, const mf_view* yv, const mf_conv* p, float weights_scale,
                          const mf_range_f32* act, int16_t* workspace);

/* ---- fused depthwise tiling (memfit.tiling.fdt) --------------------------------------------
 * y = acc + (the layer on this channel slice); acc may be NULL (the first partition) and may
 * be y itself (same view). int8 accumulators are int32 sums of (x + input_offset) * w. */

void mf_partial_conv2d_f32(const float* x, const mf_view* xv, const float* w_packed,
                           const float* acc, const mf_view* accv, float* y, const mf_view* yv,
                           const mf_conv* p, float* workspace);
void mf_partial_conv2d_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                          const int32_t* acc, const mf_view* accv, int32_t* y,
                          const mf_view* yv, const mf_conv* p, int32_t input_offset,
                          int16_t* workspace);
void mf_partial_fully_connected_f32(const float* x, const mf_view* xv, const float* w,
                                    const float* acc, const mf_view* accv, float* y,
                                    const mf_view* yv);
void mf_partial_fully_connected_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                                   const int32_t* acc, const mf_view* accv, int32_t* y,
                                   const mf_view* yv, int32_t input_offset,
                                   int32_t weights_offset);
/* y = act(acc + bias); int8: requantized with q (input_offset, weights_offset unused).
 * In place: y may be acc itself (float: same view) or, for int8, the first bytes of the int32
 * accumulator's buffer ("narrowing": y contiguous from acc's start); elements go in ascending
 * order, so output element i only overwrites accumulator elements already read. The partial
 * kernels may likewise write y over acc (same view). */
void mf_accumulator_output_f32(const float* acc, const mf_view* accv, const float* bias,
                               float* y, const mf_view* yv, const mf_range_f32* act);
void mf_accumulator_output_s8(const int32_t* acc, const mf_view* accv, const int32_t* bias,
                              int8_t* y, const mf_view* yv, const mf_requant_s8* q);

/* ---- spatial tiles of a layer that reduces the whole map (memfit.tiling.ffmt) ---------------
 * y = acc + (this tile's part); acc may be NULL (the first tile) and may be y itself (same
 * view). partial_depthwise_conv2d: the depthwise convolution of the tile with its slice of the
 * kernel (depth multiplier 1, no bias; int8: int32 sums of (x + input_offset) * w);
 * partial_sum_pool: y[n, 0, 0, c] = acc + the sum of x[n, :, :, c] (int8: of the stored
 * values). accumulator_average: y = act(acc / count); int8 rounded half away from zero and
 * clamped, as TFLite's average pool; in place it may narrow like mf_accumulator_output_s8. */

void mf_partial_depthwise_conv2d_f32(const float* x, const mf_view* xv, const float* w,
                                     const float* acc, const mf_view* accv, float* y,
                                     const mf_view* yv, const mf_conv* p);
void mf_partial_depthwise_conv2d_s8(const int8_t* x, const mf_view* xv, const int8_t* w,
                                    const int32_t* acc, const mf_view* accv, int32_t* y,
                                    const mf_view* yv, const mf_conv* p, int32_t input_offset);
void mf_partial_sum_pool_f32(const float* x, const mf_view* xv, const float* acc,
                             const mf_view* accv, float* y, const mf_view* yv);
void mf_partial_sum_pool_s8(const int8_t* x, const mf_view* xv, const int32_t* acc,
                            const mf_view* accv, int32_t* y, const mf_view* yv);
void mf_accumulator_average_f32(const float* acc, const mf_view* accv, float* y,
                                const mf_view* yv, int32_t count, const mf_range_f32* act);
void mf_accumulator_average_s8(const int32_t* acc, const mf_view* accv, int8_t* y,
                               const mf_view* yv, int32_t count, const mf_range_s8* act);

/* ---- recurrent layers: UNIDIRECTIONAL_SEQUENCE_LSTM -----------------------------------------
 * x [batch][steps][n_input] and y [batch][steps][n_output] ([steps][batch][..] when
 * time_major) as views with n = 1. The state starts at real zero, as in a freshly reset TFLite
 * interpreter; the model's state tensors are neither read nor written. Gates in the order
 * i (input), f (forget), c (cell), o (output), each with input weights [n_cell][n_input],
 * recurrent weights [n_cell][n_output] and a bias [n_cell]. y must not alias x; the hidden
 * state of the previous step is read back from y. Workspace: params.workspace_bytes(op). */
typedef struct {
    const float* input_weights[4];      /* input_weights[0] NULL: CIFG (i = 1 - f) */
    const float* recurrent_weights[4];
    const float* peephole[4];           /* [n_cell] or NULL (peephole[2] always NULL) */
    const float* layer_norm[4];         /* [n_cell] or NULL: no layer normalization */
    const float* bias[4];
    const float* projection;            /* [n_output][n_cell], or NULL (n_output == n_cell) */
    const float* projection_bias;       /* [n_output] or NULL */
} mf_lstm_weights_f32;

typedef struct {
    int32_t time_major;
    int32_t n_cell;
    float cell_clip, proj_clip;         /* 0: no clipping */
    mf_range_f32 act;                   /* the cell activation (tanh in most models) */
} mf_lstm_f32_params;

/* int8 (TFLite Micro's 8x8->16 LSTM): int8 activations and weights, int32 biases, int16 cell
 * state; gate pre-activations in Q3.12, gates in Q0.15. */
typedef struct {
    const int8_t* input_weights[4];
    const int8_t* recurrent_weights[4];
    const int32_t* bias[4];
} mf_lstm_weights_s8;

typedef struct {
    int32_t time_major;
    int32_t n_cell;
    int32_t input_offset;                 /* minus the input zero point */
    int32_t hidden_zero_point;            /* the output's (and hidden state's) zero point */
    const int32_t* input_multiplier;      /* per gate: FC(input) + bias -> Q3.12 */
    const int32_t* input_shift;
    const int32_t* recurrent_multiplier;  /* per gate: FC(hidden) -> Q3.12 */
    const int32_t* recurrent_shift;
    int32_t forget_multiplier, forget_shift;          /* f * cell -> cell */
    int32_t input_gate_multiplier, input_gate_shift;  /* i * c gate -> cell */
    int32_t cell_zero_point;
    int32_t hidden_multiplier, hidden_shift;          /* o * tanh(cell) -> hidden */
    int32_t cell_scale_power;             /* the cell state's scale is 2^cell_scale_power */
    int32_t cell_clip;                    /* quantized; 0: no clipping */
} mf_lstm_s8_params;

/* Workspace (params.lstm_workspace_bytes): two rows of n_cell floats with layer normalization,
 * one with a projection, none otherwise; plus the cell state (n_cell floats) when a projection
 * makes n_output < n_cell and the sequence has more than one step (else it waits in the next
 * step's slot of y). NULL when that is nothing. */
void mf_lstm_f32(const float* x, const mf_view* xv, const mf_lstm_weights_f32* w, float* y,
                 const mf_view* yv, const mf_lstm_f32_params* p, float* workspace);
/* Workspace: the cell state, n_cell int16, for a sequence of more than one step; else none
 * (NULL). The gates are computed a few cells at a time on the stack. */
void mf_lstm_s8(const int8_t* x, const mf_view* xv, const mf_lstm_weights_s8* w, int8_t* y,
                const mf_view* yv, const mf_lstm_s8_params* p, int16_t* workspace);

/* ---- pooling and reductions --------------------------------------------------------------- */

void mf_max_pool2d_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                       const mf_pool* p, const mf_range_f32* act);
void mf_avg_pool2d_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                       const mf_pool* p, const mf_range_f32* act);
void mf_max_pool2d_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_pool* p, const mf_range_s8* act);
/* Rounded (half away from zero) average of the window; no rescaling. */
void mf_avg_pool2d_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_pool* p, const mf_range_s8* act);

/* Pooling in place (as memfit.planning.storage plans it, like depthwise in place): y may
 * alias x; channel by channel (and batch by batch) the output plane is computed into
 * `channel` (Ho*Wo elements), then stored at the output's channel-c positions. */
void mf_max_pool2d_inplace_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                               const mf_pool* p, const mf_range_f32* act, float* channel);
void mf_avg_pool2d_inplace_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                               const mf_pool* p, const mf_range_f32* act, float* channel);
void mf_max_pool2d_inplace_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                              const mf_pool* p, const mf_range_s8* act, int8_t* channel);
void mf_avg_pool2d_inplace_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                              const mf_pool* p, const mf_range_s8* act, int8_t* channel);

/* Reductions over every axis where yv->dims is 1 (yv has x's rank: the keepdims shape). */
void mf_mean_f32(const float* x, const mf_nd* xv, float* y, const mf_nd* yv);
void mf_mean_s8(const int8_t* x, const mf_nd* xv, int8_t* y, const mf_nd* yv,
                const mf_mean_s8_params* p);
void mf_reduce_max_f32(const float* x, const mf_nd* xv, float* y, const mf_nd* yv);
void mf_reduce_max_s8(const int8_t* x, const mf_nd* xv, int8_t* y, const mf_nd* yv);

/* ---- elementwise ----------------------------------------------------------------------------
 * Binary kernels broadcast: each input view has the output's dims or 1 on every axis
 * (channels included: a per-tensor scalar is a 1x1x1x1 view, a per-channel vector 1x1x1xC). */

void mf_add_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv, float* y,
                const mf_view* yv, const mf_range_f32* act);
void mf_sub_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv, float* y,
                const mf_view* yv, const mf_range_f32* act);
void mf_mul_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv, float* y,
                const mf_view* yv, const mf_range_f32* act);
void mf_div_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv, float* y,
                const mf_view* yv, const mf_range_f32* act);
void mf_maximum_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv,
                    float* y, const mf_view* yv, const mf_range_f32* act);
void mf_minimum_f32(const float* a, const mf_view* av, const float* b, const mf_view* bv,
                    float* y, const mf_view* yv, const mf_range_f32* act);

void mf_add_s8(const int8_t* a, const mf_view* av, const int8_t* b, const mf_view* bv,
               int8_t* y, const mf_view* yv, const mf_add_s8_params* p);
void mf_sub_s8(const int8_t* a, const mf_view* av, const int8_t* b, const mf_view* bv,
               int8_t* y, const mf_view* yv, const mf_add_s8_params* p);
void mf_mul_s8(const int8_t* a, const mf_view* av, const int8_t* b, const mf_view* bv,
               int8_t* y, const mf_view* yv, const mf_mul_s8_params* p);
/* Raw int8 maximum/minimum (TFLite requires equal quantization of inputs and output). */
void mf_maximum_s8(const int8_t* a, const mf_view* av, const int8_t* b, const mf_view* bv,
                   int8_t* y, const mf_view* yv);
void mf_minimum_s8(const int8_t* a, const mf_view* av, const int8_t* b, const mf_view* bv,
                   int8_t* y, const mf_view* yv);

/* Float unary: relu = clamp(0, INFINITY), relu6 = clamp(0, 6), relu_n1_to_1 = clamp(-1, 1). */
void mf_clamp_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv, float min,
                  float max);
void mf_logistic_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv);
void mf_tanh_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv);
void mf_hard_swish_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv);
void mf_leaky_relu_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv,
                       float alpha);
void mf_batch_norm_f32(const float* x, const mf_view* xv, const float* scale, const float* bias,
                       const float* mean, const float* var, float* y, const mf_view* yv,
                       float epsilon);

/* int8 unary (each builds its 256-entry table on the stack, then looks up). */
void mf_requantize_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_requantize_s8_params* p);
void mf_leaky_relu_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_leaky_relu_s8_params* p);
void mf_logistic_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                    const mf_sigmoid_s8_params* p);
void mf_tanh_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                const mf_sigmoid_s8_params* p);
void mf_hard_swish_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                      const mf_hard_swish_s8_params* p);

/* Float <-> int8 at a model's boundary: TFLite's rounding (half away from zero) and clamp. */
void mf_quantize_f32_s8(const float* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                        float scale, int32_t zero_point);
void mf_dequantize_s8_f32(const int8_t* x, const mf_view* xv, float* y, const mf_view* yv,
                          float scale, int32_t zero_point);

/* ---- normalization over channels (not in place) ------------------------------------------- */

void mf_softmax_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv, float beta);
void mf_softmax_s8(const int8_t* x, const mf_view* xv, int8_t* y, const mf_view* yv,
                   const mf_softmax_s8_params* p);
void mf_softmax_s8_s16(const int8_t* x, const mf_view* xv, int16_t* y, const mf_view* yv,
                       const mf_softmax_s8_params* p);
/* TFLite LRN: x / (bias + alpha * sum of x^2 over channels [c - radius, c + radius])^beta. */
void mf_lrn_f32(const float* x, const mf_view* xv, float* y, const mf_view* yv, int32_t radius,
                float bias, float alpha, float beta);

/* ---- data movement: any element size (bytes), mf_nd boxes, never in place ------------------ */

/* y = x, same dims. */
void mf_copy(const void* x, const mf_nd* xv, void* y, const mf_nd* yv, int32_t elem_size);
/* Same element count, row-major order (a reshape that could not be planned as a view). */
void mf_reshape(const void* x, const mf_nd* xv, void* y, const mf_nd* yv, int32_t elem_size);
/* y[i_0, ..., i_r] = x[j] with j[perm[d]] = i_d (y dims d = x dims perm[d]). */
void mf_transpose(const void* x, const mf_nd* xv, void* y, const mf_nd* yv, const int32_t* perm,
                  int32_t elem_size);
/* y[i] = x[begin + i * step] per axis; yv has x's rank (shrunk axes as dims of 1). */
void mf_strided_slice(const void* x, const mf_nd* xv, void* y, const mf_nd* yv,
                      const int32_t* begin, const int32_t* step, int32_t elem_size);
/* y = x placed at offset `before` (per axis), every other element = *value (one element:
 * the real pad value, quantized to the output for int8). */
void mf_pad(const void* x, const mf_nd* xv, void* y, const mf_nd* yv, const int32_t* before,
            const void* value, int32_t elem_size);
/* y = the inputs one after another along `axis` (inputs quantized like the output; an int8
 * input with other parameters goes through mf_requantize_s8 into its slice instead). */
void mf_concat(const void* const* xs, const mf_nd* xvs, int32_t count, int32_t axis, void* y,
               const mf_nd* yv, int32_t elem_size);

#endif /* MEMFIT_RUNTIME_H */
