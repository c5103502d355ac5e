import numpy as np
import pytest

from memfit.errors import InternalError
from memfit.ir.core import Graph, Quantization
from memfit.ir.dtypes import DType
from memfit.ir.ops import broadcast_shapes, conv_out, macs
from memfit.ir.printer import format_graph
from tests.helpers import small_cnn


def test_links_follow_graph_edits():
    g = small_cnn()
    conv, relu = g.op("conv"), g.op("relu")
    assert conv.output.consumers == (relu,)
    assert relu.inputs[0].producer is conv
    g.remove_op(relu)
    g.replace_all_uses(relu.output, conv.output)
    assert conv.output.consumers == (g.ops[1],)
    g.topological_check()


def test_prune_removes_dead_ops_and_tensors():
    g = small_cnn()
    dead = g.add_tensor("dead", (1, 8, 8, 4), DType.FLOAT32)
    g.add_op("relu", [g.inputs[0]], [dead], name="dead_relu")
    assert g.prune() == 1
    assert "dead" not in g.tensors


def test_topological_check_names_the_op():
    g = small_cnn()
    g.ops.reverse()
    with pytest.raises(InternalError, match=r"reads .* before it is written"):
        g.topological_check()


def test_copy_is_independent():
    g = small_cnn()
    c = g.copy()
    assert format_graph(c) == format_graph(g)
    c.remove_op(c.op("relu"))
    assert len(g.ops) == len(c.ops) + 1


def test_unique_names():
    g = Graph()
    a = g.add_tensor("t", (1,), DType.INT8)
    b = g.add_tensor("t", (1,), DType.INT8)
    assert (a.name, b.name) == ("t", "t_1")


def test_quantization_validates():
    with pytest.raises(InternalError):
        Quantization((0.1, 0.2), (0, 0), None)
    q = Quantization((0.5,), (-3,))
    assert q.per_tensor and str(q) == "q(s=0.5, z=-3)"


def test_shape_arithmetic():
    assert conv_out(224, 3, 2, 1, 1) == 112
    assert conv_out(7, 3, 1, 2, 0) == 3
    assert broadcast_shapes((1, 4, 4, 8), (8,)) == (1, 4, 4, 8)
    assert broadcast_shapes((2, 1), (1, 3)) == (2, 3)


def test_macs_and_printer():
    g = small_cnn()
    assert macs(g.op("conv")) == 8 * 8 * 4 * 3 * 3 * 3
    assert macs(g.op("dense")) == 640
    text = format_graph(g, with_macs=True)
    assert "%conv: float32[1,8,8,4] = conv2d(%x, @w:float32[4,3,3,3], @b:float32[4])" in text
    assert "# macs=6,912" in text


def test_constant_shape_must_match():
    g = Graph()
    with pytest.raises(InternalError):
        g.add_tensor("c", (2, 2), DType.FLOAT32, data=np.zeros((4,), np.float32))
