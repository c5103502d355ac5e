"""DS-CNN, the MLPerf Tiny keyword spotting network (Zhang et al., "Hello Edge", 2017).

49x10 MFCC features; a 10x4 stride-2 convolution with 64 filters; four depthwise-separable blocks
(3x3 depthwise and 1x1 pointwise with 64 channels, each with ReLU); average pooling over the whole
25x5 map; a dense layer to the 12 keywords and softmax.
"""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Graph
from memfit.zoo.layers import NetBuilder

FILTERS = 64
SEPARABLE_BLOCKS = 4
KEYWORDS = 12


def ds_cnn(rng: np.random.Generator, batch: int, input_hw: tuple[int, int]) -> Graph:
    """DS-CNN on ``input_hw`` (time x MFCC) single-channel features."""
    net = NetBuilder("ds_cnn", rng)
    x = net.input("input", (batch, *input_hw, 1))
    x = net.conv(x, FILTERS, (10, 4), 2, "relu", name="conv1")
    for i in range(1, SEPARABLE_BLOCKS + 1):
        x = net.depthwise(x, 3, 1, "relu", name=f"block{i}/depthwise")
        x = net.conv(x, FILTERS, 1, 1, "relu", name=f"block{i}/pointwise")
    x = net.pool("avg_pool2d", x, (x.shape[1], x.shape[2]), name="pool")
    x = net.flatten(x, name="flatten")
    x = net.dense(x, KEYWORDS, name="logits")
    return net.output(net.op("softmax", [x], {"axis": -1, "beta": 1.0}, name="softmax"))
