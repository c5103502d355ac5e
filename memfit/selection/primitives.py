"""The convolution primitives of ``memfit/codegen/runtime/mf_primitives.h``, Python side.

For each (primitive, layout): which layers it applies to, the exact workspace bytes its C code
uses (the tests fill the workspace with a canary and check that the code touches exactly
that many bytes), the C function, and the weights arranged as that function reads them.

``default`` is memfit's own conv2d kernel (``mf_conv2d_f32`` / ``mf_conv2d_s8``: im2col panels of
a few pixels and a register-blocked GEMM, NHWC); it is a choice like the others and what
generated code uses when no choice is made.

Layers are float32, or int8 as TFLite Micro computes them (int8 activations and weights, int32
bias, per-channel requantization): every primitive but Winograd and depthwise has an int8
version, bit-exact with ``mf_conv2d_s8``. Winograd's transforms multiply by halves, so its
int8 sums would not be TFLite's integers; memfit's selection chooses for conv2d only, so the
depthwise primitive has no int8 version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memfit.codegen import params
from memfit.errors import InternalError
from memfit.ir.core import Op, Tensor
from memfit.ir.dtypes import DType
from memfit.runtime.kernels import is_hybrid, is_quantized

NHWC, NCHW = "nhwc", "nchw"
LAYOUTS = (NHWC, NCHW)
FLOAT_BYTES = 4
INT32_BYTES = 4
"""An int8 primitive's accumulators and products."""


def layer_dtype(op: Op) -> DType | None:
    """FLOAT32 for a float layer, INT8 for an int8 layer as TFLite Micro computes it (int8
    activations and constant weights, no or int32 bias), None for anything else."""
    x, weights, bias = op.inputs[0], op.input(1), op.input(2)
    if x is None or weights is None or weights.data is None:
        return None
    if not is_quantized(op):
        # float weights too: a hybrid layer (int8 weights) has no primitive
        float_layer = (x.dtype, weights.dtype, op.output.dtype) == (DType.FLOAT32,) * 3
        return DType.FLOAT32 if float_layer else None
    int8 = (x.dtype, weights.dtype, op.output.dtype) == (DType.INT8,) * 3
    int32_bias = bias is None or bias.dtype is DType.INT32
    return DType.INT8 if int8 and int32_bias and not is_hybrid(op) else None


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
    int8: bool = True
    """It has an int8 version."""

    def applies(self, op: Op) -> bool:
        """True when the primitive can compute ``op`` (float32, or int8 where it has an int8
        version)."""
        if op.kind != self.kind:
            return False
        dtype = layer_dtype(op)
        if dtype is None or (dtype is DType.INT8 and not self.int8):
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
        """Exact bytes of workspace one call uses (the same for either layout). int8: the
        im2col columns / im2row rows are int8; kn2row's products and kn2row_acc's accumulator
        (of the output, not of one tap's product) are int32."""
        g = geometry(op)
        int8 = layer_dtype(op) is DType.INT8
        if self.name == "default":
            return params.workspace_bytes(op)
        if self.name in ("im2col", "im2row"):
            return g.kh * g.kw * g.cin * g.oh * g.ow * (1 if int8 else FLOAT_BYTES)
        if self.name == "kn2row":
            return g.kh * g.kw * g.og * g.h * g.w * (INT32_BYTES if int8 else FLOAT_BYTES)
        if self.name == "kn2row_acc":
            if int8:
                return g.og * g.oh * g.ow * INT32_BYTES
            return g.og * g.h * g.w * FLOAT_BYTES
        if self.name == "winograd":
            tiles = math.ceil(g.oh / 2) * math.ceil(g.ow / 2)
            return 16 * tiles * (g.c + g.m) * FLOAT_BYTES
        return 0

    def c_function(self, layout: str, int8: bool = False) -> str:
        suffix = "s8" if int8 else "f32"
        if self.name == "default":
            return f"mf_conv2d_{suffix}"
        return f"mf_prim_{self.name}_{layout}_{suffix}"


PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in (
        Primitive("default", "conv2d", (NHWC,), "memfit's kernel: im2col panels + packed GEMM"),
        Primitive("direct", "conv2d", LAYOUTS, "direct loops, no workspace"),
        Primitive("im2col", "conv2d", (NCHW,), "im2col + GEMM"),
        Primitive("im2row", "conv2d", (NHWC,), "im2row + GEMM"),
        Primitive("kn2row", "conv2d", LAYOUTS, "kn2row: K*K 1x1 GEMMs, shift-add"),
        Primitive("kn2row_acc", "conv2d", LAYOUTS, "kn2row accumulating"),
        Primitive("winograd", "conv2d", LAYOUTS, "Winograd F(2x2,3x3)", int8=False),
        Primitive("gemm1x1", "conv2d", LAYOUTS, "1x1 as one GEMM"),
        Primitive("depthwise", "depthwise_conv2d", LAYOUTS, "depthwise direct", int8=False),
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
    """The weights of ``op`` as ``choice``'s C function reads them (flat; float32, or int8 for
    an int8 layer)."""
    data = op.input(1).data  # type: ignore[union-attr]
    if data is None:
        raise InternalError(f"op {op.name}: weights are not constant")
    dtype = np.int8 if layer_dtype(op) is DType.INT8 else np.float32
    if choice.primitive == "default":  # int8: mf_conv2d_s8 reads the IR's weights as they are
        return params.packed_conv_weights(op) if dtype is np.float32 else data.reshape(-1)
    w = np.asarray(data, dtype)
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
    return np.ascontiguousarray(arranged, dtype).reshape(-1)


_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)


def winograd_weights(w: np.ndarray) -> np.ndarray:
    """U[16][C][M] = G g G^T of every 3x3 filter g (IR weights [M][3][3][C])."""
    u = np.einsum("ai,mijc,bj->abcm", _G, w.astype(np.float64), _G)
    return u.reshape(16, w.shape[3], w.shape[0]).astype(np.float32)


def conversion_bytes(tensor: Tensor) -> int:
    """Bytes of an activation converted between layouts (its buffer in the workspace)."""
    return math.prod(tensor.shape) * tensor.dtype.itemsize
