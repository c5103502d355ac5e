import json

import numpy as np
import pytest

from memfit.errors import InputError
from memfit.planning import plan_memory
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
