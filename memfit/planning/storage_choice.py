"""Which in-place rewrites to use: as many as keep the peak lowest.

Reshape views, elementwise and accumulation in place merge two buffers of the same size whose
lifetimes meet at one step, so they never raise the live bytes of any step in any order. Two
kinds of rewrite can:

- concat in place allocates the whole output when the first input is written into its slice,
  which may be long before the concat (ShuffleNet's pooled shortcut is written before its other
  branch runs; in DenseNet the block's last output then holds every layer's features while the
  last layer's normalized copy and bottleneck are live too);
- an op that overwrites a larger input than its output (depthwise convolution or pooling with a
  stride, the int8 accumulator output, a pointwise convolution to fewer channels) keeps that
  input's root, for as long as the output lives. Its output is then part of a larger root, so
  a concat cannot take it as a view: the concat copies it, and the larger root stays live
  until the concat. In FDT's concat end every partition's depthwise output is such a concat
  input; the peak then falls only when they are all written apart, so switching them off one
  at a time never shows it;
- a pointwise convolution to more channels moves its smaller input into the end of its
  output's root, which is then live, at the output's size, from the input's first write
  (across a depthwise convolution in place before it, say, while other buffers are live).

Both kinds run in place over an input of another size (``resizing``); the search below treats
them alike.

So the choice is searched, over storage maps built by the same rules (each one safe; the search
only picks among them), with single ops switched off by name (``StorageOptions.not_in_place``):

1. schedule with concat in place and with the resizing in-place ops each on and off for every
   op (as the caller allows), and keep the lowest peak (ties to more sharing); the schedules
   share one time limit, and each one searches only for orders below the best peak so far;
2. in that order, switch single ops back on where that copies no more bytes in concats: while
   the live bytes do not rise (the steps' live bytes sorted from the highest, compared in that
   order, so that a change below the peak counts too), then while the peak does not;
3. from there, switch off single ops, and for every concat the resizing ops that write its
   inputs all together, while that lowers the live bytes (the peak may have two causes, a
   resizing op in one place and a concat in another, each of which must go before it falls),
   switch the ops left off in 2. back on as in 2., and keep the result if its peak is lower
   (with everything switched back on that then fits);
4. reschedule if anything changed, and keep the better of the new order and the old one.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence

from memfit.ir.core import Graph
from memfit.planning.arena import align_up
from memfit.planning.lifetimes import Lifetimes, compute_lifetimes
from memfit.planning.schedule import Schedule, fixed_schedule, model_schedule, schedule_ops
from memfit.planning.storage import StorageBuilder, StorageMap, StorageOptions


def choose_storage(
    graph: Graph,
    alignment: int = 16,
    allowed: StorageOptions | None = None,
    *,
    reorder: bool = True,
    schedule_time_limit: float = 2.0,
    tune: bool = True,
) -> tuple[StorageMap, Schedule]:
    """The storage map (within ``allowed``) and op order with the lowest peak found, sharing as
    much as that peak allows.

    With ``reorder`` off every candidate is judged in the model order. ``schedule_time_limit``
    bounds the time of all the schedules together. Without ``tune`` the best of the whole-graph
    switches is kept as it is: switching ops one by one costs time quadratic in the ops (on a
    tiled graph of 1,332 ops, about 100 s).
    """
    allowed = StorageOptions() if allowed is None else allowed
    deadline = time.monotonic() + schedule_time_limit
    timed_out = False

    def schedule(storage: StorageMap, below: int | None) -> Schedule:
        nonlocal timed_out
        if not reorder:
            return model_schedule(graph, alignment, storage=storage)
        remaining = max(0.0, deadline - time.monotonic())
        found = schedule_ops(graph, alignment, storage=storage, time_limit=remaining, below=below)
        timed_out |= found.timed_out
        return found

    builder = StorageBuilder(graph)
    full = builder.build(allowed)
    concats = frozenset(op.name for op in graph.ops if op.kind == "concat")
    no_concat = dataclasses.replace(allowed, not_in_place=allowed.not_in_place | concats)
    resized = all_resizing(builder, allowed) | all_resizing(builder, no_concat)
    best: tuple[StorageMap, Schedule] | None = None
    seen: list[tuple[dict, dict]] = []
    switches = [(frozenset(), group) if group else (frozenset(),) for group in (concats, resized)]
    for off in itertools.product(*switches):
        excluded = allowed.not_in_place.union(*off)
        storage = builder.build(dataclasses.replace(allowed, not_in_place=excluded))
        sharing = (dict(storage.refs), dict(storage.in_place))
        if sharing in seen:
            continue  # nothing of that kind ran in place anyway
        seen.append(sharing)
        found = schedule(storage, None if best is None else best[1].peak)
        if best is None or found.peak < best[1].peak:
            best = (storage, found)
    assert best is not None
    storage, chosen = best
    if not tune:
        return storage, dataclasses.replace(chosen, timed_out=timed_out)

    candidates = (concats | resized) - allowed.not_in_place  # the caller's stay excluded
    searcher = _Toggles(builder, chosen.order, alignment, candidates, _groups(graph, full))
    tuned = searcher.share_more(storage)
    less = searcher.share_less(tuned)
    if less != tuned:
        # what share_less switched off may make room for ops share_more had to leave off
        less = searcher.share_more(less, tuned.options.not_in_place)
        if searcher.peak(less) < searcher.peak(tuned):
            tuned = searcher.share_more(less)  # and back on what was switched off in vain
    if tuned != storage:
        kept = fixed_schedule(graph, chosen.order, alignment, chosen.method, tuned)
        rescheduled = schedule(tuned, kept.peak)
        storage, chosen = tuned, rescheduled if rescheduled.peak <= kept.peak else kept
    # a choice among schedules that the time limit cut may differ from run to run
    return storage, dataclasses.replace(chosen, timed_out=timed_out)


def resizing(graph: Graph, storage: StorageMap) -> frozenset[str]:
    """The ops whose output overwrites an input of another size, or lands in a root larger
    than itself: a larger root stays live while the output lives, a smaller input lives in the
    output's root."""
    names = []
    for op in graph.ops:
        entry = storage.in_place.get(op.name)
        if entry is None or entry.kind in ("concat", "reshape"):
            continue
        overwritten = op.inputs[entry.inputs[0]]
        root = graph.tensors[storage.root(op.output.name)]
        if overwritten is None:
            continue
        if overwritten.nbytes != op.output.nbytes or root.nbytes > op.output.nbytes:
            names.append(op.name)
    return frozenset(names)


def all_resizing(builder: StorageBuilder, options: StorageOptions) -> frozenset[str]:
    """The ops that run in place over an input of another size under ``options`` with any of
    the others switched off: an op whose input a resizing op keeps in a larger root runs in
    place only when that op does not (a pointwise convolution after a strided depthwise one)."""
    found: frozenset[str] = frozenset()
    while True:
        excluded = dataclasses.replace(options, not_in_place=options.not_in_place | found)
        more = resizing(builder.graph, builder.build(excluded)) - found
        if not more:
            return found
        found |= more


def _groups(graph: Graph, storage: StorageMap) -> list[frozenset[str]]:
    """Per concat, the resizing ops that write its inputs (two or more): a concat can take
    those inputs as views only with all of them off."""
    resized = resizing(graph, storage)
    groups = []
    for op in graph.ops:
        if op.kind != "concat":
            continue
        writers = {t.producer.name for t in op.activation_inputs if t.producer is not None}
        group = frozenset(writers & resized)
        if len(group) > 1 and group not in groups:
            groups.append(group)
    return groups


class _Toggles:
    """Changes to a storage map by single ops or groups of ops, judged by the live bytes of one
    op order."""

    def __init__(
        self,
        builder: StorageBuilder,
        order: Sequence[str],
        alignment: int,
        candidates: frozenset[str],
        groups: Sequence[frozenset[str]],
    ) -> None:
        self.builder = builder
        self.graph = graph = builder.graph
        self.order = tuple(order)
        self.alignment = alignment
        # in model order, so the search does not depend on how the sets iterate
        self.candidates = [op.name for op in graph.ops if op.name in candidates]
        self.groups = list(groups)

    def profile(self, storage: StorageMap) -> tuple[int, ...]:
        """The live bytes of every step, highest first: lower (lexicographically) is better."""
        lifetimes = compute_lifetimes(self.graph, self.order, storage=storage)
        return _live_profile(lifetimes, self.alignment)

    def peak(self, storage: StorageMap) -> int:
        return self.profile(storage)[0]

    def _with(self, storage: StorageMap, excluded: frozenset[str]) -> StorageMap:
        return self.builder.build(dataclasses.replace(storage.options, not_in_place=excluded))

    def share_less(self, storage: StorageMap) -> StorageMap:
        """Switch off single ops and groups that run in place while that lowers the profile."""
        best = self.profile(storage)
        units = [frozenset({name}) for name in self.candidates] + self.groups
        for unit in units:
            running = frozenset(name for name in unit if name in storage.in_place)
            if not running:
                continue
            trial = self._with(storage, storage.options.not_in_place | running)
            profile = self.profile(trial)
            if profile < best:
                storage, best = trial, profile
        return storage

    def share_more(self, storage: StorageMap, among: frozenset[str] | None = None) -> StorageMap:
        """Switch single excluded ops (``among`` them, if given) back on where that copies no
        more bytes in concats: while the profile does not rise, then while the peak does not."""
        for by_peak in (False, True):
            profile = self.profile(storage)
            best: tuple[tuple[int, ...], int] = (
                profile[:1] if by_peak else profile,
                _copied_bytes(self.graph, storage),
            )
            for name in self.candidates:
                if name not in storage.options.not_in_place or (among and name not in among):
                    continue
                trial = self._with(storage, storage.options.not_in_place - {name})
                if name not in trial.in_place:
                    storage = trial  # it cannot run in place anyway: the same map, one name fewer
                    continue
                profile = self.profile(trial)
                key = (profile[:1] if by_peak else profile, _copied_bytes(self.graph, trial))
                if key[0] <= best[0] and key[1] <= best[1]:
                    storage, best = trial, key
        return storage


def _copied_bytes(graph: Graph, storage: StorageMap) -> int:
    """Bytes the concats copy: their inputs that are not views of their outputs."""
    copied = 0
    for op in graph.ops:
        if op.kind != "concat":
            continue
        entry = storage.in_place.get(op.name)
        views = set(entry.inputs) if entry is not None and entry.kind == "concat" else set()
        copied += sum(t.nbytes for i, t in enumerate(op.inputs) if t is not None and i not in views)
    return copied


def _live_profile(lifetimes: Lifetimes, alignment: int) -> tuple[int, ...]:
    """Aligned bytes live at every step, sorted from the highest."""
    change = [0] * (lifetimes.steps + 2)
    for buffer in lifetimes.buffers:
        size = align_up(buffer.size, alignment)
        change[buffer.first] += size
        change[buffer.last + 1] -= size
    return tuple(sorted(itertools.accumulate(change), reverse=True))
