"""The choice of in-place rewrites: never a higher peak than any fixed choice, and as much
sharing as the lowest peak allows."""

import dataclasses

import numpy as np
from hypothesis import given, settings

from memfit.ir.builder import GraphBuilder
from memfit.planning.schedule import schedule_ops
from memfit.planning.storage import NO_SHARING, StorageOptions, build_storage
from memfit.planning.storage_choice import choose_storage
from tests.test_planning_strategies import executable_dags

NONE = {"activation": "none"}
CONV = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "groups": 1, **NONE}


def _conv(b, x, channels, name):
    w = np.ones((channels, 1, 1, x.shape[-1]), np.float32)
    return b.op("conv2d", [x, b.constant(f"{name}_w", w), None], CONV, name=name)


def early_slice_graph():
    """concat(a, b) where a must be written before a wide intermediate and b after it: in place,
    the whole concat output (2 KiB) is live beside the wide tensor instead of a alone (1 KiB).
    A second concat later on costs nothing in place."""
    b = GraphBuilder("early_slice")
    x = b.input("x", (1, 8, 8, 4))
    a = b.op("relu", [x], name="a")  # 1024 bytes
    wide = _conv(b, a, 32, "wide")  # 8192 bytes
    thin = _conv(b, wide, 1, "thin")  # 256 bytes
    late = _conv(b, thin, 4, "late")
    cat = b.op("concat", [a, late], {"axis": 3, **NONE}, name="cat")
    out = b.op("relu", [cat], name="out")
    left, right = _conv(b, out, 2, "left"), _conv(b, out, 2, "right")
    return b.output(b.op("concat", [left, right], {"axis": 3, **NONE}, name="tail"))


def test_concat_in_place_that_raises_the_peak_is_left_out():
    g = early_slice_graph()
    assert {"cat", "tail"} <= set(build_storage(g).in_place)
    storage, schedule = choose_storage(g, 16)
    assert "cat" not in storage.in_place
    assert storage.in_place["tail"].kind == "concat"  # harmless there: kept
    assert storage.options.not_in_place == frozenset({"cat"})
    # a alone beside wide and thin, instead of cat's whole bytes
    assert schedule.peak == 1024 + 8192 + 256
    everything = build_storage(g)
    assert schedule_ops(g, 16, storage=everything).peak == 2048 + 8192 + 256


def test_caller_exclusions_and_disabled_kinds_are_respected():
    g = early_slice_graph()
    storage, _ = choose_storage(g, 16, StorageOptions(not_in_place=frozenset({"tail"})))
    assert "tail" not in storage.in_place and "tail" in storage.options.not_in_place
    storage, _ = choose_storage(g, 16, StorageOptions(concat_in_place=False))
    assert not any(entry.kind == "concat" for entry in storage.in_place.values())
    storage, _ = choose_storage(g, 16, NO_SHARING)
    assert storage.in_place == {}


@settings(max_examples=60, deadline=None)
@given(executable_dags(max_ops=9))
def test_never_worse_than_any_fixed_choice(graph):
    storage, schedule = choose_storage(graph, 16, schedule_time_limit=1.0)
    assert build_storage(graph, storage.options) == storage
    for concat in (True, False):
        for depthwise in (True, False):
            options = dataclasses.replace(
                StorageOptions(), concat_in_place=concat, depthwise_in_place=depthwise
            )
            fixed = schedule_ops(graph, 16, storage=build_storage(graph, options))
            assert schedule.peak <= fixed.peak
