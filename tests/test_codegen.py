"""Generated C end to end: hand-built graphs (float and int8, every op kind, strided in-place
concatenation, in-place depthwise, FFMT and FDT tiling) compiled with -Wall -Wextra -Werror and
run; int8 outputs equal the NumPy executor's in the same arena bit for bit, float outputs lie
within 1e-5 of the largest. The arena has exactly the plan's size, nothing allocates on the
heap, ASan/UBSan find nothing, and every shared model matches TFLite Micro (or
LiteRT, for the hybrid mlperf_tiny_kws_f32, which TFLite Micro cannot load)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from memfit import api
from memfit.codegen.emit import GeneratedModel, generate
from memfit.codegen.plan import plan_for_c
from memfit.codegen.toolchain import (
    NO_HEAP,
    PROFILE,
    RELEASE,
    SANITIZE,
    Build,
    CompileError,
    CompilerNotFound,
    ProgramError,
    Variant,
    find_compiler,
    run_program,
)
from memfit.codegen.verify import random_inputs, verify
from memfit.errors import InputError
from memfit.frontends import load_model
from memfit.ir.builder import GraphBuilder
from memfit.ir.core import Graph, Quantization
from memfit.ir.dtypes import DType
from memfit.planning import MemoryPlan, plan_memory
from memfit.tiling.fdt import apply_fdt
from memfit.tiling.ffmt import apply_ffmt
from tests.helpers import SHARED_MODELS
from tests.test_tiling_ffmt import FLOAT_ONLY, INT8_ONLY, OP_CASES, ChainBuilder

WARNINGS = ("-Wall", "-Wextra", "-Werror")
MODELS = SHARED_MODELS

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
)


class Compiled:
    """A graph's generated C, planned for C, and what running it gives."""

    def __init__(self, graph: Graph, directory: Path, cache: Path, plan: MemoryPlan | None = None):
        self.graph = graph
        self.plan = plan if plan is not None else plan_for_c(graph)
        self.model: GeneratedModel = generate(graph, self.plan, directory, "model")
        self.build = Build(self.model, find_compiler(), WARNINGS, cache)
        self.source = (directory / "model.c").read_text()

    def run(self, variant: Variant = RELEASE, seed: int = 0) -> None:
        """Run ``variant`` and compare every output with the NumPy executor in the same arena."""
        inputs = random_inputs(self.model.inputs, seed)
        got = run_program(self.build.program(variant), self.model, inputs).outputs
        by_name = {p.tensor.name: a for p, a in zip(self.model.inputs, inputs, strict=True)}
        expected = api.run(self.graph, by_name, self.plan.arena)
        for port, value in zip(self.model.outputs, got, strict=True):
            assert_same(value, expected[port.tensor.name], f"{variant.name}, {port.tensor.name}")


def assert_same(got: np.ndarray, expected: np.ndarray, where: str) -> None:
    assert got.shape == expected.shape and got.dtype == expected.dtype, where
    if np.issubdtype(got.dtype, np.integer):
        np.testing.assert_array_equal(got, expected, err_msg=where)
    else:
        scale = max(float(np.abs(expected).max()), 1e-30)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale, err_msg=where)


def compiled(graph: Graph, tmp_path: Path, cache: Path, plan: MemoryPlan | None = None):
    return Compiled(graph, tmp_path / "generated", cache, plan)


# ---- every op kind, float and int8 ---------------------------------------------------------


def _sandwich(case: str, quantized: bool) -> Graph:
    """conv -> the op -> conv, on an odd-sized map."""
    chain = ChainBuilder((1, 9, 7, 3), quantized, seed=len(case))
    chain.conv(4, activation="relu")
    OP_CASES[case](chain)
    chain.conv(3)
    return chain.finish()


def _every_kind(quantized: bool) -> tuple[Graph, dict[str, str]]:
    """One branch conv -> op -> conv per op case, all on one input, each an output (so one
    program covers every kind); returns the graph and each output's case."""
    chain = ChainBuilder((1, 9, 7, 3), quantized, seed=1)
    source = chain.x
    cases = {}
    for case in sorted(OP_CASES):
        if case in (FLOAT_ONLY if quantized else INT8_ONLY):
            continue  # float -> float quantize does not exist; TFLite's LRN is float only
        chain.x = source
        chain.conv(4, activation="relu")
        OP_CASES[case](chain)
        cases[chain.conv(3).name] = case
        chain.b.graph.outputs.append(chain.x)
    return chain.graph, cases


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_every_op_kind(quantized, tmp_path, object_cache):
    graph, cases = _every_kind(quantized)
    c = compiled(graph, tmp_path, object_cache)
    assert [cases[p.tensor.name] for p in c.model.outputs] == list(cases.values())
    c.run()


def _classifier(quantized: bool) -> Graph:
    """conv -> depthwise -> residual add -> pool -> mean / dense / softmax, and a second output."""
    chain = ChainBuilder((2, 10, 10, 3), quantized, seed=3)
    chain.conv(8, stride=2, activation="relu6")
    trunk = chain.x
    chain.depthwise()
    chain.conv(8, kernel=1)
    b = chain.b
    added = b.op("add", [trunk, chain.x], {"activation": "none"}, quant=chain._out_quant(4.0))
    chain.x = added
    chain.pool("max_pool2d")
    pooled = b.op("mean", [chain.x], {"axes": (1, 2), "keepdims": False}, quant=chain.x.quant)
    rng = np.random.default_rng(5)
    if quantized:
        w_quant = Quantization((0.01,), (0,))
        w = b.constant("dense_w", rng.integers(-127, 128, (5, 8)).astype(np.int8), w_quant)
        bias_quant = Quantization((pooled.quant.scale[0] * 0.01,), (0,))
        bias = b.constant("dense_b", rng.integers(-500, 500, 5).astype(np.int32), bias_quant)
        logits_quant = Quantization((0.1,), (3,))
        soft_quant = Quantization((1 / 256,), (-128,))
    else:
        w = b.constant("dense_w", rng.standard_normal((5, 8)).astype(np.float32))
        bias = b.constant("dense_b", rng.standard_normal(5).astype(np.float32))
        logits_quant = soft_quant = None
    logits = b.op("fully_connected", [pooled, w, bias], {"activation": "none"}, quant=logits_quant)
    probabilities = b.op("softmax", [logits], {"axis": -1, "beta": 1.0}, quant=soft_quant)
    return b.output(probabilities, added)


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_classifier_with_batch_of_two_and_two_outputs(quantized, tmp_path, object_cache):
    c = compiled(_classifier(quantized), tmp_path, object_cache)
    assert [p.parameter for p in c.model.outputs] == ["output0", "output1"]
    for seed in (0, 1):
        c.run(seed=seed)


# ---- the arena and the rest of the file ----------------------------------------------------


def test_arena_has_exactly_the_plans_size_and_is_the_only_mutable_static(tmp_path, object_cache):
    c = compiled(_classifier(True), tmp_path, object_cache)
    sizes = re.findall(r"^static MF_ALIGNAS\(64\) uint8_t arena\[(\d+)\];$", c.source, re.M)
    assert sizes == [str(c.plan.arena.size)]
    header = (tmp_path / "generated" / "model.h").read_text()
    assert f"#define MODEL_ARENA_BYTES {c.plan.arena.size}" in header
    # every other file-scope static is a function definition
    statics = [
        line for line in c.source.splitlines() if line.startswith("static") and line[-1] != "{"
    ]
    assert statics == [f"static MF_ALIGNAS(64) uint8_t arena[{c.plan.arena.size}];"]
    weights = (tmp_path / "generated" / "model_weights.c").read_text()
    definitions = re.findall(r"^MF_ALIGNAS\(64\) (const )?union", weights, re.M)
    assert definitions and all(d == "const " for d in definitions)


def test_one_call_per_op_with_code_and_none_for_views(tmp_path, object_cache):
    chain = ChainBuilder((1, 6, 6, 4), False)
    chain.conv(4)
    chain._add("reshape", [chain.x], shape=(1, 144))
    graph = chain.finish()
    c = compiled(graph, tmp_path, object_cache)
    assert c.plan.storage.moves_no_data("reshape1")
    assert c.model.no_ops == ("reshape1",)
    calls = re.findall(r"^        (mf_\w+)\(", c.source, re.M)
    assert calls == ["mf_conv2d_f32"]
    c.run()


def _branches(quantized: bool) -> Graph:
    """Two layers on one input whose outputs a channel concat joins: both can be written
    straight into their (strided) slices of the concat's output."""
    chain = ChainBuilder((1, 7, 6, 3), quantized, seed=11)
    source = chain.x
    left = chain.conv(5, activation="relu")
    chain.x = source
    right = chain.conv(3, kernel=1)
    b = chain.b
    if quantized:  # a concat moves bytes only when its inputs share the output's quantization
        right.quant = left.quant
    joined = b.op("concat", [left, right], {"axis": 3, "activation": "none"}, quant=left.quant)
    chain.x = joined
    chain.conv(4)
    return chain.finish()


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_strided_in_place_concat(quantized, tmp_path, object_cache):
    graph = _branches(quantized)
    c = compiled(graph, tmp_path, object_cache)
    concat = next(op for op in graph.ops if op.kind == "concat")
    assert c.plan.storage.moves_no_data(concat.name)
    # each branch writes its channels with the concat output's row and pixel strides
    assert re.search(r"const mf_view yv = \{1, 7, 6, 5, \d+, 48, 8\};", c.source)
    assert re.search(r"const mf_view yv = \{1, 7, 6, 3, \d+, 48, 8\};", c.source)
    assert f"{concat.name}: written in place, no code" in c.source
    c.run()
    c.run(SANITIZE)


def _depthwise_in_place(quantized: bool, stride: int) -> Graph:
    chain = ChainBuilder((2, 8, 8, 3), quantized, seed=7)
    chain.conv(6, kernel=1)
    chain.depthwise(stride=stride, pads=(1, 1, 1, 1))
    chain.conv(2, kernel=1)
    return chain.finish()


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
@pytest.mark.parametrize("stride", [1, 2])
def test_in_place_depthwise(quantized, stride, tmp_path, object_cache):
    graph = _depthwise_in_place(quantized, stride)
    c = compiled(graph, tmp_path, object_cache)
    (depthwise,) = (op for op in graph.ops if op.kind == "depthwise_conv2d")
    in_place = c.plan.in_place.get(depthwise.name)
    assert in_place is not None and in_place.kind == "depthwise"
    assert "mf_depthwise_conv2d_inplace_" in c.source
    c.run()
    c.run(SANITIZE)


def _pointwise_in_place(quantized: bool, cout: int, stride: int) -> Graph:
    chain = ChainBuilder((2, 7, 5, 3), quantized, seed=cout + stride)
    chain.conv(8, activation="relu")
    chain.conv(cout, kernel=1, stride=stride, pads=(0, 0, 0, 0), activation="relu6")
    chain.conv(2, kernel=1, pads=(0, 0, 0, 0))
    return chain.finish()


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
@pytest.mark.parametrize(
    ("cout", "stride"), [(5, 1), (20, 1), (8, 2)], ids=["fewer", "more", "strided"]
)
def test_in_place_pointwise(quantized, cout, stride, tmp_path, object_cache):
    """A 1x1 convolution over its own input, block by block through its temporary: the same
    outputs as the NumPy executor running the same blocks in the same arena."""
    graph = _pointwise_in_place(quantized, cout, stride)
    plan = plan_for_c(graph)
    assert plan.in_place[graph.ops[1].name].kind == "pointwise"
    c = compiled(graph, tmp_path, object_cache, plan)
    assert "mf_conv2d_inplace_" in c.source
    c.run()
    c.run(SANITIZE)


# ---- tiled graphs --------------------------------------------------------------------------


def _chain(quantized: bool) -> ChainBuilder:
    chain = ChainBuilder((1, 12, 10, 3), quantized, seed=2)
    chain.conv(8, activation="relu")
    chain.depthwise()
    chain.conv(6, kernel=1)
    chain.pool("avg_pool2d", 2, 2)
    chain.finish()
    return chain


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
@pytest.mark.parametrize("grid", [(2, 1), (2, 2)])
def test_ffmt_tiled_graph(quantized, grid, tmp_path, object_cache):
    chain = _chain(quantized)
    untiled = chain.graph.copy()
    tiled = chain.graph
    apply_ffmt(tiled, chain.names[:3], grid)
    c = compiled(tiled, tmp_path, object_cache)
    assert "mf_strided_slice" in c.source
    c.run()
    inputs = random_inputs(c.model.inputs, 0)
    got = run_program(c.build.program(), c.model, inputs).outputs[0]
    (expected,) = api.run(untiled, inputs[0], "separate").values()
    assert_same(got, expected, "tiled C vs untiled NumPy")


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
@pytest.mark.parametrize("end", ["lip", "concat"])
def test_fdt_tiled_graph(quantized, end, tmp_path, object_cache):
    chain = _chain(quantized)
    tiled = chain.graph
    names = chain.names[:3] if end == "lip" else chain.names[:2]
    apply_fdt(tiled, names, 3)
    c = compiled(tiled, tmp_path, object_cache)
    if end == "lip":
        assert "mf_partial_conv2d_" in c.source and "mf_accumulator_output_" in c.source
    c.run()
    c.run(SANITIZE)


def _reducing_chain(quantized: bool, end: str) -> ChainBuilder:
    """conv -> depthwise -> a layer that reduces the whole 9x9 map (two batch items)."""
    chain = ChainBuilder((2, 9, 9, 3), quantized, seed=5)
    chain.conv(6, activation="relu")
    chain.depthwise()
    if end == "avg_pool":
        chain.pool("avg_pool2d", 9, 9)
    elif end == "depthwise":
        chain.depthwise(kernel=9, pads=(0, 0, 0, 0))
    else:
        chain.conv(4, kernel=9, pads=(0, 0, 0, 0), activation="relu")
    chain.finish()
    return chain


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
@pytest.mark.parametrize(
    ("end", "kernels"),
    [
        ("avg_pool", ("mf_partial_sum_pool_", "mf_accumulator_average_")),
        ("depthwise", ("mf_partial_depthwise_conv2d_", "mf_accumulator_output_")),
        ("conv", ("mf_partial_conv2d_", "mf_accumulator_output_")),
    ],
)
def test_ffmt_tiles_accumulate_a_reduction_of_the_whole_map(
    quantized, end, kernels, tmp_path, object_cache
):
    chain = _reducing_chain(quantized, end)
    untiled = chain.graph.copy()
    tiled = chain.graph
    apply_ffmt(tiled, chain.names, (3, 2))
    c = compiled(tiled, tmp_path, object_cache)
    assert all(kernel in c.source for kernel in kernels)
    c.run()
    c.run(SANITIZE)
    inputs = random_inputs(c.model.inputs, 0)
    got = run_program(c.build.program(), c.model, inputs).outputs[0]
    (expected,) = api.run(untiled, inputs[0], "separate").values()
    assert_same(got, expected, "tiled C vs untiled NumPy")


# ---- layouts at the boundary ---------------------------------------------------------------


def test_nchw_input_and_output_are_transposed_while_copied(tmp_path, object_cache):
    chain = ChainBuilder((1, 5, 4, 3), False)
    chain.conv(2)
    graph = chain.finish()
    graph.external_perm[graph.inputs[0].name] = (0, 2, 3, 1)
    graph.external_perm[graph.outputs[0].name] = (0, 2, 3, 1)
    c = compiled(graph, tmp_path, object_cache)
    assert c.model.inputs[0].external_shape == (1, 3, 5, 4)
    assert c.model.outputs[0].external_shape == (1, 2, 5, 4)
    header = (tmp_path / "generated" / "model.h").read_text()
    assert "float [1, 3, 5, 4] NCHW" in header and "float [1, 2, 5, 4] NCHW" in header
    assert "memcpy" not in c.source  # both copies transpose
    c.run()


# ---- no heap, sanitizers, profile ----------------------------------------------------------


def test_nothing_allocates_on_the_heap(tmp_path, object_cache):
    c = compiled(_classifier(True), tmp_path, object_cache)
    c.run(NO_HEAP)


def test_the_no_heap_check_catches_an_allocation(tmp_path, object_cache):
    c = compiled(_classifier(False), tmp_path, object_cache)
    main = tmp_path / "generated" / "main.c"
    allocation = "    {\n        char* volatile probe = malloc(16);\n        free(probe);\n    }\n"
    main.write_text(
        main.read_text().replace("    status = run(0);", allocation + "    status = run(0);")
    )
    with pytest.raises(ProgramError, match="malloc called"):
        c.run(NO_HEAP)


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_clean_under_address_and_undefined_behaviour_sanitizers(quantized, tmp_path, object_cache):
    c = compiled(_classifier(quantized), tmp_path, object_cache)
    c.run(SANITIZE)


def test_profile_build_times_every_op(tmp_path, object_cache):
    c = compiled(_classifier(False), tmp_path, object_cache)
    result = run_program(
        c.build.program(PROFILE), c.model, random_inputs(c.model.inputs, 0), repeat=3
    )
    assert len(result.run_seconds) == 3
    assert len(result.op_seconds) == len(c.model.ops)
    assert all(len(samples) == 4 and min(samples) > 0 for samples in result.op_seconds)


# ---- what is refused -----------------------------------------------------------------------


def test_compiler_errors_are_reported_with_the_first_lines(tmp_path, object_cache):
    c = compiled(_classifier(False), tmp_path, object_cache)
    source = tmp_path / "generated" / "model.c"
    source.write_text(source.read_text().replace("return MODEL_OK;", "return MODEL_OK +;"))
    with pytest.raises(CompileError, match=r"compiling model\.c(.|\n)*model\.c:\d+:\d+: error"):
        c.build.program()


def test_no_compiler(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(CompilerNotFound, match="no C compiler found"):
        find_compiler()


def test_a_plan_without_the_kernels_workspace_is_refused(tmp_path):
    graph = _sandwich("conv", False)
    plan = plan_memory(graph)  # the NumPy executor's plan: no im2col workspace
    with pytest.raises(InputError, match="workspace"):
        generate(graph, plan, tmp_path, "model")


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
@pytest.mark.parametrize("case", ["max_pool", "avg_pool"])
def test_pooling_in_place(case, quantized, tmp_path, object_cache):
    graph = _sandwich(case, quantized)
    plan = plan_for_c(graph)
    assert any(entry.kind == "pool" for entry in plan.in_place.values()), "not run in place"
    c = compiled(graph, tmp_path, object_cache, plan)
    assert "_inplace_" in c.source
    c.run()
    c.run(SANITIZE)


# ---- the shared models against TFLite Micro ------------------------------------------------

FAST_MODELS = [
    "mlperf_tiny_ad_int8",
    "mlperf_tiny_ad_f32",
    "mlperf_tiny_kws_int8",
    "mlperf_tiny_strww_int8",
    "tflm_micro_speech_int8",
    "tflm_dtln_int8",
    "tflm_mnist_lstm_f32",
    "mlperf_tiny_kws_f32",
]
SLOW_MODELS = [
    "mlperf_tiny_resnet8_int8",
    "mlperf_tiny_resnet8_f32",
    "mlperf_tiny_vww_int8",
    "mlperf_tiny_vww_f32",
    "tflm_person_detect_int8",
    "tflm_mobilenet_v2_224_int8",
]
LITERT_REFERENCE = {"mlperf_tiny_kws_f32"}
"""Models TFLite Micro cannot load (hybrid layers): LiteRT's builtin kernels are the reference."""


def _verify_shared(name: str) -> None:
    path = str(MODELS / f"{name}.tflite")
    graph = load_model(path)
    result = verify(graph, plan_for_c(graph), path, name, seeds=(0, 1), warnings=WARNINGS)
    reference = "litert" if name in LITERT_REFERENCE else "tflite-micro"
    assert [c.against for c in result.comparisons] == ["numpy", reference]
    assert result.matches, result.to_json()
    assert result.no_heap
    if name.endswith("_int8"):
        assert result.bit_exact


@pytest.mark.parametrize("name", FAST_MODELS)
def test_shared_model_matches_tflite_micro(name):
    _verify_shared(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_MODELS)
def test_shared_model_matches_tflite_micro_slow(name):
    _verify_shared(name)


def test_every_shared_model_is_covered():
    listed = set(FAST_MODELS) | set(SLOW_MODELS)
    assert listed == {p.stem for p in MODELS.glob("*.tflite")}


def test_int8_dense_graph_built_by_hand(tmp_path, object_cache):
    """A per-tensor int8 dense layer (TFLite's weights offset) on a [rows, K] input."""
    b = GraphBuilder("dense")
    x = b.input("x", (3, 16), DType.INT8, Quantization((0.05,), (4,)))
    rng = np.random.default_rng(0)
    w = b.constant(
        "w", rng.integers(-100, 100, (6, 16)).astype(np.int8), Quantization((0.02,), (3,))
    )
    y = b.op(
        "fully_connected", [x, w, None], {"activation": "relu"}, quant=Quantization((0.1,), (-5,))
    )
    graph = b.output(y)
    compiled(graph, tmp_path, object_cache).run()
