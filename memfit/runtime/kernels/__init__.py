"""Kernel registry: one NumPy function per op kind.

A kernel takes the op and its input arrays (None for an absent optional input) and returns the
output array (or a tuple for several outputs) with exactly the output tensor's dtype and shape.
Quantization parameters are read from the op's tensors. int8 kernels follow TFLite Micro's
reference kernels bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from memfit.errors import InternalError
from memfit.ir.core import Op
from memfit.ir.dtypes import DType

Kernel = Callable[..., Any]
KERNELS: dict[str, Kernel] = {}
"""Kernels for float tensors, and for any dtype where the op only moves data."""
QUANTIZED_KERNELS: dict[str, Kernel] = {}
"""Kernels for ops on quantized integer tensors (int8 with int16/int32 inside)."""


def register(*kinds: str, quantized: bool = False) -> Callable[[Kernel], Kernel]:
    table = QUANTIZED_KERNELS if quantized else KERNELS

    def decorate(fn: Kernel) -> Kernel:
        for kind in kinds:
            table[kind] = fn
        return fn

    return decorate


def is_quantized(op: Op) -> bool:
    """True when the op computes on quantized integers rather than floats.

    That includes a TFLite "hybrid" layer: float activations, quantized int8 constant weights.
    """
    first = op.inputs[0] if op.inputs and op.inputs[0] is not None else op.outputs[0]
    if first.dtype is not DType.FLOAT32 and first.quant is not None:
        return True
    weights = op.input(1)
    return (
        weights is not None
        and weights.is_constant
        and weights.dtype is DType.INT8
        and weights.quant is not None
    )


def is_hybrid(op: Op) -> bool:
    """A TFLite "hybrid" layer: float activations, int8 constant weights. It quantizes its
    whole input with one scale (from the input's largest magnitude), so its result on part of
    the input is not part of its result on the whole."""
    first = op.inputs[0] if op.inputs else None
    return first is not None and first.dtype is DType.FLOAT32 and is_quantized(op)


def find_kernel(op: Op) -> Kernel | None:
    if is_quantized(op) and op.kind in QUANTIZED_KERNELS:
        return QUANTIZED_KERNELS[op.kind]
    return KERNELS.get(op.kind)


def run_kernel(op: Op, inputs: list[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    kernel = find_kernel(op)
    if kernel is None:
        first = op.inputs[0] if op.inputs else None
        raise InternalError(f"no kernel for {op.kind} on {first.dtype if first else '?'}")
    result = kernel(op, *inputs)
    return result if isinstance(result, tuple) else (result,)


# Importing the modules registers their kernels.
from memfit.runtime.kernels import (  # noqa: E402
    conv,
    elementwise,
    int8,
    lstm,
    misc,
    partial,
    pool,
)

__all__ = [
    "KERNELS",
    "QUANTIZED_KERNELS",
    "Kernel",
    "conv",
    "elementwise",
    "find_kernel",
    "int8",
    "lstm",
    "misc",
    "partial",
    "pool",
    "register",
    "run_kernel",
]
