"""MAFAT: a run of layers cut into fused groups, each tiled on its own grid, under a budget.

Farley and Gerstlauer, "MAFAT: Memory-Aware Fusing and Tiling of Neural Networks for
Accelerated Edge Inference" (arXiv 2107.06960). A *configuration* is a set of cut points that
divides a run of layers into groups, and an N x M grid for each group (1 x 1: untiled). Tiled
groups are FFMT rewrites (``memfit.tiling.ffmt``), so the planner, executor and code generator
handle them like any graph.

A *layer* is an op with a spatial window (convolution, pooling, pad) and the per-element ops
after it (activations); cuts fall between layers. The *run* is the longest chain of layers
FFMT can tile (single producer, single consumer, NHWC).

Two predictions score a configuration without rewriting the graph, fast enough for thousands
of configurations a second (group results are cached):

- memory: per group, the group's input and output maps (live while its tiles run) plus the
  largest live set inside one tile (each op's tile input and output, its scratch; the window
  the tile reads is a view of the group input, or a copy when slice views are off), every
  buffer aligned; an untiled group is its ops' inputs, outputs
  and scratch; per-element ops that the planner runs in place count once. Buffers live across
  the run (skip connections) are added, and the steps outside the run keep their untiled
  bytes. ``validate`` compares this with the real planner.
- latency: the calibrated cost model (``memfit.codegen.cost_model``: per op class, seconds =
  a + b * MACs + c * bytes) applied to every tile's copy of every op, with the MACs and bytes
  of the tile (so the halo's recomputation and the per-tile overhead ``a`` both count), plus
  the slices that copy each tile's input window when slice views are off.

``search`` starts untiled. While over the budget it changes the group that sets the peak (a
finer grid, fusing it with a neighbour, or moving one of its cuts), taking the change that
buys the most bytes per predicted second; then, within the budget, it takes any change that
lowers the predicted latency (coarser grids, splits, merges, moved cuts) until none does.
``exhaustive`` scores every configuration of a bounded space (at most ``max_groups`` groups,
grids from ``GRIDS``) for comparison.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from memfit.codegen.cost_model import CostModel, OpFeatures, op_features
from memfit.errors import InternalError, UsageError
from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.ops import macs
from memfit.planning import (
    MemoryPlan,
    assemble_plan,
    build_storage,
    compute_lifetimes,
    model_schedule,
    run_suite,
)
from memfit.planning.arena import align_up
from memfit.planning.scratch import scratch_bytes
from memfit.planning.storage import StorageOptions
from memfit.tiling import apply_rewrites
from memfit.tiling.chain import TilingError
from memfit.tiling.ffmt import spatial_geometry
from memfit.tiling.window import AxisGeometry, chain_windows, split

Grid = tuple[int, int]

GRIDS: tuple[Grid, ...] = (
    (1, 1),
    (2, 1),
    (2, 2),
    (3, 3),
    (4, 4),
    (6, 6),
    (8, 8),
    (4, 1),
    (8, 1),
    (16, 1),
)
"""The grids a group may take (rows x cols of its output): squares, and strips along H."""

_WINDOWED = frozenset({"conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d", "pad"})

STORAGE = StorageOptions(pool_in_place=False, depthwise_in_place=False, pointwise_in_place=False)
"""The byte sharing of MAFAT plans. Pooling in place keeps the larger input's bytes for the
output, a pointwise convolution in place to more channels makes its input part of the larger
output, which pays off or not depending on the steps around it; the planner decides it op by
op, a prediction could only guess, so MAFAT plans leave it out and predict the rest exactly."""


@dataclass(frozen=True)
class Group:
    """Layers ``first`` to ``last`` (inclusive, indices into the run) fused, on ``grid``."""

    first: int
    last: int
    grid: Grid = (1, 1)

    @property
    def tiled(self) -> bool:
        return self.grid != (1, 1)


@dataclass(frozen=True)
class Configuration:
    groups: tuple[Group, ...]

    def describe(self, run: Run) -> str:
        parts = []
        for g in self.groups:
            names = f"{run.layers[g.first].name}..{run.layers[g.last].name}"
            parts.append(f"[{names} {g.grid[0]}x{g.grid[1]}]" if g.tiled else f"[{names}]")
        return " ".join(parts)

    def to_json(self, run: Run) -> list[dict[str, Any]]:
        return [
            {
                "layers": [run.layers[i].name for i in range(g.first, g.last + 1)],
                "grid": list(g.grid),
            }
            for g in self.groups
        ]


@dataclass(frozen=True)
class Layer:
    """A windowed op and the per-element ops after it."""

    ops: tuple[Op, ...]

    @property
    def name(self) -> str:
        return self.ops[0].name


@dataclass(frozen=True)
class Score:
    """A configuration's predicted peak bytes and latency in seconds."""

    configuration: Configuration
    memory: int
    latency: float

    def fits(self, budget: int | None) -> bool:
        return budget is None or self.memory <= budget


# ---- the run -------------------------------------------------------------------------------


def find_run(graph: Graph) -> list[Layer]:
    """The longest chain of layers in ``graph`` that FFMT can tile."""
    best: list[Op] = []
    current: list[Op] = []
    for op in graph.ops:
        if current and _continues(graph, current[-1], op) and _tileable(graph, op):
            current.append(op)
        else:
            current = [op] if _tileable(graph, op) else []
        if _layer_count(current) > _layer_count(best):
            best = list(current)
    layers: list[list[Op]] = []
    for op in best:
        if op.kind in _WINDOWED or not layers:
            layers.append([op])
        else:
            layers[-1].append(op)
    return [Layer(tuple(ops)) for ops in layers]


def _layer_count(ops: Sequence[Op]) -> int:
    return sum(1 for op in ops if op.kind in _WINDOWED)


def _continues(graph: Graph, previous: Op, op: Op) -> bool:
    out = previous.output
    return (
        op.activation_inputs == (out,)
        and out.consumers == (op,)
        and out.name not in {t.name for t in graph.outputs}
    )


def _tileable(graph: Graph, op: Op) -> bool:
    if len(op.outputs) != 1 or len(op.activation_inputs) != 1:
        return False
    try:
        spatial_geometry(op, graph)
    except TilingError:
        return False
    return True


@dataclass
class _OpInfo:
    op: Op
    geometry: tuple[AxisGeometry, AxisGeometry]
    input_size: tuple[int, int]
    in_pixel_bytes: int
    out_pixel_bytes: int
    out_pixels: int
    constant_bytes: int
    scratch: int
    in_place: bool
    features: OpFeatures


@dataclass(frozen=True)
class _Way:
    """One way to run a group, laid out with its input and output at the ends of the arena or
    near them: its peak; the input's and the output's distance from their end (``reserve``,
    ``lift``: the groups before and after must leave that much free beside them); the bytes
    live while the input is (``enter``) and while the output is (``exit``); the
    concatenations it copies."""

    peak: int
    reserve: int
    lift: int
    enter: int
    exit: int
    copies: frozenset[str]

    def after(self, before: _Way) -> int:
        """The arena both ways need around the tensor ``before`` writes and this one reads,
        put as far from its end as the farther of the two wants it: the other way moves it
        there with everything beside it at that time."""
        offset = max(before.lift, self.reserve)
        return max(before.exit + offset - before.lift, self.enter + offset - self.reserve)


_NO_WAY = (_Way(math.inf, 0, 0, math.inf, math.inf, frozenset()),)  # type: ignore[arg-type]
"""The way of a group that cannot be tiled on its grid."""


@dataclass(frozen=True)
class _Tile:
    """One tile's aligned bytes: the window it slices out of the group input (0: the slice is
    a view of the input, which then lives through the tile's first op); the live set of its
    first op; the largest live set of its other ops before the tail (the per-element ops in
    place over the tile's output) and in the tail; per op, the new buffer it writes (0: it runs
    in place, or writes the tile's output) and its scratch; the index of the op that writes the
    tile's output."""

    window: int
    first: int
    before: int
    at_last: int
    steps: tuple[tuple[int, int], ...]
    tail: int
    view: bool


class Run:
    """A run of layers of a graph, with everything the predictions need."""

    def __init__(
        self,
        graph: Graph,
        layers: Sequence[Layer],
        cost_model: CostModel,
        alignment: int = 16,
        storage: StorageOptions | None = None,
    ) -> None:
        if not layers:
            raise UsageError(f"{graph.name} has no run of layers that spatial tiling can cut")
        self.graph = graph
        self.layers = tuple(layers)
        self.cost_model = cost_model
        self.alignment = alignment
        self.options = storage or STORAGE
        self.storage = build_storage(graph, self.options)
        self.infos: list[list[_OpInfo]] = [[self._info(op) for op in layer.ops] for layer in layers]
        run_input = layers[0].ops[0].activation_inputs[0]
        # A run input that other ops read too (a skip connection) outlives the run: it is
        # counted with the buffers live across the run, not as the first group's input.
        self.input_shared = len(run_input.consumers) > 1 or run_input in graph.outputs
        self._group_cache: dict[Group, tuple[tuple[_Way, ...], float]] = {}
        self._outside, self._across, self._entry, self._leave = self._surroundings()

    def _info(self, op: Op) -> _OpInfo:
        x = op.activation_inputs[0]
        _, h, w, c = x.shape
        _, ho, wo, co = op.output.shape
        entry = self.storage.in_place.get(op.name)
        return _OpInfo(
            op=op,
            geometry=spatial_geometry(op, self.graph),
            input_size=(h, w),
            in_pixel_bytes=c * x.dtype.itemsize,
            out_pixel_bytes=co * op.output.dtype.itemsize,
            out_pixels=ho * wo,
            constant_bytes=sum(t.nbytes for t in op.inputs if t is not None and t.is_constant),
            scratch=scratch_bytes(op),
            in_place=entry is not None and entry.kind == "elementwise",
            features=op_features(op),
        )

    def _surroundings(self) -> tuple[int, int, _Way, _Way]:
        """Aligned live bytes at the steps outside the run (untiled, model order), the largest
        sum of buffers live across the run that are not the run's own, and the steps next to
        the run as ways: the one that writes its input, the one after it."""
        order = [op.name for op in self.graph.ops]
        lifetimes = compute_lifetimes(self.graph, order, storage=self.storage)
        run_ops = {op.name for layer in self.layers for op in layer.ops}
        steps = [i for i, name in enumerate(order) if name in run_ops]
        first, last = min(steps), max(steps)
        run_tensors = {
            self.storage.root(op.output.name) for layer in self.layers for op in layer.ops
        }
        if not self.input_shared:
            run_tensors.add(self.storage.root(self.layers[0].ops[0].activation_inputs[0].name))
        live = [0] * lifetimes.steps
        across = [0] * lifetimes.steps
        scratch_names = set(lifetimes.scratch.values())
        for buffer in lifetimes.buffers:
            size = align_up(buffer.size, self.alignment)
            for step in range(buffer.first, buffer.last + 1):
                live[step] += size
                if buffer.name not in run_tensors and buffer.name not in scratch_names:
                    across[step] += size
        outside = max((live[i] for i in range(len(live)) if not first <= i <= last), default=0)
        entry = live[first - 1] - across[first - 1] if first > 0 else 0
        leave = live[last + 1] - across[last + 1] if last + 1 < len(live) else 0
        return (
            outside,
            max(across[first : last + 1], default=0),
            _Way(entry, 0, 0, entry, entry, frozenset()),
            _Way(leave, 0, 0, leave, leave, frozenset()),
        )

    # ---- predictions ---------------------------------------------------------------------

    def _align(self, size: int) -> int:
        return align_up(size, self.alignment)

    def group(self, group: Group) -> tuple[int, float]:
        """(peak bytes, seconds) of one group, the lowest of its ways whatever runs before."""
        ways, seconds = self._ways(group)
        return min(way.peak for way in ways), seconds

    def _ways(self, group: Group) -> tuple[tuple[_Way, ...], float]:
        """The ways to run one group, and its seconds, cached."""
        cached = self._group_cache.get(group)
        if cached is None:
            cached = self._tiled(group) if group.tiled else self._untiled(group)
            self._group_cache[group] = cached
        return cached

    def _chosen(self, configuration: Configuration) -> tuple[int, float, list[_Way]]:
        """The configuration's peak, seconds and a way per group: the ways with the lowest
        peak, groups and the steps around the run laid out together (a way that keeps an
        input or output off its end needs room beside it from the neighbour)."""
        seconds = 0.0
        # Per way of the current group: the lowest peak up to it, and the ways that give it.
        best: list[tuple[int, list[_Way]]] = [(0, [self._entry])]
        for group in (*configuration.groups, None):
            ways, group_seconds = self._ways(group) if group else ((self._leave,), 0.0)
            seconds += group_seconds
            best = [
                min(
                    (
                        (max(peak, way.peak, way.after(chain[-1])), [*chain, way])
                        for peak, chain in best
                    ),
                    key=lambda pc: pc[0],
                )
                for way in ways
            ]
        peak, chain = min(best, key=lambda pc: pc[0])
        return peak, seconds, chain[1:-1]

    def _ops(self, group: Group) -> list[_OpInfo]:
        return [info for layer in self.infos[group.first : group.last + 1] for info in layer]

    def _input_bytes(self, x: Tensor) -> int:
        """Aligned bytes of an op's input, 0 for a shared run input (counted across the run)."""
        first = self.layers[0].ops[0].activation_inputs[0]
        return 0 if x is first and self.input_shared else self._align(x.nbytes)

    def _untiled(self, group: Group) -> tuple[tuple[_Way, ...], float]:
        peak, seconds, enter, exit = 0, 0.0, 0, 0
        for info in self._ops(group):
            x, y = info.op.activation_inputs[0], info.op.output
            x_bytes = self._input_bytes(x)
            held = (
                max(x_bytes, self._align(y.nbytes))
                if info.in_place
                else x_bytes + self._align(y.nbytes)
            )
            if info.scratch:
                held += self._align(info.scratch)
            peak = max(peak, held)
            enter = enter or held  # the first op reads the group input
            exit = max(exit, held) if info.in_place else held  # the group output is live
            if not self.storage.moves_no_data(info.op.name):
                seconds += self.cost_model.op_seconds(info.op)
        return (_Way(peak, 0, 0, enter, exit, frozenset()),), seconds

    def _tiled(self, group: Group) -> tuple[tuple[_Way, ...], float]:
        infos = self._ops(group)
        first, last = infos[0].op, infos[-1].op
        x, y = first.activation_inputs[0], last.output
        rows, cols = group.grid
        _, height, width, _ = y.shape
        try:
            row_spans, col_spans = split(height, rows), split(width, cols)
        except TilingError:
            return _NO_WAY, math.inf
        geometries = [i.geometry for i in infos]
        sizes = [i.input_size for i in infos]
        slice_key = f"strided_slice/{x.dtype}"
        views = self.options.slice_views
        seconds = 0.0
        # Per-element ops at the end run in place over the tile's output, which is part of
        # the group output (or its chunk): from ``tail`` on, nothing new is held.
        tail = len(infos) - 1
        while tail > 0 and infos[tail].in_place:
            tail -= 1
        tiles: list[_Tile] = []
        for row_span, col_span in itertools.product(row_spans, col_spans):
            try:
                windows = chain_windows(geometries, sizes, row_span, col_span)
            except TilingError:
                return _NO_WAY, math.inf
            pixels = [w.rows.size * w.cols.size for w in windows]
            pixels.append((row_span[1] - row_span[0]) * (col_span[1] - col_span[0]))
            # a slice view reads its window in the group input: no bytes, no code
            window_bytes = 0 if views else pixels[0] * infos[0].in_pixel_bytes
            if not views:
                seconds += self.cost_model.seconds(OpFeatures(slice_key, 0, 2 * window_bytes))
            held_first, held_before, held_last = 0, 0, 0
            steps: list[tuple[int, int]] = []
            for i, info in enumerate(infos):
                tile_in = 0 if i > tail else self._align(pixels[i] * info.in_pixel_bytes)
                in_place = info.in_place
                if i == 0 and views:  # the window is part of the input; never overwritten
                    tile_in, in_place = 0, False
                out_bytes = pixels[i + 1] * info.out_pixel_bytes
                tile_out = 0 if i >= tail else self._align(out_bytes)
                held = max(tile_in, tile_out) if in_place else tile_in + tile_out
                scratch = self._align(info.scratch) if info.scratch else 0
                held += scratch
                if i == 0:
                    held_first = held
                elif i >= tail:
                    held_last = max(held_last, held)
                else:
                    held_before = max(held_before, held)
                steps.append((0 if in_place or i >= tail else tile_out, scratch))
                tile_macs = macs(info.op) * pixels[i + 1] // max(info.out_pixels, 1)
                moved = pixels[i] * info.in_pixel_bytes + out_bytes + info.constant_bytes
                tile = OpFeatures(info.features.key, tile_macs, moved)
                seconds += self.cost_model.seconds(tile)
            tiles.append(
                _Tile(
                    self._align(window_bytes),
                    held_first,
                    held_before,
                    held_last,
                    tuple(steps),
                    tail,
                    views,
                )
            )
        join = f"{last.name}@join"
        ways = tuple(
            dataclasses.replace(
                way,
                copies=frozenset(join if c == "@join" else f"{y.name}{c}" for c in way.copies),
            )
            for way in self._tiles_ways(x, y, group.grid, row_spans, col_spans, tiles)
        )
        return ways, seconds

    def _tiles_ways(
        self,
        x: Tensor,
        y: Tensor,
        grid: Grid,
        row_spans: Sequence[tuple[int, int]],
        col_spans: Sequence[tuple[int, int]],
        tiles: Sequence[_Tile],
    ) -> list[_Way]:
        """The ways the tiles can run, one after the other (rows, then columns in a row), with
        the concatenations each copies (``@join``, ``@row<r>``).

        The group input lives until the last tile's slice or, when the slices are views, until
        its first op. The tiles' outputs reach the group output in one of three ways:

        - in place: the output is live from the first tile on and every tile writes into it;
          the live bytes at each step can always be packed side by side (the input at one end
          of the arena, the output at the other, the tile's buffers between them);
        - as chunks: each row of tiles (each tile of a strip) is a buffer of its own that a
          final concatenation copies into the output, and in a grid the tiles of a row write
          into the row's buffer;
        - as chunks of chunks: in a grid, the tiles are buffers of their own too, that each
          row's concatenation copies.

        A chunk must keep clear of the output and, while the input lives, of the input: the
        live bytes cannot always be packed side by side, so the chunked ways are laid out
        (``_chunk_layouts``), each in two layouts.
        """
        rows, cols = grid
        x_bytes, y_bytes = self._input_bytes(x), self._align(y.nbytes)
        pixel = y.shape[-1] * y.dtype.itemsize
        width = y.shape[2]
        last_tile = len(tiles) - 1
        in_place = 0
        for k, tile in enumerate(tiles):
            x_live = x_bytes if k < last_tile else 0
            x_first = x_bytes if k < last_tile or tile.view else 0
            in_place = max(
                in_place,
                x_bytes + tile.window + y_bytes,
                x_first + y_bytes + tile.first,
                x_live + y_bytes + tile.before,
                x_live + y_bytes + tile.at_last,
            )
        ways = [_Way(in_place, 0, 0, in_place, in_place, frozenset())]
        per_row = cols if rows > 1 and cols > 1 else 1
        tile_bytes = [
            self._align((r1 - r0) * (c1 - c0) * pixel)
            for (r0, r1), (c0, c1) in itertools.product(row_spans, col_spans)
        ]
        row_bytes = [self._align((r1 - r0) * width * pixel) for r0, r1 in row_spans]
        # The output and the chunks it copies are live together, and the first tile runs
        # beside the input: no chunked layout is smaller, so none can beat in place then.
        first = tiles[0]
        beside = x_bytes + max(first.window, first.first, first.before)
        if max(y_bytes + sum(row_bytes), beside) >= in_place:
            return ways
        for separate in (False, True) if per_row > 1 else (True,):
            copies = {"@join"}
            if per_row > 1 and separate:
                copies |= {f"@row{r}" for r in range(rows)}
            for peak, reserve, lift, exit in _chunk_layouts(
                x_bytes, y_bytes, tiles, tile_bytes, row_bytes, per_row, separate, in_place
            ):
                ways.append(_Way(peak, reserve, lift, peak, exit, frozenset(copies)))
        return ways

    def storage_options(self, configuration: Configuration) -> StorageOptions:
        """The byte sharing of the configuration's plan: MAFAT's, with the concatenations its
        prediction copies kept out of place."""
        copies: set[str] = set()
        for way in self._chosen(configuration)[2]:
            copies |= way.copies
        return dataclasses.replace(
            self.options, not_in_place=self.options.not_in_place | frozenset(copies)
        )

    def score(self, configuration: Configuration) -> Score:
        peak, seconds, _ = self._chosen(configuration)
        return Score(configuration, max(self._outside, peak + self._across), seconds)

    # ---- configurations ------------------------------------------------------------------

    @cached_property
    def untiled(self) -> Configuration:
        return Configuration(tuple(Group(i, i) for i in range(len(self.layers))))

    def records(self, configuration: Configuration) -> list[dict[str, Any]]:
        """The FFMT rewrites of the configuration's tiled groups."""
        return [
            {
                "method": "ffmt",
                "ops": [op.name for layer in self.layers[g.first : g.last + 1] for op in layer.ops],
                "grid": list(g.grid),
            }
            for g in configuration.groups
            if g.tiled
        ]

    def apply(self, configuration: Configuration) -> Graph:
        """A copy of the graph with the configuration's groups tiled."""
        return apply_rewrites(self.graph.copy(), self.records(configuration))


# ---- the layout of chunked tiles -------------------------------------------------------------


class _Ends:
    """Buffers laid out from both ends of an arena: a buffer goes at the lowest offset from its
    end that the live buffers of that end leave free (first fit), and the arena is as large as
    the two ends' extents together at the worst step. Any layout is a plan, so the planner
    needs no more than ``peak`` for the same buffers (it searches far more layouts)."""

    def __init__(self, fixed: bool) -> None:
        # Per end (bottom, top): live key -> (offset, size), and the extent.
        self.ends: tuple[dict[object, tuple[int, int]], ...] = ({}, {})
        self.extents = [0, 0]
        self.where: dict[object, bool] = {}
        self.peak = 0
        self.fixed = fixed

    def add(self, key: object, size: int, top: bool, offset: int | None = None) -> None:
        self._put(key, size, top, self._first_fit(size, top) if offset is None else offset)

    def add_either(self, key: object, size: int, top: bool) -> None:
        """Add at the end where the two extents together grow least (``top`` on a tie), or
        at ``top`` when ``fixed``."""
        here = self._first_fit(size, top)
        if not self.fixed:
            there = self._first_fit(size, not top)
            grows_there = max(there + size - self.extents[not top], 0)
            if grows_there < max(here + size - self.extents[top], 0):
                top, here = not top, there
        self._put(key, size, top, here)

    def _put(self, key: object, size: int, top: bool, offset: int) -> None:
        self.ends[top][key] = (offset, size)
        self.where[key] = top
        self.extents[top] = max(self.extents[top], offset + size)

    def _first_fit(self, size: int, top: bool) -> int:
        offset = 0
        for start, there in sorted(self.ends[top].values()):
            if start - offset >= size:
                break
            offset = max(offset, start + there)
        return offset

    def offset(self, key: object) -> int:
        return self.ends[self.where[key]][key][0]

    def step(self) -> None:
        """One op runs: everything live now is live together."""
        self.peak = max(self.peak, self.extents[0] + self.extents[1])

    def free(self, *keys: object) -> None:
        for key in keys:
            top = self.where.pop(key)
            del self.ends[top][key]
            self.extents[top] = max((o + n for o, n in self.ends[top].values()), default=0)


def _chunk_layouts(
    x_bytes: int,
    y_bytes: int,
    tiles: Sequence[_Tile],
    tile_bytes: Sequence[int],
    row_bytes: Sequence[int],
    per_row: int,
    separate: bool,
    limit: int,
) -> list[tuple[int, int, int, int]]:
    """Layouts of a tiled group whose tiles' outputs are chunks (``Run._tiles_ways``) below
    ``limit``, as (peak, reserve, lift, exit): the group input at the bottom, where the output
    goes once the input is dead, and the chunks from the top, or those written once the input
    is dead from the bottom (then the output is ``lift`` bytes above them); or the chunks from
    the bottom, the input right above the ones written while it lives (``reserve`` bytes from
    its end), and the output from the top."""
    args = (y_bytes, tiles, tile_bytes, row_bytes, per_row, separate, limit)
    layouts = []
    for late_below in (False, True):
        try:
            peak, _, lift, exit = _chunk_layout(x_bytes, None, late_below, *args)
        except _TooLarge:
            continue
        layouts.append((peak, 0, lift, exit))
    try:
        reserve = _chunk_layout(0, 0, False, *args)[1]  # where the input can go
        peak, _, lift, exit = _chunk_layout(x_bytes, reserve, False, *args)
        layouts.append((peak, reserve, lift, exit))
    except _TooLarge:
        pass
    return layouts


class _TooLarge(Exception):
    """A layout reached the limit it had to stay below."""


def _chunk_layout(
    x_bytes: int,
    x_offset: int | None,
    late_below: bool,
    y_bytes: int,
    tiles: Sequence[_Tile],
    tile_bytes: Sequence[int],
    row_bytes: Sequence[int],
    per_row: int,
    separate: bool,
    limit: int,
) -> tuple[int, int, int, int]:
    """One layout of a chunked group: the chunks from the top (with ``late_below``, those
    written once the input is dead from the bottom), the output from the bottom, the input at
    the bottom (``x_offset`` None) or at ``x_offset`` from the top; each tile's buffers
    alternate between the ends (the slice, then every op's new output) so that the one the
    tile's last op reads is at the bottom, away from the chunk it writes. ``per_row`` tiles
    make a row chunk (1: every tile is a chunk); with ``separate`` they are buffers of their
    own that the row's concatenation copies, else they write into the row chunk.

    Returns the peak, the largest extent of the top while the input lives, the output's
    offset from the bottom and the arena at the final concatenation."""
    # With the input off its end, the gap below it is the chunks' to come: nothing else may
    # take it.
    arena = _Ends(fixed=x_offset is not None)
    x_live = True  # until the last tile's slice, or its first op when the slice is a view
    if x_bytes:
        arena.add("x", x_bytes, top=x_offset is not None, offset=x_offset or 0)
    reserved = 0
    last_tile = len(tiles) - 1

    def measure() -> None:
        nonlocal reserved
        arena.step()
        if arena.peak >= limit:
            raise _TooLarge
        if x_live:
            reserved = max(reserved, arena.extents[True])

    def chunk(key: object, size: int) -> None:
        arena.add(key, size, top=not (late_below and not x_live))

    for k, tile in enumerate(tiles):
        row, position = divmod(k, per_row)
        count = 1 + sum(1 for out, _ in tile.steps[: tile.tail] if out)
        current = 0
        arena.add_either(("buffer", current), tile.window, top=(count - 1) % 2 == 1)
        measure()
        if k == last_tile and not tile.view:
            x_live = False
            if x_bytes:
                arena.free("x")
        for i, (out, scratch) in enumerate(tile.steps):
            if i == tile.tail:
                if per_row == 1 or separate:
                    chunk(("tile", k), tile_bytes[k])
                elif position == 0:
                    chunk(("row", row), row_bytes[row])
            elif out:
                arena.add_either(("buffer", current + 1), out, top=(count - 2 - current) % 2 == 1)
            if scratch:
                arena.add_either("scratch", scratch, top=False)
            measure()
            if scratch:
                arena.free("scratch")
            if k == last_tile and tile.view and i == 0:
                x_live = False
                if x_bytes:
                    arena.free("x")
            if i == tile.tail or (out and i < tile.tail):
                arena.free(("buffer", current))
                current += 1
        if per_row > 1 and separate and position == per_row - 1:
            chunk(("row", row), row_bytes[row])
            measure()
            arena.free(*(("tile", j) for j in range(k - per_row + 1, k + 1)))
    arena.add("y", y_bytes, top=False)
    arena.step()
    return arena.peak, reserved, arena.offset("y"), sum(arena.extents)


# ---- search --------------------------------------------------------------------------------


def _replace(config: Configuration, index: int, *groups: Group) -> Configuration:
    return Configuration(config.groups[:index] + groups + config.groups[index + 1 :])


def neighbours(config: Configuration, focus: int | None = None) -> Iterator[Configuration]:
    """Configurations one change away: another grid for a group, two neighbouring groups fused,
    a group split in two, a cut moved by one layer. ``focus`` restricts the changes to the
    group with that index and its cuts."""
    groups = config.groups
    indices = range(len(groups)) if focus is None else [focus]
    for i in indices:
        g = groups[i]
        for grid in GRIDS:
            if grid != g.grid:
                yield _replace(config, i, Group(g.first, g.last, grid))
        for j in (i - 1, i):  # fuse with the group before / after
            if j >= 0 and j + 1 < len(groups):
                a, b = groups[j], groups[j + 1]
                for grid in GRIDS:
                    merged = Group(a.first, b.last, grid)
                    yield Configuration((*groups[:j], merged, *groups[j + 2 :]))
        for cut in range(g.first, g.last):  # split in two
            yield _replace(config, i, Group(g.first, cut, g.grid), Group(cut + 1, g.last, g.grid))
        for j in (i - 1, i):  # move the cut between groups j and j + 1 by one layer
            if j >= 0 and j + 1 < len(groups):
                a, b = groups[j], groups[j + 1]
                if a.last > a.first:
                    moved = (Group(a.first, a.last - 1, a.grid), Group(a.last, b.last, b.grid))
                    yield Configuration((*groups[:j], *moved, *groups[j + 2 :]))
                if b.last > b.first:
                    moved = (Group(a.first, b.first, a.grid), Group(b.first + 1, b.last, b.grid))
                    yield Configuration((*groups[:j], *moved, *groups[j + 2 :]))


@dataclass
class SearchResult:
    best: Score | None
    """The fastest configuration found within the budget (None: nothing fits)."""
    smallest: Score
    """The configuration with the lowest predicted peak found."""
    visited: list[Score] = field(default_factory=list)
    seconds: float = 0.0


def _peak_group(run: Run, config: Configuration) -> int | None:
    """The index of the group whose peak is the configuration's (None: outside the run)."""
    best, index = -1, None
    for i, g in enumerate(config.groups):
        peak = run.group(g)[0]
        if peak > best:
            best, index = peak, i
    return index


def _lower(
    run: Run, current: Score, seen: set[Configuration], visited: list[Score], depth: int
) -> list[Score]:
    """Configurations ``depth`` changes of the peak group away whose peak is lower."""
    frontier = [current.configuration]
    options: list[Score] = []
    for _ in range(depth):
        following = []
        for config in frontier:
            focus = _peak_group(run, config)
            for candidate in neighbours(config, focus):
                score = run.score(candidate)
                if math.isinf(score.memory):
                    continue
                if candidate not in seen:
                    seen.add(candidate)
                    visited.append(score)
                following.append(candidate)
                if score.memory < current.memory:
                    options.append(score)
        if options:
            break
        frontier = following
    return options


def search(run: Run, budget: int | None, max_steps: int = 200) -> SearchResult:
    """MAFAT's search: the fastest configuration predicted to fit ``budget``."""
    start = time.perf_counter()
    current = run.score(run.untiled)
    visited = [current]
    smallest = current
    seen = {current.configuration}
    # Phase 1: while over budget, change the peak group, most bytes per second first. When no
    # single change lowers the peak (fusing two groups alone can keep it), two changes are.
    steps = 0
    while not current.fits(budget) and steps < max_steps:
        steps += 1
        options = _lower(run, current, seen, visited, depth=1) or _lower(
            run, current, seen, visited, depth=2
        )
        if not options:
            break

        def value(s: Score, base: Score = current) -> tuple[float, float]:
            saved = base.memory - s.memory
            cost = max(s.latency - base.latency, 0.0)
            return (cost / saved, -saved)

        current = min(options, key=value)
        if current.memory < smallest.memory:
            smallest = current
    best = current if current.fits(budget) else None
    # Phase 2: within the budget, any change that lowers the latency.
    while best is not None and steps < max_steps:
        steps += 1
        improved = None
        for candidate in neighbours(best.configuration):
            score = run.score(candidate)
            if math.isinf(score.memory):
                continue
            if candidate not in seen:
                seen.add(candidate)
                visited.append(score)
            if score.fits(budget) and score.latency < (improved or best).latency:
                improved = score
        if improved is None:
            break
        best = improved
    return SearchResult(best, smallest, visited, time.perf_counter() - start)


def exhaustive(run: Run, budget: int | None, max_groups: int = 3) -> SearchResult:
    """Every configuration of at most ``max_groups`` groups with grids from ``GRIDS``."""
    start = time.perf_counter()
    n = len(run.layers)
    best: Score | None = None
    smallest: Score | None = None
    visited: list[Score] = []
    for count in range(1, min(max_groups, n) + 1):
        for cuts in itertools.combinations(range(1, n), count - 1):
            bounds = list(zip((0, *cuts), (*cuts, n), strict=True))
            for grids in itertools.product(GRIDS, repeat=count):
                config = Configuration(
                    tuple(Group(a, b - 1, g) for (a, b), g in zip(bounds, grids, strict=True))
                )
                score = run.score(config)
                if math.isinf(score.memory):
                    continue
                visited.append(score)
                if smallest is None or score.memory < smallest.memory:
                    smallest = score
                if score.fits(budget) and (best is None or score.latency < best.latency):
                    best = score
    if smallest is None:
        raise InternalError("exhaustive search saw no configuration")
    return SearchResult(best, smallest, visited, time.perf_counter() - start)


# ---- validation ----------------------------------------------------------------------------


def real_plan(run: Run, configuration: Configuration) -> tuple[Graph, MemoryPlan]:
    """The configuration rewritten and planned for real, in the rewrite's op order, with the
    byte sharing its prediction assumes (``Run.storage_options``); offsets by every algorithm
    of the suite, checked."""
    graph = run.apply(configuration)
    storage = build_storage(graph, run.storage_options(configuration))
    schedule = model_schedule(graph, run.alignment, storage=storage)
    lifetimes = compute_lifetimes(graph, schedule.order, storage=storage)
    suite = run_suite(lifetimes.buffers, run.alignment)
    return graph, assemble_plan(graph, schedule, lifetimes, suite, run.alignment)


def validate(run: Run, configurations: Sequence[Configuration]) -> list[tuple[int, int]]:
    """(predicted, planned) peak bytes of every configuration."""
    pairs = []
    for config in configurations:
        _, plan = real_plan(run, config)
        pairs.append((run.score(config).memory, plan.arena.size))
    return pairs
