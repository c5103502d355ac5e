from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.planning.checker import check_assignment
from memfit.planning.greedy_by_size import greedy_by_size
from memfit.planning.hill_climb import hill_climb
from memfit.planning.lifetimes import lower_bound
from tests.test_planning_greedy_by_size import CHAIN, TIE_CASE
from tests.test_planning_strategies import buffer_lists


def test_finds_the_optimum_greedy_misses():
    for buffers, optimum in ((TIE_CASE, 144), (CHAIN, 80)):
        plan = hill_climb(buffers, 16)
        assert greedy_by_size(buffers, 16).size > optimum
        assert plan.size == optimum == lower_bound(buffers, 16)
        assert plan.algorithm == "hill-climb"
        check_assignment(buffers, plan, 16)


def test_same_seed_same_plan():
    first = hill_climb(CHAIN, 16, iterations=50, seed=3)
    assert hill_climb(CHAIN, 16, iterations=50, seed=3) == first


def test_no_iterations_is_greedy():
    assert hill_climb(CHAIN, 16, iterations=0).offsets == greedy_by_size(CHAIN, 16).offsets


@settings(max_examples=100, deadline=None)
@given(buffer_lists(), st.sampled_from([1, 16]))
def test_never_worse_than_greedy(buffers, alignment):
    plan = hill_climb(buffers, alignment, iterations=200)
    check_assignment(buffers, plan, alignment)
    assert lower_bound(buffers, alignment) <= plan.size <= greedy_by_size(buffers, alignment).size
