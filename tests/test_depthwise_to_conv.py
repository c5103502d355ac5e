"""depthwise-to-conv: a depthwise convolution of a one-channel input as a convolution."""

import numpy as np
import pytest

from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Quantization
from memfit.ir.dtypes import DType
from memfit.ir.printer import format_graph
from memfit.passes.depthwise_to_conv import depthwise_to_conv
from memfit.runtime.executor import execute
from tests.helpers import SHARED_MODELS

DW = {"strides": (2, 1), "dilations": (1, 1), "pads": (1, 2, 1, 0), "activation": "relu"}


def _graph(quantized: bool, in_channels: int = 1):
    rng = np.random.default_rng(0)
    b = GraphBuilder("g")
    multiplier = 3
    channels = in_channels * multiplier
    if quantized:
        x = b.input("x", (1, 7, 6, in_channels), DType.INT8, Quantization((0.1,), (-5,)))
        w = b.constant(
            "w",
            rng.integers(-127, 128, (1, 3, 4, channels)).astype(np.int8),
            Quantization(tuple(0.01 * (i + 1) for i in range(channels)), (0,) * channels, 3),
        )
        bias = b.constant(
            "b",
            rng.integers(-500, 500, channels).astype(np.int32),
            Quantization(tuple(0.001 * (i + 1) for i in range(channels)), (0,) * channels, 0),
        )
        quant = Quantization((0.2,), (-128,))
    else:
        x = b.input("x", (1, 7, 6, in_channels))
        w = b.constant("w", rng.standard_normal((1, 3, 4, channels)).astype(np.float32))
        bias = b.constant("b", rng.standard_normal(channels).astype(np.float32))
        quant = None
    attrs = {**DW, "depth_multiplier": multiplier}
    return b.output(b.op("depthwise_conv2d", [x, w, bias], attrs, name="dw", quant=quant))


def test_golden():
    g = _graph(False)
    assert depthwise_to_conv(g).modified
    assert format_graph(g) == (
        "graph g(%x: float32[1,7,6,1]) -> (%dw) {\n"
        "  %dw: float32[1,4,5,3] = conv2d(%x, @w/filters:float32[3,3,4,1], @b:float32[3]) "
        "{activation=relu, dilations=(1, 1), groups=1, pads=(1, 2, 1, 0), strides=(2, 1)}\n"
        "}\n"
    )


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_same_numbers(quantized):
    g = _graph(quantized)
    rng = np.random.default_rng(1)
    x = (
        rng.integers(-128, 128, (1, 7, 6, 1)).astype(np.int8)
        if quantized
        else rng.standard_normal((1, 7, 6, 1)).astype(np.float32)
    )
    before = execute(g, {"x": x})["dw"]
    depthwise_to_conv(g)
    assert [op.kind for op in g.ops] == ["conv2d"]
    after = execute(g, {"x": x})["dw"]
    if quantized:
        np.testing.assert_array_equal(after, before)
        assert g.ops[0].inputs[1].quant.axis == 0
    else:
        np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


def test_keeps_depthwise_of_several_channels():
    assert not depthwise_to_conv(_graph(False, in_channels=2)).modified


def test_micro_speech_first_layer_is_a_convolution():
    from memfit import api

    path = SHARED_MODELS / "tflm_micro_speech_int8.tflite"
    if not path.exists():
        pytest.skip("shared models are not available")
    kinds = [op.kind for op in api.load(path).ops]
    assert "depthwise_conv2d" not in kinds and "conv2d" in kinds
