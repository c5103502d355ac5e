"""FFMT: fused feature-map tiling, a chain of ops rewritten into spatial tiles.

The output of the chain's last op is cut into a grid of rows x cols tiles (like
numpy.array_split). For every tile, the rewrite walks the chain back (``memfit.tiling.window``)
to the window of the chain input the tile needs, and emits

- a ``strided_slice`` copying that window out of the chain input,
- a copy of every chain op on the window, with the same constants and its own padding (only
  tiles on the outer border of a map pad; interior tiles read their halo from real data),

so the tile's ops compute exactly that tile of the last output. ``concat`` ops join the tiles
into the chain's original output tensor, which keeps its name, its consumers and its place
among the graph outputs: first the tiles of each tile row along W, then the rows along H.

Tiles run one after the other, so only the chain input, the output and one tile's
intermediates need to be live together. Neighbouring tiles' windows overlap (the halo), and the
overlap is computed again by each tile: ``TilingResult.extra_macs`` counts that work.

Inside a chain: conv2d, depthwise_conv2d, max/avg pooling, spatial pad, and per-element ops
(activations, quantize/dequantize, local response normalization, and binary ops whose other
operand is a constant that broadcasts to the activation; a constant with a spatial extent is
sliced per tile).

A chain may end in a layer that reduces the whole map to one position: a global average pool,
or a depthwise or dense convolution whose kernel covers the unpadded map (``reduces_map``).
The grid then cuts that layer's *input*, and each tile, instead of writing its part of an
output map, adds its contribution into an accumulator of the layer's output (an int32 one for
int8 models): a ``partial_sum_pool``, or the convolution of the tile with the matching slice of
the kernel (``partial_depthwise_conv2d``, ``partial_conv2d``). One op after the last tile
finishes the layer: ``accumulator_average`` (divide by the count, round as TFLite does) or
``accumulator_output`` (bias, requantization, activation). Sums of integers do not depend on
their order, so int8 results stay bit-exact. No full map of the chain is ever held, which is
what a keyword-spotting network (every map the same size, a global pool at the end) needs.

The same rewrite tiles a *region*: ops whose branches split and join again, such as a residual
block or an inception module, with one input from outside and one output read outside
(``memfit.tiling.chain.resolve_region``). Binary ops of two same-shaped activations and concat
along channels join the branches. Walking back from a tile, a map read by several ops is
computed once per tile for the union of their windows, and each reader takes its own window
out of it with a ``strided_slice`` (a view: see ``memfit.planning.storage``); the residual
branch of a block reads fewer rows than the 3x3 convolutions beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memfit.errors import InternalError
from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.dtypes import DType
from memfit.ir.ops import infer_shapes, macs
from memfit.runtime.kernels import is_hybrid
from memfit.tiling import TilingResult
from memfit.tiling.chain import TilingError, describe, resolve_region
from memfit.tiling.fdt import accumulator_quant
from memfit.tiling.window import (
    POINTWISE,
    AxisGeometry,
    Span,
    TileWindow,
    input_window,
    split,
)

_CONVOLUTIONS = frozenset({"conv2d", "depthwise_conv2d"})
_POOLS = frozenset({"max_pool2d", "avg_pool2d"})
_UNARY = frozenset(
    {
        "relu",
        "relu6",
        "relu_n1_to_1",
        "logistic",
        "tanh",
        "hard_swish",
        "leaky_relu",
        "clamp",
        "identity",
        "dropout",
        "quantize",
        "dequantize",
        "lrn",  # across channels at each position
    }
)
_BINARY = frozenset({"add", "sub", "mul", "div", "maximum", "minimum"})

_WHY_NOT = {
    "mean": "it reduces over the whole map",
    "reduce_max": "it reduces over the whole map",
    "fully_connected": "every output reads every position",
    "matmul": "every output reads every position",
    "reshape": "it moves elements between positions",
    "transpose": "it moves elements between positions",
    "strided_slice": "it moves elements between positions",
    "softmax": "it normalizes over an axis as a whole",
    "lstm": "it is a recurrent layer over a sequence",
}


def _refuse(op: Op, graph: Graph, reason: str) -> TilingError:
    return TilingError(
        f"{describe(op, graph)} cannot be inside a spatially tiled (FFMT) chain: {reason}; "
        "end the chain before it"
    )


def spatial_geometry(op: Op, graph: Graph) -> tuple[AxisGeometry, AxisGeometry]:
    """How ``op`` maps output rows and columns to input rows and columns."""
    windowed = op.kind in _CONVOLUTIONS or op.kind in _POOLS
    pointwise = op.kind in _UNARY or op.kind in _BINARY
    if not (windowed or pointwise or op.kind in ("pad", "concat")):
        raise _refuse(op, graph, _WHY_NOT.get(op.kind, "FFMT cannot split it spatially"))
    x = op.activation_inputs[0]
    if any(len(t.shape) != 4 for t in (*op.activation_inputs, op.output)):
        shapes = f"{', '.join(str(list(t.shape)) for t in op.activation_inputs)} -> "
        raise _refuse(
            op, graph, f"it maps {shapes}{list(op.output.shape)}, and FFMT tiles NHWC maps only"
        )
    if op.kind == "concat":
        if op.attrs["axis"] % 4 != 3 or any(t.is_constant for t in op.inputs if t is not None):
            raise _refuse(op, graph, "it joins maps along a spatial axis or with a constant")
        if any(t.shape[:3] != op.output.shape[:3] for t in op.activation_inputs):
            raise _refuse(op, graph, "its inputs differ in size")
        return POINTWISE, POINTWISE
    if len(op.activation_inputs) > 1 and any(t.shape != x.shape for t in op.activation_inputs):
        raise _refuse(op, graph, "its activations differ in shape (a broadcast)")
    if op.kind in _CONVOLUTIONS:
        if op.inputs[0] is not x:
            raise _refuse(op, graph, "its activation is not its first input")
        if is_hybrid(op):
            raise _refuse(
                op,
                graph,
                "a hybrid layer (float input, quantized weights) quantizes its whole input "
                "with one scale, which a tile cannot reproduce",
            )
        _, kh, kw, _ = op.inputs[1].shape  # type: ignore[union-attr]
        dh, dw = op.attrs["dilations"]
    elif op.kind in _POOLS:
        kh, kw = op.attrs["kernel"]
        dh = dw = 1
    elif op.kind == "pad":
        batch, rows, cols, _ = op.attrs["pads"]
        if tuple(batch) != (0, 0):
            raise _refuse(op, graph, "it pads the batch axis")
        return AxisGeometry(pad_before=rows[0]), AxisGeometry(pad_before=cols[0])
    else:
        if op.output.shape != x.shape:
            raise _refuse(op, graph, f"its output {op.output.shape} is not shaped like {x.shape}")
        return POINTWISE, POINTWISE
    sh, sw = op.attrs["strides"]
    top, left, _, _ = op.attrs["pads"]
    return AxisGeometry(kh, sh, dh, top), AxisGeometry(kw, sw, dw, left)


def reduces_map(op: Op) -> bool:
    """Whether ``op`` reduces its whole NHWC input map to one position in a way tiles can
    accumulate: a global average pool, or a depthwise (multiplier 1) or dense (groups 1)
    convolution whose kernel covers the map exactly, without padding or dilation, with
    constant weights and bias."""
    if op.kind not in ("avg_pool2d", "depthwise_conv2d", "conv2d") or len(op.outputs) != 1:
        return False
    if len(op.activation_inputs) != 1 or op.inputs[0] is not op.activation_inputs[0]:
        return False
    x, out = op.activation_inputs[0], op.output
    if len(x.shape) != 4 or len(out.shape) != 4 or out.shape[1:3] != (1, 1):
        return False
    if any(op.attrs["pads"]):
        return False
    if op.kind == "avg_pool2d":
        return tuple(op.attrs["kernel"]) == x.shape[1:3]
    weights, bias = op.input(1), op.input(2)
    if weights is None or not weights.is_constant or (bias is not None and not bias.is_constant):
        return False
    if tuple(op.attrs["dilations"]) != (1, 1) or tuple(weights.shape[1:3]) != x.shape[1:3]:
        return False
    if op.kind == "depthwise_conv2d":
        return op.attrs.get("depth_multiplier", 1) == 1
    return op.attrs.get("groups", 1) == 1 and not is_hybrid(op)


def _check_grid(grid: Sequence[int]) -> tuple[int, int]:
    if len(grid) != 2 or not all(isinstance(n, int | np.integer) for n in grid):
        raise TilingError(f"an FFMT grid is (rows, cols) of integers, not {grid!r}")
    rows, cols = int(grid[0]), int(grid[1])
    if rows < 1 or cols < 1:
        raise TilingError(f"grid {rows}x{cols}: rows and cols must be at least 1")
    if rows * cols == 1:
        raise TilingError("grid 1x1 does not tile the chain; use at least two tiles")
    return rows, cols


def _tile_attrs(op: Op, window: TileWindow) -> dict[str, Any]:
    """``op``'s attributes for one tile: the tile's own padding, everything else unchanged."""
    attrs = dict(op.attrs)
    if op.kind in _CONVOLUTIONS or op.kind in _POOLS:
        attrs["pads"] = window.pads
    elif op.kind == "pad":
        batch, _, _, channels = op.attrs["pads"]
        attrs["pads"] = (
            tuple(batch),
            (window.rows.pad_before, window.rows.pad_after),
            (window.cols.pad_before, window.cols.pad_after),
            tuple(channels),
        )
    return attrs


def _tile_constant(graph: Graph, const: Tensor, window: TileWindow, tag: str) -> Tensor:
    """``const`` as a per-element op's tile reads it: sliced to the window where it has a
    spatial extent (broadcasting aligns axes from the right, so H and W are its axes -3, -2)."""
    index: list[slice] = [slice(None)] * len(const.shape)
    sliced = False
    for axis, span in ((-3, window.rows.span), (-2, window.cols.span)):
        if len(const.shape) >= -axis and const.shape[axis] > 1:
            index[axis] = slice(*span)
            sliced = True
    if not sliced:
        return const
    if const.data is None:
        raise InternalError(f"constant {const.name} has no data")
    return graph.add_constant(f"{const.name}{tag}", const.data[tuple(index)], const.quant)


def apply_ffmt(graph: Graph, ops: Sequence[str], grid: tuple[int, int]) -> TilingResult:
    """Rewrite the chain (or region) ``ops`` of ``graph`` (in place) into a ``grid`` of spatial
    tiles.

    ``ops`` names consecutive ops of a chain, or the ops of a region whose branches split and
    join again (``memfit.tiling.chain.resolve_region``), each after the ops it reads; ``grid``
    is (rows, cols) of the last op's output, (n, 1) for strips along H. A tile's ops and
    tensors are named ``<name>@t<row>x<col>`` (counting from 0). Raises TilingError, leaving the
    graph unchanged, when an op cannot be inside or the grid leaves a tile without input rows.
    """
    region, entry = resolve_region(graph, ops)
    rows, cols = _check_grid(grid)
    end = region[-1] if reduces_map(region[-1]) else None
    body = region[:-1] if end is not None else region
    geometries = {op.name: spatial_geometry(op, graph) for op in body}
    output = region[-1].output
    tiled = body[-1].output if body else entry
    if end is not None and end.activation_inputs[0] is not tiled:
        raise TilingError(
            f"{describe(end, graph)} reduces {end.activation_inputs[0].name}, which is not the "
            f"output of the op before it in the chain, {body[-1].name!r}; list that op last"
        )
    row_spans, col_spans = split(tiled.shape[1], rows), split(tiled.shape[2], cols)
    try:
        plans = {
            (r, c): _tile_plan(body, geometries, (row_span, col_span))
            for r, row_span in enumerate(row_spans)
            for c, col_span in enumerate(col_spans)
        }
    except TilingError as exc:
        raise TilingError(f"grid {rows}x{cols} of chain {list(ops)}: {exc}") from exc

    original_macs = sum(macs(op) for op in region)
    # Region ops read only the region input and constants, so the tiles can all go where the
    # first region op was.
    writer = _Writer(graph, min(graph.ops.index(op) for op in region))
    for op in region:
        graph.remove_op(op)
    for op in region[:-1]:
        del graph.tensors[op.output.name]

    if end is not None:
        accumulator: Tensor | None = None
        for (r, c), plan in plans.items():
            tag = f"@t{r}x{c}"
            spans = (row_spans[r], col_spans[c])
            part = (
                _emit_tile(writer, body, entry, plan, tag)
                if body
                else _window(writer, entry, entry, (0, 0), spans, f"{entry.name}{tag}")
            )
            accumulator = _accumulate(writer, end, part, accumulator, spans, tag)
        assert accumulator is not None
        _finish(writer, end, accumulator)
        _drop_unread_constants(graph, region)
        record = {"method": "ffmt", "ops": list(ops), "grid": [rows, cols]}
        return TilingResult(record=record, extra_macs=writer.macs - original_macs)

    row_outputs = []
    for r, row_span in enumerate(row_spans):
        tiles = [
            _emit_tile(writer, region, entry, plans[(r, c)], f"@t{r}x{c}")
            for c in range(len(col_spans))
        ]
        if cols == 1:
            row_outputs.append(tiles[0])
        elif rows == 1:
            row_outputs.append(writer.concat(f"{region[-1].name}@join", tiles, 2, output))
        else:
            joined = writer.like(output, f"{output.name}@row{r}", row_span, (0, output.shape[2]))
            row_outputs.append(writer.concat(joined.name, tiles, 2, joined))
    if rows > 1:
        writer.concat(f"{region[-1].name}@join", row_outputs, 1, output)

    _drop_unread_constants(graph, region)
    record = {"method": "ffmt", "ops": list(ops), "grid": [rows, cols]}
    return TilingResult(record=record, extra_macs=writer.macs - original_macs)


def _drop_unread_constants(graph: Graph, region: Sequence[Op]) -> None:
    """Remove the region's constants that no op reads any more (sliced for every tile)."""
    graph_outputs = {t.name for t in graph.outputs}
    for op in region:
        for t in op.inputs:
            if t is not None and t.is_constant and not t.consumers and t.name not in graph_outputs:
                graph.tensors.pop(t.name, None)


def _accumulate(
    writer: _Writer,
    end: Op,
    part: Tensor,
    accumulator: Tensor | None,
    spans: tuple[Span, Span],
    tag: str,
) -> Tensor:
    """Add one tile ``part`` (rows and columns ``spans`` of the map ``end`` reduces) into
    the accumulator of ``end``'s output."""
    out = end.output
    int8 = out.dtype is not DType.FLOAT32
    if end.kind == "avg_pool2d":
        kind, quant, attrs = "partial_sum_pool", part.quant, dict[str, Any]()
        inputs: list[Tensor | None] = [part, accumulator]
    else:
        weights = end.inputs[1]
        assert weights is not None and weights.data is not None
        (r0, r1), (c0, c1) = spans
        sliced = writer.graph.add_constant(
            f"{weights.name}{tag}", weights.data[:, r0:r1, c0:c1, :], weights.quant
        )
        kind = "partial_conv2d" if end.kind == "conv2d" else "partial_depthwise_conv2d"
        quant = accumulator_quant(end)
        attrs = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0)}
        if kind == "partial_depthwise_conv2d":
            attrs["depth_multiplier"] = 1
        inputs = [part, sliced, accumulator]
    dtype = DType.INT32 if int8 else DType.FLOAT32
    acc = writer.graph.add_tensor(f"{out.name}@acc{tag}", out.shape, dtype, quant)
    return writer.emit(kind, f"{end.name}{tag}", inputs, acc, attrs)


def _finish(writer: _Writer, end: Op, accumulator: Tensor) -> None:
    """The op after the last tile that turns the accumulator into ``end``'s output."""
    activation = end.attrs.get("activation", "none")
    if end.kind == "avg_pool2d":
        x = end.activation_inputs[0]
        count = x.shape[1] * x.shape[2]
        writer.emit(
            "accumulator_average",
            end.name,
            [accumulator],
            end.output,
            {"count": count, "activation": activation},
        )
    else:
        writer.emit(
            "accumulator_output",
            end.name,
            [accumulator, end.input(2)],
            end.output,
            {"activation": activation},
        )


@dataclass(frozen=True)
class _TilePlan:
    """One tile of a region: the window each op reads of each of its activations (in the order
    of ``Op.activation_inputs``), and the rows and columns the tile computes of every tensor
    the region writes. Where a tensor's readers need different windows (a residual branch
    reads fewer rows than a 3x3 convolution beside it), the tile computes their union and each
    reader takes its window out of it."""

    reads: dict[str, tuple[TileWindow, ...]]
    spans: dict[str, tuple[Span, Span]]


def _tile_plan(
    region: Sequence[Op],
    geometries: dict[str, tuple[AxisGeometry, AxisGeometry]],
    tile: tuple[Span, Span],
) -> _TilePlan:
    """Walk ``region`` back from one tile of its last output (see ``memfit.tiling.window``)."""
    if not region:  # a reduction alone: its tiles are windows of the region input
        return _TilePlan({}, {})
    spans: dict[str, tuple[Span, Span]] = {region[-1].output.name: tile}
    reads: dict[str, tuple[TileWindow, ...]] = {}
    written = {op.output.name for op in region}
    for op in reversed(region):
        rows, cols = spans[op.output.name]
        row_geometry, col_geometry = geometries[op.name]
        windows = []
        for x in op.activation_inputs:
            window = TileWindow(
                input_window(rows, x.shape[1], row_geometry),
                input_window(cols, x.shape[2], col_geometry),
            )
            windows.append(window)
            if x.name in written:
                spans[x.name] = _union(spans.get(x.name), (window.rows.span, window.cols.span))
        reads[op.name] = tuple(windows)
    return _TilePlan(reads, spans)


def _union(known: tuple[Span, Span] | None, new: tuple[Span, Span]) -> tuple[Span, Span]:
    if known is None:
        return new
    (r0, r1), (c0, c1) = known
    (s0, s1), (d0, d1) = new
    return (min(r0, s0), max(r1, s1)), (min(c0, d0), max(c1, d1))


class _Writer:
    """Adds ops one after the other at a position in the op list, and counts their MACs."""

    def __init__(self, graph: Graph, position: int) -> None:
        self.graph = graph
        self.position = position
        self.macs = 0

    def like(self, tensor: Tensor, name: str, rows: Span, cols: Span) -> Tensor:
        """A tensor with ``tensor``'s batch, channels, dtype and quantization, rows x cols."""
        n, _, _, channels = tensor.shape
        shape = (n, rows[1] - rows[0], cols[1] - cols[0], channels)
        return self.graph.add_tensor(name, shape, tensor.dtype, tensor.quant)

    def emit(
        self, kind: str, name: str, inputs: list[Tensor | None], out: Tensor, attrs: dict[str, Any]
    ) -> Tensor:
        op = self.graph.add_op(kind, inputs, [out], attrs, name=name, index=self.position)
        self.position += 1
        inferred = infer_shapes(op)[0]
        if inferred != out.shape:
            raise InternalError(f"FFMT op {op.name} computes {inferred}, declared {out.shape}")
        self.macs += macs(op)
        return out

    def concat(self, name: str, parts: list[Tensor], axis: int, out: Tensor) -> Tensor:
        return self.emit("concat", name, list(parts), out, {"axis": axis, "activation": "none"})


def _window(
    writer: _Writer,
    source: Tensor,
    x: Tensor,
    origin: tuple[int, int],
    spans: tuple[Span, Span],
    name: str,
) -> Tensor:
    """A ``strided_slice`` of rows and columns ``spans`` of map ``x`` out of ``source``, which
    holds ``x`` from row and column ``origin`` on."""
    (r0, r1), (c0, c1) = spans
    n, _, _, channels = x.shape
    top, left = r0 - origin[0], c0 - origin[1]
    return writer.emit(
        "strided_slice",
        name,
        [source],
        writer.like(x, name, (r0, r1), (c0, c1)),
        {
            "begin": (0, top, left, 0),
            "end": (n, top + r1 - r0, left + c1 - c0, channels),
            "strides": (1, 1, 1, 1),
            "shrink_axes": (),
        },
    )


def _emit_tile(
    writer: _Writer, region: Sequence[Op], entry: Tensor, plan: _TilePlan, tag: str
) -> Tensor:
    """One tile: the windows of the region input it reads, then its copy of every region op."""
    computed: dict[str, Tensor] = {}
    windows: dict[tuple[str, Span, Span], Tensor] = {}

    def read(x: Tensor, window: TileWindow) -> Tensor:
        rows, cols = window.rows.span, window.cols.span
        if x is entry:
            source, origin = x, (0, 0)
        else:
            source = computed[x.name]
            if plan.spans[x.name] == (rows, cols):
                return source
            origin = (plan.spans[x.name][0][0], plan.spans[x.name][1][0])
        key = (x.name, rows, cols)
        if key not in windows:
            name = f"{x.name}{tag}"
            if name in writer.graph.tensors:
                name = f"{name}.{len(windows)}"
            windows[key] = _window(writer, source, x, origin, (rows, cols), name)
        return windows[key]

    for op in region:
        reads = iter(plan.reads[op.name])
        first = plan.reads[op.name][0]
        inputs: list[Tensor | None] = []
        for t in op.inputs:
            if t is None:
                inputs.append(None)
            elif not t.is_constant:
                inputs.append(read(t, next(reads)))
            elif op.kind in _BINARY:  # a per-element op: its output window is its input's
                inputs.append(_tile_constant(writer.graph, t, first, tag))
            else:
                inputs.append(t)
        rows, cols = plan.spans[op.output.name]
        out = writer.like(op.output, f"{op.output.name}{tag}", rows, cols)
        computed[op.output.name] = writer.emit(
            op.kind, f"{op.name}{tag}", inputs, out, _tile_attrs(op, first)
        )
    return computed[region[-1].output.name]
