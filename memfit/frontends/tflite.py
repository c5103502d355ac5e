"""TFLite flatbuffer -> IR graph.

Reading happens in two steps. ``_decode`` copies everything memfit needs out of the flatbuffer
into plain records (tensors with their constant data, ops with their options as a dict); a
corrupt or truncated file fails there and only there, as a ModelFormatError. ``_Converter`` then
maps each TFLite operator to a canonical op kind of ``memfit.ir.ops``, infers every output shape
and checks it against the shape the file declares.

Conventions:

- Tensors with data in their buffer are constants; all others are activations. Parameters that
  TFLite passes as constant tensors (reshape's shape, pad's paddings, mean's axes, ...) become
  attributes and are not inputs of the IR op.
- A variable tensor (the state of an LSTM) becomes a constant holding its initial value: its
  buffer's data, or the value TFLite Micro resets it to (the zero point, real value 0). memfit
  runs one inference from that state.
- A dynamic batch dimension (-1 in the first entry of an input's shape signature) takes the
  file's default (its ``shape``), as a TFLite interpreter does without a resize. Any other
  unknown dimension must be fixed with ``input_shapes`` (``--input-shape NAME=D1,D2,...``).
"""

from __future__ import annotations

import inspect
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

from memfit.errors import (
    MemfitError,
    ModelFormatError,
    ShapeError,
    UnsupportedModelError,
    UnsupportedOpError,
    UsageError,
)
from memfit.frontends import refuse_unsupported
from memfit.ir.core import Graph, Op, Quantization, Shape, Tensor
from memfit.ir.dtypes import DType
from memfit.ir.ops import infer_shapes
from memfit.runtime.kernels import QUANTIZED_KERNELS
from memfit.runtime.kernels.lstm import check_supported as check_lstm_supported

_DTYPES = {
    tflite.TensorType.FLOAT32: DType.FLOAT32,
    tflite.TensorType.INT8: DType.INT8,
    tflite.TensorType.UINT8: DType.UINT8,
    tflite.TensorType.INT16: DType.INT16,
    tflite.TensorType.INT32: DType.INT32,
    tflite.TensorType.INT64: DType.INT64,
    tflite.TensorType.BOOL: DType.BOOL,
}
_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_OPTION_NAMES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127
_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}
_SAME, _VALID = tflite.Padding.SAME, tflite.Padding.VALID

# The exceptions the flatbuffers runtime raises when it reads past the end of the buffer or
# follows a garbage offset.
_FLATBUFFER_ERRORS = (struct.error, IndexError, ValueError, OverflowError, MemoryError)


# ---- step 1: decode the flatbuffer into plain records ---------------------------------------


@dataclass
class _TensorRecord:
    index: int
    name: str
    type_code: int
    shape: tuple[int, ...]
    signature: tuple[int, ...] | None
    quant: Quantization | None
    data: np.ndarray | None  # raw bytes (uint8) of a constant
    is_variable: bool
    sparse: bool


@dataclass
class _OpRecord:
    index: int
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    intermediates: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class _ModelRecord:
    tensors: list[_TensorRecord]
    ops: list[_OpRecord]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _ints(value: Any) -> tuple[int, ...]:
    """A flatbuffers ``...AsNumpy()`` result (an array, or 0 when the vector is absent)."""
    return tuple(int(v) for v in value) if isinstance(value, np.ndarray) else ()


def _accessors(cls: type) -> list[str]:
    """The scalar and vector getters of a generated options class (methods without arguments)."""
    return [
        name
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and member.__code__.co_argcount == 1 and name != "Init"
    ]


def _read_options(op: Any) -> dict[str, Any]:
    type_code = op.BuiltinOptionsType()
    if type_code == 0:
        return {}
    cls = getattr(tflite, _OPTION_NAMES.get(type_code, ""), None)
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return {}
    options = cls()
    options.Init(table.Bytes, table.Pos)
    return {name: getattr(options, name)() for name in _accessors(cls)}


def _read_quant(t: Any) -> Quantization | None:
    q = t.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    scales = tuple(float(s) for s in q.ScaleAsNumpy())
    zero_points = _ints(q.ZeroPointAsNumpy()) or (0,)
    if len(zero_points) == 1 and len(scales) > 1:
        zero_points *= len(scales)
    if len(zero_points) != len(scales):
        raise ModelFormatError(
            f"tensor {t.Name().decode(errors='replace')!r} has {len(scales)} scales but "
            f"{len(zero_points)} zero points; the file is corrupt, re-export it"
        )
    return Quantization(scales, zero_points, q.QuantizedDimension() if len(scales) > 1 else None)


def _read_buffer(raw: bytes, model: Any, index: int) -> np.ndarray | None:
    if index <= 0 or index >= model.BuffersLength():
        return None
    buffer = model.Buffers(index)
    if buffer.DataLength() > 0:
        return np.frombuffer(buffer.DataAsNumpy().tobytes(), np.uint8)
    if buffer.Offset() > 1:  # models over 2 GB keep their data after the flatbuffer
        start, size = buffer.Offset(), buffer.Size()
        if start + size > len(raw):
            raise ValueError("buffer beyond the end of the file")
        return np.frombuffer(raw[start : start + size], np.uint8)
    return None


def _opcode_name(model: Any, index: int) -> str:
    code = model.OperatorCodes(index)
    builtin = code.DeprecatedBuiltinCode()
    if builtin == _PLACEHOLDER_FOR_GREATER_OP_CODES or code.BuiltinCode() > builtin:
        builtin = code.BuiltinCode()
    name = BUILTIN_OPCODE2NAME.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        custom = code.CustomCode()
        return f"CUSTOM({custom.decode(errors='replace') if custom else '?'})"
    return name


def _decode(raw: bytes, path: Path) -> _ModelRecord:
    try:
        model = tflite.Model.GetRootAsModel(raw, 0)
        if model.SubgraphsLength() != 1:
            raise UnsupportedModelError(
                f"{path.name} has {model.SubgraphsLength()} subgraphs; memfit reads models with "
                "exactly one (no control flow such as WHILE, IF or CALL_ONCE). Convert the model "
                "without control flow (e.g. unroll loops) and try again."
            )
        sub = model.Subgraphs(0)
        tensors = []
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            name = t.Name().decode(errors="replace") if t.Name() else ""
            tensors.append(
                _TensorRecord(
                    index=i,
                    name=name or f"tensor_{i}",
                    type_code=t.Type(),
                    shape=_ints(t.ShapeAsNumpy()),
                    signature=_ints(t.ShapeSignatureAsNumpy())
                    if t.ShapeSignatureLength()
                    else None,
                    quant=_read_quant(t),
                    data=_read_buffer(raw, model, t.Buffer()),
                    is_variable=bool(t.IsVariable()),
                    sparse=t.Sparsity() is not None,
                )
            )
        ops = []
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            ops.append(
                _OpRecord(
                    index=i,
                    opcode=_opcode_name(model, op.OpcodeIndex()),
                    inputs=_ints(op.InputsAsNumpy()),
                    outputs=_ints(op.OutputsAsNumpy()),
                    intermediates=_ints(op.IntermediatesAsNumpy()),
                    options=_read_options(op),
                )
            )
        record = _ModelRecord(tensors, ops, _ints(sub.InputsAsNumpy()), _ints(sub.OutputsAsNumpy()))
    except _FLATBUFFER_ERRORS as exc:
        raise ModelFormatError(
            f"{path}: the TFLite flatbuffer is corrupt or truncated ({exc}); re-export the "
            "model from the converter or copy the file again"
        ) from exc
    n = len(record.tensors)
    for op in record.ops:
        for i in (*op.inputs, *op.outputs, *op.intermediates):
            if i >= n or i < -1:
                raise ModelFormatError(
                    f"{path}: operator #{op.index} ({op.opcode}) refers to tensor {i}, but the "
                    f"model has {n} tensors; the file is corrupt, re-export it"
                )
    for i in (*record.inputs, *record.outputs):
        if not 0 <= i < n:
            raise ModelFormatError(f"{path}: graph input/output {i} is not a tensor; re-export it")
    return record


# ---- step 2: records -> IR ------------------------------------------------------------------


class _Unsupported(Exception):
    """Raised by a mapper: the op (or this use of it) cannot be run by memfit."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class _Mapped:
    kind: str
    inputs: list[Tensor | None]
    attrs: dict[str, Any]
    shapes: list[Shape] | None = None  # for kinds whose output shape is not inferred


class _Converter:
    def __init__(
        self, record: _ModelRecord, name: str, input_shapes: Mapping[str, Sequence[int]] | None
    ) -> None:
        self.record = record
        self.graph = Graph(name)
        self.tensors: dict[int, Tensor] = {}
        self.input_shapes = {k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
        self.overridden = False

    # -- tensors --
    def rec(self, index: int) -> _TensorRecord:
        return self.record.tensors[index]

    def dtype(self, rec: _TensorRecord) -> DType:
        if rec.type_code == tflite.TensorType.FLOAT16 and rec.data is not None:
            return DType.FLOAT32  # float16 constants are widened at import (see constant())
        dtype = _DTYPES.get(rec.type_code)
        if dtype is None:
            type_name = _TYPE_NAMES.get(rec.type_code, str(rec.type_code))
            supported = ", ".join(sorted(str(d) for d in _DTYPES.values()))
            raise UnsupportedModelError(
                f"tensor {rec.name!r} has type {type_name}, which memfit does not support "
                f"(supported: {supported}, and float16 constants); convert the model with "
                "other types"
            )
        return dtype

    def constant(self, rec: _TensorRecord) -> Tensor:
        shape = self.static_shape(rec)
        if rec.sparse:
            raise _Unsupported(f"sparse tensor {rec.name!r}")
        if rec.data is None:  # a variable without initial data: TFLite Micro resets it to 0
            dtype = self.dtype(rec)
            zero = rec.quant.zero_point[0] if rec.quant is not None else 0
            data = np.full(shape, zero, dtype.numpy)
        else:
            dtype = self.dtype(rec)
            float16 = rec.type_code == tflite.TensorType.FLOAT16
            item = np.dtype(np.float16) if float16 else dtype.numpy
            if rec.data.size != math.prod(shape) * item.itemsize:
                raise ModelFormatError(
                    f"constant tensor {rec.name!r} has {rec.data.size} bytes, but its shape "
                    f"{list(shape)} and type need {math.prod(shape) * item.itemsize}; the file is "
                    "corrupt, re-export it"
                )
            data = rec.data.view(item).reshape(shape).astype(dtype.numpy)
        return self.graph.add_tensor(rec.name, shape, dtype, rec.quant, data)

    def tensor(self, index: int) -> Tensor | None:
        """The IR tensor for TFLite tensor ``index`` (None for -1, an absent optional input)."""
        if index < 0:
            return None
        if index not in self.tensors:
            rec = self.rec(index)
            if rec.data is None and not rec.is_variable:
                raise ModelFormatError(
                    f"tensor {rec.name!r} is read before any operator writes it and is not a "
                    "model input; the operators are out of order or the file is corrupt, "
                    "re-export it"
                )
            self.tensors[index] = self.constant(rec)
        return self.tensors[index]

    def static_shape(self, rec: _TensorRecord) -> Shape:
        if any(d <= 0 for d in rec.shape) or (
            rec.signature is not None and any(d < 0 for d in rec.signature)
        ):
            raise ShapeError(f"constant tensor {rec.name!r} has unknown dimensions {rec.shape}")
        return rec.shape

    def input_shape(self, rec: _TensorRecord) -> Shape:
        signature = rec.signature or rec.shape
        if rec.name in self.input_shapes:
            given = self.input_shapes[rec.name]
            fixed = [
                (i, d)
                for i, (d, s) in enumerate(zip(rec.shape, signature, strict=False))
                if d > 0 and s >= 0
            ]
            if len(given) != len(rec.shape) or any(given[i] != d for i, d in fixed):
                raise ShapeError(
                    f"--input-shape {rec.name}={','.join(map(str, given))} does not fit input "
                    f"{rec.name!r} of shape {_dims(rec)}: give {len(rec.shape)} dimensions and "
                    "keep the fixed ones"
                )
            self.overridden = self.overridden or given != rec.shape
            return given
        unknown = [
            i
            for i, (d, s) in enumerate(zip(rec.shape, signature, strict=False))
            if d <= 0 or (s < 0 and i > 0)
        ]
        if unknown or len(signature) != len(rec.shape):
            example = ",".join(str(d if d > 0 else 1) for d in rec.shape) or "1"
            raise ShapeError(
                f"input {rec.name!r} has unknown or dynamic dimensions {_dims(rec)} (axes "
                f"{unknown}); fix them with --input-shape {rec.name}={example} (in Python: "
                f"input_shapes={{{rec.name!r}: [{example.replace(',', ', ')}]}})"
            )
        return rec.shape

    def const_array(self, index: int, what: str) -> np.ndarray:
        """The value of a parameter tensor that must be constant (e.g. reshape's shape)."""
        if index < 0:
            raise _Unsupported(f"{what} is missing")
        rec = self.rec(index)
        if rec.data is None:
            raise _Unsupported(f"{what} is computed at run time (it must be a constant)")
        tensor = self.tensor(index)
        assert tensor is not None and tensor.data is not None
        return tensor.data

    # -- ops --
    def convert(self) -> Graph:
        unknown = sorted(set(self.input_shapes) - {self.rec(i).name for i in self.record.inputs})
        if unknown:
            names = ", ".join(self.rec(i).name for i in self.record.inputs)
            raise UsageError(
                f"--input-shape names {', '.join(unknown)}, but the model's inputs are {names}"
            )
        for i in self.record.inputs:
            rec = self.rec(i)
            if rec.data is not None:
                continue
            tensor = self.graph.add_tensor(
                rec.name, self.input_shape(rec), self.dtype(rec), rec.quant
            )
            self.graph.inputs.append(tensor)
            self.tensors[i] = tensor

        unsupported: list[tuple[str, str]] = []
        for op in self.record.ops:
            label = f"#{op.index} ({self.rec(op.outputs[0]).name if op.outputs else 'no output'})"
            mapper = _MAPPERS.get(op.opcode)
            try:
                if mapper is None:
                    raise _Unsupported()
                mapped = mapper(self, op)
                self.check_quantized(op, mapped)
                self.add(op, mapped)
            except _Unsupported as exc:
                op_type = f"{op.opcode}: {exc.detail}" if exc.detail else op.opcode
                unsupported.append((op_type, label))
                self.declare_outputs(op)
            except MemfitError:
                if unsupported:
                    break  # probably a consequence of an op memfit skipped: report those
                raise
        refuse_unsupported(self.graph.name, unsupported, _MAPPERS)

        for i in self.record.outputs:
            if i not in self.tensors:  # a constant (or variable) output
                self.tensor(i)
            self.graph.outputs.append(self.tensors[i])
        return self.graph

    def check_quantized(self, op: _OpRecord, mapped: _Mapped) -> None:
        """Refuse quantized ops memfit has no integer kernel for (rather than run them wrong)."""
        first = mapped.inputs[0] if mapped.inputs else None
        if first is None or first.dtype is DType.FLOAT32 or first.quant is None:
            return
        out_rec = self.rec(op.outputs[0])
        output = Tensor(out_rec.name, (), self.dtype(out_rec), out_rec.quant)
        if mapped.kind in _MOVES_VALUES:
            return
        activations = [t for t in mapped.inputs if t is not None and not t.is_constant]
        if mapped.kind in _COMPARES_VALUES:
            if any(t.quant != output.quant for t in activations):
                raise _Unsupported("inputs and output quantized differently")
            return
        if mapped.kind == "lstm":
            try:
                check_lstm_supported(
                    Op("lstm", f"#{op.index}", mapped.inputs, [output], mapped.attrs)
                )
            except UnsupportedOpError as exc:
                raise _Unsupported(str(exc)) from exc
            return
        if mapped.kind not in QUANTIZED_KERNELS:
            raise _Unsupported(f"{mapped.kind} on quantized {first.dtype} tensors")
        allowed = allowed_out = {DType.INT8}
        if mapped.kind == "quantize":  # requantization between integer types
            allowed = allowed_out = {DType.INT8, DType.INT16, DType.INT32}
        elif mapped.kind == "softmax":
            allowed_out = {DType.INT8, DType.INT16}
        if any(t.dtype not in allowed for t in activations) or output.dtype not in allowed_out:
            dtypes = sorted({str(t.dtype) for t in (*activations, output)})
            raise _Unsupported(
                f"quantized {'/'.join(dtypes)} tensors (memfit's integer kernels take int8 "
                "activations; re-quantize the model to int8)"
            )

    def declare_outputs(self, op: _OpRecord) -> None:
        """Outputs of an op memfit skips, with the declared shapes, so conversion can go on."""
        for i in op.outputs:
            rec = self.rec(i)
            dtype = _DTYPES.get(rec.type_code, DType.FLOAT32)
            shape = tuple(max(d, 1) for d in rec.shape)
            self.tensors[i] = self.graph.add_tensor(rec.name, shape, dtype, rec.quant)

    def add(self, op: _OpRecord, mapped: _Mapped) -> None:
        name = f"{op.opcode.lower()}_{op.index}"
        shapes = mapped.shapes or infer_shapes(
            Op(mapped.kind, name, mapped.inputs, [], mapped.attrs)
        )
        if len(shapes) != len(op.outputs):
            raise ModelFormatError(
                f"operator #{op.index} ({op.opcode}) has {len(op.outputs)} outputs, expected "
                f"{len(shapes)}; the file is corrupt, re-export it"
            )
        outputs = []
        for i, shape in zip(op.outputs, shapes, strict=True):
            rec = self.rec(i)
            self.check_shape(op, rec, shape)
            if any(d <= 0 for d in shape):
                raise ShapeError(
                    f"operator #{op.index} ({op.opcode}) computes an empty tensor {rec.name!r} "
                    f"of shape {list(shape)}; check the input shapes"
                )
            outputs.append(self.graph.add_tensor(rec.name, shape, self.dtype(rec), rec.quant))
            self.tensors[i] = outputs[-1]
        self.graph.add_op(mapped.kind, mapped.inputs, outputs, mapped.attrs, name=name)

    def check_shape(self, op: _OpRecord, rec: _TensorRecord, shape: Shape) -> None:
        """Compare an inferred shape with the file's: -1 (and 0) entries match anything.

        When an input shape was changed with ``input_shapes``, only dimensions the signature
        marks static are compared; without a signature the file's shapes are all static.
        """
        declared = rec.signature if rec.signature is not None else rec.shape
        matches = len(declared) == len(shape) and all(
            d <= 0 or d == s for d, s in zip(declared, shape, strict=True)
        )
        if not matches:
            hint = (
                "the --input-shape given does not fit this model"
                if self.overridden
                else "the file is inconsistent; re-export it from the converter"
            )
            raise ShapeError(
                f"operator #{op.index} ({op.opcode}): output {rec.name!r} has shape "
                f"{list(shape)} from its inputs and attributes, but the file declares "
                f"{list(declared)}; {hint}"
            )

    def activation_input(self, op: _OpRecord, position: int = 0) -> Tensor:
        tensor = self.tensor(op.inputs[position]) if position < len(op.inputs) else None
        if tensor is None:
            raise _Unsupported(f"input {position} is missing")
        return tensor

    def output_shape(self, op: _OpRecord, source: Tensor, new_shape: Sequence[int] = ()) -> Shape:
        """The static output shape of a reshaping op, from the file's declaration.

        One unknown dimension (-1 in the signature, or in ``new_shape``) is computed from the
        element count.
        """
        rec = self.rec(op.outputs[0])
        candidates = [rec.signature or rec.shape]
        if self.overridden:
            candidates.append(tuple(new_shape))
        elif rec.signature is not None:
            candidates.append(rec.shape)
        for candidate in candidates:
            dims = [int(d) for d in candidate]
            unknown = [i for i, d in enumerate(dims) if d <= 0]
            known = math.prod(d for d in dims if d > 0)
            if len(unknown) == 1 and known and source.size % known == 0:
                dims[unknown[0]] = source.size // known
            if math.prod(dims) == source.size and all(d > 0 for d in dims):
                return tuple(dims)
        raise ShapeError(
            f"operator #{op.index} ({op.opcode}): cannot reshape {source.name!r} of shape "
            f"{list(source.shape)} to the declared {_dims(rec)}; check --input-shape"
        )


def _dims(rec: _TensorRecord) -> str:
    return str(list(rec.signature or rec.shape))


# Kinds that only move or select values: correct on quantized values as they are.
_MOVES_VALUES = frozenset(
    {"reshape", "transpose", "pad", "strided_slice", "shape", "pack", "identity", "dequantize"}
)
# Kinds that compare quantized values directly: correct when all parameters are equal.
_COMPARES_VALUES = frozenset({"maximum", "minimum", "reduce_max"})


# ---- mappers: one per TFLite builtin --------------------------------------------------------

Mapper = Callable[[_Converter, _OpRecord], _Mapped]
_MAPPERS: dict[str, Mapper] = {}


def _maps(*opcodes: str) -> Callable[[Mapper], Mapper]:
    def decorate(fn: Mapper) -> Mapper:
        for opcode in opcodes:
            _MAPPERS[opcode] = fn
        return fn

    return decorate


def _activation(op: _OpRecord) -> str:
    code = op.options.get("FusedActivationFunction", 0)
    if code not in _ACTIVATIONS:
        raise _Unsupported(f"fused activation {code} (SIGN_BIT)")
    return _ACTIVATIONS[code]


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite's SAME padding: the output is ceil(size / stride); an odd total pads after more."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pads(
    op: _OpRecord,
    hw: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int] = (1, 1),
) -> tuple[int, int, int, int]:
    padding = op.options.get("Padding", _VALID)
    if padding == _VALID:
        return (0, 0, 0, 0)
    if padding != _SAME:
        raise _Unsupported(f"padding mode {padding}")
    top, bottom = _same_pads(hw[0], kernel[0], strides[0], dilations[0])
    left, right = _same_pads(hw[1], kernel[1], strides[1], dilations[1])
    return (top, left, bottom, right)


def _check_hybrid(op: _OpRecord, x: Tensor, w: Tensor) -> None:
    """Refuse float layers with quantized weights, except the hybrid CONV_2D memfit runs.

    A "hybrid" CONV_2D (dynamic-range quantization: float input, int8 weights quantized per
    tensor) quantizes its input at run time; its weights stay int8 in the IR.
    """
    if x.dtype is not DType.FLOAT32 or w.dtype is DType.FLOAT32:
        return
    supported = (
        op.opcode == "CONV_2D"
        and w.is_constant
        and w.dtype is DType.INT8
        and w.quant is not None
        and w.quant.per_tensor
        and w.quant.zero_point[0] == 0
    )
    if not supported:
        raise _Unsupported(
            f"hybrid (float32 input with {w.dtype} weights; memfit runs hybrid CONV_2D with "
            "int8 weights quantized per tensor only)"
        )


def _windowed(op: _OpRecord, x: Tensor, rank: int = 4) -> None:
    if len(x.shape) != rank:
        raise _Unsupported(f"input of rank {len(x.shape)} (expected {rank})")


@_maps("CONV_2D")
def _conv2d(c: _Converter, op: _OpRecord) -> _Mapped:
    x, w = c.activation_input(op), c.activation_input(op, 1)
    bias = c.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
    _windowed(op, x)
    _check_hybrid(op, x, w)
    strides = (op.options.get("StrideH", 1), op.options.get("StrideW", 1))
    dilations = (op.options.get("DilationHFactor", 1), op.options.get("DilationWFactor", 1))
    if x.shape[3] % w.shape[3]:
        raise ShapeError(
            f"operator #{op.index} (CONV_2D): {x.shape[3]} input channels are not a multiple of "
            f"the filter's {w.shape[3]}; the file is inconsistent"
        )
    attrs = {
        "strides": strides,
        "dilations": dilations,
        "pads": _pads(op, x.shape[1:3], w.shape[1:3], strides, dilations),
        "groups": x.shape[3] // w.shape[3],
        "activation": _activation(op),
    }
    return _Mapped("conv2d", [x, w, bias], attrs)


@_maps("DEPTHWISE_CONV_2D")
def _depthwise(c: _Converter, op: _OpRecord) -> _Mapped:
    x, w = c.activation_input(op), c.activation_input(op, 1)
    bias = c.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
    _windowed(op, x)
    _check_hybrid(op, x, w)
    strides = (op.options.get("StrideH", 1), op.options.get("StrideW", 1))
    dilations = (op.options.get("DilationHFactor", 1), op.options.get("DilationWFactor", 1))
    if w.shape[3] % x.shape[3]:
        raise ShapeError(
            f"operator #{op.index} (DEPTHWISE_CONV_2D): {w.shape[3]} output channels are not "
            f"a multiple of {x.shape[3]} input channels; the file is inconsistent"
        )
    attrs = {
        "strides": strides,
        "dilations": dilations,
        "pads": _pads(op, x.shape[1:3], w.shape[1:3], strides, dilations),
        # The file's depth_multiplier option is unreliable in old converters: use the shapes.
        "depth_multiplier": w.shape[3] // x.shape[3],
        "activation": _activation(op),
    }
    return _Mapped("depthwise_conv2d", [x, w, bias], attrs)


@_maps("FULLY_CONNECTED")
def _fully_connected(c: _Converter, op: _OpRecord) -> _Mapped:
    x, w = c.activation_input(op), c.activation_input(op, 1)
    bias = c.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
    _check_hybrid(op, x, w)
    if op.options.get("WeightsFormat", 0) != 0:
        raise _Unsupported("shuffled weights format")
    attrs = {"activation": _activation(op), "keep_num_dims": bool(op.options.get("KeepNumDims"))}
    return _Mapped("fully_connected", [x, w, bias], attrs)


@_maps("AVERAGE_POOL_2D", "MAX_POOL_2D")
def _pool(c: _Converter, op: _OpRecord) -> _Mapped:
    x = c.activation_input(op)
    _windowed(op, x)
    kernel = (op.options.get("FilterHeight", 1), op.options.get("FilterWidth", 1))
    strides = (op.options.get("StrideH", 1), op.options.get("StrideW", 1))
    attrs: dict[str, Any] = {
        "kernel": kernel,
        "strides": strides,
        "pads": _pads(op, x.shape[1:3], kernel, strides),
        "activation": _activation(op),
    }
    if op.opcode == "AVERAGE_POOL_2D":
        attrs["count_include_pad"] = False  # TFLite divides by the in-bounds window size
        return _Mapped("avg_pool2d", [x], attrs)
    return _Mapped("max_pool2d", [x], attrs)


@_maps("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
def _reshape(c: _Converter, op: _OpRecord) -> _Mapped:
    x = c.activation_input(op)
    new_shape: Sequence[int] = _ints(op.options.get("NewShapeAsNumpy"))
    # The declared output shape is static: a shape operand computed in the graph (the
    # converter's SHAPE -> STRIDED_SLICE -> PACK chains) is not needed, and those ops are pruned.
    shape_operand = op.inputs[1] if op.opcode == "RESHAPE" and len(op.inputs) > 1 else -1
    if shape_operand >= 0 and c.rec(shape_operand).data is not None:
        new_shape = tuple(int(d) for d in c.const_array(shape_operand, "the shape").ravel())
    return _Mapped("reshape", [x], {}, [c.output_shape(op, x, new_shape)])


@_maps("SOFTMAX")
def _softmax(c: _Converter, op: _OpRecord) -> _Mapped:
    return _Mapped("softmax", [c.activation_input(op)], {"axis": -1, "beta": op.options["Beta"]})


def _binary(kind: str, fused: bool) -> Mapper:
    def mapper(c: _Converter, op: _OpRecord) -> _Mapped:
        attrs = {"activation": _activation(op)} if fused else {}
        return _Mapped(kind, [c.activation_input(op), c.activation_input(op, 1)], attrs)

    return mapper


for _opcode, _kind, _fused in (
    ("ADD", "add", True),
    ("SUB", "sub", True),
    ("MUL", "mul", True),
    ("DIV", "div", True),
    ("MAXIMUM", "maximum", False),
    ("MINIMUM", "minimum", False),
):
    _MAPPERS[_opcode] = _binary(_kind, _fused)


def _unary(kind: str) -> Mapper:
    def mapper(c: _Converter, op: _OpRecord) -> _Mapped:
        return _Mapped(kind, [c.activation_input(op)], {})

    return mapper


for _opcode, _kind in (
    ("LOGISTIC", "logistic"),
    ("TANH", "tanh"),
    ("RELU", "relu"),
    ("RELU6", "relu6"),
    ("RELU_N1_TO_1", "relu_n1_to_1"),
    ("HARD_SWISH", "hard_swish"),
    ("QUANTIZE", "quantize"),
):
    _MAPPERS[_opcode] = _unary(_kind)


@_maps("DEQUANTIZE")
def _dequantize(c: _Converter, op: _OpRecord) -> _Mapped:
    x = c.activation_input(op)
    # A float16 constant was widened to float32 at import: its DEQUANTIZE has nothing to do.
    return _Mapped("identity" if x.dtype is DType.FLOAT32 else "dequantize", [x], {})


@_maps("LEAKY_RELU")
def _leaky_relu(c: _Converter, op: _OpRecord) -> _Mapped:
    return _Mapped("leaky_relu", [c.activation_input(op)], {"alpha": op.options["Alpha"]})


def _axes(c: _Converter, op: _OpRecord, rank: int) -> tuple[int, ...]:
    axes = c.const_array(op.inputs[1], "the axes").ravel()
    return tuple(sorted({int(a) % rank for a in axes}))


@_maps("MEAN", "REDUCE_MAX")
def _reduce(c: _Converter, op: _OpRecord) -> _Mapped:
    x = c.activation_input(op)
    attrs = {"axes": _axes(c, op, len(x.shape)), "keepdims": bool(op.options.get("KeepDims"))}
    return _Mapped("mean" if op.opcode == "MEAN" else "reduce_max", [x], attrs)


@_maps("PAD", "PADV2")
def _pad(c: _Converter, op: _OpRecord) -> _Mapped:
    x = c.activation_input(op)
    paddings = c.const_array(op.inputs[1], "the paddings").reshape(-1, 2)
    if paddings.shape[0] != len(x.shape) or (paddings < 0).any():
        raise _Unsupported(f"paddings {paddings.tolist()} for a rank-{len(x.shape)} input")
    value = 0.0
    if op.opcode == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        constant = c.tensor(op.inputs[2])
        assert constant is not None
        raw = float(c.const_array(op.inputs[2], "the pad value").ravel()[0])
        q = constant.quant
        value = q.scale[0] * (raw - q.zero_point[0]) if q is not None else raw
    pads = tuple((int(b), int(a)) for b, a in paddings)
    return _Mapped("pad", [x], {"pads": pads, "value": value})


@_maps("TRANSPOSE")
def _transpose(c: _Converter, op: _OpRecord) -> _Mapped:
    x = c.activation_input(op)
    perm = tuple(int(p) % len(x.shape) for p in c.const_array(op.inputs[1], "the permutation"))
    if sorted(perm) != list(range(len(x.shape))):
        raise _Unsupported(f"permutation {perm} of a rank-{len(x.shape)} input")
    return _Mapped("transpose", [x], {"perm": perm})


@_maps("CONCATENATION")
def _concat(c: _Converter, op: _OpRecord) -> _Mapped:
    xs = [c.activation_input(op, i) for i in range(len(op.inputs))]
    if _activation(op) != "none":  # TFLite and TFLite Micro reject it too
        raise _Unsupported("a fused activation")
    attrs = {"axis": op.options.get("Axis", 0) % len(xs[0].shape), "activation": "none"}
    return _Mapped("concat", list(xs), attrs)


def _slice_bounds(
    dim: int, begin: int, end: int, stride: int, begin_masked: bool, end_masked: bool
) -> tuple[int, int]:
    """TFLite's strided-slice start and stop for one axis, clamped to the dimension.

    A stop of -1 with a negative stride means "through index 0".
    """
    if begin_masked:
        start = 0 if stride > 0 else dim - 1
    else:
        start = begin + dim if begin < 0 else begin
        start = min(max(start, 0), dim) if stride > 0 else min(max(start, -1), dim - 1)
    if end_masked:
        stop = dim if stride > 0 else -1
    else:
        stop = end + dim if end < 0 else end
        stop = min(max(stop, 0), dim) if stride > 0 else min(max(stop, -1), dim - 1)
    return start, stop


@_maps("STRIDED_SLICE")
def _strided_slice(c: _Converter, op: _OpRecord) -> _Mapped:
    x = c.activation_input(op)
    o = op.options
    if o.get("EllipsisMask") or o.get("NewAxisMask") or o.get("Offset"):
        raise _Unsupported("ellipsis, new-axis or offset masks")
    rank = len(x.shape)
    begin = [int(v) for v in c.const_array(op.inputs[1], "begin")]
    end = [int(v) for v in c.const_array(op.inputs[2], "end")]
    strides = [int(v) for v in c.const_array(op.inputs[3], "strides")] if len(op.inputs) > 3 else []
    strides = strides or [1] * len(begin)
    if not len(begin) == len(end) == len(strides) <= rank or 0 in strides:
        raise _Unsupported(f"begin {begin}, end {end}, strides {strides} for rank {rank}")
    # Axes the parameters do not cover are taken whole.
    whole = ~((1 << len(begin)) - 1)
    begin_mask = o.get("BeginMask", 0) | whole
    end_mask = o.get("EndMask", 0) | whole
    begin += [0] * (rank - len(begin))
    end += [0] * (rank - len(end))
    strides += [1] * (rank - len(strides))
    shrink = o.get("ShrinkAxisMask", 0)
    starts, stops, steps, shrink_axes = [], [], [], []
    for axis in range(rank):
        dim, stride = x.shape[axis], strides[axis]
        if shrink >> axis & 1:
            start = begin[axis] + dim if begin[axis] < 0 else begin[axis]
            if not 0 <= start < dim:
                raise ShapeError(
                    f"operator #{op.index} (STRIDED_SLICE): index {begin[axis]} is out of "
                    f"range for axis {axis} of size {dim}"
                )
            starts.append(start)
            stops.append(start + 1)
            steps.append(1)
            shrink_axes.append(axis)
            continue
        start, stop = _slice_bounds(
            dim,
            begin[axis],
            end[axis],
            stride,
            bool(begin_mask >> axis & 1),
            bool(end_mask >> axis & 1),
        )
        starts.append(start)
        stops.append(stop)
        steps.append(stride)
    attrs = {
        "begin": tuple(starts),
        "end": tuple(stops),
        "strides": tuple(steps),
        "shrink_axes": tuple(shrink_axes),
    }
    return _Mapped("strided_slice", [x], attrs)


@_maps("SLICE")
def _slice(c: _Converter, op: _OpRecord) -> _Mapped:
    x = c.activation_input(op)
    begin = [int(v) for v in c.const_array(op.inputs[1], "begin")]
    size = [int(v) for v in c.const_array(op.inputs[2], "size")]
    if len(begin) != len(x.shape) or len(size) != len(x.shape):
        raise _Unsupported(f"begin {begin} and size {size} for rank {len(x.shape)}")
    end = tuple(d if s == -1 else b + s for b, s, d in zip(begin, size, x.shape, strict=True))
    attrs = {"begin": tuple(begin), "end": end, "strides": (1,) * len(begin), "shrink_axes": ()}
    return _Mapped("strided_slice", [x], attrs)


@_maps("SHAPE")
def _shape(c: _Converter, op: _OpRecord) -> _Mapped:
    return _Mapped("shape", [c.activation_input(op)], {})


@_maps("PACK")
def _pack(c: _Converter, op: _OpRecord) -> _Mapped:
    xs = [c.activation_input(op, i) for i in range(len(op.inputs))]
    axis = op.options.get("Axis", 0) % (len(xs[0].shape) + 1)
    return _Mapped("pack", list(xs), {"axis": axis})


@_maps("UNIDIRECTIONAL_SEQUENCE_LSTM")
def _lstm(c: _Converter, op: _OpRecord) -> _Mapped:
    if len(op.inputs) not in (20, 24):
        raise _Unsupported(f"{len(op.inputs)} inputs (expected 20 or 24)")
    if op.options.get("DiagonalRecurrentTensors"):
        raise _Unsupported("diagonal recurrent weights")
    inputs = [c.tensor(i) for i in op.inputs] + [None] * (24 - len(op.inputs))
    x, recurrent_to_output = inputs[0], inputs[8]
    if x is None or recurrent_to_output is None or len(x.shape) != 3:
        raise _Unsupported("missing input or recurrent weights, or an input not of rank 3")
    intermediates = tuple(c.rec(i).quant if i >= 0 else None for i in op.intermediates)
    attrs = {
        "time_major": bool(op.options.get("TimeMajor")),
        "cell_clip": float(op.options.get("CellClip", 0.0)),
        "proj_clip": float(op.options.get("ProjClip", 0.0)),
        "activation": _activation(op),
        "asymmetric_quantize_inputs": bool(op.options.get("AsymmetricQuantizeInputs")),
        "intermediates": intermediates,
    }
    # Output: [..., n_output]; with a projection n_output is the projection's size, which is
    # also the recurrent weights' second dimension.
    shape = (*x.shape[:-1], recurrent_to_output.shape[1])
    return _Mapped("lstm", inputs, attrs, [shape])


def load_tflite(path: Path, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Read a ``.tflite`` file into an IR graph named after the file's stem."""
    path = Path(path)
    raw = path.read_bytes()
    record = _decode(raw, path)
    return _Converter(record, path.stem, input_shapes).convert()
