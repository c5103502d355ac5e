from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.planning.checker import check_assignment
from memfit.planning.greedy_by_size import greedy_by_size
from memfit.planning.lifetimes import Buffer, lower_bound
from tests.test_planning_strategies import buffer_lists

# Largest first, equal sizes last-given first (a before c), then first fit: TFLite Micro's plan.
# a [0,64); c above it [64,128); d fits under c at step 2 [0,48); b is live with c and d and
# only fits on top [128,160). Placing c before a would give 144, the optimum.
TIE_CASE = [
    Buffer("c", 64, 0, 2),
    Buffer("b", 32, 1, 3),
    Buffer("a", 64, 0, 0),
    Buffer("d", 48, 2, 2),
]


def test_tflm_order_and_gaps():
    plan = greedy_by_size(TIE_CASE, 16)
    assert dict(plan.offsets) == {"a": 0, "c": 64, "d": 0, "b": 128}
    assert plan.size == 160
    assert plan.algorithm == "greedy-by-size"
    assert lower_bound(TIE_CASE, 16) == 144


def test_equal_sizes_go_last_given_first():
    swapped = [TIE_CASE[2], TIE_CASE[1], TIE_CASE[0], TIE_CASE[3]]
    plan = greedy_by_size(swapped, 16)
    assert plan.offsets["c"] == 0
    assert plan.size == 144


def test_ties_are_decided_by_aligned_size():
    # 20 and 30 bytes both take 32: the later one goes first and gets offset 0
    plan = greedy_by_size([Buffer("x", 30, 0, 0), Buffer("y", 20, 0, 0)], 16)
    assert dict(plan.offsets) == {"y": 0, "x": 32}


# A chain of 16, 32, 48, 16, ... byte tensors: largest first leaves the small ones stranded
# between big ones; 80 bytes (the lower bound) is reachable, greedy needs 96.
CHAIN = [Buffer(f"t{i}", 16 * (i % 3 + 1), max(i - 1, 0), i) for i in range(8)]


def test_chain_fragments():
    plan = greedy_by_size(CHAIN, 16)
    assert plan.size == 96
    assert lower_bound(CHAIN, 16) == 80


@settings(max_examples=150, deadline=None)
@given(buffer_lists(), st.sampled_from([1, 4, 16]))
def test_valid_and_above_the_bound(buffers, alignment):
    plan = greedy_by_size(buffers, alignment)
    check_assignment(buffers, plan, alignment)
    assert plan.size >= lower_bound(buffers, alignment)
