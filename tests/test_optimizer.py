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
