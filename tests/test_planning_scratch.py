import pytest

from memfit.planning import scratch
from memfit.planning.lifetimes import compute_lifetimes
from tests.helpers import residual_block


@pytest.fixture
def registry(monkeypatch):
    table = {}
    monkeypatch.setattr(scratch, "SCRATCH", table)
    return table


def test_no_kind_needs_scratch_today():
    assert scratch.SCRATCH == {}
    g = residual_block()
    assert all(scratch.scratch_bytes(op) == 0 for op in g.ops)
    assert compute_lifetimes(g).scratch == {}


def test_registered_scratch_becomes_a_buffer(registry):
    @scratch.register_scratch("conv2d", "add")
    def _workspace(op):
        return 64 if op.kind == "conv2d" else 0

    g = residual_block()
    assert set(registry) == {"conv2d", "add"}
    assert [scratch.scratch_bytes(op) for op in g.ops] == [64, 0, 0]
    lt = compute_lifetimes(g)  # the default scratch function reads the registry
    assert lt.scratch == {"conv": "scratch:conv"}
    assert (lt.buffer("scratch:conv").first, lt.buffer("scratch:conv").last) == (0, 0)
