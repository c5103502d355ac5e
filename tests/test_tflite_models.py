"""Every shared TFLite model, end to end: memfit against the reference interpreter.

int8 models must equal TFLite Micro bit for bit; float models must agree within 1e-4 of the
largest reference output. mlperf_tiny_kws_f32 has hybrid layers that TFLite Micro refuses, so
it is compared with LiteRT's builtin kernels (its XNNPACK delegate quantizes hybrid inputs
differently). For int8 models every op is also checked alone, fed TFLite Micro's own input
tensors, so that a mismatch names the op.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite_micro.python.tflite_micro import runtime

from memfit.api import load, run
from memfit.frontends.tflite import load_tflite
from memfit.ir.core import Graph
from memfit.runtime.kernels import find_kernel, run_kernel
from tests.helpers import SHARED_MODELS

MODELS = SHARED_MODELS
ALL = sorted(p.stem for p in MODELS.glob("*.tflite"))
LSTM_MODELS = {"tflm_dtln_int8", "tflm_mnist_lstm_f32"}
LITERT_ONLY = {"mlperf_tiny_kws_f32"}
SEEDS = (0, 1, 2)


def random_input(graph: Graph, seed: int) -> np.ndarray:
    (x,) = graph.inputs
    rng = np.random.default_rng(seed)
    if x.dtype.value == "int8":
        return rng.integers(-128, 128, size=x.shape).astype(np.int8)
    return rng.normal(size=x.shape).astype(np.float32)


def tflm_output(path: Path, x: np.ndarray) -> np.ndarray:
    interpreter = runtime.Interpreter.from_file(path)
    interpreter.set_input(x, 0)
    interpreter.invoke()
    return interpreter.get_output(0)


def litert_output(path: Path, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def skip_without_lstm_kernel(graph: Graph) -> None:
    for op in graph.ops:
        if op.kind == "lstm" and find_kernel(op) is None:
            pytest.skip("no kernel for lstm yet (memfit/runtime/kernels/lstm.py)")


@pytest.mark.parametrize("name", ALL)
def test_model_matches_reference(name: str) -> None:
    path = MODELS / f"{name}.tflite"
    graph = load(path)
    if name in LSTM_MODELS:
        skip_without_lstm_kernel(graph)
    reference = litert_output if name in LITERT_ONLY else tflm_output
    for seed in SEEDS:
        x = random_input(graph, seed)
        expected = reference(path, x)
        (got,) = run(graph, x).values()
        assert got.shape == expected.shape and got.dtype == expected.dtype
        if got.dtype == np.int8:
            np.testing.assert_array_equal(got, expected, err_msg=f"{name}, seed {seed}")
        else:
            scale = float(np.abs(expected).max())
            np.testing.assert_allclose(
                got, expected, rtol=0, atol=1e-4 * scale, err_msg=f"{name}, seed {seed}"
            )


INT8_MODELS = [n for n in ALL if n.endswith("_int8")]


@pytest.mark.parametrize("name", INT8_MODELS)
def test_every_int8_op_matches_tflite_micro_alone(name: str) -> None:
    """Run each op on TFLite Micro's own inputs; compare with TFLite Micro's output tensor."""
    import tflite

    path = MODELS / f"{name}.tflite"
    graph = load_tflite(path)  # not canonicalized: tensors keep the file's names
    skip_without_lstm_kernel(graph)
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0).Subgraphs(0)
    index = {model.Tensors(i).Name().decode(): i for i in range(model.TensorsLength())}
    interpreter = runtime.Interpreter.from_file(
        path, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors
    )
    x = random_input(graph, 0)
    interpreter.set_input(x, 0)
    interpreter.invoke()

    def reference(name: str) -> np.ndarray:
        tensor = interpreter.GetTensor(index[name], 0)
        return np.asarray(tensor["tensor_data"]).reshape(tensor["shape"])

    mismatches = []
    for op in graph.ops:
        args = [
            None if t is None else (t.data if t.is_constant else reference(t.name))
            for t in op.inputs
        ]
        (got,) = run_kernel(op, args)
        expected = reference(op.output.name)
        if not np.array_equal(got.reshape(expected.shape), expected):
            mismatches.append(f"{op.name} ({op.kind})")
    assert not mismatches, f"{name}: ops that differ from TFLite Micro: {', '.join(mismatches)}"
