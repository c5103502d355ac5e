"""Path discovery: hand-built graphs whose best rewrite is known, budgets, MAC limits, replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memfit.errors import UsageError
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph
from memfit.ir.dtypes import DType
from memfit.ir.printer import format_graph
from memfit.planning import check_assignment, plan_memory
from memfit.runtime.executor import execute
from memfit.tiling import apply_rewrites
from memfit.tiling.discovery import optimize, quick_plan

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflite"
PW = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "groups": 1}
DW = {"strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 1, 1), "depth_multiplier": 1}


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def _pointwise(b: GraphBuilder, rng, x, out_channels: int, name: str):  # type: ignore[no-untyped-def]
    w = b.constant(f"{name}.w", _weights(rng, (out_channels, 1, 1, x.shape[-1])))
    return b.op("conv2d", [x, w, None], {**PW, "activation": "none"}, name=name)


def _depthwise(b: GraphBuilder, rng, x, name: str):  # type: ignore[no-untyped-def]
    w = b.constant(f"{name}.w", _weights(rng, (1, 3, 3, x.shape[-1])))
    return b.op("depthwise_conv2d", [x, w, None], {**DW, "activation": "none"}, name=name)


def bottleneck_with_head() -> Graph:
    """x -> expand 4->64 -> relu -> project 64->4 -> head 4->40 (a graph output).

    Untiled, x and the wide map peak together (17 KB). Tiled either way, the peak moves to the
    head, whose input and 10 KB output no rewrite can shrink: FDT and FFMT tie there.
    """
    rng = np.random.default_rng(0)
    b = GraphBuilder("tie")
    x = b.input("x", (1, 8, 8, 4))
    y = _pointwise(b, rng, x, 64, "expand")
    y = b.op("relu", [y], name="relu")
    y = _pointwise(b, rng, y, 4, "project")
    return b.output(_pointwise(b, rng, y, 40, "head"))


def depthwise_chain() -> Graph:
    """Depthwise convolutions and a pool only: FDT has no layer to start a chain with."""
    rng = np.random.default_rng(1)
    b = GraphBuilder("depthwise")
    x = b.input("x", (1, 32, 32, 8))
    y = _depthwise(b, rng, x, "dw1")
    y = b.op("relu6", [y], name="relu6")
    y = _depthwise(b, rng, y, "dw2")
    pool = {"kernel": (4, 4), "strides": (4, 4), "pads": (0, 0, 0, 0)}
    return b.output(b.op("max_pool2d", [y], pool, name="pool"))


def inverted_residual() -> Graph:
    """x -> expand 4->64 -> relu -> depthwise 3x3 -> project 64->4 at 16x16.

    FDT cuts the wide maps along channels without recompute; FFMT cuts them finer but
    recomputes the depthwise halo, and reaches a lower peak.
    """
    rng = np.random.default_rng(2)
    b = GraphBuilder("inverted_residual")
    x = b.input("x", (1, 16, 16, 4))
    y = _pointwise(b, rng, x, 64, "expand")
    y = b.op("relu", [y], name="relu")
    y = _depthwise(b, rng, y, "dw")
    return b.output(_pointwise(b, rng, y, 4, "project"))


def two_convolutions() -> Graph:
    """x (2 channels) -> conv 3x3 to 16 -> relu -> conv 3x3 -> max pool 4x4, at 32x32.

    FDT can cut the first convolution's output along channels into the second (accumulating its
    full-size output); FFMT cuts the whole chain down to the small pooled output, recomputing
    the 3x3 halos, and goes much lower.
    """
    rng = np.random.default_rng(3)
    b = GraphBuilder("two_convolutions")
    x = b.input("x", (1, 32, 32, 2))
    conv = {"strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 1, 1), "groups": 1}
    w1 = b.constant("w1", _weights(rng, (16, 3, 3, 2)))
    y = b.op("conv2d", [x, w1, None], {**conv, "activation": "none"}, name="conv1")
    y = b.op("relu", [y], name="relu")
    w2 = b.constant("w2", _weights(rng, (16, 3, 3, 16)))
    y = b.op("conv2d", [y, w2, None], {**conv, "activation": "none"}, name="conv2")
    pool = {"kernel": (4, 4), "strides": (4, 4), "pads": (0, 0, 0, 0)}
    return b.output(b.op("max_pool2d", [y], pool, name="pool"))


def _run_both(graph: Graph, result) -> None:  # type: ignore[no-untyped-def]
    """The rewritten graph, in its planned arena, computes what the untiled graph computes."""
    x = np.random.default_rng(3).standard_normal(graph.inputs[0].shape).astype(np.float32)
    name = graph.outputs[0].name
    expected = execute(graph.copy(), {graph.inputs[0].name: x})[name]
    got = execute(result.graph, {result.graph.inputs[0].name: x}, result.plan.arena)[name]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_fdt_wins_a_tie_with_ffmt_and_takes_the_fewest_partitions():
    graph = bottleneck_with_head()
    fdt = optimize(graph, methods=["fdt"])
    ffmt = optimize(graph, methods=["ffmt"])
    assert fdt.peak_bytes == ffmt.peak_bytes < fdt.untiled_peak_bytes  # a tie
    both = optimize(graph)
    assert [r["method"] for r in both.rewrites] == ["fdt"]
    assert both.rewrites[0]["partitions"] == 2  # more partitions do not lower the peak
    assert both.peak_bytes == fdt.peak_bytes and both.extra_macs == 0
    assert both.limiting_buffer is not None and both.limiting_buffer.producer == "head"
    _run_both(graph, both)


def test_ffmt_where_fdt_cannot_start_a_chain():
    graph = depthwise_chain()
    assert optimize(graph, methods=["fdt"]).rewrites == ()
    result = optimize(graph)
    assert [r["method"] for r in result.rewrites] == ["ffmt"]
    assert result.rewrites[0]["ops"] == ["dw1", "relu6", "dw2", "pool"]
    assert result.peak_bytes < result.untiled_peak_bytes
    assert result.extra_macs > 0  # the depthwise halos are computed twice
    _run_both(graph, result)


def test_lowest_peak_without_budget_and_first_fit_with_least_recompute_with_one():
    graph = two_convolutions()
    lowest = optimize(graph)
    fdt = optimize(graph, methods=["fdt"])
    assert lowest.peak_bytes < fdt.peak_bytes < lowest.untiled_peak_bytes
    assert lowest.extra_macs > 0 and fdt.extra_macs == 0

    # FDT fits: nothing recomputed although FFMT would go lower
    budget = fdt.peak_bytes
    fitting = optimize(graph, budget=budget)
    assert fitting.fits_budget and fitting.peak_bytes <= budget
    assert [r["method"] for r in fitting.rewrites] == ["fdt"]
    assert fitting.extra_macs == 0
    _run_both(graph, fitting)

    # only FFMT fits: the coarsest grid that does, no more recompute than the lowest peak's
    tight = optimize(graph, budget=fdt.peak_bytes - 16)
    assert tight.fits_budget and tight.peak_bytes <= fdt.peak_bytes - 16
    assert [r["method"] for r in tight.rewrites] == ["ffmt"]
    assert 0 < tight.extra_macs < lowest.extra_macs
    _run_both(graph, tight)


def test_budget_already_met_changes_nothing():
    graph = inverted_residual()
    result = optimize(graph, budget=10**9)
    assert result.rewrites == () and result.fits_budget
    assert result.peak_bytes == result.untiled_peak_bytes
    assert format_graph(result.graph) == format_graph(plan_graph(graph))


def plan_graph(graph: Graph) -> Graph:
    copy = graph.copy()
    plan_memory(copy)
    return copy


def test_unmet_budget_reports_the_buffer_that_sets_the_peak():
    graph = depthwise_chain()
    result = optimize(graph, budget=1024)
    assert not result.fits_budget
    assert result.peak_bytes < result.untiled_peak_bytes  # the best found is still returned
    buffer = result.limiting_buffer
    assert buffer is not None
    # the model input (32 KB) is live while the first tiles are read from it
    assert (buffer.tensor, buffer.producer, buffer.size) == ("x", None, 32 * 32 * 8 * 4)
    data = result.to_json()
    assert data["fits_budget"] is False and data["limiting_buffer"]["tensor"] == "x"


def test_zero_mac_overhead_allows_only_rewrites_without_recompute():
    assert optimize(depthwise_chain(), max_mac_overhead=0).rewrites == ()
    result = optimize(inverted_residual(), max_mac_overhead=0)
    assert result.rewrites and all(r["method"] == "fdt" for r in result.rewrites)
    assert result.extra_macs == 0 and result.mac_overhead == 0


def test_mac_overhead_limit_is_honoured():
    graph = inverted_residual()
    unlimited = optimize(graph, methods=["ffmt"])
    limit = unlimited.mac_overhead / 2
    limited = optimize(graph, methods=["ffmt"], max_mac_overhead=limit)
    assert 0 < limited.mac_overhead <= limit
    assert unlimited.peak_bytes <= limited.peak_bytes < limited.untiled_peak_bytes


def test_records_replay_on_the_untiled_graph_and_the_plan_is_checked():
    graph = inverted_residual()
    result = optimize(graph)
    replayed = apply_rewrites(graph.copy(), result.rewrites)
    assert sorted(format_graph(replayed).splitlines()) == sorted(
        format_graph(result.graph).splitlines()
    )
    check_assignment(result.plan.lifetimes.buffers, result.plan.assignment, 16)
    assert result.plan.lower_bound <= result.peak_bytes
    assert format_graph(graph) == format_graph(inverted_residual()), "input graph unchanged"


def test_deterministic():
    first = optimize(inverted_residual(), budget=6000)
    second = optimize(inverted_residual(), budget=6000)
    assert first.rewrites == second.rewrites and first.peak_bytes == second.peak_bytes


def test_quick_plan_peak_is_the_lower_bound_of_the_planned_lifetimes():
    graph = inverted_residual()
    quick = quick_plan(graph)
    full = plan_memory(graph.copy(), reorder=False)
    assert quick.peak >= full.lower_bound  # the full planner also switches single ops
    assert max(quick.live) == quick.peak


@pytest.mark.parametrize(
    "options, message",
    [
        ({"methods": ["fdt", "tiles"]}, "unknown tiling method"),
        ({"methods": []}, "unknown tiling method"),
        ({"max_mac_overhead": -0.1}, "negative"),
        ({"budget": 0}, "positive"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(UsageError, match=message):
        optimize(inverted_residual(), **options)


def test_int8_real_model_plan_is_bit_exact():
    """ResNet-8 int8: the chosen rewrites run in their plan and give TFLite Micro's bytes."""
    from memfit import api

    path = MODELS / "mlperf_tiny_resnet8_int8.tflite"
    graph = api.load(path)
    result = optimize(graph, max_mac_overhead=0.2)
    assert result.rewrites and result.peak_bytes < result.untiled_peak_bytes
    assert result.mac_overhead <= 0.2
    assert graph.inputs[0].dtype is DType.INT8
    x = np.random.default_rng(4).integers(-128, 128, graph.inputs[0].shape, dtype=np.int8)
    expected = api.run(api.load(path), x, "separate")
    got = api.run(result.graph, x, result.plan.arena)
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array)


def test_a_time_limit_keeps_the_best_found_so_far():
    graph = depthwise_chain()
    unlimited = optimize(graph)
    stopped = optimize(graph, time_limit=0.0)
    assert stopped.timed_out and not unlimited.timed_out
    assert stopped.peak_bytes >= unlimited.peak_bytes
    check_assignment(stopped.plan.lifetimes.buffers, stopped.plan.assignment, 16)


def test_a_residual_block_is_tiled_as_one_region():
    """conv -> conv -> conv + shortcut: no chain avoids keeping the shortcut and the sum whole
    beside a middle map; the region of the whole block keeps only the input, the sum and a
    tile."""
    rng = np.random.default_rng(3)
    b = GraphBuilder("residual")
    x = b.input("x", (1, 24, 24, 3))
    conv = {"strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 1, 1), "groups": 1}
    y = b.op(
        "conv2d",
        [x, b.constant("w0", _weights(rng, (8, 3, 3, 3))), None],
        {**conv, "activation": "relu"},
        name="c0",
    )
    z = b.op(
        "conv2d",
        [y, b.constant("w1", _weights(rng, (8, 3, 3, 8))), None],
        {**conv, "activation": "relu"},
        name="c1",
    )
    z = b.op(
        "conv2d",
        [z, b.constant("w2", _weights(rng, (8, 3, 3, 8))), None],
        {**conv, "activation": "none"},
        name="c2",
    )
    graph = b.output(b.op("add", [y, z], {"activation": "relu"}, name="sum"))
    result = optimize(graph)
    regions = [r for r in result.rewrites if "sum" in r["ops"] and "c1" in r["ops"]]
    assert regions and regions[0]["method"] == "ffmt"
    assert result.peak_bytes < 0.7 * result.untiled_peak_bytes
    inputs = {"x": rng.standard_normal((1, 24, 24, 3)).astype(np.float32)}
    expected = execute(graph, inputs)["sum"]
    got = execute(result.graph, inputs, result.plan.arena)["sum"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
