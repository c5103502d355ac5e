"""Post-training full-integer quantization to int8, computed as TFLite's converter computes it.

1. Calibrate: run the float graph on representative inputs and record every activation's range.
2. Activations (graph inputs and outputs included) become int8 per tensor, asymmetric: the range
   is widened to include 0, ``scale = (max - min) / 255`` and ``zero_point = round(-128 - min /
   scale)`` clamped to int8, in float32 arithmetic (TFLite's ``GetAsymmetricQuantizationParams``).
   Ops that only move or average values (reshape, max/average pooling, mean) keep their input's
   parameters; softmax outputs use the fixed scale 1/256 and zero point -128.
3. Weights become int8 per output channel, symmetric in the narrow range [-127, 127]:
   ``scale[c] = max|w[c]| / 127`` (axis 0 of conv2d and fully_connected weights, axis 3 of
   depthwise weights).
4. Biases become int32 with ``scale[c] = input_scale * weight_scale[c]`` and zero point 0. Where
   a bias would not fit, the weight range of that channel is widened first, as TFLite does.

A fused activation stays in the op's ``activation`` attribute; calibration sees the activated
output, so the output range covers exactly what the activation lets through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from memfit.errors import InternalError, UnsupportedModelError
from memfit.ir.core import Graph, Op, Quantization, Tensor
from memfit.ir.dtypes import DType
from memfit.runtime.executor import execute
from memfit.zoo.layers import OUTPUT_CHANNEL_AXIS

INT8_MIN, INT8_MAX = -128, 127
WEIGHT_MAX = 127
INT32_MAX = 2**31 - 1

CALIBRATED = frozenset({*OUTPUT_CHANNEL_AXIS, "add", "leaky_relu"})
"""Op kinds whose output parameters come from the calibrated range."""
SAME_AS_INPUT = frozenset({"reshape", "max_pool2d", "avg_pool2d", "mean"})
"""Op kinds whose output keeps the input's scale and zero point."""
SOFTMAX_OUTPUT = Quantization((1.0 / 256,), (-128,))

Ranges = Mapping[str, tuple[float, float]]


def round_half_away(x: npt.ArrayLike) -> np.ndarray:
    """Round half away from zero (C's ``round``, which TFLite uses), not NumPy's half to even."""
    values = np.asarray(x)
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def activation_quantization(low: float, high: float) -> Quantization:
    """Per-tensor int8 parameters for values seen in [low, high]."""
    low32 = np.float32(min(np.float32(low), np.float32(0.0)))
    high32 = np.float32(max(np.float32(high), np.float32(0.0)))
    scale = np.float32((high32 - low32) / np.float32(INT8_MAX - INT8_MIN))
    if scale == 0:
        # An all-zero tensor: any scale represents it; TFLite's 0 would break requantization.
        return Quantization((1.0,), (INT8_MIN,))
    zero = np.float32(np.float32(INT8_MIN) - low32 / scale)
    zero_point = int(np.clip(round_half_away(zero), INT8_MIN, INT8_MAX))
    return Quantization((float(scale),), (zero_point,))


def weight_quantization(
    weights: np.ndarray, axis: int, min_half_range: np.ndarray | None = None
) -> tuple[np.ndarray, Quantization]:
    """int8 weights and their per-channel symmetric parameters along ``axis``.

    ``min_half_range`` (per channel) widens a channel's range so that its bias fits in int32.
    """
    moved = np.moveaxis(weights.astype(np.float32), axis, 0)
    half_range = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    if min_half_range is not None:
        half_range = np.maximum(half_range, min_half_range).astype(np.float32)
    scale = half_range / np.float32(WEIGHT_MAX)
    inverse = np.divide(
        np.float32(WEIGHT_MAX), half_range, out=np.zeros_like(half_range), where=half_range > 0
    )
    shape = [1] * weights.ndim
    shape[axis] = -1
    q = round_half_away(weights.astype(np.float32) * inverse.reshape(shape))
    q = np.clip(q, -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    # A channel of zeros quantizes to zeros at any scale; 1.0 keeps every scale positive.
    scales = tuple(float(s) if s > 0 else 1.0 for s in scale)
    return q, Quantization(scales, (0,) * len(scales), axis)


def weight_half_range_for_bias(bias: np.ndarray, input_scale: float) -> np.ndarray:
    """The smallest weight half-range per channel for which ``bias`` fits in int32.

    TFLite widens the weight range when ``|bias| >= input_scale * weight_scale * INT32_MAX / 2``.
    """
    return (2.0 * np.abs(bias.astype(np.float32)) / INT32_MAX * (WEIGHT_MAX / input_scale)).astype(
        np.float32
    )


def bias_quantization(
    bias: np.ndarray, input_scale: float, weight_scales: tuple[float, ...]
) -> tuple[np.ndarray, Quantization]:
    """int32 bias with per-channel scale input_scale * weight_scale[c] and zero point 0."""
    scale = np.float32(input_scale) * np.asarray(weight_scales, dtype=np.float32)
    inverse = (1.0 / scale.astype(np.float64)).astype(np.float32)
    q = round_half_away(bias.astype(np.float32) * inverse)
    q = np.clip(q, -INT32_MAX, INT32_MAX).astype(np.int32)
    return q, Quantization(tuple(float(s) for s in scale), (0,) * len(scale), 0)


def calibrate(
    graph: Graph, samples: Iterable[Mapping[str, np.ndarray]]
) -> dict[str, tuple[float, float]]:
    """The (min, max) of every activation of the float ``graph`` over ``samples``."""
    probe = graph.copy()
    probe.outputs = list(probe.activations())
    ranges: dict[str, tuple[float, float]] = {}
    for inputs in samples:
        for name, value in execute(probe, inputs).items():
            low, high = float(value.min()), float(value.max())
            if name in ranges:
                low, high = min(low, ranges[name][0]), max(high, ranges[name][1])
            ranges[name] = (low, high)
    if not ranges:
        raise InternalError(f"calibrating {graph.name} needs at least one sample")
    return ranges


def _output_quantization(graph: Graph, ranges: Ranges) -> dict[str, Quantization]:
    """Quantization parameters of every activation, in op order."""
    quant = {t.name: activation_quantization(*ranges[t.name]) for t in graph.inputs}
    for op in graph.ops:
        source = op.inputs[0]
        if len(op.outputs) != 1 or source is None:
            raise UnsupportedModelError(
                f"op {op.name} ({op.kind}): the zoo quantizer handles single-output ops only"
            )
        if op.kind == "softmax":
            quant[op.output.name] = SOFTMAX_OUTPUT
        elif op.kind in SAME_AS_INPUT:
            quant[op.output.name] = quant[source.name]
        elif op.kind in CALIBRATED:
            quant[op.output.name] = activation_quantization(*ranges[op.output.name])
        else:
            raise UnsupportedModelError(
                f"op {op.name} ({op.kind}): the zoo quantizer handles "
                f"{', '.join(sorted(CALIBRATED | SAME_AS_INPUT | {'softmax'}))}"
            )
    return quant


def quantize(graph: Graph, ranges: Ranges) -> Graph:
    """An int8 copy of the float ``graph`` given calibrated activation ``ranges`` (by name).

    Tensor and op names are those of the float graph, so the two can be compared tensor by
    tensor.
    """
    quant = _output_quantization(graph, ranges)
    result = Graph(f"{graph.name}_int8")
    mapped = {
        t.name: result.add_tensor(t.name, t.shape, DType.INT8, quant[t.name])
        for t in graph.activations()
    }
    for op in graph.ops:
        if op.kind in OUTPUT_CHANNEL_AXIS:
            inputs = _quantized_layer_inputs(result, op, mapped)
        else:
            constants = [t.name for t in op.inputs if t is not None and t.is_constant]
            if constants:
                raise UnsupportedModelError(
                    f"op {op.name} ({op.kind}) has constant input(s) {', '.join(constants)}; "
                    "the zoo quantizer only quantizes layer weights and biases"
                )
            inputs = [None if t is None else mapped[t.name] for t in op.inputs]
        outputs = [mapped[t.name] for t in op.outputs]
        result.add_op(op.kind, inputs, outputs, dict(op.attrs), name=op.name)
    result.inputs = [mapped[t.name] for t in graph.inputs]
    result.outputs = [mapped[t.name] for t in graph.outputs]
    return result


def _quantized_layer_inputs(
    result: Graph, layer: Op, mapped: Mapping[str, Tensor]
) -> list[Tensor | None]:
    """Add a layer's int8 weights and int32 bias to ``result``; return the layer's new inputs."""
    x, weights, bias = (*layer.inputs, None)[:3]
    weight_data = None if weights is None else weights.data
    bias_data = None if bias is None else bias.data
    if (
        x is None
        or x.is_constant
        or weight_data is None
        or (bias is not None and bias_data is None)
    ):
        raise UnsupportedModelError(
            f"op {layer.name} ({layer.kind}): the zoo quantizer needs an activation input, "
            "constant weights and a constant bias (or none)"
        )
    q_x = mapped[x.name]
    assert q_x.quant is not None and weights is not None
    input_scale = q_x.quant.scale[0]
    widen = None if bias_data is None else weight_half_range_for_bias(bias_data, input_scale)
    q_weights, w_quant = weight_quantization(weight_data, OUTPUT_CHANNEL_AXIS[layer.kind], widen)
    q_bias = None
    if bias is not None and bias_data is not None:
        data, b_quant = bias_quantization(bias_data, input_scale, w_quant.scale)
        q_bias = result.add_constant(bias.name, data, b_quant)
    return [q_x, result.add_constant(weights.name, q_weights, w_quant), q_bias]
