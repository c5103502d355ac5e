from hypothesis import given, settings

from memfit.ir.core import Graph
from memfit.ir.dtypes import DType
from memfit.planning.lifetimes import compute_lifetimes, lower_bound, model_order
from memfit.planning.schedule import apply_schedule, is_topological, schedule_ops
from tests.helpers import residual_block
from tests.test_planning_strategies import best_peak, random_dags


def two_branches() -> Graph:
    """x feeds two branches that each blow up (160 bytes) and shrink (16 bytes), then join.

    The model order interleaves the branches, so both big tensors are live together (x 16 +
    a1 160 + b1 160 = 336). Finishing one branch first peaks at 192 (x, a2 and b1, or a1, a2
    and x): the optimum.
    """
    g = Graph("two_branches")

    def tensor(name, floats):
        return g.add_tensor(name, (floats,), DType.FLOAT32)

    x = tensor("x", 4)
    g.inputs.append(x)
    a1, b1, a2, b2, out = (
        tensor("a1", 40),
        tensor("b1", 40),
        tensor("a2", 4),
        tensor("b2", 4),
        tensor("out", 4),
    )
    g.add_op("relu", [x], [a1], name="A1")
    g.add_op("relu", [x], [b1], name="B1")
    g.add_op("relu", [a1], [a2], name="A2")
    g.add_op("relu", [b1], [b2], name="B2")
    g.add_op("add", [a2, b2], [out], name="join")
    g.outputs.append(out)
    return g


def test_golden_two_branches():
    g = two_branches()
    s = schedule_ops(g, 16)
    assert s.model_order_peak == 336
    assert s.peak == 192 == best_peak(g, 16)
    assert s.optimal and s.method in ("greedy", "dynamic programming")
    assert is_topological(g, s.order)
    assert s.order.index("A2") < s.order.index("B1") or s.order.index("B2") < s.order.index("A1")


def test_full_search_beats_greedy_or_matches_it():
    g = two_branches()
    assert schedule_ops(g, 16, max_states=1).peak >= schedule_ops(g, 16).peak


def test_chain_keeps_the_model_order():
    g = residual_block()
    s = schedule_ops(g)
    assert s.order == model_order(g)
    assert s.method == "model order" and s.optimal
    assert s.peak == s.model_order_peak == lower_bound(compute_lifetimes(g), 16)


def test_apply_schedule_reorders_the_graph():
    g = two_branches()
    s = schedule_ops(g, 16)
    assert apply_schedule(g, s.order)
    assert model_order(g) == s.order
    g.topological_check()
    assert not apply_schedule(g, s.order)
    assert lower_bound(compute_lifetimes(g), 16) == 192


def test_is_topological():
    g = two_branches()
    assert is_topological(g, ("B1", "A1", "B2", "A2", "join"))
    assert not is_topological(g, ("A2", "A1", "B1", "B2", "join"))
    assert not is_topological(g, ("A1", "B1", "A2", "B2"))


@settings(max_examples=60, deadline=None)
@given(random_dags(max_ops=7))
def test_random_dags_reach_the_brute_force_optimum(graph):
    s = schedule_ops(graph, 16)
    assert is_topological(graph, s.order)
    assert s.peak == lower_bound(compute_lifetimes(graph, s.order), 16)
    assert s.peak <= s.model_order_peak == lower_bound(compute_lifetimes(graph), 16)
    assert s.optimal
    assert s.peak == best_peak(graph, 16)
    if s.peak == s.model_order_peak:
        assert s.order == model_order(graph)


@settings(max_examples=40, deadline=None)
@given(random_dags(max_ops=14))
def test_beam_search_is_valid_and_never_worse(graph):
    s = schedule_ops(graph, 16, max_states=2)
    assert is_topological(graph, s.order)
    assert s.peak == lower_bound(compute_lifetimes(graph, s.order), 16)
    assert s.peak <= s.model_order_peak


@settings(max_examples=40, deadline=None)
@given(random_dags(max_ops=7))
def test_optimal_claims_of_a_cut_search_are_true(graph):
    s = schedule_ops(graph, 16, max_states=2)
    assert s.peak >= best_peak(graph, 16)
    if s.optimal:
        assert s.peak == best_peak(graph, 16)


def test_graph_without_ops():
    g = Graph("empty")
    x = g.add_tensor("x", (8,), DType.FLOAT32)
    g.inputs.append(x)
    g.outputs.append(x)
    s = schedule_ops(g, 16)
    assert (s.order, s.peak, s.method, s.optimal) == ((), 32, "model order", True)
