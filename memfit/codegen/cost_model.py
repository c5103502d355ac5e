"""Latency of a plan's generated C, predicted from measured per-op times.

Each op costs ``a + b * MACs + c * bytes`` seconds, where ``bytes`` is what it reads (its
activations and constants) and writes, and (a, b, c) >= 0 are fitted per op class (kind and
arithmetic, e.g. ``conv2d/int8``; ``conv2d/hybrid`` for float input and int8 weights) by least
squares on the relative error of ``memfit bench``'s per-op medians. A tiled plan has one op per
tile, so ``a`` is also the per-tile overhead and the halo recomputation shows in the MACs; the
slices and concatenations tiling adds are ops with their own classes. Classes with too few
samples use a fit over every sample. Ops the plan runs without moving data (reshape views,
concatenations written in place) cost nothing.

Coefficients belong to a machine and a compiler: ``python -m benchmarks.latency`` times the
plans of the shared models (untiled and, where path discovery tiles them, tiled) and of the
ONNX light zoo (untiled), fits on every op, writes
``~/.cache/memfit/cost_model-<host>-<compiler>.json`` and reports the prediction error of every
measured plan, each predicted by a fit that did not see that plan's model (leave one model
out). With ``--default`` it also writes the fallback shipped with memfit,
``cost_model_default.json``, which records where it was measured.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import os
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from memfit.errors import MemfitError
from memfit.ir.core import Graph, Op
from memfit.ir.ops import macs
from memfit.planning import MemoryPlan
from memfit.runtime.kernels import is_hybrid, is_quantized

DEFAULT_PATH = Path(__file__).resolve().parent / "cost_model_default.json"
MIN_SAMPLES = 3
"""A class needs this many measured ops for coefficients of its own."""
FORMAT = "memfit-cost-model"


@dataclass(frozen=True)
class OpFeatures:
    key: str
    macs: int
    bytes: int


def op_features(op: Op) -> OpFeatures:
    """What an op's cost is predicted from."""
    arithmetic = "int8" if is_quantized(op) else str(op.output.dtype)
    if is_hybrid(op):  # int8 arithmetic, plus quantizing a float input, and a float output
        arithmetic = "hybrid"
    moved = sum(t.nbytes for t in op.inputs if t is not None)
    moved += sum(t.nbytes for t in op.outputs)
    return OpFeatures(f"{op.kind}/{arithmetic}", macs(op), moved)


class Sample(Protocol):
    """One measured op (``memfit.codegen.bench.OpTime`` is one)."""

    key: str
    macs: int
    bytes: int
    seconds: float


@dataclass(frozen=True)
class Coefficients:
    intercept_s: float
    per_mac_s: float
    per_byte_s: float

    def seconds(self, features: OpFeatures) -> float:
        return self.intercept_s + self.per_mac_s * features.macs + self.per_byte_s * features.bytes

    def to_json(self) -> list[float]:
        return [self.intercept_s, self.per_mac_s, self.per_byte_s]


@dataclass(frozen=True)
class CostModel:
    classes: Mapping[str, Coefficients]
    general: Coefficients
    """For op classes without coefficients of their own."""
    provenance: Mapping[str, Any]

    def seconds(self, features: OpFeatures) -> float:
        """Predicted seconds of one op of class ``features.key`` with those MACs and bytes (a
        tile of an op, say): its class's coefficients, else the general ones."""
        return self.classes.get(features.key, self.general).seconds(features)

    def op_seconds(self, op: Op) -> float:
        return self.seconds(op_features(op))

    def predict(self, graph: Graph, plan: MemoryPlan) -> float:
        """Predicted latency in seconds of ``graph``'s generated C under ``plan``."""
        return sum(
            self.op_seconds(op) for op in graph.ops if not plan.storage.moves_no_data(op.name)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "terms": ["intercept_s", "per_mac_s", "per_byte_s"],
            "general": self.general.to_json(),
            "classes": {key: c.to_json() for key, c in sorted(self.classes.items())},
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CostModel:
        if data.get("format") != FORMAT:
            raise ValueError("not a memfit cost model")
        return cls(
            {key: Coefficients(*map(float, v)) for key, v in data["classes"].items()},
            Coefficients(*map(float, data["general"])),
            dict(data.get("provenance", {})),
        )


def predict(graph: Graph, plan: MemoryPlan, model: CostModel | None = None) -> float:
    """Predicted latency in seconds of ``graph`` under ``plan`` as generated C, by this
    machine's fitted cost model (or memfit's default)."""
    return (model or load_cost_model()).predict(graph, plan)


# ---- fitting -------------------------------------------------------------------------------


def fit(samples: Iterable[Sample], provenance: Mapping[str, Any] | None = None) -> CostModel:
    """Fit every op class with enough samples, and the general coefficients on all."""
    samples = [s for s in samples if s.seconds > 0]
    if not samples:
        raise ValueError("no measured ops to fit a cost model on")
    by_key: dict[str, list[Sample]] = {}
    for sample in samples:
        by_key.setdefault(sample.key, []).append(sample)
    classes = {
        key: _fit_nonnegative(group) for key, group in by_key.items() if len(group) >= MIN_SAMPLES
    }
    counts = {key: len(group) for key, group in sorted(by_key.items())}
    return CostModel(
        classes, _fit_nonnegative(samples), {**(provenance or {}), "samples_per_class": counts}
    )


def _fit_nonnegative(samples: Sequence[Sample]) -> Coefficients:
    """Non-negative least squares on relative errors, exactly: with three terms every support
    set can be tried, and the best fit with non-negative coefficients is one of them."""
    seconds = np.array([s.seconds for s in samples])
    design = np.array([[1.0, s.macs, s.bytes] for s in samples]) / seconds[:, None]
    target = np.ones(len(samples))
    scale = np.maximum(np.abs(design).max(axis=0), 1e-30)  # condition the columns
    best: tuple[float, np.ndarray] | None = None
    for size in range(1, 4):
        for support in itertools.combinations(range(3), size):
            columns = design[:, support] / scale[list(support)]
            solution, *_ = np.linalg.lstsq(columns, target, rcond=None)
            if (solution < 0).any():
                continue
            residual = float(np.sum((columns @ solution - target) ** 2))
            if best is None or residual < best[0]:
                full = np.zeros(3)
                full[list(support)] = solution / scale[list(support)]
                best = (residual, full)
    assert best is not None  # the intercept alone always fits with a non-negative value
    return Coefficients(*map(float, best[1]))


# ---- where the coefficients live -----------------------------------------------------------


def cache_path(compiler: str | None = None) -> Path:
    """This machine's cost model file for ``compiler`` (default: the system compiler)."""
    if compiler is None:
        from memfit.codegen.toolchain import find_compiler

        compiler = Path(find_compiler().path).name
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", platform.node() or "unknown-host")
    return base / "memfit" / f"cost_model-{host}-{re.sub(r'[^A-Za-z0-9_.-]', '_', compiler)}.json"


def load_cost_model(path: Path | None = None) -> CostModel:
    """The cost model fitted on this machine (``cache_path``), else memfit's default."""
    candidates = [path] if path is not None else []
    with contextlib.suppress(MemfitError):  # no compiler: only the default can apply
        candidates.append(cache_path())
    candidates.append(DEFAULT_PATH)
    for candidate in candidates:
        if candidate.is_file():
            try:
                return CostModel.from_json(json.loads(candidate.read_text()))
            except (ValueError, KeyError, TypeError):
                continue
    raise FileNotFoundError(f"no cost model found (not even {DEFAULT_PATH})")


def uncalibrated_cost_model() -> CostModel:
    """A stand-in when no measured cost model exists: 1 ns per MAC and per byte, 1 us per op
    (``provenance["calibrated"]`` is False, so callers can say so)."""
    return CostModel({}, Coefficients(1e-6, 1e-9, 1e-9), {"calibrated": False})


def default_cost_model() -> CostModel:
    """``load_cost_model()``, or the uncalibrated stand-in when no file can be read."""
    try:
        return load_cost_model()
    except FileNotFoundError:
        return uncalibrated_cost_model()


def save_cost_model(model: CostModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model.to_json(), indent=1) + "\n")


# ---- calibration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredPlan:
    """One plan of one model, timed: the release build's median and every op's median."""

    model: str
    variant: str
    latency_s: float
    graph: Graph
    plan: MemoryPlan
    ops: tuple[Sample, ...]


def leave_one_model_out(measured: Sequence[MeasuredPlan]) -> list[tuple[MeasuredPlan, float]]:
    """Every measured plan with its latency predicted by a fit on the other models only."""
    predictions = []
    for plan in measured:
        others = [op for m in measured if m.model != plan.model for op in m.ops]
        if others:
            predictions.append((plan, fit(others).predict(plan.graph, plan.plan)))
    return predictions


def provenance(measured: Sequence[MeasuredPlan], compiler: str, runs: int) -> dict[str, Any]:
    """Where and how a fit was measured, stored with its coefficients."""
    return {
        "host": platform.node(),
        "machine": platform.machine(),
        "compiler": compiler,
        "measured": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "runs": runs,
        "plans": [f"{Path(m.model).stem} ({m.variant})" for m in measured],
        "how": "python -m benchmarks.latency",
    }
