import pytest

from memfit.errors import InternalError
from memfit.ir.core import Graph
from memfit.ir.dtypes import DType
from memfit.planning.lifetimes import Buffer, compute_lifetimes, lower_bound, model_order
from memfit.planning.storage import NO_SHARING, StorageOptions, build_storage
from tests.helpers import residual_block, small_cnn

RESHAPE_VIEWS_ONLY = StorageOptions.only("reshape_views")


def _spans(lifetimes):
    return {b.name: (b.first, b.last) for b in lifetimes.buffers}


def _separate(graph):
    return build_storage(graph, NO_SHARING)


def test_residual_block_model_order():
    g = residual_block()
    lt = compute_lifetimes(g, storage=_separate(g))
    assert lt.order == ("conv", "relu", "add")
    # x is read by add at step 2; the graph output lives to the end
    assert _spans(lt) == {"x": (0, 2), "conv": (0, 1), "relu": (1, 2), "add": (2, 2)}
    assert lt.buffer("x").size == 6 * 6 * 4 * 4
    assert [b.name for b in lt.live_at(1)] == ["x", "conv", "relu"]


def test_in_place_root_lives_from_its_first_write_to_its_last_read():
    g = residual_block()
    lt = compute_lifetimes(g)  # relu over conv, add over relu: one root, written at 0
    assert _spans(lt) == {"x": (0, 2), "conv": (0, 2)}
    assert lower_bound(lt, 16) == 2 * 576


def test_inputs_live_from_step_zero_and_outputs_to_the_end():
    g = residual_block()
    g.outputs.append(g.tensors["conv"])  # now an output too: it must outlive its last read
    lt = compute_lifetimes(g)
    assert _spans(lt)["conv"] == (0, 2)
    assert _spans(lt)["x"] == (0, 2)
    assert lt.storage.root("relu") == "relu"  # an output is never overwritten


def test_unread_tensor_lives_only_where_it_is_written():
    g = residual_block()
    g.outputs = [g.tensors["relu"]]  # add's output is now read by nobody
    assert _spans(compute_lifetimes(g, storage=_separate(g)))["add"] == (2, 2)


def test_reshape_view_extends_its_root():
    g = small_cnn()
    lt = compute_lifetimes(g, storage=build_storage(g, RESHAPE_VIEWS_ONLY))
    spans = _spans(lt)
    assert "flatten" not in spans  # a view, not a buffer of its own
    assert spans["max_pool2d_2"] == (2, 4)  # written at 2, read through the view at 4
    separate = compute_lifetimes(g, storage=_separate(g))
    assert _spans(separate)["max_pool2d_2"] == (2, 3)
    assert _spans(separate)["flatten"] == (3, 4)


def test_scratch_lives_at_its_op_only():
    g = residual_block()
    lt = compute_lifetimes(
        g, storage=_separate(g), scratch=lambda op: 100 if op.kind == "conv2d" else 0
    )
    assert lt.scratch == {"conv": "scratch:conv"}
    assert lt.buffer("scratch:conv") == Buffer("scratch:conv", 100, 0, 0)
    # step 0: x 576 + conv 576 + scratch 112 (aligned)
    assert lower_bound(lt, 16) == max(576 + 576 + 112, 576 * 3)


def test_scratch_name_never_collides_with_a_tensor():
    g = residual_block()
    g.add_tensor("scratch:conv", (1,), g.tensors["x"].dtype)
    g.add_op("relu", [g.tensors["add"]], [g.tensors["scratch:conv"]], name="late")
    lt = compute_lifetimes(g, scratch=lambda op: 8 if op.name == "conv" else 0)
    assert lt.scratch["conv"] != "scratch:conv"
    assert len({b.name for b in lt.buffers}) == len(lt.buffers)


def test_other_order_changes_lifetimes():
    g = residual_block()
    with pytest.raises(InternalError, match="not topological"):
        compute_lifetimes(g, ("relu", "conv", "add"))
    with pytest.raises(InternalError, match="permutation"):
        compute_lifetimes(g, ("conv", "add"))


def test_lower_bound_counts_aligned_sizes_at_the_worst_step():
    buffers = [Buffer("a", 1, 0, 1), Buffer("b", 17, 1, 2), Buffer("c", 40, 2, 2)]
    assert lower_bound(buffers, 16) == 32 + 48  # step 2: b and c
    assert lower_bound(buffers, 1) == 17 + 40
    assert lower_bound([], 16) == 0


def test_lower_bound_of_a_chain_is_the_largest_neighbouring_pair():
    g = small_cnn()
    assert model_order(g) == tuple(op.name for op in g.ops)
    lt = compute_lifetimes(g, storage=_separate(g))
    # conv and relu outputs (1x8x8x4 float32 = 1024 bytes each) are live together at step 1
    assert lower_bound(lt, 16) == 2048
    # relu in place over conv: step 1 holds conv's bytes only; step 0 (x and conv) is the peak
    in_place = compute_lifetimes(g)
    assert sum(b.size for b in in_place.live_at(1)) == 1024
    assert lower_bound(in_place, 16) == 768 + 1024


def test_malformed_buffer_is_a_bug():
    with pytest.raises(InternalError):
        Buffer("x", 4, 3, 2)


def test_roots_follow_the_graph_tensor_order():
    # TFLite Micro breaks size ties by tensor index, so buffers keep the file's tensor order
    g = Graph()
    out = g.add_tensor("out", (4,), DType.FLOAT32)
    x = g.add_tensor("x", (4,), DType.FLOAT32)
    mid = g.add_tensor("mid", (4,), DType.FLOAT32)
    g.inputs.append(x)
    g.add_op("relu", [x], [mid])
    g.add_op("relu", [mid], [out])
    g.outputs.append(out)
    assert [t.name for t in g.activations()] == ["x", "mid", "out"]
    lt = compute_lifetimes(g, storage=_separate(g))
    assert [b.name for b in lt.buffers] == ["out", "x", "mid"]
