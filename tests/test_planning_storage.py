import numpy as np

from memfit.ir.builder import GraphBuilder
from memfit.planning.storage import StorageRef, build_storage
from tests.helpers import residual_block, small_cnn


def test_reshape_output_is_a_view_of_its_input():
    g = small_cnn()
    storage = build_storage(g)
    assert storage.refs["flatten"] == StorageRef("max_pool2d_2", 0)
    assert storage.root("relu") == "relu"
    assert storage.members()["max_pool2d_2"] == ("max_pool2d_2", "flatten")
    assert "flatten" not in storage.roots()


def test_views_can_be_switched_off():
    g = small_cnn()
    storage = build_storage(g, reshape_views=False)
    assert storage.root("flatten") == "flatten"
    assert set(storage.roots()) == {t.name for t in g.activations()}


def test_no_views_without_reshapes():
    g = residual_block()
    assert set(build_storage(g).roots()) == {"x", "conv", "relu", "add"}


def test_chain_of_reshapes_resolves_to_the_first_tensor():
    b = GraphBuilder()
    x = b.input("x", (2, 6))
    y = b.op("reshape", [x], shape=(3, 4), name="r1")
    z = b.op("reshape", [y], shape=(12,), name="r2")
    g = b.output(b.op("relu", [z], name="act"))
    storage = build_storage(g)
    assert storage.root("r1") == storage.root("r2") == "x"
    assert storage.members() == {"x": ("x", "r1", "r2"), "act": ("act",)}


def test_reshape_of_a_constant_gets_its_own_bytes():
    b = GraphBuilder()
    x = b.input("x", (2, 6))
    c = b.constant("c", np.ones((12,), np.float32))
    shaped = b.op("reshape", [c], shape=(2, 6), name="shaped")
    g = b.output(b.op("add", [x, shaped], {"activation": "none"}, name="sum"))
    assert build_storage(g).root("shaped") == "shaped"
