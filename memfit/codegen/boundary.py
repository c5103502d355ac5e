"""The model's inputs and outputs at the C function's boundary.

The generated ``<name>_run`` takes and returns dense C-order arrays in the model file's own
layout, as ``memfit.run`` and the reference runtimes do: NHWC for TFLite models, NCHW for ONNX
image models. Inside, activations are NHWC. Every input is copied into its planned place in
the arena and every output out of it anyway, so the layout change of an ONNX model is done by
that copy (a transposing loop instead of ``memcpy``) and needs no buffer of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memfit.api import external_shape
from memfit.codegen.constants import c_type
from memfit.ir.core import Graph, Tensor


@dataclass(frozen=True)
class Port:
    """One input or output of the generated function."""

    tensor: Tensor
    parameter: str
    external_shape: tuple[int, ...]
    perm: tuple[int, ...] | None
    """``internal = external.transpose(perm)``; None when the layouts agree."""

    @property
    def c_type(self) -> str:
        return c_type(self.tensor.dtype.numpy)

    @property
    def dtype(self) -> np.dtype:
        return self.tensor.dtype.numpy

    @property
    def elements(self) -> int:
        return math.prod(self.external_shape)

    @property
    def nbytes(self) -> int:
        return self.elements * self.tensor.dtype.itemsize

    @property
    def layout(self) -> str:
        rank = len(self.external_shape)
        if self.perm is not None and rank == 4:
            return "NCHW" if self.perm == (0, 2, 3, 1) else f"axes {self.perm} of NHWC"
        return "NHWC" if rank == 4 else "dense"


def ports(graph: Graph) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    """The function's input and output parameters, in the graph's order."""

    def port(t: Tensor, base: str, index: int, count: int) -> Port:
        parameter = base if count == 1 else f"{base}{index}"
        perm = graph.external_perm.get(t.name)
        if perm is not None and tuple(perm) == tuple(range(len(perm))):
            perm = None
        return Port(t, parameter, external_shape(graph, t.name, t.shape), perm)

    ins = tuple(port(t, "input", i, len(graph.inputs)) for i, t in enumerate(graph.inputs))
    outs = tuple(port(t, "output", i, len(graph.outputs)) for i, t in enumerate(graph.outputs))
    return ins, outs


def strided_copy(
    destination: str,
    source: str,
    shape: Sequence[int],
    destination_strides: Sequence[int],
    source_strides: Sequence[int],
    c_type_name: str,
) -> list[str]:
    """C statements copying a box of ``shape`` elements between two strided arrays.

    Strides are in elements, one per axis of ``shape``. A copy whose two sides are both dense
    in the same order is one ``memcpy``.
    """
    dense = _dense_strides(shape)
    if _same_layout(shape, destination_strides, dense) and _same_layout(
        shape, source_strides, dense
    ):
        size = math.prod(shape)
        return [f"memcpy({destination}, {source}, {size} * sizeof({c_type_name}));"]
    axes = [k for k, d in enumerate(shape) if d > 1]
    if not axes:
        return [f"{destination}[0] = {source}[0];"]
    index = [f"i{k}" for k in axes]
    lines = [f"int32_t {', '.join(index)};"]
    indent = ""
    for k in axes:
        lines.append(f"{indent}for (i{k} = 0; i{k} < {shape[k]}; ++i{k})")
        indent += "    "

    def address(strides: Sequence[int]) -> str:
        terms = [f"i{k}" if strides[k] == 1 else f"i{k} * {strides[k]}" for k in axes]
        return " + ".join(terms)

    lines.append(
        f"{indent}{destination}[{address(destination_strides)}] = "
        f"{source}[{address(source_strides)}];"
    )
    return lines


def _dense_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides = []
    step = 1
    for dim in reversed(shape):
        strides.append(step)
        step *= max(dim, 1)
    return tuple(reversed(strides))


def _same_layout(shape: Sequence[int], strides: Sequence[int], dense: Sequence[int]) -> bool:
    return all(d == 1 or s == n for d, s, n in zip(shape, strides, dense, strict=True))
