"""MobileNetV2 (Sandler et al., CVPR 2018), as Keras and TF-slim define it.

A 3x3 stride-2 convolution, 17 inverted residual blocks (1x1 expansion by ``t`` with ReLU6,
3x3 depthwise with ReLU6, linear 1x1 projection, a residual add where shapes allow), a 1x1
convolution to 1280 channels, global average pooling (``mean``), a dense layer and softmax.
"""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Graph
from memfit.zoo.layers import NetBuilder

# (expansion t, output channels c, repeats n, first stride s) of the paper's Table 2.
BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor``, losing at most 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenetv2(
    rng: np.random.Generator,
    batch: int,
    input_hw: tuple[int, int],
    alpha: float = 1.0,
    classes: int = 1000,
) -> Graph:
    """MobileNetV2 with width multiplier ``alpha`` on ``input_hw`` RGB images."""
    net = NetBuilder(f"mobilenetv2_{alpha:g}_{input_hw[0]}", rng)
    x = net.input("input", (batch, *input_hw, 3))
    x = net.conv(x, make_divisible(32 * alpha), 3, 2, "relu6", name="conv1")
    index = 0
    for expansion, channels, repeats, first_stride in BLOCKS:
        out_channels = make_divisible(channels * alpha)
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            name = f"block{index}"
            y = x
            if expansion != 1:
                y = net.conv(y, x.shape[-1] * expansion, 1, 1, "relu6", name=f"{name}/expand")
            y = net.depthwise(y, 3, stride, "relu6", name=f"{name}/depthwise")
            y = net.conv(y, out_channels, 1, 1, "none", name=f"{name}/project")
            if stride == 1 and x.shape == y.shape:
                y = net.op("add", [x, y], {"activation": "none"}, name=f"{name}/add")
            x = y
            index += 1
    last_channels = 1280 if alpha <= 1.0 else make_divisible(1280 * alpha)
    x = net.conv(x, last_channels, 1, 1, "relu6", name="conv_last")
    x = net.op("mean", [x], {"axes": (1, 2), "keepdims": False}, name="pool")
    x = net.dense(x, classes, name="logits")
    return net.output(net.op("softmax", [x], {"axis": -1, "beta": 1.0}, name="softmax"))
