"""Kernel scratch (workspace) bytes per op, planned in the arena like tensors.

A scratch buffer is live only during its op's step. The NumPy kernels need none, so the registry
is empty today; code-generation primitives register the workspace their C kernels use, e.g.::

    @register_scratch("conv2d")
    def _im2col(op: Op) -> int:
        ...

An op that runs in place (``memfit.planning.storage``) may need a temporary that it would not
need writing a fresh output; ``IN_PLACE_SCRATCH`` holds those, and the planner adds them only
for the ops the storage map runs in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from memfit.ir.core import Op
from memfit.ir.dtypes import DType

ScratchFunction = Callable[[Op], int]

SCRATCH: dict[str, ScratchFunction] = {}
"""Op kind -> bytes of workspace one execution of the op needs."""


def register_scratch(*kinds: str) -> Callable[[ScratchFunction], ScratchFunction]:
    def decorate(fn: ScratchFunction) -> ScratchFunction:
        for kind in kinds:
            SCRATCH[kind] = fn
        return fn

    return decorate


def scratch_bytes(op: Op) -> int:
    """Workspace bytes ``op`` needs while it runs (0 when its kind registers none)."""
    fn = SCRATCH.get(op.kind)
    return fn(op) if fn is not None else 0


@contextlib.contextmanager
def without_workspace() -> Iterator[None]:
    """Within the block, no op kind has workspace (e.g. to plan the activations alone while
    ``memfit.codegen.plan.kernel_workspace`` is in force)."""
    saved = dict(SCRATCH)
    SCRATCH.clear()
    try:
        yield
    finally:
        SCRATCH.clear()
        SCRATCH.update(saved)


IN_PLACE_SCRATCH: dict[str, ScratchFunction] = {}
"""Op kind -> bytes of the temporary one execution needs when its output overwrites its input."""


def register_in_place_scratch(*kinds: str) -> Callable[[ScratchFunction], ScratchFunction]:
    def decorate(fn: ScratchFunction) -> ScratchFunction:
        for kind in kinds:
            IN_PLACE_SCRATCH[kind] = fn
        return fn

    return decorate


def in_place_scratch_bytes(op: Op) -> int:
    """Temporary bytes ``op`` needs when it runs in place (0 when its kind registers none)."""
    fn = IN_PLACE_SCRATCH.get(op.kind)
    return fn(op) if fn is not None else 0


@register_in_place_scratch("depthwise_conv2d", "max_pool2d", "avg_pool2d")
def _one_output_channel(op: Op) -> int:
    """Depthwise convolution and pooling in place compute one output channel (all batches
    reuse it in turn) before storing it over the input channel it came from."""
    _, height, width, _ = op.output.shape
    return height * width * op.output.dtype.itemsize


def pointwise_block_pixels(op: Op) -> int:
    """Output pixels a pointwise convolution in place computes into its temporary at a time:
    one GEMM tile of the C kernels (``MF_F32_MR`` float, ``MF_S8_MR`` int8 output pixels)."""
    return 8 if op.output.dtype is DType.FLOAT32 else 4


@register_in_place_scratch("conv2d")
def _one_output_block(op: Op) -> int:
    """A pointwise convolution in place computes one block of output pixels (all their
    channels) before storing it over input pixels it has read."""
    return pointwise_block_pixels(op) * op.output.shape[-1] * op.output.dtype.itemsize
