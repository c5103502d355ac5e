"""The planners on the shared real models (/work/shared/models/README.md has TFLite Micro's
figures, measured with its interpreter)."""

from pathlib import Path

import numpy as np
import pytest

from memfit import api
from memfit.frontends.tflite import load_tflite
from memfit.planning import (
    NO_SHARING,
    StorageOptions,
    build_storage,
    compute_lifetimes,
    lower_bound,
    plan_memory,
    tflm_greedy,
)
from memfit.planning.arena import separate_plan
from memfit.runtime.executor import execute
from tests.helpers import SHARED_MODELS

MODELS = SHARED_MODELS

# model: (TFLite Micro's arena head, lower bound in model order: tensors, unaligned, no views).
# The LSTM models are left out: TFLite Micro's LSTM kernel takes scratch that memfit's does not.
TFLM_FIGURES = {
    "mlperf_tiny_ad_f32": (3_072, 3_072),
    "mlperf_tiny_ad_int8": (768, 768),
    "mlperf_tiny_kws_int8": (16_000, 16_000),
    "mlperf_tiny_resnet8_f32": (196_608, 196_608),
    "mlperf_tiny_resnet8_int8": (49_152, 49_152),
    "mlperf_tiny_strww_int8": (6_656, 6_656),
    "mlperf_tiny_vww_f32": (294_912, 221_184),
    "mlperf_tiny_vww_int8": (73_728, 55_296),
    "tflm_person_detect_int8": (55_296, 55_296),
    "tflm_micro_speech_int8": (5_968, 5_960),
    "tflm_mobilenet_v2_224_int8": (2_451_840, 2_451_840),
}
RESHAPE_ONLY = StorageOptions.only("reshape_views")


def _path(name: str) -> Path:
    path = MODELS / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


@pytest.mark.parametrize("name", list(TFLM_FIGURES))
def test_tflm_baseline_reproduces_tflite_micro(name):
    # the file as TFLite Micro sees it: no memfit rewrites
    graph = load_tflite(_path(name))
    head, bound = TFLM_FIGURES[name]
    baseline = tflm_greedy(graph)
    assert baseline.arena.size == head
    tensors = compute_lifetimes(graph, storage=build_storage(graph, NO_SHARING))
    assert lower_bound(tensors, alignment=1) == bound


def test_visual_wake_words_reaches_the_lower_bound():
    graph = load_tflite(_path("mlperf_tiny_vww_int8"))
    plan = plan_memory(graph)
    assert plan.arena.size == plan.lower_bound == 55_296  # TFLite Micro: 73,728
    assert plan.assignment.optimal


@pytest.mark.parametrize(
    ("name", "peak", "without"),
    [
        ("mlperf_tiny_kws_int8", 8_496, 16_000),
        ("tflm_person_detect_int8", 46_080, 55_296),
        ("mlperf_tiny_strww_int8", 4_704, 6_656),
    ],
)
def test_pointwise_in_place_goes_below_input_plus_output(name, peak, without):
    """DS-CNN, MobileNetV1 and the streaming wake word model peak at a 1x1 convolution's input
    + output (as TFLite Micro: 16,000, 55,296 and 6,656 bytes). In place, DS-CNN and
    MobileNetV1 peak at their first convolution's input + output; in the wake word model the
    depthwise convolutions after the first run in place inside its 28x128 output's bytes."""
    graph = api.load(_path(name))
    plan = plan_memory(graph)
    assert plan.arena.size == peak
    assert "pointwise" in {e.kind for e in plan.in_place.values()}
    apart = plan_memory(api.load(_path(name)), storage=StorageOptions(pointwise_in_place=False))
    assert apart.arena.size == without


def test_mobilenet_v2_fits_with_depthwise_in_place():
    # PAD is folded into the convolutions; depthwise in place takes the 112x112x96 -> 56x56x96
    # step under 1.5 MB
    graph = api.load(_path("tflm_mobilenet_v2_224_int8"))
    plan = plan_memory(graph)
    assert plan.arena.size <= 1_500_000 < TFLM_FIGURES["tflm_mobilenet_v2_224_int8"][0]
    assert {e.kind for e in plan.in_place.values()} >= {"depthwise", "elementwise"}
    without = plan_memory(api.load(_path("tflm_mobilenet_v2_224_int8")), storage=RESHAPE_ONLY)
    assert without.arena.size > 1_500_000


def _random_inputs(graph):
    rng = np.random.default_rng(0)
    inputs = {}
    for t in graph.inputs:
        if t.dtype.numpy.kind == "f":
            inputs[t.name] = rng.standard_normal(t.shape).astype(t.dtype.numpy)
        else:
            info = np.iinfo(t.dtype.numpy)
            inputs[t.name] = rng.integers(info.min, info.max + 1, t.shape).astype(t.dtype.numpy)
    return inputs


@pytest.mark.parametrize("name", sorted(p.stem for p in MODELS.glob("*.tflite")))
def test_planned_arena_runs_the_model(name):
    """Float and int8 alike: the same outputs inside the planned arena (views, in-place
    outputs) as with every tensor apart, and never a larger arena than TFLite Micro's."""
    graph = api.load(_path(name))
    inputs = _random_inputs(graph)
    expected = execute(graph, inputs, separate_plan(graph))
    plan = plan_memory(graph)
    assert plan.arena.size <= tflm_greedy(graph).arena.size
    if name in TFLM_FIGURES:
        assert plan.arena.size <= TFLM_FIGURES[name][0]
    got = execute(graph, inputs, plan.arena)
    for output in expected:
        np.testing.assert_array_equal(got[output], expected[output])
