"""Build graphs in code: for tests, the built-in zoo and rewrites that add ops."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from memfit.ir.core import Graph, Op, Quantization, Tensor
from memfit.ir.dtypes import DType
from memfit.ir.ops import infer_shapes


class GraphBuilder:
    """Appends ops to a graph, creating each output tensor with its inferred shape."""

    def __init__(self, name: str = "model") -> None:
        self.graph = Graph(name)

    def input(
        self,
        name: str,
        shape: Sequence[int],
        dtype: DType = DType.FLOAT32,
        quant: Quantization | None = None,
    ) -> Tensor:
        tensor = self.graph.add_tensor(name, shape, dtype, quant)
        self.graph.inputs.append(tensor)
        return tensor

    def constant(self, name: str, data: np.ndarray, quant: Quantization | None = None) -> Tensor:
        return self.graph.add_constant(name, data, quant)

    def op(
        self,
        kind: str,
        inputs: Sequence[Tensor | None],
        attrs: dict[str, Any] | None = None,
        *,
        dtype: DType | None = None,
        quant: Quantization | None = None,
        name: str | None = None,
        shape: Sequence[int] | None = None,
    ) -> Tensor:
        """Add one single-output op; dtype defaults to the first input's."""
        first = next(t for t in inputs if t is not None)
        probe = Op(kind, name or kind, inputs, [], attrs)
        out_shape = tuple(shape) if shape is not None else infer_shapes(probe)[0]
        op_name = name or f"{kind}_{len(self.graph.ops)}"
        out = self.graph.add_tensor(op_name, out_shape, dtype or first.dtype, quant)
        self.graph.add_op(kind, inputs, [out], attrs, name=op_name)
        return out

    def output(self, *tensors: Tensor) -> Graph:
        self.graph.outputs.extend(tensors)
        return self.graph
