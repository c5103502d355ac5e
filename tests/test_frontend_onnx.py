"""The ONNX frontend: every op mapping against onnxruntime, layout handling, and bad input."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from memfit import api
from memfit.cli import main
from memfit.errors import (
    InputError,
    MemfitError,
    ModelFormatError,
    ShapeError,
    UnsupportedModelError,
    UnsupportedOpError,
)
from memfit.frontends.onnx import load_onnx
from tests.onnx_helpers import make_model, ort_run, random_feeds, relative_error, save

RNG = np.random.default_rng(42)
node = helper.make_node


def rand(*shape: int, low: float | None = None) -> np.ndarray:
    if low is not None:
        return RNG.uniform(low, low + 1.0, shape).astype(np.float32)
    return RNG.standard_normal(shape).astype(np.float32)


def conv(x: str, y: str, w: str, b: str | None = None, **attrs) -> onnx.NodeProto:
    return node("Conv", [x, w] + ([b] if b else []), [y], name=f"conv_{y}", **attrs)


IMAGE = {"x": (1, 4, 9, 9)}

# name -> (nodes, inputs, outputs, initializers, opset)
Case = tuple[list, dict, list, dict, int]
CASES: dict[str, Callable[[], Case]] = {
    "conv_bias_pads_strides": lambda: (
        [conv("x", "y", "w", "b", pads=[1, 0, 2, 1], strides=[2, 1])],
        IMAGE,
        ["y"],
        {"w": rand(6, 4, 3, 2), "b": rand(6)},
        13,
    ),
    "conv_dilated_no_bias": lambda: (
        [conv("x", "y", "w", dilations=[2, 2], pads=[2, 2, 2, 2])],
        IMAGE,
        ["y"],
        {"w": rand(5, 4, 3, 3)},
        13,
    ),
    "conv_same_upper_stride2": lambda: (
        [conv("x", "y", "w", auto_pad="SAME_UPPER", strides=[2, 2])],
        {"x": (1, 4, 8, 8)},
        ["y"],
        {"w": rand(3, 4, 4, 4)},
        13,
    ),
    "conv_same_lower": lambda: (
        [conv("x", "y", "w", auto_pad="SAME_LOWER", strides=[2, 2])],
        {"x": (1, 4, 8, 8)},
        ["y"],
        {"w": rand(3, 4, 4, 4)},
        13,
    ),
    "conv_valid": lambda: (
        [conv("x", "y", "w", auto_pad="VALID")],
        IMAGE,
        ["y"],
        {"w": rand(3, 4, 3, 3)},
        13,
    ),
    "group_conv": lambda: (
        [conv("x", "y", "w", "b", group=2, pads=[1, 1, 1, 1])],
        IMAGE,
        ["y"],
        {"w": rand(6, 2, 3, 3), "b": rand(6)},
        13,
    ),
    "depthwise": lambda: (
        [conv("x", "y", "w", "b", group=4, pads=[1, 1, 1, 1], strides=[2, 2])],
        IMAGE,
        ["y"],
        {"w": rand(4, 1, 3, 3), "b": rand(4)},
        13,
    ),
    "depthwise_multiplier": lambda: (
        [conv("x", "y", "w", group=4, pads=[0, 1, 0, 1])],
        IMAGE,
        ["y"],
        {"w": rand(8, 1, 3, 3)},
        13,
    ),
    "gemm_trans_b_bias": lambda: (
        [node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        {"x": (2, 5)},
        ["y"],
        {"w": rand(3, 5), "b": rand(3)},
        13,
    ),
    "gemm_alpha_beta_row_bias": lambda: (
        [node("Gemm", ["x", "w", "b"], ["y"], alpha=0.5, beta=2.0)],
        {"x": (2, 5)},
        ["y"],
        {"w": rand(5, 3), "b": rand(1, 3)},
        13,
    ),
    "gemm_trans_a_full_c": lambda: (
        [node("Gemm", ["x", "w", "c"], ["y"], transA=1, beta=0.5)],
        {"x": (5, 2)},
        ["y"],
        {"w": rand(5, 3), "c": rand(2, 3)},
        13,
    ),
    "gemm_two_activations": lambda: (
        [node("Gemm", ["x", "z", "c"], ["y"], transB=1, alpha=2.0)],
        {"x": (2, 5), "z": (3, 5)},
        ["y"],
        {"c": rand(3)},
        13,
    ),
    "matmul_constant_3d": lambda: (
        [node("MatMul", ["x", "w"], ["y"])],
        {"x": (2, 3, 5)},
        ["y"],
        {"w": rand(5, 4)},
        13,
    ),
    "matmul_constant_4d": lambda: (
        [node("MatMul", ["x", "w"], ["y"])],
        IMAGE,
        ["y"],
        {"w": rand(9, 4)},
        13,
    ),
    "matmul_two_activations": lambda: (
        [node("MatMul", ["x", "z"], ["y"])],
        {"x": (2, 3, 5), "z": (2, 5, 4)},
        ["y"],
        {},
        13,
    ),
    "flatten_then_gemm": lambda: (
        [
            conv("x", "c", "w", pads=[1, 1, 1, 1]),
            node("Flatten", ["c"], ["f"]),
            node("Gemm", ["f", "fc", "fb"], ["y"], transB=1),
        ],
        IMAGE,
        ["y"],
        {"w": rand(3, 4, 3, 3), "fc": rand(7, 3 * 81), "fb": rand(7)},
        9,
    ),
    "reshape_then_matmul": lambda: (
        [
            node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[3, 3]),
            node("Reshape", ["p", "shape"], ["f"]),
            node("MatMul", ["f", "fc"], ["y"]),
        ],
        IMAGE,
        ["y"],
        {"shape": np.array([1, -1], np.int64), "fc": rand(36, 5)},
        13,
    ),
    "maxpool_pads": lambda: (
        [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        IMAGE,
        ["y"],
        {},
        13,
    ),
    "maxpool_ceil": lambda: (
        [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
        {"x": (1, 2, 10, 10)},
        ["y"],
        {},
        13,
    ),
    "maxpool_ceil_drops_window_in_padding": lambda: (
        [
            node(
                "MaxPool",
                ["x"],
                ["y"],
                kernel_shape=[2, 2],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                ceil_mode=1,
            )
        ],
        {"x": (1, 2, 5, 5)},
        ["y"],
        {},
        13,
    ),
    "maxpool_same_upper": lambda: (
        [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
        {"x": (1, 2, 8, 8)},
        ["y"],
        {},
        13,
    ),
    "avgpool_exclude_pad": lambda: (
        [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
        IMAGE,
        ["y"],
        {},
        13,
    ),
    "avgpool_include_pad": lambda: (
        [
            node(
                "AveragePool",
                ["x"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                count_include_pad=1,
            )
        ],
        IMAGE,
        ["y"],
        {},
        13,
    ),
    "avgpool_include_pad_ceil": lambda: (
        [
            node(
                "AveragePool",
                ["x"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                count_include_pad=1,
                ceil_mode=1,
            )
        ],
        {"x": (1, 3, 6, 6)},
        ["y"],
        {},
        13,
    ),
    "avgpool_exclude_pad_ceil": lambda: (
        [
            node(
                "AveragePool",
                ["x"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[0, 0, 1, 1],
                ceil_mode=1,
            )
        ],
        {"x": (1, 3, 8, 8)},
        ["y"],
        {},
        13,
    ),
    "global_average_pool": lambda: (
        [node("GlobalAveragePool", ["x"], ["y"])],
        IMAGE,
        ["y"],
        {},
        13,
    ),
    "global_max_pool": lambda: ([node("GlobalMaxPool", ["x"], ["y"])], IMAGE, ["y"], {}, 13),
    "reduce_mean_no_keepdims": lambda: (
        [node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
        IMAGE,
        ["y"],
        {},
        13,
    ),
    "reduce_max_channels": lambda: (
        [node("ReduceMax", ["x"], ["y"], axes=[1], keepdims=1)],
        IMAGE,
        ["y"],
        {},
        13,
    ),
    "conv_batchnorm_relu": lambda: (
        [
            conv("x", "c", "w", "b", pads=[1, 1, 1, 1]),
            node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-3),
            node("Relu", ["n"], ["y"]),
        ],
        IMAGE,
        ["y"],
        {
            "w": rand(6, 4, 3, 3),
            "b": rand(6),
            "s": rand(6),
            "bb": rand(6),
            "m": rand(6),
            "v": rand(6, low=0.5),
        },
        9,
    ),
    "standalone_batchnorm": lambda: (
        [node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["y"])],
        IMAGE,
        ["y"],
        {"s": rand(4), "bb": rand(4), "m": rand(4), "v": rand(4, low=0.5)},
        13,
    ),
    "batchnorm_mul_add_unsqueezed": lambda: (
        [
            node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["n"]),
            node("Unsqueeze", ["k"], ["k3"], axes=[1, 2]),
            node("Mul", ["n", "k3"], ["p"]),
            node("Unsqueeze", ["t"], ["t3"], axes=[1, 2]),
            node("Add", ["p", "t3"], ["q"]),
            node("Relu", ["q"], ["y"]),
        ],
        IMAGE,
        ["y"],
        {
            "s": rand(4),
            "bb": rand(4),
            "m": rand(4),
            "v": rand(4, low=0.5),
            "k": rand(4),
            "t": rand(4),
        },
        9,
    ),
    "lrn": lambda: (
        [node("LRN", ["x"], ["y"], size=5, alpha=1e-2, beta=0.75, bias=2.0)],
        {"x": (1, 7, 5, 5)},
        ["y"],
        {},
        13,
    ),
    "lrn_size3": lambda: ([node("LRN", ["x"], ["y"], size=3)], IMAGE, ["y"], {}, 13),
    "unary_chain": lambda: (
        [
            node("Sigmoid", ["x"], ["a"]),
            node("Tanh", ["a"], ["b"]),
            node("LeakyRelu", ["b"], ["c"], alpha=0.2),
            node("HardSwish", ["c"], ["y"]),
        ],
        IMAGE,
        ["y"],
        {},
        14,
    ),
    "clip_relu6_inputs": lambda: (
        [node("Clip", ["x", "lo", "hi"], ["y"])],
        IMAGE,
        ["y"],
        {"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)},
        13,
    ),
    "clip_attrs_opset9": lambda: (
        [node("Clip", ["x"], ["y"], min=-0.5, max=0.7)],
        IMAGE,
        ["y"],
        {},
        9,
    ),
    "clip_only_min": lambda: (
        [node("Clip", ["x", "lo"], ["y"])],
        IMAGE,
        ["y"],
        {"lo": np.array(0.0, np.float32)},
        13,
    ),
    "broadcast_channel_constants": lambda: (
        [
            node("Add", ["x", "a"], ["p"]),
            node("Mul", ["p", "m"], ["q"]),
            node("Sub", ["s", "q"], ["r"]),
            node("Div", ["r", "d"], ["y"]),
        ],
        IMAGE,
        ["y"],
        {"a": rand(4, 1, 1), "m": rand(1, 4, 1, 1), "s": rand(9), "d": rand(1, 1, 9, 1, low=1.0)},
        13,
    ),
    "elementwise_activations": lambda: (
        [
            node("Sum", ["x", "z", "x"], ["s"]),
            node("Max", ["s", "z"], ["m"]),
            node("Min", ["m", "x"], ["y"]),
        ],
        {"x": IMAGE["x"], "z": IMAGE["x"]},
        ["y"],
        {},
        13,
    ),
    "broadcast_lower_rank_activation": lambda: (
        [node("ReduceMean", ["z"], ["r"], axes=[0], keepdims=0), node("Add", ["x", "r"], ["y"])],
        {"x": (1, 3, 4, 5), "z": (2, 4, 5)},
        ["y"],
        {},
        13,
    ),
    "concat_channels": lambda: (
        [conv("x", "a", "w", pads=[1, 1, 1, 1]), node("Concat", ["a", "x"], ["y"], axis=1)],
        IMAGE,
        ["y"],
        {"w": rand(3, 4, 3, 3)},
        13,
    ),
    "concat_2d_with_constant": lambda: (
        [node("Concat", ["x", "c"], ["y"], axis=-1)],
        {"x": (2, 3)},
        ["y"],
        {"c": rand(2, 4)},
        13,
    ),
    "softmax_opset9_squeezenet_head": lambda: (
        [node("GlobalAveragePool", ["x"], ["g"]), node("Softmax", ["g"], ["y"])],
        IMAGE,
        ["y"],
        {},
        9,
    ),
    "softmax_opset9_flattens_chw": lambda: (
        [node("Softmax", ["x"], ["y"], axis=1)],
        {"x": (2, 3, 4, 5)},
        ["y"],
        {},
        9,
    ),
    "softmax_opset13_channels": lambda: (
        [node("Softmax", ["x"], ["y"], axis=1)],
        IMAGE,
        ["y"],
        {},
        13,
    ),
    "softmax_opset13_height": lambda: (
        [node("Softmax", ["x"], ["y"], axis=2)],
        IMAGE,
        ["y"],
        {},
        13,
    ),
    "softmax_2d": lambda: ([node("Softmax", ["x"], ["y"])], {"x": (3, 7)}, ["y"], {}, 9),
    "pad_opset11": lambda: (
        [node("Pad", ["x", "p", "v"], ["y"])],
        IMAGE,
        ["y"],
        {"p": np.array([0, 1, 2, 0, 0, 0, 1, 3], np.int64), "v": np.array(0.5, np.float32)},
        13,
    ),
    "pad_opset9_then_conv": lambda: (
        [node("Pad", ["x"], ["p"], pads=[0, 0, 1, 1, 0, 0, 1, 1]), conv("p", "y", "w")],
        IMAGE,
        ["y"],
        {"w": rand(2, 4, 3, 3)},
        9,
    ),
    "transpose_4d": lambda: (
        [node("Transpose", ["x"], ["t"], perm=[0, 3, 2, 1]), node("Relu", ["t"], ["y"])],
        {"x": (1, 2, 3, 4)},
        ["y"],
        {},
        13,
    ),
    "channel_shuffle": lambda: (
        [
            conv("x", "c", "w"),
            node("Reshape", ["c", "s5"], ["r"]),
            node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
            node("Reshape", ["t", "s4"], ["u"]),
            conv("u", "y", "w2"),
        ],
        IMAGE,
        ["y"],
        {
            "w": rand(6, 4, 1, 1),
            "w2": rand(6, 6, 1, 1),
            "s5": np.array([1, 2, 3, 9, 9], np.int64),
            "s4": np.array([1, 6, 9, 9], np.int64),
        },
        9,
    ),
    "slice_opset10": lambda: (
        [node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
        IMAGE,
        ["y"],
        {
            "st": np.array([1, -1], np.int64),
            "en": np.array([4, -100], np.int64),
            "ax": np.array([1, 3], np.int64),
            "sp": np.array([2, -3], np.int64),
        },
        13,
    ),
    "slice_opset9_attrs": lambda: (
        [node("Slice", ["x"], ["y"], starts=[2, 0], ends=[100, 5], axes=[2, 3])],
        IMAGE,
        ["y"],
        {},
        9,
    ),
    "gather_scalar_channel": lambda: (
        [node("Gather", ["x", "i"], ["y"], axis=1)],
        IMAGE,
        ["y"],
        {"i": np.array(2, np.int64)},
        13,
    ),
    "gather_range_height": lambda: (
        [node("Gather", ["x", "i"], ["y"], axis=2)],
        IMAGE,
        ["y"],
        {"i": np.array([1, 3, 5], np.int64)},
        13,
    ),
    "squeeze_unsqueeze": lambda: (
        [
            node("GlobalAveragePool", ["x"], ["g"]),
            node("Squeeze", ["g", "a"], ["s"]),
            node("Unsqueeze", ["s", "b"], ["y"]),
        ],
        IMAGE,
        ["y"],
        {"a": np.array([2, 3], np.int64), "b": np.array([0], np.int64)},
        13,
    ),
    "shape_plumbing_folds": lambda: (
        [
            node("Shape", ["x"], ["sh"]),
            node("Gather", ["sh", "zero"], ["n"], axis=0),
            node("Unsqueeze", ["n"], ["n1"], axes=[0]),
            node("Concat", ["n1", "minus1"], ["target"], axis=0),
            node("Reshape", ["x", "target"], ["f"]),
            node(
                "ConstantOfShape",
                ["wshape"],
                ["wfill"],
                value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.25]),
            ),
            node("Add", ["wfill", "wrand"], ["w"]),
            node("MatMul", ["f", "w"], ["y"]),
        ],
        IMAGE,
        ["y"],
        {
            "zero": np.array(0, np.int64),
            "minus1": np.array([-1], np.int64),
            "wshape": np.array([324, 3], np.int64),
            "wrand": rand(324, 3),
        },
        9,
    ),
    "constant_node_operand": lambda: (
        [
            node(
                "Constant",
                [],
                ["k"],
                value=helper.make_tensor("k", TensorProto.FLOAT, [4, 1, 1], [1.0, -2.0, 3.0, 0.5]),
            ),
            node("Mul", ["x", "k"], ["y"]),
        ],
        IMAGE,
        ["y"],
        {},
        13,
    ),
    "identity_dropout_cast": lambda: (
        [
            node("Identity", ["x"], ["a"]),
            node("Dropout", ["a"], ["b"], ratio=0.3),
            node("Cast", ["b"], ["c"], to=TensorProto.FLOAT),
            node("Relu", ["c"], ["y"]),
        ],
        IMAGE,
        ["y"],
        {},
        9,
    ),
    "two_outputs_4d_and_2d": lambda: (
        [
            conv("x", "y", "w"),
            node("GlobalAveragePool", ["y"], ["g"]),
            node("Flatten", ["g"], ["z"]),
        ],
        IMAGE,
        ["y", "z"],
        {"w": rand(3, 4, 2, 2)},
        13,
    ),
}


def _load_and_compare(tmp_path, model: onnx.ModelProto, tolerance: float = 1e-5):
    path = save(model, tmp_path)
    feeds = random_feeds(path)
    reference = ort_run(path, feeds)
    graph = api.load(path)
    got = api.run(graph, feeds)
    assert set(got) == set(reference)
    for name, ref in reference.items():
        assert got[name].shape == ref.shape, name
        assert relative_error(got[name], ref) <= tolerance, name
    return graph


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_mapping_matches_onnxruntime(tmp_path, case):
    nodes, inputs, outputs, inits, opset = CASES[case]()
    _load_and_compare(tmp_path, make_model(nodes, inputs, outputs, inits, opset))


def _kinds(graph) -> list[str]:
    return [op.kind for op in graph.ops]


def test_image_tensors_are_nhwc_inside_and_nchw_outside(tmp_path):
    nodes, inputs, outputs, inits, opset = CASES["two_outputs_4d_and_2d"]()
    graph = _load_and_compare(tmp_path, make_model(nodes, inputs, outputs, inits, opset))
    assert graph.inputs[0].shape == (1, 9, 9, 4)
    assert graph.external_perm == {"x": (0, 2, 3, 1), "y": (0, 2, 3, 1)}
    assert [t.name for t in graph.outputs] == ["y", "z"]


def test_flatten_for_dense_layer_leaves_no_transpose(tmp_path):
    nodes, inputs, outputs, inits, opset = CASES["flatten_then_gemm"]()
    graph = _load_and_compare(tmp_path, make_model(nodes, inputs, outputs, inits, opset))
    assert _kinds(graph) == ["conv2d", "reshape", "fully_connected"]


def test_channel_shuffle_keeps_one_transpose(tmp_path):
    nodes, inputs, outputs, inits, opset = CASES["channel_shuffle"]()
    graph = _load_and_compare(tmp_path, make_model(nodes, inputs, outputs, inits, opset))
    assert _kinds(graph) == ["conv2d", "reshape", "transpose", "reshape", "conv2d"]


def test_batch_norm_and_channel_constants_fold_into_convolution(tmp_path):
    nodes, inputs, outputs, inits, opset = CASES["conv_batchnorm_relu"]()
    nodes = [
        *nodes[:2],
        node("Unsqueeze", ["k"], ["k3"], axes=[1, 2]),
        node("Mul", ["n", "k3"], ["p"]),
        node("Add", ["p", "t"], ["q"]),
        node("Relu", ["q"], ["y"]),
    ]
    inits.update(k=rand(6), t=rand(6, 1, 1))
    graph = _load_and_compare(tmp_path, make_model(nodes, inputs, outputs, inits, opset))
    assert _kinds(graph) == ["conv2d"]
    assert graph.ops[0].attrs["activation"] == "relu"


def test_depthwise_and_group_convolutions_map_to_their_kinds(tmp_path):
    for case, kind in (("depthwise_multiplier", "depthwise_conv2d"), ("group_conv", "conv2d")):
        nodes, inputs, outputs, inits, opset = CASES[case]()
        graph = load_onnx(save(make_model(nodes, inputs, outputs, inits, opset), tmp_path))
        assert _kinds(graph) == [kind]
    assert graph.ops[0].attrs["groups"] == 2


def test_initializers_listed_as_inputs_are_not_graph_inputs(tmp_path):
    nodes, inputs, outputs, inits, opset = CASES["conv_bias_pads_strides"]()
    model = make_model(nodes, inputs, outputs, inits, opset)
    for name, value in inits.items():
        model.graph.input.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape))
        )
    graph = _load_and_compare(tmp_path, model)
    assert [t.name for t in graph.inputs] == ["x"]


# ---- bad input ---------------------------------------------------------------------------------


def _valid_model_bytes() -> bytes:
    nodes, inputs, outputs, inits, opset = CASES["conv_batchnorm_relu"]()
    return make_model(nodes, inputs, outputs, inits, opset).SerializeToString()


@pytest.mark.parametrize(
    "content",
    [_valid_model_bytes()[:300], b"this is a text file, not a model\n", b"\x08", b""],
    ids=["truncated", "text", "one_byte", "empty"],
)
def test_unreadable_file_is_a_model_format_error(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelFormatError, match="corrupt or truncated"):
        api.load(path)
    assert main(["inspect", str(path)]) == 2


def test_unsupported_ops_are_all_listed_with_node_names(tmp_path):
    model = make_model(
        [
            node("Erf", ["x"], ["a"], name="erf_1"),
            node("Relu", ["a"], ["b"]),
            node("Einsum", ["b"], ["c"], equation="ij->ji", name="swap"),
            node("Erf", ["c"], ["d"], name="erf_2"),
            node("FusedGemm", ["d"], ["y"], domain="com.microsoft", name="fused"),
        ],
        {"x": (2, 3)},
        ["y"],
    )
    with pytest.raises(UnsupportedOpError) as info:
        load_onnx(save(model, tmp_path))
    message = str(info.value)
    for text in (
        "Erf (node 'erf_1')",
        "Erf (node 'erf_2')",
        "Einsum (node 'swap')",
        "com.microsoft.FusedGemm (node 'fused')",
        "4 operator(s)",
    ):
        assert text in message


def test_unsupported_attribute_names_the_node(tmp_path):
    model = make_model(
        [node("Pad", ["x"], ["y"], mode="reflect", pads=[0, 0, 1, 1, 0, 0, 1, 1], name="mirror")],
        IMAGE,
        ["y"],
        opset=9,
    )
    with pytest.raises(UnsupportedModelError, match=r"'mirror'.*reflect"):
        load_onnx(save(model, tmp_path))


def test_dynamic_dimension_asks_for_input_shape_and_the_fix_works(tmp_path):
    nodes, _, outputs, inits, opset = CASES["conv_batchnorm_relu"]()
    model = make_model(nodes, {"x": ("batch", 4, "height", 9)}, outputs, inits, opset)
    path = save(model, tmp_path)
    with pytest.raises(ShapeError, match=r"'x'.*--input-shape x=1,4,1,9"):
        api.load(path)
    graph = api.load(path, {"x": (2, 4, 7, 9)})
    x = np.random.default_rng(3).standard_normal((2, 4, 7, 9)).astype(np.float32)
    reference = ort_run(path, {"x": x})["y"]
    assert relative_error(api.run(graph, x)["y"], reference) <= 1e-5
    with pytest.raises(ShapeError, match="contradicts"):
        api.load(path, {"x": (2, 3, 7, 9)})
    with pytest.raises(ShapeError, match="model's inputs are x"):
        api.load(path, {"data": (1, 4, 9, 9)})


def test_dynamic_dimension_through_the_cli(tmp_path, capsys):
    nodes, _, outputs, inits, opset = CASES["conv_batchnorm_relu"]()
    path = save(make_model(nodes, {"x": ("n", 4, 9, 9)}, outputs, inits, opset), tmp_path)
    assert main(["inspect", str(path)]) == 2
    assert "--input-shape x=1,4,9,9" in capsys.readouterr().err
    assert main(["inspect", str(path), "--input-shape", "x=1,4,9,9"]) == 0


def test_input_of_wrong_shape_is_an_input_error(tmp_path):
    nodes, inputs, outputs, inits, opset = CASES["conv_batchnorm_relu"]()
    path = save(make_model(nodes, inputs, outputs, inits, opset), tmp_path)
    graph = api.load(path)
    with pytest.raises(InputError, match=r"\(1, 4, 9, 9\)"):
        api.run(graph, np.zeros((1, 9, 9, 4), np.float32))  # NHWC given for an NCHW model
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 8, 8), np.float32))
    code = main(
        ["run", str(path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]
    )
    assert code == 2 and not (tmp_path / "y.npy").exists()


def test_unsupported_input_dtype(tmp_path):
    graph = helper.make_graph(
        [node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [2])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedModelError, match=r"'x' is DOUBLE.*float32"):
        load_onnx(save(model, tmp_path))


def test_control_flow_subgraphs_are_refused(tmp_path):
    branch = helper.make_graph(
        [node("Identity", ["x"], ["z"])],
        "branch",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
    )
    model = make_model(
        [node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch, name="choose")],
        {"x": (2,)},
        ["y"],
    )
    model.graph.input.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
    with pytest.raises(UnsupportedModelError, match=r"nested graphs \(If \('choose'\)\)"):
        load_onnx(save(model, tmp_path))


def test_old_opset_is_refused_with_a_way_out(tmp_path):
    model = make_model([node("Relu", ["x"], ["y"])], {"x": (2,)}, ["y"], opset=6)
    with pytest.raises(UnsupportedModelError, match=r"opset 6.*version_converter"):
        load_onnx(save(model, tmp_path))


def test_weights_computed_at_run_time_are_refused(tmp_path):
    model = make_model([conv("x", "y", "w")], {"x": (1, 2, 5, 5), "w": (3, 2, 3, 3)}, ["y"])
    with pytest.raises(UnsupportedModelError, match=r"the weights \('w'\) is computed at run time"):
        load_onnx(save(model, tmp_path))


def test_identity_as_last_node_keeps_the_output_name(tmp_path):
    model = make_model(
        [conv("x", "c", "w"), node("Identity", ["c"], ["y"])], IMAGE, ["y"], {"w": rand(2, 4, 1, 1)}
    )
    graph = _load_and_compare(tmp_path, model)
    assert [t.name for t in graph.outputs] == ["y"]
    assert _kinds(graph) == ["conv2d"]


def test_every_truncation_of_a_model_is_a_clean_error(tmp_path):
    data = _valid_model_bytes()
    path = tmp_path / "cut.onnx"
    for length in range(0, len(data) - 1, 7):
        path.write_bytes(data[:length])
        with pytest.raises(MemfitError):
            api.load(path)


def test_missing_external_weights_file(tmp_path):
    nodes, inputs, outputs, inits, opset = CASES["conv_bias_pads_strides"]()
    path = tmp_path / "external.onnx"
    onnx.save_model(
        make_model(nodes, inputs, outputs, inits, opset),
        str(path),
        save_as_external_data=True,
        location="external.data",
        size_threshold=0,
    )
    assert api.load(path).ops[0].kind == "conv2d"
    (tmp_path / "external.data").unlink()
    with pytest.raises(ModelFormatError, match="external weights"):
        api.load(path)
