"""Which in-place rewrites to use: those that lower the peak.

Reshape views and elementwise in place merge two buffers of the same size whose lifetimes meet
at one step, so they never raise the live bytes of any step in any order. The other two can:

- concat in place allocates the whole output when the first input is written into its slice,
  which may be long before the concat (ShuffleNet's pooled shortcut is written before its other
  branch runs, and the model order that suits separate buffers no longer suits one);
- depthwise in place keeps the input's root, larger than the output when the convolution has a
  stride, for as long as the output lives.

So the choice is searched: schedule with concat and depthwise in place each on and off (as the
caller allows), keep the lowest peak (ties to more sharing); then, in the chosen order, turn off
single concat or depthwise ops while that lowers the peak (or the number of steps at the peak),
and reschedule if anything changed. Every candidate is a storage map built by the same rules, so
each is safe; the search only picks among them.
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

SEARCHED_KINDS = ("concat", "depthwise")


def choose_storage(
    graph: Graph,
    alignment: int = 16,
    allowed: StorageOptions | None = None,
    *,
    reorder: bool = True,
    schedule_time_limit: float = 2.0,
) -> tuple[StorageMap, Schedule]:
    """The storage map (within ``allowed``) and op order with the lowest peak found.

    With ``reorder`` off every candidate is judged in the model order.
    """
    allowed = StorageOptions() if allowed is None else allowed

    def schedule(storage: StorageMap) -> Schedule:
        if reorder:
            return schedule_ops(graph, alignment, storage=storage, time_limit=schedule_time_limit)
        return model_schedule(graph, alignment, storage=storage)

    best: tuple[StorageMap, Schedule] | None = None
    for options in _kind_variants(allowed):
        storage = build_storage(graph, options)
        found = (storage, schedule(storage))
        if best is None or found[1].peak < best[1].peak:
            best = found
    assert best is not None
    storage, chosen = best

    thinned = _thin_out(graph, storage, chosen.order, alignment)
    if thinned is storage:
        return storage, chosen
    kept = fixed_schedule(graph, chosen.order, alignment, chosen.method, thinned)
    rescheduled = schedule(thinned)
    return thinned, rescheduled if rescheduled.peak <= kept.peak else kept


def _kind_variants(allowed: StorageOptions) -> list[StorageOptions]:
    """``allowed`` and every variant with concat and/or depthwise in place turned off, most
    sharing first."""
    variants = []
    for concat, depthwise in itertools.product(
        _choices(allowed.concat_in_place), _choices(allowed.depthwise_in_place)
    ):
        variants.append(
            dataclasses.replace(allowed, concat_in_place=concat, depthwise_in_place=depthwise)
        )
    return variants


def _choices(allowed: bool) -> tuple[bool, ...]:
    return (True, False) if allowed else (False,)


def _thin_out(
    graph: Graph, storage: StorageMap, order: Sequence[str], alignment: int
) -> StorageMap:
    """Turn off single concat/depthwise ops in place while that improves the peak of ``order``
    (returns ``storage`` itself when nothing does)."""
    best_key = _peak_key(compute_lifetimes(graph, order, storage=storage), alignment)
    for name in [n for n, entry in storage.in_place.items() if entry.kind in SEARCHED_KINDS]:
        if name not in storage.in_place:
            continue  # an earlier change already turned it off
        options = dataclasses.replace(
            storage.options, not_in_place=storage.options.not_in_place | {name}
        )
        trial = build_storage(graph, options)
        key = _peak_key(compute_lifetimes(graph, order, storage=trial), alignment)
        if key < best_key:
            storage, best_key = trial, key
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
