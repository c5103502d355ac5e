/* UNIDIRECTIONAL_SEQUENCE_LSTM, float32 and int8 (8x8->16), from a zero state.
 *
 * Both follow memfit/runtime/kernels/lstm.py (the spec) step for step: float32 as TFLite's
 * kernel (CIFG, peepholes, layer normalization, projection, clipping), int8 as TFLite Micro's
 * integer LSTM, bit for bit. Each batch row's sequence is independent, so rows run one after
 * another. The kernels keep as little as they can in the workspace (its size is
 * memfit.codegen.params.workspace_bytes): the gates are computed a block of cells at a time
 * and live on the stack for that block only; the hidden state of step t - 1 is read back from
 * the output; the cell state is kept only while another step follows, and then, when it fits
 * (float, unprojected or projected to at least n_cell), in the next step's slot of the output,
 * which that step reads before writing its hidden state over it. The matrix-vector products
 * are the dense layers' kernels (mf_dense.c). */
#include <string.h>

#include "mf_internal.h"

enum { GATE_INPUT, GATE_FORGET, GATE_CELL, GATE_OUTPUT, GATES };

/* Cells per block: the kernels compute the gates of a block of cells, then their cell and
 * hidden state, so that no gate outlives its block (on the stack, not in the workspace). */
#define MF_LSTM_CELLS 8

/* Element offset of (batch row b, step t) in an LSTM input or output view. */
static int32_t step_offset(const mf_view* v, int32_t time_major, int32_t b, int32_t t) {
    return time_major ? mf_view_offset(v, 0, t, b) : mf_view_offset(v, 0, b, t);
}

/* A dense row of `length` features, as the dense kernels take it. */
static mf_view row_view(int32_t length) {
    const mf_view v = {1, 1, 1, length, length, length, length};
    return v;
}

/* ---- float32 ------------------------------------------------------------------------------ */

/* out[j] = W x + R h of gate g for cell c0 + j, j < count (R h is 0 in the zero state). */
static void preactivations_f32(int32_t g, const float* x, const float* hidden,
                               const mf_lstm_weights_f32* w, int32_t n_input, int32_t n_output,
                               int32_t c0, int32_t count, float* out) {
    mf_dot_rows_f32(x, n_input, w->input_weights[g] + (size_t)c0 * n_input, count, NULL, out);
    if (hidden != NULL) {
        mf_dot_rows_f32(hidden, n_output, w->recurrent_weights[g] + (size_t)c0 * n_output, count,
                        out, out);
    }
}

/* v[j] += peephole of gate g for cell c0 + j times cell[j], if the gate has a peephole (and
 * the cell state is not the zero state, NULL). */
static void add_peephole_f32(int32_t g, const mf_lstm_weights_f32* w, int32_t c0, int32_t count,
                             const float* cell, float* v) {
    if (w->peephole[g] != NULL && cell != NULL) {
        for (int32_t j = 0; j < count; j++) {
            v[j] += w->peephole[g][c0 + j] * cell[j];
        }
    }
}

/* v[j] = activation of gate g (the cell gate: the cell activation; the others: sigmoid) of
 * v[j] plus the bias of cell c0 + j. */
static void activate_gate_f32(int32_t g, const mf_lstm_weights_f32* w,
                              const mf_lstm_f32_params* p, int32_t c0, int32_t count, float* v) {
    const float* bias = w->bias[g] + c0;
    if (g == GATE_CELL) {
        for (int32_t j = 0; j < count; j++) {
            v[j] = mf_activate(v[j] + bias[j], &p->act);
        }
    } else { /* in float, as TFLite (mf_activate's sigmoid goes through double) */
        for (int32_t j = 0; j < count; j++) {
            v[j] = 1.0f / (1.0f + expf(-(v[j] + bias[j])));
        }
    }
}

static float clip_f32(float v, float clip) {
    return clip > 0.0f ? (v < -clip ? -clip : (v > clip ? clip : v)) : v;
}

/* One step of one batch row without layer normalization, a block of cells at a time (the
 * gates on the stack): the hidden state into `hidden_out` (n_cell, before any projection),
 * the new cell state into `cell_out` unless NULL. `cell_in` (NULL: the zero state) may be
 * `cell_out` or `hidden_out`: a block reads its cells before it writes them. */
static void step_by_cells_f32(const float* in, const float* hidden, const float* cell_in,
                              const mf_lstm_weights_f32* w, const mf_lstm_f32_params* p,
                              int32_t n_input, int32_t n_output, float* hidden_out,
                              float* cell_out) {
    const int32_t n = p->n_cell, cifg = w->input_weights[GATE_INPUT] == NULL;
    float gate[GATES][MF_LSTM_CELLS], cell[MF_LSTM_CELLS];
    for (int32_t c0 = 0; c0 < n; c0 += MF_LSTM_CELLS) {
        const int32_t count = mf_min_i32(MF_LSTM_CELLS, n - c0);
        const float* old = cell_in != NULL ? cell_in + c0 : NULL;
        for (int32_t g = cifg ? GATE_FORGET : GATE_INPUT; g < GATES; g++) {
            preactivations_f32(g, in, hidden, w, n_input, n_output, c0, count, gate[g]);
        }
        for (int32_t g = cifg ? GATE_FORGET : GATE_INPUT; g <= GATE_CELL; g++) {
            add_peephole_f32(g, w, c0, count, old, gate[g]);
            activate_gate_f32(g, w, p, c0, count, gate[g]);
        }
        if (cifg) {
            for (int32_t j = 0; j < count; j++) {
                gate[GATE_INPUT][j] = 1.0f - gate[GATE_FORGET][j];
            }
        }
        for (int32_t j = 0; j < count; j++) {
            const float kept = gate[GATE_FORGET][j] * (old != NULL ? old[j] : 0.0f);
            cell[j] = clip_f32(kept + gate[GATE_INPUT][j] * gate[GATE_CELL][j], p->cell_clip);
        }
        /* The output gate's peephole sees the new cell state. */
        add_peephole_f32(GATE_OUTPUT, w, c0, count, cell, gate[GATE_OUTPUT]);
        activate_gate_f32(GATE_OUTPUT, w, p, c0, count, gate[GATE_OUTPUT]);
        for (int32_t j = 0; j < count; j++) {
            if (cell_out != NULL) {
                cell_out[c0 + j] = cell[j];
            }
            hidden_out[c0 + j] = gate[GATE_OUTPUT][j] * mf_activate(cell[j], &p->act);
        }
    }
}

/* TFLite's MeanStddevNormalization of one gate's pre-activations (variance guard 1e-8). */
static void layer_norm_f32(float* v, int32_t n, const float* weights) {
    float sum = 0.0f;
    for (int32_t c = 0; c < n; c++) {
        sum += v[c];
    }
    const float mean = sum / (float)n;
    float squares = 0.0f;
    for (int32_t c = 0; c < n; c++) {
        squares += (v[c] - mean) * (v[c] - mean);
    }
    const float stddev = sqrtf(squares / (float)n + 1e-8f);
    for (int32_t c = 0; c < n; c++) {
        v[c] = (v[c] - mean) / stddev * weights[c];
    }
}

/* out = gate g of every cell: its pre-activations with the peephole on `cell` (NULL: none, or
 * the zero state), normalized over the cells, plus the bias, through its activation. */
static void normalized_gate_f32(int32_t g, const float* in, const float* hidden,
                                const float* cell, const mf_lstm_weights_f32* w,
                                const mf_lstm_f32_params* p, int32_t n_input, int32_t n_output,
                                float* out) {
    const int32_t n = p->n_cell;
    preactivations_f32(g, in, hidden, w, n_input, n_output, 0, n, out);
    add_peephole_f32(g, w, 0, n, cell, out);
    layer_norm_f32(out, n, w->layer_norm[g]);
    activate_gate_f32(g, w, p, 0, n, out);
}

/* One step with layer normalization, which needs a gate's pre-activations of every cell at
 * once: gates a whole row at a time in rows `a` and `b` (n_cell floats each), the new cell
 * state left in `b`. As step_by_cells_f32 otherwise; here the hidden state may be `a`. */
static void step_normalized_f32(const float* in, const float* hidden, const float* cell_in,
                                const mf_lstm_weights_f32* w, const mf_lstm_f32_params* p,
                                int32_t n_input, int32_t n_output, float* a, float* b,
                                float* hidden_out, float* cell_out) {
    const int32_t n = p->n_cell;
    if (w->input_weights[GATE_INPUT] == NULL) { /* CIFG: i = 1 - f */
        normalized_gate_f32(GATE_FORGET, in, hidden, cell_in, w, p, n_input, n_output, a);
        normalized_gate_f32(GATE_CELL, in, hidden, NULL, w, p, n_input, n_output, b);
        for (int32_t c = 0; c < n; c++) {
            const float old = cell_in != NULL ? cell_in[c] : 0.0f;
            b[c] = clip_f32(a[c] * old + (1.0f - a[c]) * b[c], p->cell_clip);
        }
    } else { /* i * g into a, then f into b */
        normalized_gate_f32(GATE_INPUT, in, hidden, cell_in, w, p, n_input, n_output, a);
        normalized_gate_f32(GATE_CELL, in, hidden, NULL, w, p, n_input, n_output, b);
        for (int32_t c = 0; c < n; c++) {
            a[c] = a[c] * b[c];
        }
        normalized_gate_f32(GATE_FORGET, in, hidden, cell_in, w, p, n_input, n_output, b);
        for (int32_t c = 0; c < n; c++) {
            const float old = cell_in != NULL ? cell_in[c] : 0.0f;
            b[c] = clip_f32(b[c] * old + a[c], p->cell_clip);
        }
    }
    normalized_gate_f32(GATE_OUTPUT, in, hidden, b, w, p, n_input, n_output, a);
    for (int32_t c = 0; c < n; c++) {
        hidden_out[c] = a[c] * mf_activate(b[c], &p->act);
    }
    if (cell_out != NULL) {
        memcpy(cell_out, b, sizeof(float) * (size_t)n);
    }
}

/* The cell state lives between steps only when a step follows: in the next step's slot of y
 * when n_output >= n_cell (it is read there before that step writes its hidden state over
 * it), else in the workspace after the rows the variant needs (layer normalization two gate
 * rows; projection one, the unprojected hidden state). */
void mf_lstm_f32(const float* x, const mf_view* xv, const mf_lstm_weights_f32* w, float* y,
                 const mf_view* yv, const mf_lstm_f32_params* p, float* workspace) {
    static const mf_range_f32 none = {-INFINITY, INFINITY, MF_FN_NONE};
    const int32_t n = p->n_cell, n_input = xv->c, n_output = yv->c;
    const int32_t batch = p->time_major ? yv->w : yv->h;
    const int32_t steps = p->time_major ? yv->h : yv->w;
    const int32_t layer_norm = w->layer_norm[GATE_FORGET] != NULL;
    const int32_t rows = layer_norm ? 2 : (w->projection != NULL ? 1 : 0);
    float* row_a = workspace;
    float* cell = workspace != NULL ? workspace + (size_t)rows * n : NULL; /* when not in y */
    for (int32_t b = 0; b < batch; b++) {
        const float* hidden = NULL; /* the zero state */
        const float* cell_in = NULL;
        for (int32_t t = 0; t < steps; t++) {
            const float* in = x + step_offset(xv, p->time_major, b, t);
            float* out = y + step_offset(yv, p->time_major, b, t);
            float* cell_out = NULL;
            if (t + 1 < steps) {
                cell_out = n_output >= n ? y + step_offset(yv, p->time_major, b, t + 1) : cell;
            }
            float* unprojected = w->projection != NULL ? row_a : out;
            if (layer_norm) {
                step_normalized_f32(in, hidden, cell_in, w, p, n_input, n_output, row_a,
                                    row_a + n, unprojected, cell_out);
            } else {
                step_by_cells_f32(in, hidden, cell_in, w, p, n_input, n_output, unprojected,
                                  cell_out);
            }
            if (w->projection != NULL) {
                const mf_view cv = row_view(n), hv = row_view(n_output);
                mf_fully_connected_f32(unprojected, &cv, w->projection, w->projection_bias, out,
                                       &hv, &none);
                for (int32_t k = 0; k < n_output; k++) {
                    out[k] = clip_f32(out[k], p->proj_clip);
                }
            }
            hidden = out;
            cell_in = cell_out;
        }
    }
}

/* ---- integer sigmoid and tanh (Q3.12 or 2^power in, Q0.15 out) ------------------------------ */

/* TFLite's table of sigmoid(i / 24) in unsigned 0.16 fixed point, i = 0..255 (its own numbers,
 * not a rounding of the function: bit-exact results need exactly these). */
static const uint16_t sigmoid_table[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535,
};

/* The table at magnitude / 2^fraction_bits, scaled by 2^fraction_bits, saturating. */
static int32_t table_interpolate(int32_t magnitude, int32_t fraction_bits) {
    const int32_t index = magnitude >> fraction_bits;
    if (index >= 255) {
        return fraction_bits == 9 ? 0x7FFF << 10 : 0xFFFF << 8;
    }
    const int32_t below = sigmoid_table[index], above = sigmoid_table[index + 1];
    const int32_t fraction = magnitude & ((1 << fraction_bits) - 1);
    return (below << fraction_bits) + fraction * (above - below);
}

/* TFLite's int16 logistic at input scale 2^-12: the input times 3 puts table step 2^9 at 1/24. */
int16_t mf_sigmoid_s16(int32_t x) {
    const int32_t v = x * 3;
    const int32_t value = table_interpolate(v >= 0 ? v : -v, 9);
    return (int16_t)((v >= 0 ? value + (1 << 9) : (1 << 25) - value + (1 << 9) - 1) >> 10);
}

/* TFLite's int16 tanh at input scale 2^power, as TFLite Micro's LSTM calls it: the input is
 * brought to scale 1/(3 * 4096) by an integer multiply, or for scales finer than 2^-12 by a
 * multiply by 3 and a rounding right shift. */
int16_t mf_tanh_s16(int32_t x, int32_t power) {
    const int32_t left_shift = 12 + power;
    int32_t v;
    if (left_shift >= 0) {
        v = x * (3 << left_shift);
    } else {
        v = (x * 3 + (1 << (-left_shift - 1))) >> -left_shift;
    }
    const int32_t value = table_interpolate(v >= 0 ? v : -v, 8);
    return (int16_t)((v >= 0 ? value - (1 << 23) + (1 << 7) : -value + (1 << 23) + (1 << 7) - 1) >>
                     8);
}

static int16_t saturate16(int32_t v) { return (int16_t)mf_clamp_i32(v, INT16_MIN, INT16_MAX); }

/* ---- int8 ----------------------------------------------------------------------------------- */

/* out[j] = gate g of cell c0 + j, j < count: sigmoid or tanh (gate c) of the Q3.12 sum of
 * FC(input) + bias and FC(hidden), each requantized to Q3.12 and saturated. */
static void gate_s8(int32_t g, const int8_t* x, const int8_t* hidden, const mf_lstm_weights_s8* w,
                    const mf_lstm_s8_params* p, int32_t n_input, int32_t c0, int32_t count,
                    int16_t* out) {
    const int32_t n = p->n_cell;
    int32_t sums[MF_LSTM_CELLS];
    mf_dot_rows_s8(x, n_input, p->input_offset, w->input_weights[g] + (size_t)c0 * n_input, 0,
                   count, NULL, sums);
    for (int32_t j = 0; j < count; j++) {
        const int32_t acc = (int32_t)((uint32_t)sums[j] + (uint32_t)w->bias[g][c0 + j]);
        out[j] = saturate16(mf_mbqm(acc, p->input_multiplier[g], p->input_shift[g]));
    }
    if (hidden != NULL) { /* the zero state's FC is 0 */
        mf_dot_rows_s8(hidden, n, -p->hidden_zero_point, w->recurrent_weights[g] + (size_t)c0 * n,
                       0, count, NULL, sums);
        for (int32_t j = 0; j < count; j++) {
            const int32_t from_hidden =
                saturate16(mf_mbqm(sums[j], p->recurrent_multiplier[g], p->recurrent_shift[g]));
            out[j] = saturate16(out[j] + from_hidden);
        }
    }
    for (int32_t j = 0; j < count; j++) {
        out[j] = g == GATE_CELL ? mf_tanh_s16(out[j], -12) : mf_sigmoid_s16(out[j]);
    }
}

/* The int16 cell state does not fit in an output slot: it is kept in the workspace, which is
 * empty (NULL) for a sequence of one step. */
void mf_lstm_s8(const int8_t* x, const mf_view* xv, const mf_lstm_weights_s8* w, int8_t* y,
                const mf_view* yv, const mf_lstm_s8_params* p, int16_t* cell) {
    const int32_t n = p->n_cell, n_input = xv->c;
    const int32_t batch = p->time_major ? yv->w : yv->h;
    const int32_t steps = p->time_major ? yv->h : yv->w;
    int16_t gate[GATES][MF_LSTM_CELLS];
    for (int32_t b = 0; b < batch; b++) {
        const int8_t* hidden = NULL; /* the zero state: every value at the zero point */
        for (int32_t t = 0; t < steps; t++) {
            const int8_t* in = x + step_offset(xv, p->time_major, b, t);
            int8_t* out = y + step_offset(yv, p->time_major, b, t);
            const int16_t* cell_in = t > 0 ? cell : NULL; /* NULL: the zero state */
            int16_t* cell_out = t + 1 < steps ? cell : NULL;
            for (int32_t c0 = 0; c0 < n; c0 += MF_LSTM_CELLS) {
                const int32_t count = mf_min_i32(MF_LSTM_CELLS, n - c0);
                for (int32_t g = 0; g < GATES; g++) {
                    gate_s8(g, in, hidden, w, p, n_input, c0, count, gate[g]);
                }
                for (int32_t j = 0; j < count; j++) {
                    const int32_t c = c0 + j;
                    const int32_t kept = saturate16(
                        mf_mbqm(gate[GATE_FORGET][j] * (cell_in != NULL ? cell_in[c] : 0),
                                p->forget_multiplier, p->forget_shift) +
                        p->cell_zero_point);
                    const int32_t added = saturate16(
                        mf_mbqm(gate[GATE_INPUT][j] * gate[GATE_CELL][j],
                                p->input_gate_multiplier, p->input_gate_shift) +
                        p->cell_zero_point);
                    int32_t v = saturate16(kept + added);
                    if (p->cell_clip != 0) {
                        v = mf_clamp_i32(v, -p->cell_clip, p->cell_clip);
                    }
                    if (cell_out != NULL) {
                        cell_out[c] = (int16_t)v;
                    }
                    const int32_t activation = mf_tanh_s16(v, p->cell_scale_power);
                    const int32_t h = mf_mbqm(activation * gate[GATE_OUTPUT][j],
                                              p->hidden_multiplier, p->hidden_shift) +
                                      p->hidden_zero_point;
                    out[c] = (int8_t)mf_clamp_i32(h, INT8_MIN, INT8_MAX);
                }
            }
            hidden = out;
        }
    }
}
