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
  largest live set inside one tile (the window sliced out of the input, each op's tile input
  and output, its scratch), every buffer aligned; an untiled group is its ops' inputs, outputs
  and scratch; per-element ops that the planner runs in place count once. Buffers live across
  the run (skip connections) are added, and the steps outside the run keep their untiled
  bytes. ``validate`` compares this with the real planner.
- latency: the calibrated cost model (``memfit.codegen.cost_model``: per op class, seconds =
  a + b * MACs + c * bytes) applied to every tile's copy of every op, with the MACs and bytes
  of the tile (so the halo's recomputation and the per-tile overhead ``a`` both count), plus
  the slices that copy each tile's input window.

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
        self._group_cache: dict[Group, tuple[int, float]] = {}
        self._copies: dict[Group, frozenset[str]] = {}
        """Per tiled group: the concatenations its predicted peak copies (not in place)."""
        self._outside, self._across = self._surroundings()

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

    def _surroundings(self) -> tuple[int, int]:
        """Aligned live bytes at the steps outside the run (untiled, model order), and the
        largest sum of buffers live across the run that are not the run's own."""
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
        return outside, max(across[first : last + 1], default=0)

    # ---- predictions ---------------------------------------------------------------------

    def _align(self, size: int) -> int:
        return align_up(size, self.alignment)

    def group(self, group: Group) -> tuple[int, float]:
        """(peak bytes, seconds) of one group, cached."""
        cached = self._group_cache.get(group)
        if cached is None:
            cached = self._tiled(group) if group.tiled else self._untiled(group)
            self._group_cache[group] = cached
        return cached

    def _ops(self, group: Group) -> list[_OpInfo]:
        return [info for layer in self.infos[group.first : group.last + 1] for info in layer]

    def _input_bytes(self, x: Tensor) -> int:
        """Aligned bytes of an op's input, 0 for a shared run input (counted across the run)."""
        first = self.layers[0].ops[0].activation_inputs[0]
        return 0 if x is first and self.input_shared else self._align(x.nbytes)

    def _untiled(self, group: Group) -> tuple[int, float]:
        peak, seconds = 0, 0.0
        for info in self._ops(group):
            x, y = info.op.activation_inputs[0], info.op.output
            x_bytes = self._input_bytes(x)
            held = (
                max(x_bytes, self._align(y.nbytes))
                if info.in_place
                else x_bytes + self._align(y.nbytes)
            )
            peak = max(peak, held + self._align(info.scratch) if info.scratch else held)
            if not self.storage.moves_no_data(info.op.name):
                seconds += self.cost_model.op_seconds(info.op)
        return peak, seconds

    def _tiled(self, group: Group) -> tuple[int, float]:
        infos = self._ops(group)
        first, last = infos[0].op, infos[-1].op
        x, y = first.activation_inputs[0], last.output
        rows, cols = group.grid
        _, height, width, _ = y.shape
        try:
            row_spans, col_spans = split(height, rows), split(width, cols)
        except TilingError:
            return math.inf, math.inf  # type: ignore[return-value]
        geometries = [i.geometry for i in infos]
        sizes = [i.input_size for i in infos]
        slice_key = f"strided_slice/{x.dtype}"
        seconds = 0.0
        # Per-element ops at the end run in place over the tile's output, which is part of
        # the group output (or its chunk): from ``tail`` on, nothing new is held.
        tail = len(infos) - 1
        while tail > 0 and infos[tail].in_place:
            tail -= 1
        tiles: list[tuple[int, int, int]] = []  # per tile: its slice, peak before its tail, after
        for row_span, col_span in itertools.product(row_spans, col_spans):
            try:
                windows = chain_windows(geometries, sizes, row_span, col_span)
            except TilingError:
                return math.inf, math.inf  # type: ignore[return-value]
            pixels = [w.rows.size * w.cols.size for w in windows]
            pixels.append((row_span[1] - row_span[0]) * (col_span[1] - col_span[0]))
            window_bytes = pixels[0] * infos[0].in_pixel_bytes
            seconds += self.cost_model.seconds(OpFeatures(slice_key, 0, 2 * window_bytes))
            held_before, held_last = 0, 0
            for i, info in enumerate(infos):
                tile_in = 0 if i > tail else self._align(pixels[i] * info.in_pixel_bytes)
                out_bytes = pixels[i + 1] * info.out_pixel_bytes
                tile_out = 0 if i >= tail else self._align(out_bytes)
                held = max(tile_in, tile_out) if info.in_place else tile_in + tile_out
                if info.scratch:
                    held += self._align(info.scratch)
                if i >= tail:
                    held_last = max(held_last, held)
                else:
                    held_before = max(held_before, held)
                tile_macs = macs(info.op) * pixels[i + 1] // max(info.out_pixels, 1)
                moved = pixels[i] * info.in_pixel_bytes + out_bytes + info.constant_bytes
                tile = OpFeatures(info.features.key, tile_macs, moved)
                seconds += self.cost_model.seconds(tile)
            tiles.append((self._align(window_bytes), held_before, held_last))
        peak, copies = self._tiles_peak(x, y, group.grid, row_spans, col_spans, tiles)
        join = f"{last.name}@join"
        self._copies[group] = frozenset(
            join if name == "@join" else f"{y.name}{name}" for name in copies
        )
        return peak, seconds

    def _tiles_peak(
        self,
        x: Tensor,
        y: Tensor,
        grid: Grid,
        row_spans: Sequence[tuple[int, int]],
        col_spans: Sequence[tuple[int, int]],
        tiles: Sequence[tuple[int, int, int]],
    ) -> tuple[int, set[str]]:
        """The peak while the tiles run, one after the other (rows, then columns in a row), and
        the concatenations that copy to reach it (``@join``, ``@row<r>``).

        The group input lives until the last tile's slice. The tiles' outputs reach the group
        output in one of two ways, and the planner takes the lower:

        - in place: the output is live from the first tile on and every tile writes into it;
        - as chunks: each row of tiles (each tile of a strip) is a buffer of its own that a
          final concatenation copies into the output. Within a row of a grid, the tiles either
          write into the row's buffer (live from its first tile's last op) or are buffers of
          their own that the row's concatenation copies; that choice touches only the row's
          own steps, so the better one is taken row by row.

        The plan of the configuration makes the same choices (``Run.storage_options``).
        """
        rows, cols = grid
        x_bytes, y_bytes = self._input_bytes(x), self._align(y.nbytes)
        pixel = y.shape[-1] * y.dtype.itemsize
        width = y.shape[2]
        last_tile = len(tiles) - 1
        in_place = 0
        for k, (window, before, at_last) in enumerate(tiles):
            x_live = x_bytes if k < last_tile else 0
            in_place = max(
                in_place,
                x_bytes + window + y_bytes,
                x_live + y_bytes + before,
                x_live + y_bytes + at_last,
            )
        sizes = [
            self._align((r1 - r0) * (c1 - c0) * pixel)
            for (r0, r1), (c0, c1) in itertools.product(row_spans, col_spans)
        ]
        per_row = cols if rows > 1 and cols > 1 else 1
        chunks = len(tiles) // per_row
        copied, done = 0, 0
        row_copies = set()
        for chunk in range(chunks):
            members = range(chunk * per_row, (chunk + 1) * per_row)
            chunk_bytes = (
                self._align((row_spans[chunk][1] - row_spans[chunk][0]) * width * pixel)
                if per_row > 1
                else sizes[chunk]
            )
            written, separate = 0, 0  # the row's peak with tiles written into it / copied
            tiles_done = 0
            for k in members:
                window, before, at_last = tiles[k]
                x_live = x_bytes if k < last_tile else 0
                into = chunk_bytes if k > members[0] else 0
                written = max(
                    written,
                    x_bytes + window + done + into,
                    x_live + done + into + before,
                    x_live + done + chunk_bytes + at_last,
                )
                separate = max(
                    separate,
                    x_bytes + window + done + tiles_done,
                    x_live + done + tiles_done + before,
                    x_live + done + tiles_done + sizes[k] + at_last,
                )
                tiles_done += sizes[k]
            if per_row > 1:  # the row's concatenation of separate tiles
                x_live = x_bytes if members[-1] < last_tile else 0
                separate = max(separate, x_live + done + tiles_done + chunk_bytes)
            if per_row > 1 and separate < written:
                row_copies.add(f"@row{chunk}")
                written = separate
            copied = max(copied, written)
            done += chunk_bytes
        copied = max(copied, y_bytes + done)  # the final concatenation
        if in_place <= copied:
            return in_place, set()
        return copied, {"@join", *row_copies}

    def storage_options(self, configuration: Configuration) -> StorageOptions:
        """The byte sharing of the configuration's plan: MAFAT's, with the concatenations its
        prediction copies kept out of place."""
        copies: set[str] = set()
        for group in configuration.groups:
            if group.tiled:
                self.group(group)
                copies |= self._copies[group]
        return dataclasses.replace(
            self.options, not_in_place=self.options.not_in_place | frozenset(copies)
        )

    def score(self, configuration: Configuration) -> Score:
        memory, seconds = self._outside, 0.0
        for group in configuration.groups:
            peak, group_seconds = self.group(group)
            memory = max(memory, peak + self._across)
            seconds += group_seconds
        return Score(configuration, memory, seconds)

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
