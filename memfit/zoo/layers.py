"""Layers for writing zoo networks: a GraphBuilder that draws seeded He-initialized weights.

Biases start at zero; :func:`memfit.zoo.normalize.fold_batch_statistics` later gives every layer
the scale and bias a folded batch norm would. Padding follows TFLite's SAME convention (the odd
pixel goes to the bottom/right), which is also darknet's ``pad=1`` for odd kernels at stride 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph, Tensor

OUTPUT_CHANNEL_AXIS = {"conv2d": 0, "depthwise_conv2d": 3, "fully_connected": 0}
"""The axis of each layer kind's weights that indexes output channels (TFLite layouts)."""


def same_pads(
    size_hw: Sequence[int], kernel_hw: Sequence[int], stride: int
) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) padding that makes the output ceil(size / stride)."""
    before, after = [], []
    for size, kernel in zip(size_hw, kernel_hw, strict=True):
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return before[0], before[1], after[0], after[1]


INPUT_RANGE = (-1.0, 1.0)
"""Every zoo network expects inputs in this range (images and features scaled to [-1, 1])."""


def random_inputs(graph: Graph, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded stand-ins for real data, for every float NHWC graph input, within INPUT_RANGE.

    White noise would make every input look alike to a network (global pooling averages it
    away), so each sample gets its own brightness per channel, contrast and texture: blocky
    low-frequency patterns plus some white noise.
    """
    return {t.name: _random_image(t.shape, rng) for t in graph.inputs}


def _random_image(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    n, h, w, c = shape
    block = int(rng.integers(2, 9))
    coarse = rng.standard_normal((n, -(-h // block), -(-w // block), c))
    pattern = coarse.repeat(block, axis=1).repeat(block, axis=2)[:, :h, :w]
    noise = rng.standard_normal((n, h, w, c)) * rng.uniform(0.0, 0.5, (n, 1, 1, 1))
    brightness = rng.uniform(-0.6, 0.6, (n, 1, 1, c))
    contrast = rng.uniform(0.1, 0.6, (n, 1, 1, 1))
    low, high = INPUT_RANGE
    return np.clip(brightness + contrast * (pattern + noise), low, high).astype(np.float32)


class NetBuilder:
    """Appends NHWC layers to a graph; weights come from ``rng`` in the order layers are added."""

    def __init__(self, name: str, rng: np.random.Generator) -> None:
        self.builder = GraphBuilder(name)
        self.rng = rng

    def input(self, name: str, shape: Sequence[int]) -> Tensor:
        return self.builder.input(name, shape)

    def _he_normal(self, shape: Sequence[int], fan_in: int) -> np.ndarray:
        std = math.sqrt(2.0 / fan_in)
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def _bias(self, name: str, channels: int) -> Tensor:
        return self.builder.constant(f"{name}/bias", np.zeros(channels, np.float32))

    def conv(
        self,
        x: Tensor,
        filters: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        activation: str = "none",
        *,
        name: str,
    ) -> Tensor:
        """A convolution (kernel k or (kh, kw)) with SAME padding and a bias."""
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        cin = x.shape[-1]
        w = self.builder.constant(
            f"{name}/weights", self._he_normal((filters, kh, kw, cin), kh * kw * cin)
        )
        attrs = {
            "strides": (stride, stride),
            "dilations": (1, 1),
            "pads": same_pads(x.shape[1:3], (kh, kw), stride),
            "groups": 1,
            "activation": activation,
        }
        return self.builder.op("conv2d", [x, w, self._bias(name, filters)], attrs, name=name)

    def depthwise(
        self, x: Tensor, kernel: int, stride: int = 1, activation: str = "none", *, name: str
    ) -> Tensor:
        """A k x k depthwise convolution (multiplier 1, positive weights), SAME padding, a bias."""
        channels = x.shape[-1]
        # Positive (smoothing) filters: a zero-mean random 3x3 filter is high-pass, cancels the
        # smooth part of its channel, and the folded batch norm then amplifies what is left,
        # mostly rounding noise once the network is quantized.
        smoothing = np.abs(self._he_normal((1, kernel, kernel, channels), kernel * kernel))
        w = self.builder.constant(f"{name}/weights", smoothing)
        attrs = {
            "strides": (stride, stride),
            "dilations": (1, 1),
            "pads": same_pads(x.shape[1:3], (kernel, kernel), stride),
            "depth_multiplier": 1,
            "activation": activation,
        }
        return self.builder.op(
            "depthwise_conv2d", [x, w, self._bias(name, channels)], attrs, name=name
        )

    def dense(self, x: Tensor, units: int, activation: str = "none", *, name: str) -> Tensor:
        """A fully connected layer on a [batch, features] tensor."""
        features = x.shape[-1]
        w = self.builder.constant(f"{name}/weights", self._he_normal((units, features), features))
        attrs = {"activation": activation, "keep_num_dims": False}
        return self.builder.op("fully_connected", [x, w, self._bias(name, units)], attrs, name=name)

    def op(
        self, kind: str, inputs: Sequence[Tensor], attrs: dict[str, Any] | None = None, *, name: str
    ) -> Tensor:
        """Any other op (add, softmax, leaky_relu, ...)."""
        return self.builder.op(kind, inputs, attrs, name=name)

    def pool(self, kind: str, x: Tensor, kernel: tuple[int, int], *, name: str) -> Tensor:
        """An unpadded max or average pool whose stride is its window (Keras' default)."""
        attrs: dict[str, Any] = {
            "kernel": kernel,
            "strides": kernel,
            "pads": (0, 0, 0, 0),
            "activation": "none",
        }
        if kind == "avg_pool2d":
            attrs["count_include_pad"] = False
        return self.builder.op(kind, [x], attrs, name=name)

    def flatten(self, x: Tensor, *, name: str) -> Tensor:
        shape = (x.shape[0], math.prod(x.shape[1:]))
        return self.builder.op("reshape", [x], name=name, shape=shape)

    def output(self, *tensors: Tensor) -> Graph:
        return self.builder.output(*tensors)
