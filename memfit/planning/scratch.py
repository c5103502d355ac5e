"""Kernel scratch (workspace) bytes per op, planned in the arena like tensors.

A scratch buffer is live only during its op's step. The NumPy kernels need none, so the registry
is empty today; code-generation primitives register the workspace their C kernels use, e.g.::

    @register_scratch("depthwise_conv2d")
    def _depthwise(op: Op) -> int:
        return op.output.shape[-1] * 4
"""

from __future__ import annotations

from collections.abc import Callable

from memfit.ir.core import Op

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
