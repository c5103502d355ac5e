"""The choice of in-place rewrites: never a higher peak than any fixed choice, and as much
sharing as the lowest peak allows."""

import dataclasses
import itertools

import numpy as np
from hypothesis import given, settings

from memfit.ir.builder import GraphBuilder
from memfit.ir.dtypes import DType
from memfit.planning import plan_memory
from memfit.planning.arena import separate_plan
from memfit.planning.schedule import schedule_ops
from memfit.planning.storage import NO_SHARING, StorageOptions, build_storage
from memfit.planning.storage_choice import choose_storage
from memfit.runtime.executor import execute
from memfit.tiling.fdt import apply_fdt
from tests.helpers import graph_inputs
from tests.test_planning_strategies import accumulating_graph, executable_dags

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
    # and the 1x1 convolutions around thin apart: thin in place would keep wide's 8 KiB root
    # live through late, late in place would hold its 1 KiB root beside wide from thin on
    assert storage.options.not_in_place == frozenset({"cat", "thin", "late"})
    # a alone beside wide and thin, instead of cat's whole bytes
    assert schedule.peak == 1024 + 8192 + 256
    concat_in_place = build_storage(g, StorageOptions(pointwise_in_place=False))
    assert schedule_ops(g, 16, storage=concat_in_place).peak == 2048 + 8192 + 256


def test_caller_exclusions_and_disabled_kinds_are_respected():
    g = early_slice_graph()
    storage, _ = choose_storage(g, 16, StorageOptions(not_in_place=frozenset({"tail"})))
    assert "tail" not in storage.in_place and "tail" in storage.options.not_in_place
    storage, _ = choose_storage(g, 16, StorageOptions(concat_in_place=False))
    assert not any(entry.kind == "concat" for entry in storage.in_place.values())
    storage, _ = choose_storage(g, 16, NO_SHARING)
    assert storage.in_place == {}


SEARCHED = ("concat_in_place", "depthwise_in_place", "pool_in_place", "accumulator_in_place")


@settings(max_examples=60, deadline=None)
@given(executable_dags(max_ops=9))
def test_never_worse_than_any_fixed_choice(graph):
    storage, schedule = choose_storage(graph, 16, schedule_time_limit=10.0)
    assert build_storage(graph, storage.options) == storage
    for flags in itertools.product((True, False), repeat=len(SEARCHED)):
        options = StorageOptions(**dict(zip(SEARCHED, flags, strict=True)))
        fixed = schedule_ops(graph, 16, storage=build_storage(graph, options))
        assert schedule.peak <= fixed.peak, options


def _depthwise(b, x, name, stride):
    w = np.ones((1, 3, 3, x.shape[-1]), np.float32)
    attrs = {
        "strides": (stride, stride),
        "dilations": (1, 1),
        "pads": (1, 1, 1, 1),
        "depth_multiplier": 1,
        **NONE,
    }
    return b.op("depthwise_conv2d", [x, b.constant(f"{name}_w", w), None], attrs, name=name)


def two_blocks():
    """Two inverted-residual-like blocks: 1x1 expand, stride-2 depthwise, 1x1 project; the
    first block's expand and depthwise cut into four channel partitions by FDT (concat end).
    Each partition's depthwise in place keeps its expand output (4 KiB, against 1 KiB written)
    live until the concat; the second block needs its depthwise in place (9 KiB in, 2.25 KiB
    out)."""
    b = GraphBuilder("two_blocks")
    x = b.input("x", (1, 16, 16, 2))  # 2 KiB
    y = _conv(b, x, 16, "expand")  # 16 KiB, 4 per partition
    y = _depthwise(b, y, "dw", 2)  # 4 KiB, 1 per partition
    y = _conv(b, y, 2, "project")  # 512 B
    y = _conv(b, y, 36, "expand2")  # 9 KiB
    y = _depthwise(b, y, "dw2", 2)  # 2.25 KiB
    g = b.output(_conv(b, y, 2, "project2"))
    apply_fdt(g, ["expand", "dw"], 4)
    return g


def test_shrinking_ops_that_feed_a_concat_are_switched_off_together():
    g = two_blocks()
    # the 1x1 convolutions stay apart here: the depthwise partitions and their concat decide
    base = StorageOptions(pointwise_in_place=False)
    partitions = frozenset(f"dw.p{p}" for p in range(4))
    everything = build_storage(g, base)
    assert all(everything.in_place[name].kind == "depthwise" for name in partitions)
    assert "dw" not in everything.in_place  # no partition output is a whole root: copied

    def peak(excluded):
        options = dataclasses.replace(base, not_in_place=excluded)
        return schedule_ops(g, 16, storage=build_storage(g, options)).peak

    # one partition apart lowers the concat's step by one expand output only
    assert peak(frozenset()) == 20480 and peak(frozenset({"dw.p0"})) == 18432
    # all apart: the second block's depthwise sets the peak (if it stays in place) ...
    assert peak(partitions) == 10240 and peak(partitions | {"dw2"}) == 11520
    # ... once the concat copies the small partition outputs instead of holding 4 KiB early
    storage, schedule = choose_storage(g, 16, base)
    assert storage.options.not_in_place == partitions | {"dw"}
    assert storage.in_place["dw2"].kind == "depthwise"
    assert schedule.peak == 9216 + 512
    searched = [*sorted(partitions), "dw", "dw2"]
    subsets = itertools.chain.from_iterable(
        itertools.combinations(searched, k) for k in range(len(searched) + 1)
    )
    assert schedule.peak == min(peak(frozenset(subset)) for subset in subsets)
    _runs_identically(g)


def test_narrowing_output_that_lives_long_is_written_apart():
    """An int8 accumulator output over its int32 accumulator keeps four times its bytes live for
    as long as it lives: here across a wide temporary, until a residual add reads it."""
    g = accumulating_graph(DType.INT8)
    b = GraphBuilder()
    b.graph = g
    (out,) = g.outputs
    q = out.quant
    wide = b.op("pad", [out], {"pads": ((0, 0), (8, 8), (8, 8), (0, 0))}, name="wide", quant=q)
    pool = {"kernel": (5, 5), "strides": (5, 5), "pads": (0, 0, 0, 0), "activation": "none"}
    back = b.op("max_pool2d", [wide], pool, name="back", quant=q)
    g.outputs = [b.op("add", [out, back], NONE, name="residual", quant=q)]
    assert build_storage(g).in_place["out"].kind == "narrowing"
    storage, schedule = choose_storage(g, 16)
    assert "out" in storage.options.not_in_place and "out" not in storage.in_place
    narrowing = build_storage(
        g, StorageOptions(not_in_place=storage.options.not_in_place - {"out"})
    )
    assert schedule.peak < schedule_ops(g, 16, storage=narrowing).peak
    _runs_identically(g)


def _runs_identically(graph):
    inputs = graph_inputs(graph)
    expected = execute(graph, inputs, separate_plan(graph))
    got = execute(graph, inputs, plan_memory(graph, exact_time_limit=0).arena)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)
