"""Window arithmetic of spatial tiling: which input rows and columns an output tile needs.

Along one axis, an op with kernel k, stride s, dilation d and leading padding p computes output
row r from the padded input rows r*s + i*d, i in [0, k), that is from input rows
r*s - p + i*d. Output rows [r0, r1) therefore need input rows

    [r0*s - p, (r1 - 1)*s + (k - 1)*d + 1 - p).

Padding exists only around the whole map, so the part of that range outside [0, size) is
padding: clipping the range to the map gives the rows the tile reads, and the clipped amounts
become the tile's own padding. Interior tiles read their halo from real neighbouring rows and
pad nothing. With those pads, the tile computes exactly the output rows [r0, r1) of the whole
map, each from the same inputs as the untiled op.

Pooling has a kernel and stride and no dilation; a pad op is a 1x1 window moved by its leading
padding; per-element ops map a window to itself. Columns work the same way as rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memfit.errors import InternalError
from memfit.tiling.chain import TilingError

Span = tuple[int, int]
"""A half-open range [start, stop) of rows or columns."""


@dataclass(frozen=True)
class AxisGeometry:
    """How one op maps output rows (or columns) to input rows along one axis."""

    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    pad_before: int = 0

    def __post_init__(self) -> None:
        if self.kernel < 1 or self.stride < 1 or self.dilation < 1 or self.pad_before < 0:
            raise InternalError(f"malformed window geometry {self}")


POINTWISE = AxisGeometry()
"""The geometry of per-element ops: output row r reads input row r."""


@dataclass(frozen=True)
class AxisWindow:
    """The input rows [start, stop) a tile reads along one axis, and the padding it adds."""

    start: int
    stop: int
    pad_before: int
    pad_after: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def span(self) -> Span:
        return (self.start, self.stop)


@dataclass(frozen=True)
class TileWindow:
    """One op's input window for one tile, along rows and columns."""

    rows: AxisWindow
    cols: AxisWindow

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """The tile's padding as (top, left, bottom, right), the order of the ``pads`` attr."""
        return (
            self.rows.pad_before,
            self.cols.pad_before,
            self.rows.pad_after,
            self.cols.pad_after,
        )


def split(size: int, parts: int) -> tuple[Span, ...]:
    """``size`` rows cut into ``parts`` spans like numpy.array_split: the first
    ``size % parts`` spans are one row longer. Raises TilingError if a span would be empty."""
    if parts < 1:
        raise TilingError(f"cannot cut {size} rows into {parts} parts; use at least one part")
    if parts > size:
        raise TilingError(
            f"cannot cut {size} rows into {parts} non-empty parts; use at most {size}"
        )
    base, longer = divmod(size, parts)
    spans = []
    start = 0
    for i in range(parts):
        stop = start + base + (1 if i < longer else 0)
        spans.append((start, stop))
        start = stop
    return tuple(spans)


def input_window(output: Span, input_size: int, geometry: AxisGeometry) -> AxisWindow:
    """The input rows an op needs for output rows ``output``, clipped to [0, input_size), with
    the clipped amounts as padding. Raises TilingError if no input row is left (the output rows
    would be computed from padding alone, which a tile cannot do without an input)."""
    first, last = output[0], output[1] - 1
    if last < first:
        raise InternalError(f"empty output span {output}")
    g = geometry
    low = first * g.stride - g.pad_before
    high = last * g.stride + (g.kernel - 1) * g.dilation + 1 - g.pad_before
    start, stop = max(low, 0), min(high, input_size)
    if start >= stop:
        raise TilingError(
            f"output rows [{output[0]}, {output[1]}) read only padding (input rows "
            f"[{low}, {high}) of {input_size}); use a coarser grid"
        )
    return AxisWindow(start, stop, start - low, high - stop)


def chain_windows(
    geometries: Sequence[tuple[AxisGeometry, AxisGeometry]],
    input_sizes: Sequence[tuple[int, int]],
    rows: Span,
    cols: Span,
) -> tuple[TileWindow, ...]:
    """Walk a chain back from one tile of its last op's output to the chain's input.

    ``geometries[i]`` is op i's (rows, cols) geometry and ``input_sizes[i]`` its input's
    (height, width). Returns each op's input window for the tile, in chain order; the first is
    the window of the chain input the tile reads.
    """
    if len(geometries) != len(input_sizes):
        raise InternalError("one geometry and one input size per chain op")
    windows: list[TileWindow] = []
    for (row_geometry, col_geometry), (height, width) in zip(
        reversed(geometries), reversed(input_sizes), strict=True
    ):
        window = TileWindow(
            input_window(rows, height, row_geometry), input_window(cols, width, col_geometry)
        )
        windows.append(window)
        rows, cols = window.rows.span, window.cols.span
    return tuple(reversed(windows))
