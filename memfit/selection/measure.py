"""Selected configurations as generated C: configured, planned (with their workspace),
emitted, compiled, verified against the NumPy executor and the model's reference runtime, and
timed side by side (every round runs each configuration's program in turn; medians).

The time of the ops primitive selection does not choose for (pooling, LRN, dense layers, ...)
comes from one profiled build of the model with memfit's default kernels: it is what the
prediction adds to the layers' measured costs.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memfit.api import run as run_numpy
from memfit.codegen.emit import GeneratedModel, generate
from memfit.codegen.plan import plan_for_c
from memfit.codegen.references import reference_for
from memfit.codegen.toolchain import PROFILE, RELEASE, Build, find_compiler, run_program
from memfit.codegen.verify import Comparison, random_inputs
from memfit.ir.core import Graph
from memfit.selection.lowering import configure
from memfit.selection.primitives import Choice

ROUNDS = 3


@dataclass(frozen=True)
class Configuration:
    assignment: Mapping[str, Choice]
    nchw_tensors: frozenset[str]
    graph: Graph | None = None
    """The graph the assignment applies to when it is not the model's own (a tiled plan from
    ``memfit.optimizer``, whose ops may carry chosen primitives already)."""


@dataclass(frozen=True)
class Measured:
    latency_s: float
    """Median of the timed runs."""
    run_seconds: tuple[float, ...]
    planned_arena_bytes: int
    """The generated C's arena: activations and every op's scratch, as memfit planned them."""
    comparisons: tuple[Comparison, ...]

    @property
    def fastest_s(self) -> float:
        """The fastest timed run (least disturbed by other work; what predictions match)."""
        return min(self.run_seconds)

    @property
    def verified(self) -> bool:
        return all(c.matches for c in self.comparisons)


def other_ops_seconds(
    graph: Graph, selectable: set[str], directory: Path, runs: int = 5
) -> tuple[float, dict[str, float]]:
    """(seconds of the ops outside ``selectable``, per op its fastest run) from a
    profiled build with memfit's default kernels."""
    configured = graph.copy()
    plan = plan_for_c(configured)
    generated = generate(configured, plan, directory, "baseline")
    program = Build(generated, find_compiler()).program(PROFILE)
    result = run_program(program, generated, random_inputs(generated.inputs, 0), repeat=runs)
    per_op = {
        op.name: min(samples[1:] or samples)
        for op, samples in zip(generated.ops, result.op_seconds, strict=True)
    }
    return sum(s for name, s in per_op.items() if name not in selectable), per_op


def check_graph(graph: Graph, config: Configuration, seed: int = 0) -> Graph:
    """The graph a configuration is checked on: the selected layers with seeded random weights
    and biases (a model zoo's stand-in weights may be constant, which would hide a permuted
    weight or channel), every selected layer's output that is stored NHWC a graph output, and
    nothing after them. int8 layers get int8 weights over their whole range and small int32
    biases (their scales stay the layer's)."""
    check = configure(graph, config.assignment, config.nchw_tensors)
    rng = np.random.default_rng(seed)
    outputs = []
    for name in config.assignment:
        op = check.op(name)
        for index in (1, 2):
            t = op.input(index)
            if t is None or t.data is None:
                continue
            if np.issubdtype(t.data.dtype, np.integer):
                limit = 127 if index == 1 else 1 << 10
                t.data = rng.integers(-limit, limit + 1, t.data.shape).astype(t.data.dtype)
            else:
                fan_in = max(1, t.data.size // t.data.shape[0]) if index == 1 else 1
                scale = 1.0 / np.sqrt(fan_in)
                t.data = (rng.standard_normal(t.data.shape) * scale).astype(t.data.dtype)
        if op.output.name not in config.nchw_tensors:
            outputs.append(op.output)
    check.outputs = outputs
    check.prune()
    return check


def _verify(graph: Graph, directory: Path, cache: Path) -> Comparison:
    """The generated C of ``graph`` against the NumPy executor, every output."""
    plan = plan_for_c(graph)
    generated = generate(graph, plan, directory, "check")
    program = Build(generated, find_compiler(), object_cache=cache).program(RELEASE)
    inputs = random_inputs(generated.inputs, 1)
    got = run_program(program, generated, inputs).outputs
    by_name = {p.tensor.name: a for p, a in zip(generated.inputs, inputs, strict=True)}
    expected = run_numpy(graph, by_name, plan.arena)
    comparison = Comparison(
        "numpy, every layer", "each selected layer's output, random weights, NumPy executor"
    )
    for port, value in zip(generated.outputs, got, strict=True):
        comparison.add(port.tensor.name, value, expected[port.tensor.name])
    return comparison


def measure(
    graph: Graph,
    model: str,
    configurations: Sequence[Configuration],
    *,
    runs: int = 6,
    directory: Path | None = None,
    progress: Callable[[str], None] | None = None,
    reference: bool = True,
) -> list[Measured]:
    """Build, verify and time every configuration of ``graph`` (from file ``model``; its
    reference runtime runs too unless ``reference`` is false: ``graph`` is not the file's)."""
    compiler = find_compiler()
    runtime = reference_for(model) if reference else None
    with tempfile.TemporaryDirectory(prefix="memfit-pareto-") as scratch:
        root = directory or Path(scratch)
        cache = root / "objects"
        built: list[tuple[GeneratedModel, Path, int, tuple[Comparison, ...]]] = []
        inputs = None
        expected_reference = None
        for i, config in enumerate(configurations):
            if progress is not None:
                progress(f"building and verifying configuration {i + 1}/{len(configurations)}")
            base = graph if config.graph is None else config.graph
            configured = configure(base, config.assignment, config.nchw_tensors)
            plan = plan_for_c(configured)
            generated = generate(configured, plan, root / str(i), "selected")
            program = Build(generated, compiler, object_cache=cache).program(RELEASE)
            if inputs is None:
                inputs = random_inputs(generated.inputs, 0)
                if runtime is not None:
                    expected_reference = runtime.run(inputs)
            got = run_program(program, generated, inputs).outputs
            by_name = {p.tensor.name: a for p, a in zip(generated.inputs, inputs, strict=True)}
            expected = run_numpy(configured, by_name, plan.arena)
            numpy_side = Comparison("numpy", "memfit's NumPy executor in the same arena")
            comparisons = [numpy_side]
            for port, value in zip(generated.outputs, got, strict=True):
                numpy_side.add(port.tensor.name, value, expected[port.tensor.name])
            if runtime is not None and expected_reference is not None:
                other = Comparison(runtime.name, runtime.note)
                for port, value, ref in zip(
                    generated.outputs, got, expected_reference, strict=True
                ):
                    other.add(port.tensor.name, value, ref)
                comparisons.append(other)
            if config.assignment:
                check = check_graph(base, config)
                comparisons.append(_verify(check, root / f"{i}-check", cache))
            built.append((generated, program, plan.arena.size, tuple(comparisons)))
        assert inputs is not None or not configurations
        seconds: list[list[float]] = [[] for _ in configurations]
        for r in range(ROUNDS):
            if progress is not None:
                progress(f"timing round {r + 1}/{ROUNDS}")
            count = runs // ROUNDS + (1 if r < runs % ROUNDS else 0)
            for samples, (generated, program, _, _) in zip(seconds, built, strict=True):
                samples += run_program(program, generated, inputs or [], repeat=count).run_seconds
    return [
        Measured(statistics.median(samples), tuple(samples), arena, comparisons)
        for samples, (_, _, arena, comparisons) in zip(seconds, built, strict=True)
    ]
