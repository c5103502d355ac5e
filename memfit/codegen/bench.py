"""``memfit bench``: latency of the generated C beside the reference runtime, and per op.

The machines are shared and noisy, so the two sides are measured in one session, alternating:
each round runs the generated program (one untimed warm-up run, then its timed runs inside the
process, so process start-up is excluded) and then as many timed inferences of the reference
runtime (TFLite Micro's ``invoke()`` for .tflite, onnxruntime with one intra-op thread for
.onnx, each timed in Python around the call after a warm-up). Latencies are medians. A third
build with per-op timers (``-DMF_PROFILE``) gives each op's median time, with the MACs and
bytes the cost model is fitted on. Several plans of one model (``bench_plans``: untiled and
tiled, say) are timed in the same rounds, each program in turn, so their ratios are side by side
too.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memfit.codegen.cost_model import op_features
from memfit.codegen.emit import GeneratedModel, generate
from memfit.codegen.references import reference_for
from memfit.codegen.toolchain import PROFILE, RELEASE, Build, find_compiler, run_program
from memfit.codegen.verify import random_inputs
from memfit.ir.core import Graph
from memfit.planning import MemoryPlan

ROUNDS = 5


@dataclass(frozen=True)
class OpTime:
    index: int
    name: str
    kind: str
    key: str
    """The cost model's op class, e.g. ``conv2d/int8``."""
    seconds: float
    macs: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "kind": self.kind,
            "key": self.key,
            "seconds": self.seconds,
            "macs": self.macs,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class Benchmark:
    model: str
    compiler: str
    arena_bytes: int
    runs: int
    latency_s: float
    run_seconds: tuple[float, ...]
    reference: str | None
    reference_key: str | None
    reference_latency_s: float | None
    reference_seconds: tuple[float, ...]
    per_op: tuple[OpTime, ...]

    @property
    def ratio(self) -> float | None:
        """Reference latency / generated C latency (above 1: the C is faster)."""
        if self.reference_latency_s is None:
            return None
        return self.reference_latency_s / self.latency_s

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "compiler": self.compiler,
            "arena_bytes": self.arena_bytes,
            "runs": self.runs,
            "latency_s": self.latency_s,
            "run_seconds": list(self.run_seconds),
            "reference": self.reference,
        }
        if self.reference_key is not None:
            data[f"{self.reference_key}_latency_s"] = self.reference_latency_s
            data[f"{self.reference_key}_run_seconds"] = list(self.reference_seconds)
            data["reference_over_c"] = self.ratio
        data["per_op"] = [op.to_json() for op in self.per_op]
        return data


def bench(
    graph: Graph,
    plan: MemoryPlan,
    model: str,
    name: str,
    *,
    runs: int = 10,
    directory: Path | None = None,
) -> Benchmark:
    """Time ``graph`` under ``plan`` as generated C, beside ``model``'s reference runtime."""
    return bench_plans([(graph, plan)], model, name, runs=runs, directory=directory)[0]


def bench_plans(
    plans: Sequence[tuple[Graph, MemoryPlan]],
    model: str,
    name: str,
    *,
    runs: int = 10,
    directory: Path | None = None,
) -> list[Benchmark]:
    """Time several plans of ``model`` (e.g. untiled and tiled) as generated C, side by side:
    every round runs each plan's program in turn, then the reference runtime, so that their
    ratios come from the same moments of a noisy machine. ``directory`` keeps the sources and
    programs (of plan ``i`` in ``directory/i`` when there are several)."""
    compiler = find_compiler()
    with tempfile.TemporaryDirectory(prefix="memfit-bench-") as scratch:
        root = directory or Path(scratch)
        builds = []
        for i, (graph, plan) in enumerate(plans):
            where = root / str(i) if len(plans) > 1 else root
            generated = generate(graph, plan, where, name)
            # the runtime is the same for every plan: compiled once per variant
            build = Build(generated, compiler, object_cache=root / "runtime-objects")
            builds.append((generated, build.program(RELEASE), build.program(PROFILE)))
        inputs = random_inputs(builds[0][0].inputs, 0)
        reference = reference_for(model)
        if reference is not None:
            reference.time(inputs)  # warm-up
        rounds = min(runs, ROUNDS)
        c_seconds: list[list[float]] = [[] for _ in plans]
        reference_seconds: list[float] = []
        for r in range(rounds):
            count = runs // rounds + (1 if r < runs % rounds else 0)
            for seconds, (generated, program, _) in zip(c_seconds, builds, strict=True):
                seconds += run_program(program, generated, inputs, repeat=count).run_seconds
            if reference is not None:
                reference_seconds += [reference.time(inputs) for _ in range(count)]
        profiled = [
            run_program(profile, generated, inputs, repeat=max(3, math.ceil(runs / 2)))
            for generated, _, profile in builds
        ]
    reference_latency = statistics.median(reference_seconds) if reference_seconds else None
    return [
        Benchmark(
            model=model,
            compiler=compiler.description,
            arena_bytes=plan.arena.size,
            runs=runs,
            latency_s=statistics.median(seconds),
            run_seconds=tuple(seconds),
            reference=None if reference is None else reference.name,
            reference_key=None if reference is None else reference.key,
            reference_latency_s=reference_latency,
            reference_seconds=tuple(reference_seconds),
            per_op=_per_op(graph, generated, result.op_seconds),
        )
        for (graph, plan), seconds, (generated, _, _), result in zip(
            plans, c_seconds, builds, profiled, strict=True
        )
    ]


def _per_op(
    graph: Graph, generated: GeneratedModel, op_seconds: Sequence[Sequence[float]]
) -> tuple[OpTime, ...]:
    ops = {op.name: op for op in graph.ops}
    per_op = []
    for emitted, samples in zip(generated.ops, op_seconds, strict=True):
        features = op_features(ops[emitted.name])
        per_op.append(
            OpTime(
                emitted.index,
                emitted.name,
                emitted.kind,
                features.key,
                statistics.median(samples[1:] or samples),  # run 0 is the warm-up
                features.macs,
                features.bytes,
            )
        )
    return tuple(per_op)
