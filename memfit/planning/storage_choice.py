"""Which in-place rewrites to use: as many as keep the peak lowest.

Reshape views and elementwise in place merge two buffers of the same size whose lifetimes meet
at one step, so they never raise the live bytes of any step in any order. The other two can:

- concat in place allocates the whole output when the first input is written into its slice,
  which may be long before the concat (ShuffleNet's pooled shortcut is written before its other
  branch runs; in DenseNet the block's last output then holds every layer's features while the
  last layer's normalized copy and bottleneck are live too);
- depthwise in place keeps the input's root, larger than the output when the convolution has a
  stride, for as long as the output lives.

So the choice is searched, over storage maps built by the same rules (each one safe; the search
only picks among them), with single concat and depthwise ops switched off by name
(``StorageOptions.not_in_place``):

1. schedule with concat and depthwise in place each on and off for every op (as the caller
   allows), and keep the lowest peak (ties to more sharing);
2. in that order, switch single ops off while that lowers the peak, or the number of steps at
   the peak (kept only if the peak fell in the end); then switch single ops back on while that
   does not raise the peak (fewer copies at the same peak);
3. reschedule if anything changed, and keep the better of the new order and the old one.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

from memfit.ir.core import Graph
from memfit.planning.arena import align_up
from memfit.planning.lifetimes import Lifetimes, compute_lifetimes
from memfit.planning.schedule import Schedule, fixed_schedule, model_schedule, schedule_ops
from memfit.planning.storage import StorageMap, StorageOptions, build_storage

SEARCHED_KINDS = {"concat": "concat_in_place", "depthwise_conv2d": "depthwise_in_place"}
"""Op kinds whose in-place run may raise the peak -> the option that allows it."""


def choose_storage(
    graph: Graph,
    alignment: int = 16,
    allowed: StorageOptions | None = None,
    *,
    reorder: bool = True,
    schedule_time_limit: float = 2.0,
) -> tuple[StorageMap, Schedule]:
    """The storage map (within ``allowed``) and op order with the lowest peak found, sharing as
    much as that peak allows.

    With ``reorder`` off every candidate is judged in the model order.
    """
    allowed = StorageOptions() if allowed is None else allowed

    def schedule(storage: StorageMap) -> Schedule:
        if reorder:
            return schedule_ops(graph, alignment, storage=storage, time_limit=schedule_time_limit)
        return model_schedule(graph, alignment, storage=storage)

    best: tuple[StorageMap, Schedule] | None = None
    seen: list[tuple[dict, dict]] = []
    for options in _variants(graph, allowed):
        storage = build_storage(graph, options)
        sharing = (dict(storage.refs), dict(storage.in_place))
        if sharing in seen:
            continue  # nothing of that kind ran in place anyway
        seen.append(sharing)
        found = (storage, schedule(storage))
        if best is None or found[1].peak < best[1].peak:
            best = found
    assert best is not None
    storage, chosen = best

    searcher = _Toggles(graph, chosen.order, alignment, allowed.not_in_place)
    tuned = searcher.share_less(storage)
    if searcher.key(tuned)[0] == searcher.key(storage)[0]:
        tuned = storage  # fewer steps at the same peak is no reason to copy more
    tuned = searcher.share_more(tuned)
    if tuned == storage:
        return storage, chosen
    kept = fixed_schedule(graph, chosen.order, alignment, chosen.method, tuned)
    rescheduled = schedule(tuned)
    return tuned, rescheduled if rescheduled.peak <= kept.peak else kept


def _variants(graph: Graph, allowed: StorageOptions) -> list[StorageOptions]:
    """``allowed``, and variants with every concat and/or every depthwise op off, most sharing
    first."""
    groups = []
    for kind, option in SEARCHED_KINDS.items():
        names = frozenset(op.name for op in graph.ops if op.kind == kind)
        off = (names,) if names and getattr(allowed, option) else ()
        groups.append((frozenset(), *off))
    return [
        dataclasses.replace(allowed, not_in_place=allowed.not_in_place.union(*off))
        for off in itertools.product(*groups)
    ]


class _Toggles:
    """Single-op changes to a storage map, judged by the live bytes of one op order."""

    def __init__(
        self, graph: Graph, order: Sequence[str], alignment: int, fixed: frozenset[str]
    ) -> None:
        self.graph = graph
        self.order = tuple(order)
        self.alignment = alignment
        # ops the caller excluded stay excluded
        self.candidates = [
            op.name for op in graph.ops if op.kind in SEARCHED_KINDS and op.name not in fixed
        ]

    def key(self, storage: StorageMap) -> tuple[int, int]:
        lifetimes = compute_lifetimes(self.graph, self.order, storage=storage)
        return _peak_key(lifetimes, self.alignment)

    def _with(self, storage: StorageMap, excluded: frozenset[str]) -> StorageMap:
        return build_storage(
            self.graph, dataclasses.replace(storage.options, not_in_place=excluded)
        )

    def share_less(self, storage: StorageMap) -> StorageMap:
        """Switch off single ops that run in place while that improves the key."""
        best = self.key(storage)
        for name in self.candidates:
            if name not in storage.in_place:
                continue
            trial = self._with(storage, storage.options.not_in_place | {name})
            key = self.key(trial)
            if key < best:
                storage, best = trial, key
        return storage

    def share_more(self, storage: StorageMap) -> StorageMap:
        """Switch single excluded ops back on while that does not raise the peak."""
        best = self.key(storage)[0]
        for name in self.candidates:
            if name not in storage.options.not_in_place:
                continue
            trial = self._with(storage, storage.options.not_in_place - {name})
            if name not in trial.in_place:
                storage = trial  # it cannot run in place anyway: the same map, one name fewer
                continue
            peak = self.key(trial)[0]
            if peak <= best:
                storage, best = trial, peak
        return storage


def _peak_key(lifetimes: Lifetimes, alignment: int) -> tuple[int, int]:
    """(peak live bytes, number of steps at the peak): lower is better."""
    change = [0] * (lifetimes.steps + 2)
    for buffer in lifetimes.buffers:
        size = align_up(buffer.size, alignment)
        change[buffer.first] += size
        change[buffer.last + 1] -= size
    live = list(itertools.accumulate(change))
    peak = max(live)
    return peak, live.count(peak)
