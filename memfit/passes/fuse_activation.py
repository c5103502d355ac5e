"""Fuse an activation op into the op that feeds it (its ``activation`` attribute).

``conv2d -> relu`` becomes one ``conv2d {activation=relu}`` writing the relu's output tensor.
The producer must have no other reader and no activation yet. Float graphs fuse relu, relu6,
relu_n1_to_1, tanh and logistic. An int8 graph fuses only the clamping activations (relu,
relu6, relu_n1_to_1), and only when the activation's input and output share their quantization:
the fused clamp on the producer's output is then exactly what the separate op computes.
"""

from __future__ import annotations

from memfit.ir.core import Graph, Op
from memfit.ir.dtypes import DType
from memfit.passes.manager import PassResult, register_pass
from memfit.passes.rewrite import fuse_into_producer, sole_reader

ACTIVATION_OF = {
    "relu": "relu",
    "relu6": "relu6",
    "relu_n1_to_1": "relu_n1_to_1",
    "tanh": "tanh",
    "logistic": "sigmoid",
}
FLOAT_HOSTS = frozenset(
    {
        "conv2d",
        "depthwise_conv2d",
        "fully_connected",
        "add",
        "sub",
        "mul",
        "div",
        "max_pool2d",
        "avg_pool2d",
    }
)
"""Ops whose float kernels apply a fused activation (concat's does not)."""
QUANTIZED_HOSTS = frozenset(
    {
        "conv2d",
        "depthwise_conv2d",
        "fully_connected",
        "add",
        "sub",
        "mul",
        "max_pool2d",
        "avg_pool2d",
    }
)
"""Ops that TFLite Micro's int8 kernels run with a fused activation range."""
_CLAMPS = ("relu", "relu6", "relu_n1_to_1")


def _host(graph: Graph, act: Op) -> Op | None:
    x = act.inputs[0]
    if x is None or act.kind not in ACTIVATION_OF:
        return None
    host = x.producer
    if host is None or len(host.outputs) != 1 or sole_reader(graph, x) is not act:
        return None
    if host.attrs.get("activation", "none") != "none":
        return None
    if x.dtype is DType.FLOAT32:
        return host if host.kind in FLOAT_HOSTS else None
    out = act.output
    exact = (
        act.kind in _CLAMPS
        and host.kind in QUANTIZED_HOSTS
        and x.quant is not None
        and x.quant.per_tensor
        and x.quant == out.quant
        and x.dtype is out.dtype
    )
    return host if exact else None


@register_pass("fuse-activation")
def fuse_activation(graph: Graph) -> PassResult:
    fused = 0
    for act in [op for op in graph.ops if op.kind in ACTIVATION_OF]:
        host = _host(graph, act)
        if host is None:
            continue
        attrs = {**host.attrs, "activation": ACTIVATION_OF[act.kind]}
        fuse_into_producer(graph, act, host, attrs=attrs)
        fused += 1
    if fused:
        graph.prune()
    return PassResult(graph, fused > 0)
