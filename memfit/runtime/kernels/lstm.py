"""UNIDIRECTIONAL_SEQUENCE_LSTM: a float32 kernel and TFLite Micro's 8x8->16 integer kernel.

The op's inputs are the TFLite operator's 24 inputs in TFLite's order (see the ``_X``, ``_W``,
... index tables below); absent optional inputs are None.

State. Inputs 18 (activation/hidden state) and 19 (cell state) are TFLite *variable* tensors.
A freshly created TFLite Micro interpreter resets them before the first inference: the int8
hidden state to its zero point (real value 0), every other variable to 0. Each run of these
kernels is such a first inference: the state starts at real zero, the arrays passed for inputs
18/19 are not read, and the final state is not written back. (A TFLM interpreter that is
invoked again without ``reset()`` continues from the previous state; memfit does not model
that.)

Float32 follows TFLite's LSTM: gates i, f, c (the "cell gate" g) and o; optional CIFG (no input
gate, i = 1 - f), peepholes (input and forget gates see the previous cell state, the output gate
the new one), layer normalisation of the gate pre-activations, projection with optional bias,
and cell/projection clipping (a clip of 0 means none). TFLite Micro's float kernel runs the
standard LSTM with tanh only (it refuses the variants and skips any other cell activation);
for those, this kernel follows TFLite (LiteRT), which the tests use as the reference.

int8 follows TFLite Micro's ``lstm_eval`` for int8 activations, int8 weights, int16 cell state
and int32 biases, bit for bit. Every gate is FC(input) and FC(hidden state), each requantised
to int16 at the fixed scale 2^-12 and added with saturation, then an integer sigmoid or tanh
(table lookup with linear interpolation) gives Q0.15. The cell state update and the hidden state
are integer multiplications with TFLite's double-rounding fixed-point requantisation. TFLite
Micro supports only the standard LSTM in this mode (no CIFG, peephole, projection or layer
norm), and it ignores the operator's intermediate tensors; so does this kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memfit.errors import UnsupportedOpError
from memfit.ir.core import Op, Tensor
from memfit.ir.dtypes import DType
from memfit.runtime.kernels import register
from memfit.runtime.kernels.common import apply_activation_float
from memfit.runtime.kernels.fixedpoint import (
    INT16_MAX,
    INT16_MIN,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    round_half_away,
    wrap32,
)

# TFLite's input indices, per gate. The cell gate ("c") has no peephole.
GATES = ("i", "f", "c", "o")
_X = 0
_W = {"i": 1, "f": 2, "c": 3, "o": 4}
_R = {"i": 5, "f": 6, "c": 7, "o": 8}
_PEEPHOLE = {"i": 9, "f": 10, "o": 11}
_BIAS = {"i": 12, "f": 13, "c": 14, "o": 15}
_PROJECTION_W, _PROJECTION_B = 16, 17
_HIDDEN_STATE, _CELL_STATE = 18, 19
_LAYER_NORM = {"i": 20, "f": 21, "c": 22, "o": 23}

# TFLite Micro computes gate pre-activations at scale 2^-12 (Q3.12) and the gate outputs
# (sigmoid/tanh) at 2^-15 (Q0.15).
_GATE_INPUT_SCALE = 2.0**-12
_GATE_OUTPUT_SCALE = 2.0**-15


# ---- layout ------------------------------------------------------------------------------


def _time_major(x: np.ndarray, time_major: bool) -> np.ndarray:
    """The sequence as [time, batch, features]."""
    return x if time_major else x.swapaxes(0, 1)


def _from_time_major(y: np.ndarray, time_major: bool) -> np.ndarray:
    return np.ascontiguousarray(y if time_major else y.swapaxes(0, 1))


class _Inputs:
    """The kernel's input arrays by TFLite index, with errors that name the op."""

    def __init__(self, op: Op, arrays: tuple[np.ndarray | None, ...]) -> None:
        self.op = op
        self.arrays = arrays

    def get(self, index: int) -> np.ndarray | None:
        return self.arrays[index] if index < len(self.arrays) else None

    def required(self, index: int) -> np.ndarray:
        array = self.get(index)
        if array is None:
            raise UnsupportedOpError(
                f"op {self.op.name} (lstm) has no input {index}, which the LSTM needs; the "
                "model is malformed or uses an LSTM variant memfit does not support"
            )
        return array


# ---- float32 -----------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _layer_norm(x: np.ndarray) -> np.ndarray:
    """TFLite's MeanStddevNormalization over the cell axis (variance guard 1e-8)."""
    mean = x.mean(axis=-1, keepdims=True, dtype=np.float32)
    variance = np.square(x - mean).mean(axis=-1, keepdims=True, dtype=np.float32)
    return ((x - mean) / np.sqrt(variance + np.float32(1e-8))).astype(np.float32)


@register("lstm")
def lstm_float(op: Op, *inputs: np.ndarray | None) -> np.ndarray:
    """Float32 UNIDIRECTIONAL_SEQUENCE_LSTM from a zero state (see the module docstring)."""
    arg = _Inputs(op, inputs)
    for index, array in enumerate(inputs[1:], start=1):
        state = index in (_HIDDEN_STATE, _CELL_STATE)
        if array is not None and not state and array.dtype != np.float32:
            raise UnsupportedOpError(
                f"op {op.name} (lstm): input {index} is {array.dtype}; memfit runs float "
                "LSTMs with float32 weights only (hybrid int8-weight LSTMs are not "
                "supported). Convert the model without dynamic-range quantization."
            )
    activation = op.attrs.get("activation", "tanh")
    cell_clip = float(op.attrs.get("cell_clip", 0.0))
    proj_clip = float(op.attrs.get("proj_clip", 0.0))
    use_cifg = arg.get(_W["i"]) is None
    projection = arg.get(_PROJECTION_W)
    projection_bias = arg.get(_PROJECTION_B)

    time_major = op.attrs.get("time_major", False)
    xs = _time_major(arg.required(_X), time_major).astype(np.float32)
    steps, batch = xs.shape[:2]
    n_cell = arg.required(_W["f"]).shape[0]
    n_output = arg.required(_R["f"]).shape[1]
    gates = [g for g in GATES if not (use_cifg and g == "i")]
    # The input's contribution does not depend on the state: one matmul for all steps.
    from_input = {g: xs @ arg.required(_W[g]).T for g in gates}

    hidden = np.zeros((batch, n_output), np.float32)
    cell = np.zeros((batch, n_cell), np.float32)
    out = np.empty((steps, batch, n_output), np.float32)

    def gate(g: str, t: int, peephole_cell: np.ndarray | None) -> np.ndarray:
        acc = from_input[g][t] + hidden @ arg.required(_R[g]).T
        peephole = arg.get(_PEEPHOLE[g]) if g in _PEEPHOLE else None
        if peephole is not None and peephole_cell is not None:
            acc = acc + peephole * peephole_cell
        norm = arg.get(_LAYER_NORM[g])
        if norm is not None:
            acc = _layer_norm(acc) * norm
        acc = acc + arg.required(_BIAS[g])
        return _sigmoid(acc) if g != "c" else apply_activation_float(acc, activation)

    for t in range(steps):
        forget = gate("f", t, cell)
        inp = np.float32(1.0) - forget if use_cifg else gate("i", t, cell)
        cell = forget * cell + inp * gate("c", t, None)
        if cell_clip > 0:
            cell = np.clip(cell, -cell_clip, cell_clip)
        hidden = gate("o", t, cell) * apply_activation_float(cell, activation)
        if projection is not None:
            hidden = hidden @ projection.T
            if projection_bias is not None:
                hidden = hidden + projection_bias
            if proj_clip > 0:
                hidden = np.clip(hidden, -proj_clip, proj_clip)
        out[t] = hidden
    return _from_time_major(out, time_major)


# ---- integer sigmoid and tanh ------------------------------------------------------------

# TFLite's lookup table of sigmoid(i / 24) in unsigned 0.16 fixed point, i = 0..255, shared
# by its int16 logistic and tanh (tanh(x) = 2 * sigmoid(2x) - 1). The numbers are TFLite's own
# (tensorflow/lite/kernels/internal/common.h, Apache-2.0): they are not a rounding of the exact
# function (97 of the 256 entries differ from ceil(65536 * sigmoid(i / 24))), so results
# bit-exact with TFLite Micro need exactly these values.
# fmt: off
_SIGMOID_TABLE = np.array(
    [
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
    ],
    dtype=np.int64,
)
# fmt: on


def _table_interpolate(magnitude: np.ndarray, fraction_bits: int) -> np.ndarray:
    """Table value at ``magnitude / 2^fraction_bits``, scaled by 2^fraction_bits, saturating."""
    index = magnitude >> fraction_bits
    low = np.minimum(index, 254)
    below, above = _SIGMOID_TABLE[low], _SIGMOID_TABLE[low + 1]
    fraction = magnitude & ((1 << fraction_bits) - 1)
    value = (below << fraction_bits) + fraction * (above - below)
    saturated = (0x7FFF << 10) if fraction_bits == 9 else (0xFFFF << 8)
    return np.where(index >= 255, saturated, value)


def sigmoid_int16(x: np.ndarray) -> np.ndarray:
    """Integer sigmoid: int16 input at scale 2^-12 (Q3.12) -> int16 output at 2^-15 (Q0.15).

    TFLite's int16 logistic with a power-of-two input scale: the input is multiplied by 3 so
    that table step 2^9 is 1/24, i.e. the table spans |x| < 10.7.
    """
    v = np.asarray(x, np.int64) * 3
    value = _table_interpolate(np.abs(v), 9)
    value = np.where(v >= 0, value + (1 << 9), (1 << 25) - value + (1 << 9) - 1)
    return (value >> 10).astype(np.int16)


def tanh_int16(x: np.ndarray, input_scale_power: int = -12) -> np.ndarray:
    """Integer tanh: int16 input at scale 2^input_scale_power -> int16 output at 2^-15.

    As TFLite Micro's LSTM calls TFLite's int16 tanh: the input is brought to scale
    1/(3 * 4096) (tanh uses the sigmoid table at twice the argument) by an integer multiply,
    or for scales finer than 2^-12 by a multiply by 3 and a rounding right shift.
    """
    left_shift = 12 + input_scale_power
    multiplier, right_shift = (3 << left_shift, 0) if left_shift >= 0 else (3, -left_shift)
    rounding = (1 << (right_shift - 1)) if right_shift > 0 else 0
    v = (np.asarray(x, np.int64) * multiplier + rounding) >> right_shift
    value = _table_interpolate(np.abs(v), 8)
    value = np.where(v >= 0, value - (1 << 23) + (1 << 7), -value + (1 << 23) + (1 << 7) - 1)
    return (value >> 8).astype(np.int16)


# ---- int8 (8x8->16) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Requant:
    """An integer rescale: ``clamp(zero_point + MBQM(x, multiplier, shift), low, high)``."""

    multiplier: int
    shift: int
    zero_point: int = 0
    low: int = INT16_MIN
    high: int = INT16_MAX

    @classmethod
    def of(cls, real: float, zero_point: int = 0, dtype: DType = DType.INT16) -> Requant:
        info = np.iinfo(dtype.numpy)
        return cls(*quantize_multiplier(real), zero_point, int(info.min), int(info.max))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        scaled = multiply_by_quantized_multiplier(x, self.multiplier, self.shift)
        return np.clip(scaled + self.zero_point, self.low, self.high)


def _fc_requant(input_scale: float, weight_scale: float) -> Requant:
    """An FC's rescale to the gate scale 2^-12, computed as TFLite does (product in float32)."""
    product = float(np.float32(input_scale) * np.float32(weight_scale))
    return Requant.of(product / _GATE_INPUT_SCALE)


def _mul_requant(scale_a: float, scale_b: float, out: Tensor) -> Requant:
    """The rescale of an elementwise product of two symmetric tensors into ``out``."""
    assert out.quant is not None
    out_scale = float(np.float32(out.quant.scale[0]))
    return Requant.of(scale_a * scale_b / out_scale, out.quant.zero_point[0], out.dtype)


@dataclass(frozen=True)
class IntegerLstmParams:
    """What TFLite Micro's Prepare derives from the tensors' quantization for the int8 LSTM."""

    input_zero_point: int
    hidden_zero_point: int
    input_fc: dict[str, Requant]
    recurrent_fc: dict[str, Requant]
    forget_times_cell: Requant
    input_times_cell_gate: Requant
    hidden: Requant
    cell_scale_power: int
    cell_clip: int  # 0: no clipping

    @classmethod
    def of(cls, op: Op) -> IntegerLstmParams:
        check_supported(op)
        x, hidden, cell = (op.inputs[i] for i in (_X, _HIDDEN_STATE, _CELL_STATE))
        assert x is not None and hidden is not None and cell is not None
        assert x.quant is not None and hidden.quant is not None and cell.quant is not None
        input_fc, recurrent_fc = {}, {}
        for g in GATES:
            w, r = op.inputs[_W[g]], op.inputs[_R[g]]
            assert w is not None and w.quant is not None and r is not None and r.quant is not None
            input_fc[g] = _fc_requant(x.quant.scale[0], w.quant.scale[0])
            recurrent_fc[g] = _fc_requant(hidden.quant.scale[0], r.quant.scale[0])
        cell_scale = float(np.float32(cell.quant.scale[0]))
        cell_clip = float(np.float32(op.attrs.get("cell_clip", 0.0)))
        # TFLite Micro truncates the quantized clip toward zero after saturating it to int16.
        quantized_clip = int(min(max(cell_clip / cell_scale, INT16_MIN), INT16_MAX))
        return cls(
            input_zero_point=x.quant.zero_point[0],
            hidden_zero_point=hidden.quant.zero_point[0],
            input_fc=input_fc,
            recurrent_fc=recurrent_fc,
            forget_times_cell=_mul_requant(_GATE_OUTPUT_SCALE, cell_scale, cell),
            input_times_cell_gate=_mul_requant(_GATE_OUTPUT_SCALE, _GATE_OUTPUT_SCALE, cell),
            hidden=_mul_requant(_GATE_OUTPUT_SCALE, _GATE_OUTPUT_SCALE, hidden),
            cell_scale_power=round_half_away(math.log2(cell_scale)),
            cell_clip=quantized_clip if cell_clip > 0 else 0,
        )


def check_supported(op: Op) -> None:
    """Raise UnsupportedOpError unless TFLite Micro's int8 LSTM kernel can run ``op``."""
    problems = []
    if op.input(_W["i"]) is None or op.input(_R["i"]) is None:
        problems.append("uses CIFG (no input gate)")
    variants = {
        "peepholes": _PEEPHOLE.values(),
        "projection": (_PROJECTION_W, _PROJECTION_B),
        "layer normalization": _LAYER_NORM.values(),
    }
    for name, indices in variants.items():
        if any(op.input(i) is not None for i in indices):
            problems.append(f"uses {name}")
    expected = {_X: DType.INT8, _HIDDEN_STATE: DType.INT8, _CELL_STATE: DType.INT16}
    expected |= {_W[g]: DType.INT8 for g in GATES} | {_R[g]: DType.INT8 for g in GATES}
    expected |= {_BIAS[g]: DType.INT32 for g in GATES}
    for index, dtype in expected.items():
        t = op.input(index)
        if t is None:
            if index not in (_W["i"], _R["i"], _BIAS["i"]):  # absent with CIFG, reported above
                problems.append(f"has no input {index}")
            continue
        if t.dtype is not dtype or t.quant is None:
            problems.append(f"input {index} ({t.name}) is {t.dtype}, not quantized {dtype}")
        elif not t.quant.per_tensor:
            problems.append(f"input {index} ({t.name}) is quantized per channel")
    activation = op.attrs.get("activation", "tanh")
    if activation != "tanh":
        problems.append(f"has cell activation {activation!r} (int8 supports tanh only)")
    if problems:
        raise UnsupportedOpError(
            f"op {op.name} (int8 lstm) {'; '.join(problems)}. memfit runs int8 LSTMs as "
            "TFLite Micro does: int8 activations and weights (per tensor), int16 cell state, "
            "int32 biases, no CIFG, peepholes, projection or layer norm. Re-quantize the "
            "model that way."
        )


@register("lstm", quantized=True)
def lstm_int8(op: Op, *inputs: np.ndarray | None) -> np.ndarray:
    """int8 UNIDIRECTIONAL_SEQUENCE_LSTM, bit-exact with TFLite Micro, from a zero state."""
    p = IntegerLstmParams.of(op)
    arg = _Inputs(op, inputs)
    time_major = op.attrs.get("time_major", False)
    xs = _time_major(arg.required(_X), time_major).astype(np.int64) - p.input_zero_point
    steps, batch = xs.shape[:2]
    n_cell = arg.required(_W["f"]).shape[0]

    # FC(input) + bias, requantized to int16, for all steps at once: it needs no state.
    from_input = {
        g: p.input_fc[g](
            wrap32(xs @ arg.required(_W[g]).astype(np.int64).T + arg.required(_BIAS[g]))
        )
        for g in GATES
    }
    recurrent = {g: arg.required(_R[g]).astype(np.int64).T for g in GATES}

    hidden = np.full((batch, n_cell), p.hidden_zero_point, np.int64)
    cell = np.zeros((batch, n_cell), np.int64)
    out = np.empty((steps, batch, n_cell), np.int8)

    def gate(g: str, t: int) -> np.ndarray:
        from_hidden = p.recurrent_fc[g](wrap32((hidden - p.hidden_zero_point) @ recurrent[g]))
        pre = np.clip(from_input[g][t] + from_hidden, INT16_MIN, INT16_MAX)
        return (tanh_int16(pre, -12) if g == "c" else sigmoid_int16(pre)).astype(np.int64)

    for t in range(steps):
        forget, inp, cell_gate = gate("f", t), gate("i", t), gate("c", t)
        cell = np.clip(
            p.forget_times_cell(forget * cell) + p.input_times_cell_gate(inp * cell_gate),
            INT16_MIN,
            INT16_MAX,
        )
        if p.cell_clip:
            cell = np.clip(cell, -p.cell_clip, p.cell_clip)
        cell_activation = tanh_int16(cell, p.cell_scale_power).astype(np.int64)
        hidden = p.hidden(cell_activation * gate("o", t))
        out[t] = hidden
    return _from_time_major(out, time_major)
