import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.errors import InternalError
from memfit.planning import suite
from memfit.planning.assignment import Assignment
from memfit.planning.checker import check_assignment
from memfit.planning.lifetimes import lower_bound
from memfit.planning.suite import run_suite
from tests.test_planning_greedy_by_size import CHAIN, TIE_CASE
from tests.test_planning_strategies import buffer_lists


def test_keeps_the_smallest_and_stops_at_the_bound():
    result = run_suite(CHAIN, 16)
    assert [a.algorithm for a in result.tried] == ["greedy-by-size", "hill-climb"]
    assert result.best.algorithm == "hill-climb"
    assert result.best.size == result.lower_bound == 80
    assert result.best.optimal


@pytest.fixture
def no_hill_climb(monkeypatch):
    """Make hill climbing return the greedy answer, so only the solver can close the gap."""
    monkeypatch.setattr(
        suite,
        "hill_climb",
        lambda buffers, alignment, **_: suite.greedy_by_size(buffers, alignment),
    )


def test_exact_runs_when_the_heuristics_miss_the_bound(no_hill_climb):
    result = run_suite(TIE_CASE, 16)
    assert [a.size for a in result.tried] == [160, 160, 144]
    assert result.best.algorithm == "exact-cp-sat" and result.best.optimal


def test_exact_can_be_skipped(no_hill_climb):
    result = run_suite(TIE_CASE, 16, exact_time_limit=0)
    assert result.best.size == 160 and not result.best.optimal
    assert result.best.algorithm == "greedy-by-size"  # ties go to the first tried


def test_a_broken_planner_is_caught(monkeypatch):
    def overlapping(buffers, alignment):
        return Assignment({b.name: 0 for b in buffers}, 64, "broken")

    monkeypatch.setattr(suite, "greedy_by_size", overlapping)
    with pytest.raises(InternalError, match=r"plan from broken: buffers 'c' .* and 'a' "):
        run_suite(TIE_CASE, 16)


@settings(max_examples=40, deadline=None)
@given(buffer_lists(), st.sampled_from([1, 16]))
def test_every_answer_is_checked_and_ordered(buffers, alignment):
    result = run_suite(buffers, alignment, exact_time_limit=5.0)
    for answer in result.tried:
        check_assignment(buffers, answer, alignment)
    sizes = [a.size for a in result.tried]  # greedy, then hill climb, then exact
    assert sizes == sorted(sizes, reverse=True)
    assert result.best.size == min(sizes) >= lower_bound(buffers, alignment)
    assert result.best.optimal  # tiny instances: the bound or a proof is always reached
