import numpy as np
import pytest

from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Quantization
from memfit.ir.dtypes import DType
from memfit.ir.printer import format_graph
from memfit.passes.fuse_activation import fuse_activation
from memfit.runtime.executor import execute

CONV = {
    "strides": (1, 1),
    "dilations": (1, 1),
    "pads": (1, 1, 1, 1),
    "groups": 1,
    "activation": "none",
}


def _conv_then(act: str):
    rng = np.random.default_rng(0)
    b = GraphBuilder("g")
    x = b.input("x", (1, 4, 4, 2))
    w = b.constant("w", rng.standard_normal((3, 3, 3, 2)).astype(np.float32))
    y = b.op("conv2d", [x, w, None], CONV, name="conv")
    return b.output(b.op(act, [y], name="act"))


def _add_pool_then(act: str):
    b = GraphBuilder("p")
    x = b.input("x", (1, 4, 4, 2))
    y = b.op("add", [x, x], {"activation": "none"}, name="add")
    y = b.op(act, [y], name="act1")
    y = b.op(
        "avg_pool2d",
        [y],
        {"kernel": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0), "activation": "none"},
        name="pool",
    )
    return b.output(b.op(act, [y], name="act2"))


def test_golden():
    g = _conv_then("relu6")
    assert format_graph(g) == (
        "graph g(%x: float32[1,4,4,2]) -> (%act) {\n"
        "  %conv: float32[1,4,4,3] = conv2d(%x, @w:float32[3,3,3,2], _) {activation=none, "
        "dilations=(1, 1), groups=1, pads=(1, 1, 1, 1), strides=(1, 1)}\n"
        "  %act: float32[1,4,4,3] = relu6(%conv)\n"
        "}\n"
    )
    assert fuse_activation(g).modified
    assert format_graph(g) == (
        "graph g(%x: float32[1,4,4,2]) -> (%act) {\n"
        "  %act: float32[1,4,4,3] = conv2d(%x, @w:float32[3,3,3,2], _) {activation=relu6, "
        "dilations=(1, 1), groups=1, pads=(1, 1, 1, 1), strides=(1, 1)}\n"
        "}\n"
    )


@pytest.mark.parametrize("act", ["relu", "relu6", "relu_n1_to_1", "tanh", "logistic"])
@pytest.mark.parametrize("build", [_conv_then, _add_pool_then])
def test_same_numbers(build, act):
    x = np.random.default_rng(3).standard_normal((1, 4, 4, 2)).astype(np.float32) * 4
    expected = execute(build(act), {"x": x})
    g = build(act)
    assert fuse_activation(g).modified
    assert act not in [op.kind for op in g.ops]
    for name, value in expected.items():
        np.testing.assert_allclose(execute(g, {"x": x})[name], value, rtol=1e-6, atol=1e-6)


def test_no_fusion_when_the_raw_value_is_read_elsewhere():
    g = _conv_then("relu")
    g.outputs.append(g.tensors["conv"])
    assert not fuse_activation(g).modified
    b = GraphBuilder("c")
    x = b.input("x", (1, 2, 2, 3))
    c = b.op("concat", [x, x], {"axis": 3, "activation": "none"}, name="cat")
    g = b.output(b.op("relu", [c], name="act"))
    assert not fuse_activation(g).modified  # the float concat kernel applies no activation


def _int8_add_relu(out_quant: Quantization, act: str = "relu"):
    q = Quantization((0.05,), (-10,))
    b = GraphBuilder("q")
    x = b.input("x", (1, 2, 2, 3), DType.INT8, q)
    y = b.op("add", [x, x], {"activation": "none"}, quant=q, name="add")
    return b.output(b.op(act, [y], quant=out_quant, name="act"))


def test_int8_fuses_only_exact_clamps():
    same = Quantization((0.05,), (-10,))
    g = _int8_add_relu(same)
    assert fuse_activation(g).modified
    assert [(op.kind, op.attrs["activation"]) for op in g.ops] == [("add", "relu")]
    assert g.outputs[0].quant == same
    assert not fuse_activation(_int8_add_relu(Quantization((0.1,), (-128,)))).modified
    assert not fuse_activation(_int8_add_relu(same, act="tanh")).modified
