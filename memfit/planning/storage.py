"""Which tensors share bytes: every activation maps to a storage root, a byte offset in it and,
for a strided view, byte strides.

The planner places storage roots only; a tensor that is not its own root lives at its root's
offset plus its own byte offset. These rules make tensors share a root, each with an option to
turn it off (``StorageOptions``):

- **Reshape views.** A reshape's output is its input's bytes under another shape; the reshape
  moves no data.
- **Concatenation in place.** Each input of a concat is a view of its slice of the output (the
  output is the root): the input's producer writes straight into the slice and the concat moves
  no data. Along the outermost axis that is not 1 a slice is contiguous; along an inner axis
  (channels in NHWC) it is a strided view. Nested concats compose.
- **Slice views.** A ``strided_slice`` with positive steps, the last axis' step 1, is a view of
  its input: its output is the box of the input's bytes it selects, under the input's strides
  times the steps (the input's own strides when it is a view itself), and the slice moves no
  data. FFMT's tiles read their windows of the chain input this way instead of copying each
  into a buffer of its own. The view keeps the input's root live until the slice's last reader
  (``memfit.planning.storage_choice`` switches it off where that raises the peak); an output
  that is a graph output is copied as before.
- **Elementwise in place.** An elementwise op (binary arithmetic, activations, int8
  requantization) writes its output over an input that dies there, element by element.
- **Depthwise convolution and pooling in place** (as MCUNet's TinyEngine runs depthwise
  convolution). When output channel c is computed from input channel c alone (depth multiplier
  1; max and average pooling) the output overwrites the input channel by channel: output
  channel c of batch b is computed into a one-channel temporary (``memfit.planning.scratch``),
  then stored at the output's channel-c positions, (b*Ho*Wo + h*Wo + w)*C + c, which are
  channel-c positions of batch b or of earlier batches as long as Ho*Wo <= H*W; those input
  elements are no longer needed then, and no other channel is touched.
- **Pointwise convolution in place** (as vMCU and TinyEngine run 1x1 convolutions). A conv2d
  with a 1x1 kernel and no padding computes output pixel p = (b, oh, ow) from input pixel
  q(p) = (b, oh*sh, ow*sw) alone, and q grows with p. The kernel runs output pixels in flat
  (b, oh, ow) order in blocks (``memfit.planning.scratch.pointwise_block_pixels``: one GEMM
  tile of the C kernels), each computed from the input into a temporary of one block
  (``memfit.planning.scratch``) and then stored at the output's positions. The output's bytes
  start at its root's start; the input is stored ``D = max(0, output bytes - input bytes)``
  bytes into the same root (the larger of the two sizes): a smaller output (Cout < Cin, or a
  stride) keeps the input's root, a larger one takes the input, with every tensor stored with
  it, to the end of its own root. Storing the blocks before pixel p has written output bytes
  [0, p*Cout*e) and the input pixels still to be read start at byte D + q(p)*Cin*e, so the
  rule needs p*Cout <= D/e + q(p)*Cin for every output pixel p; with stride 1 that always
  holds (D/e = P*(Cout - Cin) when it is positive, P the output pixels), with a stride it is
  checked. Input and output share the element type (int8 or float32; a hybrid layer, float
  with int8 weights, quantizes a whole batch item with one scale, so it is never split), the
  fused activation acts per output element, groups are fine (a block computes all of them
  before it stores), weights and bias are constants, and the output has more than one block
  (a single block's temporary is the whole output). An output no larger than its input may
  also start where a contiguous input starts inside a larger root (the output of a strided
  depthwise convolution in place, say): the one exception to the whole-root condition below.
- **Accumulation in place.** A ``partial_*`` op (fused depthwise tiling,
  ``memfit.tiling.fdt``, and a spatially tiled chain ending in a reduction) writes its
  accumulator over the previous partition's (``memfit.ir.ops.ACCUMULATOR_INPUT``): output
  element i reads accumulator element i only, so ``out[i] = acc[i] + sum`` may store where it
  read. Input 0, the slice, feeds many output elements: never overwritten. The
  ``accumulator_output`` (or ``accumulator_average``) after the last part writes the output
  over the accumulator, element i from element i: in float32 the sizes are equal (elementwise);
  an int8 output is a quarter of the int32 accumulator and is stored in its first bytes
  (*narrowing*): output element i lands in bytes of accumulator element i//4 or earlier, all
  read already when the kernel goes in ascending element order, which it must.

Why these are safe in every op order the scheduler may choose: a root is one buffer, live from
the first write of any tensor it holds to the last read of any of them (see
``memfit.planning.lifetimes``), so nothing outside a root disturbs it. Inside a root, bytes are
written twice only by an op that runs in place, and such an op may overwrite a root only when

- its input covers the whole root (except as above for a pointwise convolution), with the
  output's shape (elementwise: no broadcasting of that input) and dtype, so the root is no
  larger than what the op overwrites and the output never keeps a larger buffer alive (the
  exceptions are depthwise convolution and pooling with a stride, the int8 accumulator output
  and a pointwise convolution to fewer channels or inside a larger root, whose smaller outputs
  keep that root, and a pointwise convolution to more channels, whose larger root is live from
  the input's first write; ``memfit.planning.storage_choice`` weighs both),
- no tensor in the root is a graph input or output, and the op reads no other tensor of it,
- every reader of every tensor in the root is the op itself or one of its ancestors in the
  graph, so it has run before the op in every topological order: the input dies at the op. Of
  several inputs that qualify (a residual add whose other reader runs before), the first is
  taken.

Concat slices are disjoint, and the concat's own write (``memfit.runtime.executor`` runs every
kernel) stores exactly the bytes its inputs already put there, so a concat input may have other
readers: they read the slice while the root is live. An input becomes a view only when it is
written by an op (not a graph input, not a constant), is no graph output, appears once, has the
output's dtype and quantization (an int8 concat requantizes other inputs), covers its whole
root (so the slice holds everything stored with it) and, for a strided slice, every tensor in
its root is a box of it (a reshape view of it is not); the concat must have no fused
activation. Other inputs are copied by the concat as before (``InPlace.writes``).

Decisions are made in one canonical topological order (by the graph's tensor order, not by its
op order), so reordering the ops, as the scheduler does, gives the same map: a plan file can
rebuild it.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from memfit.errors import InternalError
from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.dtypes import DType
from memfit.ir.ops import ACCUMULATOR_INPUT
from memfit.planning.scratch import pointwise_block_pixels

ELEMENTWISE_KINDS = frozenset(
    {
        "add",
        "sub",
        "mul",
        "maximum",
        "minimum",
        "relu",
        "relu6",
        "relu_n1_to_1",
        "logistic",
        "tanh",
        "hard_swish",
        "leaky_relu",
        "clamp",
        "quantize",
    }
)
"""Op kinds whose output element i depends only on element i of each (unbroadcast) input."""

POOL_KINDS = frozenset({"max_pool2d", "avg_pool2d"})
ACCUMULATING_KINDS = frozenset(ACCUMULATOR_INPUT)
"""Op kinds that add into their input 2, an accumulator shaped like the output."""


@dataclass(frozen=True, kw_only=True)
class StorageOptions:
    """Which kinds of byte sharing ``build_storage`` may use (all of them by default), and ops
    that must not run in place although their kind may (``not_in_place``, op names)."""

    reshape_views: bool = True
    slice_views: bool = True
    concat_in_place: bool = True
    elementwise_in_place: bool = True
    depthwise_in_place: bool = True
    pool_in_place: bool = True
    pointwise_in_place: bool = True
    accumulator_in_place: bool = True
    not_in_place: frozenset[str] = frozenset()

    @classmethod
    def only(cls, *flags: str) -> StorageOptions:
        """The options with the named kinds of sharing on and every other one off."""
        unknown = set(flags) - set(SHARING_FLAGS)
        if unknown:
            raise ValueError(f"unknown storage options {sorted(unknown)}")
        return cls(**{flag: flag in flags for flag in SHARING_FLAGS})  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self)
        data["not_in_place"] = sorted(self.not_in_place)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StorageOptions:
        """The options ``to_json`` wrote. A kind of sharing missing from ``data`` is off: the
        file was written before it existed, so its plan does not use it."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown storage options {sorted(unknown)}")
        flags = {flag: bool(data.get(flag, False)) for flag in SHARING_FLAGS}
        excluded = data.get("not_in_place", [])
        if not isinstance(excluded, list) or not all(isinstance(n, str) for n in excluded):
            raise ValueError("not_in_place must be a list of op names")
        return cls(**flags, not_in_place=frozenset(excluded))


SHARING_FLAGS = tuple(
    name for name in StorageOptions.__dataclass_fields__ if name != "not_in_place"
)
"""The kinds of byte sharing ``StorageOptions`` switches, by field name."""

NO_SHARING = StorageOptions.only()
"""Every tensor its own root: what TensorFlow Lite Micro plans."""


@dataclass(frozen=True)
class StorageRef:
    """Where a tensor's bytes are: ``offset`` bytes into the storage of tensor ``root``; byte
    ``strides`` for a strided view (None: contiguous in C order)."""

    root: str
    offset: int = 0
    strides: tuple[int, ...] | None = None


@dataclass(frozen=True)
class InPlace:
    """How an op shares bytes instead of writing a fresh buffer.

    ``kind`` is "reshape" or "slice" (its output is a view of input 0), "concat" (the inputs at
    positions ``inputs`` are views of the output: their producers wrote them in place; the
    concat copies only the others), or says how the output overwrites the input at position
    ``inputs[0]``: "elementwise" (element i over element i, same size: accumulators included),
    "narrowing" (element i over the start of the input's bytes, in ascending element order: the
    output's elements are smaller), "depthwise" or "pool" (channel by channel through a
    one-channel temporary), "pointwise" (output pixels block by block through a one-block
    temporary). ``writes`` is False for an op that moves no data at all: a reshape or slice
    view, a concat all of whose inputs are views.
    """

    kind: str
    inputs: tuple[int, ...]
    writes: bool

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "inputs": list(self.inputs), "writes": self.writes}


@dataclass(frozen=True)
class StorageMap:
    """Every activation tensor name -> its storage root, byte offset and strides in that root;
    which ops share bytes and how; the options the map was built with."""

    refs: Mapping[str, StorageRef]
    in_place: Mapping[str, InPlace] = field(default_factory=dict)
    options: StorageOptions = StorageOptions()

    def root(self, name: str) -> str:
        return self.refs[name].root

    def offset(self, name: str) -> int:
        return self.refs[name].offset

    def roots(self) -> tuple[str, ...]:
        """Root names in the order their tensors appear in the map."""
        return tuple(name for name, ref in self.refs.items() if ref.root == name)

    def members(self) -> dict[str, tuple[str, ...]]:
        """Root name -> every tensor stored in it (the root itself first)."""
        groups: dict[str, list[str]] = {root: [] for root in self.roots()}
        for name, ref in self.refs.items():
            if name != ref.root:
                groups[ref.root].append(name)
        return {root: (root, *names) for root, names in groups.items()}

    def moves_no_data(self, op_name: str) -> bool:
        """True when the op's output already holds its result once its inputs are written: a
        reshape or slice view, or a concat all of whose inputs were written in place."""
        entry = self.in_place.get(op_name)
        return entry is not None and not entry.writes

    def in_place_json(self) -> dict[str, dict[str, Any]]:
        return {name: entry.to_json() for name, entry in sorted(self.in_place.items())}


def build_storage(graph: Graph, options: StorageOptions | None = None) -> StorageMap:
    """The storage map of ``graph`` under ``options`` (default: every kind of sharing).

    With every option off (``NO_SHARING``) every tensor is its own root.
    """
    return StorageBuilder(graph).build(options)


class StorageBuilder:
    """Builds storage maps of one graph under any options, computing what they all share (the
    canonical order, which ops run before which) once. The graph must not change meanwhile."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.order = canonical_order(graph)
        self.index = {op.name: i for i, op in enumerate(self.order)}
        # ancestors[i]: bit j set when op j (canonical index) must run before op i
        self.ancestors: list[int] = []
        for op in self.order:
            mask = 0
            for t in op.activation_inputs:
                if t.producer is not None and t.producer.name in self.index:
                    j = self.index[t.producer.name]
                    mask |= self.ancestors[j] | 1 << j
            self.ancestors.append(mask)
        self.io = {t.name for t in graph.inputs} | {t.name for t in graph.outputs}
        self.pointwise = {
            op.name: pointwise_input_offset(op) for op in self.order if op.kind == "conv2d"
        }
        self._built: dict[StorageOptions, StorageMap] = {}

    def build(self, options: StorageOptions | None = None) -> StorageMap:
        """The storage map under ``options`` (default: every kind of sharing), built once per
        options (the storage choice asks for many maps, some of them again)."""
        options = StorageOptions() if options is None else options
        if options not in self._built:
            self._built[options] = _Builder(self, options).build()
        return self._built[options]


def contiguous_strides(shape: Sequence[int], itemsize: int) -> tuple[int, ...]:
    strides = []
    step = itemsize
    for dim in reversed(shape):
        strides.append(step)
        step *= max(dim, 1)
    return tuple(reversed(strides))


def _normalized(shape: Sequence[int], strides: Sequence[int], itemsize: int) -> tuple | None:
    """None when ``strides`` lay ``shape`` out contiguously (axes of size 1 never matter)."""
    natural = contiguous_strides(shape, itemsize)
    same = all(d == 1 or s == n for d, s, n in zip(shape, strides, natural, strict=True))
    return None if same else tuple(strides)


class _Builder:
    def __init__(self, shared: StorageBuilder, options: StorageOptions) -> None:
        self.graph = shared.graph
        self.options = options
        self.order = shared.order
        self.index = shared.index
        self.ancestors = shared.ancestors
        self.io = shared.io
        self.pointwise = shared.pointwise
        self.refs: dict[str, StorageRef] = {}
        self.groups: dict[str, list[str]] = {}
        self.in_place: dict[str, InPlace] = {}

    def build(self) -> StorageMap:
        for t in self.graph.inputs:
            self._new_root(t)
        for op in self.order:
            for t in op.outputs:
                if t.name in self.refs:
                    raise InternalError(f"tensor {t.name} is written twice (again by {op.name})")
                self._new_root(t)
            self._share(op)
        refs = {t.name: self.refs[t.name] for t in self.graph.activations()}
        return StorageMap(refs, self.in_place, self.options)

    # ---- the rules ----------------------------------------------------------------------
    def _share(self, op: Op) -> None:
        kind, options = op.kind, self.options
        if op.name in options.not_in_place:
            return
        if kind == "reshape" and options.reshape_views:
            self._reshape(op)
        elif kind == "strided_slice" and options.slice_views:
            self._slice(op)
        elif kind == "concat" and options.concat_in_place:
            self._concat(op)
        elif kind in ELEMENTWISE_KINDS and options.elementwise_in_place:
            self._elementwise(op)
        elif kind == "depthwise_conv2d" and options.depthwise_in_place:
            self._channel_by_channel(op, "depthwise")
        elif kind in POOL_KINDS and options.pool_in_place:
            self._channel_by_channel(op, "pool")
        elif kind == "conv2d" and options.pointwise_in_place:
            self._pointwise(op)
        elif kind in ACCUMULATING_KINDS and options.accumulator_in_place:
            self._accumulate(op)
        elif kind in ("accumulator_output", "accumulator_average") and (
            options.accumulator_in_place
        ):
            self._accumulator_output(op)

    def _reshape(self, op: Op) -> None:
        source, out = op.inputs[0], op.output
        if source is None or source.is_constant or source.nbytes != out.nbytes:
            return  # a reshape of a constant writes a fresh activation
        if source.name not in self.refs:
            raise InternalError(f"reshape {op.name} reads {source.name} before any op writes it")
        ref = self.refs[source.name]
        if ref.strides is not None:
            return  # a strided view has no contiguous reshape
        self._join(out, ref)
        self.in_place[op.name] = InPlace("reshape", (0,), writes=False)

    def _slice(self, op: Op) -> None:
        source, out = op.inputs[0], op.output
        if source is None or source.is_constant or len(op.outputs) != 1 or out.name in self.io:
            return
        if source.dtype is not out.dtype or source.quant != out.quant or not source.shape:
            return
        if any(reader.attrs.get("primitive") is not None for reader in out.consumers):
            return  # a primitive chosen by memfit.selection reads whole rows of pixels only
        if source.name not in self.refs:
            raise InternalError(
                f"strided_slice {op.name} reads {source.name} before any op writes it"
            )
        ref = self.refs[source.name]
        itemsize = source.dtype.itemsize
        strides = ref.strides or contiguous_strides(source.shape, itemsize)
        begin, steps = op.attrs["begin"], op.attrs["strides"]
        shrink = set(op.attrs.get("shrink_axes", ()))
        if any(s < 1 for s in steps) or (steps[-1] != 1 and source.shape[-1] > 1):
            return  # a reversed or channel-strided selection is no view the kernels read
        offset = ref.offset
        kept: list[int] = []
        for axis, (b, s, dim) in enumerate(zip(begin, steps, source.shape, strict=True)):
            start = b + dim if b < 0 else b
            if not 0 <= start < max(dim, 1):
                return
            offset += start * strides[axis]
            if axis not in shrink:
                kept.append(strides[axis] * s)
        if len(kept) != len(out.shape):
            return
        view = StorageRef(ref.root, offset, _normalized(out.shape, kept, itemsize))
        self._join(out, view)
        self.in_place[op.name] = InPlace("slice", (0,), writes=False)

    def _elementwise(self, op: Op) -> None:
        out = op.output
        shapes = [t.shape for t in op.inputs if t is not None]
        if len(op.outputs) != 1 or not all(_broadcasts_to(s, out.shape) for s in shapes):
            return
        source = op.inputs[0]
        if op.kind == "quantize" and (out.dtype, source and source.dtype) != (DType.INT8,) * 2:
            return  # only int8 -> int8 requantization keeps the element size
        for position, t in enumerate(op.inputs):
            if t is None or t.shape != out.shape or t.dtype is not out.dtype:
                continue
            if t in op.inputs[:position]:
                continue
            if self._may_overwrite(op, t):
                self._join(out, self.refs[t.name])
                self.in_place[op.name] = InPlace("elementwise", (position,), writes=True)
                return

    def _channel_by_channel(self, op: Op, kind: str) -> None:
        """Depthwise convolution or pooling over input 0, one channel at a time."""
        x, out = op.inputs[0], op.output
        if x is None or x.is_constant or len(x.shape) != 4 or len(out.shape) != 4:
            return
        n, h, w, c = x.shape
        n_out, ho, wo, c_out = out.shape
        if (n_out, c_out) != (n, c):
            return  # a depth multiplier above 1: output channel c is not input channel c
        if x.dtype is not out.dtype or ho * wo > h * w:
            return  # output channel c would land on input positions of other channels
        if x.name not in self.refs or self.refs[x.name].strides is not None:
            return  # the kernels address a contiguous input
        # Inside a larger root (after a strided op in place, as in a spatial tile's chain) the
        # output keeps that root: a resizing choice (memfit.planning.storage_choice).
        self._overwrite(op, 0, kind, whole_root=False)

    def _pointwise(self, op: Op) -> None:
        """A 1x1 convolution over input 0, output pixel block by block (see the module
        docstring): at the start of the input's root, or with the input at the end of its own."""
        x, out, offset = op.inputs[0], op.output, self.pointwise[op.name]
        if x is None or len(op.outputs) != 1 or offset is None:
            return
        if x.name not in self.refs:
            raise InternalError(f"conv2d {op.name} reads {x.name} before any op writes it")
        ref = self.refs[x.name]
        if out.nbytes <= x.nbytes:
            if ref.strides is None and self._may_overwrite(op, x, whole_root=False):
                self._join(out, ref)
                self.in_place[op.name] = InPlace("pointwise", (0,), writes=True)
        elif self._may_overwrite(op, x):
            self._relocate(ref.root, out.name, offset)
            self.in_place[op.name] = InPlace("pointwise", (0,), writes=True)

    def _accumulate(self, op: Op) -> None:
        slot = ACCUMULATOR_INPUT[op.kind]
        acc, out = op.input(slot), op.output
        if acc is None or acc.shape != out.shape or acc.dtype is not out.dtype:
            return  # the first partition starts the accumulator
        self._overwrite(op, slot, "elementwise")

    def _accumulator_output(self, op: Op) -> None:
        acc, out = op.inputs[0], op.output
        if acc is None or acc.shape != out.shape or out.dtype.itemsize > acc.dtype.itemsize:
            return
        same_size = out.dtype.itemsize == acc.dtype.itemsize
        self._overwrite(op, 0, "elementwise" if same_size else "narrowing")

    def _overwrite(self, op: Op, position: int, kind: str, whole_root: bool = True) -> None:
        """Store the output over input ``position`` if that input dies at ``op`` in every
        order (the caller has checked that the op's element order allows it)."""
        source = op.inputs[position]
        if source is not None and self._may_overwrite(op, source, whole_root):
            self._join(op.output, self.refs[source.name])
            self.in_place[op.name] = InPlace(kind, (position,), writes=True)

    def _concat(self, op: Op) -> None:
        out = op.output
        if op.attrs.get("activation", "none") != "none" or len(op.outputs) != 1:
            return  # a fused activation changes the bytes the inputs wrote
        inputs = list(op.inputs)
        if any(t is None for t in inputs) or not _is_concatenation(op):
            return
        axis = op.attrs["axis"] % len(out.shape)
        strides = contiguous_strides(out.shape, out.dtype.itemsize)
        placed: list[int] = []
        start = 0
        for position, t in enumerate(inputs):
            assert t is not None
            slot = start * strides[axis]
            start += t.shape[axis]
            if inputs.count(t) != 1 or not self._may_move(op, t):
                continue
            if self._move(t, out, slot, strides):
                placed.append(position)
        if placed:
            writes = len(placed) < len(inputs)
            self.in_place[op.name] = InPlace("concat", tuple(placed), writes)

    # ---- conditions ---------------------------------------------------------------------
    def _whole_root(self, t: Tensor) -> bool:
        ref = self.refs[t.name]
        root = self.graph.tensors[ref.root]
        return ref.offset == 0 and ref.strides is None and root.nbytes == t.nbytes

    def _group_is_internal(self, root: str) -> bool:
        """No tensor stored in ``root`` is a graph input or output."""
        return not any(name in self.io for name in self.groups[root])

    def _may_overwrite(self, op: Op, t: Tensor, whole_root: bool = True) -> bool:
        """May ``op`` write its output over ``t``'s root, whatever the op order? Unless
        ``whole_root`` is off, ``t`` must cover its root."""
        if t.is_constant or t.name not in self.refs:
            return False
        if whole_root and not self._whole_root(t):
            return False
        root = self.refs[t.name].root
        if not self._group_is_internal(root):
            return False
        if any(
            other is not t and other.name in self.refs and self.refs[other.name].root == root
            for other in op.activation_inputs
        ):
            return False  # it would read bytes it has already overwritten
        before = self.ancestors[self.index[op.name]]
        for name in self.groups[root]:
            for reader in self.graph.tensors[name].consumers:
                if reader is op:
                    continue
                if reader.name not in self.index or not before >> self.index[reader.name] & 1:
                    return False
        return True

    def _may_move(self, op: Op, t: Tensor) -> bool:
        """May concat input ``t`` (with everything stored with it) live in its output slice?"""
        out = op.output
        return (
            not t.is_constant
            and t.producer is not None
            and t.name in self.refs
            and t.dtype is out.dtype
            and t.quant == out.quant
            and self._whole_root(t)
            and self.refs[t.name].root != self.refs[out.name].root
            and self._group_is_internal(self.refs[t.name].root)
        )

    # ---- bookkeeping --------------------------------------------------------------------
    def _new_root(self, t: Tensor) -> None:
        self.refs[t.name] = StorageRef(t.name)
        self.groups[t.name] = [t.name]

    def _join(self, t: Tensor, ref: StorageRef) -> None:
        """Store ``t`` (a fresh root so far) at ``ref``."""
        del self.groups[t.name]
        self.refs[t.name] = ref
        self.groups[ref.root].append(t.name)

    def _move(self, t: Tensor, out: Tensor, slot: int, strides: tuple[int, ...]) -> bool:
        """Move ``t``'s root with every tensor in it into ``out``'s bytes at byte ``slot``,
        laid out with ``out``'s ``strides``; False (nothing moved) when a member cannot be
        expressed there."""
        root = self.refs[t.name].root
        target = self.refs[out.name]
        if target.strides is not None or target.offset != 0:
            raise InternalError(f"concat output {out.name} is already a view")
        itemsize = t.dtype.itemsize
        if _normalized(t.shape, strides, itemsize) is None:  # a contiguous slice
            self._relocate(root, out.name, slot)
            return True
        natural = contiguous_strides(t.shape, itemsize)
        moved: dict[str, StorageRef] = {}
        for name in self.groups[root]:
            member = self.graph.tensors[name]
            ref = self.refs[name]
            start = _box_start(member, ref, t.shape, natural)
            if start is None:
                return False
            offset = slot + sum(i * s for i, s in zip(start, strides, strict=True))
            moved[name] = StorageRef(out.name, offset, _normalized(member.shape, strides, itemsize))
        self.refs.update(moved)
        self.groups[out.name].extend(self.groups.pop(root))
        return True

    def _relocate(self, root: str, target: str, offset: int) -> None:
        """Move every tensor stored in ``root`` into fresh root ``target``'s bytes, ``offset``
        bytes in, keeping their layout."""
        for name in self.groups[root]:
            ref = self.refs[name]
            self.refs[name] = StorageRef(target, offset + ref.offset, ref.strides)
        self.groups[target].extend(self.groups.pop(root))


def pointwise_input_offset(op: Op) -> int | None:
    """Where a conv2d's input starts in the root it shares with its output when it runs in
    place as a pointwise convolution (bytes after the output's start), or None when it cannot
    (see the module docstring for the conditions)."""
    x, w, out = op.inputs[0], op.input(1), op.output
    bias = op.input(2)
    if x is None or w is None or not w.is_constant or (bias is not None and not bias.is_constant):
        return None
    if len(x.shape) != 4 or len(out.shape) != 4 or len(w.shape) != 4 or w.shape[1:3] != (1, 1):
        return None
    if x.dtype is not out.dtype or x.dtype not in (DType.INT8, DType.FLOAT32):
        return None
    if x.dtype is DType.FLOAT32 and w.dtype is not DType.FLOAT32:
        return None  # a hybrid layer: one scale from the whole batch item
    if op.attrs.get("primitive") is not None:
        return None  # a primitive chosen by memfit.selection: its C function has no blocks
    if any(op.attrs.get("pads", (0, 0, 0, 0))):
        return None
    n, h, w_in, cin = x.shape
    sh, sw = op.attrs.get("strides", (1, 1))
    ho, wo = (h - 1) // sh + 1, (w_in - 1) // sw + 1
    cout = out.shape[3]
    if out.shape != (n, ho, wo, cout) or n * ho * wo <= pointwise_block_pixels(op):
        return None
    offset = max(0, out.size - x.size)  # in elements
    if (sh, sw) == (1, 1):  # q(p) = p, and p*(Cout - Cin) <= P*(Cout - Cin) = offset if > 0
        return offset * x.dtype.itemsize
    # p*Cout - q(p)*Cin is linear along an output row: its largest value is at a row's end
    batch, row = np.meshgrid(np.arange(n), np.arange(ho), indexing="ij")
    for ow in (0, wo - 1):
        p = (batch * ho + row) * wo + ow
        q = (batch * h + row * sh) * w_in + ow * sw
        if np.any(p * cout - q * cin > offset):
            return None
    return offset * x.dtype.itemsize


def _box_start(
    member: Tensor, ref: StorageRef, shape: Sequence[int], natural: Sequence[int]
) -> tuple[int, ...] | None:
    """Where ``member`` starts as a box of an array of ``shape`` laid out contiguously (byte
    strides ``natural``), or None when its bytes are not such a box."""
    if len(member.shape) != len(shape):
        return None
    itemsize = member.dtype.itemsize
    strides = ref.strides or contiguous_strides(member.shape, itemsize)
    if any(d > 1 and s != n for d, s, n in zip(member.shape, strides, natural, strict=True)):
        return None
    start = []
    rest = ref.offset
    for n in natural:
        start.append(rest // n)
        rest %= n
    if rest or any(i + d > size for i, d, size in zip(start, member.shape, shape, strict=True)):
        return None
    return tuple(start)


def _broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    if len(shape) > len(target):
        return False
    return all(d in (1, t) for d, t in zip(reversed(shape), reversed(target), strict=False))


def _is_concatenation(op: Op) -> bool:
    """True when the output's shape is the inputs' shapes joined along the op's axis."""
    out = op.output
    inputs = [t for t in op.inputs if t is not None]
    if not inputs or "axis" not in op.attrs:
        return False
    rank = len(out.shape)
    axis = op.attrs["axis"] % rank if rank else 0
    for t in inputs:
        if len(t.shape) != rank or t.dtype is not out.dtype:
            return False
        pairs = zip(t.shape, out.shape, strict=True)
        if any(d != o for k, (d, o) in enumerate(pairs) if k != axis):
            return False
    return sum(t.shape[axis] for t in inputs) == out.shape[axis]


def canonical_order(graph: Graph) -> list[Op]:
    """A topological order of the ops that does not depend on the order of ``graph.ops``: ready
    ops go by the position of their first output in the graph's tensor order, then by name."""
    position = {name: i for i, name in enumerate(graph.tensors)}
    produced = {t.name for op in graph.ops for t in op.outputs}

    def key(op: Op) -> tuple[int, str]:
        return (min((position[t.name] for t in op.outputs), default=len(position)), op.name)

    waiting: dict[str, int] = {}
    readers: dict[str, list[Op]] = {}
    ready: list[tuple[tuple[int, str], Op]] = []
    for op in graph.ops:
        needed = {t.name for t in op.activation_inputs if t.name in produced}
        waiting[op.name] = len(needed)
        for name in needed:
            readers.setdefault(name, []).append(op)
        if not needed:
            heapq.heappush(ready, (key(op), op))
    order: list[Op] = []
    while ready:
        _, op = heapq.heappop(ready)
        order.append(op)
        for t in op.outputs:
            for reader in readers.get(t.name, ()):
                waiting[reader.name] -= 1
                if waiting[reader.name] == 0:
                    heapq.heappush(ready, (key(reader), reader))
    if len(order) != len(graph.ops):
        raise InternalError(f"graph {graph.name} has a cycle: no topological order")
    return order
