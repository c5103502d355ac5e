import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Quantization
from memfit.ir.dtypes import DType
from memfit.ir.printer import format_graph
from memfit.passes.fold_transposes import (
    fold_transposes,
    hoist_transpose,
    is_trivial,
    reshape_groups,
    sink_transpose,
)
from memfit.runtime.executor import execute

TO_NCHW = {"perm": (0, 3, 1, 2)}
TO_NHWC = {"perm": (0, 2, 3, 1)}


def _same_numbers(build, seed: int = 0) -> None:
    """The graph computes the same before and after the pass."""
    before = build()
    rng = np.random.default_rng(seed)
    feeds = {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in before.inputs}
    expected = execute(before, feeds)
    after = build()
    assert fold_transposes(after).modified
    got = execute(after, feeds)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-6)


def _inverse_pair():
    b = GraphBuilder("pair")
    x = b.input("x", (1, 4, 4, 6))
    t = b.op("transpose", [x], TO_NCHW, name="to_nchw")
    t = b.op("transpose", [t], TO_NHWC, name="to_nhwc")
    return b.output(b.op("relu", [t], name="y"))


def test_inverse_pair_cancels_golden():
    g = _inverse_pair()
    assert format_graph(g) == (
        "graph pair(%x: float32[1,4,4,6]) -> (%y) {\n"
        "  %to_nchw: float32[1,6,4,4] = transpose(%x) {perm=(0, 3, 1, 2)}\n"
        "  %to_nhwc: float32[1,4,4,6] = transpose(%to_nchw) {perm=(0, 2, 3, 1)}\n"
        "  %y: float32[1,4,4,6] = relu(%to_nhwc)\n"
        "}\n"
    )
    assert fold_transposes(g).modified
    assert format_graph(g) == (
        "graph pair(%x: float32[1,4,4,6]) -> (%y) {\n  %y: float32[1,4,4,6] = relu(%x)\n}\n"
    )
    _same_numbers(_inverse_pair)


def _channel_shuffle():
    """ONNX's NCHW shuffle as the importer writes it: NHWC -> NCHW, split C, swap, merge, back."""
    b = GraphBuilder("shuffle")
    x = b.input("x", (1, 2, 2, 6))
    t = b.op("transpose", [x], TO_NCHW, name="to_nchw")
    r = b.op("reshape", [t], shape=(1, 2, 3, 2, 2), name="split")
    s = b.op("transpose", [r], {"perm": (0, 2, 1, 3, 4)}, name="swap")
    m = b.op("reshape", [s], shape=(1, 6, 2, 2), name="merge")
    return b.output(b.op("transpose", [m], TO_NHWC, name="y"))


def test_channel_shuffle_keeps_one_transpose_golden():
    g = _channel_shuffle()
    assert fold_transposes(g).modified
    assert format_graph(g) == (
        "graph shuffle(%x: float32[1,2,2,6]) -> (%y) {\n"
        "  %split_r: float32[1,2,2,2,3] = reshape(%x)\n"
        "  %swap_r: float32[1,2,2,3,2] = transpose(%split_r) {perm=(0, 1, 2, 4, 3)}\n"
        "  %y: float32[1,2,2,6] = reshape(%swap_r)\n"
        "}\n"
    )
    _same_numbers(_channel_shuffle)


def _flatten_into_dense():
    b = GraphBuilder("dense")
    x = b.input("x", (2, 3, 2, 4))
    t = b.op("transpose", [x], TO_NCHW, name="to_nchw")
    f = b.op("reshape", [t], shape=(2, 24), name="flatten")
    w = b.constant("w", np.random.default_rng(5).standard_normal((5, 24)).astype(np.float32))
    return b.output(b.op("fully_connected", [f, w, None], {"activation": "none"}, name="y"))


def test_flatten_transpose_folds_into_dense_weights_golden():
    g = _flatten_into_dense()
    original = g.tensors["w"].data.copy()
    assert fold_transposes(g).modified
    assert format_graph(g) == (
        "graph dense(%x: float32[2,3,2,4]) -> (%y) {\n"
        "  %flatten: float32[2,24] = reshape(%x)\n"
        "  %y: float32[2,5] = fully_connected(%flatten, @w:float32[5,24], _) {activation=none}\n"
        "}\n"
    )
    # Column (h, w, c) of the new weights is column (c, h, w) of the old ones.
    new = g.tensors["w"].data
    assert new[2, (1 * 2 + 0) * 4 + 3] == original[2, (3 * 3 + 1) * 2 + 0]
    _same_numbers(_flatten_into_dense)


def test_shared_weights_are_not_changed_in_place():
    g = _flatten_into_dense()
    shared = g.tensors["w"]
    before = shared.data.copy()
    g.add_op(
        "fully_connected",
        [g.inputs[0], shared, None],
        [g.add_tensor("other", (12, 5), shared.dtype)],
        {"activation": "none"},
    )
    g.outputs.append(g.tensors["other"])
    assert fold_transposes(g).modified
    np.testing.assert_array_equal(shared.data, before)
    assert g.op("y").inputs[1] is not shared


def _size_one_axes():
    b = GraphBuilder("pooled")
    x = b.input("x", (1, 1, 1, 8))
    t = b.op("transpose", [x], TO_NCHW, name="to_nchw")
    f = b.op("reshape", [t], shape=(1, 8), name="flatten")
    return b.output(b.op("softmax", [f], {"axis": -1, "beta": 1.0}, name="y"))


def test_transpose_of_size_one_axes_is_a_reshape_golden():
    g = _size_one_axes()
    assert fold_transposes(g).modified
    assert format_graph(g) == (
        "graph pooled(%x: float32[1,1,1,8]) -> (%y) {\n"
        "  %flatten: float32[1,8] = reshape(%x)\n"
        "  %y: float32[1,8] = softmax(%flatten) {axis=-1, beta=1}\n"
        "}\n"
    )
    _same_numbers(_size_one_axes)


def test_constant_transpose_is_folded_and_output_name_kept():
    b = GraphBuilder("c")
    x = b.input("x", (2, 3))
    k = b.constant("k", np.arange(6, dtype=np.float32).reshape(3, 2))
    kt = b.op("transpose", [k], {"perm": (1, 0)}, name="kt")
    y = b.op("add", [x, kt], {"activation": "none"}, name="sum")
    y = b.op("transpose", [y], {"perm": (1, 0)}, name="back")
    g = b.output(b.op("transpose", [y], {"perm": (1, 0)}, name="y"))
    assert fold_transposes(g).modified
    assert format_graph(g) == (
        "graph c(%x: float32[2,3]) -> (%y) {\n"
        "  %y: float32[2,3] = add(%x, @kt:float32[2,3]) {activation=none}\n"
        "}\n"
    )
    np.testing.assert_array_equal(g.tensors["kt"].data, np.arange(6).reshape(3, 2).T)


def test_real_transposes_stay():
    b = GraphBuilder("real")
    x = b.input("x", (1, 3, 4, 5))
    g = b.output(b.op("transpose", [x], TO_NCHW, name="y"))
    assert not fold_transposes(g).modified
    assert [op.kind for op in g.ops] == ["transpose"]


def test_groups_and_triviality():
    assert reshape_groups((1, 12, 5), (1, 3, 4, 5)) == [
        ((0,), ()),
        ((), (0,)),
        ((1,), (1, 2)),
        ((2,), (3,)),
    ]
    assert reshape_groups((6, 4), (4, 6)) == [((0, 1), (0, 1))]
    assert reshape_groups((6,), (4,)) is None
    assert is_trivial((1, 1, 1, 9), (0, 3, 1, 2))
    assert not is_trivial((1, 2, 1, 9), (0, 3, 1, 2))


def _split_merge(draw, dims):
    """A target shape that splits, merges or keeps each of ``dims`` and adds stray 1s."""
    target: list[int] = []
    for d in dims:
        action = draw(st.sampled_from(["keep", "split", "merge"]))
        if action == "merge" and target:
            target[-1] *= d
        elif action == "split" and d in (4, 6):
            target += [2, d // 2]
        else:
            target.append(d)
        if draw(st.integers(0, 3)) == 0:
            target.append(1)
    return tuple(target)


SHAPES = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@st.composite
def _transpose_then_reshape(draw):
    shape = draw(SHAPES)
    perm = tuple(draw(st.permutations(range(len(shape)))))
    return shape, perm, _split_merge(draw, [shape[p] for p in perm])


@st.composite
def _reshape_then_transpose(draw):
    source = draw(SHAPES)
    target = _split_merge(draw, source)
    return source, target, tuple(draw(st.permutations(range(len(target)))))


@settings(max_examples=300, deadline=None)
@given(_transpose_then_reshape())
def test_sinking_a_transpose_computes_the_same(case):
    shape, perm, target = case
    x = np.arange(np.prod(shape)).reshape(shape)
    sunk = sink_transpose(shape, perm, target)
    if sunk is not None:
        new_shape, q = sunk
        np.testing.assert_array_equal(
            x.reshape(new_shape).transpose(q), x.transpose(perm).reshape(target)
        )


@settings(max_examples=300, deadline=None)
@given(_reshape_then_transpose())
def test_hoisting_a_transpose_computes_the_same(case):
    source, target, perm = case
    x = np.arange(np.prod(source)).reshape(source)
    hoisted = hoist_transpose(source, target, perm)
    if hoisted is not None:
        p, new_shape = hoisted
        np.testing.assert_array_equal(
            x.transpose(p).reshape(new_shape), x.reshape(target).transpose(perm)
        )


def test_sink_and_hoist_succeed_on_pure_splits():
    assert sink_transpose((1, 2, 2, 6), (0, 3, 1, 2), (1, 2, 3, 2, 2)) is not None
    assert hoist_transpose((1, 3, 2, 2, 2), (1, 6, 2, 2), (0, 2, 3, 1)) is not None


def test_sink_and_hoist_refuse_what_they_cannot_express():
    # NCHW -> NHWC then flatten H, W, C together: the merge mixes reordered axes.
    assert sink_transpose((1, 2, 3, 4), (0, 2, 3, 1), (1, 24)) is None
    # Split C into (2, 2) then swap the halves: they cannot move as one axis.
    assert hoist_transpose((1, 4), (1, 2, 2), (0, 2, 1)) is None


def test_requantizing_transposes_are_left_alone():
    b = GraphBuilder("q")
    x = b.input("x", (1, 2, 2, 3), DType.INT8, Quantization((0.1,), (0,)))
    t = b.op("transpose", [x], TO_NCHW, quant=Quantization((0.2,), (1,)), name="to_nchw")
    g = b.output(b.op("transpose", [t], TO_NHWC, quant=Quantization((0.2,), (1,)), name="y"))
    assert not fold_transposes(g).modified
    assert [op.kind for op in g.ops] == ["transpose", "transpose"]
