import numpy as np
import pytest

from memfit.errors import InputError, InternalError
from memfit.planning.arena import ArenaPlan, Placement, separate_plan
from memfit.runtime.executor import execute
from tests.helpers import residual_block, small_cnn


def _reference(graph, x):
    """The same computation written directly in NumPy."""
    w = graph.tensors["w"].data
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros((1, 8, 8, 4), np.float64)
    for i in range(3):
        for j in range(3):
            conv += np.einsum("nhwc,oc->nhwo", xp[:, i : i + 8, j : j + 8], w[:, i, j])
    conv = np.maximum(conv + graph.tensors["b"].data, 0)
    pooled = conv.reshape(1, 4, 2, 4, 2, 4).max(axis=(2, 4)).reshape(1, 64)
    return pooled @ graph.tensors["fw"].data.T


def test_matches_direct_numpy():
    g = small_cnn()
    x = np.random.default_rng(1).standard_normal((1, 8, 8, 3)).astype(np.float32)
    out = execute(g, {"x": x})[g.outputs[0].name]
    np.testing.assert_allclose(out, _reference(g, x), rtol=1e-5, atol=1e-5)


def test_overlapping_plan_gives_wrong_numbers():
    """Placing a tensor on bytes that are still live must change the result."""
    g = residual_block()
    x = np.random.default_rng(2).standard_normal((1, 6, 6, 4)).astype(np.float32)
    good = separate_plan(g)
    expected = execute(g, {"x": x}, good)["add"]
    # relu's output may reuse conv's bytes (conv dies at relu): still correct
    fine = dict(good.placements, relu=good.placements["conv"])
    assert np.array_equal(execute(g, {"x": x}, ArenaPlan(fine, good.size))["add"], expected)
    # but x is still needed by add: putting relu's output on x is a planning bug
    broken = dict(good.placements, relu=good.placements["x"])
    got = execute(g, {"x": x}, ArenaPlan(broken, good.size))["add"]
    assert not np.allclose(got, expected)


def test_unwritten_bytes_are_poison():
    g = small_cnn()
    x = np.zeros((1, 8, 8, 3), np.float32)
    plan = separate_plan(g)
    placements = dict(plan.placements)
    placements["relu"] = Placement(plan.size + 64)
    with pytest.raises(InternalError, match="outside"):
        execute(g, {"x": x}, ArenaPlan(placements, plan.size))


def test_input_mismatch_is_a_user_error():
    g = small_cnn()
    with pytest.raises(InputError, match=r"expects \(1, 8, 8, 3\) float32"):
        execute(g, {"x": np.zeros((1, 8, 8, 4), np.float32)})
    with pytest.raises(InputError, match="missing"):
        execute(g, {})
    with pytest.raises(InputError, match="dtype"):
        execute(g, {"x": np.zeros((1, 8, 8, 3), np.float64)})
