import json

import numpy as np
import pytest

from memfit.errors import InputError
from memfit.ir.builder import GraphBuilder
from memfit.planning import NO_SHARING, StorageOptions, plan_memory
from memfit.planning.plan_file import fingerprint, plan_to_json, read_plan, restore_plan, save_plan
from memfit.runtime.executor import execute
from tests.helpers import residual_block, small_cnn


def _saved(tmp_path, graph):
    print_fp = fingerprint(graph)
    plan = plan_memory(graph)
    path = tmp_path / "plan.json"
    save_plan(path, plan_to_json(graph, plan, print_fp))
    return path


def test_round_trip_runs_in_the_recorded_arena(tmp_path):
    path = _saved(tmp_path, residual_block())
    fresh = residual_block()
    graph, plan = restore_plan(fresh, read_plan(path), fingerprint(fresh))
    x = np.random.default_rng(0).standard_normal((1, 6, 6, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        execute(graph, {"x": x}, plan.arena)["add"], execute(residual_block(), {"x": x})["add"]
    )


def test_plan_of_another_model_is_refused(tmp_path):
    path = _saved(tmp_path, residual_block())
    other = small_cnn()
    with pytest.raises(InputError, match="was made for model 'residual'"):
        restore_plan(other, read_plan(path), fingerprint(other))


def test_edited_offsets_are_caught_by_the_checker(tmp_path):
    path = _saved(tmp_path, residual_block())
    document = json.loads(path.read_text())
    document["offsets"] = {name: 0 for name in document["offsets"]}
    path.write_text(json.dumps(document))
    fresh = residual_block()
    with pytest.raises(InputError, match="does not hold for this model"):
        restore_plan(fresh, read_plan(path), fingerprint(fresh))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "x"}', "not a memfit plan file"),
        ('{"format": "memfit-plan", "version": 99}', "version 99"),
    ],
)
def test_bad_files(tmp_path, text, message):
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_plan(path)


def _concat_graph():
    rng = np.random.default_rng(0)
    b = GraphBuilder("concat")
    x = b.input("x", (1, 4, 4, 2))
    attrs = {
        "strides": (1, 1),
        "dilations": (1, 1),
        "pads": (0, 0, 0, 0),
        "groups": 1,
        "activation": "none",
    }
    parts = []
    for i, channels in enumerate((3, 5)):
        w = b.constant(f"w{i}", rng.standard_normal((channels, 1, 1, 2)).astype(np.float32))
        parts.append(b.op("conv2d", [x, w, None], attrs, name=f"conv{i}"))
    cat = b.op("concat", parts, {"axis": 3, "activation": "none"}, name="cat")
    return b.output(b.op("relu", [cat], name="out"))


@pytest.mark.parametrize(
    "options", [StorageOptions(), StorageOptions(concat_in_place=False), NO_SHARING]
)
def test_storage_options_and_in_place_ops_round_trip(tmp_path, options):
    graph = _concat_graph()
    plan = plan_memory(graph, storage=options)
    path = tmp_path / "plan.json"
    save_plan(path, plan_to_json(graph, plan, fingerprint(graph)))
    document = read_plan(path)
    assert document["storage"]["concat_in_place"] == options.concat_in_place
    fresh = _concat_graph()
    restored_graph, restored = restore_plan(fresh, document, fingerprint(fresh))
    assert restored.storage == plan.storage
    assert restored.arena == plan.arena
    x = np.random.default_rng(1).standard_normal((1, 4, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(
        execute(restored_graph, {"x": x}, restored.arena)["out"],
        execute(_concat_graph(), {"x": x})["out"],
    )


def test_plan_without_storage_options_was_made_with_reshape_views_only(tmp_path):
    graph = _concat_graph()
    legacy = StorageOptions.only("reshape_views")
    plan = plan_memory(graph, storage=legacy)
    document = plan_to_json(graph, plan, fingerprint(graph))
    del document["storage"], document["in_place"]
    fresh = _concat_graph()
    _, restored = restore_plan(fresh, document, fingerprint(fresh))
    assert restored.storage.options == legacy
    assert restored.arena == plan.arena


def test_plan_running_other_ops_in_place_is_refused(tmp_path):
    graph = _concat_graph()
    document = plan_to_json(graph, plan_memory(graph), fingerprint(graph))
    assert "cat" in document["in_place"]
    del document["in_place"]["cat"]
    fresh = _concat_graph()
    with pytest.raises(InputError, match="other ops in place"):
        restore_plan(fresh, document, fingerprint(fresh))
    document["storage"] = {"copy_everything": True}
    with pytest.raises(InputError, match="malformed storage options"):
        restore_plan(fresh, document, fingerprint(fresh))


def _pool_graph():
    rng = np.random.default_rng(0)
    b = GraphBuilder("pool")
    x = b.input("x", (1, 8, 8, 2))
    conv = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "groups": 1}
    w = b.constant("w", rng.standard_normal((8, 1, 1, 2)).astype(np.float32))
    wide = b.op("conv2d", [x, w, None], {**conv, "activation": "none"}, name="wide")
    pool = {"kernel": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0), "activation": "none"}
    pooled = b.op("max_pool2d", [wide], pool, name="pool")
    w2 = b.constant("w2", rng.standard_normal((2, 1, 1, 8)).astype(np.float32))
    return b.output(b.op("conv2d", [pooled, w2, None], {**conv, "activation": "none"}, name="out"))


def test_pooling_in_place_round_trips(tmp_path):
    graph = _pool_graph()
    plan = plan_memory(graph)
    document = plan_to_json(graph, plan, fingerprint(graph))
    assert document["in_place"]["pool"] == {"kind": "pool", "inputs": [0], "writes": True}
    fresh = _pool_graph()
    restored_graph, restored = restore_plan(fresh, document, fingerprint(fresh))
    assert restored.storage == plan.storage and restored.arena == plan.arena
    assert restored.scratch_offsets == plan.scratch_offsets  # the one-channel temporary
    x = np.random.default_rng(1).standard_normal((1, 8, 8, 2)).astype(np.float32)
    np.testing.assert_array_equal(
        execute(restored_graph, {"x": x}, restored.arena)["out"],
        execute(_pool_graph(), {"x": x})["out"],
    )


def test_plan_from_before_a_kind_of_sharing_existed_restores_without_it():
    """A plan file written before pooling and accumulation ran in place names neither flag:
    they are off, so the file rebuilds the map it was made with."""
    graph = _pool_graph()
    before = StorageOptions(pool_in_place=False, accumulator_in_place=False)
    plan = plan_memory(graph, storage=before)
    document = plan_to_json(graph, plan, fingerprint(graph))
    for flag in ("pool_in_place", "accumulator_in_place"):
        del document["storage"][flag]
    fresh = _pool_graph()
    _, restored = restore_plan(fresh, document, fingerprint(fresh))
    assert restored.storage.options == before
    assert "pool" not in restored.in_place
    assert restored.arena == plan.arena


def _pointwise_graph():
    """A depthwise-separable pair whose 1x1 convolution doubles the channels in place."""
    rng = np.random.default_rng(2)
    b = GraphBuilder("pointwise")
    x = b.input("x", (1, 6, 6, 2))
    conv = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "groups": 1}
    w = b.constant("w", rng.standard_normal((4, 1, 1, 2)).astype(np.float32))
    first = b.op("conv2d", [x, w, None], {**conv, "activation": "relu"}, name="first")
    w2 = b.constant("w2", rng.standard_normal((8, 1, 1, 4)).astype(np.float32))
    wide = b.op("conv2d", [first, w2, None], {**conv, "activation": "none"}, name="wide")
    return b.output(b.op("relu", [wide], name="out"))


def test_pointwise_in_place_round_trips():
    graph = _pointwise_graph()
    plan = plan_memory(graph)
    assert plan.in_place["wide"].kind == "pointwise"
    assert plan.arena.offset("first") == plan.arena.offset("wide") + 6 * 6 * 4 * 4
    document = plan_to_json(graph, plan, fingerprint(graph))
    fresh = _pointwise_graph()
    restored_graph, restored = restore_plan(fresh, document, fingerprint(fresh))
    assert restored.storage == plan.storage and restored.arena == plan.arena
    assert (
        restored.arena.temporaries
        == plan.arena.temporaries
        == {"wide": plan.scratch_offsets["wide"]}
    )
    x = np.random.default_rng(1).standard_normal((1, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(
        execute(restored_graph, {"x": x}, restored.arena)["out"],
        execute(_pointwise_graph(), {"x": x})["out"],
    )
    # a file written before pointwise convolutions ran in place restores without it
    before = StorageOptions(pointwise_in_place=False)
    old_plan = plan_memory(_pointwise_graph(), storage=before)
    old_document = plan_to_json(graph, old_plan, fingerprint(graph))
    del old_document["storage"]["pointwise_in_place"]
    _, old_restored = restore_plan(_pointwise_graph(), old_document, fingerprint(fresh))
    assert old_restored.storage.options == before and not old_restored.arena.temporaries
