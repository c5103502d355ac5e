"""The Python API: load a model, run it, print it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np

from memfit.errors import InputError
from memfit.frontends import InputShapes, load_model
from memfit.ir.core import Graph
from memfit.ir.printer import format_graph
from memfit.planning import plan_memory
from memfit.planning.arena import ArenaPlan
from memfit.runtime.executor import execute


def load(source: str | Path, input_shapes: InputShapes | None = None) -> Graph:
    """Load a ``.tflite``/``.onnx`` file or ``zoo:NAME`` as a canonical graph."""
    return load_model(source, input_shapes)


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def run(
    model: Graph | str | Path,
    inputs: np.ndarray | Mapping[str, np.ndarray],
    plan: ArenaPlan | Literal["memfit", "separate"] = "memfit",
) -> dict[str, np.ndarray]:
    """Execute a model on ``inputs`` and return its outputs by name.

    Arrays are in the model's own layout (NCHW for an ONNX image model); a single array is
    accepted for a model with one input. The model runs inside one arena: by default the one
    memfit plans for it (so a planning bug shows as wrong outputs), or ``"separate"`` (every
    tensor its own bytes), or a given ArenaPlan valid for ``model``'s op order.
    """
    graph = model if isinstance(model, Graph) else load(model)
    if isinstance(inputs, np.ndarray):
        if len(graph.inputs) != 1:
            names = ", ".join(t.name for t in graph.inputs)
            raise InputError(f"the model has {len(graph.inputs)} inputs ({names}); pass a dict")
        inputs = {graph.inputs[0].name: inputs}
    internal = {}
    by_name = {t.name: t for t in graph.inputs}
    for name, array in inputs.items():
        array = np.asarray(array)
        tensor = by_name.get(name)
        perm = graph.external_perm.get(name)
        if tensor is not None:
            expected = external_shape(graph, name, tensor.shape)
            if array.shape != expected or array.dtype != tensor.dtype.numpy:
                raise InputError(
                    f"input {name!r} has shape {array.shape} and dtype {array.dtype}, but the "
                    f"model expects {expected} {tensor.dtype}"
                )
            if perm is not None:
                array = array.transpose(perm)
        internal[name] = np.ascontiguousarray(array)
    if plan == "memfit":
        graph = graph.copy()  # planning puts the ops in its order; leave the caller's graph be
        arena: ArenaPlan | None = plan_memory(graph).arena
    elif plan == "separate":
        arena = None
    else:
        arena = plan
    outputs = execute(graph, internal, arena)
    result = {}
    for name, array in outputs.items():
        perm = graph.external_perm.get(name)
        result[name] = array.transpose(_inverse(perm)) if perm is not None else array
    return result


def external_shape(graph: Graph, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape the user sees for a graph input/output held internally as ``shape``."""
    perm = graph.external_perm.get(name)
    if perm is None:
        return shape
    inverse = _inverse(perm)
    return tuple(shape[i] for i in inverse)


def inspect(model: Graph | str | Path) -> str:
    """The canonical graph as text, with MACs per op."""
    graph = model if isinstance(model, Graph) else load(model)
    return format_graph(graph, with_macs=True)
