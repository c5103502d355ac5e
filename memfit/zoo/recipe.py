"""How a zoo network gets its weights and its int8 twin: seeds, statistics, calibration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from memfit.ir.core import Graph
from memfit.zoo.layers import random_inputs
from memfit.zoo.normalize import copy_constants, fold_batch_statistics
from memfit.zoo.quantize import calibrate, quantize

Architecture = Callable[[np.random.Generator, int, tuple[int, int]], Graph]
"""Builds a network with raw weights drawn from the generator: (rng, batch, input_hw)."""


@dataclass(frozen=True)
class Recipe:
    """A zoo network: its architecture, published input size and seed.

    The float32 model folds batch statistics measured on ``statistics_batch`` random inputs at
    ``statistics_hw`` (the published size unless given; a fully convolutional network can be
    measured smaller). The int8 model is calibrated on ``calibration_count`` further random
    inputs at the published size. Nothing is cached: every build recomputes the same numbers
    from the seed.
    """

    architecture: Architecture
    input_hw: tuple[int, int]
    seed: int
    statistics_batch: int = 16
    statistics_hw: tuple[int, int] | None = None
    calibration_count: int = 8

    def _raw(self, batch: int, input_hw: tuple[int, int]) -> Graph:
        return self.architecture(np.random.default_rng(self.seed), batch, input_hw)

    def float32(self) -> Graph:
        """The float32 network with folded batch statistics."""
        statistics = self._raw(self.statistics_batch, self.statistics_hw or self.input_hw)
        rng = np.random.default_rng([self.seed, 1])
        fold_batch_statistics(statistics, random_inputs(statistics, rng), rng)
        graph = self._raw(1, self.input_hw)
        copy_constants(statistics, graph)
        return graph

    def int8(self) -> Graph:
        """The float32 network quantized to int8 after calibration."""
        graph = self.float32()
        rng = np.random.default_rng([self.seed, 2])
        samples = [random_inputs(graph, rng) for _ in range(self.calibration_count)]
        return quantize(graph, calibrate(graph, samples))
