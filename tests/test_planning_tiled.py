"""Planning tiled graphs: random hand-built chains rewritten by FDT (channel partitions, LIP or
concat end) and FFMT (spatial tiles) run in their planned arena (accumulators, pools and
depthwise convolutions in place, concat views) exactly as with every tensor apart, and plan
the same way every time."""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from memfit.ir.core import Graph
from memfit.ir.dtypes import DType
from memfit.planning import InPlace, check_assignment, plan_memory
from memfit.planning.arena import separate_plan
from memfit.runtime.executor import execute
from memfit.tiling.chain import TilingError
from memfit.tiling.fdt import apply_fdt
from memfit.tiling.ffmt import apply_ffmt
from tests.helpers import graph_inputs
from tests.test_tiling_fdt import ENDS, MIDDLE, build
from tests.test_tiling_ffmt import _build_random, chain_specs


def _plans_and_runs_exactly(graph: Graph, twice: bool):
    """Plan ``graph`` (``twice``: and a copy, which must get the same plan unless the time limit
    was hit) and run it in the plan: the outputs must be those of every tensor apart, bit for
    bit."""
    inputs = graph_inputs(graph, seed=1)
    expected = execute(graph, inputs, separate_plan(graph))
    again = plan_memory(graph.copy(), exact_time_limit=0) if twice else None
    plan = plan_memory(graph, exact_time_limit=0)
    check_assignment(plan.lifetimes.buffers, plan.assignment, plan.arena.alignment)
    if again is not None and not (plan.schedule.timed_out or again.schedule.timed_out):
        assert (plan.schedule, plan.storage, plan.arena) == (
            again.schedule,
            again.storage,
            again.arena,
        )
    got = execute(graph, inputs, plan.arena)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=f"output {name}")
    return plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    middle=st.lists(st.sampled_from(MIDDLE), max_size=4).map(tuple),
    end=st.sampled_from(ENDS),
    channels=st.integers(2, 16),
    data=st.data(),
    dtype=st.sampled_from([DType.FLOAT32, DType.INT8]),
    seed=st.integers(0, 2**16),
)
def test_fdt_chains_run_exactly_in_their_plan(middle, end, channels, data, dtype, seed):
    graph, names = build(middle, end, channels, dtype, seed, hw=4)
    partitions = data.draw(st.integers(2, min(12, channels)), label="partitions")
    apply_fdt(graph, names, partitions)
    plan = _plans_and_runs_exactly(graph, twice=True)
    for op in graph.ops:  # every partition but the first adds into the accumulator in place
        if op.kind.startswith("partial_") and op.input(2) is not None:
            assert plan.in_place[op.name] == InPlace("elementwise", (2,), writes=True)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain_specs(), st.booleans())
def test_ffmt_chains_run_exactly_in_their_plan(spec, quantized):
    chain = _build_random(spec, quantized)
    try:
        apply_ffmt(chain.graph, chain.names, spec[-1])
    except TilingError as exc:  # a pad op can leave a thin border tile with padding alone
        assert "read only padding" in str(exc)
        assume(False)
    _plans_and_runs_exactly(chain.graph, twice=False)
