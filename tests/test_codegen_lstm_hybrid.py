"""Generated C for LSTMs (mf_lstm.c) and hybrid convolutions (float input, int8 weights).

Hand-built graphs run against the NumPy executor in the same arena: the random LSTMs of
tests/test_lstm.py (which pins the NumPy kernels to TFLite Micro and LiteRT), int8 bit for bit
and float within 1e-5 of the largest output, over several steps, batches, both layouts, clipping,
several cell-state scales and every float variant (CIFG, peepholes, layer norm, projection);
hybrid conv2d on the GEMM and the direct paths, a batch of two (one input scale per item) and
an all-zero input. Every program also runs under AddressSanitizer and UBSan: the kernels stay
inside their workspace of exactly ``params.workspace_bytes`` bytes."""

from __future__ import annotations

import shutil
from collections.abc import Mapping

import numpy as np
import pytest

from memfit.codegen.emit import generate
from memfit.codegen.plan import plan_for_c
from memfit.codegen.toolchain import SANITIZE
from memfit.errors import UnsupportedOpError
from memfit.frontends import load_model
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph, Op, Quantization
from memfit.ir.dtypes import DType
from tests.helpers import SHARED_MODELS
from tests.test_codegen import compiled
from tests.test_lstm import FLOAT_CASES, FLOAT_VARIANT_CASES, INT8_CASES, _random_lstm

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
)


# ---- LSTM ----------------------------------------------------------------------------------


def _lstms(cases: Mapping[str, dict], **common: object) -> tuple[Graph, list[str]]:
    """One random LSTM per case, each on an input of its own and an output; returns the graph
    and the case of each output. The state inputs become zero constants (the kernels start
    from the zero state and read neither)."""
    b = GraphBuilder("lstms")
    names = []
    for k, (case, options) in enumerate(cases.items()):
        rng = np.random.default_rng(len(case))
        op: Op = _random_lstm(rng, **{**common, **options})
        inputs = []
        for index, t in enumerate(op.inputs):
            if t is None:
                inputs.append(None)
            elif index == 0:
                inputs.append(b.input(f"x{k}", t.shape, t.dtype, t.quant))
            else:
                data = t.data if t.data is not None else np.zeros(t.shape, t.dtype.numpy)
                inputs.append(b.constant(f"lstm{k}_{t.name}", data, t.quant))
        out = op.output
        y = b.op("lstm", inputs, dict(op.attrs), quant=out.quant, shape=out.shape, name=f"lstm{k}")
        b.graph.outputs.append(y)
        names.append(case)
    return b.graph, names


LSTM_CASES = {
    "int8": (INT8_CASES, {"int8": True}),
    "float": ({**FLOAT_CASES, **FLOAT_VARIANT_CASES}, {}),
}


@pytest.mark.parametrize("arithmetic", sorted(LSTM_CASES))
def test_lstms_match_numpy(arithmetic, tmp_path, object_cache):
    cases, common = LSTM_CASES[arithmetic]
    graph, names = _lstms(cases, **common)
    c = compiled(graph, tmp_path, object_cache)
    assert c.source.count(f"mf_lstm_{'s8' if arithmetic == 'int8' else 'f32'}(") == len(names)
    for seed in (0, 1):
        c.run(seed=seed)
    c.run(SANITIZE)


def test_lstm_workspace_is_planned_in_the_arena(tmp_path, object_cache):
    graph, _ = _lstms({"long": INT8_CASES["long sequence"]}, int8=True)
    c = compiled(graph, tmp_path, object_cache)
    (op,) = graph.ops
    n_cell = 12
    scratch = c.plan.lifetimes.scratch[op.name]
    assert c.plan.lifetimes.buffer(scratch).size >= n_cell * 2  # the int16 cell state
    assert f"(int16_t*)(arena + {c.plan.scratch_offsets[op.name]})" in c.source


# ---- hybrid conv2d -------------------------------------------------------------------------


def _hybrid_conv(b: GraphBuilder, x, rng, channels, kernel, stride, pads, activation="relu"):
    real = rng.standard_normal((channels, kernel, kernel, x.shape[-1]))
    scale = float(np.float32(np.abs(real).max() / 127))
    weights = np.clip(np.round(real / scale), -127, 127).astype(np.int8)
    w = b.constant(f"w{len(b.graph.ops)}", weights, Quantization((scale,), (0,)))
    bias = b.constant(f"b{len(b.graph.ops)}", rng.standard_normal(channels).astype(np.float32))
    attrs = {
        "strides": (stride, stride),
        "dilations": (1, 1),
        "pads": pads,
        "groups": 1,
        "activation": activation,
    }
    return b.op("conv2d", [x, w, bias], attrs)


def _hybrid_graph() -> Graph:
    """The kws_f32 pattern: a strided hybrid conv, a float depthwise, hybrid 1x1 convs (the GEMM
    path, and the direct path for few output channels); and a branch whose input is all zeros."""
    rng = np.random.default_rng(5)
    b = GraphBuilder("hybrid")
    x = b.input("x", (2, 11, 7, 3))
    y = _hybrid_conv(b, x, rng, 16, 3, 2, (1, 1, 1, 1))
    dw = b.constant("dw", rng.standard_normal((1, 3, 3, 16)).astype(np.float32))
    attrs = {"strides": (1, 1), "dilations": (1, 1), "pads": (1, 1, 1, 1), "activation": "relu"}
    y = b.op("depthwise_conv2d", [y, dw, None], {**attrs, "depth_multiplier": 1})
    y = _hybrid_conv(b, y, rng, 8, 1, 1, (0, 0, 0, 0), activation="none")
    few = _hybrid_conv(b, y, rng, 3, 1, 1, (0, 0, 0, 0), activation="relu6")
    zero = b.constant("zero", np.zeros((1, 1, 1, 1), np.float32))
    zeros = b.op("mul", [x, zero], {"activation": "none"})
    from_zeros = _hybrid_conv(b, zeros, rng, 5, 3, 1, (1, 1, 1, 1), activation="none")
    return b.output(y, few, from_zeros)


def test_hybrid_convolutions_match_numpy(tmp_path, object_cache):
    c = compiled(_hybrid_graph(), tmp_path, object_cache)
    assert c.source.count("mf_conv2d_hybrid_f32(") == 4
    for seed in (0, 1):
        c.run(seed=seed)
    c.run(SANITIZE)


def test_other_hybrid_layers_are_refused(tmp_path):
    b = GraphBuilder("hybrid_dense")
    x = b.input("x", (1, 16))
    w = b.constant("w", np.ones((4, 16), np.int8), Quantization((0.1,), (0,)))
    graph = b.output(b.op("fully_connected", [x, w, None], {"activation": "none"}))
    with pytest.raises(UnsupportedOpError, match="hybrid layer"):
        generate(graph, plan_for_c(graph), tmp_path, "model")


def test_hybrid_conv_with_per_channel_weights_is_refused(tmp_path):
    b = GraphBuilder("hybrid_per_channel")
    x = b.input("x", (1, 4, 4, 2))
    quant = Quantization((0.1, 0.2), (0, 0), 0)
    w = b.constant("w", np.ones((2, 1, 1, 2), np.int8), quant)
    attrs = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "groups": 1}
    graph = b.output(b.op("conv2d", [x, w, None], {**attrs, "activation": "none"}))
    assert graph.ops[0].inputs[1].dtype is DType.INT8
    with pytest.raises(UnsupportedOpError, match="per channel"):
        generate(graph, plan_for_c(graph), tmp_path, "model")


# ---- the shared models (their match with the reference runtimes: tests/test_codegen.py) -----


@pytest.mark.parametrize("name", ["tflm_dtln_int8", "tflm_mnist_lstm_f32", "mlperf_tiny_kws_f32"])
def test_shared_models_are_clean_under_sanitizers(name, tmp_path, object_cache):
    c = compiled(load_model(SHARED_MODELS / f"{name}.tflite"), tmp_path, object_cache)
    c.run(SANITIZE)
