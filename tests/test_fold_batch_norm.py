import numpy as np

from memfit.ir.builder import GraphBuilder
from memfit.ir.printer import format_graph
from memfit.passes.fold_batch_norm import fold_batch_norm
from memfit.runtime.executor import execute

CONV = {"strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 1, 1), "activation": "none"}


def _bn_params(b: GraphBuilder, channels: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [
        b.constant("gamma", rng.standard_normal(channels).astype(np.float32)),
        b.constant("beta", rng.standard_normal(channels).astype(np.float32)),
        b.constant("mean", rng.standard_normal(channels).astype(np.float32)),
        b.constant("var", rng.uniform(0.5, 2.0, channels).astype(np.float32)),
    ]


def _conv_bn(kind: str = "conv2d", bias: bool = True):
    rng = np.random.default_rng(0)
    b = GraphBuilder("g")
    x = b.input("x", (1, 5, 5, 3))
    if kind == "depthwise_conv2d":
        w = b.constant("w", rng.standard_normal((1, 3, 3, 6)).astype(np.float32))
        attrs = {**CONV, "depth_multiplier": 2}
    else:
        w = b.constant("w", rng.standard_normal((6, 3, 3, 3)).astype(np.float32))
        attrs = {**CONV, "groups": 1}
    bias_t = b.constant("b", rng.standard_normal(6).astype(np.float32)) if bias else None
    y = b.op(kind, [x, w, bias_t], attrs, name="conv")
    y = b.op("batch_norm", [y, *_bn_params(b, 6)], {"epsilon": 1e-3}, name="bn")
    return b.output(y)


def _dense_bn():
    rng = np.random.default_rng(0)
    b = GraphBuilder("d")
    x = b.input("x", (2, 7))
    w = b.constant("w", rng.standard_normal((4, 7)).astype(np.float32))
    y = b.op("fully_connected", [x, w, None], {"activation": "none"}, name="dense")
    return b.output(b.op("batch_norm", [y, *_bn_params(b, 4)], {"epsilon": 1e-5}, name="bn"))


def _same_numbers(build) -> None:
    before = build()
    x = np.random.default_rng(7).standard_normal(before.inputs[0].shape).astype(np.float32)
    expected = execute(before, {"x": x})
    after = build()
    assert fold_batch_norm(after).modified
    assert "batch_norm" not in [op.kind for op in after.ops]
    for name, value in expected.items():
        np.testing.assert_allclose(execute(after, {"x": x})[name], value, rtol=1e-5, atol=1e-5)


def test_golden():
    g = _conv_bn()
    assert format_graph(g) == (
        "graph g(%x: float32[1,5,5,3]) -> (%bn) {\n"
        "  %conv: float32[1,5,5,6] = conv2d(%x, @w:float32[6,3,3,3], @b:float32[6]) "
        "{activation=none, dilations=(1, 1), groups=1, pads=(1, 1, 1, 1), strides=(1, 1)}\n"
        "  %bn: float32[1,5,5,6] = batch_norm(%conv, @gamma:float32[6], @beta:float32[6], "
        "@mean:float32[6], @var:float32[6]) {epsilon=0.001}\n"
        "}\n"
    )
    assert fold_batch_norm(g).modified
    assert format_graph(g) == (
        "graph g(%x: float32[1,5,5,3]) -> (%bn) {\n"
        "  %bn: float32[1,5,5,6] = conv2d(%x, @w:float32[6,3,3,3], @b:float32[6]) "
        "{activation=none, dilations=(1, 1), groups=1, pads=(1, 1, 1, 1), strides=(1, 1)}\n"
        "}\n"
    )
    # Output channel 0 of the weights is scaled by gamma / sqrt(var + eps).
    original = _conv_bn()
    inv = original.tensors["gamma"].data[0] / np.sqrt(original.tensors["var"].data[0] + 1e-3)
    np.testing.assert_allclose(
        g.tensors["w"].data[0], original.tensors["w"].data[0] * inv, rtol=1e-6
    )


def test_same_numbers_for_every_host():
    _same_numbers(_conv_bn)
    _same_numbers(lambda: _conv_bn(bias=False))
    _same_numbers(lambda: _conv_bn("depthwise_conv2d"))
    _same_numbers(_dense_bn)


def test_standalone_batch_norm_stays():
    b = GraphBuilder("s")
    x = b.input("x", (1, 4, 4, 3))
    c = b.op("concat", [x, x], {"axis": 3}, name="cat")
    g = b.output(b.op("batch_norm", [c, *_bn_params(b, 6)], {"epsilon": 1e-5}, name="bn"))
    assert not fold_batch_norm(g).modified
    assert [op.kind for op in g.ops] == ["concat", "batch_norm"]


def test_no_fold_through_activation_or_shared_output():
    g = _conv_bn()
    g.op("conv").attrs["activation"] = "relu"
    assert not fold_batch_norm(g).modified

    g = _conv_bn()
    g.outputs.append(g.tensors["conv"])  # the raw conv output is needed too
    assert not fold_batch_norm(g).modified
