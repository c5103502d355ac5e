"""The built-in model zoo: architectures, weights that behave, and the int8 quantizer."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from memfit import api
from memfit.cli import main
from memfit.errors import ModelFormatError, UnsupportedModelError
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph, Quantization
from memfit.ir.dtypes import DType
from memfit.ir.ops import macs
from memfit.runtime.executor import execute
from memfit.runtime.kernels import QUANTIZED_KERNELS
from memfit.zoo import ZOO, build
from memfit.zoo.catalog import RECIPES
from memfit.zoo.layers import INPUT_RANGE, random_inputs
from memfit.zoo.quantize import (
    INT32_MAX,
    activation_quantization,
    bias_quantization,
    calibrate,
    quantize,
    round_half_away,
    weight_quantization,
)
from tests.helpers import SHARED_MODELS

MODELS = SHARED_MODELS
NAMES = list(RECIPES)
LAYER_KINDS = ("conv2d", "depthwise_conv2d", "fully_connected")
WEIGHT_AXIS = {"conv2d": 0, "depthwise_conv2d": 3, "fully_connected": 0}
SLOW_INT8 = {"mobilenetv2", "yolov2-16"}  # hundreds of millions of integer MACs in NumPy


@functools.cache
def model(name: str) -> Graph:
    """Each zoo model is built once per test session (tests must not modify it)."""
    return build(name)


def total_macs(graph: Graph) -> int:
    return sum(macs(op) for op in graph.ops)


def parameters(graph: Graph) -> int:
    return sum(t.size for t in graph.constants())


def layers(graph: Graph) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """(kind, weight shape, output shape) of every conv/depthwise/dense layer in order."""
    return [
        (op.kind, op.inputs[1].shape, op.output.shape) for op in graph.ops if op.kind in LAYER_KINDS
    ]


def signature(graph: Graph) -> list[tuple[object, ...]]:
    """Every op's kind, attributes, input shapes (weights included) and output shape."""
    return [
        (op.kind, op.attrs, [t.shape for t in op.inputs if t is not None], op.output.shape)
        for op in graph.ops
    ]


def published(file: str) -> Graph:
    path = MODELS / file
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return api.load(path)


# ---- the catalog ----------------------------------------------------------------------------


def test_every_network_comes_in_float32_and_int8():
    assert set(ZOO) == {n for name in NAMES for n in (name, f"{name}-int8")}
    for name in NAMES:
        assert "float32" in ZOO[name].description
        assert "int8" in ZOO[f"{name}-int8"].description


@pytest.mark.parametrize("name", NAMES)
def test_descriptions_quote_the_built_figures(name):
    graph = model(name)
    count = total_macs(graph)
    figure = f"{count / 1e9:.1f}G" if count >= 1e9 else f"{count / 1e6:.1f}M"
    params = parameters(graph)
    params_text = f"{params / 1e6:.3g}M" if params >= 1e6 else f"{params / 1e3:.3g}K"
    assert f"{figure} MACs" in ZOO[name].description
    assert f"{params_text} parameters" in ZOO[name].description


def test_memfit_zoo_lists_every_model(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for name in ZOO:
        assert name in out


def test_unknown_name_is_a_user_error_that_lists_the_zoo():
    with pytest.raises(ModelFormatError, match="known: mobilenetv2"):
        build("mobilenetv3")


def test_builds_are_deterministic():
    first, second = build("ds-cnn-int8"), build("ds-cnn-int8")
    for t in first.constants():
        assert np.array_equal(t.data, second.tensors[t.name].data), t.name
        assert t.quant == second.tensors[t.name].quant


# ---- architectures ----------------------------------------------------------------------------


def test_mobilenetv2_architecture():
    g = model("mobilenetv2")
    assert g.inputs[0].shape == (1, 224, 224, 3)
    assert g.outputs[0].shape == (1, 1000)
    assert abs(total_macs(g) - 300e6) / 300e6 < 0.01  # the paper's 300M multiply-adds
    assert 3.4e6 <= parameters(g) <= 3.55e6  # 3.4M (paper) to 3.5M (Keras, BN unfolded)
    kinds = [op.kind for op in g.ops]
    # 52 convolutions and the classifier: MobileNetV2's 53 layers.
    assert kinds.count("conv2d") == 35 and kinds.count("depthwise_conv2d") == 17
    assert kinds.count("fully_connected") == 1
    assert kinds.count("add") == 10
    assert kinds[-3:] == ["mean", "fully_connected", "softmax"]
    stage_ends = {t.name: t.shape for t in g.activations() if t.name.endswith("/project")}
    assert stage_ends["block0/project"] == (1, 112, 112, 16)
    assert stage_ends["block2/project"] == (1, 56, 56, 24)
    assert stage_ends["block5/project"] == (1, 28, 28, 32)
    assert stage_ends["block9/project"] == (1, 14, 14, 64)
    assert stage_ends["block12/project"] == (1, 14, 14, 96)
    assert stage_ends["block15/project"] == (1, 7, 7, 160)
    assert stage_ends["block16/project"] == (1, 7, 7, 320)
    assert g.tensors["conv_last"].shape == (1, 7, 7, 1280)
    expand = [op for op in g.ops if op.name.endswith("/expand")]
    assert all(op.output.shape[-1] == 6 * op.inputs[0].shape[-1] for op in expand)
    assert all(op.attrs["activation"] == "relu6" for op in expand)
    project = [op for op in g.ops if op.name.endswith("/project")]
    assert all(op.attrs["activation"] == "none" for op in project)  # linear bottlenecks


def test_mobilenetv2_has_the_layers_of_the_published_file():
    # Exported from PyTorch: its stride-2 layers pad 1 on every side where Keras and TFLite pad
    # SAME (0 before, 1 after), and it ends in mean + reshape without softmax.
    assert layers(model("mobilenetv2")) == layers(published("tflm_mobilenet_v2_224_int8.tflite"))


def test_mobilenetv2_035_96_architecture():
    g = model("mobilenetv2-0.35-96")
    assert g.inputs[0].shape == (1, 96, 96, 3)
    assert g.outputs[0].shape == (1, 1000)
    project_channels = [op.output.shape[-1] for op in g.ops if op.name.endswith("/project")]
    # 0.35x the channels rounded to multiples of 8 (never below 90%); 1280 kept at the end.
    assert sorted(set(project_channels)) == [8, 16, 24, 32, 56, 112]
    assert g.tensors["conv1"].shape == (1, 48, 48, 16)
    assert g.tensors["conv_last"].shape == (1, 3, 3, 1280)
    assert 10e6 < total_macs(g) < 13e6  # TF-slim lists 11M
    assert abs(parameters(g) - 1.66e6) / 1.66e6 < 0.01  # TF-slim lists 1.66M


def test_ds_cnn_architecture():
    g = model("ds-cnn")
    assert g.inputs[0].shape == (1, 49, 10, 1)
    assert g.outputs[0].shape == (1, 12)
    positions = 25 * 5
    expected = positions * 64 * (10 * 4) + 4 * positions * 64 * (9 + 64) + 64 * 12
    assert total_macs(g) == expected == 2_656_768


@pytest.mark.parametrize("dtype", ["f32", "int8"])
def test_ds_cnn_is_op_for_op_the_mlperf_tiny_model(dtype):
    reference = published(f"mlperf_tiny_kws_{dtype}.tflite")
    assert signature(model("ds-cnn")) == signature(reference)


def test_resnet8_architecture():
    g = model("resnet8")
    assert g.inputs[0].shape == (1, 32, 32, 3)
    assert g.outputs[0].shape == (1, 10)
    conv3x3 = 32 * 32 * 16 * 27 + 2 * 32 * 32 * 16 * 144
    conv3x3 += 16 * 16 * 32 * (144 + 288) + 8 * 8 * 64 * (288 + 576)
    projections = 16 * 16 * 32 * 16 + 8 * 8 * 64 * 32
    assert total_macs(g) == conv3x3 + projections + 64 * 10 == 12_501_632
    adds = [op for op in g.ops if op.kind == "add"]
    assert [op.attrs["activation"] for op in adds] == ["relu"] * 3


@pytest.mark.parametrize("dtype", ["f32", "int8"])
def test_resnet8_is_op_for_op_the_mlperf_tiny_model(dtype):
    reference = published(f"mlperf_tiny_resnet8_{dtype}.tflite")
    assert signature(model("resnet8")) == signature(reference)


def test_yolov2_16_is_darknet_layers_0_to_15():
    g = model("yolov2-16")
    # (input side, kernel, input channels, filters) of yolov2.cfg's convolutional layers 0-15.
    convs = [
        (608, 3, 3, 32),
        (304, 3, 32, 64),
        (152, 3, 64, 128),
        (152, 1, 128, 64),
        (152, 3, 64, 128),
        (76, 3, 128, 256),
        (76, 1, 256, 128),
        (76, 3, 128, 256),
        (38, 3, 256, 512),
        (38, 1, 512, 256),
        (38, 3, 256, 512),
        (38, 1, 512, 256),
    ]
    assert layers(g) == [
        ("conv2d", (cout, k, k, cin), (1, side, side, cout)) for side, k, cin, cout in convs
    ]
    assert total_macs(g) == sum(s * s * k * k * ci * co for s, k, ci, co in convs)
    assert total_macs(g) == 13_000_343_552
    kinds = [op.kind for op in g.ops]
    assert kinds.count("max_pool2d") == 4 and kinds.count("leaky_relu") == 12
    assert all(op.attrs["alpha"] == 0.1 for op in g.ops if op.kind == "leaky_relu")
    assert [op.name for op in g.ops if op.kind == "max_pool2d"] == [
        "maxpool1",
        "maxpool3",
        "maxpool7",
        "maxpool11",
    ]
    assert g.outputs[0].shape == (1, 38, 38, 256)
    feature_maps = {t.name: t.nbytes for t in g.activations()}
    assert max(feature_maps.values()) == 608 * 608 * 32 * 4  # 47.3 MB: conv0 and leaky0
    pools = [608 * 608 * 32 // 4, 304 * 304 * 64 // 4, 152 * 152 * 128 // 4, 76 * 76 * 256 // 4]
    layer_outputs = 608 * 608 * 3 + sum(s * s * co for s, _, _, co in convs) + sum(pools)
    assert layer_outputs * 4 == 150_822_912  # darknet's buffers: input, one per layer
    without_convs = {n: b for n, b in feature_maps.items() if not n.startswith("conv")}
    assert sum(without_convs.values()) == 150_822_912


# ---- float models ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_activations_neither_explode_nor_vanish(name):
    g = model(name)
    ranges = calibrate(g, [random_inputs(g, np.random.default_rng(100))])
    low, high = ranges[g.inputs[0].name]
    assert INPUT_RANGE[0] <= low < high <= INPUT_RANGE[1]
    hidden = [op.output.name for op in g.ops if op.kind != "softmax"]
    for name in hidden:
        low, high = ranges[name]
        assert 0.1 < high - low < 50, (name, low, high)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "yolov2-16"])
def test_classifiers_are_not_degenerate(name):
    g = model(name)
    rng = np.random.default_rng(200)
    probabilities = np.concatenate(
        [api.run(g, random_inputs(g, rng))[g.outputs[0].name] for _ in range(12)]
    )
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    classes = g.outputs[0].shape[1]
    assert len(set(probabilities.argmax(axis=1))) >= 4  # not one class for every input
    top = probabilities.max(axis=1)
    assert np.median(top) > 3 / classes  # more confident than chance
    assert np.median(top) < 0.99  # but not one-hot


def test_yolov2_16_runs_at_608():
    g = model("yolov2-16")
    out = api.run(g, random_inputs(g, np.random.default_rng(300)))[g.outputs[0].name]
    assert out.shape == (1, 38, 38, 256) and np.isfinite(out).all()
    negative = out < 0
    assert 0.2 < negative.mean() < 0.8  # leaky ReLU lets a share of negatives through
    assert 0.1 < out.std() < 10


@pytest.mark.parametrize("name", NAMES)
def test_zoo_names_load_like_model_paths(name):
    g = api.load(f"zoo:{name}")
    assert [op.name for op in g.ops] == [op.name for op in model(name).ops]


# ---- int8 models: structure -------------------------------------------------------------------


def _well_formed(q: Quantization | None) -> Quantization:
    assert q is not None
    assert all(s > 0 and math.isfinite(s) for s in q.scale)
    assert np.float32(q.scale[0]) == q.scale[0]  # stored as float32, like TFLite
    return q


@pytest.mark.parametrize("name", NAMES)
def test_int8_twin_has_the_float_structure(name):
    f, q = model(name), model(f"{name}-int8")
    assert [(op.kind, op.name, op.attrs) for op in f.ops] == [
        (op.kind, op.name, op.attrs) for op in q.ops
    ]
    assert [t.name for t in f.inputs] == [t.name for t in q.inputs]
    assert [t.name for t in f.outputs] == [t.name for t in q.outputs]
    for t in f.activations():
        assert q.tensors[t.name].shape == t.shape


def assert_int8_activation_conventions(q: Graph) -> None:
    """What TFLite's converter does to activations (checked on its own files below too)."""
    for t in q.activations():
        quant = _well_formed(t.quant)
        assert t.dtype is DType.INT8 and quant.per_tensor, t.name
        assert -128 <= quant.zero_point[0] <= 127
    for op in q.ops:
        source, out = op.inputs[0].quant, op.output.quant
        if op.kind in ("reshape", "max_pool2d", "avg_pool2d", "mean"):
            assert out == source, op.name
        if op.kind == "softmax":
            assert out == Quantization((1 / 256,), (-128,))
        activation = op.attrs.get("activation", "none")
        if activation in ("relu", "relu6"):
            assert out.zero_point[0] == -128, op.name  # the range starts at 0
        if activation == "relu6":
            assert out.scale[0] <= np.float32(6 / 255), op.name


@pytest.mark.parametrize("name", NAMES)
def test_int8_activations_are_per_tensor_int8(name):
    assert_int8_activation_conventions(model(f"{name}-int8"))


@pytest.mark.parametrize("file", ["mlperf_tiny_kws_int8", "mlperf_tiny_resnet8_int8"])
def test_the_conventions_are_those_of_tflite_files(file):
    reference = published(f"{file}.tflite")
    assert_int8_activation_conventions(reference)
    for op in reference.ops:
        if op.kind not in ("conv2d", "depthwise_conv2d"):
            continue  # these files' dense layers have per-tensor weights (older converter)
        x, w, b = op.inputs
        axis = WEIGHT_AXIS[op.kind]
        assert w.quant.axis == axis
        scales = np.asarray(w.quant.scale, np.float32)
        shape = [-1 if i == axis else 1 for i in range(w.data.ndim)]
        real = w.data.astype(np.float32) * scales.reshape(shape)
        q, quant = weight_quantization(real, axis)
        assert np.array_equal(q, w.data), op.name
        assert np.allclose(quant.scale, w.quant.scale, rtol=1e-6, atol=0), op.name
        _, bias_quant = bias_quantization(np.zeros(len(scales)), x.quant.scale[0], w.quant.scale)
        assert bias_quant == b.quant, op.name  # float32 product of the two scales, exactly


@pytest.mark.parametrize("name", NAMES)
def test_int8_weights_are_per_channel_and_biases_int32(name):
    f, q = model(name), model(f"{name}-int8")
    for op in q.ops:
        if op.kind not in LAYER_KINDS:
            continue
        x, w, b = op.inputs
        axis = WEIGHT_AXIS[op.kind]
        wq = _well_formed(w.quant)
        assert w.dtype is DType.INT8 and wq.axis == axis
        channels = w.shape[axis]
        assert len(wq.scale) == channels and set(wq.zero_point) == {0}
        data = np.moveaxis(w.data, axis, 0).reshape(channels, -1).astype(int)
        assert np.abs(data).max() <= 127
        assert (np.abs(data).max(axis=1) == 127).all()  # each scale is its channel's max / 127
        real = np.moveaxis(f.tensors[w.name].data, axis, 0).reshape(channels, -1)
        scales = wq.scales_array()[:, None]
        # Within half a step, give or take float32 rounding of w * (127 / max|w|).
        assert (np.abs(data * scales - real) <= scales * (0.5 + 1e-4)).all(), op.name
        bq = _well_formed(b.quant)
        assert b.dtype is DType.INT32 and bq.axis == 0 and set(bq.zero_point) == {0}
        expected = np.float32(x.quant.scale[0]) * np.asarray(wq.scale, np.float32)
        assert np.array_equal(np.asarray(bq.scale, np.float32), expected), op.name
        bias = f.tensors[b.name].data
        assert (np.abs(b.data * bq.scales_array() - bias) <= bq.scales_array()).all()


@pytest.mark.parametrize("name", NAMES)
def test_int8_graph_inputs_cover_the_input_range(name):
    q = model(f"{name}-int8")
    quant = q.inputs[0].quant
    assert quant is not None
    low = (-128 - quant.zero_point[0]) * quant.scale[0]
    high = (127 - quant.zero_point[0]) * quant.scale[0]
    assert low <= INPUT_RANGE[0] + 0.02 and high >= INPUT_RANGE[1] - 0.02


# ---- int8 models: numbers (needs the quantized kernels) ----------------------------------------


def _missing_quantized_kernels(graph: Graph) -> set[str]:
    data_movement = {"reshape", "max_pool2d"}  # the generic kernels work on int8 as they are
    return {op.kind for op in graph.ops} - set(QUANTIZED_KERNELS) - data_movement


def _quantize_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    quant = graph.inputs[0].quant
    assert quant is not None
    q = round_half_away(x / quant.scale[0]) + quant.zero_point[0]
    return np.clip(q, -128, 127).astype(np.int8)


def _dequantize_output(graph: Graph, y: np.ndarray) -> np.ndarray:
    quant = graph.outputs[0].quant
    assert quant is not None
    return (y.astype(np.float64) - quant.zero_point[0]) * quant.scale[0]


# model: (seeded inputs, share with float top-1 == int8 top-1, share with float top-1 in int8 top-5)
AGREEMENT = {
    "ds-cnn": (16, 0.85, 1.0),
    "resnet8": (8, 0.85, 1.0),
    "mobilenetv2-0.35-96": (16, 0.4, 0.75),
    "mobilenetv2": (4, 0.5, 0.75),
}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow if n in SLOW_INT8 else ()) for n in AGREEMENT],
)
def test_int8_classifies_like_float(name):
    f, q = model(name), model(f"{name}-int8")
    missing = _missing_quantized_kernels(q)
    if missing:
        pytest.skip(f"no quantized kernel yet for {', '.join(sorted(missing))}")
    samples, min_top1, min_top5 = AGREEMENT[name]
    rng = np.random.default_rng(400)
    top1 = top5 = 0
    errors = []
    for _ in range(samples):
        x = random_inputs(f, rng)[f.inputs[0].name]
        expected = api.run(f, x)[f.outputs[0].name][0]
        got = _dequantize_output(q, api.run(q, _quantize_input(q, x))[q.outputs[0].name])[0]
        top1 += got.argmax() == expected.argmax()
        top5 += expected.argmax() in np.argsort(got)[-5:]
        errors.append(np.abs(got - expected).max())
    assert top1 >= min_top1 * samples and top5 >= min_top5 * samples, (top1, top5)
    assert np.median(errors) < 0.1  # dequantized softmax close to float


@pytest.mark.slow
def test_yolov2_16_int8_tracks_float():
    f, q = model("yolov2-16"), model("yolov2-16-int8")
    missing = _missing_quantized_kernels(q)
    if missing:
        pytest.skip(f"no quantized kernel yet for {', '.join(sorted(missing))}")
    x = random_inputs(f, np.random.default_rng(500))[f.inputs[0].name]
    expected = api.run(f, x)[f.outputs[0].name]
    got = _dequantize_output(q, api.run(q, _quantize_input(q, x))[q.outputs[0].name])
    assert np.corrcoef(expected.ravel(), got.ravel())[0, 1] > 0.9


# ---- the quantizer on hand-made cases ---------------------------------------------------------


def test_round_half_away_from_zero():
    assert round_half_away([-2.5, -0.5, 0.5, 1.5, 2.5, 0.49]).tolist() == [-3, -1, 1, 2, 3, 0]


@pytest.mark.parametrize(
    ("low", "high", "scale", "zero_point"),
    [
        (0.0, 6.0, 6 / 255, -128),  # ReLU6 output
        (-0.5, 1.5, 2 / 255, -64),  # -128 + 0.5 / (2/255) = -64.25
        (1.0, 3.0, 3 / 255, -128),  # widened down to 0
        (-4.0, -2.0, 4 / 255, 127),  # widened up to 0
        (0.0, 0.0, 1.0, -128),  # all zeros: any positive scale
    ],
)
def test_activation_parameters(low, high, scale, zero_point):
    q = activation_quantization(low, high)
    assert q.scale == (float(np.float32(scale)),) and q.zero_point == (zero_point,)
    assert q.per_tensor


def test_weights_per_output_channel_round_half_away():
    w = np.array([[127.0, 2.5, -2.5, 0.5], [1.0, -0.5, 0.25, 0.0]], np.float32)
    q, quant = weight_quantization(w, axis=0)
    assert quant.axis == 0 and quant.zero_point == (0, 0)
    assert quant.scale == (1.0, float(np.float32(1 / 127)))
    assert q.dtype == np.int8
    assert q.tolist() == [[127, 3, -3, 1], [127, -64, 32, 0]]


def test_depthwise_weights_are_per_channel_along_the_last_axis():
    w = np.zeros((1, 2, 2, 3), np.float32)
    w[0, :, :, 0], w[0, :, :, 1], w[0, 1, 1, 2] = 0.5, -2.0, 0.0
    q, quant = weight_quantization(w, axis=3)
    assert quant.axis == 3 and len(quant.scale) == 3
    assert quant.scale[:2] == (float(np.float32(0.5 / 127)), float(np.float32(2 / 127)))
    assert quant.scale[2] == 1.0  # an all-zero channel keeps a positive scale
    assert (q[..., 0] == 127).all() and (q[..., 1] == -127).all() and (q[..., 2] == 0).all()


def test_bias_scale_is_input_scale_times_weight_scale():
    q, quant = bias_quantization(np.array([1.0, -0.15625], np.float32), 0.5, (0.25, 0.125))
    assert quant.scale == (0.125, 0.0625) and quant.zero_point == (0, 0) and quant.axis == 0
    assert q.dtype == np.int32 and q.tolist() == [8, -3]  # -2.5 rounds away from zero


def _tiny_classifier(bias_value: float = 0.0) -> Graph:
    rng = np.random.default_rng(0)
    b = GraphBuilder("tiny")
    x = b.input("x", (1, 4, 4, 2))
    w = b.constant("w", rng.standard_normal((3, 3, 3, 2)).astype(np.float32))
    bias = b.constant("b", np.full(3, bias_value, np.float32))
    conv = {"strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 1, 1), "groups": 1}
    y = b.op("conv2d", [x, w, bias], {**conv, "activation": "relu6"}, name="conv")
    y = b.op("mean", [y], {"axes": (1, 2), "keepdims": False}, name="pool")
    fw = b.constant("fw", rng.standard_normal((5, 3)).astype(np.float32))
    fb = b.constant("fb", rng.standard_normal(5).astype(np.float32))
    y = b.op("fully_connected", [y, fw, fb], {"activation": "none"}, name="dense")
    return b.output(b.op("softmax", [y], {"axis": -1, "beta": 1.0}, name="softmax"))


def test_calibration_records_min_and_max_over_all_samples():
    g = _tiny_classifier()
    samples = [
        {"x": np.random.default_rng(s).uniform(-1, 1, (1, 4, 4, 2)).astype(np.float32)}
        for s in range(3)
    ]
    ranges = calibrate(g, samples)
    runs = [execute(_all_outputs(g), s) for s in samples]
    for name in ("x", "conv", "pool", "dense", "softmax"):
        assert ranges[name] == (
            min(float(r[name].min()) for r in runs),
            max(float(r[name].max()) for r in runs),
        )


def _all_outputs(g: Graph) -> Graph:
    probe = g.copy()
    probe.outputs = list(probe.activations())
    return probe


def test_quantize_follows_the_tflite_conventions():
    g = _tiny_classifier()
    ranges = {"x": (-1.0, 1.0), "conv": (0.0, 6.0), "pool": (0.5, 2.0), "dense": (-3.0, 5.0)}
    q = quantize(g, ranges)
    assert q.tensors["x"].quant == activation_quantization(-1.0, 1.0)
    assert q.tensors["conv"].quant == activation_quantization(0.0, 6.0)
    assert q.tensors["pool"].quant == q.tensors["conv"].quant  # mean keeps the input's scale
    assert q.tensors["dense"].quant == activation_quantization(-3.0, 5.0)
    assert q.tensors["softmax"].quant == Quantization((1 / 256,), (-128,))
    assert q.tensors["w"].quant.axis == 0 and q.tensors["b"].dtype is DType.INT32
    assert [t.name for t in q.inputs] == ["x"] and q.inputs[0].dtype is DType.INT8
    assert [t.name for t in q.outputs] == ["softmax"] and q.outputs[0].dtype is DType.INT8


def test_weight_range_widens_when_the_bias_would_overflow_int32():
    g = _tiny_classifier(bias_value=1e6)
    ranges = {"x": (-1e-3, 1e-3), "conv": (0.0, 6.0), "pool": (0.0, 6.0), "dense": (-3.0, 5.0)}
    q = quantize(g, ranges)
    bias = q.tensors["b"]
    # Widened so that the bias takes half of int32's range (give or take float32 rounding).
    assert np.abs(bias.data).max() <= INT32_MAX / 2 * (1 + 1e-6)
    assert np.allclose(bias.data * bias.quant.scales_array(), 1e6, rtol=1e-6)
    w = q.tensors["w"]
    assert np.abs(w.data).max() < 127  # the range grew past max|w|


def test_unsupported_ops_are_named():
    b = GraphBuilder("g")
    x = b.input("x", (1, 4))
    g = b.output(b.op("tanh", [x], name="squash"))
    with pytest.raises(UnsupportedModelError, match=r"squash \(tanh\)"):
        quantize(g, {"x": (-1.0, 1.0), "squash": (-1.0, 1.0)})
