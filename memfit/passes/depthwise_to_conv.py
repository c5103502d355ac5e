"""Rewrite a depthwise convolution of a one-channel input as an ordinary convolution.

With one input channel, a depthwise convolution with depth multiplier M computes M output
channels from that channel: exactly a convolution with M filters of one input channel (TFLite
converters emit it that way, e.g. the first layer of micro_speech). The sums are the same
products in the same order, and the int8 requantization is per output channel in both, so the
results are identical. As a convolution the layer can start a fused depthwise tiling chain (FDT
partitions a layer's output channels), which a depthwise layer cannot.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from memfit.ir.core import Graph, Op
from memfit.passes.manager import PassResult, register_pass


def _one_channel(op: Op) -> bool:
    x, w = op.inputs[0], op.input(1)
    return (
        op.kind == "depthwise_conv2d"
        and x is not None
        and len(x.shape) == 4
        and x.shape[-1] == 1
        and w is not None
        and w.data is not None
    )


@register_pass("depthwise-to-conv")
def depthwise_to_conv(graph: Graph) -> PassResult:
    rewritten = 0
    for op in [op for op in graph.ops if _one_channel(op)]:
        w = op.inputs[1]
        assert w is not None and w.data is not None
        # depthwise [1, KH, KW, M] -> conv [M, KH, KW, 1]: filter m is channel m of the kernel.
        quant = w.quant
        if quant is not None and quant.axis is not None:
            quant = dataclasses.replace(quant, axis=0)
        filters = graph.add_constant(f"{w.name}/filters", np.transpose(w.data, (3, 1, 2, 0)), quant)
        attrs = {k: v for k, v in op.attrs.items() if k != "depth_multiplier"}
        attrs["groups"] = 1
        index = graph.ops.index(op)
        inputs = (op.inputs[0], filters, *op.inputs[2:])
        output, name = op.output, op.name
        graph.remove_op(op)
        graph.add_op("conv2d", inputs, [output], attrs, name=name, index=index)
        rewritten += 1
    if rewritten:
        graph.prune()
    return PassResult(graph, rewritten > 0)
