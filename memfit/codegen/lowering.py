"""How each op kind becomes calls of the C runtime's kernels (memfit_runtime.h).

A lowering is a function of an ``OpContext`` that returns the C statements of one op; the
emitter puts them in a block of their own, so they may declare locals (views, parameter
structs). Pointers come from the context: activations at their planned arena offsets (a view
in place inside another tensor's bytes has that tensor's strides), constants as arrays in
``<name>_weights.c``, the op's scratch at its planned offset. The lowerings themselves live in
``lower_compute`` (arithmetic) and ``lower_movement`` (data movement); importing this module
registers them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from memfit.codegen.views import View
from memfit.errors import InternalError, UnsupportedOpError
from memfit.ir.core import Graph, Op, Tensor
from memfit.planning.storage import InPlace

MAX_RANK = 6
"""memfit_runtime.h's MF_MAX_RANK: the largest rank of an ``mf_nd``."""


class OpContext:
    """The op being lowered, and where its tensors are (implemented by the emitter)."""

    op: Op
    graph: Graph
    in_place: InPlace | None

    def view(self, tensor: Tensor) -> View:
        """The ``mf_view`` of an activation or a constant (rank <= 4)."""
        raise NotImplementedError

    def strides(self, tensor: Tensor) -> tuple[int, ...]:
        """Element strides of an activation or a constant, one per axis."""
        raise NotImplementedError

    def pointer(self, tensor: Tensor | None) -> str:
        """A typed pointer to the tensor's first element (``NULL`` for an absent input)."""
        raise NotImplementedError

    def address(self, tensor: Tensor, element_offset: int) -> str:
        """A typed pointer ``element_offset`` elements past the tensor's first element."""
        raise NotImplementedError

    def array(self, data: np.ndarray, description: str) -> str:
        """A constant array for this op (e.g. packed weights); returns its typed pointer."""
        raise NotImplementedError

    def scratch(self, c_type: str) -> str:
        """The op's planned scratch as a ``c_type`` pointer."""
        raise NotImplementedError

    def scratch_bytes(self) -> int:
        """Bytes of scratch the plan reserved for this op."""
        raise NotImplementedError

    def temporary(self, c_type: str) -> str:
        """The temporary of an op that runs in place (the last bytes of its scratch, after its
        kernel's workspace) as a ``c_type`` pointer."""
        raise NotImplementedError


Lowering = Callable[[OpContext], list[str]]
LOWERINGS: dict[str, Lowering] = {}


def lowers(*kinds: str) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for kind in kinds:
            LOWERINGS[kind] = fn
        return fn

    return register


def unsupported(op: Op, graph: Graph, why: str = "") -> UnsupportedOpError:
    kinds = ", ".join(sorted(LOWERINGS))
    reason = f": {why}" if why else " has no C kernel yet"
    return UnsupportedOpError(
        f"op {op.name!r} ({op.kind}) in model {graph.name!r}{reason}; generated C supports {kinds}"
    )


# ---- C text ---------------------------------------------------------------------------------


def c_ints(values: Iterable[int]) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def declare_view(name: str, view: View) -> str:
    return f"const mf_view {name} = {view.initializer()};"


def declare_nd(name: str, dims: Sequence[int], strides: Sequence[int]) -> str:
    """An ``mf_nd`` (rank 0 is given as one element of rank 1)."""
    if len(dims) > MAX_RANK:
        raise InternalError(f"rank {len(dims)} exceeds the runtime's MF_MAX_RANK {MAX_RANK}")
    if not dims:
        dims, strides = (1,), (1,)
    pad = MAX_RANK - len(dims)
    return (
        f"const mf_nd {name} = {{{len(dims)}, {c_ints([*dims, *[1] * pad])}, "
        f"{c_ints([*strides, *[0] * pad])}}};"
    )


def declare_tensor_nd(context: OpContext, name: str, tensor: Tensor) -> str:
    return declare_nd(name, tensor.shape, context.strides(tensor))


# Importing the lowerings registers them.
from memfit.codegen import lower_compute, lower_movement  # noqa: E402

__all__ = ["LOWERINGS", "OpContext", "lower_compute", "lower_movement", "lowers", "unsupported"]
