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
(activations, quantize/dequantize, and binary ops whose other operand is a constant that
broadcasts to the activation; a constant with a spatial extent is sliced per tile).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from memfit.errors import InternalError
from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.ops import infer_shapes, macs
from memfit.runtime.kernels import is_hybrid
from memfit.tiling import TilingResult
from memfit.tiling.chain import TilingError, describe, resolve_chain
from memfit.tiling.window import (
    POINTWISE,
    AxisGeometry,
    Span,
    TileWindow,
    chain_windows,
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
    "concat": "it joins several tensors",
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
    if not (windowed or pointwise or op.kind == "pad"):
        raise _refuse(op, graph, _WHY_NOT.get(op.kind, "FFMT cannot split it spatially"))
    x = op.activation_inputs[0]
    if len(x.shape) != 4 or len(op.output.shape) != 4:
        shapes = f"{list(x.shape)} -> {list(op.output.shape)}"
        raise _refuse(op, graph, f"it maps {shapes}, and FFMT tiles NHWC maps only")
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
    """Rewrite the chain ``ops`` of ``graph`` (in place) into a ``grid`` of spatial tiles.

    ``ops`` names consecutive ops of a chain (see ``memfit.tiling.chain``); ``grid`` is
    (rows, cols) of the last op's output, (n, 1) for strips along H. A tile's ops and tensors
    are named ``<name>@t<row>x<col>`` (counting from 0). Raises TilingError, leaving the graph
    unchanged, when an op cannot be inside or the grid leaves a tile without input rows.
    """
    chain = resolve_chain(graph, ops)
    rows, cols = _check_grid(grid)
    geometries = [spatial_geometry(op, graph) for op in chain]
    input_sizes = [(x.shape[1], x.shape[2]) for x in (op.activation_inputs[0] for op in chain)]
    output = chain[-1].output
    row_spans, col_spans = split(output.shape[1], rows), split(output.shape[2], cols)
    try:
        windows = {
            (r, c): chain_windows(geometries, input_sizes, row_span, col_span)
            for r, row_span in enumerate(row_spans)
            for c, col_span in enumerate(col_spans)
        }
    except TilingError as exc:
        raise TilingError(f"grid {rows}x{cols} of chain {list(ops)}: {exc}") from exc

    original_macs = sum(macs(op) for op in chain)
    # Chain ops read only the chain input and constants, so the tiles can all go where the
    # first chain op was.
    writer = _Writer(graph, graph.ops.index(chain[0]))
    for op in chain:
        graph.remove_op(op)
    for op in chain[:-1]:
        del graph.tensors[op.output.name]

    row_outputs = []
    for r, row_span in enumerate(row_spans):
        tiles = [
            _emit_tile(writer, chain, windows[(r, c)], (row_span, col_span), f"@t{r}x{c}")
            for c, col_span in enumerate(col_spans)
        ]
        if cols == 1:
            row_outputs.append(tiles[0])
        elif rows == 1:
            row_outputs.append(writer.concat(f"{chain[-1].name}@join", tiles, 2, output))
        else:
            joined = writer.like(output, f"{output.name}@row{r}", row_span, (0, output.shape[2]))
            row_outputs.append(writer.concat(joined.name, tiles, 2, joined))
    if rows > 1:
        writer.concat(f"{chain[-1].name}@join", row_outputs, 1, output)

    graph_outputs = {t.name for t in graph.outputs}
    for op in chain:  # a constant sliced for every tile is read by nothing now
        for t in op.inputs:
            if t is not None and t.is_constant and not t.consumers and t.name not in graph_outputs:
                graph.tensors.pop(t.name, None)
    record = {"method": "ffmt", "ops": list(ops), "grid": [rows, cols]}
    return TilingResult(record=record, extra_macs=writer.macs - original_macs)


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


def _emit_tile(
    writer: _Writer,
    chain: Sequence[Op],
    windows: Sequence[TileWindow],
    spans: tuple[Span, Span],
    tag: str,
) -> Tensor:
    """One tile: the slice of the chain input it reads, then its copy of every chain op."""
    chain_input = chain[0].activation_inputs[0]
    first = windows[0]
    n, _, _, channels = chain_input.shape
    current = writer.emit(
        "strided_slice",
        f"{chain_input.name}{tag}",
        [chain_input],
        writer.like(chain_input, f"{chain_input.name}{tag}", first.rows.span, first.cols.span),
        {
            "begin": (0, first.rows.start, first.cols.start, 0),
            "end": (n, first.rows.stop, first.cols.stop, channels),
            "strides": (1, 1, 1, 1),
            "shrink_axes": (),
        },
    )
    output_spans = [(w.rows.span, w.cols.span) for w in windows[1:]] + [spans]
    for op, window, (rows, cols) in zip(chain, windows, output_spans, strict=True):
        inputs: list[Tensor | None] = []
        for t in op.inputs:
            if t is None or not t.is_constant:
                inputs.append(None if t is None else current)
            elif op.kind in _BINARY:  # a per-element op: its output window is its input's
                inputs.append(_tile_constant(writer.graph, t, window, tag))
            else:
                inputs.append(t)
        out = writer.like(op.output, f"{op.output.name}{tag}", rows, cols)
        current = writer.emit(op.kind, f"{op.name}{tag}", inputs, out, _tile_attrs(op, window))
    return current
