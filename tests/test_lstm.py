"""UNIDIRECTIONAL_SEQUENCE_LSTM kernels against TFLite Micro (and LiteRT for float variants).

The int8 kernel must agree with TFLite Micro bit for bit; the float kernel within 1e-5 of the
largest reference magnitude. Besides the two shared models, single-op models are written (with
tests/tflite_builder.py) so that TFLite Micro can run the shared models' LSTM layers on their
own, and random LSTMs that exercise multi-step recurrence, batches, both layouts, clipping and
several cell-state scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from memfit import api
from memfit.errors import UnsupportedOpError
from memfit.ir.core import Graph, Op, Quantization, Tensor
from memfit.ir.dtypes import DType
from memfit.reference import run_litert, run_tflm
from memfit.runtime.kernels import find_kernel, run_kernel
from memfit.runtime.kernels.fixedpoint import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
)
from memfit.runtime.kernels.lstm import lstm_float, lstm_int8, sigmoid_int16, tanh_int16
from tests import tflite_builder
from tests.helpers import SHARED_MODELS

MODELS = SHARED_MODELS
MNIST_LSTM_F32 = MODELS / "tflm_mnist_lstm_f32.tflite"
DTLN_INT8 = MODELS / "tflm_dtln_int8.tflite"
SEEDS = (0, 1, 2)

# ---- single-op .tflite models for the reference runtimes -----------------------------------------

_ACTIVATIONS = {"none": 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3, "tanh": 4}
_OPCODES = {"lstm": "UNIDIRECTIONAL_SEQUENCE_LSTM", "logistic": "LOGISTIC", "tanh": "TANH"}


def _lstm_ops(path: Path) -> list[Op]:
    return [op for op in api.load(path).ops if op.kind == "lstm"]


def _tflite_bytes(op: Op) -> bytes:
    """A one-op .tflite model of ``op`` (kinds lstm, logistic, tanh) for the reference runtimes.

    The LSTM's state inputs (18, 19) become variable tensors, which the interpreters reset; the
    op's other non-constant inputs become the model inputs, in order.
    """
    states = {id(op.inputs[i]) for i in (18, 19)} if op.kind == "lstm" else set()
    tensors: list[Tensor] = []
    for t in [*op.inputs, *op.outputs]:
        if t is not None and all(t is not u for u in tensors):
            tensors.append(t)
    index = {id(t): i for i, t in enumerate(tensors)}
    records = [
        tflite_builder.T(
            t.name,
            t.shape,
            t.dtype.value,
            t.quant.scale if t.quant else None,
            t.quant.zero_point if t.quant else None,
            None if id(t) in states else t.data,
            variable=id(t) in states,
        )
        for t in tensors
    ]
    options, fields = None, {}
    if op.kind == "lstm":
        options = "UnidirectionalSequenceLSTMOptions"
        fields = {
            "FusedActivationFunction": _ACTIVATIONS[op.attrs["activation"]],
            "CellClip": op.attrs["cell_clip"],
            "ProjClip": op.attrs["proj_clip"],
            "TimeMajor": op.attrs["time_major"],
        }
    operator = tflite_builder.Operator(
        _OPCODES[op.kind],
        [-1 if t is None else index[id(t)] for t in op.inputs],
        [index[id(t)] for t in op.outputs],
        options,
        fields,
    )
    model_inputs = [
        index[id(t)] for t in op.inputs if t is not None and t.data is None and id(t) not in states
    ]
    return tflite_builder.build(records, [operator], model_inputs, [index[id(op.output)]])


def _reference(runtime, op: Op, inputs: Sequence[np.ndarray], tmp_path: Path) -> np.ndarray:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{op.name}_{len(list(tmp_path.iterdir()))}.tflite"
    path.write_bytes(_tflite_bytes(op))
    return runtime(path, list(inputs))[0]


def _run_tflm_big_arena(path: Path, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """TFLite Micro with a 1 MiB arena: memfit.reference sizes it from the model file, which
    is too small for a weightless op on 2^16 values."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(path), arena_size=1 << 20)
    for index, array in enumerate(inputs):
        interpreter.set_input(array, index)
    interpreter.invoke()
    return [np.array(interpreter.get_output(0))]


def _run(op: Op, x: np.ndarray) -> np.ndarray:
    """The kernel the registry picks for ``op``, with ``x`` as input 0 (states are not read)."""
    arrays = [None if t is None else t.data for t in op.inputs]
    arrays[0] = x
    (result,) = run_kernel(op, arrays)
    return result


def _resequenced(op: Op, batch: int, steps: int, time_major: bool) -> Op:
    """``op`` with the same weights on a sequence of another batch size, length and layout."""
    graph = Graph(f"{op.name}_b{batch}_t{steps}")
    lead = (steps, batch) if time_major else (batch, steps)

    def copy(t: Tensor | None, shape: tuple[int, ...] | None = None) -> Tensor | None:
        if t is None:
            return None
        data = t.data
        if shape is not None and data is not None:  # a state: its (uniform) initial value
            data = np.full(shape, data.flat[0], data.dtype)
        return graph.add_tensor(t.name, shape or t.shape, t.dtype, t.quant, data)

    x = copy(op.inputs[0], (*lead, op.inputs[0].shape[-1]))
    states = {i: copy(op.inputs[i], (batch, op.inputs[i].shape[-1])) for i in (18, 19)}
    inputs = [x, *(states.get(i) or copy(t) for i, t in enumerate(op.inputs[1:], start=1))]
    out = copy(op.output, (*lead, op.output.shape[-1]))
    attrs = {**op.attrs, "time_major": time_major}
    return graph.add_op("lstm", inputs, [out], attrs, name=op.name)


def _quantize(real: np.ndarray, scale: float, zero_point: int, dtype: type) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(real / scale) + zero_point, info.min, info.max).astype(dtype)


def _random_lstm(
    rng: np.random.Generator,
    *,
    n_input: int = 7,
    n_cell: int = 6,
    n_output: int | None = None,
    batch: int = 2,
    steps: int = 5,
    time_major: bool = False,
    int8: bool = False,
    cifg: bool = False,
    peephole: bool = False,
    layer_norm: bool = False,
    projection_bias: bool = False,
    cell_clip: float = 0.0,
    proj_clip: float = 0.0,
    activation: str = "tanh",
    hidden_zero_point: int = 0,
    cell_scale_power: int = -11,
) -> Op:
    """A random LSTM op; int8 ones quantized as the TFLite converter does for TFLite Micro."""
    n_output = n_output or n_cell
    graph = Graph("random_lstm")
    lead = (steps, batch) if time_major else (batch, steps)
    inputs: list[Tensor | None] = [None] * 24
    x_quant = Quantization((0.03,), (int(rng.integers(-20, 20)),)) if int8 else None
    hidden_quant = Quantization((1 / 128,), (hidden_zero_point,)) if int8 else None
    dtype = DType.INT8 if int8 else DType.FLOAT32
    inputs[0] = graph.add_tensor("x", (*lead, n_input), dtype, x_quant)

    def weights(index: int, shape: tuple[int, ...], fan_in: int) -> None:
        real = rng.standard_normal(shape) * (1.5 / np.sqrt(fan_in))
        if not int8:
            inputs[index] = graph.add_constant(f"w{index}", real.astype(np.float32))
            return
        scale = float(np.float32(np.abs(real).max() / 127))
        q = Quantization((scale,), (0,))
        inputs[index] = graph.add_constant(f"w{index}", _quantize(real, scale, 0, np.int8), q)

    gates = range(1 if cifg else 0, 4)
    for g in gates:
        weights(1 + g, (n_cell, n_input), n_input)
        weights(5 + g, (n_cell, n_output), n_output)
    if peephole:
        for index in (10, 11) if cifg else (9, 10, 11):
            weights(index, (n_cell,), 1)
    if layer_norm:
        for g in gates:
            weights(20 + g, (n_cell,), 1)
    for g in gates:
        real_bias = rng.standard_normal(n_cell) * 0.5
        if int8:
            w = inputs[1 + g]
            assert w is not None and w.quant is not None and x_quant is not None
            scale = x_quant.scale[0] * w.quant.scale[0]
            bias = _quantize(real_bias, scale, 0, np.int32)
            inputs[12 + g] = graph.add_constant(f"b{g}", bias, Quantization((scale,), (0,)))
        else:
            inputs[12 + g] = graph.add_constant(f"b{g}", real_bias.astype(np.float32))
    if n_output != n_cell:
        weights(16, (n_output, n_cell), n_cell)
        if projection_bias:
            bias = (rng.standard_normal(n_output) * 0.1).astype(np.float32)
            inputs[17] = graph.add_constant("projection_bias", bias)
    cell_quant = Quantization((2.0**cell_scale_power,), (0,)) if int8 else None
    inputs[18] = graph.add_tensor("hidden_state", (batch, n_output), dtype, hidden_quant)
    inputs[19] = graph.add_tensor(
        "cell_state", (batch, n_cell), DType.INT16 if int8 else dtype, cell_quant
    )
    out = graph.add_tensor("y", (*lead, n_output), dtype, hidden_quant)
    attrs = {
        "time_major": time_major,
        "cell_clip": cell_clip,
        "proj_clip": proj_clip,
        "activation": activation,
        "asymmetric_quantize_inputs": False,
        "intermediates": (),
    }
    return graph.add_op("lstm", inputs, [out], attrs, name="lstm")


def _random_input(rng: np.random.Generator, op: Op) -> np.ndarray:
    x = op.inputs[0]
    assert x is not None
    if x.dtype is DType.INT8:
        return rng.integers(-128, 128, size=x.shape, dtype=np.int8)
    return (rng.standard_normal(x.shape) * 1.5).astype(np.float32)


def _assert_close(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    error = float(np.abs(ours - ref).max() / np.abs(ref).max())
    assert error <= 1e-5, f"max error {error:.3g} relative to max |ref| {np.abs(ref).max():.3g}"


def _assert_bit_exact(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    differ = np.flatnonzero(ours != ref)
    assert differ.size == 0, (
        f"{differ.size} of {ref.size} values differ, first at flat index {differ[0]}: "
        f"ours {ours.flat[differ[0]]}, TFLite Micro {ref.flat[differ[0]]}"
    )


# ---- the shared models -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_dtln_lstm_layers_are_bit_exact_with_tflm(seed: int, tmp_path: Path) -> None:
    first, second = _lstm_ops(DTLN_INT8)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=first.inputs[0].shape, dtype=np.int8)
    hidden = _run(first, x)
    _assert_bit_exact(hidden, _reference(run_tflm, first, [x], tmp_path))
    _assert_bit_exact(_run(second, hidden), _reference(run_tflm, second, [hidden], tmp_path))


@pytest.mark.parametrize(
    ("batch", "steps", "time_major"), [(1, 16, False), (3, 6, True), (2, 5, False)]
)
def test_dtln_lstm_layers_over_sequences_are_bit_exact(
    batch: int, steps: int, time_major: bool, tmp_path: Path
) -> None:
    """The model has one time step; on longer sequences the recurrence runs with its weights."""
    rng = np.random.default_rng(batch * 100 + steps)
    for layer in _lstm_ops(DTLN_INT8):
        op = _resequenced(layer, batch, steps, time_major)
        # Mostly small inputs (the model reads a magnitude spectrum) with a few large ones.
        x = np.where(
            rng.random(op.inputs[0].shape) < 0.9,
            rng.integers(-128, -90, op.inputs[0].shape),
            rng.integers(-128, 128, op.inputs[0].shape),
        ).astype(np.int8)
        ours = _run(op, x)
        assert len(np.unique(ours)) > 50  # not saturated: the test sees the arithmetic
        _assert_bit_exact(ours, _reference(run_tflm, op, [x], tmp_path))


@pytest.mark.parametrize("seed", SEEDS)
def test_mnist_lstm_matches_tflm(seed: int, tmp_path: Path) -> None:
    (op,) = _lstm_ops(MNIST_LSTM_F32)
    x = np.random.default_rng(seed).random(op.inputs[0].shape, dtype=np.float32)
    _assert_close(_run(op, x), _reference(run_tflm, op, [x], tmp_path))


def _full_model_runnable(path: Path) -> None:
    """Skip unless memfit has kernels for all of the model's ops."""
    graph = api.load(path)
    missing = sorted({op.kind for op in graph.ops if find_kernel(op) is None})
    if missing:
        pytest.skip(f"no kernels yet for {', '.join(missing)} on {path.name}")


@pytest.mark.parametrize("seed", SEEDS)
def test_dtln_full_model_is_bit_exact_with_tflm(seed: int) -> None:
    _full_model_runnable(DTLN_INT8)
    x = np.random.default_rng(seed).integers(-128, 128, size=(1, 1, 257), dtype=np.int8)
    (ours,) = api.run(DTLN_INT8, x).values()
    _assert_bit_exact(ours, run_tflm(DTLN_INT8, [x])[0])


@pytest.mark.parametrize("seed", SEEDS)
def test_mnist_full_model_matches_tflm(seed: int) -> None:
    _full_model_runnable(MNIST_LSTM_F32)
    x = np.random.default_rng(seed).random((1, 28, 28), dtype=np.float32)
    (ours,) = api.run(MNIST_LSTM_F32, x).values()
    _assert_close(ours, run_tflm(MNIST_LSTM_F32, [x])[0])


# ---- random LSTMs ------------------------------------------------------------------------------

INT8_CASES = {
    "batch-major": {},
    "time-major": {"time_major": True, "batch": 3},
    "hidden zero point": {"hidden_zero_point": -7, "steps": 8},
    "cell clip": {"cell_clip": 0.75, "steps": 8},
    "cell scale 2^-12": {"cell_scale_power": -12},
    "cell scale 2^-13 (rounding tanh shift)": {"cell_scale_power": -13, "cell_clip": 3.0},
    "cell scale 2^-9": {"cell_scale_power": -9},
    "long sequence": {"batch": 1, "steps": 40, "n_input": 16, "n_cell": 12},
    "one step": {"steps": 1, "batch": 3},
}


@pytest.mark.parametrize("case", INT8_CASES)
def test_random_int8_lstm_is_bit_exact_with_tflm(case: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(len(case))
    op = _random_lstm(rng, int8=True, **INT8_CASES[case])
    assert lstm_int8 is find_kernel(op)
    for _ in range(2):
        x = _random_input(rng, op)
        _assert_bit_exact(_run(op, x), _reference(run_tflm, op, [x], tmp_path))


FLOAT_CASES = {
    "standard": {},
    "time-major": {"time_major": True, "batch": 3},
    "cell clip": {"cell_clip": 0.5},
    "one step": {"steps": 1, "batch": 3},
}
# Variants TFLite Micro refuses (or, for activations other than tanh, runs without the
# activation); LiteRT, the full TFLite runtime, is their reference.
FLOAT_VARIANT_CASES = {
    "relu activation": {"activation": "relu", "cell_clip": 3.0},
    "relu6 activation, time-major": {"activation": "relu6", "time_major": True},
    "CIFG": {"cifg": True},
    "peephole": {"peephole": True},
    "CIFG + peephole": {"cifg": True, "peephole": True},
    "layer norm": {"layer_norm": True},
    "projection": {"n_output": 4},
    "projection + bias + clip": {"n_output": 4, "projection_bias": True, "proj_clip": 0.3},
    "projection wider than the cells": {"n_output": 9, "peephole": True},
    "projection, one step": {"n_output": 4, "steps": 1},
    "layer norm + peephole + projection": {"layer_norm": True, "peephole": True, "n_output": 4},
    "layer norm + CIFG, projection wider": {"layer_norm": True, "cifg": True, "n_output": 8},
    "all, time-major": {
        "cifg": True,
        "peephole": True,
        "layer_norm": True,
        "n_output": 5,
        "projection_bias": True,
        "cell_clip": 1.0,
        "time_major": True,
    },
}


@pytest.mark.parametrize("case", FLOAT_CASES)
def test_random_float_lstm_matches_tflm(case: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(len(case))
    op = _random_lstm(rng, **FLOAT_CASES[case])
    assert lstm_float is find_kernel(op)
    for _ in range(2):
        x = _random_input(rng, op)
        _assert_close(_run(op, x), _reference(run_tflm, op, [x], tmp_path))


@pytest.mark.parametrize("case", FLOAT_VARIANT_CASES)
def test_float_lstm_variants_match_litert(case: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(len(case))
    op = _random_lstm(rng, **FLOAT_VARIANT_CASES[case])
    for _ in range(2):
        x = _random_input(rng, op)
        _assert_close(_run(op, x), _reference(run_litert, op, [x], tmp_path))


# ---- fixed-point helpers -----------------------------------------------------------------------


def test_quantize_multiplier_hand_computed() -> None:
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(2.0**-15) == (1 << 30, -14)
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    # The fraction rounds up to 1.0: TFLite halves it and bumps the exponent.
    assert quantize_multiplier(1.0 - 2.0**-40) == (1 << 30, 1)
    assert quantize_multiplier(0.0) == (0, 0)


def test_multiply_by_quantized_multiplier_rounds_twice() -> None:
    half = 1 << 30  # 0.5 in Q31
    # 0.25 = 1 * 0.5 * 2^-1: the doubling high multiply rounds 0.5 up to 1, then the shift
    # rounds 0.5 up again, so TFLite gets 1 where a single rounding would give 0.
    assert multiply_by_quantized_multiplier(np.array([1]), half, -1).tolist() == [1]
    assert multiply_by_quantized_multiplier(np.array([3, -3]), half, -1).tolist() == [1, -1]
    assert multiply_by_quantized_multiplier(np.array([100, -100]), half, 2).tolist() == [200, -200]
    # Saturation: INT32_MIN * INT32_MIN would be +1.0, which Q31 cannot hold.
    int32_min = -(1 << 31)
    assert multiply_by_quantized_multiplier(np.array([int32_min]), int32_min, 0).tolist() == [
        (1 << 31) - 1
    ]


def test_sigmoid_int16_hand_computed() -> None:
    # Q3.12 in, Q0.15 out. x = 1.0 is 4096: times 3 it is 12288 = table step 24 exactly
    # (24 * 512), and table[24] = 47911, so (47911 * 512 + 512) >> 10 = 23956
    # (sigmoid(1) * 32768 = 23955.3). The negative side mirrors it: 32768 - 23956 = 8812.
    x = np.array([0, 4096, -4096, 2048], np.int16)
    # x = 0.5: 6144 = 12 * 512, table[12] = 40794 -> (40794 * 512 + 512) >> 10 = 20397.
    assert sigmoid_int16(x).tolist() == [16384, 23956, 8812, 20397]
    # Between table steps it interpolates: 4096 + 1 -> 12291 = 24 * 512 + 3, table[25] = 48443
    # -> (47911 * 512 + 3 * (48443 - 47911) + 512) >> 10 = 23957.
    assert sigmoid_int16(np.array([4097], np.int16)).tolist() == [23957]


def test_tanh_int16_hand_computed() -> None:
    # Q3.12 in: x = 1.0 = 4096, times 3 = 12288 = table step 48 (48 * 256) of the table at
    # twice the argument; table[48] = 57724 -> (57724 * 256 - 2^23 + 128) >> 8 = 24956
    # (tanh(1) * 32768 = 24956.0).
    assert tanh_int16(np.array([0, 4096, -4096], np.int16), -12).tolist() == [0, 24956, -24956]
    # The same real value 1.0 at cell-state scales 2^-11 (times 6) and 2^-13 (times 3, then a
    # rounding halving) lands on the same table step.
    assert tanh_int16(np.array([2048], np.int16), -11).tolist() == [24956]
    assert tanh_int16(np.array([8192], np.int16), -13).tolist() == [24956]
    # At scale 2^-11 the int16 range reaches 16.0, past the table's end: saturation to +-32767.
    assert tanh_int16(np.array([32767, -32768], np.int16), -11).tolist() == [32767, -32767]


def _activation_op(kind: str, input_scale_power: int) -> Op:
    graph = Graph(kind)
    x_quant = Quantization((2.0**input_scale_power,), (0,))
    x = graph.add_tensor("x", (1 << 16,), DType.INT16, x_quant)
    y = graph.add_tensor("y", (1 << 16,), DType.INT16, Quantization((2.0**-15,), (0,)))
    return graph.add_op(kind, [x], [y], name=kind)


def test_sigmoid_int16_matches_tflm_logistic_on_every_input(tmp_path: Path) -> None:
    """TFLite Micro's int16 LOGISTIC at input scale 2^-12 is the LSTM's gate sigmoid."""
    every = np.arange(-(1 << 15), 1 << 15, dtype=np.int16)
    ref = _reference(_run_tflm_big_arena, _activation_op("logistic", -12), [every], tmp_path)
    _assert_bit_exact(sigmoid_int16(every), ref)


@pytest.mark.parametrize("power", [-12, -11, -13, -10])
def test_tanh_int16_matches_tflm_tanh_on_every_input(power: int, tmp_path: Path) -> None:
    every = np.arange(-(1 << 15), 1 << 15, dtype=np.int16)
    ref = _reference(_run_tflm_big_arena, _activation_op("tanh", power), [every], tmp_path)
    _assert_bit_exact(tanh_int16(every, power), ref)


# ---- what the kernels refuse -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"peephole": True}, "uses peepholes"),
        ({"layer_norm": True}, "uses layer normalization"),
        ({"cifg": True}, "uses CIFG"),
        ({"activation": "relu"}, "cell activation 'relu'"),
    ],
)
def test_int8_lstms_tflm_cannot_run_are_refused(variant: dict, message: str) -> None:
    op = _random_lstm(np.random.default_rng(0), int8=True, **variant)
    x = _random_input(np.random.default_rng(1), op)
    with pytest.raises(UnsupportedOpError, match=f"op lstm \\(int8 lstm\\) .*{message}"):
        _run(op, x)


def test_hybrid_float_lstm_is_refused() -> None:
    op = _random_lstm(np.random.default_rng(0))
    w = op.inputs[2]
    assert w is not None and w.data is not None
    w.data = np.clip(np.round(w.data * 64), -127, 127).astype(np.int8)
    with pytest.raises(UnsupportedOpError, match="hybrid"):
        _run(op, _random_input(np.random.default_rng(1), op))
