"""The IR: tensors, ops and graphs.

Tensors and ops are mutable structure; a graph changes only through its methods, which keep the
producer/consumer links consistent. Quantization parameters are immutable values. Nothing here
knows a file format.

Logical layout of 4-D activations is NHWC. Weights of ``conv2d`` are [O, KH, KW, I/groups], of
``depthwise_conv2d`` [1, KH, KW, C*M], of ``fully_connected`` [N, K] (the TFLite conventions).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memfit.errors import InternalError
from memfit.ir.dtypes import DType

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point).

    ``axis`` is None for per-tensor parameters (one scale and zero point), else the channel axis
    of per-axis parameters (one entry per channel). Scales are the float32 values of the model,
    held as Python floats (exact).
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self) -> None:
        if len(self.scale) != len(self.zero_point) or not self.scale:
            raise InternalError(f"malformed quantization {self.scale} / {self.zero_point}")
        if self.axis is None and len(self.scale) != 1:
            raise InternalError("per-tensor quantization with several scales")

    @property
    def per_tensor(self) -> bool:
        return self.axis is None

    def scales_array(self) -> np.ndarray:
        return np.asarray(self.scale, dtype=np.float64)

    def zero_points_array(self) -> np.ndarray:
        return np.asarray(self.zero_point, dtype=np.int64)

    def __str__(self) -> str:
        if self.per_tensor:
            return f"q(s={self.scale[0]:.6g}, z={self.zero_point[0]})"
        return f"q(axis={self.axis}, {len(self.scale)} scales)"


class Tensor:
    """A value in the graph: an activation (``data is None``) or a constant."""

    __slots__ = ("_consumers", "data", "dtype", "name", "producer", "quant", "shape")

    def __init__(
        self,
        name: str,
        shape: Sequence[int],
        dtype: DType,
        quant: Quantization | None = None,
        data: np.ndarray | None = None,
    ) -> None:
        self.name = name
        self.shape: Shape = tuple(int(d) for d in shape)
        self.dtype = dtype
        self.quant = quant
        self.data = data
        self.producer: Op | None = None
        self._consumers: list[Op] = []

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def consumers(self) -> tuple[Op, ...]:
        return tuple(self._consumers)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, {self.shape}, {self.dtype})"


class Op:
    """One operator. ``inputs`` may hold None for an absent optional input (e.g. no bias)."""

    __slots__ = ("attrs", "inputs", "kind", "name", "outputs")

    def __init__(
        self,
        kind: str,
        name: str,
        inputs: Sequence[Tensor | None],
        outputs: Sequence[Tensor],
        attrs: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.inputs: tuple[Tensor | None, ...] = tuple(inputs)
        self.outputs: tuple[Tensor, ...] = tuple(outputs)
        self.attrs: dict[str, Any] = dict(attrs or {})

    def input(self, index: int) -> Tensor | None:
        return self.inputs[index] if index < len(self.inputs) else None

    @property
    def output(self) -> Tensor:
        return self.outputs[0]

    @property
    def activation_inputs(self) -> tuple[Tensor, ...]:
        return tuple(t for t in self.inputs if t is not None and not t.is_constant)

    def __repr__(self) -> str:
        return f"Op({self.kind}, {self.name!r})"


class Graph:
    """Ops in execution order, with the tensors they read and write.

    ``external_perm`` maps a graph input or output name to the permutation from the layout the
    user sees (e.g. NCHW of an ONNX model) to the internal layout:
    ``internal = external.transpose(perm)``.
    """

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self.external_perm: dict[str, tuple[int, ...]] = {}
        self._op_names: set[str] = set()

    # ---- construction -------------------------------------------------------------------
    def unique_name(self, base: str, taken: Iterable[str] | None = None) -> str:
        pool = self.tensors if taken is None else set(taken)
        if base not in pool:
            return base
        i = 1
        while f"{base}_{i}" in pool:
            i += 1
        return f"{base}_{i}"

    def add_tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: DType,
        quant: Quantization | None = None,
        data: np.ndarray | None = None,
    ) -> Tensor:
        """Add a tensor; the name is made unique if it is already taken."""
        tensor = Tensor(self.unique_name(name), shape, dtype, quant, data)
        if data is not None and tuple(data.shape) != tensor.shape:
            raise InternalError(f"constant {name}: data shape {data.shape} != {tensor.shape}")
        self.tensors[tensor.name] = tensor
        return tensor

    def add_constant(
        self, name: str, data: np.ndarray, quant: Quantization | None = None
    ) -> Tensor:
        data = np.ascontiguousarray(data)
        return self.add_tensor(name, data.shape, DType.from_numpy(data.dtype), quant, data)

    def add_op(
        self,
        kind: str,
        inputs: Sequence[Tensor | None],
        outputs: Sequence[Tensor],
        attrs: dict[str, Any] | None = None,
        name: str | None = None,
        index: int | None = None,
    ) -> Op:
        """Add an op (at the end, or at ``index`` in the op list) and link its tensors."""
        op_name = self.unique_name(name or f"{kind}_{len(self.ops)}", self._op_names)
        op = Op(kind, op_name, inputs, outputs, attrs)
        for out in outputs:
            if out.producer is not None:
                raise InternalError(f"tensor {out.name} already produced by {out.producer.name}")
            if out.name not in self.tensors:
                raise InternalError(f"tensor {out.name} is not in graph {self.name}")
            out.producer = op
        for t in inputs:
            if t is not None:
                if t.name not in self.tensors:
                    raise InternalError(f"tensor {t.name} is not in graph {self.name}")
                t._consumers.append(op)
        self._op_names.add(op_name)
        if index is None:
            self.ops.append(op)
        else:
            self.ops.insert(index, op)
        return op

    def remove_op(self, op: Op) -> None:
        """Remove an op; its output tensors stay in the graph without a producer."""
        self.ops.remove(op)
        self._op_names.discard(op.name)
        for t in op.inputs:
            if t is not None:
                t._consumers.remove(op)
        for t in op.outputs:
            t.producer = None

    def set_input(self, op: Op, index: int, tensor: Tensor | None) -> None:
        old = op.inputs[index]
        if old is not None:
            old._consumers.remove(op)
        if tensor is not None:
            tensor._consumers.append(op)
        op.inputs = (*op.inputs[:index], tensor, *op.inputs[index + 1 :])

    def replace_all_uses(self, old: Tensor, new: Tensor) -> None:
        """Make every reader of ``old`` (ops and graph outputs) read ``new`` instead."""
        for op in list(old._consumers):
            for i, t in enumerate(op.inputs):
                if t is old:
                    self.set_input(op, i, new)
        self.outputs = [new if t is old else t for t in self.outputs]
        if old.name in self.external_perm and new.name not in self.external_perm:
            self.external_perm[new.name] = self.external_perm[old.name]

    def prune(self) -> int:
        """Remove ops whose outputs nobody reads and tensors nobody uses. Returns ops removed."""
        live_outputs = {t.name for t in self.outputs}
        removed = 0
        changed = True
        while changed:
            changed = False
            for op in reversed(list(self.ops)):
                if all(not t._consumers and t.name not in live_outputs for t in op.outputs):
                    self.remove_op(op)
                    removed += 1
                    changed = True
        keep = {t.name for t in self.inputs} | live_outputs
        for name, t in list(self.tensors.items()):
            if t.producer is None and not t._consumers and name not in keep:
                del self.tensors[name]
        return removed

    # ---- queries ------------------------------------------------------------------------
    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    def activations(self) -> Iterator[Tensor]:
        """Non-constant tensors in a deterministic order (inputs first, then by producer)."""
        seen: set[str] = set()
        for t in self.inputs:
            seen.add(t.name)
            yield t
        for op in self.ops:
            for t in op.outputs:
                if t.name not in seen:
                    seen.add(t.name)
                    yield t

    def constants(self) -> Iterator[Tensor]:
        return (t for t in self.tensors.values() if t.is_constant)

    def topological_check(self) -> None:
        """Raise InternalError unless every op reads only tensors already available."""
        ready = {t.name for t in self.inputs} | {t.name for t in self.constants()}
        for op in self.ops:
            for t in op.inputs:
                if t is not None and t.name not in ready:
                    raise InternalError(f"op {op.name} reads {t.name} before it is written")
            ready.update(t.name for t in op.outputs)
        for t in self.outputs:
            if t.name not in ready:
                raise InternalError(f"graph output {t.name} is never written")

    def copy(self) -> Graph:
        """A structural copy; constant arrays are shared (treat them as immutable)."""
        new = Graph(self.name)
        mapping: dict[str, Tensor] = {}
        for name, t in self.tensors.items():
            clone = Tensor(t.name, t.shape, t.dtype, t.quant, t.data)
            new.tensors[name] = clone
            mapping[name] = clone
        for op in self.ops:
            new.add_op(
                op.kind,
                [mapping[t.name] if t is not None else None for t in op.inputs],
                [mapping[t.name] for t in op.outputs],
                dict(op.attrs),
                name=op.name,
            )
        new.inputs = [mapping[t.name] for t in self.inputs]
        new.outputs = [mapping[t.name] for t in self.outputs]
        new.external_perm = dict(self.external_perm)
        return new
