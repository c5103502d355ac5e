"""Build small ONNX models in tests and run them with onnxruntime, the reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ORT_IR_VERSION = 8  # onnxruntime reads IR versions up to its own; 8 covers opsets <= 17


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Mapping[str, Sequence[int | str]],
    outputs: Sequence[str],
    initializers: Mapping[str, np.ndarray] | None = None,
    opset: int = 13,
) -> onnx.ModelProto:
    """A float32 model; ``inputs`` maps names to shapes (a str is a dynamic dim)."""
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=[numpy_helper.from_array(v, n) for n, v in (initializers or {}).items()],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ORT_IR_VERSION
    )


def save(model: onnx.ModelProto, folder: Path, name: str = "model.onnx") -> Path:
    path = folder / name
    onnx.save(model, str(path))
    return path


def ort_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # no warnings about unused initializers
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_run(path: Path, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort_session(path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, dict(feeds)), strict=True))


def random_feeds(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded standard-normal float32 arrays for every input of the model at ``path``."""
    rng = np.random.default_rng(seed)
    return {
        i.name: rng.standard_normal(i.shape).astype(np.float32)
        for i in ort_session(path).get_inputs()
    }


def relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """max |actual - reference| / max |reference| (the light-zoo criterion)."""
    assert actual.shape == reference.shape, (actual.shape, reference.shape)
    scale = float(np.abs(reference).max())
    return float(np.abs(actual.astype(np.float64) - reference).max()) / (scale or 1.0)
