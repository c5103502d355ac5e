"""Every model of the ``onnx`` package's light zoo through memfit, against onnxruntime.

The light models compute their weights in-graph with ConstantOfShape (every weight 0.02), so
their outputs hardly depend on the input and a layout mistake could still give the reference
answer (the softmax is uniform). Each model is therefore also run with seeded random weights in
place of the constant ones, comparing the logits before the softmax as well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from memfit import api
from tests.onnx_helpers import ort_run, relative_error

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = sorted(p.stem for p in LIGHT.glob("light_*.onnx"))
TOLERANCE = 1e-4  # max |memfit - onnxruntime| <= TOLERANCE * max |onnxruntime|


def test_the_zoo_is_all_there():
    assert len(MODELS) == 9, MODELS


def _random_weights(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """The model with every ConstantOfShape replaced by a seeded random initializer.

    Weights get He-scaled normal values (activations keep their size through the network);
    vectors (biases, batch-norm statistics) values in [0.5, 1.5), so variances stay positive.
    The input of a softmax that is a graph output is exposed as an extra output (the logits).
    """
    rng = np.random.default_rng(seed)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    known = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    kept = []
    for n in g.node:
        if n.op_type != "ConstantOfShape":
            kept.append(n)
            continue
        shape = tuple(int(d) for d in known[n.input[0]])
        if len(shape) > 1:
            value = rng.standard_normal(shape, dtype=np.float32)
            value *= np.float32(np.sqrt(2.0 / np.prod(shape[1:])))
        else:
            value = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        g.initializer.append(numpy_helper.from_array(value, n.output[0]))
    del g.node[:]
    g.node.extend(kept)
    used = {name for n in g.node for name in n.input}
    initializers = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(initializers)
    inputs = [i for i in g.input if i.name in used]
    del g.input[:]
    g.input.extend(inputs)
    outputs = {o.name for o in g.output}
    for n in g.node:
        if n.op_type == "Softmax" and n.output[0] in outputs:
            g.output.append(helper.make_empty_tensor_value_info(n.input[0]))
    return out


def _compare(path: Path) -> dict[str, float]:
    graph = api.load(path)
    (name,) = [t.name for t in graph.inputs]
    x = np.random.default_rng(2024).standard_normal((1, 3, 224, 224)).astype(np.float32)
    reference = ort_run(path, {name: x})
    got = api.run(graph, x)
    assert set(got) == set(reference)
    errors = {out: relative_error(got[out], ref) for out, ref in reference.items()}
    for out, error in errors.items():
        assert np.isfinite(reference[out]).all() and np.abs(reference[out]).max() > 0, out
        assert error <= TOLERANCE, f"{path.name}: output {out} is off by {error:.2e} (relative)"
    return errors


@pytest.mark.parametrize("model", MODELS)
def test_light_model_matches_onnxruntime(model):
    _compare(LIGHT / f"{model}.onnx")


@pytest.mark.parametrize("model", MODELS)
def test_light_model_with_random_weights_matches_onnxruntime(model, tmp_path):
    path = tmp_path / f"{model}_random.onnx"
    onnx.save(_random_weights(onnx.load(str(LIGHT / f"{model}.onnx")), seed=7), str(path))
    errors = _compare(path)
    assert len(errors) == (1 if model == "light_densenet121" else 2)  # logits compared too
