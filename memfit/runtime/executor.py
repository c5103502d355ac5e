"""Run a graph with NumPy inside one arena.

Every activation is a view into a single byte buffer at the offset the memory plan gives it, so
a plan that lets two live tensors share bytes produces wrong numbers instead of passing silently.
The arena starts filled with a poison pattern so that reading bytes nobody wrote shows too. A
pointwise convolution that the plan runs in place runs block by block through its temporary in
the arena, as the C kernel does (``memfit.runtime.pointwise``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from memfit.errors import InputError, InternalError
from memfit.ir.core import Graph, Op, Tensor
from memfit.planning.arena import ArenaPlan, separate_plan
from memfit.planning.scratch import pointwise_block_pixels
from memfit.runtime.kernels import run_kernel
from memfit.runtime.pointwise import run_pointwise_in_place

POISON = 0xA5


def _view(arena: np.ndarray, tensor: Tensor, plan: ArenaPlan) -> np.ndarray:
    placement = plan.placements.get(tensor.name)
    if placement is None:
        raise InternalError(f"memory plan has no place for tensor {tensor.name}")
    dtype = tensor.dtype.numpy
    end = placement.offset + tensor.nbytes
    if placement.strides is None and (placement.offset < 0 or end > plan.size):
        raise InternalError(
            f"tensor {tensor.name} [{placement.offset}, {end}) lies outside the "
            f"{plan.size}-byte arena"
        )
    return np.ndarray(
        tensor.shape, dtype=dtype, buffer=arena, offset=placement.offset, strides=placement.strides
    )


def _temporary(arena: np.ndarray, op: Op, offset: int) -> np.ndarray:
    """The one-block temporary of a pointwise convolution in place: [pixels, channels]."""
    out = op.output
    shape = (pointwise_block_pixels(op), out.shape[-1])
    if offset < 0 or offset + math.prod(shape) * out.dtype.itemsize > arena.size:
        raise InternalError(f"the temporary of op {op.name} lies outside the arena")
    return np.ndarray(shape, dtype=out.dtype.numpy, buffer=arena, offset=offset)


def check_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> None:
    """Raise InputError unless ``inputs`` has every graph input with its shape and dtype."""
    for t in graph.inputs:
        if t.name not in inputs:
            given = ", ".join(sorted(inputs)) or "nothing"
            raise InputError(
                f"input {t.name!r} is missing (given: {given}); pass one array per model input"
            )
        array = inputs[t.name]
        if array.shape != t.shape or array.dtype != t.dtype.numpy:
            raise InputError(
                f"input {t.name!r} has shape {array.shape} and dtype {array.dtype}, but the "
                f"model expects {t.shape} {t.dtype}"
            )
    unknown = set(inputs) - {t.name for t in graph.inputs}
    if unknown:
        expected = ", ".join(t.name for t in graph.inputs)
        raise InputError(f"unknown input(s) {', '.join(sorted(unknown))}; expected {expected}")


def execute(
    graph: Graph, inputs: Mapping[str, np.ndarray], plan: ArenaPlan | None = None
) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``inputs`` (internal layout, keyed by input name) inside ``plan``.

    Returns copies of the graph outputs keyed by name.
    """
    check_inputs(graph, inputs)
    plan = plan or separate_plan(graph)
    arena = np.full(max(plan.size, 1), POISON, dtype=np.uint8)
    views = {t.name: _view(arena, t, plan) for t in graph.activations()}
    for t in graph.inputs:
        views[t.name][...] = inputs[t.name]

    for op in graph.ops:
        args = [
            None if t is None else (t.data if t.is_constant else views[t.name]) for t in op.inputs
        ]
        try:
            if op.kind == "conv2d" and op.name in plan.temporaries:
                temporary = _temporary(arena, op, plan.temporaries[op.name])
                run_pointwise_in_place(op, args, views[op.output.name], temporary)
                continue
            results = run_kernel(op, args)
        except InternalError:
            raise
        except Exception as exc:  # a kernel failing is always a bug: say where
            raise InternalError(f"while executing op {op.name} ({op.kind}): {exc!r}") from exc
        for tensor, value in zip(op.outputs, results, strict=True):
            if value.shape != tensor.shape or value.dtype != tensor.dtype.numpy:
                raise InternalError(
                    f"op {op.name} ({op.kind}) produced {value.dtype}{list(value.shape)} for "
                    f"{tensor.name}, declared {tensor.dtype}{list(tensor.shape)}"
                )
            views[tensor.name][...] = value
    return {
        t.name: (t.data.copy() if t.data is not None else views[t.name].copy())
        for t in graph.outputs
    }
