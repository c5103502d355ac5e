"""Fold an explicit spatial PAD into the padding of the convolutions that read it.

Converters (PyTorch -> TFLite in particular) emit PAD ops that copy whole feature maps. A
convolution pads with real zero itself (for int8: with the input zero point), so a PAD of zeros
along H and W in front of it is the same computation without the copy.
"""

from __future__ import annotations

from memfit.ir.core import Graph, Op
from memfit.passes.manager import PassResult, register_pass

_CONVOLUTIONS = ("conv2d", "depthwise_conv2d")


def _spatial_pads(op: Op) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) when ``op`` pads only H and W of an NHWC tensor with zero."""
    pads = op.attrs["pads"]
    if len(pads) != 4 or op.attrs.get("value", 0.0) != 0.0:
        return None
    (n0, n1), (top, bottom), (left, right), (c0, c1) = pads
    if n0 or n1 or c0 or c1 or min(top, bottom, left, right) < 0:
        return None
    return top, left, bottom, right


def _foldable(graph: Graph, op: Op) -> bool:
    source, padded = op.inputs[0], op.output
    if source is None or padded in graph.outputs or not padded.consumers:
        return False
    if source.quant != padded.quant or source.dtype != padded.dtype:
        return False
    return all(c.kind in _CONVOLUTIONS and c.inputs[0] is padded for c in padded.consumers)


@register_pass("fold-pad")
def fold_pad(graph: Graph) -> PassResult:
    folded = 0
    for op in list(graph.ops):
        if op.kind != "pad":
            continue
        extra = _spatial_pads(op)
        if extra is None or not _foldable(graph, op):
            continue
        source = op.inputs[0]
        assert source is not None
        for conv in op.output.consumers:
            pads = zip(conv.attrs["pads"], extra, strict=True)
            conv.attrs["pads"] = tuple(a + b for a, b in pads)
            graph.set_input(conv, 0, source)
        graph.remove_op(op)
        folded += 1
    if folded:
        graph.prune()
    return PassResult(graph, folded > 0)
