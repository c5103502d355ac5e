"""Activation tensors as the runtime sees them: an arena pointer and an ``mf_view``.

``mf_view`` (memfit_runtime.h) describes an NHWC box: dims n, h, w, c and the element strides
of n, h and w; channels are always contiguous. A tensor of rank below 4 takes leading dims of
1 (a [N, K] matrix is n=1, h=1, w=N, c=K). Strides come from the plan's placement: a tensor
written in place into a slice of a concatenation's output has that output's strides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from memfit.errors import UnsupportedModelError
from memfit.ir.core import Tensor
from memfit.planning.arena import ArenaPlan
from memfit.planning.storage import contiguous_strides


@dataclass(frozen=True)
class View:
    """Where an activation is and how it is laid out, in elements."""

    offset: int
    dims: tuple[int, int, int, int]
    strides: tuple[int, int, int]

    @property
    def contiguous(self) -> bool:
        _, h, w, c = self.dims
        return self.strides == (h * w * c, w * c, c)

    @property
    def elements(self) -> int:
        return math.prod(self.dims)

    def initializer(self) -> str:
        """The C initializer of this view's ``mf_view``."""
        return "{" + ", ".join(str(v) for v in (*self.dims, *self.strides)) + "}"


def tensor_view(tensor: Tensor, arena: ArenaPlan) -> View:
    """The view of activation ``tensor`` in the planned arena."""
    placement = arena.placements[tensor.name]
    return _view(tensor, placement.offset, placement.strides)


def constant_view(tensor: Tensor) -> View:
    """The view of a constant: dense, at the start of its own array."""
    return _view(tensor, 0, None)


def _view(tensor: Tensor, offset: int, strides: tuple[int, ...] | None) -> View:
    itemsize = tensor.dtype.itemsize
    shape = tensor.shape
    if len(shape) > 4:
        raise UnsupportedModelError(
            f"tensor {tensor.name} has rank {len(shape)}; generated C handles tensors of rank "
            "4 or less (NHWC)"
        )
    byte_strides = strides or contiguous_strides(shape, itemsize)
    # Leading axes of size 1 never change an address; give them the natural stride.
    padded_shape = (1,) * (4 - len(shape)) + tuple(shape)
    natural = contiguous_strides(padded_shape, itemsize)
    padded = tuple(natural[: 4 - len(shape)]) + tuple(byte_strides)
    if padded_shape[3] > 1 and padded[3] != itemsize:
        raise UnsupportedModelError(
            f"tensor {tensor.name} is planned with non-contiguous channels (strides "
            f"{byte_strides}); generated C needs channels contiguous"
        )
    elements = tuple(
        (s // itemsize if d > 1 else n // itemsize)
        for d, s, n in zip(padded_shape, padded, natural, strict=True)
    )
    n, h, w, c = padded_shape
    return View(offset, (n, h, w, c), (elements[0], elements[1], elements[2]))
