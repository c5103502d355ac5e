import numpy as np

from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Quantization
from memfit.ir.dtypes import DType
from memfit.ir.printer import format_graph
from memfit.passes.fold_pad import fold_pad
from memfit.runtime.executor import execute

CONV = {"strides": (2, 2), "dilations": (1, 1), "groups": 1, "activation": "none"}


def _graph(value=0.0, channel_pad=0):
    rng = np.random.default_rng(0)
    b = GraphBuilder("g")
    x = b.input("x", (1, 7, 7, 3))
    p = b.op(
        "pad", [x], {"pads": ((0, 0), (1, 1), (0, 1), (0, channel_pad)), "value": value}, name="pad"
    )
    w = b.constant("w", rng.standard_normal((2, 3, 3, 3 + channel_pad)).astype(np.float32))
    y = b.op("conv2d", [p, w, None], {**CONV, "pads": (0, 1, 0, 0)}, name="conv")
    return b.output(y)


def test_golden():
    g = _graph()
    assert fold_pad(g).modified
    assert format_graph(g) == (
        "graph g(%x: float32[1,7,7,3]) -> (%conv) {\n"
        "  %conv: float32[1,4,4,2] = conv2d(%x, @w:float32[2,3,3,3], _) {activation=none, "
        "dilations=(1, 1), groups=1, pads=(1, 1, 1, 1), strides=(2, 2)}\n"
        "}\n"
    )


def test_same_numbers():
    x = np.random.default_rng(1).standard_normal((1, 7, 7, 3)).astype(np.float32)
    before = execute(_graph(), {"x": x})["conv"]
    g = _graph()
    fold_pad(g)
    np.testing.assert_array_equal(execute(g, {"x": x})["conv"], before)


def test_keeps_nonzero_and_channel_pads():
    assert not fold_pad(_graph(value=1.0)).modified
    assert not fold_pad(_graph(channel_pad=1)).modified


def test_int8_pad_folds_when_quantization_matches():
    q = Quantization((0.05,), (-7,))
    b = GraphBuilder("q")
    x = b.input("x", (1, 4, 4, 1), DType.INT8, q)
    p = b.op("pad", [x], {"pads": ((0, 0), (1, 1), (1, 1), (0, 0))}, quant=q)
    w = b.constant("w", np.ones((1, 3, 3, 1), np.int8), Quantization((0.01,), (0,), 0))
    y = b.op(
        "conv2d",
        [p, w, None],
        {**CONV, "strides": (1, 1), "pads": (0, 0, 0, 0)},
        quant=Quantization((0.1,), (3,)),
    )
    g = b.output(y)
    assert fold_pad(g).modified
    assert g.ops[0].attrs["pads"] == (1, 1, 1, 1)
