"""ResNet-8, the MLPerf Tiny image classification network for CIFAR-10.

A 3x3 convolution with 16 filters, then three residual stacks of two 3x3 convolutions with 16, 32
and 64 filters. The second and third stacks start with stride 2 and reach the residual add through
a 1x1 stride-2 projection; the first stack adds its input unchanged, as the MLPerf Tiny model
does. Each add is followed by ReLU (fused into the add). Average pooling over the 8x8 map, a dense
layer to 10 classes and softmax.
"""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Graph
from memfit.zoo.layers import NetBuilder

STACKS = ((16, 1), (32, 2), (64, 2))  # (filters, first stride)
CLASSES = 10


def resnet8(rng: np.random.Generator, batch: int, input_hw: tuple[int, int]) -> Graph:
    """ResNet-8 on ``input_hw`` RGB images."""
    net = NetBuilder("resnet8", rng)
    x = net.input("input", (batch, *input_hw, 3))
    x = net.conv(x, 16, 3, 1, "relu", name="conv1")
    for i, (filters, stride) in enumerate(STACKS, start=1):
        y = net.conv(x, filters, 3, stride, "relu", name=f"stack{i}/conv1")
        y = net.conv(y, filters, 3, 1, "none", name=f"stack{i}/conv2")
        shortcut = x
        if stride != 1 or x.shape[-1] != filters:
            shortcut = net.conv(x, filters, 1, stride, "none", name=f"stack{i}/shortcut")
        x = net.op("add", [shortcut, y], {"activation": "relu"}, name=f"stack{i}/add")
    x = net.pool("avg_pool2d", x, (x.shape[1], x.shape[2]), name="pool")
    x = net.flatten(x, name="flatten")
    x = net.dense(x, CLASSES, name="logits")
    return net.output(net.op("softmax", [x], {"axis": -1, "beta": 1.0}, name="softmax"))
