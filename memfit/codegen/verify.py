"""``memfit verify``: generate C for a plan, compile it, run it, compare.

The program built from the generated sources runs on seeded random inputs and its outputs are
compared with

- the NumPy executor running the same graph inside the same planned arena, and
- the model file's reference runtime (``memfit.codegen.references``), when there is one.

Integer outputs (int8 models) must be bit-exact; float outputs must lie within
``FLOAT_TOLERANCE`` times the largest reference output magnitude (the float kernels of the C
runtime accumulate in float32, memfit's NumPy kernels in float64, the reference runtimes in
their own order). A second build, linked with an allocator that aborts, runs once to show that
nothing allocates on the heap.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memfit.api import run as run_numpy
from memfit.codegen.boundary import Port
from memfit.codegen.emit import generate
from memfit.codegen.references import reference_for
from memfit.codegen.toolchain import (
    NO_HEAP,
    RELEASE,
    Build,
    ProgramError,
    find_compiler,
    run_program,
)
from memfit.ir.core import Graph
from memfit.planning import MemoryPlan

FLOAT_TOLERANCE = 1e-4
SEEDS = (0, 1, 2)


@dataclass
class Comparison:
    """The generated C against one other implementation, over every seed and output."""

    against: str
    note: str
    bit_exact: bool = True
    max_abs_diff: float = 0.0
    max_relative_diff: float = 0.0
    matches: bool = True
    mismatches: list[str] = field(default_factory=list)

    def add(self, label: str, got: np.ndarray, expected: np.ndarray) -> None:
        expected = np.asarray(expected)
        if got.shape != expected.shape:
            self.bit_exact = self.matches = False
            self.mismatches.append(f"{label}: shape {got.shape}, expected {expected.shape}")
            return
        wide_got, wide_expected = got.astype(np.float64), expected.astype(np.float64)
        diff = float(np.max(np.abs(wide_got - wide_expected), initial=0.0))
        scale = float(np.max(np.abs(wide_expected), initial=0.0))
        exact = bool(np.array_equal(got, expected))
        integer = np.issubdtype(got.dtype, np.integer)
        ok = exact if integer else bool(diff <= FLOAT_TOLERANCE * scale) or exact
        self.bit_exact &= exact
        self.max_abs_diff = max(self.max_abs_diff, diff)
        if scale > 0:
            self.max_relative_diff = max(self.max_relative_diff, diff / scale)
        if not ok:
            self.matches = False
            self.mismatches.append(
                f"{label}: max abs diff {diff:.3g} (largest |value| {scale:.3g})"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "note": self.note,
            "bit_exact": self.bit_exact,
            "max_abs_diff": self.max_abs_diff,
            "max_relative_diff": self.max_relative_diff,
            "matches": self.matches,
            "mismatches": self.mismatches,
        }


@dataclass(frozen=True)
class Verification:
    model: str
    compiler: str
    arena_bytes: int
    integer_outputs: bool
    seeds: tuple[int, ...]
    comparisons: tuple[Comparison, ...]
    no_heap: bool
    no_heap_message: str

    @property
    def bit_exact(self) -> bool:
        return all(c.bit_exact for c in self.comparisons)

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.comparisons), default=0.0)

    @property
    def matches(self) -> bool:
        return self.no_heap and all(c.matches for c in self.comparisons)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "matches": self.matches,
            "bit_exact": self.bit_exact,
            "max_abs_diff": self.max_abs_diff,
            "integer_outputs": self.integer_outputs,
            "float_tolerance": None if self.integer_outputs else FLOAT_TOLERANCE,
            "arena_bytes": self.arena_bytes,
            "compiler": self.compiler,
            "no_heap": self.no_heap,
            "seeds": list(self.seeds),
            "against": {c.against: c.to_json() for c in self.comparisons},
        }


def random_inputs(inputs: Sequence[Port], seed: int) -> list[np.ndarray]:
    """Seeded inputs in the external layout: the full range of an integer type, N(0, 1) for
    floats."""
    rng = np.random.default_rng(seed)
    arrays = []
    for port in inputs:
        if np.issubdtype(port.dtype, np.integer):
            info = np.iinfo(port.dtype)
            low, high = max(int(info.min), -(1 << 15)), min(int(info.max), (1 << 15) - 1)
            arrays.append(rng.integers(low, high + 1, size=port.external_shape).astype(port.dtype))
        else:
            arrays.append(rng.standard_normal(port.external_shape).astype(port.dtype))
    return arrays


def verify(
    graph: Graph,
    plan: MemoryPlan,
    model: str,
    name: str,
    *,
    seeds: Sequence[int] = SEEDS,
    directory: Path | None = None,
    warnings: tuple[str, ...] = (),
) -> Verification:
    """Generate, build and run ``graph`` under ``plan``; compare (see the module docstring).

    ``model`` is the file (or ``zoo:NAME``) ``graph`` came from, for its reference runtime;
    ``directory`` keeps the sources and programs (default: a temporary directory).
    """
    compiler = find_compiler()
    with tempfile.TemporaryDirectory(prefix="memfit-verify-") as scratch:
        where = directory or Path(scratch)
        generated = generate(graph, plan, where, name)
        build = Build(generated, compiler, warnings)
        program = build.program(RELEASE)
        reference = reference_for(model)
        numpy_side = Comparison("numpy", "memfit's NumPy executor in the same arena")
        comparisons = [numpy_side]
        if reference is not None:
            comparisons.append(Comparison(reference.name, reference.note))
        first_inputs: list[np.ndarray] = []
        for seed in seeds:
            inputs = random_inputs(generated.inputs, seed)
            first_inputs = first_inputs or inputs
            got = run_program(program, generated, inputs).outputs
            by_name = {p.tensor.name: a for p, a in zip(generated.inputs, inputs, strict=True)}
            expected = run_numpy(graph, by_name, plan.arena)
            for port, value in zip(generated.outputs, got, strict=True):
                numpy_side.add(
                    f"seed {seed}, {port.tensor.name}", value, expected[port.tensor.name]
                )
            if reference is not None:
                reference_outputs = reference.run(inputs)
                for port, value, ref in zip(generated.outputs, got, reference_outputs, strict=True):
                    comparisons[1].add(f"seed {seed}, {port.tensor.name}", value, ref)
        no_heap, message = True, ""
        try:
            run_program(build.program(NO_HEAP), generated, first_inputs)
        except ProgramError as exc:
            no_heap, message = False, str(exc)
    return Verification(
        model=model,
        compiler=compiler.description,
        arena_bytes=plan.arena.size,
        integer_outputs=all(np.issubdtype(p.dtype, np.integer) for p in generated.outputs),
        seeds=tuple(seeds),
        comparisons=tuple(comparisons),
        no_heap=no_heap,
        no_heap_message=message,
    )
