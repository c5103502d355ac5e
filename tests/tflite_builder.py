"""Write small TFLite flatbuffers for tests: one subgraph, tensors, builtin operators.

Used to run single ops (or short chains) in memfit and in the reference interpreters with
chosen shapes and quantization parameters, and to make malformed models for error tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
import tflite

TYPES = {
    "float32": tflite.TensorType.FLOAT32,
    "float16": tflite.TensorType.FLOAT16,
    "float64": tflite.TensorType.FLOAT64,
    "int8": tflite.TensorType.INT8,
    "int16": tflite.TensorType.INT16,
    "int32": tflite.TensorType.INT32,
    "int64": tflite.TensorType.INT64,
}


@dataclass
class T:
    """A tensor: constant when ``data`` is given."""

    name: str
    shape: Sequence[int]
    dtype: str = "int8"
    scale: Sequence[float] | None = None
    zero_point: Sequence[int] | None = None
    data: np.ndarray | None = None
    axis: int = 0
    signature: Sequence[int] | None = None
    variable: bool = False


@dataclass
class Operator:
    """An operator: ``options`` names a generated options class and its fields."""

    opcode: str
    inputs: Sequence[int]
    outputs: Sequence[int]
    options: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    intermediates: Sequence[int] = ()


def _vector(b: flatbuffers.Builder, values: Sequence[Any], dtype: str) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype))


def _options(b: flatbuffers.Builder, name: str, fields: dict[str, Any]) -> int:
    vectors = {
        key: _vector(b, value, "int32")
        for key, value in fields.items()
        if isinstance(value, list | tuple)
    }
    getattr(tflite, f"{name}Start")(b)
    for key, value in fields.items():
        getattr(tflite, f"{name}Add{key}")(b, vectors.get(key, value))
    return getattr(tflite, f"{name}End")(b)


def build(
    tensors: Sequence[T],
    ops: Sequence[Operator],
    inputs: Sequence[int],
    outputs: Sequence[int],
    subgraphs: int = 1,
) -> bytes:
    """A TFL3 flatbuffer with the given tensors and operators (repeated ``subgraphs`` times)."""
    b = flatbuffers.Builder(1024)
    buffers = []
    tflite.BufferStart(b)
    buffers.append(tflite.BufferEnd(b))  # buffer 0: empty, by convention
    buffer_of = []
    for t in tensors:
        if t.data is None:
            buffer_of.append(0)
            continue
        raw = np.ascontiguousarray(np.asarray(t.data, dtype=t.dtype)).view(np.uint8).ravel()
        data = b.CreateNumpyVector(raw)
        tflite.BufferStart(b)
        tflite.BufferAddData(b, data)
        buffer_of.append(len(buffers))
        buffers.append(tflite.BufferEnd(b))

    tensor_offsets = []
    for i, t in enumerate(tensors):
        name = b.CreateString(t.name)
        shape = _vector(b, t.shape, "int32")
        signature = _vector(b, t.signature, "int32") if t.signature is not None else None
        quant = None
        if t.scale is not None:
            scale = _vector(b, t.scale, "float32")
            zero_point = _vector(b, t.zero_point or [0] * len(t.scale), "int64")
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zero_point)
            tflite.QuantizationParametersAddQuantizedDimension(b, t.axis)
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        if signature is not None:
            tflite.TensorAddShapeSignature(b, signature)
        tflite.TensorAddType(b, TYPES[t.dtype])
        tflite.TensorAddBuffer(b, buffer_of[i])
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        tflite.TensorAddIsVariable(b, t.variable)
        tensor_offsets.append(tflite.TensorEnd(b))

    opcodes: list[str] = []
    op_offsets = []
    for op in ops:
        if op.opcode not in opcodes:
            opcodes.append(op.opcode)
        options = _options(b, op.options, op.fields) if op.options else None
        op_inputs = _vector(b, op.inputs, "int32")
        op_outputs = _vector(b, op.outputs, "int32")
        intermediates = _vector(b, op.intermediates, "int32") if op.intermediates else None
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, opcodes.index(op.opcode))
        tflite.OperatorAddInputs(b, op_inputs)
        tflite.OperatorAddOutputs(b, op_outputs)
        if intermediates is not None:
            tflite.OperatorAddIntermediates(b, intermediates)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, op.options))
            tflite.OperatorAddBuiltinOptions(b, options)
        op_offsets.append(tflite.OperatorEnd(b))

    code_offsets = []
    for opcode in opcodes:
        code = getattr(tflite.BuiltinOperator, opcode)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))

    def offsets_vector(start: Any, items: Sequence[int]) -> int:
        start(b, len(items))
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    subgraph_offsets = []
    for _ in range(subgraphs):
        tensors_vec = offsets_vector(tflite.SubGraphStartTensorsVector, tensor_offsets)
        ops_vec = offsets_vector(tflite.SubGraphStartOperatorsVector, op_offsets)
        inputs_vec = _vector(b, inputs, "int32")
        outputs_vec = _vector(b, outputs, "int32")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddOperators(b, ops_vec)
        tflite.SubGraphAddInputs(b, inputs_vec)
        tflite.SubGraphAddOutputs(b, outputs_vec)
        subgraph_offsets.append(tflite.SubGraphEnd(b))

    subgraphs_vec = offsets_vector(tflite.ModelStartSubgraphsVector, subgraph_offsets)
    codes_vec = offsets_vector(tflite.ModelStartOperatorCodesVector, code_offsets)
    buffers_vec = offsets_vector(tflite.ModelStartBuffersVector, buffers)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes_vec)
    tflite.ModelAddSubgraphs(b, subgraphs_vec)
    tflite.ModelAddBuffers(b, buffers_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def unary(
    opcode: str,
    shape: Sequence[int],
    x: dict[str, Any],
    y: dict[str, Any],
    options: str | None = None,
    **fields: Any,
) -> bytes:
    """A model with one single-input operator; ``x``/``y`` are extra ``T`` fields."""
    tensors = [T("x", shape, **x), T("y", y.pop("shape", shape), **y)]
    return build(tensors, [Operator(opcode, [0], [1], options, fields)], [0], [1])


def binary(
    opcode: str,
    shapes: tuple[Sequence[int], Sequence[int], Sequence[int]],
    a: dict[str, Any],
    c: dict[str, Any],
    y: dict[str, Any],
    options: str | None = None,
    **fields: Any,
) -> bytes:
    """A model with one two-input operator; both inputs are model inputs."""
    tensors = [T("a", shapes[0], **a), T("b", shapes[1], **c), T("y", shapes[2], **y)]
    return build(tensors, [Operator(opcode, [0, 1], [2], options, fields)], [0, 1], [2])
