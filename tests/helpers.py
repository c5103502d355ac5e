"""Small graphs shared by tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph
from memfit.ir.dtypes import DType

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflite"
"""The shared reference models (``../shared`` beside the checkout)."""


def graph_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs for every graph input: int8 over its whole range, float32 normal."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for t in graph.inputs:
        if t.dtype is DType.INT8:
            inputs[t.name] = rng.integers(-128, 128, t.shape).astype(np.int8)
        else:
            inputs[t.name] = rng.standard_normal(t.shape).astype(np.float32)
    return inputs


CONV = {"strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 1, 1), "groups": 1}


def small_cnn(seed: int = 0) -> Graph:
    """conv -> relu -> pool -> reshape -> dense: a tiny float classifier."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("small_cnn")
    x = b.input("x", (1, 8, 8, 3))
    w = b.constant("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    bias = b.constant("b", rng.standard_normal(4).astype(np.float32))
    y = b.op("conv2d", [x, w, bias], {**CONV, "activation": "none"}, name="conv")
    y = b.op("relu", [y], name="relu")
    y = b.op("max_pool2d", [y], {"kernel": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0)})
    y = b.op("reshape", [y], shape=(1, 64), name="flatten")
    fw = b.constant("fw", rng.standard_normal((10, 64)).astype(np.float32))
    y = b.op("fully_connected", [y, fw, None], {"activation": "none"}, name="dense")
    return b.output(y)


def residual_block(seed: int = 0) -> Graph:
    """x -> conv -> relu -> add(x, .): x stays live across the conv and the relu."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("residual")
    x = b.input("x", (1, 6, 6, 4))
    w = b.constant("w", rng.standard_normal((4, 3, 3, 4)).astype(np.float32))
    y = b.op("conv2d", [x, w, None], {**CONV, "activation": "none"}, name="conv")
    y = b.op("relu", [y], name="relu")
    return b.output(b.op("add", [x, y], {"activation": "none"}, name="add"))
