"""``memfit pareto`` end to end on a small ONNX model: profile (cached), ILP, front, baselines,
emitted C verified and timed; and the problem built from a graph."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from memfit.errors import MemfitError, UnsupportedModelError, UsageError
from memfit.frontends import load_model
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph, Quantization
from memfit.ir.dtypes import DType
from memfit.selection import pareto
from memfit.selection.command import add_pareto_parser, cmd_pareto, run_pareto
from memfit.selection.primitives import NCHW, Choice
from memfit.selection.problem import build_problem
from memfit.selection.profile import CostCache, profile_graph
from tests.onnx_helpers import make_model, save


def small_cnn(folder: Path) -> Path:
    rng = np.random.default_rng(0)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"]),
        helper.make_node("Conv", ["c2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c3"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    initializers = {
        "w1": weights(16, 8, 3, 3),
        "b1": weights(16),
        "w2": weights(24, 16, 1, 1),
        "b2": weights(24),
        "w3": weights(8, 24, 3, 3),
        "b3": weights(8),
    }
    return save(make_model(nodes, {"x": (1, 8, 14, 14)}, ["y"], initializers), folder)


@pytest.mark.slow
def test_pareto_end_to_end(tmp_path: Path) -> None:
    model = small_cnn(tmp_path)
    result = run_pareto(
        str(model), points=3, singles=2, runs=1, cache=tmp_path / "costs.json", quiet=True
    )
    data = result.to_json()
    front = data["front"]
    assert front and data["greedy"]["latency_s"] > 0
    for a, b in itertools.pairwise(front):
        assert b["peak_bytes"] < a["peak_bytes"]
        assert b["predicted_latency_s"] >= a["predicted_latency_s"]
    measured = [*front, data["greedy"]]
    measured += [p for p in data["single_primitive"].values() if p["latency_s"] is not None]
    assert len(measured) >= 5
    for point in measured:
        assert point["verified"], point["label"]
        assert point["peak_bytes"] == data["activation_arena_bytes"] + point["workspace_bytes"]
        assert len(point["layers"]) == 3
    assert set(data["single_primitive"]) >= {"default", "direct", "im2col", "winograd"}
    assert data["ilp_optimal"]
    plans = data["optimizer_plans"]
    assert plans and all(p["verified"] and p["latency_s"] > 0 for p in plans)
    assert any(p["chains"] and p["chains"][0]["method"] in ("fdt", "ffmt") for p in plans)
    every = data["front_every_method"]
    assert every and {e["method"] for e in every} <= {"primitives", *(p["method"] for p in plans)}
    for a, b in itertools.pairwise(every):
        assert b["peak_bytes"] < a["peak_bytes"] and b["latency_s"] >= a["latency_s"]
    smallest = min([p["planned_arena_bytes"] for p in measured] + [p["peak_bytes"] for p in plans])
    assert every[-1]["peak_bytes"] == smallest


def test_profile_is_cached(tmp_path: Path) -> None:
    graph = load_model(small_cnn(tmp_path))
    cache = CostCache(tmp_path / "costs.json")
    costs = profile_graph(graph, cache)
    assert len(costs) == 3
    calls = []
    again = profile_graph(graph, CostCache(tmp_path / "costs.json"), lambda d, t: calls.append(d))
    assert len(calls) == 1  # everything came from the cache: nothing was built or run
    assert again == costs
    problem = build_problem(graph, costs)
    assert problem.links  # conv 1x1 -> conv 3x3 (at least) may stay NCHW
    assert all(link.producer in costs for link in problem.links)
    fastest = pareto.front(problem).points[0]
    assert fastest.seconds <= pareto.greedy(problem).seconds + 1e-12
    nchw_everywhere = {name: Choice("direct", NCHW) for name in costs}
    assert pareto.single(problem, Choice("direct", NCHW)).assignment == nchw_everywhere


def test_pareto_refuses_a_model_without_convolutions(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = save(make_model(nodes, {"x": (1, 4)}, ["y"]), tmp_path)
    with pytest.raises(UnsupportedModelError, match="no float32 or int8 conv2d"):
        run_pareto(str(model), quiet=True, cache=tmp_path / "c.json")


def test_pareto_flags(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_pareto_parser(parser.add_subparsers())
    for flags in (["--points", "0"], ["--runs", "0"], ["--plot", "front.txt"]):
        args = parser.parse_args(["pareto", "m.onnx", *flags])
        with pytest.raises(UsageError):
            cmd_pareto(args)
    args = parser.parse_args(["pareto", str(tmp_path / "missing.onnx"), "--json"])
    with pytest.raises(MemfitError):
        cmd_pareto(args)


def int8_chain() -> Graph:
    """int8 conv 3x3 -> conv 1x1 -> conv 3x3, quantized like TFLite (per-channel weights)."""
    rng = np.random.default_rng(8)
    b = GraphBuilder()
    x = b.input("x", (1, 10, 9, 8), DType.INT8, Quantization((0.05,), (-7,)))
    channels = [8, 16, 24, 8]
    kernels = [3, 1, 3]
    for i, k in enumerate(kernels):
        cin, cout = channels[i], channels[i + 1]
        scales = rng.uniform(0.002, 0.02, cout).astype(np.float32)
        weights = b.constant(
            f"w{i}",
            rng.integers(-127, 128, (cout, k, k, cin)).astype(np.int8),
            Quantization(tuple(float(s) for s in scales), (0,) * cout, 0),
        )
        bias = b.constant(f"b{i}", rng.integers(-3000, 3000, cout).astype(np.int32))
        pad = k // 2
        attrs = {"strides": (1, 1), "dilations": (1, 1), "pads": (pad,) * 4, "groups": 1}
        quant = Quantization((0.05 * float(scales.mean()) * 100 * k * cin**0.5,), (i - 5,))
        x = b.op("conv2d", [x, weights, bias], {**attrs, "activation": "relu"}, quant=quant)
    return b.output(x)


def test_int8_layers_kept_nchw_between_primitives_match_numpy(tmp_path: Path) -> None:
    """int8 primitives chained with their activations stored NCHW between them (no
    conversions), and with conversions at the ends, as generated C: bit-exact."""
    from memfit.selection.lowering import configure
    from memfit.selection.measure import _verify
    from memfit.selection.problem import links

    graph = int8_chain()
    names = [op.name for op in graph.ops]
    assignment = {
        names[0]: Choice("im2col", NCHW),
        names[1]: Choice("gemm1x1", NCHW),
        names[2]: Choice("kn2row_acc", NCHW),
    }
    nchw = frozenset(link.tensor for link in links(graph, set(names)))
    assert len(nchw) == 2
    comparison = _verify(configure(graph, assignment, nchw), tmp_path / "c", tmp_path / "o")
    assert comparison.matches and comparison.max_abs_diff == 0


@pytest.mark.slow
def test_pareto_on_an_int8_model(tmp_path: Path) -> None:
    """``memfit pareto zoo:resnet8-int8 --json --no-tiling --runs 1``: every point verified
    bit-exact against the NumPy executor and TFLite Micro."""
    result = run_pareto(
        "zoo:resnet8-int8", runs=1, tiling=False, cache=tmp_path / "costs.json", quiet=True
    )
    data = result.to_json()
    assert data["selectable_layers"] == 9 and data["ilp_optimal"]
    measured = [*data["front"], data["greedy"]]
    measured += [p for p in data["single_primitive"].values() if p["latency_s"] is not None]
    for point in measured:
        assert point["verified"] and point["max_abs_diff"] == 0, point["label"]
    assert set(data["single_primitive"]) == {
        "default", "direct", "im2col", "im2row", "kn2row", "kn2row_acc"
    }  # fmt: skip
    assert data["front"][-1]["workspace_bytes"] == 0  # direct convolution everywhere


def test_int8_layers_are_profiled_apart_from_float(tmp_path: Path) -> None:
    """int8 layers are measured with the int8 primitives and int8 conversions, under keys of
    their own (a float layer of the same shape costs something else)."""
    from memfit.selection.profile import conv_job, conversion_job

    graph = int8_chain()
    costs = profile_graph(graph, CostCache(tmp_path / "costs.json"))
    assert len(costs) == 3
    for op in graph.ops:
        layer = costs[op.name]
        assert Choice("winograd", NCHW) not in layer.seconds
        assert all(s > 0 for s in layer.seconds.values()) and layer.to_nchw_input > 0
        assert all(conv_job(op, c).key.endswith(" s8") for c in layer.seconds)
        assert conversion_job(op.output, "nchw_to_nhwc").key.endswith(" s8")
    one_by_one = graph.ops[1]
    assert Choice("gemm1x1", NCHW) in costs[one_by_one.name].seconds
