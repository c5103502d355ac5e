"""The one optimizer: every method weighed by real plans and predicted latency."""

from __future__ import annotations

import pytest

from memfit.codegen.cost_model import uncalibrated_cost_model
from memfit.errors import UsageError
from memfit.optimizer import choose
from memfit.planning import check_assignment
from tests.test_tiling_mafat import _chain


@pytest.fixture(scope="module")
def graph():
    return _chain()


def test_without_a_budget_the_smallest_peak_wins(graph):
    decision = choose(graph, max_mac_overhead=0.0, cost_model=uncalibrated_cost_model())
    peaks = [c.peak_bytes for c in decision.candidates]
    assert decision.chosen.peak_bytes == min(peaks)
    assert decision.chosen.peak_bytes < decision.untiled.peak_bytes
    plan = decision.chosen.plan
    check_assignment(plan.lifetimes.buffers, plan.assignment, plan.arena.alignment)


def test_with_a_budget_the_fastest_fitting_plan_wins(graph):
    untiled = choose(graph, methods=("fdt",), cost_model=uncalibrated_cost_model()).untiled
    budget = int(untiled.peak_bytes * 0.6)
    decision = choose(graph, budget=budget, cost_model=uncalibrated_cost_model())
    assert decision.fits_budget
    fitting = [c for c in decision.candidates if c.peak_bytes <= budget]
    assert decision.chosen.predicted_latency_s == min(c.predicted_latency_s for c in fitting)
    summary = decision.to_json()
    assert summary["peak_bytes"] <= budget and summary["method"] == decision.chosen.source


def test_mafat_alone_and_an_unreachable_budget(graph):
    decision = choose(graph, budget=64, methods=("mafat",), cost_model=uncalibrated_cost_model())
    assert not decision.fits_budget
    assert decision.chosen.peak_bytes == min(c.peak_bytes for c in decision.candidates)
    assert decision.limiting_buffer is not None


def test_unknown_methods_are_refused(graph):
    with pytest.raises(UsageError, match="unknown method"):
        choose(graph, methods=("fdt", "magic"))


def test_primitive_selection_is_weighed_and_replayed():
    """``primitives`` chooses the float convolutions' primitives on each candidate: without a
    budget the least workspace (direct convolution needs none) gives the smallest peak, and the
    record replays onto the model to the same marks."""
    from memfit.codegen.plan import kernel_workspace
    from memfit.selection.lowering import choice_of
    from memfit.tiling import apply_rewrites
    from memfit.zoo import build

    graph = build("resnet8")
    with kernel_workspace():
        decision = choose(graph, methods=("primitives",), cost_model=uncalibrated_cost_model())
    sources = {c.source for c in decision.candidates}
    assert sources == {"untiled", "untiled+primitives"}
    chosen = decision.chosen
    assert chosen.source == "untiled+primitives"
    assert chosen.peak_bytes < decision.untiled.peak_bytes  # fewer im2col panels
    (record,) = chosen.rewrites
    assert record["method"] == "primitives" and record["ops"]
    replayed = apply_rewrites(graph.copy(), chosen.rewrites)
    for op in replayed.ops:
        assert choice_of(op) == choice_of(chosen.graph.op(op.name))
    plan = chosen.plan
    check_assignment(plan.lifetimes.buffers, plan.assignment, plan.arena.alignment)


def test_primitive_selection_within_a_budget_is_the_fastest_that_fits(graph):
    from memfit.codegen.plan import kernel_workspace

    with kernel_workspace():
        free = choose(graph, methods=("primitives",), cost_model=uncalibrated_cost_model())
        budget = free.untiled.peak_bytes
        decision = choose(
            graph, budget=budget, methods=("primitives",), cost_model=uncalibrated_cost_model()
        )
    assert decision.fits_budget
    fitting = [c for c in decision.candidates if c.peak_bytes <= budget]
    assert decision.chosen.predicted_latency_s == min(c.predicted_latency_s for c in fitting)


def test_int8_models_get_primitive_selection():
    """An int8 model's convolutions get their primitives chosen too (the int8 versions), and
    the record replays."""
    from memfit.codegen.plan import kernel_workspace
    from memfit.selection.lowering import choice_of
    from memfit.tiling import apply_rewrites
    from memfit.zoo import build

    graph = build("resnet8-int8")
    with kernel_workspace():
        decision = choose(graph, methods=("primitives",), cost_model=uncalibrated_cost_model())
    assert {c.source for c in decision.candidates} == {"untiled", "untiled+primitives"}
    chosen = decision.chosen
    assert chosen.source == "untiled+primitives"
    assert chosen.peak_bytes <= decision.untiled.peak_bytes
    (record,) = chosen.rewrites
    assert record["method"] == "primitives" and record["ops"]
    replayed = apply_rewrites(graph.copy(), chosen.rewrites)
    for op in replayed.ops:
        assert choice_of(op) == choice_of(chosen.graph.op(op.name))


def test_primitives_are_not_profiled_past_the_time_limit(monkeypatch, tmp_path):
    """With nothing cached and the profiling time used up, the optimizer goes on without
    primitive selection and says why."""
    import memfit.optimizer
    from memfit.codegen.plan import kernel_workspace
    from memfit.zoo import build

    monkeypatch.setattr(memfit.optimizer, "PROFILING_TIME_LIMIT", 0.0)
    with kernel_workspace():
        decision = choose(
            build("resnet8"),
            methods=("primitives",),
            cost_model=uncalibrated_cost_model(),
            profile_cache=tmp_path / "costs.json",
        )
    assert {c.source for c in decision.candidates} == {"untiled"}
    assert any("time limit" in note for note in decision.notes)
    assert not (tmp_path / "costs.json").exists()


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"method": "primitives", "ops": [], "choices": "x"}, "malformed"),
        ({"method": "primitives", "ops": ["nope"], "choices": {"nope": "direct/nhwc"}}, "does not"),
        ({"method": "primitives", "ops": ["conv0"], "choices": {"conv0": "gemm1x1/nhwc"}}, "apply"),
    ],
)
def test_bad_selection_records_are_refused(graph, record, message):
    from memfit.errors import InputError
    from memfit.tiling import apply_rewrites

    with pytest.raises(InputError, match=message):
        apply_rewrites(graph.copy(), [record])


def test_layers_with_a_chosen_primitive_never_run_in_place():
    """A pointwise convolution may run in place through memfit's own kernel only: once the
    selection gives it a primitive, the plan keeps its output apart (the generated C of the
    plan would refuse it otherwise)."""
    from memfit.codegen.plan import kernel_workspace
    from memfit.zoo import build

    with kernel_workspace():
        decision = choose(build("ds-cnn-int8"), methods=("primitives",))
    selected = [c for c in decision.candidates if c.source.endswith("+primitives")]
    assert selected
    for candidate in selected:
        marked = [op.name for op in candidate.graph.ops if op.attrs.get("primitive")]
        assert marked
        assert not set(marked) & set(candidate.plan.storage.in_place)
