"""The latency cost model: fitting recovers known coefficients, leave-one-model-out predicts a
model only from the others, files round-trip, and the default shipped with memfit loads and
predicts positive latencies."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import pytest

from memfit.codegen import cost_model
from memfit.codegen.bench import bench_plans
from memfit.codegen.cost_model import Coefficients, CostModel, MeasuredPlan, fit
from memfit.codegen.plan import plan_for_c
from memfit.ir.core import Graph
from memfit.planning import MemoryPlan
from tests.helpers import small_cnn


@dataclass(frozen=True)
class FakeOp:
    key: str
    macs: int
    bytes: int
    seconds: float


TRUE = {"conv2d/int8": (2e-6, 3e-10, 0.0), "add/int8": (1e-6, 0.0, 5e-10)}


def synthetic(key: str, count: int = 12) -> list[FakeOp]:
    a, b, c = TRUE[key]
    ops = []
    for i in range(count):
        macs, moved = 1000 * (i + 1) ** 2, 300 * (i + 3)
        ops.append(FakeOp(key, macs, moved, a + b * macs + c * moved))
    return ops


def test_fit_recovers_known_coefficients_per_class():
    model = fit(synthetic("conv2d/int8") + synthetic("add/int8"))
    for key, expected in TRUE.items():
        got = model.classes[key].to_json()
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-15), key
    assert model.provenance["samples_per_class"] == {"add/int8": 12, "conv2d/int8": 12}


def test_fit_keeps_coefficients_non_negative():
    # seconds that fall with MACs would need a negative per-MAC cost: clamped at 0
    ops = [FakeOp("x/float32", m, 100, 1e-3 - 1e-9 * m) for m in range(1000, 20000, 1000)]
    coefficients = fit(ops).classes["x/float32"]
    assert min(coefficients.to_json()) >= 0


def test_a_class_with_few_samples_uses_the_general_fit():
    model = fit(synthetic("conv2d/int8") + synthetic("add/int8", count=cost_model.MIN_SAMPLES - 1))
    assert "add/int8" not in model.classes and "conv2d/int8" in model.classes


def test_json_round_trip_and_refusal(tmp_path):
    model = CostModel({"a/int8": Coefficients(1e-6, 2e-9, 0.0)}, Coefficients(1.0, 0.0, 0.0), {})
    path = tmp_path / "model.json"
    cost_model.save_cost_model(model, path)
    assert cost_model.load_cost_model(path) == model
    with pytest.raises(ValueError, match="not a memfit cost model"):
        CostModel.from_json({"format": "something else"})


def _plan(seed: int) -> tuple[Graph, MemoryPlan]:
    graph = small_cnn(seed)
    return graph, plan_for_c(graph)


def test_leave_one_model_out_ignores_the_model_it_predicts():
    graph, plan = _plan(0)
    fast = [FakeOp(cost_model.op_features(op).key, 0, 0, 1e-6) for op in graph.ops] * 3
    slow = [FakeOp(op.key, 0, 0, 1.0) for op in fast]
    measured = [
        MeasuredPlan("a", "untiled", 1.0, graph, plan, tuple(slow)),
        MeasuredPlan("b", "untiled", 1e-6, graph, plan, tuple(fast)),
    ]
    predictions = dict(
        (m.model, seconds) for m, seconds in cost_model.leave_one_model_out(measured)
    )
    steps = sum(1 for op in graph.ops if not plan.storage.moves_no_data(op.name))
    assert predictions["a"] == pytest.approx(steps * 1e-6)  # from b's ops only
    assert predictions["b"] == pytest.approx(steps * 1.0)


def test_default_cost_model_predicts_positive_latencies():
    assert cost_model.DEFAULT_PATH.is_file(), "run python -m benchmarks.latency --default"
    model = CostModel.from_json(json.loads(cost_model.DEFAULT_PATH.read_text()))
    assert model.provenance["how"] == "python -m benchmarks.latency"
    graph, plan = _plan(1)
    assert model.predict(graph, plan) > 0
    assert all(model.op_seconds(op) >= 0 for op in graph.ops)


@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
)
def test_bench_plans_times_several_plans_side_by_side():
    first, second = _plan(2), _plan(3)
    results = bench_plans([first, second], "small_cnn", "small_cnn", runs=2)
    assert len(results) == 2
    for (graph, plan), result in zip([first, second], results, strict=True):
        assert result.arena_bytes == plan.arena.size
        assert len(result.run_seconds) == 2 and result.latency_s > 0
        assert result.reference is None  # not a model file: no reference runtime
        timed = [op.name for op in result.per_op]
        assert timed == [op.name for op in graph.ops if not plan.storage.moves_no_data(op.name)]
