from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.planning.checker import check_assignment
from memfit.planning.exact import exact
from memfit.planning.greedy_by_size import greedy_by_size
from memfit.planning.hill_climb import hill_climb
from memfit.planning.lifetimes import Buffer, lower_bound
from tests.test_planning_greedy_by_size import CHAIN, TIE_CASE
from tests.test_planning_strategies import brute_force_arena, buffer_lists


def test_golden_optima():
    for buffers, optimum in ((TIE_CASE, 144), (CHAIN, 80)):
        plan = exact(buffers, 16, hint=greedy_by_size(buffers, 16))
        assert plan is not None and plan.optimal
        assert plan.size == optimum
        check_assignment(buffers, plan, 16)


def test_without_a_hint():
    plan = exact(TIE_CASE, 16)
    assert plan is not None and plan.optimal and plan.size == 144


def test_hint_at_the_bound_is_returned_as_optimal():
    hint = hill_climb(CHAIN, 16)
    plan = exact(CHAIN, 16, hint=hint)
    assert plan is not None and plan.optimal and dict(plan.offsets) == dict(hint.offsets)


def test_empty_buffers_stay_at_zero():
    buffers = [Buffer("a", 0, 0, 3), Buffer("b", 20, 0, 1), Buffer("c", 20, 1, 2)]
    plan = exact(buffers, 4)
    assert plan is not None and plan.offsets["a"] == 0 and plan.size == 40


@settings(max_examples=40, deadline=None)
@given(buffer_lists(max_buffers=6), st.sampled_from([1, 16]))
def test_matches_brute_force(buffers, alignment):
    plan = exact(buffers, alignment, time_limit=5.0, workers=1)
    assert plan is not None and plan.optimal
    check_assignment(buffers, plan, alignment)
    assert plan.size == brute_force_arena(buffers, alignment)


@settings(max_examples=40, deadline=None)
@given(buffer_lists(), st.sampled_from([1, 16]))
def test_never_worse_than_its_hint(buffers, alignment):
    hint = hill_climb(buffers, alignment, iterations=100)
    plan = exact(buffers, alignment, hint=hint, time_limit=5.0)
    assert plan is not None
    check_assignment(buffers, plan, alignment)
    assert lower_bound(buffers, alignment) <= plan.size <= hint.size
