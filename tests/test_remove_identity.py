import numpy as np

from memfit.ir.builder import GraphBuilder
from memfit.ir.printer import format_graph
from memfit.passes.remove_identity import remove_identity
from memfit.runtime.executor import execute


def _chain(tail: str = "identity"):
    b = GraphBuilder("g")
    x = b.input("x", (2, 3))
    y = b.op("relu", [x], name="relu")
    y = b.op("dropout", [y], name="drop")
    y = b.op("tanh", [y], name="tanh")
    return b.output(b.op(tail, [y], name="y"))


def test_golden_and_output_name_kept():
    g = _chain()
    assert remove_identity(g).modified
    assert format_graph(g) == (
        "graph g(%x: float32[2,3]) -> (%y) {\n"
        "  %relu: float32[2,3] = relu(%x)\n"
        "  %y: float32[2,3] = tanh(%relu)\n"
        "}\n"
    )
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(execute(g, {"x": x})["y"], execute(_chain(), {"x": x})["y"])


def test_identity_that_cannot_be_removed_without_renaming_stays():
    b = GraphBuilder("io")
    x = b.input("x", (2, 3))
    g = b.output(b.op("identity", [x], name="y"))  # input straight to output
    assert not remove_identity(g).modified

    b = GraphBuilder("shared")
    x = b.input("x", (2, 3))
    r = b.op("relu", [x], name="relu")
    g = b.output(b.op("identity", [r], name="y"), b.op("tanh", [r], name="t"))
    assert not remove_identity(g).modified
    assert [t.name for t in g.outputs] == ["y", "t"]
