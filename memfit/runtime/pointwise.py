"""A pointwise (1x1) convolution run in place, as the planner allows it
(``memfit.planning.storage``) and as the C kernel runs it: output pixels in flat (batch, row,
column) order, a block at a time (``memfit.planning.scratch.pointwise_block_pixels``), each
block computed from the input as it is in the arena at that moment into the op's temporary in
the arena, then stored at the output's positions. A plan whose offsets let a block overwrite
input pixels still to be read gives wrong numbers here, as it would in C.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memfit.ir.core import Op, Tensor
from memfit.planning.scratch import pointwise_block_pixels
from memfit.runtime.kernels import run_kernel


def run_pointwise_in_place(
    op: Op,
    args: Sequence[np.ndarray | None],
    output: np.ndarray,
    temporary: np.ndarray,
) -> None:
    """Compute ``op`` (a 1x1 conv2d without padding) from ``args[0]`` into ``output``, both
    views of the arena, block by block through ``temporary`` (a view of the arena holding one
    block: [pixels, output channels])."""
    x = args[0]
    assert x is not None
    sh, sw = op.attrs["strides"]
    sampled = x[:, ::sh, ::sw, :]  # input pixel q(p) of every output pixel p, still a view
    n, ho, wo, _ = output.shape
    pixels = n * ho * wo
    block = pointwise_block_pixels(op)
    ops: dict[int, Op] = {}
    for start in range(0, pixels, block):
        count = min(block, pixels - start)
        where = np.unravel_index(np.arange(start, start + count), (n, ho, wo))
        read = sampled[where][None, None]  # a copy: the input as the arena holds it now
        if count not in ops:
            ops[count] = _block_op(op, count)
        (result,) = run_kernel(ops[count], [read, *args[1:]])
        temporary[:count] = result.reshape(count, -1)
        output[where] = temporary[:count]


def _block_op(op: Op, pixels: int) -> Op:
    """``op`` on one row of ``pixels`` input pixels, stride 1: the same weights, quantization
    and activation."""
    x, out = op.inputs[0], op.output
    assert x is not None
    row = Tensor(x.name, (1, 1, pixels, x.shape[-1]), x.dtype, x.quant)
    result = Tensor(out.name, (1, 1, pixels, out.shape[-1]), out.dtype, out.quant)
    attrs = {**op.attrs, "strides": (1, 1), "pads": (0, 0, 0, 0)}
    return Op(op.kind, op.name, [row, *op.inputs[1:]], [result], attrs)
