"""What each C runtime kernel needs from an IR op, computed the way the NumPy kernels compute it.

``memfit/codegen/runtime/memfit_runtime.h`` is the contract; this module is its Python side:

- ``kernel_name(op, in_place)``: the C function that runs ``op``.
- One dataclass per parameter struct of the header (``Conv`` is ``mf_conv``, ``Requant`` is
  ``mf_requant_s8``, ...), fields in the struct's order, built from an op by the function of
  the same purpose (``conv(op)``, ``requant(op)``, ...). ``initializer(params, array)`` writes
  the C initializer; ``array(field, data)`` must return the name of a constant array holding
  ``data`` (the int8 requantization's per-channel multipliers and shifts).
- ``packed_conv_weights(op)``: the weights float conv2d / partial_conv2d take (packed panels).
- ``lstm_f32(op)`` / ``lstm_s8(op)``: the LSTM's parameters (its weights go by pointer, in
  ``LSTM_WEIGHTS`` order); ``hybrid_weights_scale(op)``: a hybrid conv2d's weight scale.
- ``workspace_bytes(op)``: the exact scratch bytes the op's kernel needs (0 for most).

int8 parameters come from the same derivations as ``memfit.runtime.kernels.int8`` (TFLite
Micro's Prepare: ``QuantizeMultiplier`` in ``fixedpoint``), so the C kernels, given them, are
bit-exact with the NumPy kernels; the tests check every kernel against them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from memfit.errors import InternalError, UnsupportedOpError
from memfit.ir.core import Op, Tensor
from memfit.ir.dtypes import DType
from memfit.runtime.kernels import fixedpoint as fp
from memfit.runtime.kernels import is_hybrid, is_quantized
from memfit.runtime.kernels import lstm as lstm_kernel
from memfit.runtime.kernels.int8 import (
    _ADD_LEFT_SHIFT,
    _SCALED_DIFF_INTEGER_BITS,
    _channel_multipliers,
    _quant,
    _quantize_real,
    _scale,
    _sigmoid_input,
    _zero_point,
    activation_range,
)

F32_MR = 8
"""Output pixels per float GEMM tile (``MF_F32_MR``): the im2col panel's width."""
F32_NR = 32
"""Output channels per float GEMM tile (``MF_F32_NR``): the packed weight panels' width."""
S8_MR = 4
"""Output pixels per int8 GEMM tile (``MF_S8_MR``): int16 im2col rows in the workspace."""

MF_FN_NONE, MF_FN_TANH, MF_FN_SIGMOID = 0, 1, 2


# ---- parameter structs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Struct:
    """A C parameter struct: ``C_TYPE`` and its fields, in order."""

    C_TYPE: ClassVar[str] = ""


@dataclass(frozen=True)
class Conv(Struct):
    C_TYPE: ClassVar[str] = "mf_conv"
    kh: int
    kw: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_top: int
    pad_left: int
    groups: int = 1
    depth_multiplier: int = 1


@dataclass(frozen=True)
class Pool(Struct):
    C_TYPE: ClassVar[str] = "mf_pool"
    kh: int
    kw: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    count_include_pad: int = 0


@dataclass(frozen=True)
class RangeS8(Struct):
    C_TYPE: ClassVar[str] = "mf_range_s8"
    min: int = -128
    max: int = 127


@dataclass(frozen=True)
class RangeF32(Struct):
    C_TYPE: ClassVar[str] = "mf_range_f32"
    min: float = -math.inf
    max: float = math.inf
    fn: int = MF_FN_NONE


@dataclass(frozen=True, eq=False)
class Requant(Struct):
    C_TYPE: ClassVar[str] = "mf_requant_s8"
    input_offset: int
    weights_offset: int
    output_offset: int
    act: RangeS8
    multiplier: np.ndarray  # int32, one per output channel
    shift: np.ndarray  # int32, one per output channel


@dataclass(frozen=True)
class AddS8(Struct):
    C_TYPE: ClassVar[str] = "mf_add_s8_params"
    a_offset: int
    b_offset: int
    left_shift: int
    a_multiplier: int
    a_shift: int
    b_multiplier: int
    b_shift: int
    output_multiplier: int
    output_shift: int
    output_offset: int
    act: RangeS8


@dataclass(frozen=True)
class MulS8(Struct):
    C_TYPE: ClassVar[str] = "mf_mul_s8_params"
    a_offset: int
    b_offset: int
    output_offset: int
    multiplier: int
    shift: int
    act: RangeS8


@dataclass(frozen=True)
class RequantizeS8(Struct):
    C_TYPE: ClassVar[str] = "mf_requantize_s8_params"
    input_offset: int
    output_offset: int
    multiplier: int
    shift: int
    act: RangeS8


@dataclass(frozen=True)
class LeakyReluS8(Struct):
    C_TYPE: ClassVar[str] = "mf_leaky_relu_s8_params"
    input_offset: int
    output_offset: int
    identity_multiplier: int
    identity_shift: int
    alpha_multiplier: int
    alpha_shift: int


@dataclass(frozen=True)
class SigmoidS8(Struct):
    C_TYPE: ClassVar[str] = "mf_sigmoid_s8_params"
    input_offset: int
    multiplier: int
    shift: int
    radius: int


@dataclass(frozen=True)
class HardSwishS8(Struct):
    C_TYPE: ClassVar[str] = "mf_hard_swish_s8_params"
    input_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    reluish_multiplier: int
    reluish_shift: int


@dataclass(frozen=True)
class SoftmaxS8(Struct):
    C_TYPE: ClassVar[str] = "mf_softmax_s8_params"
    multiplier: int
    left_shift: int
    diff_min: int


@dataclass(frozen=True)
class LstmF32(Struct):
    C_TYPE: ClassVar[str] = "mf_lstm_f32_params"
    time_major: int
    n_cell: int
    cell_clip: float
    proj_clip: float
    act: RangeF32


@dataclass(frozen=True, eq=False)
class LstmS8(Struct):
    C_TYPE: ClassVar[str] = "mf_lstm_s8_params"
    time_major: int
    n_cell: int
    input_offset: int
    hidden_zero_point: int
    input_multiplier: np.ndarray  # int32, one per gate (i, f, c, o)
    input_shift: np.ndarray
    recurrent_multiplier: np.ndarray
    recurrent_shift: np.ndarray
    forget_multiplier: int
    forget_shift: int
    input_gate_multiplier: int
    input_gate_shift: int
    cell_zero_point: int
    hidden_multiplier: int
    hidden_shift: int
    cell_scale_power: int
    cell_clip: int


@dataclass(frozen=True)
class MeanS8(Struct):
    C_TYPE: ClassVar[str] = "mf_mean_s8_params"
    input_offset: int
    output_offset: int
    multiplier: int
    shift: int


def initializer(params: Struct, array: Callable[[str, np.ndarray], str]) -> str:
    """The C initializer of ``params``; ``array(field, data)`` names a constant array."""
    values = []
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        if isinstance(value, Struct):
            values.append(initializer(value, array))
        elif isinstance(value, np.ndarray):
            values.append(array(field.name, value))
        elif isinstance(value, float):
            values.append(c_float(value))
        else:
            values.append(str(int(value)))
    return "{" + ", ".join(values) + "}"


def c_float(value: float) -> str:
    """A C float literal that parses back to the float32 ``value`` exactly."""
    if math.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    if math.isnan(value):
        raise InternalError("a NaN kernel parameter")
    return f"{np.float32(value)!r}".removeprefix("np.float32(").removesuffix(")") + "f"


# ---- which kernel --------------------------------------------------------------------------

_DATA_MOVEMENT = {
    "concat": "mf_concat",
    "reshape": "mf_reshape",
    "transpose": "mf_transpose",
    "pad": "mf_pad",
    "strided_slice": "mf_strided_slice",
    "identity": "mf_copy",
    "dropout": "mf_copy",
}
_FLOAT_ONLY = {
    "relu": "mf_clamp_f32",
    "relu6": "mf_clamp_f32",
    "relu_n1_to_1": "mf_clamp_f32",
    "clamp": "mf_clamp_f32",
    "lrn": "mf_lrn_f32",
    "batch_norm": "mf_batch_norm_f32",
    "dequantize": "mf_dequantize_s8_f32",
}
_INT8_RESCALES = ("relu", "relu6", "relu_n1_to_1", "clamp", "quantize")
_BOTH = (
    "conv2d",
    "fully_connected",
    "partial_conv2d",
    "partial_fully_connected",
    "accumulator_output",
    "partial_depthwise_conv2d",
    "partial_sum_pool",
    "accumulator_average",
    "mean",
    "reduce_max",
    "add",
    "sub",
    "mul",
    "maximum",
    "minimum",
    "logistic",
    "tanh",
    "hard_swish",
    "leaky_relu",
    "softmax",
    "lstm",
)


def kernel_name(op: Op, in_place: bool = False) -> str:
    """The runtime function that runs ``op`` (``in_place``: the planner runs it in place).

    Depthwise convolution and pooling have separate in-place kernels (channel by channel), and
    so has a pointwise conv2d (pixel block by pixel block); elementwise kernels, partial layers
    and accumulator outputs run in place as they are, and data movement never does.
    """
    if op.kind in _DATA_MOVEMENT:
        return _DATA_MOVEMENT[op.kind]
    quantized = is_quantized(op)
    if is_hybrid(op):
        if op.kind == "conv2d":
            return "mf_conv2d_hybrid_f32"
        raise _unsupported(op, "float activations with int8 weights (a hybrid layer)")
    if op.kind in ("depthwise_conv2d", "max_pool2d", "avg_pool2d") or (
        op.kind == "conv2d" and in_place
    ):
        return f"mf_{op.kind}{'_inplace' if in_place else ''}_{'s8' if quantized else 'f32'}"
    if quantized:
        if op.kind == "dequantize":
            return "mf_dequantize_s8_f32"
        _require_int8(op)
        if op.kind in _INT8_RESCALES:
            return "mf_requantize_s8"
        if op.kind == "softmax" and op.output.dtype is DType.INT16:
            return "mf_softmax_s8_s16"
        if op.kind in _BOTH:
            return f"mf_{op.kind}_s8"
        raise _unsupported(op, "int8")
    if op.kind == "quantize":
        return "mf_quantize_f32_s8"
    if op.kind in _FLOAT_ONLY:
        return _FLOAT_ONLY[op.kind]
    if op.kind in (*_BOTH, "div"):
        return f"mf_{op.kind}_f32"
    raise _unsupported(op, "float32")


def _require_int8(op: Op) -> None:
    for t in (op.inputs[0], op.output):
        if t is not None and t.dtype not in (DType.INT8, DType.INT16, DType.INT32):
            raise _unsupported(op, str(t.dtype))


def _unsupported(op: Op, what: str) -> UnsupportedOpError:
    return UnsupportedOpError(
        f"op {op.name} ({op.kind}) on {what} has no C kernel in memfit's runtime; run it "
        "with the NumPy executor (memfit run) or convert the model to float32 or full int8"
    )


# ---- geometry and float parameters ---------------------------------------------------------


def conv(op: Op) -> Conv:
    """``mf_conv`` of conv2d, depthwise_conv2d and partial_conv2d."""
    weights = _constant(op, 1)
    (sh, sw), (dh, dw) = op.attrs["strides"], op.attrs["dilations"]
    top, left, _, _ = op.attrs["pads"]
    depthwise = op.kind == "depthwise_conv2d"
    return Conv(
        kh=weights.shape[1],
        kw=weights.shape[2],
        stride_h=sh,
        stride_w=sw,
        dilation_h=dh,
        dilation_w=dw,
        pad_top=top,
        pad_left=left,
        groups=1 if depthwise else op.attrs.get("groups", 1),
        depth_multiplier=op.attrs.get("depth_multiplier", 1) if depthwise else 1,
    )


def pool(op: Op) -> Pool:
    """``mf_pool`` of max_pool2d and avg_pool2d."""
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["strides"]
    top, left, _, _ = op.attrs["pads"]
    return Pool(kh, kw, sh, sw, top, left, int(op.attrs.get("count_include_pad", False)))


def float_activation(op: Op, default: str = "none") -> RangeF32:
    """``mf_range_f32`` of a float op's fused activation (``default`` when it has none)."""
    activation = op.attrs.get("activation", default)
    ranges = {
        "none": RangeF32(),
        "relu": RangeF32(0.0),
        "relu6": RangeF32(0.0, 6.0),
        "relu_n1_to_1": RangeF32(-1.0, 1.0),
        "tanh": RangeF32(fn=MF_FN_TANH),
        "sigmoid": RangeF32(fn=MF_FN_SIGMOID),
    }
    if activation not in ranges:
        raise InternalError(f"op {op.name}: unknown fused activation {activation!r}")
    return ranges[activation]


def clamp_bounds(op: Op) -> tuple[float, float]:
    """(min, max) of mf_clamp_f32 for float relu, relu6, relu_n1_to_1 and clamp."""
    bounds = {"relu": (0.0, math.inf), "relu6": (0.0, 6.0), "relu_n1_to_1": (-1.0, 1.0)}
    if op.kind == "clamp":
        return float(op.attrs["min"]), float(op.attrs["max"])
    return bounds[op.kind]


def packed_conv_weights(op: Op) -> np.ndarray:
    """Float conv2d / partial_conv2d weights as ``mf_conv2d_f32`` reads them.

    Per group g, the group's output channels in panels of ``F32_NR``: panel p holds
    w[g*og + p*NR + j, i, j', c] at [k][j] with k = (i*KW + j')*cin + c; channels past the
    group's end are 0. Shape [groups * ceil(og/NR) * K * NR].
    """
    w = _constant(op, 1).data
    assert w is not None
    groups = op.attrs.get("groups", 1)
    out_channels, kh, kw, cin = w.shape
    og, depth = out_channels // groups, kh * kw * cin
    panels = -(-og // F32_NR)
    packed = np.zeros((groups, panels * F32_NR, depth), np.float32)
    packed[:, :og] = w.reshape(groups, og, depth)
    packed = packed.reshape(groups, panels, F32_NR, depth).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(packed).reshape(-1)


def workspace_bytes(op: Op) -> int:
    """Scratch bytes the op's kernel needs while it runs (not counting the in-place temporary
    of depthwise in place, which ``memfit.planning.scratch`` plans).

    conv2d and partial_conv2d: one im2col panel, float ``F32_MR`` x K floats or int8
    ``S8_MR`` x K int16 values, with K = KH * KW * (input channels / groups); a hybrid conv2d
    also holds one batch item of its input quantized to int8.

    lstm: see ``lstm_workspace_bytes``.
    """
    if op.attrs.get("primitive") is not None:  # chosen by memfit.selection
        from memfit.selection.lowering import workspace_bytes as primitive_workspace

        return primitive_workspace(op)
    if op.kind == "lstm":
        return lstm_workspace_bytes(op)
    if op.kind not in ("conv2d", "partial_conv2d"):
        return 0
    x, w = op.inputs[0], _constant(op, 1)
    assert x is not None
    _, kh, kw, cin_group = w.shape
    depth = kh * kw * cin_group
    if is_hybrid(op):
        _, height, width, channels = x.shape
        return S8_MR * depth * 2 + height * width * channels
    if is_quantized(op):
        return S8_MR * depth * 2
    return F32_MR * depth * 4


def _constant(op: Op, index: int) -> Tensor:
    t = op.input(index)
    if t is None or t.data is None:
        raise UnsupportedOpError(
            f"op {op.name} ({op.kind}): input {index} must be a constant for generated C"
        )
    return t


def hybrid_weights_scale(op: Op) -> float:
    """The float32 scale of a hybrid conv2d's int8 weights (symmetric, per tensor)."""
    weights = _quant(_constant(op, 1))
    if not weights.per_tensor or weights.zero_point[0] != 0:
        raise UnsupportedOpError(
            f"op {op.name} (hybrid conv2d) has int8 weights quantized per channel or with a "
            "zero point; memfit runs hybrid convolutions with symmetric per-tensor weights "
            "only. Convert the model to float32 or full int8."
        )
    return float(np.float32(weights.scale[0]))


# ---- LSTM ------------------------------------------------------------------------------------

LSTM_WEIGHTS = {
    "input_weights": lstm_kernel._W,
    "recurrent_weights": lstm_kernel._R,
    "peephole": lstm_kernel._PEEPHOLE,
    "layer_norm": lstm_kernel._LAYER_NORM,
    "bias": lstm_kernel._BIAS,
}
"""The per-gate pointer arrays of ``mf_lstm_weights_f32`` / ``_s8``: field -> gate -> the
op's input index (int8 has input_weights, recurrent_weights and bias only)."""
LSTM_PROJECTION = {
    "projection": lstm_kernel._PROJECTION_W,
    "projection_bias": lstm_kernel._PROJECTION_B,
}


def _lstm_cells(op: Op) -> int:
    return _constant(op, lstm_kernel._W["f"]).shape[0]


def lstm_workspace_bytes(op: Op) -> int:
    """What ``mf_lstm_f32`` / ``mf_lstm_s8`` keep in their workspace (see mf_lstm.c).

    The gates are computed a block of cells at a time on the stack and the previous hidden
    state is read from the output, so the workspace holds at most:

    - the cell state (n_cell float or int16), only while another step follows (sequences of
      more than one step), and only when it does not fit in the next step's slot of the output
      (n_output elements of the output's type): int8 always, float only when a projection
      makes n_output < n_cell;
    - for float layer normalization, which needs a gate of every cell at once, two rows of
      n_cell floats; for a float projection without it, one (the unprojected hidden state).
    """
    n_cell = _lstm_cells(op)
    out = op.output
    steps = out.shape[0] if op.attrs.get("time_major", False) else out.shape[1]
    cell_bytes = n_cell * (2 if is_quantized(op) else 4)
    slot_bytes = out.shape[-1] * out.dtype.itemsize
    cell = cell_bytes if steps > 1 and slot_bytes < cell_bytes else 0
    if is_quantized(op):
        return cell
    if op.input(lstm_kernel._LAYER_NORM["f"]) is not None:
        rows = 2
    elif op.input(lstm_kernel._PROJECTION_W) is not None:
        rows = 1
    else:
        rows = 0
    return rows * n_cell * 4 + cell


def lstm_f32(op: Op) -> LstmF32:
    """``mf_lstm_f32_params``: the float LSTM's layout, clipping and cell activation."""
    for index, t in enumerate(op.inputs[1:], start=1):
        state = index in (lstm_kernel._HIDDEN_STATE, lstm_kernel._CELL_STATE)
        if t is not None and not state and t.dtype is not DType.FLOAT32:
            raise _unsupported(op, f"{t.dtype} weights (input {index})")
    return LstmF32(
        time_major=int(op.attrs.get("time_major", False)),
        n_cell=_lstm_cells(op),
        cell_clip=float(op.attrs.get("cell_clip", 0.0)),
        proj_clip=float(op.attrs.get("proj_clip", 0.0)),
        act=float_activation(op, default="tanh"),
    )


def lstm_s8(op: Op) -> LstmS8:
    """``mf_lstm_s8_params``, from what the NumPy kernel derives (TFLite Micro's Prepare)."""
    p = lstm_kernel.IntegerLstmParams.of(op)  # refuses what TFLite Micro cannot run
    gates = lstm_kernel.GATES

    def column(requants: dict[str, lstm_kernel.Requant], field: str) -> np.ndarray:
        return np.asarray([getattr(requants[g], field) for g in gates], np.int32)

    return LstmS8(
        time_major=int(op.attrs.get("time_major", False)),
        n_cell=_lstm_cells(op),
        input_offset=-p.input_zero_point,
        hidden_zero_point=p.hidden_zero_point,
        input_multiplier=column(p.input_fc, "multiplier"),
        input_shift=column(p.input_fc, "shift"),
        recurrent_multiplier=column(p.recurrent_fc, "multiplier"),
        recurrent_shift=column(p.recurrent_fc, "shift"),
        forget_multiplier=p.forget_times_cell.multiplier,
        forget_shift=p.forget_times_cell.shift,
        input_gate_multiplier=p.input_times_cell_gate.multiplier,
        input_gate_shift=p.input_times_cell_gate.shift,
        cell_zero_point=p.forget_times_cell.zero_point,
        hidden_multiplier=p.hidden.multiplier,
        hidden_shift=p.hidden.shift,
        cell_scale_power=p.cell_scale_power,
        cell_clip=p.cell_clip,
    )


# ---- int8 parameters -------------------------------------------------------------------------


def range_s8(op: Op) -> RangeS8:
    """``mf_range_s8`` of an int8 op's fused activation (pools; the structs carry their own)."""
    return RangeS8(*activation_range(op.attrs.get("activation", "none"), op.output))


def requant(op: Op) -> Requant:
    """``mf_requant_s8`` of int8 conv2d, depthwise_conv2d, fully_connected, accumulator_output."""
    out = op.output
    channels = out.shape[-1]
    weights_offset = 0
    if op.kind == "accumulator_output":
        acc_quant = _quant(op.inputs[0])
        scales = acc_quant.scale if len(acc_quant.scale) > 1 else acc_quant.scale * channels
        pairs = [fp.quantize_multiplier(s / _scale(out)) for s in scales]
        multipliers = np.asarray([m for m, _ in pairs])
        shifts = np.asarray([s for _, s in pairs])
        input_offset = 0
    else:
        xt, wt = op.inputs[0], _constant(op, 1)
        wq = _quant(wt)
        input_offset = -_zero_point(xt)
        if op.kind == "fully_connected" and wq.per_tensor:
            # Per tensor, TFLite multiplies the two scales in float32 before widening.
            product = float(np.float32(_scale(xt)) * np.float32(wq.scale[0]))
            multiplier, shift = fp.quantize_multiplier(product / _scale(out))
            multipliers, shifts = np.full(channels, multiplier), np.full(channels, shift)
            weights_offset = -wq.zero_point[0]
        else:
            multipliers, shifts = _channel_multipliers(_scale(xt), wq, _scale(out), channels)
    return Requant(
        input_offset=input_offset,
        weights_offset=weights_offset,
        output_offset=_zero_point(out),
        act=range_s8(op),
        multiplier=np.asarray(multipliers, np.int32),
        shift=np.asarray(shifts, np.int32),
    )


def partial_offsets(op: Op) -> tuple[int, int]:
    """(input_offset, weights_offset) of int8 partial_conv2d / partial_fully_connected /
    partial_depthwise_conv2d."""
    weights = _quant(_constant(op, 1))
    weights_offset = -weights.zero_point[0] if op.kind == "partial_fully_connected" else 0
    return -_zero_point(op.inputs[0]), weights_offset if weights.per_tensor else 0


def add_s8(op: Op) -> AddS8:
    """``mf_add_s8_params`` of int8 add and sub."""
    at, bt, out = op.inputs[0], op.inputs[1], op.output
    twice_max = 2.0 * max(_scale(at), _scale(bt))
    reals = (
        _scale(at) / twice_max,
        _scale(bt) / twice_max,
        twice_max / ((1 << _ADD_LEFT_SHIFT) * _scale(out)),
    )
    (m1, s1), (m2, s2), (mo, so) = (fp.quantize_multiplier(r) for r in reals)
    return AddS8(
        a_offset=-_zero_point(at),
        b_offset=-_zero_point(bt),
        left_shift=_ADD_LEFT_SHIFT,
        a_multiplier=m1,
        a_shift=s1,
        b_multiplier=m2,
        b_shift=s2,
        output_multiplier=mo,
        output_shift=so,
        output_offset=_zero_point(out),
        act=range_s8(op),
    )


def mul_s8(op: Op) -> MulS8:
    at, bt, out = op.inputs[0], op.inputs[1], op.output
    multiplier, shift = fp.quantize_multiplier(_scale(at) * _scale(bt) / _scale(out))
    return MulS8(
        -_zero_point(at), -_zero_point(bt), _zero_point(out), multiplier, shift, range_s8(op)
    )


def requantize_s8(op: Op) -> RequantizeS8:
    """``mf_requantize_s8_params`` of int8 quantize (requantization), relu, relu_n1_to_1,
    relu6 (TFLite Micro: no rescale) and clamp (raw int8 values)."""
    xt, out = op.inputs[0], op.output
    assert xt is not None
    identity = (1 << 30, 1)  # MBQM(x, 2^30, 1) == x
    if op.kind == "quantize":
        scale = fp.quantize_multiplier(_scale(xt) / _scale(out))
        return RequantizeS8(-_zero_point(xt), _zero_point(out), *scale, RangeS8())
    if op.kind == "relu6":
        six = min(max(_quantize_real(6.0, xt), -128), 127)
        return RequantizeS8(0, 0, *identity, RangeS8(_zero_point(xt), six))
    if op.kind == "clamp":
        low, high = math.ceil(op.attrs["min"]), math.floor(op.attrs["max"])
        return RequantizeS8(0, 0, *identity, RangeS8(max(low, -128), min(high, 127)))
    low_real, high_real = {"relu": (0.0, None), "relu_n1_to_1": (-1.0, 1.0)}[op.kind]
    scale = fp.quantize_multiplier(_scale(xt) / _scale(out))
    low = max(-128, _quantize_real(low_real, out))
    high = 127 if high_real is None else min(127, _quantize_real(high_real, out))
    return RequantizeS8(-_zero_point(xt), _zero_point(out), *scale, RangeS8(low, high))


def leaky_relu_s8(op: Op) -> LeakyReluS8:
    xt, out = op.inputs[0], op.output
    alpha_real = float(
        np.float32(_scale(xt)) * np.float32(op.attrs["alpha"]) / np.float32(_scale(out))
    )
    identity_real = float(np.float32(_scale(xt)) / np.float32(_scale(out)))
    return LeakyReluS8(
        -_zero_point(xt),
        _zero_point(out),
        *fp.quantize_multiplier(identity_real),
        *fp.quantize_multiplier(alpha_real),
    )


def sigmoid_s8(op: Op) -> SigmoidS8:
    """``mf_sigmoid_s8_params`` of int8 logistic and tanh."""
    xt = op.inputs[0]
    assert xt is not None
    multiplier, shift, radius = _sigmoid_input(xt)
    return SigmoidS8(-_zero_point(xt), multiplier, shift, radius)


def hard_swish_s8(op: Op) -> HardSwishS8:
    xt, out = op.inputs[0], op.output
    hires_scale = np.float32(1.0 / 128.0) * np.float32(_scale(xt))
    output_m32, output_exponent = fp.quantize_multiplier(
        float(hires_scale / np.float32(_scale(out)))
    )
    reluish_m32, reluish_exponent = fp.quantize_multiplier(
        float(hires_scale / (np.float32(3.0) / np.float32(32768.0)))
    )
    return HardSwishS8(
        input_offset=-_zero_point(xt),
        output_offset=_zero_point(out),
        output_multiplier=fp.downscale_multiplier_to_int16(output_m32),
        output_shift=output_exponent,
        reluish_multiplier=fp.downscale_multiplier_to_int16(reluish_m32),
        reluish_shift=reluish_exponent,
    )


def softmax_s8(op: Op) -> SoftmaxS8:
    xt = op.inputs[0]
    beta_real = min(
        op.attrs.get("beta", 1.0) * _scale(xt) * (1 << (31 - _SCALED_DIFF_INTEGER_BITS)),
        (1 << 31) - 1.0,
    )
    multiplier, left_shift = fp.quantize_multiplier(beta_real)
    return SoftmaxS8(
        multiplier, left_shift, -fp.input_radius(_SCALED_DIFF_INTEGER_BITS, left_shift)
    )


def mean_s8(op: Op) -> MeanS8:
    """``mf_mean_s8_params``: 1/count folded into the multiplier, as TFLite Micro does."""
    xt, out = op.inputs[0], op.output
    assert xt is not None
    axes = {a % len(xt.shape) for a in op.attrs["axes"]}
    count = math.prod(xt.shape[a] for a in axes)
    multiplier, shift = fp.quantize_multiplier(_scale(xt) / _scale(out))
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    return MeanS8(-_zero_point(xt), _zero_point(out), (multiplier << extra) // count, shift - extra)


def quantization(tensor: Tensor) -> tuple[float, int]:
    """(scale, zero point) of mf_quantize_f32_s8's output / mf_dequantize_s8_f32's input."""
    return float(np.float32(_scale(tensor))), _zero_point(tensor)


def pad_value(op: Op) -> np.ndarray:
    """The one-element array mf_pad fills with: the real value, quantized for int8 outputs."""
    value = op.attrs.get("value", 0.0)
    out = op.output
    if out.quant is not None and out.dtype is not DType.FLOAT32:
        value = out.quant.zero_point[0] + round(value / out.quant.scale[0])
    return np.asarray([value], out.dtype.numpy)


def element_size(op: Op) -> int:
    """Bytes per element of a data-movement op's output."""
    return op.output.dtype.itemsize
