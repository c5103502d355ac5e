"""The primitive cost profile: the passes that run a model's layers as an inference does, and
the cache of their costs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memfit.codegen.constants import ALIGNMENT
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph
from memfit.selection import primitives, profile
from memfit.selection.pareto import DEFAULT
from memfit.selection.primitives import NCHW, NHWC, Choice
from memfit.selection.profile import (
    TO_NCHW,
    TO_NHWC,
    ConversionJob,
    ConvJob,
    CostCache,
    ProfilingTimeout,
    conv_job,
    measure,
    profiling_passes,
    selectable_ops,
)


def conv_chain() -> Graph:
    """3x3 conv -> relu -> 1x1 conv -> 3x3 conv, float32."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("chain")
    y = b.input("x", (1, 10, 10, 8))
    for i, (kernel, pads) in enumerate(((3, (1, 1, 1, 1)), (1, (0, 0, 0, 0)), (3, (1, 1, 1, 1)))):
        channels = y.shape[-1]
        weights = rng.standard_normal((16, kernel, kernel, channels)).astype(np.float32)
        w = b.constant(f"w{i}", weights)
        bias = b.constant(f"b{i}", rng.standard_normal(16).astype(np.float32))
        attrs = {"strides": (1, 1), "dilations": (1, 1), "pads": pads, "groups": 1}
        y = b.op("conv2d", [y, w, bias], {**attrs, "activation": "none"}, name=f"c{i}")
        if i == 0:
            y = b.op("relu", [y], name="relu")
    return b.output(y)


def test_passes_run_every_layer_in_order_once_per_choice() -> None:
    graph = conv_chain()
    ops = selectable_ops(graph)
    found = profiling_passes(graph)
    convolutions, conversions = found[:-1], found[-1]
    every = {c for op in ops for c in primitives.choices(op)}
    assert len(convolutions) == len(every)
    assert [job.choice for job in convolutions[0]] == [DEFAULT] * len(ops)
    chosen = set()
    for jobs in convolutions:
        assert all(isinstance(job, ConvJob) for job in jobs)
        # one job per layer, in the model's order: the weights between two runs of a layer are
        # the model's
        assert [job.geometry for job in jobs] == [primitives.geometry(op) for op in ops]
        choices = {job.choice for job in jobs} - {DEFAULT}
        assert len(choices) <= 1
        chosen |= choices
        for op, job in zip(ops, jobs, strict=True):
            assert job.choice == DEFAULT or job.choice in primitives.choices(op)
            if choices and next(iter(choices)) in primitives.choices(op):
                assert job.choice == next(iter(choices))
    assert chosen == every - {DEFAULT}
    assert [(type(job), job.direction) for job in conversions] == [  # type: ignore[union-attr]
        (ConversionJob, direction) for _ in ops for direction in (TO_NCHW, TO_NHWC)
    ]
    assert Choice("gemm1x1", NCHW) in every and Choice("winograd", NHWC) in every


def test_a_pass_with_one_job_missing_runs_whole_and_caches_every_job(tmp_path: Path) -> None:
    """A job's cost depends on the pass around it: the pass runs whole, and all its jobs'
    costs are measured; a pass the cache has whole does not run."""
    ops = selectable_ops(conv_chain())
    cache = CostCache(tmp_path / "costs.json")
    cached = [conv_job(op, DEFAULT) for op in ops]
    cache.put([(job, 1.0) for job in cached])  # no layer takes a second
    missing = conv_job(ops[1], Choice("gemm1x1", NHWC))
    calls: list[tuple[int, int]] = []
    seconds = measure(
        [cached, [cached[0], missing, cached[2]]],
        cache,
        lambda done, total: calls.append((done, total)),
    )
    assert calls[0] == (profile.ROUNDS, 2 * profile.ROUNDS)  # the first pass: from the cache
    assert calls[-1] == (2 * profile.ROUNDS, 2 * profile.ROUNDS)
    assert set(seconds) == {*(job.key for job in cached), missing.key}
    assert seconds[cached[1].key] == 1.0
    assert 0 < seconds[cached[0].key] < 1.0 and 0 < seconds[missing.key] < 1.0
    assert CostCache(tmp_path / "costs.json").get(cached[2]) == seconds[cached[2].key] < 1.0


def test_cached_costs_are_keyed_by_the_measuring_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Costs measured another way (an older program) are measured again, not reused."""
    before = CostCache(tmp_path / "costs.json").context
    monkeypatch.setattr(profile, "_PROGRAM", profile._PROGRAM + "\n/* changed */\n")
    assert CostCache(tmp_path / "costs.json").context != before


def test_the_program_starts_buffers_on_the_generated_codes_alignment() -> None:
    jobs = profiling_passes(conv_chain())[0]
    source = profile._source(jobs, [list(range(len(jobs)))])
    assert f"#define LINE {ALIGNMENT}\n" in source
    assert ALIGNMENT % 64 == 0  # a cache line at least


def test_profiling_stops_at_its_deadline(tmp_path: Path) -> None:
    """Past the deadline nothing more runs; a deadline far ahead changes nothing."""
    import time

    graph = conv_chain()
    cache = CostCache(tmp_path / "costs.json")
    with pytest.raises(ProfilingTimeout):
        measure(profiling_passes(graph)[:1], cache, deadline=time.monotonic() - 1)
    assert cache.get(profiling_passes(graph)[0][0]) is None
    seconds = measure(profiling_passes(graph)[:1], cache, deadline=time.monotonic() + 600)
    assert all(value > 0 for value in seconds.values())
