"""The first 16 layers of YOLOv2 (darknet's yolov2.cfg, layers 0-15), MAFAT's reference case.

Convolutions (3x3 or 1x1, stride 1, darknet ``pad=1`` i.e. SAME; batch norm folded into weights and
bias) each followed by leaky ReLU with slope 0.1, and four 2x2 stride-2 max pools. The layer
names carry darknet's layer index.
"""

from __future__ import annotations

import numpy as np

from memfit.ir.core import Graph
from memfit.zoo.layers import NetBuilder

LEAKY_SLOPE = 0.1
MAXPOOL = "maxpool"
# darknet yolov2.cfg layers 0-15: (filters, kernel) for a convolution, or MAXPOOL.
LAYERS: tuple[tuple[int, int] | str, ...] = (
    (32, 3),
    MAXPOOL,
    (64, 3),
    MAXPOOL,
    (128, 3),
    (64, 1),
    (128, 3),
    MAXPOOL,
    (256, 3),
    (128, 1),
    (256, 3),
    MAXPOOL,
    (512, 3),
    (256, 1),
    (512, 3),
    (256, 1),
)


def yolov2_16(rng: np.random.Generator, batch: int, input_hw: tuple[int, int]) -> Graph:
    """YOLOv2 layers 0-15 on ``input_hw`` RGB images (sides divisible by 16)."""
    net = NetBuilder(f"yolov2_16_{input_hw[0]}", rng)
    x = net.input("input", (batch, *input_hw, 3))
    for index, layer in enumerate(LAYERS):
        if isinstance(layer, str):
            x = net.pool("max_pool2d", x, (2, 2), name=f"maxpool{index}")
            continue
        filters, kernel = layer
        x = net.conv(x, filters, kernel, 1, "none", name=f"conv{index}")
        x = net.op("leaky_relu", [x], {"alpha": LEAKY_SLOPE}, name=f"leaky{index}")
    return net.output(x)
