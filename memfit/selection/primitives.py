"""The convolution primitives of ``memfit/codegen/runtime/mf_primitives.h``, Python side.

For each (primitive, layout): which layers it applies to, the exact workspace bytes its C code
uses (the tests fill the workspace with a canary and check that the code touches exactly
that many bytes), the C function, and the weights arranged as that function reads them.

``default`` is memfit's own conv2d kernel (``mf_conv2d_f32``: im2col panels of a few pixels and a
register-blocked GEMM on packed weights, NHWC); it is a choice like the others and what
generated code uses when no choice is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memfit.codegen import params
from memfit.errors import InternalError
from memfit.ir.core import Op
from memfit.ir.dtypes import DType

NHWC, NCHW = "nhwc", "nchw"
LAYOUTS = (NHWC, NCHW)
FLOAT_BYTES = 4


@dataclass(frozen=True)
class Geometry:
    """A convolution layer's shape, as ``mf_prim_conv`` (fields in the struct's order, without
    the pixel strides, which depend on where the tensors live)."""

    n: int
    h: int
    w: int
    c: int
    oh: int
    ow: int
    m: int
    kh: int
    kw: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_top: int
    pad_left: int
    groups: int

    @property
    def cin(self) -> int:
        """Input channels per group."""
        return self.c // self.groups

    @property
    def og(self) -> int:
        """Output channels per group."""
        return self.m // self.groups

    @property
    def key(self) -> str:
        """A text key of the shape (for cost caches)."""
        return "x".join(str(v) for v in vars(self).values())


def geometry(op: Op) -> Geometry:
    """The geometry of a conv2d or depthwise_conv2d op."""
    x = op.inputs[0]
    if x is None or len(x.shape) != 4:
        raise InternalError(f"op {op.name} ({op.kind}) has no 4-d input")
    n, h, w, c = x.shape
    _, oh, ow, m = op.output.shape
    g = params.conv(op)
    groups = c if op.kind == "depthwise_conv2d" else g.groups
    return Geometry(
        n, h, w, c, oh, ow, m, g.kh, g.kw, g.stride_h, g.stride_w,
        g.dilation_h, g.dilation_w, g.pad_top, g.pad_left, groups,
    )  # fmt: skip


@dataclass(frozen=True)
class Primitive:
    name: str
    kind: str
    """The op kind it computes: conv2d or depthwise_conv2d."""
    layouts: tuple[str, ...]
    description: str

    def applies(self, op: Op) -> bool:
        """True when the primitive can compute ``op`` (float32 only)."""
        if op.kind != self.kind or op.output.dtype is not DType.FLOAT32:
            return False
        x = op.inputs[0]
        weights = op.input(1)
        if x is None or x.dtype is not DType.FLOAT32 or weights is None:
            return False
        if weights.data is None or weights.dtype is not DType.FLOAT32:  # hybrid: int8 weights
            return False
        g = geometry(op)
        if self.name in ("kn2row", "kn2row_acc"):
            return g.stride_h == g.stride_w == 1
        if self.name == "winograd":
            dilated = g.dilation_h != 1 or g.dilation_w != 1
            return (g.kh, g.kw, g.stride_h, g.stride_w, g.groups) == (3, 3, 1, 1, 1) and not dilated
        if self.name == "gemm1x1":
            one = (g.kh, g.kw, g.stride_h, g.stride_w, g.pad_top, g.pad_left) == (1,) * 4 + (0, 0)
            return one and (g.oh, g.ow) == (g.h, g.w)
        return True

    def workspace_bytes(self, op: Op) -> int:
        """Exact bytes of workspace one call uses (the same for either layout)."""
        g = geometry(op)
        if self.name == "default":
            return params.workspace_bytes(op)
        if self.name in ("im2col", "im2row"):
            return g.kh * g.kw * g.cin * g.oh * g.ow * FLOAT_BYTES
        if self.name == "kn2row":
            return g.kh * g.kw * g.og * g.h * g.w * FLOAT_BYTES
        if self.name == "kn2row_acc":
            return g.og * g.h * g.w * FLOAT_BYTES
        if self.name == "winograd":
            tiles = math.ceil(g.oh / 2) * math.ceil(g.ow / 2)
            return 16 * tiles * (g.c + g.m) * FLOAT_BYTES
        return 0

    def c_function(self, layout: str) -> str:
        if self.name == "default":
            return "mf_conv2d_f32"
        return f"mf_prim_{self.name}_{layout}_f32"


PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in (
        Primitive("default", "conv2d", (NHWC,), "memfit's kernel: im2col panels + packed GEMM"),
        Primitive("direct", "conv2d", LAYOUTS, "direct loops, no workspace"),
        Primitive("im2col", "conv2d", (NCHW,), "im2col + GEMM"),
        Primitive("im2row", "conv2d", (NHWC,), "im2row + GEMM"),
        Primitive("kn2row", "conv2d", LAYOUTS, "kn2row: K*K 1x1 GEMMs, shift-add"),
        Primitive("kn2row_acc", "conv2d", LAYOUTS, "kn2row accumulating"),
        Primitive("winograd", "conv2d", LAYOUTS, "Winograd F(2x2,3x3)"),
        Primitive("gemm1x1", "conv2d", LAYOUTS, "1x1 as one GEMM"),
        Primitive("depthwise", "depthwise_conv2d", LAYOUTS, "depthwise direct"),
    )
}


@dataclass(frozen=True, order=True)
class Choice:
    """One way to run a layer: a primitive in a layout."""

    primitive: str
    layout: str

    @property
    def label(self) -> str:
        return f"{self.primitive}/{self.layout}"

    def to_json(self) -> dict[str, str]:
        return {"primitive": self.primitive, "layout": self.layout}


def choices(op: Op) -> list[Choice]:
    """Every (primitive, layout) that can run ``op``, sorted."""
    return sorted(
        Choice(p.name, layout) for p in PRIMITIVES.values() if p.applies(op) for layout in p.layouts
    )


def workspace_bytes(op: Op, choice: Choice) -> int:
    return PRIMITIVES[choice.primitive].workspace_bytes(op)


def arrange_weights(op: Op, choice: Choice) -> np.ndarray:
    """The weights of ``op`` as ``choice``'s C function reads them (float32, flat)."""
    if choice.primitive == "default":
        return params.packed_conv_weights(op)
    data = op.input(1).data  # type: ignore[union-attr]
    if data is None:
        raise InternalError(f"op {op.name}: weights are not constant")
    w = np.asarray(data, np.float32)
    g = geometry(op)
    if choice.primitive == "depthwise":  # IR [1][KH][KW][M]
        arranged = w[0] if choice.layout == NHWC else w[0].transpose(2, 0, 1)
    elif choice.primitive == "winograd":
        arranged = winograd_weights(w)
    else:  # IR [M][KH][KW][C/g]
        grouped = w.reshape(g.groups, g.og, g.kh, g.kw, g.cin)
        if choice.layout == NHWC:  # [g][KH][KW][C/g][M/g]
            arranged = grouped.transpose(0, 2, 3, 4, 1)
        elif choice.primitive in ("kn2row", "kn2row_acc"):  # [g][KH][KW][M/g][C/g]
            arranged = grouped.transpose(0, 2, 3, 1, 4)
        else:  # [M][C/g][KH][KW]
            arranged = w.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(arranged, np.float32).reshape(-1)


_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)


def winograd_weights(w: np.ndarray) -> np.ndarray:
    """U[16][C][M] = G g G^T of every 3x3 filter g (IR weights [M][3][3][C])."""
    u = np.einsum("ai,mijc,bj->abcm", _G, w.astype(np.float64), _G)
    return u.reshape(16, w.shape[3], w.shape[0]).astype(np.float32)


def conversion_bytes(shape: tuple[int, ...]) -> int:
    """Bytes of a float activation converted between layouts (its buffer in the workspace)."""
    return math.prod(shape) * FLOAT_BYTES
