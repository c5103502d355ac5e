import numpy as np
import pytest

from memfit.ir.builder import GraphBuilder
from memfit.ir.printer import format_graph
from memfit.passes.fold_channel_affine import fold_channel_affine
from memfit.runtime.executor import execute

CONV = {
    "strides": (1, 1),
    "dilations": (1, 1),
    "pads": (0, 0, 0, 0),
    "groups": 1,
    "activation": "none",
}
ELEMENTWISE = {"activation": "none"}


def _conv_scale_shift(scale_shape=(1, 1, 1, 4), shift_shape=(4,)):
    """conv -> mul(per-channel) -> add(per-channel), the Caffe2 BatchNorm + scale pattern."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("g")
    x = b.input("x", (1, 3, 3, 2))
    w = b.constant("w", rng.standard_normal((4, 1, 1, 2)).astype(np.float32))
    y = b.op("conv2d", [x, w, None], CONV, name="conv")
    s = b.constant("s", rng.standard_normal(scale_shape).astype(np.float32))
    y = b.op("mul", [y, s], ELEMENTWISE, name="scale")
    t = b.constant("t", rng.standard_normal(shift_shape).astype(np.float32))
    return b.output(b.op("add", [t, y], ELEMENTWISE, name="shift"))


def _bn_then(kind: str, x_first: bool = True, constant=None):
    rng = np.random.default_rng(1)
    b = GraphBuilder("bn")
    x = b.input("x", (1, 2, 2, 3))
    params = [
        b.constant(n, rng.uniform(0.5, 1.5, 3).astype(np.float32))
        for n in ("gamma", "beta", "mean", "var")
    ]
    y = b.op("batch_norm", [x, *params], {"epsilon": 1e-5}, name="bn")
    c = b.constant(
        "c", rng.uniform(0.5, 2.0, (3,)).astype(np.float32) if constant is None else constant
    )
    return b.output(b.op(kind, [y, c] if x_first else [c, y], ELEMENTWISE, name="y"))


def _same_numbers(build, expect_kinds) -> None:
    before = build()
    x = np.random.default_rng(7).standard_normal(before.inputs[0].shape).astype(np.float32)
    expected = execute(before, {"x": x})
    after = build()
    assert fold_channel_affine(after).modified
    assert [op.kind for op in after.ops] == expect_kinds
    for name, value in expected.items():
        np.testing.assert_allclose(execute(after, {"x": x})[name], value, rtol=1e-5, atol=1e-5)


def test_golden():
    g = _conv_scale_shift()
    assert format_graph(g) == (
        "graph g(%x: float32[1,3,3,2]) -> (%shift) {\n"
        "  %conv: float32[1,3,3,4] = conv2d(%x, @w:float32[4,1,1,2], _) {activation=none, "
        "dilations=(1, 1), groups=1, pads=(0, 0, 0, 0), strides=(1, 1)}\n"
        "  %scale: float32[1,3,3,4] = mul(%conv, @s:float32[1,1,1,4]) {activation=none}\n"
        "  %shift: float32[1,3,3,4] = add(@t:float32[4], %scale) {activation=none}\n"
        "}\n"
    )
    assert fold_channel_affine(g).modified
    assert format_graph(g) == (
        "graph g(%x: float32[1,3,3,2]) -> (%shift) {\n"
        "  %shift: float32[1,3,3,4] = conv2d(%x, @w:float32[4,1,1,2], @conv_bias:float32[4]) "
        "{activation=none, dilations=(1, 1), groups=1, pads=(0, 0, 0, 0), strides=(1, 1)}\n"
        "}\n"
    )
    _same_numbers(_conv_scale_shift, ["conv2d"])


@pytest.mark.parametrize(
    "kind, x_first", [("mul", True), ("add", False), ("sub", True), ("sub", False), ("div", True)]
)
def test_standalone_batch_norm_absorbs_the_affine(kind, x_first):
    _same_numbers(lambda: _bn_then(kind, x_first), ["batch_norm"])


def test_scalar_constant_is_per_channel_too():
    _same_numbers(lambda: _bn_then("mul", constant=np.array(2.5, np.float32)), ["batch_norm"])


def test_non_channel_constants_and_reciprocals_stay():
    spatial = _conv_scale_shift(scale_shape=(1, 3, 1, 1))  # varies along H, not channels
    assert [op.kind for op in spatial.ops] == ["conv2d", "mul", "add"]
    fold_channel_affine(spatial)
    assert [op.kind for op in spatial.ops] == ["conv2d", "mul", "add"]  # add cannot pass mul
    assert not fold_channel_affine(_bn_then("div", x_first=False)).modified  # c / x
    with_relu = _conv_scale_shift()
    with_relu.op("conv").attrs["activation"] = "relu"
    assert not fold_channel_affine(with_relu).modified


def test_shared_constant_is_not_changed():
    g = _bn_then("mul")
    gamma = g.tensors["gamma"]
    other = g.add_tensor("other", (1, 2, 2, 3), gamma.dtype)
    g.add_op("mul", [g.inputs[0], gamma], [other], ELEMENTWISE)
    g.outputs.append(other)
    before = gamma.data.copy()
    assert fold_channel_affine(g).modified
    np.testing.assert_array_equal(gamma.data, before)
